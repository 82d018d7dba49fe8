"""What the converters of PyTorch ResNet3d checkpoints (mmaction2, pytorchvideo) share, written once.

- :func:`load_state_dict_file`: a pickled checkpoint read with ``torch.load(weights_only=True)``; objects a training
  run leaves beside the weights become inert stand-ins, globals no weights file holds (``builtins.eval``,
  ``posix.system``) are refused unless trusted, and the state dict must be a non-empty dict of tensors.
- :func:`map_state_dict`: a source state dict put onto ``I3DForVideoClassification(config)`` key by key, with every
  unexpected, missing and mis-shaped key named in one :class:`ConversionError`.
- :func:`convert_checkpoint_file`: output check, download, config, load, NaN/Inf check, mapping, the safe save with
  processor and model card, and the optional upload, in that order.
"""

from __future__ import annotations

import logging
import os
import pickle
from collections.abc import Callable, Mapping
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


def load_state_dict_file(
    path: str | os.PathLike,
    *,
    containers: tuple[str, ...],
    prefixes: tuple[str, ...],
    expected: str,
    trust_checkpoint: bool = False,
) -> dict[str, torch.Tensor]:
    """The tensors of a pickled checkpoint, read safely (see :func:`_load_weights_only`).

    The state dict is the value of the first of ``containers`` the file's top-level dict has, else the file itself;
    ``prefixes`` are stripped from its keys in order (``module.`` of DistributedDataParallel, ...). A missing or
    unreadable file, no state dict (``expected`` says what was looked for) or a non-tensor entry is a
    :class:`ConversionError` naming the file.
    """
    path = Path(path)
    if not path.is_file():
        raise ConversionError(f"{path}: no such checkpoint file")
    try:
        checkpoint = _load_weights_only(path, trust_checkpoint)
    except ConversionError:
        raise
    # torch.load raises many types (UnpicklingError, IndexError, RuntimeError, ...)
    except Exception as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ConversionError(f"{path} is not a readable PyTorch checkpoint ({first_line})") from error
    state_dict: Any = None
    if isinstance(checkpoint, dict):
        state_dict = next((checkpoint[key] for key in containers if key in checkpoint), checkpoint)
    if not isinstance(state_dict, dict) or not state_dict:
        raise ConversionError(f"{path} holds no state dict (expected {expected})")
    tensors = {}
    for key, value in state_dict.items():
        if not isinstance(value, torch.Tensor):
            raise ConversionError(
                f"{path}: entry {key!r} of the state dict is a {type(value).__name__}, not a tensor"
            )
        for prefix in prefixes:
            key = key.removeprefix(prefix)
        tensors[key] = value
    return tensors


def map_state_dict(
    state_dict: Mapping[str, torch.Tensor],
    config: I3DConfig,
    new_keys: Mapping[str, str | None],
    *,
    source: str,
    config_fields: tuple[str, ...],
) -> dict[str, torch.Tensor]:
    """Put ``state_dict`` onto ``I3DForVideoClassification(config)``: each key goes to ``new_keys[key]`` (``None``:
    no counterpart), every shape is checked. ``num_batches_tracked`` may be absent (older BN layers) and is then
    zero. Anything else raises one :class:`ConversionError` listing the shape mismatches (once, not again as
    missing), unexpected and missing keys, and the ``config_fields`` the checkpoint was checked against.
    """
    with torch.device("meta"):
        expected = I3DForVideoClassification(config).state_dict()
    converted, unexpected, mismatched, mismatched_targets = {}, [], [], set()
    for key, tensor in state_dict.items():
        new_key = new_keys[key]
        if new_key is None or new_key not in expected:
            unexpected.append(key)
        elif tuple(tensor.shape) != tuple(expected[new_key].shape):
            mismatched.append(
                f"{key}: checkpoint {tuple(tensor.shape)} vs config {tuple(expected[new_key].shape)}"
            )
            mismatched_targets.add(new_key)
        else:
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
    if "classifier.weight" in mismatched_targets:
        problems.append("for a checkpoint with N classes pass --set num_labels=N")
    if problems:
        checked = ", ".join(f"{name}={getattr(config, name)}" for name in config_fields)
        raise ConversionError(f"{source} does not match the config ({checked}): " + "; ".join(problems))
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


def convert_checkpoint_file(
    checkpoint: str | os.PathLike,
    preset: str,
    output_dir: str | os.PathLike,
    overrides: dict[str, Any] | list[str] | None,
    *,
    load: Callable[[str], dict[str, torch.Tensor]],
    convert: Callable[[dict[str, torch.Tensor], I3DConfig, str], dict[str, torch.Tensor]],
    command: str,
    parity: str,
    overwrite: bool = False,
    progress: bool = True,
    push_to_hub: str | None = None,
    allow_nonfinite: bool = False,
) -> Path:
    """Convert ``checkpoint`` (local path or http(s) URL) of zoo ``preset`` into ``output_dir``.

    The output path is checked before any download or loading; the weights are read with ``load(path)``, refused
    when they hold NaN or Inf (unless ``allow_nonfinite``), mapped with ``convert(state, config, source)`` and
    loaded strictly. The folder (config, weights, model code, processor config, a model card whose provenance
    names ``hf-i3d convert <command>`` and the ``parity`` sentence) is written with
    :func:`hf_i3d.convert.save_converted`, then uploaded to ``push_to_hub`` if given.
    """
    entry = get_entry(preset)
    if isinstance(overrides, list):
        overrides = parse_overrides(overrides)
    checkpoint = os.fspath(checkpoint)
    check_output_dir(output_dir, overwrite=overwrite, inputs=[checkpoint])  # before any download or loading
    if checkpoint.startswith(("http://", "https://")):
        checkpoint = str(download(checkpoint, progress=progress))
    config = build_config(entry, overrides)
    source_state = load(checkpoint)
    check_finite(source_state.items(), checkpoint, allow_nonfinite)
    state_dict = convert(source_state, config, checkpoint)
    model = I3DForVideoClassification(config)
    model.load_state_dict(state_dict, strict=True)
    model.eval()

    def write_extras(folder: Path) -> None:
        save_processor(entry, folder)
        provenance = (
            f"Converted with `hf-i3d convert {command}` from `{Path(checkpoint).name}` "
            f"(original: {entry.checkpoint_url}; {entry.source}, {entry.source_url}). {parity}"
        )
        if overrides:
            provenance += f" Config overrides: {overrides}."
        write_model_card(folder, entry, extra_provenance=provenance)

    output = save_converted(model, output_dir, write_extras, overwrite=overwrite, inputs=[checkpoint])
    if push_to_hub:
        push_folder(output, push_to_hub, f"{entry.name} converted from {Path(checkpoint).name} with hf_i3d")
    return output
