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

import logging
import os
import pickle
import re
from pathlib import Path
from typing import Any

import torch

from ..configuration_i3d import I3DConfig
from ..downloads import download
from ..modelcard import write_model_card
from ..modeling_i3d import I3DForVideoClassification
from ..zoo import ZooEntry, get_entry, kinetics400_labels, label_maps
from . import (
    ConversionError,
    check_finite,
    check_output_dir,
    check_override_keys,
    format_keys,
    parse_overrides,
    push_folder,
    save_converted,
    save_processor,
)

logger = logging.getLogger(__name__)

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
    path = Path(path)
    if not path.is_file():
        raise ConversionError(f"{path}: no such checkpoint file")
    try:
        checkpoint = _load_weights_only(path, trust_checkpoint)
    except ConversionError:
        raise
    except (
        Exception
    ) as error:  # torch.load raises many types (UnpicklingError, IndexError, RuntimeError, ...)
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ConversionError(f"{path} is not a readable PyTorch checkpoint ({first_line})") from error
    state_dict: Any = checkpoint.get("state_dict", checkpoint) if isinstance(checkpoint, dict) else None
    if not isinstance(state_dict, dict) or not state_dict:
        raise ConversionError(
            f"{path} holds no state dict (expected a dict of tensors or {{'state_dict': ...}})"
        )
    tensors = {}
    for key, value in state_dict.items():
        if not isinstance(value, torch.Tensor):
            raise ConversionError(
                f"{path}: entry {key!r} of the state dict is a {type(value).__name__}, not a tensor"
            )
        tensors[key.removeprefix("module.")] = value
    return tensors


class _Ignored:
    """Stand-in for a non-tensor object of a training run (an mmengine ``MessageHub``, numpy scalars in ``meta``):
    built without running any of its code, keeps nothing."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        pass


# Top-level modules whose objects a training run stores beside the weights (mmengine's MessageHub and schedulers,
# numpy scalars and arrays in ``meta``, argparse namespaces): replaced by stand-ins without a word.
_TRAINING_RUN_MODULES = frozenset(
    {
        "mmengine",
        "mmcv",
        "mmaction",
        "mmdet",
        "numpy",
        "collections",
        "torch",
        "datetime",
        "argparse",
        "_codecs",
    }
)


def suspicious_globals(names: list[str]) -> list[str]:
    """The globals of a checkpoint that no training run stores (``builtins.eval``, ``posix.system``, ...)."""
    return [name for name in names if name.split(".", 1)[0] not in _TRAINING_RUN_MODULES]


def _load_weights_only(path: Path, trust_checkpoint: bool = False) -> Any:
    """``torch.load(weights_only=True)``; objects of classes outside torch's allow-list (mmengine 1.x checkpoints
    carry ``message_hub`` and ``param_schedulers``) are replaced by inert stand-ins instead of being refused or run.
    Globals no training run stores are refused (:class:`ConversionError`) unless ``trust_checkpoint``."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        unsafe = torch.serialization.get_unsafe_globals_in_checkpoint(path)
        if not unsafe:
            raise
    suspicious = suspicious_globals(unsafe)
    if suspicious and not trust_checkpoint:
        raise ConversionError(
            f"{path} refers to {format_keys(suspicious, 5)}, which a weights file has no reason to hold; refused "
            "(nothing in it was run). Pass --trust-checkpoint if you know where the file comes from (its objects "
            "are then replaced by inert stand-ins, still never run)"
        )
    stand_ins = [(type(name.rsplit(".", 1)[-1], (_Ignored,), {}), name) for name in unsafe]
    logger.info("%s: ignoring non-tensor objects of %s", path, ", ".join(unsafe))
    with torch.serialization.safe_globals(stand_ins):
        return torch.load(path, map_location="cpu", weights_only=True)


def convert_mmaction_state_dict(
    state_dict: dict[str, torch.Tensor], config: I3DConfig, source: str = "checkpoint"
) -> dict[str, torch.Tensor]:
    """Map an mmaction2 I3D state dict onto ``I3DForVideoClassification(config)``, checking every key and shape.

    Raises :class:`ConversionError` listing unexpected keys (non-local blocks the config does not have, say),
    missing keys and shape mismatches; ``num_batches_tracked`` may be absent (older BN layers) and is then zero.
    """
    with torch.device("meta"):
        expected = I3DForVideoClassification(config).state_dict()
    converted, unexpected, mismatched, mismatched_targets = {}, [], [], set()
    for key, tensor in state_dict.items():
        if key.startswith(_DROPPED_PREFIXES):
            continue
        new_key = mmaction_key_to_hf(key)
        if new_key is None or new_key not in expected:
            unexpected.append(key)
            continue
        if tuple(tensor.shape) != tuple(expected[new_key].shape):
            mismatched.append(
                f"{key}: checkpoint {tuple(tensor.shape)} vs config {tuple(expected[new_key].shape)}"
            )
            mismatched_targets.add(new_key)  # reported as a mismatch, not again as missing
            continue
        converted[new_key] = tensor.detach().clone().to(expected[new_key].dtype).contiguous()
    missing = []
    for key, tensor in expected.items():
        if key in converted or key in mismatched_targets:
            continue
        if key.endswith("num_batches_tracked"):
            converted[key] = torch.zeros((), dtype=tensor.dtype)
        else:
            missing.append(key)
    problems = []
    if mismatched:
        problems.append(f"{len(mismatched)} shape mismatch(es): {format_keys(mismatched, 6)}")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected key(s): {format_keys(unexpected)}")
    if missing:
        problems.append(f"{len(missing)} missing key(s): {format_keys(missing)}")
    if any(m.startswith("cls_head.fc_cls.weight") for m in mismatched):
        problems.append("for a checkpoint with N classes pass --set num_labels=N")
    if problems:
        raise ConversionError(
            f"{source} does not match the config (depth={config.depth}, base_channels={config.base_channels}, "
            f"inflate_style={config.inflate_style}, num_labels={config.num_labels}): " + "; ".join(problems)
        )
    return converted


def build_config(entry: ZooEntry, overrides: dict[str, Any] | None = None) -> I3DConfig:
    """The ``I3DConfig`` of zoo ``entry`` with Kinetics-400 label names, plus ``overrides`` (``--set`` values)."""
    if entry.model_type != "i3d":
        raise ConversionError(f"{entry.name} is not an I3D ResNet3d preset (model type {entry.model_type!r})")
    check_override_keys(overrides or {}, I3DConfig)
    kwargs: dict[str, Any] = dict(entry.config)
    kwargs.update(overrides or {})
    num_labels = int(kwargs.pop("num_labels", 400))
    if "id2label" not in kwargs:
        labels = kinetics400_labels() if num_labels == 400 else [f"LABEL_{i}" for i in range(num_labels)]
        kwargs.update(label_maps(labels))
    kwargs.setdefault("zoo_name", entry.name)
    try:
        return I3DConfig(**kwargs)
    except (TypeError, ValueError) as error:
        raise ConversionError(f"invalid config for {entry.name}: {error}") from error


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
    entry = get_entry(preset)
    if isinstance(overrides, list):
        overrides = parse_overrides(overrides)
    checkpoint = os.fspath(checkpoint)
    check_output_dir(output_dir, overwrite=overwrite, inputs=[checkpoint])  # before any download or loading
    if checkpoint.startswith(("http://", "https://")):
        checkpoint = str(download(checkpoint, progress=progress))
    config = build_config(entry, overrides)
    source_state = load_mmaction_checkpoint(checkpoint, trust_checkpoint=trust_checkpoint)
    check_finite(source_state.items(), checkpoint, allow_nonfinite)
    state_dict = convert_mmaction_state_dict(source_state, config, source=checkpoint)
    model = I3DForVideoClassification(config)
    model.load_state_dict(state_dict, strict=True)
    model.eval()

    def write_extras(folder: Path) -> None:
        save_processor(entry, folder)
        provenance = (
            f"Converted with `hf-i3d convert mmaction` from `{Path(checkpoint).name}` "
            f"(original: {entry.checkpoint_url}; {entry.source}, {entry.source_url}). Logits match mmaction2's "
            "`ResNet3d` + `I3DHead` to float tolerance (tested against fixtures generated by mmaction2 1.2.0)."
        )
        if overrides:
            provenance += f" Config overrides: {overrides}."
        write_model_card(folder, entry, extra_provenance=provenance)

    output = save_converted(model, output_dir, write_extras, overwrite=overwrite, inputs=[checkpoint])
    if push_to_hub:
        push_folder(output, push_to_hub, f"{entry.name} converted from {Path(checkpoint).name} with hf_i3d")
    return output


__all__ = [
    "convert_mmaction_checkpoint",
    "convert_mmaction_state_dict",
    "load_mmaction_checkpoint",
    "mmaction_key_to_hf",
    "build_config",
]
