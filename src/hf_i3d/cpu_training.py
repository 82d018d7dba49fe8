"""What makes a CPU training step of an I3D-R50 fast: channels-last 3D, small-map convolutions and temporal kernels'
weight gradients as matrix products, the RGB stem's forward in the default layout, and an SGD whose fused kernel
updates channels-last parameters in place.

``optimize_for_cpu_training(model)`` is what ``examples/run_video_classification.py`` does on CPU
(``--optimize_cpu_training``, on by default); ``ChannelsLastSGD`` is the optimiser that
``hf_i3d.training.VideoClassificationTrainer`` creates. Both compute what the plain model and ``torch.optim.SGD``
compute: the convolutions up to float rounding (another summation order), the optimiser bit for bit. Why each part
pays (profiles of the I3D-R50's 2x8x112x112 step on 2 AVX2 cores, ``benchmarks/RESULTS.md``; together about 1.12x
the channels-last step):

* Channels-last 3D weights and activations are oneDNN's own layout: no reorder of activations around each
  convolution and its gradients (about 5%).
* In that layout every oneDNN weight gradient comes back in PyTorch's default layout and is copied into the
  parameter's (5 ms for a 512x512x1x3x3 kernel, more than its backward computes on a 4x4 map), and every call
  carries a fixed cost that dominates on the last stages' maps (4x4 and 7x7 at 112x112 input, 32-98 rows per batch
  of two clips). ``CPUTrainingConv3d`` runs those convolutions as one matrix product over the ``(rows, kh * kw * C_in)``
  patches of a channels-last input (``_PatchMatmulConv``; its backward returns the weight gradient in the
  parameter's layout): 1x1x1 kernels up to ``MATMUL_MAX_ROWS_1X1`` output rows, larger ones on output maps of at
  most ``MATMUL_MAX_MAP_KXK`` positions and ``MATMUL_MAX_ROWS_KXK`` rows, where it measured faster per layer
  (``benchmarks/bench_cpu_training.py``). Elsewhere oneDNN's direct kernels are faster and stay.
* oneDNN's forward kernel for a 3-channel input is faster in PyTorch's default layout than in channels-last (the
  stem: 27-30 vs 41-44 ms at 2x8x112x112, about 2.5% of the step): ``CPUTrainingConv3d`` runs an RGB-input
  convolution's forward there (``_PlainForwardConv``) and hands its output on in channels-last; its weight gradient
  is computed in channels-last as before.
* oneDNN's weight gradient of a ``(kt, 1, 1)`` kernel over several frames (the inflated 3x1x1 convolutions of
  stage 1 at 8-frame clips, of stages 1-3 at 32-frame ones) is slow in channels-last; as ``kt`` matrix products over
  frame-shifted rows (``_TemporalKernelConv``) it is 1.1-1.7x faster, the layer's forward and backward 1.01-1.17x.
* On one thread (torchrun's default per CPU process) PyTorch runs convolutions with 1x1 spatial kernels and
  batches under 16 on its reference kernel, which returns the default layout; there every 1x1x1 convolution takes
  the matrix product and the (3, 1, 1) ones run entirely as frame-shifted matrix products, so the activations stay
  channels-last (the one-thread step 1.43x mmaction2's).
* ``torch.optim.SGD(fused=True)`` copies every parameter that is not contiguous in the default layout (all
  channels-last kernels larger than 1x1x1) to a contiguous tensor and back, with its gradient and momentum, on
  every step; ``ChannelsLastSGD`` hands the kernel the contiguous view of each tensor's memory instead (a
  permutation of its dimensions), so the same elementwise update runs in place.

These paths run only where they help: float CPU tensors, with autograd recording (a training step), not under
autocast (``--bf16`` keeps oneDNN's bfloat16 convolutions), outside tracing, ``torch.compile`` and export, which see
the plain ``I3DConv3d``.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import nn
from torch.optim.sgd import sgd

from .modeling_i3d import I3DConv3d, centre_tap_only

# Where the matrix-product path measured faster than oneDNN per layer, forward and backward (2 AVX2 cores, torch
# 2.14; benchmarks/bench_cpu_training.py, RESULTS.md 2026-12-02 session 9): 1x1x1 kernels up to 1568 output rows
# (1.08-1.40x; 0.98x at 6272), kh x kw kernels on 4x4 output maps (1.24-1.49x up to 128 rows, 0.95x at 512); kh x kw
# kernels on 7x7 and larger output maps lose (0.53-0.96x, but for a strided 14x14 -> 7x7 one at 1.14x).
# On one thread (torchrun's default per CPU process) PyTorch runs convolutions with 1x1 spatial kernels and batches
# under 16 on its reference kernel, which returns the default layout: there every 1x1x1 convolution takes the matrix
# product and (3, 1, 1) kernels run as matrix products over frame-shifted rows (``_TemporalKernelConv``), which keeps
# the activations channels-last (the step 7-8% faster than without, RESULTS.md session 10).
MATMUL_MAX_ROWS_1X1 = 2048
MATMUL_MAX_ROWS_KXK = 256
MATMUL_MAX_MAP_KXK = 16
# oneDNN's forward kernel for an RGB input (3 channels) is faster in PyTorch's default layout than in channels-last:
# 27-30 vs 41-44 ms for the I3D-R50 stem at 2x8x112x112 (its weight gradient is as fast in channels-last); RESULTS.md
# 2026-12-02 session 10
PLAIN_FORWARD_MAX_IN_CHANNELS = 4


def _patch_slices(start: int, size_out: int, stride: int) -> slice:
    """The input positions one kernel tap reads for ``size_out`` outputs (padded coordinates)."""
    return slice(start, start + stride * (size_out - 1) + 1, stride)


class _PatchMatmulConv(torch.autograd.Function):
    """``conv3d(x, weight[:, :, tap:tap + 1], stride=(1, sh, sw), padding=(0, ph, pw))`` as one matrix product.

    ``x`` is ``(N, C, T, H, W)``; the patches are gathered in channels-last order ``(N, T, Ho, Wo, kh, kw, C)`` so
    a channels-last input is read without a reorder and the output comes back channels-last. ``tap`` is the one
    temporal tap used: 0 for a ``(1, kh, kw)`` kernel, the centre tap where ``centre_tap_only`` holds. The weight
    gradient comes back in channels-last order (zero at the unused taps), so autograd hands it to a channels-last
    parameter without a copy.
    """

    @staticmethod
    def forward(ctx, x, weight, tap, stride, padding):
        n, c, t, h, w = x.shape
        out_channels, _, _, kh, kw = weight.shape
        (sh, sw), (ph, pw) = stride, padding
        ho, wo = (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1
        x_last = x.permute(0, 2, 3, 4, 1)  # (N, T, H, W, C): a view of a channels-last input
        if kh == kw == 1 and ph == pw == 0:
            patches = x_last[:, :, ::sh, ::sw].reshape(n * t * ho * wo, c)
        else:
            x_padded = F.pad(x_last, (0, 0, pw, pw, ph, ph))
            patches = x.new_empty(n, t, ho, wo, kh * kw, c)
            for i in range(kh):
                for j in range(kw):
                    patches[:, :, :, :, i * kw + j] = x_padded[
                        :, :, _patch_slices(i, ho, sh), _patch_slices(j, wo, sw)
                    ]
            patches = patches.view(n * t * ho * wo, kh * kw * c)
        kernel = weight[:, :, tap].permute(0, 2, 3, 1).reshape(out_channels, kh * kw * c)
        out = torch.mm(patches, kernel.t())
        ctx.save_for_backward(patches, kernel, weight)
        ctx.geometry = (n, c, t, h, w, ho, wo, kh, kw, sh, sw, ph, pw, tap)
        return out.view(n, t, ho, wo, out_channels).permute(0, 4, 1, 2, 3)

    @staticmethod
    def backward(ctx, grad_output):
        patches, kernel, weight = ctx.saved_tensors
        n, c, t, h, w, ho, wo, kh, kw, sh, sw, ph, pw, tap = ctx.geometry
        out_channels = kernel.shape[0]
        grad_rows = grad_output.permute(0, 2, 3, 4, 1).reshape(-1, out_channels)
        grad_x = grad_weight = None
        if ctx.needs_input_grad[1]:
            # (C_out, kh * kw * C_in), columns in (kh, kw, C_in) order
            grad_kernel = torch.mm(grad_rows.t(), patches)
            if weight.shape[2] == 1:  # as (C_out, C_in, 1, kh, kw) this has channels-last strides
                grad_weight = grad_kernel.view(out_channels, 1, kh, kw, c).permute(0, 4, 1, 2, 3)
            else:
                grad_weight = torch.zeros_like(weight)  # in the parameter's layout
                grad_weight[:, :, tap] = grad_kernel.view(out_channels, kh, kw, c).permute(0, 3, 1, 2)
        if ctx.needs_input_grad[0]:
            grad_patches = torch.mm(grad_rows, kernel)
            if kh == kw == sh == sw == 1 and ph == pw == 0:
                grad_x = grad_patches.view(n, t, h, w, c).permute(0, 4, 1, 2, 3)
            else:
                grad_padded = grad_output.new_zeros(n, t, h + 2 * ph, w + 2 * pw, c)
                grad_patches = grad_patches.view(n, t, ho, wo, kh * kw, c)
                for i in range(kh):
                    for j in range(kw):
                        grad_padded[:, :, _patch_slices(i, ho, sh), _patch_slices(j, wo, sw)] += grad_patches[
                            :, :, :, :, i * kw + j
                        ]
                grad_x = (
                    grad_padded[:, :, ph : ph + h, pw : pw + w]
                    .permute(0, 4, 1, 2, 3)
                    .contiguous(memory_format=torch.channels_last_3d)
                )
        return grad_x, grad_weight, None, None, None


class _PlainForwardConv(torch.autograd.Function):
    """``conv3d(x, weight)`` (no bias) whose forward runs in PyTorch's default layout and returns channels-last, for
    a channels-last network whose first convolution reads an RGB input (``PLAIN_FORWARD_MAX_IN_CHANNELS``). The
    backward is autograd's own for ``conv3d`` (``convolution_backward``, channels-last like the weight), its weight
    gradient in the parameter's layout."""

    @staticmethod
    def forward(ctx, x, weight, stride, padding, dilation):
        out = F.conv3d(x.contiguous(), weight.contiguous(), None, stride, padding, dilation)
        ctx.save_for_backward(x, weight)
        ctx.geometry = (stride, padding, dilation)
        return out.contiguous(memory_format=torch.channels_last_3d)

    @staticmethod
    def backward(ctx, grad_output):
        x, weight = ctx.saved_tensors
        stride, padding, dilation = ctx.geometry
        grad_x, grad_weight, _ = torch.ops.aten.convolution_backward(
            grad_output,
            x,
            weight,
            None,
            stride,
            padding,
            dilation,
            False,
            [0, 0, 0],
            1,
            [ctx.needs_input_grad[0], ctx.needs_input_grad[1], False],
        )
        if grad_weight is not None and grad_weight.stride() != weight.stride():
            # oneDNN (float32) returns the weight's layout; the reference kernels (float64) the default one
            grad_weight = torch.empty_like(weight).copy_(grad_weight)
        return grad_x, grad_weight, None, None, None


def _tap_frames(tap: int, padding_t: int, frames: int, frames_out: int) -> tuple[int, int, int]:
    """For one temporal tap of a stride-1 kernel: the output frames ``[first, end)`` it reaches and the ``shift`` from
    an output frame to the input frame it reads (``end <= first``: the tap meets only padding)."""
    shift = tap - padding_t
    return max(0, -shift), min(frames_out, frames - shift), shift


class _TemporalKernelConv(torch.autograd.Function):
    """``conv3d(x, weight, padding=(pt, 0, 0))`` (no bias, stride 1) for a ``(kt, 1, 1)`` kernel on channels-last
    tensors, whose weight gradient is ``kt`` matrix products over frame-shifted rows instead of oneDNN's (forward
    and backward 1.01-1.17x faster for the I3D-R50's inflated 3x1x1 convolutions, ``benchmarks/bench_cpu_training.py``).
    The forward and the input gradient are oneDNN's, as for ``conv3d``, or with ``matmul_taps`` matrix products too:
    on one thread PyTorch runs such kernels on its reference kernel, which returns the default layout."""

    @staticmethod
    def forward(ctx, x, weight, padding_t, matmul_taps):
        ctx.save_for_backward(x, weight)
        ctx.padding_t, ctx.matmul_taps = padding_t, matmul_taps
        if not matmul_taps:
            return F.conv3d(x, weight, None, 1, (padding_t, 0, 0))
        n, c, frames, h, w = x.shape
        out_channels, _, kernel_t, _, _ = weight.shape
        frames_out = frames + 2 * padding_t - kernel_t + 1
        x_rows = x.permute(0, 2, 3, 4, 1).reshape(n, frames, h * w, c)  # a view of a channels-last input
        taps = weight.permute(2, 0, 1, 3, 4).reshape(kernel_t, out_channels, c)
        out = x.new_zeros(n, frames_out, h * w, out_channels)
        for tap in range(kernel_t):
            first, end, shift = _tap_frames(tap, padding_t, frames, frames_out)
            if end > first:
                out[:, first:end] += torch.matmul(x_rows[:, first + shift : end + shift], taps[tap].t())
        return out.view(n, frames_out, h, w, out_channels).permute(0, 4, 1, 2, 3)

    @staticmethod
    def backward(ctx, grad_output):
        x, weight = ctx.saved_tensors
        padding_t = ctx.padding_t
        n, c, frames, h, w = x.shape
        out_channels, _, kernel_t, _, _ = weight.shape
        frames_out = grad_output.shape[2]
        # (N, T, H * W, C): views of channels-last tensors
        x_rows = x.permute(0, 2, 3, 4, 1).reshape(n, frames, h * w, c)
        grad_rows = grad_output.permute(0, 2, 3, 4, 1).reshape(n, frames_out, h * w, out_channels)
        grad_x = grad_weight = None
        if ctx.needs_input_grad[0] and not ctx.matmul_taps:
            grad_x = torch.ops.aten.convolution_backward(
                grad_output,
                x,
                weight,
                None,
                [1, 1, 1],
                [padding_t, 0, 0],
                [1, 1, 1],
                False,
                [0, 0, 0],
                1,
                [True, False, False],
            )[0]
        elif ctx.needs_input_grad[0]:
            taps = weight.permute(2, 0, 1, 3, 4).reshape(kernel_t, out_channels, c)
            grad_x_rows = x.new_zeros(n, frames, h * w, c)
            for tap in range(kernel_t):
                first, end, shift = _tap_frames(tap, padding_t, frames, frames_out)
                if end > first:
                    grad_x_rows[:, first + shift : end + shift] += torch.matmul(
                        grad_rows[:, first:end], taps[tap]
                    )
            grad_x = grad_x_rows.view(n, frames, h, w, c).permute(0, 4, 1, 2, 3)
        if ctx.needs_input_grad[1]:
            grad_taps = x.new_empty(out_channels, kernel_t, c)
            for tap in range(kernel_t):
                first, end, shift = _tap_frames(tap, padding_t, frames, frames_out)
                if end <= first:
                    grad_taps[:, tap] = 0
                elif n == 1 or (first == 0 and end == frames_out == frames):
                    grad_taps[:, tap] = torch.mm(
                        grad_rows[:, first:end].reshape(-1, out_channels).t(),
                        x_rows[:, first + shift : end + shift].reshape(-1, c),
                    )
                else:
                    grad_taps[:, tap] = torch.bmm(
                        grad_rows[:, first:end].reshape(n, -1, out_channels).transpose(1, 2),
                        x_rows[:, first + shift : end + shift].reshape(n, -1, c),
                    ).sum(0)
            # as (C_out, C_in, kt, 1, 1) this has channels-last strides
            grad_weight = grad_taps.view(out_channels, kernel_t, 1, 1, c).permute(0, 4, 1, 2, 3)
        return grad_x, grad_weight, None, None


class CPUTrainingConv3d(I3DConv3d):
    """``I3DConv3d`` whose CPU training steps take the faster kernels (the module docstring says where and why):
    small-map convolutions as one matrix product (:class:`_PatchMatmulConv`), an RGB-input convolution's forward in
    the default layout (:class:`_PlainForwardConv`), a ``(kt, 1, 1)`` kernel's weight gradient over several frames
    as matrix products (:class:`_TemporalKernelConv`; on one thread its forward and input gradient too); everything
    else as ``I3DConv3d``. The same parameters and
    state dict: ``optimize_for_cpu_training`` turns an ``I3DConv3d`` into one in place."""

    def _training_step_on_cpu(self, input: torch.Tensor) -> bool:
        """Whether this call is a CPU training step that the fast paths may take: autograd recording, no autocast
        (``--bf16`` keeps oneDNN's bfloat16 convolutions), not traced, compiled or exported (those see the plain
        convolution), and a convolution every path covers (zero padding, no groups, no bias)."""
        return (
            input.dim() == 5
            and input.device.type == "cpu"
            and torch.is_grad_enabled()
            and not torch.is_autocast_enabled("cpu")
            and not torch.compiler.is_compiling()
            and not torch.compiler.is_exporting()
            and not torch.jit.is_tracing()
            and self.padding_mode == "zeros"
            and self.groups == 1
            and self.bias is None
        )

    def _plain_forward_applies(self, input: torch.Tensor) -> bool:
        """Whether this call reads an RGB input with a channels-last weight (the stem of an optimised model)."""
        return (
            self.in_channels <= PLAIN_FORWARD_MAX_IN_CHANNELS
            and self.weight.is_contiguous(memory_format=torch.channels_last_3d)
            and not self.weight.is_contiguous()
            and self._training_step_on_cpu(input)
        )

    def _temporal_kernel_applies(self, input: torch.Tensor) -> bool:
        """Whether this call is a ``(kt, 1, 1)`` convolution (stride 1, no spatial padding) over several frames of a
        channels-last input, which ``_TemporalKernelConv`` takes."""
        return (
            self.kernel_size[0] > 1
            and self.kernel_size[1:] == (1, 1)
            and self.stride == (1, 1, 1)
            and self.dilation == (1, 1, 1)
            and self.padding[1:] == (0, 0)
            and not centre_tap_only(input.shape[2], self.kernel_size[0], 1, self.padding[0], 1)
            and input.is_contiguous(memory_format=torch.channels_last_3d)
            and self.weight.is_contiguous(memory_format=torch.channels_last_3d)
            and self._training_step_on_cpu(input)
        )

    def _matmul_tap(self, input: torch.Tensor) -> int | None:
        """The temporal tap the matrix product uses for ``input``, or None where it does not apply."""
        if not self._training_step_on_cpu(input) or self.dilation[1:] != (1, 1):
            return None
        kernel_t, stride_t, padding_t = self.kernel_size[0], self.stride[0], self.padding[0]
        if kernel_t == 1 and stride_t == 1 and padding_t == 0:
            tap = 0
        elif centre_tap_only(input.shape[2], kernel_t, stride_t, padding_t, self.dilation[0]):
            tap = kernel_t // 2
        else:
            return None
        (kh, kw), (sh, sw), (ph, pw) = self.kernel_size[1:], self.stride[1:], self.padding[1:]
        map_size = ((input.shape[3] + 2 * ph - kh) // sh + 1) * ((input.shape[4] + 2 * pw - kw) // sw + 1)
        rows = input.shape[0] * input.shape[2] * map_size
        if kh == kw == 1 and ph == pw == 0:
            return tap if rows <= MATMUL_MAX_ROWS_1X1 or torch.get_num_threads() == 1 else None
        return tap if map_size <= MATMUL_MAX_MAP_KXK and rows <= MATMUL_MAX_ROWS_KXK else None

    def _conv_forward(
        self, input: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None
    ) -> torch.Tensor:
        if self._plain_forward_applies(input):
            return _PlainForwardConv.apply(input, weight, self.stride, self.padding, self.dilation)
        if self._temporal_kernel_applies(input):
            return _TemporalKernelConv.apply(input, weight, self.padding[0], torch.get_num_threads() == 1)
        tap = self._matmul_tap(input)
        if tap is None:
            return super()._conv_forward(input, weight, bias)
        return _PatchMatmulConv.apply(input, weight, tap, self.stride[1:], self.padding[1:])


def optimize_for_cpu_training(model: nn.Module) -> nn.Module:
    """Make ``model``'s CPU training steps fast without changing what it computes: weights (and so activations) in
    channels-last 3D, and every ``I3DConv3d`` a :class:`CPUTrainingConv3d` (the same parameters, buffers and state dict
    keys). In place; returns ``model``. Models without ``I3DConv3d`` layers (the Inception I3D) get the layout only.
    """
    model.to(memory_format=torch.channels_last_3d)
    for module in model.modules():
        if type(module) is I3DConv3d:
            module.__class__ = CPUTrainingConv3d
    return model


def _dense_order(tensors: Iterable[torch.Tensor | None]) -> list[int] | None:
    """The permutation of dimensions under which all the tensors are contiguous views of their memory (they must
    share strides), or None where that is the identity or does not exist."""
    tensors = [t for t in tensors if t is not None]
    first = tensors[0]
    if first.is_contiguous() or any(
        t.shape != first.shape or t.stride() != first.stride() for t in tensors[1:]
    ):
        return None
    order = sorted(range(first.dim()), key=lambda d: (-first.stride(d), -first.shape[d]))
    return order if first.permute(order).is_contiguous() else None


class ChannelsLastSGD(torch.optim.SGD):
    """``torch.optim.SGD`` that hands its kernel each parameter, gradient and momentum buffer as the contiguous view
    of its memory, so the fused kernel updates channels-last parameters in place instead of through contiguous
    copies. The update is SGD's, elementwise and bit for bit; state dicts are SGD's."""

    @torch.no_grad()
    def step(self, closure=None):
        if any(group["differentiable"] for group in self.param_groups):
            return super().step(closure)  # autograd through the update: torch's own step
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params, grads, buffers, orders = [], [], [], []
            for param in group["params"]:
                if param.grad is None:
                    continue
                if param.grad.is_sparse:
                    raise RuntimeError("ChannelsLastSGD does not take sparse gradients")
                buffer = self.state[param].get("momentum_buffer") if group["momentum"] != 0 else None
                order = _dense_order((param, param.grad, buffer))
                if order is not None:
                    params.append(param.permute(order))
                    grads.append(param.grad.permute(order))
                    buffers.append(None if buffer is None else buffer.permute(order))
                else:
                    params.append(param)
                    grads.append(param.grad)
                    buffers.append(buffer)
                orders.append((param, order))
            if not params:
                continue
            sgd(
                params,
                grads,
                buffers,
                weight_decay=group["weight_decay"],
                momentum=group["momentum"],
                lr=group["lr"],
                dampening=group["dampening"],
                nesterov=group["nesterov"],
                maximize=group["maximize"],
                has_sparse_grad=False,
                foreach=group["foreach"],
                fused=group["fused"],
                grad_scale=getattr(self, "grad_scale", None),
                found_inf=getattr(self, "found_inf", None),
            )
            if group["momentum"] != 0:
                for (param, order), buffer in zip(orders, buffers, strict=True):
                    if order is not None:
                        buffer = buffer.permute([order.index(d) for d in range(len(order))])
                    self.state[param]["momentum_buffer"] = buffer
        return loss
