"""A fast, eval-only CPU copy of an I3D model: BatchNorm folded into the convolutions, oneDNN kernels with weights
packed once, ReLU and residual additions fused into the convolutions, channels-last 3D activations.

Why it is faster than the eager model (and mmaction2's, which runs the same PyTorch ops):

* PyTorch's eager ``conv3d`` sends batch-1 inputs with ``N*C*T*H <= 20480`` to its reference kernel
  ``slow_conv3d`` (``use_mkldnn`` in ``aten/src/ATen/native/Convolution.cpp``): for a 1x32x224x224 clip that is 23
  of the 53 convolutions of an I3D-R50 (most of stages 2-4), several times slower than oneDNN's;
* every eager oneDNN call reorders the weight into oneDNN's blocked layout; here each weight is packed once;
* BatchNorm (``y = (x - mean) / sqrt(var + eps) * gamma + beta``) is folded into the preceding convolution exactly:
  ``w' = w * gamma / sqrt(var + eps)`` per output channel and ``b' = beta - mean * gamma / sqrt(var + eps)``, and
  the ReLU (and, in ResNet blocks, the residual addition) runs inside the convolution's output loop instead of as
  separate passes over memory;
* large ``kt x 3 x 3`` convolutions (stride 1, 'same' padding) run as Winograd F(4x4, 3x3) over height and width
  (``winograd_conv3d``): 4x fewer multiply-adds, paid for by two transforms; oneDNN has no Winograd kernel on
  AVX2 and its direct kernels already run at the matrix-product rate there, so fewer FLOPs is what is left. Where it
  pays was measured per layer on 2 cores (``benchmarks/bench_winograd.py``; rule in
  ``FoldedConv3d._winograd_applies``): ``kt * C_in >= 128``, ``C_out >= 64``, maps of at least 14 x 14 and
  ``WINOGRAD_MIN_MACS`` (4e8) multiply-adds per sample. That is most of the Inception I3D's 3x3x3 work (1.5-2x on
  its large convolutions) and the I3D-R50's 1x3x3 convolutions of stages 2-3 (1.3-1.5x). On AVX-512 CPUs oneDNN's
  direct kernels are twice as fast and only the wide 28 x 28 layers keep Winograd (``WINOGRAD_MIN_WIDTH_AND_MAP``).
  The samples of a batch share the matrix products, and a sample's result does not depend on the batch it comes in,
  as with oneDNN.
  ``winograd=False`` turns it off. Its float32 rounding is a few times a direct convolution's (up to ~6e-6 of the
  output scale against ~2e-6), and it holds transformed copies of about 2.25x the input and output of a group of
  samples (at most 64 MiB) while it runs.

A convolution whose output only a ``(1, kh, kw)`` max-pool with temporal stride ``s`` reads computes only the
frames that pool keeps (``_skip_pooled_away_frames``): half of the I3D-R50 stem, whose ``pool1_stride_t=2`` drops
every other frame (1.25x -> 1.55x mmaction2 on the 1x32x224 forward on an AVX2 CPU).

On a one-frame input (8-frame clips from stage 2 on) a temporal kernel whose other taps meet only zero padding runs
as its centre slice, as ``modeling_i3d.I3DConv3d`` does. ``keep_freed_memory`` is a separate, process-wide allocator
setting that saves the page faults of fresh activation memory on every call (inference and training).

The arithmetic is the plain model's up to float rounding (``tests/test_inference.py``: float32 logits within 1e-4,
relative to the logit scale where that exceeds 1, with and without Winograd; 3.1e-5 on the full-size R50 of
``benchmarks/``). ``dtype=torch.bfloat16`` runs the convolutions in bfloat16 (faster on CPUs with AVX512-BF16/AMX, about
three significant digits); ``compile=True`` hands the folded model to ``torch.compile`` (inductor with weight
freezing), which pays only after a long first call.
"""

from __future__ import annotations

import contextlib
import copy
import ctypes
import sys
import threading
import types
import weakref
from collections import defaultdict
from dataclasses import dataclass, fields, is_dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_flatten

from .modeling_i3d import I3DBasicLayer, I3DBottleneckLayer, centre_tap, centre_tap_only
from .modeling_inception_i3d import InceptionI3DMaxPool3d, InceptionI3DUnit3D, _same_padding

__all__ = [
    "FoldedConv3d",
    "FrameMaxPool3d",
    "WINOGRAD_MIN_MACS",
    "WINOGRAD_MIN_WIDTH_AND_MAP",
    "accelerated_copy",
    "plain_forward",
    "FusedResidualBlock",
    "SameMaxPool3d",
    "keep_freed_memory",
    "optimize_for_inference",
    "winograd_conv3d",
    "winograd_weight",
]

_EVAL_ONLY = (
    "this model was made by hf_i3d.inference.optimize_for_inference: its BatchNorm layers are folded into the "
    "convolutions, so it can only run inference; train (or save) the original model instead"
)


# Winograd F(4x4, 3x3) (Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks", CVPR 2016; interpolation
# points 0, 1, -1, 2, -2 and infinity): a 6x6 input tile d and a 3x3 kernel g give the 4x4 output tile
# A^T [(G g G^T) * (B^T d B)] A, 36 multiplications instead of 144.
_WINOGRAD_BT = (
    (4, 0, -5, 0, 1, 0),
    (0, -4, -4, 1, 1, 0),
    (0, 4, -4, -1, 1, 0),
    (0, -2, -1, 2, 1, 0),
    (0, 2, -1, -2, 1, 0),
    (0, 4, 0, -5, 0, 1),
)
_WINOGRAD_G = (
    (1 / 4, 0, 0),
    (-1 / 6, -1 / 6, -1 / 6),
    (-1 / 6, 1 / 6, -1 / 6),
    (1 / 24, 1 / 12, 1 / 6),
    (1 / 24, -1 / 12, 1 / 6),
    (0, 0, 1),
)
_WINOGRAD_AT = ((1, 1, 1, 1, 1, 0), (0, 1, -1, 2, -2, 0), (0, 1, 1, 4, 4, 0), (0, 1, -1, 8, -8, 1))
_OUT_TILE, _IN_TILE = 4, 6
# Below this many multiply-adds per sample Winograd's extra passes cost more than they save (its fixed cost is about
# ten parallel regions per group of samples against oneDNN's one per call). Measured per layer on 2 AVX2 cores
# (benchmarks/bench_winograd.py, RESULTS.md 2026-12-02 session 8): 0.42-0.53 GMAC layers 1.3-1.5x faster than direct,
# 0.14 GMAC and below slower. Where other processes keep the cores busy, each parallel region can wait a scheduler
# slice: a lone 0.46 GMAC convolution in batch 1 then ran up to 3.2x slower than direct, yet whole models at this
# threshold stayed within 3% of the 3e9 it had before (samples grouped); on the idle machine they are 1-7% faster.
WINOGRAD_MIN_MACS = 400_000_000
# The least ``kt * C_in`` and map side where Winograd runs, by the CPU's vector instructions
# (``torch.backends.cpu.get_cpu_capability()``; others take the AVX2 row). On 2 AVX2 cores (session 8) it is
# faster from 128 and 14 x 14. With AVX-512 oneDNN's direct kernels run twice as fast and only the wide 28 x 28
# layers still gain (2 AVX-512 cores, 2026-12-03: Inception Mixed_3b / 3c branch 1 0.85x / 0.77x the direct time,
# Conv3d_2c 1.00x, the 14 x 14 layers 1.1-1.3x slower, the I3D-R50's 28 x 28 1x3x3 ones 1.14x slower; whole models
# within noise of all-direct, window features 2.6% faster than with the AVX2 row and nearer the plain model's,
# benchmarks/RESULTS.md).
WINOGRAD_MIN_WIDTH_AND_MAP = {"AVX2": (128, 14), "AVX512": (256, 28)}
# Transformed input and products held at once by winograd_conv3d (its samples go through in groups of this size):
# larger groups ran the 28x28 Inception layers up to 1.2x slower on 2 AVX2 cores (caches), smaller ones the
# R50's 6-view 1x3x3 layers 1.1x slower (the fixed cost per group).
_WINOGRAD_GROUP_BYTES = 64 * 2**20
# Column 1 of A^T is all ones, so a bias added to the products at point (1, 1) reaches every output pixel once.
_BIAS_POINT = 1 * _IN_TILE + 1


def _winograd_transforms(dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """B^T (x) B^T (36 x 36) and A^T (x) A^T (16 x 36): the 2-D input and output transforms as one matrix each,
    acting on a tile flattened row by row."""
    bt = torch.tensor(_WINOGRAD_BT, dtype=torch.float64)
    at = torch.tensor(_WINOGRAD_AT, dtype=torch.float64)
    return torch.kron(bt, bt).to(dtype), torch.kron(at, at).to(dtype)


def winograd_weight(weight: torch.Tensor) -> torch.Tensor:
    """The ``(36, kt, C_in, C_out)`` Winograd F(4x4, 3x3) weight ``G g G^T`` of a ``(C_out, C_in, kt, 3, 3)`` Conv3d
    weight, computed in float64 and stored in the weight's dtype."""
    g = torch.tensor(_WINOGRAD_G, dtype=torch.float64)
    out_channels, in_channels, taps = weight.shape[:3]
    transformed = torch.einsum("ak,oitkl,bl->abtio", g, weight.detach().double(), g)
    return transformed.reshape(_IN_TILE**2, taps, in_channels, out_channels).to(weight.dtype).contiguous()


def winograd_conv3d(
    hidden_state: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor,
    relu: bool = False,
    residual: torch.Tensor | None = None,
) -> torch.Tensor:
    """``relu?(conv3d(x, w, bias, padding=(kt // 2, 1, 1)) + residual?)`` for a ``kt x 3 x 3`` kernel with stride 1,
    by Winograd F(4x4, 3x3) over height and width, in channels-last 3D; ``weight`` is ``winograd_weight(w)``.

    The temporal taps stay a sum: each of the 36 transformed points is a matrix product over (frames x samples x
    tiles) rows, C_in columns and C_out outputs, accumulated over the kt frame offsets of one transformed copy of the
    input (no temporal im2col). Per output pixel that is 36 * kt * C_in / 16 multiply-adds instead of 9 * kt * C_in
    (4x fewer), plus the two transforms, each a single matrix product. The samples of a batch go through together
    (in groups of at most ``_WINOGRAD_GROUP_BYTES`` of transformed data): a handful of parallel regions per group,
    not per sample, which is what keeps it ahead of the direct kernel when other processes share the cores (per
    sample it ran 3x slower than direct there, benchmarks/RESULTS.md). A sample's rows, columns and sums are the
    same whatever else is in the group, so its output does not depend on the batch it comes in (tested bit for bit,
    as with oneDNN's direct kernel: FVD merged over processes equals FVD in one process). Float32 rounding grows a
    few times over the direct convolution's (up to ~6e-6 of the output scale instead of ~2e-6), from transform
    coefficients up to 8.
    """
    batch, channels, frames, height, width = hidden_state.shape
    taps, out_channels = weight.shape[1], weight.shape[-1]
    rows = -(-height // _OUT_TILE) * -(-width // _OUT_TILE)
    per_sample = 4 * _IN_TILE**2 * rows * ((frames + taps - 1) * channels + frames * out_channels)
    group = max(1, _WINOGRAD_GROUP_BYTES // per_sample)
    output = hidden_state.new_empty(batch, frames, height, width, out_channels)
    for first in range(0, batch, group):
        last = min(first + group, batch)
        _winograd_group(
            hidden_state[first:last],
            weight,
            bias,
            relu,
            None if residual is None else residual[first:last],
            output[first:last],
        )
    return output.permute(0, 4, 1, 2, 3)


def _winograd_group(
    hidden_state: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor,
    relu: bool,
    residual: torch.Tensor | None,
    output: torch.Tensor,
) -> None:
    """``winograd_conv3d`` of ``(N, C, T, H, W)`` samples into ``output`` ``(N, T, H, W, C_out)``."""
    m, a = _OUT_TILE, _IN_TILE
    samples, channels, frames, height, width = hidden_state.shape
    taps, out_channels = weight.shape[1], weight.shape[-1]
    tiles_h, tiles_w = -(-height // m), -(-width // m)
    padded_frames = frames + taps - 1
    input_transform, output_transform = _winograd_transforms(hidden_state.dtype)
    # zero-padded input; the tiles below put frames outermost (then samples), so that a frame offset is a row offset
    # of the matrix products for every sample at once
    padded = hidden_state.new_zeros(samples, padded_frames, tiles_h * m + 2, tiles_w * m + 2, channels)
    start = taps // 2
    padded[:, start : start + frames, 1 : height + 1, 1 : width + 1] = hidden_state.permute(0, 2, 3, 4, 1)
    s = padded.stride()
    tiles = padded.as_strided(
        (a, a, padded_frames, samples, tiles_h, tiles_w, channels),
        (s[2], s[3], s[1], s[0], m * s[2], m * s[3], s[4]),
    ).contiguous()  # the 6x6 overlapping input tiles, position in the tile outermost
    del padded
    rows = samples * tiles_h * tiles_w  # per frame
    transformed = torch.mm(input_transform, tiles.view(a * a, -1)).view(a * a, padded_frames * rows, channels)
    del tiles
    products = torch.bmm(transformed[:, : frames * rows], weight[:, 0])
    for offset in range(1, taps):
        products.baddbmm_(transformed[:, offset * rows : (offset + frames) * rows], weight[:, offset])
    del transformed
    products[_BIAS_POINT] += bias
    out_tiles = (
        torch.mm(output_transform, products.view(a * a, -1))
        .view(m, m, frames, samples, tiles_h, tiles_w, out_channels)
        .permute(3, 2, 4, 0, 5, 1, 6)
    )
    del products
    exact = tiles_h * m == height and tiles_w * m == width
    full = output if exact else hidden_state.new_empty(samples, frames, tiles_h * m, tiles_w * m, out_channels)
    target = full.view(samples, frames, tiles_h, m, tiles_w, m, out_channels)
    if relu and residual is None:
        torch.clamp_min(out_tiles, 0, out=target)
    else:
        target.copy_(out_tiles)
    del out_tiles
    if not exact:
        output.copy_(full[:, :, :height, :width])
    if residual is not None:
        output.add_(residual.permute(0, 2, 3, 4, 1))
        if relu:
            output.relu_()


class FoldedConv3d(nn.Module):
    """An eval-only Conv3d with a bias, optionally followed by a residual addition and a ReLU, in one kernel.

    ``forward(x, residual=None)`` returns ``relu?(conv3d(x, weight, bias) + residual?)``. On CPU it calls oneDNN's
    fused convolution (``torch.ops.mkldnn._convolution_pointwise``, what inductor emits for the same pattern) with
    the weight packed on the first call, in channels-last 3D; elsewhere (or with ``use_onednn=False``, which
    ``torch.compile`` needs) it runs ``F.conv3d`` and the pointwise ops.
    """

    def __init__(
        self,
        weight: torch.Tensor,
        bias: torch.Tensor,
        stride: tuple[int, ...],
        padding: tuple[int, ...],
        dilation: tuple[int, ...],
        groups: int,
        relu: bool = False,
        channels_last: bool = True,
        dtype: torch.dtype | None = None,
        use_onednn: bool = True,
        winograd: bool = False,
    ):
        super().__init__()
        dtype = dtype or weight.dtype
        memory_format = torch.channels_last_3d if channels_last else torch.contiguous_format
        self.register_buffer("weight", weight.detach().to(dtype).contiguous(memory_format=memory_format))
        self.register_buffer("bias", bias.detach().to(dtype))
        self.stride, self.padding, self.dilation = list(stride), list(padding), list(dilation)
        self.groups = groups
        self.relu = relu
        self.channels_last = channels_last
        # oneDNN computes in float32, and in bfloat16 only on CPUs with the instructions for it (AVX512-BW/VL/DQ or
        # AVX-NE-CONVERT); elsewhere bfloat16 convolutions run as F.conv3d
        self.use_onednn = use_onednn and (
            dtype == torch.float32
            or (dtype == torch.bfloat16 and torch.ops.mkldnn._is_mkldnn_bf16_supported())
        )
        # Winograd F(4x4, 3x3) for the convolutions where it is faster (``_winograd_applies``), float32 only
        self.winograd = winograd and self.use_onednn and dtype == torch.float32
        self._packed: dict | None = None

    def extra_repr(self) -> str:
        out_channels, in_channels, *kernel = self.weight.shape
        return (
            f"{in_channels * self.groups}, {out_channels}, kernel_size={tuple(kernel)}, stride={tuple(self.stride)}, "
            f"padding={tuple(self.padding)}, relu={self.relu}, dtype={self.weight.dtype}, onednn={self.use_onednn}"
            + (", winograd=True" if self.winograd else "")
        )

    def train(self, mode: bool = True) -> FoldedConv3d:
        if mode:
            raise RuntimeError(_EVAL_ONLY)
        return super().train(False)

    def _apply(self, fn, recurse=True):
        self._packed = None  # .to(...) and friends invalidate the packed copy
        return super()._apply(fn, recurse)

    def __deepcopy__(self, memo):
        packed, self._packed = self._packed, None
        try:
            clone = copy.copy(self)
            clone.__dict__ = copy.deepcopy(self.__dict__, memo)
        finally:
            self._packed = packed
        return clone

    def _centre_only(self, hidden_state: torch.Tensor) -> bool:
        """On a one-frame input an odd temporal kernel with 'same' temporal padding reads data with its centre tap
        only (the rest meet zero padding): run it as a 1-frame kernel (``modeling_i3d.I3DConv3d`` does the same)."""
        return centre_tap_only(
            hidden_state.shape[2], self.weight.shape[2], self.stride[0], self.padding[0], self.dilation[0]
        )

    def _weight_and_padding(self, centre: bool) -> tuple[torch.Tensor, list[int]]:
        if not centre:
            return self.weight, self.padding
        weight, padding = centre_tap(self.weight, self.padding)
        return weight, list(padding)

    def _onednn_weight(self, sizes: list[int], centre: bool) -> tuple[torch.Tensor, list[int]]:
        # oneDNN's blocked layout for this weight, made once per kernel (it is valid for any input shape).
        if self._packed is None:
            self._packed = {}
        weight, padding = self._weight_and_padding(centre)
        if centre not in self._packed:
            self._packed[centre] = torch._C._nn.mkldnn_reorder_conv3d_weight(
                weight.contiguous().to_mkldnn(), padding, self.stride, self.dilation, self.groups, sizes
            )
        return self._packed[centre], padding

    def _winograd_applies(self, hidden_state: torch.Tensor, weight: torch.Tensor, padding: list[int]) -> bool:
        """Whether this call runs as Winograd F(4x4, 3x3) (``winograd_conv3d``): a ``kt x 3 x 3`` kernel with stride
        1, no dilation or groups and 'same' padding, where it measured faster (``benchmarks/bench_winograd.py``): at
        least 128 input channels times temporal taps (thinner matrix products lose), 64 output channels, 14 x 14
        pixels (4x4 tiles waste 31% of a 7x7 map) and ``WINOGRAD_MIN_MACS`` multiply-adds per sample (per sample, so that
        the batch size never changes which arithmetic a sample gets, nor its result). With AVX-512, 256 and 28 x 28
        (``WINOGRAD_MIN_WIDTH_AND_MAP``)."""
        out_channels, _, kt, kh, kw = weight.shape
        _, channels, frames, height, width = hidden_state.shape
        min_width, min_map = WINOGRAD_MIN_WIDTH_AND_MAP.get(
            torch.backends.cpu.get_cpu_capability(), WINOGRAD_MIN_WIDTH_AND_MAP["AVX2"]
        )
        return (
            self.winograd
            and (kh, kw) == (3, 3)
            and kt % 2 == 1
            and list(padding) == [kt // 2, 1, 1]
            and self.groups == 1
            and all(s == 1 for s in self.stride)
            and all(d == 1 for d in self.dilation)
            and kt * channels >= min_width
            and out_channels >= 64
            and min(height, width) >= min_map
            and frames * height * width * out_channels * channels * kt * 9 >= WINOGRAD_MIN_MACS
        )

    def _winograd_weight(self, weight: torch.Tensor, centre: bool) -> torch.Tensor:
        # the transformed weight (G g G^T), made once per kernel like the packed oneDNN weight
        if self._packed is None:
            self._packed = {}
        key = ("winograd", centre)
        if key not in self._packed:
            self._packed[key] = winograd_weight(weight)
        return self._packed[key]

    def forward(self, hidden_state: torch.Tensor, residual: torch.Tensor | None = None) -> torch.Tensor:
        hidden_state = hidden_state.to(self.weight.dtype)
        if self.channels_last:
            hidden_state = hidden_state.contiguous(memory_format=torch.channels_last_3d)
        centre = self._centre_only(hidden_state)
        if self.winograd and hidden_state.device.type == "cpu":
            weight, padding = self._weight_and_padding(centre)
            if self._winograd_applies(hidden_state, weight, padding):
                return winograd_conv3d(
                    hidden_state, self._winograd_weight(weight, centre), self.bias, relu=self.relu, residual=residual
                )
        if self.use_onednn and hidden_state.device.type == "cpu":
            weight, padding = self._onednn_weight(list(hidden_state.shape), centre)
            activation = "relu" if self.relu else "none"
            args = (self.bias, padding, self.stride, self.dilation, self.groups)
            if residual is None:
                return torch.ops.mkldnn._convolution_pointwise(
                    hidden_state, weight, *args, activation, [], ""
                )
            residual = residual.to(self.weight.dtype).contiguous(memory_format=torch.channels_last_3d)
            return torch.ops.mkldnn._convolution_pointwise.binary(
                hidden_state, residual, weight, *args, "add", 1.0, activation, [], ""
            )
        weight, padding = self._weight_and_padding(centre)
        output = F.conv3d(hidden_state, weight, self.bias, self.stride, padding, self.dilation, self.groups)
        if residual is not None:
            output = output + residual
        return F.relu(output) if self.relu else output


class FusedResidualBlock(nn.Module):
    """An I3D basic or bottleneck block after folding: ``relu(conv_n(...conv_1(x)) + shortcut(x))`` with the
    addition and the final ReLU inside the last convolution (``I3DBasicLayer`` / ``I3DBottleneckLayer.forward``)."""

    def __init__(self, convs: list[FoldedConv3d], shortcut: FoldedConv3d | None):
        super().__init__()
        self.convs = nn.ModuleList(convs)
        self.shortcut = shortcut

    def train(self, mode: bool = True) -> FusedResidualBlock:
        if mode:
            raise RuntimeError(_EVAL_ONLY)
        return super().train(False)

    def forward(self, hidden_state: torch.Tensor) -> torch.Tensor:
        residual = hidden_state if self.shortcut is None else self.shortcut(hidden_state)
        for conv in self.convs[:-1]:
            hidden_state = conv(hidden_state)
        return self.convs[-1](hidden_state, residual=residual)


class SameMaxPool3d(nn.Module):
    """TF 'SAME' max-pool (``InceptionI3DMaxPool3d``) without the padded copy of the input.

    SAME puts ``before = total // 2`` cells in front and the rest behind; ``max_pool3d`` treats its own padding as
    -inf and, with ``ceil_mode``, lets the last window run past the end, which is the same as -inf cells behind. So
    ``max_pool3d(padding=before, ceil_mode=True)`` computes SAME exactly whenever it gives SAME's output size
    ``ceil(n / stride)`` (checked per call); otherwise this falls back to ``F.pad`` with -inf.
    """

    def __init__(self, kernel_size: tuple[int, int, int], stride: tuple[int, int, int]):
        super().__init__()
        self.kernel_size, self.stride = tuple(kernel_size), tuple(stride)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding='SAME'"

    def forward(self, hidden_state: torch.Tensor) -> torch.Tensor:
        sizes = tuple(hidden_state.shape[-3:])
        pads = _same_padding(sizes, self.kernel_size, self.stride)  # F.pad order: last dimension first
        before = pads[0::2][::-1]
        if all(2 * b <= k for b, k in zip(before, self.kernel_size)) and all(
            _ceil_mode_size(n, k, s, b) == -(-n // s)
            for n, k, s, b in zip(sizes, self.kernel_size, self.stride, before)
        ):
            return F.max_pool3d(hidden_state, self.kernel_size, self.stride, padding=before, ceil_mode=True)
        hidden_state = F.pad(hidden_state, pads, value=float("-inf"))
        return F.max_pool3d(hidden_state, self.kernel_size, self.stride)


class FrameMaxPool3d(nn.Module):
    """``nn.MaxPool3d((k, 1, 1), (k, 1, 1))`` (the I3D-R50's ``pool2``: the larger of each pair of frames) as
    elementwise maxima of frame-strided views: the same numbers (NaN included), 3x faster than ``max_pool3d`` on
    channels-last 3D on CPU (44 ms against 127 ms on 6 views of 256x8x64x64, AVX2, 2 threads)."""

    def __init__(self, frames: int):
        super().__init__()
        self.frames = frames

    def extra_repr(self) -> str:
        return f"kernel_size=({self.frames}, 1, 1), stride=({self.frames}, 1, 1)"

    def forward(self, hidden_state: torch.Tensor) -> torch.Tensor:
        k = self.frames
        end = hidden_state.shape[2] // k * k  # floor mode: trailing frames outside a full window are dropped
        if end == 0:  # fewer frames than one window: max_pool3d's own error
            return F.max_pool3d(hidden_state, (k, 1, 1), (k, 1, 1))
        output = torch.maximum(hidden_state[:, :, 0:end:k], hidden_state[:, :, 1:end:k])
        for offset in range(2, k):
            torch.maximum(output, hidden_state[:, :, offset:end:k], out=output)
        return output


def _ceil_mode_size(size: int, kernel: int, stride: int, padding: int) -> int:
    """Output size of a ceil-mode pooling (``pooling_output_shape`` in ATen ``Pool.h``): the last window must start
    inside the input or its front padding."""
    out = -(-(size + 2 * padding - kernel) // stride) + 1
    if (out - 1) * stride >= size + padding:
        out -= 1
    return out


@dataclass
class _Call:
    """One call of a module during the tracing forward: its first input, its output and the op indices it spans."""

    input: torch.Tensor
    output: torch.Tensor
    first_op: int
    end_op: int


class _OpRecorder(TorchFunctionMode):
    """Numbers every torch op that returns a tensor and records which ops read each tensor (by identity)."""

    def __init__(self):
        super().__init__()
        self.num_ops = 0
        self.readers: dict[int, list[int]] = defaultdict(list)
        self.alive: list = []  # keep every seen tensor alive, so that ids stay unique

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        result = func(*args, **kwargs)
        if any(isinstance(leaf, torch.Tensor) for leaf in tree_flatten(result)[0]):
            for leaf in tree_flatten((args, kwargs))[0]:
                if isinstance(leaf, torch.Tensor):
                    self.readers[id(leaf)].append(self.num_ops)
            self.alive.append((args, kwargs, result))
            self.num_ops += 1
        return result


def _trace_calls(
    model: nn.Module, example: torch.Tensor, kinds: tuple[type, ...]
) -> tuple[dict[str, list[_Call]], _OpRecorder]:
    """Run ``model`` once on a meta-device ``example`` (no arithmetic, no copy of the weights) and record every call of
    the modules of the given kinds plus which ops read which tensor."""
    recorder = _OpRecorder()
    calls: dict[str, list[_Call]] = defaultdict(list)
    handles = []
    starts: dict[str, int] = {}
    for name, module in model.named_modules():
        if not isinstance(module, kinds):
            continue

        def pre_hook(module, args, name=name):
            starts[name] = recorder.num_ops

        def hook(module, args, output, name=name):
            calls[name].append(_Call(args[0], output, starts[name], recorder.num_ops))

        handles += [module.register_forward_pre_hook(pre_hook), module.register_forward_hook(hook)]
    state = {
        name: torch.empty_like(tensor, device="meta")
        for name, tensor in list(model.named_parameters()) + list(model.named_buffers())
    }
    try:
        with torch.no_grad(), recorder:
            torch.func.functional_call(model, state, (example,), strict=False)
    finally:
        for handle in handles:
            handle.remove()
    return calls, recorder


def _only_read_by(tensor: torch.Tensor, call: _Call, recorder: _OpRecorder) -> bool:
    """True when every op that reads ``tensor`` runs inside ``call``, or after it when ``call`` worked in place (an
    in-place ReLU returns its input, so later readers see the ReLU's result)."""
    for op in recorder.readers[id(tensor)]:
        inside = call.first_op <= op < call.end_op
        after_in_place = op >= call.end_op and call.output is tensor
        if not (inside or after_in_place):
            return False
    return True


def _fold(conv: nn.Conv3d, norm: nn.BatchNorm3d | None) -> tuple[torch.Tensor, torch.Tensor]:
    """The folded weight and bias in float64 arithmetic: ``w * s`` and ``(b - mean) * s + beta`` with
    ``s = gamma / sqrt(var + eps)`` (``gamma`` is 1 for a BatchNorm without scale, as in DeepMind's ``Unit3D``)."""
    weight = conv.weight.detach().double()
    bias = conv.bias.detach().double() if conv.bias is not None else weight.new_zeros(weight.shape[0])
    if norm is None:
        return weight, bias
    scale = (norm.running_var.double() + norm.eps).rsqrt()
    if norm.weight is not None:
        scale = scale * norm.weight.detach().double()
    shift = -norm.running_mean.double() * scale
    if norm.bias is not None:
        shift = shift + norm.bias.detach().double()
    return weight * scale.view(-1, 1, 1, 1, 1), bias * scale + shift


def _set_submodule(model: nn.Module, name: str, module: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent_name) if parent_name else model, child, module)


def _foldable(norm: nn.Module) -> bool:
    # Without running statistics a BatchNorm normalises with batch statistics even in eval mode.
    return isinstance(norm, nn.BatchNorm3d) and norm.running_mean is not None and norm.running_var is not None


def _example_input(model: nn.Module, example_shape: tuple[int, ...] | None) -> torch.Tensor:
    if example_shape is None:
        config = getattr(model, "config", None)
        try:
            size = config.image_size
            example_shape = (1, config.num_frames, config.num_channels, size, size)
        except AttributeError as error:
            raise ValueError(
                f"optimize_for_inference needs example_shape for a {type(model).__name__} without "
                "config.num_frames / num_channels / image_size"
            ) from error
    return torch.empty(tuple(example_shape), device="meta")


def _to_float32(output):
    """Cast the floating-point tensors of a model output (a ``ModelOutput``, tuple or tensor) to float32."""
    if isinstance(output, torch.Tensor):
        return output.float() if output.is_floating_point() else output
    if isinstance(output, tuple):
        return type(output)(_to_float32(value) for value in output)
    if is_dataclass(output):
        for field in fields(output):
            value = getattr(output, field.name)
            if value is not None:
                setattr(output, field.name, _to_float32(value))
        return output
    return output


def optimize_for_inference(
    model: nn.Module,
    *,
    fold_bn: bool = True,
    channels_last: bool = True,
    fuse: bool = True,
    compile: bool = False,
    dtype: torch.dtype | None = None,
    example_shape: tuple[int, ...] | None = None,
    winograd: bool = True,
) -> nn.Module:
    """An eval-only copy of ``model`` (an I3D or Inception I3D model, or any module built from Conv3d -> BatchNorm3d
    -> ReLU chains) that computes the same outputs faster on CPU. ``model`` itself is not changed.

    Args:
        fold_bn: fold every eval-mode BatchNorm3d into the Conv3d that feeds it (and only it).
        channels_last: keep activations in channels-last 3D (what oneDNN computes in; the outputs are equal).
        fuse: run convolutions through oneDNN with packed weights and the following ReLU (and, in I3D ResNet
            blocks, the residual addition and ReLU) fused in; off, convolutions are plain ``F.conv3d``.
        compile: ``torch.compile`` the result (inductor with weight freezing; call it under ``torch.inference_mode``).
            Implies plain convolutions, which inductor packs and fuses itself. The first call compiles (minutes).
        dtype: ``torch.bfloat16`` runs the convolutions and the classifier in bfloat16 under CPU autocast and returns
            float32 outputs (about 3 significant digits); ``None`` keeps float32.
        example_shape: input shape for the one meta-device forward that finds the Conv3d -> BatchNorm3d -> ReLU
            chains; defaults to ``(1, config.num_frames, config.num_channels, config.image_size, config.image_size)``.
        winograd: run the large stride-1 ``kt x 3 x 3`` convolutions as Winograd F(4x4, 3x3) where that measured
            faster (module docstring; float32 oneDNN path only); ``False``: every convolution direct.

    The copy refuses ``.train()`` and ``save_pretrained`` (its state dict has folded convolutions, no BatchNorm).
    A Conv3d is folded only when the tracing forward shows its output read by the BatchNorm alone; a ReLU is fused
    only when it alone reads that result (or works in place).
    """
    if dtype not in (None, torch.float32, torch.bfloat16):
        raise ValueError(
            f"optimize_for_inference: dtype must be None, torch.float32 or torch.bfloat16, got {dtype}"
        )
    if dtype == torch.float32:
        dtype = None
    use_onednn = fuse and not compile and torch.backends.mkldnn.is_available()
    model = copy.deepcopy(model).eval()
    for param in model.parameters():
        param.requires_grad_(False)

    calls, recorder = _trace_calls(
        model, _example_input(model, example_shape), (nn.Conv3d, nn.BatchNorm3d, nn.ReLU, nn.MaxPool3d)
    )
    modules = dict(model.named_modules())
    # The first traced module called (once) on each tensor, by the identity of that tensor. An in-place ReLU
    # returns its input, so the next layer reads the same tensor: the ReLU, which finished first, is kept.
    reader_of: dict[int, str] = {}
    for name, module_calls in calls.items():
        if len(module_calls) == 1:
            reader_of.setdefault(id(module_calls[0].input), name)

    # the tensor at the end of each folded chain, with the op index where that chain ended
    folded_by_result: dict[int, tuple[FoldedConv3d, torch.Tensor, int]] = {}
    for name, module_calls in calls.items():
        conv = modules[name]
        if not isinstance(conv, nn.Conv3d) or len(module_calls) != 1 or conv.padding_mode != "zeros":
            continue
        if isinstance(conv.padding, str):  # 'same' / 'valid': resolve from the traced shapes
            continue
        call = module_calls[0]
        result, norm = call.output, None
        norm_name = reader_of.get(id(result))
        if fold_bn and norm_name is not None and _foldable(modules[norm_name]):
            norm_call = calls[norm_name][0]
            if _only_read_by(result, norm_call, recorder):
                norm, result = modules[norm_name], norm_call.output
        chain_end = (norm_call if norm is not None else call).end_op
        relu_name = reader_of.get(id(result))
        relu = False
        if use_onednn and relu_name is not None and isinstance(modules[relu_name], nn.ReLU):
            relu_call = calls[relu_name][0]
            relu = _only_read_by(result, relu_call, recorder)
        weight, bias = _fold(conv, norm)
        folded = FoldedConv3d(
            weight.to(conv.weight.dtype),
            bias.to(conv.weight.dtype),
            conv.stride,
            conv.padding,
            conv.dilation,
            conv.groups,
            relu=relu,
            channels_last=channels_last,
            dtype=dtype,
            use_onednn=use_onednn,
            winograd=winograd,
        ).to(conv.weight.device)
        _set_submodule(model, name, folded)
        if norm is not None:
            _set_submodule(model, norm_name, nn.Identity())
        if relu:
            _set_submodule(model, relu_name, nn.Identity())
            result, chain_end = relu_call.output, relu_call.end_op
        folded_by_result[id(result)] = (folded, result, chain_end)

    if use_onednn:
        _skip_pooled_away_frames(model, calls, recorder, folded_by_result)
        _frame_max_pools(model)

    if use_onednn and fold_bn:
        _fuse_residual_blocks(model)
        _drop_static_same_padding(model)

    model.train = types.MethodType(_refuse_train, model)
    if hasattr(model, "save_pretrained"):
        model.save_pretrained = types.MethodType(_refuse_save, model)
    if dtype is not None:
        model.forward = _autocast_forward(model.forward, dtype)
    if compile:
        model.compile(options={"freezing": True})
    for module in model.modules():  # its sub-models (the backbone of a classifier) are eval-only copies too
        if hasattr(module, "inference_accelerator"):
            _OPTIMIZED.add(module)
    return model


# Models made by optimize_for_inference (never optimised again), and the cached fast copy of each model that
# ``accelerated_copy`` served, with the identity and version of every tensor it was made from.
_OPTIMIZED: weakref.WeakSet[nn.Module] = weakref.WeakSet()
_ACCELERATED: weakref.WeakKeyDictionary[nn.Module, tuple[tuple, nn.Module]] = weakref.WeakKeyDictionary()


_PLAIN = threading.local()


@contextlib.contextmanager
def plain_forward():
    """Within this block (in this thread) models run their plain computation in eval mode too, e.g. to compare
    with the fast path or to rule it out while debugging."""
    _PLAIN.depth = getattr(_PLAIN, "depth", 0) + 1
    try:
        yield
    finally:
        _PLAIN.depth -= 1


def _needs_plain_forward(model: nn.Module) -> bool:
    """Whether a forward hook would run (global, or on ``model`` or one of its modules) or a module is in training
    mode (e.g. dropout switched on alone): both need the plain layers to run."""
    if nn.modules.module._global_forward_hooks or nn.modules.module._global_forward_pre_hooks:
        return True
    return any(
        module.training or module._forward_hooks or module._forward_pre_hooks for module in model.modules()
    )


def accelerated_copy(model: nn.Module) -> nn.Module | None:
    """The :func:`optimize_for_inference` copy of ``model`` that its eval-mode, no-grad ``forward`` runs through (the
    models' ``inference_accelerator``, installed by ``hf_i3d``), or None where the plain computation should run.

    Only float32 CPU models are accelerated (oneDNN is a CPU library; other dtypes and devices keep their plain
    path). The copy shares ``model``'s config, so a setting changed later (``config.max_views_per_batch``) applies
    to it. The copy is made on the first such call and reused until a parameter or buffer of ``model`` changes: a
    new tensor, an in-place update (``load_state_dict``, an optimizer step) or a move to another device or dtype
    makes a fresh copy, so the fast path never serves stale weights. A model with forward hooks (on itself or any
    layer, or global ones) or a module in training mode runs plain, so every hook sees its layer run and a layer
    switched to training alone (dropout for MC sampling, say) acts as it should.
    """
    if model in _OPTIMIZED or getattr(_PLAIN, "depth", 0):
        return None
    if _needs_plain_forward(model):
        return None
    tensors = [*model.parameters(), *model.buffers()]
    if not tensors or any(
        t.device.type != "cpu" or (t.is_floating_point() and t.dtype != torch.float32) for t in tensors
    ):
        return None
    try:
        key = tuple((t.data_ptr(), t._version) for t in tensors)
    except RuntimeError:  # tensors made under inference_mode track no version: stay exact, run the plain path
        return None
    cached = _ACCELERATED.get(model)
    if cached is not None and cached[0] == key:
        return cached[1]
    _ACCELERATED.pop(model, None)  # release the stale copy before making its successor
    fast = optimize_for_inference(model)
    originals = dict(model.named_modules())
    for name, module in fast.named_modules():  # settings read at run time (max_views_per_batch) stay the model's
        if hasattr(module, "config") and hasattr(originals.get(name), "config"):
            module.config = originals[name].config
    _ACCELERATED[model] = (key, fast)
    return fast


def _skip_pooled_away_frames(
    model: nn.Module,
    calls: dict[str, list[_Call]],
    recorder: _OpRecorder,
    folded_by_result: dict[int, tuple[FoldedConv3d, torch.Tensor, int]],
) -> None:
    """Compute only the frames a following max-pool keeps: a ``(1, kh, kw)`` max-pool with temporal stride ``s``
    reads frames 0, s, 2s, ... of its input and nothing else, so the folded convolution that alone feeds it (with
    its ReLU) can take temporal stride ``stride_t * s`` and the pool stride 1 in time. Exact (each kept frame is the
    same sum), and half the work of the I3D-R50 stem (``pool1_stride_t=2``: mmaction2 computes 16 frames at
    1x32x224 and pools 8 of them away). Eval only: in training, BatchNorm's batch statistics read every frame."""
    modules = dict(model.named_modules())
    for name, pool_calls in calls.items():
        pool = modules[name]
        if type(pool) is not nn.MaxPool3d or len(pool_calls) != 1:
            continue
        pool_call = pool_calls[0]
        if id(pool_call.input) not in folded_by_result:
            continue
        folded, result, chain_end = folded_by_result[id(pool_call.input)]
        kernel, stride = _triple(pool.kernel_size), _triple(pool.stride)
        padding, dilation = _triple(pool.padding), _triple(pool.dilation)
        if kernel[0] != 1 or padding[0] != 0 or stride[0] == 1 or pool.ceil_mode or pool.return_indices:
            continue
        later_readers = [op for op in recorder.readers[id(result)] if op >= chain_end]
        if not all(pool_call.first_op <= op < pool_call.end_op for op in later_readers):
            continue  # something else reads the frames the pool skips
        folded.stride = [folded.stride[0] * stride[0], *folded.stride[1:]]
        folded._packed = None
        _set_submodule(model, name, nn.MaxPool3d(kernel, (1, *stride[1:]), padding, dilation))


def _frame_max_pools(model: nn.Module) -> None:
    """Replace each ``nn.MaxPool3d`` over non-overlapping groups of frames (kernel = stride = ``(k, 1, 1)``, k > 1,
    no padding, dilation or ceil mode) by a :class:`FrameMaxPool3d`."""
    for name, pool in list(model.named_modules()):
        if type(pool) is not nn.MaxPool3d or pool.ceil_mode or pool.return_indices:
            continue
        kernel, stride = _triple(pool.kernel_size), _triple(pool.stride)
        if (
            kernel[0] > 1
            and kernel == stride
            and kernel[1:] == (1, 1)
            and _triple(pool.padding) == (0, 0, 0)
            and _triple(pool.dilation) == (1, 1, 1)
        ):
            _set_submodule(model, name, FrameMaxPool3d(kernel[0]))


def _triple(value: int | tuple[int, ...]) -> tuple[int, int, int]:
    return tuple(value) if isinstance(value, (tuple, list)) else (value, value, value)


def _fuse_residual_blocks(model: nn.Module) -> None:
    """Replace each fully folded ``I3DBasicLayer`` / ``I3DBottleneckLayer`` by a ``FusedResidualBlock``."""
    for name, block in list(model.named_modules()):
        if not isinstance(block, (I3DBasicLayer, I3DBottleneckLayer)):
            continue
        if getattr(block, "non_local", None) is not None:  # a non-local block follows the residual sum: keep it
            continue
        layers = [block.conv1, block.conv2] + ([block.conv3] if isinstance(block, I3DBottleneckLayer) else [])
        if block.shortcut is not None:
            layers.append(block.shortcut)
        if not all(
            isinstance(layer.conv, FoldedConv3d)
            and isinstance(layer.norm, nn.Identity)
            and isinstance(layer.activation, nn.Identity)
            for layer in layers
        ):
            continue
        convs = [layer.conv for layer in layers[: 3 if isinstance(block, I3DBottleneckLayer) else 2]]
        last = convs[-1]
        if last.relu:  # the block's last conv layer has no activation of its own
            continue
        last.relu = True
        _set_submodule(
            model, name, FusedResidualBlock(convs, None if block.shortcut is None else block.shortcut.conv)
        )


def _drop_static_same_padding(model: nn.Module) -> None:
    """Let Inception layers pad inside the kernel instead of through a padded copy (``F.pad``).

    TF 'SAME' padding (``InceptionI3DUnit3D``) depends on the input size only through the stride: with stride 1 and
    an odd kernel it is ``(k - 1) / 2`` on both sides of every dimension, which the convolution's own zero padding
    gives exactly. The strided stem convolution keeps its ``F.pad``; max-pools become ``SameMaxPool3d``.
    """
    for name, module in list(model.named_modules()):
        if isinstance(module, InceptionI3DMaxPool3d):
            _set_submodule(model, name, SameMaxPool3d(module.kernel_size, module.stride))
            continue
        static = all(s == 1 for s in getattr(module, "stride", (0,))) and all(
            k % 2 == 1 for k in getattr(module, "kernel_size", (0,))
        )
        if not static:
            continue
        padding = [(k - 1) // 2 for k in module.kernel_size]
        if isinstance(module, InceptionI3DUnit3D):
            folded = module.conv
            if not (isinstance(folded, FoldedConv3d) and folded.relu and isinstance(module.bn, nn.Identity)):
                continue
            if not isinstance(module.activation, nn.Identity) or any(folded.padding):
                continue
            folded.padding = padding
            folded._packed = None
            _set_submodule(model, name, folded)


def _refuse_train(self: nn.Module, mode: bool = True) -> nn.Module:
    if mode:
        raise RuntimeError(_EVAL_ONLY)
    return nn.Module.train(self, False)


def _refuse_save(self: nn.Module, *args, **kwargs) -> None:
    raise RuntimeError(_EVAL_ONLY)


def _autocast_forward(forward, dtype: torch.dtype):
    def autocast_forward(*args, **kwargs):
        with torch.autocast("cpu", dtype=dtype):
            output = forward(*args, **kwargs)
        return _to_float32(output)

    return autocast_forward


# glibc mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4


def keep_freed_memory() -> bool:
    """Keep the memory that freed tensors return inside this process (glibc ``mallopt``), for reuse.

    By default glibc hands every large block (activations, gradients) straight back to the kernel when a tensor is
    freed, so the next forward pass or training step maps fresh pages, which the kernel zeroes and faults in one
    4 KiB page at a time: about 20,000 page faults per I3D-R50 training step at 2x8x112x112. With large blocks
    served from the heap (``M_MMAP_MAX = 0``) and the heap never trimmed (``M_TRIM_THRESHOLD``), repeated calls of
    the same sizes reuse the same pages, like PyTorch's caching allocator on GPUs. The numbers computed do not
    change. Process-wide and for the life of the process: resident memory stays at its peak. Returns whether the
    setting took effect (``False`` off glibc Linux).
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD, 2**31 - 1))
