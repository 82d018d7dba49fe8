"""Convert pytorchvideo ResNet I3D checkpoints (``pytorchvideo.models.hub.resnet.i3d_r50``) to
``I3DForVideoClassification``.

pytorchvideo's ``i3d_r50`` (``create_resnet`` with a (5, 7, 7) stem, the I3D inflation map and a (2, 1, 1) pool after
stage 1) is mmaction2's I3D-R50 with a stride-1 stem (``conv1_stride_t=1, pool1_stride_t=1``) and a head that
averages stride-1 (4, 7, 7) windows (``head_pool_kernel_size``); see the zoo entry ``i3d-r50-pytorchvideo-kinetics400``.
Its checkpoints are PySlowFast files: ``{'epoch', 'model_state', 'optimizer_state', 'cfg'}``, read safely, with
``model_state`` (or ``state_dict``, or a bare state dict) taken as the weights. Every key is mapped and every shape
checked; the output folder is written atomically.

Key mapping (pytorchvideo -> hf_i3d; S is the stage: the ``blocks`` holding ``res_blocks``, in order)::

    blocks.0.{conv,norm}.*                                    -> i3d.stem.conv.{conv,norm}.*
    blocks.N.res_blocks.B.branch2.{conv,norm}_{a,b,c}.*       -> i3d.stages.S.layers.B.conv{1,2,3}.{conv,norm}.*
    blocks.N.res_blocks.B.branch1_{conv,norm}.*               -> i3d.stages.S.layers.B.shortcut.{conv,norm}.*
    blocks.N.proj.{weight,bias}                               -> classifier.{weight,bias}
"""

from __future__ import annotations

import os
import re
from functools import partial
from pathlib import Path
from typing import Any

import torch

from ..configuration_i3d import I3DConfig
from ._torch_checkpoint import convert_checkpoint_file, load_state_dict_file, map_state_dict

_BLOCK = re.compile(r"^blocks\.(\d+)\.(.+)$")
_RES = re.compile(r"^res_blocks\.(\d+)\.(.+)$")
_BRANCH2 = re.compile(r"^branch2\.(conv|norm)_([abc])\.(.+)$")
_BRANCH1 = re.compile(r"^branch1_(conv|norm)\.(.+)$")
_LETTER = {"a": "1", "b": "2", "c": "3"}


def pytorchvideo_key_map(keys: list[str]) -> dict[str, str | None]:
    """The ``I3DForVideoClassification`` key of each pytorchvideo ``Net`` key (``None``: no counterpart).

    The stage of a ``blocks.N`` is its rank among the blocks that hold ``res_blocks`` (the pool after stage 1 is a
    block without weights, so N is 1, 3, 4, 5 in ``i3d_r50``).
    """
    stage_blocks = sorted(
        {int(m.group(1)) for k in keys if (m := _BLOCK.match(k)) and m.group(2).startswith("res_blocks.")}
    )
    stage_of = {block: stage for stage, block in enumerate(stage_blocks)}
    mapping: dict[str, str | None] = {}
    for key in keys:
        mapping[key] = None
        match = _BLOCK.match(key)
        if match is None:
            continue
        block, rest = int(match.group(1)), match.group(2)
        if block == 0 and (stem := re.match(r"^(conv|norm)\.(.+)$", rest)):
            mapping[key] = f"i3d.stem.conv.{stem.group(1)}.{stem.group(2)}"
        elif (head := re.match(r"^proj\.(weight|bias)$", rest)) is not None:
            mapping[key] = f"classifier.{head.group(1)}"
        elif block in stage_of and (res := _RES.match(rest)):
            prefix = f"i3d.stages.{stage_of[block]}.layers.{res.group(1)}"
            if branch2 := _BRANCH2.match(res.group(2)):
                kind, letter, leaf = branch2.groups()
                mapping[key] = f"{prefix}.conv{_LETTER[letter]}.{kind}.{leaf}"
            elif branch1 := _BRANCH1.match(res.group(2)):
                mapping[key] = f"{prefix}.shortcut.{branch1.group(1)}.{branch1.group(2)}"
    return mapping


def load_pytorchvideo_checkpoint(
    path: str | os.PathLike, *, trust_checkpoint: bool = False
) -> dict[str, torch.Tensor]:
    """The weights of a pytorchvideo / PySlowFast checkpoint, loaded with ``torch.load(weights_only=True)``.

    Takes ``model_state`` (PySlowFast), else ``state_dict``, else the file as a bare state dict; strips ``module.``
    (DistributedDataParallel) and ``model.`` (PySlowFast's ``PTVResNet`` wrapper) prefixes. Objects a training run
    leaves beside the weights become inert stand-ins; a file referring to anything else (``builtins.eval``, ...)
    is refused unless ``trust_checkpoint`` (nothing in it is ever run), as for mmaction2 checkpoints.
    """
    return load_state_dict_file(
        path,
        containers=("model_state", "state_dict"),
        prefixes=("module.", "model."),
        expected="{'model_state': ...}, {'state_dict': ...} or a dict of tensors",
        trust_checkpoint=trust_checkpoint,
    )


def convert_pytorchvideo_state_dict(
    state_dict: dict[str, torch.Tensor], config: I3DConfig, source: str = "checkpoint"
) -> dict[str, torch.Tensor]:
    """Map a pytorchvideo ResNet state dict onto ``I3DForVideoClassification(config)``, checking every key and
    shape; :class:`ConversionError` lists unexpected, missing and mismatched keys."""
    return map_state_dict(
        state_dict,
        config,
        pytorchvideo_key_map(list(state_dict)),
        source=source,
        config_fields=("depth", "base_channels", "num_labels"),
    )


def convert_pytorchvideo_checkpoint(
    checkpoint: str | os.PathLike,
    output_dir: str | os.PathLike,
    preset: str = "i3d-r50-pytorchvideo-kinetics400",
    overrides: dict[str, Any] | list[str] | None = None,
    *,
    overwrite: bool = False,
    progress: bool = True,
    push_to_hub: str | None = None,
    allow_nonfinite: bool = False,
    trust_checkpoint: bool = False,
) -> Path:
    """Convert a pytorchvideo ``i3d_r50`` checkpoint (local path or http(s) URL) into ``output_dir``.

    Writes ``config.json``, ``model.safetensors``, the model code (for ``trust_remote_code``), the video processor
    config and a model card, then uploads the folder to ``push_to_hub`` if given. ``overrides`` are config values
    (a dict, or ``key=value`` strings as given to ``--set``; unknown keys are refused). Weights holding NaN or Inf
    are refused unless ``allow_nonfinite``; for ``trust_checkpoint`` see :func:`load_pytorchvideo_checkpoint`. The
    output is written with :func:`hf_i3d.convert.save_converted`.
    """
    return convert_checkpoint_file(
        checkpoint,
        preset,
        output_dir,
        overrides,
        load=partial(load_pytorchvideo_checkpoint, trust_checkpoint=trust_checkpoint),
        convert=convert_pytorchvideo_state_dict,
        command="pytorchvideo",
        parity="Logits match pytorchvideo 0.1.5's `hub.resnet.i3d_r50` to float tolerance (tested against "
        "fixtures it generated).",
        overwrite=overwrite,
        progress=progress,
        push_to_hub=push_to_hub,
        allow_nonfinite=allow_nonfinite,
    )


__all__ = [
    "convert_pytorchvideo_checkpoint",
    "convert_pytorchvideo_state_dict",
    "load_pytorchvideo_checkpoint",
    "pytorchvideo_key_map",
]
