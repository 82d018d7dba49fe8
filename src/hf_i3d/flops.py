"""Counting the compute of one view: multiply-accumulates of the convolutions and the classifier.

This is the "GFLOPs" convention of fvcore / mmcv's ``get_model_complexity_info`` for convolution and linear layers
(one multiply-accumulate counts as one FLOP; BN, ReLU and pooling are left out, they add about 1%). The batched
matrix products of non-local blocks (attention weights and their use) count too, as fvcore and mmengine count them. Counting runs on
the meta device when the model is built there (``with torch.device("meta"): model = ...``), so it needs no memory
and takes milliseconds.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def count_gflops(model: nn.Module, pixel_values_shape: tuple[int, ...]) -> float:
    """GFLOPs (conv + linear + batched-matmul multiply-accumulates, in 1e9) of ``model`` on an input of
    ``pixel_values_shape``.

    The forward runs on the device of ``model``'s parameters: build the model on the meta device to count without
    computing.
    """
    total = 0

    def conv_hook(module: nn.Conv3d, inputs, output) -> None:
        nonlocal total
        kernel = math.prod(module.kernel_size) * (module.in_channels // module.groups)
        total += output.numel() * kernel

    def linear_hook(module: nn.Linear, inputs, output) -> None:
        nonlocal total
        total += output.numel() * module.in_features

    device = next(model.parameters()).device
    handles = []
    for module in model.modules():
        if isinstance(module, nn.Conv3d):
            handles.append(module.register_forward_hook(conv_hook))
        elif isinstance(module, nn.Linear):
            handles.append(module.register_forward_hook(linear_hook))
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    try:
        with torch.no_grad(), counter:
            model.eval()(torch.zeros(pixel_values_shape, device=device))
    finally:
        for handle in handles:
            handle.remove()
    # torch counts 2 FLOPs per multiply-accumulate; only the bmm of matmuls outside Linear/Conv layers is added
    total += counter.get_flop_counts().get("Global", {}).get(torch.ops.aten.bmm, 0) // 2
    return total / 1e9


def zoo_view_shape(entry) -> tuple[int, int, int, int, int]:
    """``(1, T, 3, S, S)``: one test view of zoo ``entry`` (its clip length and test crop size)."""
    return (1, entry.data.clip_len, 3, entry.data.test_crop_size, entry.data.test_crop_size)


__all__ = ["count_gflops", "zoo_view_shape"]
