"""Overlapping windows through a fast Inception I3D copy with the stem computed once per run of frames.

Window features (``features.FeatureExtractor``) put overlapping clips through the model: at 16-frame windows every
4 frames (ActionFormer's THUMOS14 features) each frame is in four windows. The Inception I3D's stem
(``Conv3d_1a_7x7``: 7x7x7, stride 2, TF 'SAME' zero padding of 2 frames in front and 3 behind for 16 frames) is about
30% of its forward on CPU, and it is linear up to its ReLU. For a run of consecutive windows (frames ``x[0..L-1]``,
zero outside the run) let

    G[q] = bias + sum_k W_k x[q + k]        (k = 0..6, the temporal taps; spatial SAME padding as the model's)

Output frame ``t`` of the window that starts at run frame ``s`` sums the taps over frames ``s + 2t - before + k``
with the window's own zero padding (``before`` = 2 at 16 frames) outside it. Where all those frames are inside the
window it is ``G[s + 2t - before]``, the same for every window that has that frame inside; where some fall outside
the window it is that ``G`` less the outside frames' terms ``W_k x[r]`` (a *correction*: at 16/4 three output
frames of each window, six single-frame taps in all). The ReLU, ``MaxPool3d_2a_3x3`` (1x3x3) and
``Conv3d_2b_1x1`` (1x1x1) act frame by frame, so they also run once per distinct stem frame; the windows are put
together after ``Conv3d_2b_1x1`` and the fast copy runs on from ``Conv3d_2c_3x3`` as its forward does.

At 16/4 this is about 2 stem frames and 6 single-frame taps per window instead of 8 stem frames (20 of 56 frame-taps),
and 5 instead of 8 frames through the pool and ``Conv3d_2b_1x1``. The sums are the plain model's in another order; a
correction subtracts terms the shared sum added, which costs rounding of the order of 1e-6 of the stem's output
scale (features within 1e-4 of the plain model, ``tests/test_features.py``). :meth:`SharedStemWindows.worthwhile`
says where the sharing saves work (strides well below the window length); elsewhere the caller runs the windows
through the model as they are.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .inference import FoldedConv3d
from .modeling_inception_i3d import InceptionI3DModel, InceptionI3DUnit3D, _same_padding

# Shared work must be below this fraction of the direct stem's frame-taps for the sharing to run.
MAX_SHARED_COST = 0.75


@dataclass(frozen=True)
class _Plan:
    """Which stem frames a batch of ``num_windows`` consecutive windows needs (run coordinates: run frame 0 is the
    first window's first frame)."""

    grid_first: int  # run position of the first shared sum G computed
    grid_step: int  # temporal stride between computed G positions
    grid_size: int
    key_grid: np.ndarray  # (K,) index into the computed G of each distinct stem frame
    corrections: dict[int, tuple[np.ndarray, np.ndarray]]  # tap -> (run frames, key index they correct)
    window_keys: np.ndarray  # (W, T_out) key of each window's output frame
    run_length: int
    shared_cost: int  # single-frame taps per view
    direct_cost: int


class SharedStemWindows:
    """Features of consecutive full windows from one run of frames, for a fast Inception I3D copy
    (``inference.optimize_for_inference``); see the module docstring. ``model`` is an ``InceptionI3DModel`` or a
    classifier around one."""

    def __init__(self, model: torch.nn.Module, clip_len: int, stride: int) -> None:
        base = model.base_model
        stem = base.conv3d_1a_7x7
        conv = stem.conv
        self.model, self.base = model, base
        self.clip_len, self.stride = int(clip_len), int(stride)
        self.kernel_t, self.stride_t = conv.weight.shape[2], conv.stride[0]
        self.spatial_kernel, self.spatial_stride = stem.kernel_size[1:], stem.stride[1:]
        self.out_frames = -(-self.clip_len // self.stride_t)
        # the window's own temporal zero padding in front: the model's TF 'SAME' rule
        self.before = _same_padding((self.clip_len,), (self.kernel_t,), (self.stride_t,))[0]
        spatial = (1, *conv.stride[1:])
        self._grid = {
            step: FoldedConv3d(conv.weight, conv.bias, (step, *conv.stride[1:]), (0, 0, 0), (1, 1, 1), 1)
            for step in {1, self.stride_t}
        }
        zero = torch.zeros_like(conv.bias)
        self._taps = [
            FoldedConv3d(conv.weight[:, :, k : k + 1], zero, spatial, (0, 0, 0), (1, 1, 1), 1)
            for k in range(self.kernel_t)
        ]
        self._plans: dict[int, _Plan] = {}

    @staticmethod
    def applies(model: torch.nn.Module) -> bool:
        """Whether ``model`` is a fast Inception I3D copy whose stem this class knows (folded, ReLU inside)."""
        base = getattr(model, "base_model", None)
        stem = getattr(base, "conv3d_1a_7x7", None)
        return (
            isinstance(base, InceptionI3DModel)
            and isinstance(stem, InceptionI3DUnit3D)
            and isinstance(stem.conv, FoldedConv3d)
            and stem.conv.relu
            and isinstance(stem.bn, torch.nn.Identity)
            and isinstance(stem.activation, torch.nn.Identity)
            and stem.conv.weight.dtype == torch.float32
            and list(stem.conv.padding) == [0, 0, 0]
        )

    def plan(self, num_windows: int) -> _Plan:
        """The stem frames of ``num_windows`` consecutive windows (cached per count)."""
        if num_windows not in self._plans:
            self._plans[num_windows] = self._make_plan(num_windows)
        return self._plans[num_windows]

    def worthwhile(self, num_windows: int) -> bool:
        """Whether sharing the stem over ``num_windows`` consecutive windows saves enough work."""
        if num_windows < 2:
            return False
        plan = self.plan(num_windows)
        return plan.shared_cost < MAX_SHARED_COST * plan.direct_cost

    def _make_plan(self, num_windows: int) -> _Plan:
        taps, clip_len = self.kernel_t, self.clip_len
        run_length = (num_windows - 1) * self.stride + clip_len
        starts = np.arange(num_windows) * self.stride
        positions = starts[:, None] + self.stride_t * np.arange(self.out_frames)[None, :] - self.before
        first = int(positions.min())
        step = self.stride_t if np.all((positions - first) % self.stride_t == 0) else 1
        grid_size = (int(positions.max()) - first) // step + 1
        keys: dict[tuple, int] = {}
        key_grid: list[int] = []
        corrections: dict[int, tuple[list[int], list[int]]] = {}
        window_keys = np.zeros(positions.shape, dtype=np.int64)
        for w, t in np.ndindex(*positions.shape):
            q = int(positions[w, t])
            outside = [
                (q + k, k)
                for k in range(taps)
                if 0 <= q + k < run_length and not starts[w] <= q + k < starts[w] + clip_len
            ]
            key = (q, tuple(outside))
            if key not in keys:
                keys[key] = len(key_grid)
                key_grid.append((q - first) // step)
                for frame, k in outside:
                    frames, targets = corrections.setdefault(k, ([], []))
                    frames.append(frame)
                    targets.append(keys[key])
            window_keys[w, t] = keys[key]
        num_corrections = sum(len(frames) for frames, _ in corrections.values())
        return _Plan(
            grid_first=first,
            grid_step=step,
            grid_size=grid_size,
            key_grid=np.asarray(key_grid, dtype=np.int64),
            corrections={k: (np.asarray(f), np.asarray(t)) for k, (f, t) in sorted(corrections.items())},
            window_keys=window_keys,
            run_length=run_length,
            shared_cost=grid_size * taps + num_corrections,
            direct_cost=num_windows * self.out_frames * taps,
        )

    def last_hidden_state(self, run: torch.Tensor, num_windows: int) -> torch.Tensor:
        """``Mixed_5c`` of ``num_windows`` windows (``clip_len`` frames every ``stride``) of ``run``, float32
        ``(V, L, 3, H, W)`` (``V`` views of the same ``L`` frames): ``(num_windows * V, 1024, T', 7, 7)``, window-major
        (the windows of view 0..V-1 of the first window, then of the second...)."""
        plan = self.plan(num_windows)
        num_views, length, _, height, width = run.shape
        if length != plan.run_length:
            raise ValueError(f"a run of {num_windows} windows has {plan.run_length} frames, got {length}")
        last = plan.grid_first + (plan.grid_size - 1) * plan.grid_step + self.kernel_t
        front, back = max(0, -plan.grid_first), max(0, last - length)
        left, right, top, bottom = _same_padding((height, width), self.spatial_kernel, self.spatial_stride)
        # the run with its spatial SAME padding and zeros outside it in time, made once in channels-last 3D
        frames = torch.empty(
            (num_views, run.shape[2], front + length + back, top + height + bottom, left + width + right),
            dtype=run.dtype,
            memory_format=torch.channels_last_3d,
        ).zero_()
        inside = frames[:, :, front : front + length, top : top + height, left : left + width]
        inside.copy_(run.permute(0, 2, 1, 3, 4))
        start = plan.grid_first + front
        # channels-last 3D memory is (N, T, H, W, C): frames are whole blocks of it, selected and corrected as such
        grid = self._grid[plan.grid_step](frames[:, :, start : last + front])  # G, before its ReLU
        grid = grid.permute(0, 2, 3, 4, 1)
        stem = grid.index_select(1, torch.from_numpy(plan.key_grid))
        for k, (run_frames, targets) in plan.corrections.items():
            taps = self._taps[k](frames.index_select(2, torch.from_numpy(run_frames + front)))
            stem.index_add_(1, torch.from_numpy(targets), taps.permute(0, 2, 3, 4, 1), alpha=-1)
        del grid, frames
        # ReLU, MaxPool3d_2a_3x3 and Conv3d_2b_1x1 act frame by frame: once per distinct stem frame
        hidden = self.base.conv3d_2b_1x1(self.base.maxpool3d_2a_3x3(stem.relu_().permute(0, 4, 1, 2, 3)))
        del stem
        channels, _, out_h, out_w = hidden.shape[1:]
        order = torch.from_numpy(plan.window_keys.reshape(-1))
        hidden = hidden.permute(0, 2, 3, 4, 1).index_select(1, order)  # (V, W * T_out, h, w, C)
        hidden = hidden.view(num_views, num_windows, self.out_frames, out_h, out_w, channels).transpose(0, 1)
        hidden = hidden.reshape(num_windows * num_views, self.out_frames, out_h, out_w, channels)
        hidden = hidden.permute(0, 4, 1, 2, 3)  # channels-last 3D (window-major, then view)
        for name in self.base.endpoint_names[3:]:
            hidden = getattr(self.base, name.lower())(hidden)
        return hidden

    def features(self, run: torch.Tensor, num_windows: int, layer: str) -> torch.Tensor:
        """``pooled`` (``InceptionI3DModel``'s ``pooler_output``) or ``logits`` (the classifier's, DeepMind's head:
        the logits conv on every pooled time window, then their mean) of the windows, ``(num_windows * V, D)``."""
        windows = self.base.pooler(self.last_hidden_state(run, num_windows))
        if layer == "pooled":
            return windows.mean(dim=2).flatten(1)
        return self.model.classifier(self.model.dropout(windows)).flatten(2).mean(dim=2)
