"""2D -> 3D inflation: initialise an I3D ResNet3d from ImageNet 2D ResNet weights (the I3D recipe).

Follows mmaction2 ``ResNet3d.inflate_weights`` / ``_inflate_conv_params`` / ``_inflate_bn_params``: each 2D kernel is
repeated over the kT time slices and divided by kT (``w2d.unsqueeze(2).expand_as(w3d) / kT``), so a clip of identical
frames gives the 2D network's activations; BatchNorm tensors are copied; a 2D tensor whose shape does not fit is
skipped with a warning; the 2D classifier is ignored.

Two 2D layouts are understood: torchvision's ``ResNet`` (``conv1``, ``bn1``, ``layerL.B.convN``/``bnN``,
``downsample.0/1``) and transformers' ``ResNetModel`` / ``ResNetForImageClassification`` (``embedder.embedder``,
``encoder.stages.S.layers.B.layer.N``, ``shortcut``, with an optional ``resnet.`` prefix).
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field

import torch
from torch import nn

logger = logging.getLogger(__name__)

_TORCHVISION = [
    (re.compile(r"^conv1\.weight$"), "stem.conv.conv.weight"),
    (re.compile(r"^bn1\.(.+)$"), "stem.conv.norm.{0}"),
    (re.compile(r"^layer(\d+)\.(\d+)\.conv(\d)\.weight$"), "stages.{L}.layers.{1}.conv{2}.conv.weight"),
    (re.compile(r"^layer(\d+)\.(\d+)\.bn(\d)\.(.+)$"), "stages.{L}.layers.{1}.conv{2}.norm.{3}"),
    (re.compile(r"^layer(\d+)\.(\d+)\.downsample\.0\.weight$"), "stages.{L}.layers.{1}.shortcut.conv.weight"),
    (re.compile(r"^layer(\d+)\.(\d+)\.downsample\.1\.(.+)$"), "stages.{L}.layers.{1}.shortcut.norm.{2}"),
]
_TRANSFORMERS = [
    (re.compile(r"^embedder\.embedder\.convolution\.weight$"), "stem.conv.conv.weight"),
    (re.compile(r"^embedder\.embedder\.normalization\.(.+)$"), "stem.conv.norm.{0}"),
    (
        re.compile(r"^encoder\.stages\.(\d+)\.layers\.(\d+)\.layer\.(\d)\.convolution\.weight$"),
        "stages.{0}.layers.{1}.conv{N}.conv.weight",
    ),
    (
        re.compile(r"^encoder\.stages\.(\d+)\.layers\.(\d+)\.layer\.(\d)\.normalization\.(.+)$"),
        "stages.{0}.layers.{1}.conv{N}.norm.{3}",
    ),
    (
        re.compile(r"^encoder\.stages\.(\d+)\.layers\.(\d+)\.shortcut\.convolution\.weight$"),
        "stages.{0}.layers.{1}.shortcut.conv.weight",
    ),
    (
        re.compile(r"^encoder\.stages\.(\d+)\.layers\.(\d+)\.shortcut\.normalization\.(.+)$"),
        "stages.{0}.layers.{1}.shortcut.norm.{2}",
    ),
]


def map_2d_key(key: str) -> str | None:
    """The ``I3DModel`` key for a 2D ResNet key (torchvision or transformers layout), or ``None`` (e.g. ``fc``)."""
    key = key.removeprefix("module.").removeprefix("resnet.")
    for pattern, template in _TORCHVISION:
        match = pattern.match(key)
        if match:
            groups = match.groups()
            stage = int(groups[0]) - 1 if key.startswith("layer") else 0
            return template.format(*groups, L=stage)
    for pattern, template in _TRANSFORMERS:
        match = pattern.match(key)
        if match:
            groups = match.groups()
            conv_index = int(groups[2]) + 1 if ".layer." in key else 0
            return template.format(*groups, N=conv_index)
    return None


@dataclass
class InflationReport:
    """What :func:`inflate_2d_weights` did: 3D keys set, 2D keys skipped (with why), 3D keys left as they were."""

    inflated: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    not_loaded: list[str] = field(default_factory=list)


def _load_2d_state_dict(source) -> dict[str, torch.Tensor]:
    if isinstance(source, nn.Module):
        return source.state_dict()
    if isinstance(source, dict):
        return source.get("state_dict", source)
    path = os.fspath(source)
    if path.endswith(".safetensors"):
        from safetensors.torch import load_file

        return load_file(path)
    state = torch.load(path, map_location="cpu", weights_only=True)
    return state.get("state_dict", state) if isinstance(state, dict) else state


@torch.no_grad()
def inflate_2d_weights(model: nn.Module, source) -> InflationReport:
    """Initialise ``model`` (an ``I3DModel``, or a model whose ``.i3d`` is one) from a 2D ResNet.

    ``source`` is a state dict, a checkpoint path (``.pth``/``.bin``/``.safetensors``) or a 2D ``nn.Module``
    (a torchvision ``resnet50()`` or a transformers ``ResNetModel``). Returns an :class:`InflationReport`.
    """
    backbone = getattr(model, "i3d", model)
    state_3d = backbone.state_dict()
    report = InflationReport()
    for key_2d, tensor_2d in _load_2d_state_dict(source).items():
        key_3d = map_2d_key(key_2d)
        if key_3d is None:
            report.skipped.append(f"{key_2d} (no 3D counterpart)")
            continue
        if key_3d not in state_3d:
            report.skipped.append(f"{key_2d} (-> {key_3d} not in this model)")
            continue
        target = state_3d[key_3d]
        if key_3d.endswith("conv.weight"):
            if tensor_2d.dim() != 4 or target.shape[:2] + target.shape[3:] != tensor_2d.shape:
                report.skipped.append(f"{key_2d} (2D {tuple(tensor_2d.shape)} vs 3D {tuple(target.shape)})")
                logger.warning(
                    "inflation: skipped %s, shape %s does not fit %s", key_2d, tensor_2d.shape, target.shape
                )
                continue
            kernel_t = target.shape[2]
            target.copy_(tensor_2d.unsqueeze(2).expand_as(target) / kernel_t)
        else:
            if target.shape != tensor_2d.shape:
                report.skipped.append(f"{key_2d} (2D {tuple(tensor_2d.shape)} vs 3D {tuple(target.shape)})")
                logger.warning(
                    "inflation: skipped %s, shape %s does not fit %s", key_2d, tensor_2d.shape, target.shape
                )
                continue
            target.copy_(tensor_2d)
        report.inflated.append(key_3d)
    loaded = set(report.inflated)
    report.not_loaded = [k for k in state_3d if k not in loaded and not k.endswith("num_batches_tracked")]
    return report


__all__ = ["InflationReport", "inflate_2d_weights", "map_2d_key"]
