"""Convert mmaction2 I3D checkpoints (``Recognizer3D`` = ``ResNet3d`` + ``I3DHead``) to ``I3DForVideoClassification``.

Reads the files mmaction2 publishes (``torch.save`` of ``{'meta', 'state_dict'}``, after ``tools/publish_model.py``)
and the bare state dicts of training runs. Every key is mapped, every tensor shape is checked against the config,
and a mismatch fails with the offending keys named. The output folder is written atomically.

Key mapping (mmaction2 -> hf_i3d)::

    backbone.conv1.{conv,bn}.*                     -> i3d.stem.conv.{conv,norm}.*
    backbone.layer{L}.{B}.conv{N}.{conv,bn}.*      -> i3d.stages.{L-1}.layers.{B}.conv{N}.{conv,norm}.*
    backbone.layer{L}.{B}.downsample.{conv,bn}.*   -> i3d.stages.{L-1}.layers.{B}.shortcut.{conv,norm}.*
    backbone.layer{L}.{B}.non_local_block.{g,theta,phi}[.0].conv.*  -> i3d.stages.{L-1}.layers.{B}.non_local.{g,..}.*
    backbone.layer{L}.{B}.non_local_block.conv_out.{conv,bn}.*     -> ....non_local.{conv_out,norm}.*
    cls_head.fc_cls.{weight,bias}                  -> classifier.{weight,bias}
    data_preprocessor.*                            -> dropped (mmaction2 1.x normalisation buffers; the processor
                                                      normalises)
"""

from __future__ import annotations

import os
import re
from functools import partial
from pathlib import Path
from typing import Any

import torch

from ..configuration_i3d import I3DConfig
from ._torch_checkpoint import build_config, convert_checkpoint_file, load_state_dict_file, map_state_dict

_KEY_PATTERNS = [
    (re.compile(r"^backbone\.conv1\.(conv|bn)\.(.+)$"), "i3d.stem.conv.{0}.{1}"),
    (
        re.compile(r"^backbone\.layer(\d+)\.(\d+)\.(conv\d)\.(conv|bn)\.(.+)$"),
        "i3d.stages.{0}.layers.{1}.{2}.{3}.{4}",
    ),
    (
        re.compile(r"^backbone\.layer(\d+)\.(\d+)\.downsample\.(conv|bn)\.(.+)$"),
        "i3d.stages.{0}.layers.{1}.shortcut.{2}.{3}",
    ),
    # mmcv NonLocal3d: with sub_sample, g and phi are Sequential(ConvModule, MaxPool3d), hence the optional ".0"
    (
        re.compile(
            r"^backbone\.layer(\d+)\.(\d+)\.non_local_block\.(g|theta|phi)(?:\.0)?\.conv\.(weight|bias)$"
        ),
        "i3d.stages.{0}.layers.{1}.non_local.{2}.{3}",
    ),
    (
        re.compile(r"^backbone\.layer(\d+)\.(\d+)\.non_local_block\.conv_out\.conv\.(weight|bias)$"),
        "i3d.stages.{0}.layers.{1}.non_local.conv_out.{2}",
    ),
    (
        re.compile(r"^backbone\.layer(\d+)\.(\d+)\.non_local_block\.conv_out\.bn\.(.+)$"),
        "i3d.stages.{0}.layers.{1}.non_local.norm.{2}",
    ),
    (re.compile(r"^cls_head\.fc_cls\.(weight|bias)$"), "classifier.{0}"),
]
# mmaction2 1.x ``ActionDataPreprocessor`` buffers (mean/std) that some checkpoints carry: no model weights
_DROPPED_PREFIXES = ("data_preprocessor.",)


def mmaction_key_to_hf(key: str) -> str | None:
    """The ``I3DForVideoClassification`` key for an mmaction2 key, or ``None`` when it has no counterpart."""
    for pattern, template in _KEY_PATTERNS:
        match = pattern.match(key)
        if match is None:
            continue
        parts = list(match.groups())
        if template.startswith("i3d.stages"):
            parts[0] = str(int(parts[0]) - 1)
        parts = ["norm" if p == "bn" else p for p in parts]
        return template.format(*parts)
    return None


def load_mmaction_checkpoint(
    path: str | os.PathLike, *, trust_checkpoint: bool = False
) -> dict[str, torch.Tensor]:
    """Load the state dict of an mmaction2 checkpoint safely (``torch.load(weights_only=True)``).

    Accepts ``{'state_dict': ...}`` (what mmcv/mmengine save) and bare state dicts, and strips a ``module.`` prefix
    (DistributedDataParallel). Anything else is a :class:`ConversionError` naming the file. Objects of classes a
    training run leaves beside the weights (mmengine, numpy) are replaced by inert stand-ins; a file that refers to
    anything else (``builtins.eval``, ``posix.system``, ...) is refused naming it, unless ``trust_checkpoint`` (its
    objects are then replaced by stand-ins too: nothing in the file is ever run).
    """
    return load_state_dict_file(
        path,
        containers=("state_dict",),
        prefixes=("module.",),
        expected="a dict of tensors or {'state_dict': ...}",
        trust_checkpoint=trust_checkpoint,
    )


def convert_mmaction_state_dict(
    state_dict: dict[str, torch.Tensor], config: I3DConfig, source: str = "checkpoint"
) -> dict[str, torch.Tensor]:
    """Map an mmaction2 I3D state dict onto ``I3DForVideoClassification(config)``, checking every key and shape.

    Raises :class:`ConversionError` listing unexpected keys (non-local blocks the config does not have, say),
    missing keys and shape mismatches; ``num_batches_tracked`` may be absent (older BN layers) and is then zero.
    ``data_preprocessor.*`` buffers are dropped.
    """
    kept = {key: tensor for key, tensor in state_dict.items() if not key.startswith(_DROPPED_PREFIXES)}
    return map_state_dict(
        kept,
        config,
        {key: mmaction_key_to_hf(key) for key in kept},
        source=source,
        config_fields=("depth", "base_channels", "inflate_style", "num_labels"),
    )


def convert_mmaction_checkpoint(
    checkpoint: str | os.PathLike,
    preset: str,
    output_dir: str | os.PathLike,
    overrides: dict[str, Any] | list[str] | None = None,
    *,
    overwrite: bool = False,
    progress: bool = True,
    push_to_hub: str | None = None,
    allow_nonfinite: bool = False,
    trust_checkpoint: bool = False,
) -> Path:
    """Convert an mmaction2 checkpoint (local path or http(s) URL) of zoo ``preset`` into ``output_dir``.

    Writes ``config.json``, ``model.safetensors``, the model code (for ``trust_remote_code``), the video processor
    config and a model card, then uploads the folder to ``push_to_hub`` (a Hub repo id) if given. ``overrides`` are config values (a dict, or ``key=value`` strings as given to ``--set``; unknown keys are refused).
    Weights holding NaN or Inf are refused unless ``allow_nonfinite``; for ``trust_checkpoint`` see
    :func:`load_mmaction_checkpoint`. The output is written with :func:`hf_i3d.convert.save_converted` (never the
    checkpoint's own folder, an old folder replaced only after the new one is in place).
    """
    return convert_checkpoint_file(
        checkpoint,
        preset,
        output_dir,
        overrides,
        load=partial(load_mmaction_checkpoint, trust_checkpoint=trust_checkpoint),
        convert=convert_mmaction_state_dict,
        command="mmaction",
        parity="Logits match mmaction2's `ResNet3d` + `I3DHead` to float tolerance (tested against fixtures "
        "generated by mmaction2 1.2.0).",
        overwrite=overwrite,
        progress=progress,
        push_to_hub=push_to_hub,
        allow_nonfinite=allow_nonfinite,
    )


__all__ = [
    "convert_mmaction_checkpoint",
    "convert_mmaction_state_dict",
    "load_mmaction_checkpoint",
    "mmaction_key_to_hf",
    "build_config",
]
