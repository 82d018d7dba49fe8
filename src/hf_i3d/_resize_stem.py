"""TF1 ``resize_bilinear`` up to 224x224 and the first (strided) convolution of a network, as one linear map.

FVD resizes every frame straight to 224x224 (TF1 legacy bilinear, :func:`hf_i3d.fvd.resize_bilinear_tf1`) and the
I3D's first layer is a 7x7x7 convolution with stride 2 and TF 'SAME' zero padding. Both are linear in the source
pixels, so for a small source (64x64: the FVD paper's resolution) the pair is one convolution of the *source* whose
kernel depends on where the output pixel falls between source pixels:

* output row ``i`` reads the resized rows ``y = 2 i - before + k`` (``k < 7``, zero outside ``0..223``), and resized
  row ``y`` is ``(1 - f) * src[floor(y h / 224)] + f * src[floor(...) + 1]`` (clamped at the last row). So output
  row ``i`` is a fixed ``(7, K)`` matrix ``A_i`` applied to the ``K`` source rows from ``s_i`` on (``K = 4`` for
  ``h = 64``, instead of 7 resized rows);
* ``A_i`` and ``s_i`` repeat with period ``P = 112 / gcd(112, h)`` in ``i`` (``s`` advancing ``P h / 112`` rows): a
  handful of row *phases* (7 for ``h = 64``), plus the few rows at the borders where the zero padding or the clamp
  breaks the pattern, each its own group;
* the same holds for columns, and per (row group, column group) the kernel is ``A^T W B`` (``W`` the 7x7 spatial
  taps of each output channel, input channel and frame tap): a GEMM over ``7 * K_h * K_w * C`` source values per
  output (336 for a 64x64 RGB source) instead of ``7 * 7 * 7 * C`` (1029) resized values, and no 224x224 frames.

The result equals resize-then-convolve up to float rounding (the phase kernels are built in float64 from the exact
rational interpolation weights; TF1 computes the weights in float32, a difference below 1e-6 relative).
"""

from __future__ import annotations

import math
from fractions import Fraction

import torch
import torch.nn.functional as F

from .inference import FoldedConv3d

MAX_JOBS = 100  # distinct (row pattern, column pattern) GEMMs: 36 for 64x64, 81 for 128x128


def _resize_matrix(size_in: int, size_out: int) -> torch.Tensor:
    """TF1 legacy bilinear resize of one axis as a ``(size_out, size_in)`` float64 matrix: output ``y`` reads
    ``src = y * in / out``, ``(1 - f) * x[floor(src)] + f * x[min(floor(src) + 1, in - 1)]``, ``f = src - floor``."""
    matrix = torch.zeros(size_out, size_in, dtype=torch.float64)
    for y in range(size_out):
        src = Fraction(y * size_in, size_out)
        lower = math.floor(src)
        lerp = src - lower
        matrix[y, min(lower, size_in - 1)] += float(1 - lerp)
        matrix[y, min(lower + 1, size_in - 1)] += float(lerp)
    return matrix


def _same_before(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TF 'SAME' output size and padding in front (the rest goes behind)."""
    out = -(-size // stride)
    return out, max((out - 1) * stride + kernel - size, 0) // 2


class _AxisPlan:
    """One spatial axis: groups of output rows that share one local ``(kernel, K)`` matrix, each group given as
    (first output row, output step, count, first source row, source step, matrix). The periodic phases cover every
    output row; the rows where the borders break the period follow as one-row groups and overwrite those rows."""

    def __init__(self, size_in: int, size_out: int, kernel: int, stride: int):
        resize = _resize_matrix(size_in, size_out)
        n_out, before = _same_before(size_out, kernel, stride)
        taps = torch.zeros(n_out, kernel, size_in, dtype=torch.float64)
        for i in range(n_out):
            for k in range(kernel):
                y = stride * i - before + k
                if 0 <= y < size_out:
                    taps[i, k] = resize[y]
        period = n_out // math.gcd(n_out, size_in) if size_out == n_out * stride else 0
        advance = period * size_in * stride // size_out if period else 0
        if not period or period * size_in * stride % size_out:
            raise ValueError(f"no periodic phase structure for {size_in} -> {size_out}")
        support = [torch.nonzero(taps[i].abs().sum(0)).flatten() for i in range(n_out)]
        inside = [
            i for i in range(n_out) if 0 <= stride * i - before and stride * i - before + kernel <= size_out
        ]
        # each phase's pattern is taken from its widest row with every tap inside the frame (the clamp at the last
        # source row only narrows a row); rows that do not follow it become one-row groups below
        phases = {}
        for i in inside:
            width = int(support[i].max() - support[i].min()) + 1
            if i % period not in phases or width > phases[i % period][1]:
                phases[i % period] = (i, width)
        if not phases:
            raise ValueError(f"no output row of {size_in} -> {size_out} lies inside the frame")
        self.width = max(width for _, width in phases.values())
        if self.width > size_in:
            raise ValueError(f"{size_in} source rows are fewer than the {self.width} a row reads")

        def local(i: int, first: int) -> torch.Tensor:
            matrix = torch.zeros(kernel, self.width, dtype=torch.float64)
            part = taps[i][:, first : first + self.width]
            matrix[:, : part.shape[1]] = part
            return matrix

        self.groups: list[tuple[int, int, int, int, int, torch.Tensor]] = []
        by_phase = {}
        for p, (i, _) in sorted(phases.items()):
            first = int(support[i].min())
            offset = first - advance * ((i - p) // period)
            by_phase[p] = (offset, local(i, first))
            self.groups.append((p, period, len(range(p, n_out, period)), offset, advance, by_phase[p][1]))
        for i in range(n_out):
            predicted = torch.zeros_like(taps[i])
            if i % period in by_phase:
                offset, matrix = by_phase[i % period]
                start = offset + advance * (i // period)
                for b in range(self.width):
                    if 0 <= start + b < size_in:
                        predicted[:, start + b] = matrix[:, b]
            if torch.equal(predicted, taps[i]):
                continue
            first = min(int(support[i].min()) if len(support[i]) else 0, size_in - self.width)
            if len(support[i]) and int(support[i].max()) >= first + self.width:
                raise ValueError(f"border row {i} of {size_in} -> {size_out} is wider than the phases")
            self.groups.append((i, 1, 1, first, 1, local(i, first)))
        self.size_out = n_out


class _OneDNNMatmul(FoldedConv3d):
    """``x @ kernels`` for an ``(M, K)`` matrix ``x``, as a 1x1x1 oneDNN convolution over ``M`` positions: unlike
    the BLAS ``mm``, whose small-matrix kernels round differently with the number of threads, oneDNN's result does
    not depend on the thread count (FVD split over processes with other thread counts must not move)."""

    def __init__(self, kernels: torch.Tensor):
        weight = kernels.t().contiguous().view(*kernels.t().shape, 1, 1, 1)
        super().__init__(weight, kernels.new_zeros(kernels.shape[1]), (1, 1, 1), (0, 0, 0), (1, 1, 1), 1)

    def forward(
        self, matrix: torch.Tensor
    ) -> torch.Tensor:  # (M, K) row-major is (1, K, M, 1, 1) channels-last
        rows, depth = matrix.shape
        output = super().forward(matrix.view(1, rows, 1, 1, depth).permute(0, 4, 1, 2, 3))
        return output.permute(0, 2, 3, 4, 1).reshape(rows, -1)


def _gemm(kernels: list[torch.Tensor]) -> _OneDNNMatmul:
    return _OneDNNMatmul(torch.cat(kernels, dim=1).float())


class ResizedStem:
    """``relu(conv3d(SAME-pad(resize_bilinear_tf1(x, (224, 224))), weight) + bias)`` computed from the source
    ``x`` by polyphase GEMMs (module docstring). ``weight`` ``(O, C, kt, kh, kw)`` and ``bias`` are the stem's, with
    its BatchNorm folded in; ``stride`` the stem's; ``source_size`` the (height, width) of the frames it will get.
    Raises ``ValueError`` where the sizes have no phase structure (use :func:`fused_stem_cost` first)."""

    def __init__(
        self,
        weight: torch.Tensor,
        bias: torch.Tensor,
        stride: tuple[int, int, int],
        source_size: tuple[int, int],
        target_size: tuple[int, int] = (224, 224),
    ):
        out_channels, in_channels, self.kernel_t, kernel_h, kernel_w = weight.shape
        self.stride_t = stride[0]
        self.rows = _AxisPlan(source_size[0], target_size[0], kernel_h, stride[1])
        self.cols = _AxisPlan(source_size[1], target_size[1], kernel_w, stride[2])
        self.source_size = tuple(source_size)
        self.bias = bias.detach().float()
        weight = weight.detach().double()
        # one GEMM per distinct (row source pattern, column source pattern); phases that read the same source
        # patches share it, their kernels side by side
        jobs: dict[tuple, list] = {}
        for rows in self.rows.groups:
            for cols in self.cols.groups:
                kernel = torch.einsum("octyx,ya,xb->tabco", weight, rows[5], cols[5]).reshape(
                    -1, out_channels
                )
                jobs.setdefault(rows[2:5] + cols[2:5], []).append((rows[:2], cols[:2], kernel))
        self.jobs = [
            (
                key,
                [(r, c) for r, c, _ in items],
                _gemm([k for _, _, k in items]),
            )
            for key, items in jobs.items()
        ]
        self.out_channels, self.in_channels = out_channels, in_channels
        self.margin = max(self.rows.width, self.cols.width) + 8
        for plan, size in ((self.rows, source_size[0]), (self.cols, source_size[1])):
            # every patch lies inside the zero margins of its own sample
            for _, _, count, first, step, _ in plan.groups:
                if first < -self.margin or first + step * (count - 1) + plan.width > size + self.margin:
                    raise ValueError(f"a phase of {size} -> {plan.size_out} reads beyond the margin")

    def __call__(self, frames: torch.Tensor) -> torch.Tensor:
        """``frames`` ``(N, T, h, w, C)`` float32 (already scaled as the network expects) -> the stem's output
        ``(N, O, ceil(T / stride_t), 112, 112)`` in channels-last 3D memory."""
        batch, num_frames, height, width, channels = frames.shape
        if (height, width) != self.source_size or channels != self.in_channels:
            raise ValueError(
                f"ResizedStem built for {self.source_size} x {self.in_channels}, got {tuple(frames.shape)}"
            )
        out_t, before_t = _same_before(num_frames, self.kernel_t, self.stride_t)
        after_t = max((out_t - 1) * self.stride_t + self.kernel_t - num_frames, 0) - before_t
        m = self.margin
        padded = F.pad(frames.float(), (0, 0, m, m, m, m, before_t, after_t)).contiguous()
        s_n, s_t, s_h, s_w, s_c = padded.stride()
        out = frames.new_empty(
            (batch, out_t, self.rows.size_out, self.cols.size_out, self.out_channels), dtype=torch.float32
        )
        # one sample at a time: the GEMMs then have the same shapes whatever the batch, and so the same rounding
        # (a video's embedding must not depend on the videos batched with it: FVD split over processes)
        for sample in range(batch):
            base = padded.storage_offset() + sample * s_n
            for (count_r, first_r, step_r, count_c, first_c, step_c), targets, gemm in self.jobs:
                patches = padded.as_strided(
                    (out_t, count_r, count_c, self.kernel_t, self.rows.width, self.cols.width, channels),
                    (self.stride_t * s_t, step_r * s_h, step_c * s_w, s_t, s_h, s_w, s_c),
                    base + (m + first_r) * s_h + (m + first_c) * s_w,
                )
                result = gemm(patches.reshape(-1, gemm.weight.shape[1]))
                result = result.view(out_t, count_r, count_c, len(targets), self.out_channels)
                for index, ((row, row_step), (col, col_step)) in enumerate(targets):
                    out[sample, :, row::row_step, col::col_step][:, :count_r, :count_c] = result[
                        :, :, :, index
                    ]
        out += self.bias
        return out.relu_().permute(0, 4, 1, 2, 3)


def fused_stem_cost(
    source_size: tuple[int, int],
    kernel: tuple[int, int],
    stride: tuple[int, int],
    target_size: tuple[int, int] = (224, 224),
) -> float | None:
    """Multiply-adds of :class:`ResizedStem` per output relative to resizing to 224x224 and convolving (below 1 it
    saves work), or None where the sizes have no phase structure."""
    try:
        rows = _AxisPlan(source_size[0], target_size[0], kernel[0], stride[0])
        cols = _AxisPlan(source_size[1], target_size[1], kernel[1], stride[1])
    except ValueError:
        return None
    jobs = {g[2:5] for g in rows.groups}, {g[2:5] for g in cols.groups}
    if len(jobs[0]) * len(jobs[1]) > MAX_JOBS:  # many small GEMMs: the bookkeeping would eat the gain
        return None
    return rows.width * cols.width / (kernel[0] * kernel[1])
