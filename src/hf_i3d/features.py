"""Window features of whole videos: one vector per sliding window of frames, for localisation and retrieval.

Temporal action localisation (ActionFormer, TriDet on THUMOS14), anomaly detection (RTFM) and generic extraction
(v-iashin/video_features) all turn a long video into a sequence of I3D features of ``clip_len``-frame windows
started every ``stride`` frames. :func:`extract_features` does that in one streaming pass:

* the video is decoded once, in order (``decoding.SequentialVideoReader``), optionally resampled to a fixed frame
  rate first (``fps``: for each tick ``k / fps`` the frame whose timestamp is nearest, ties to the earlier frame, as
  the localisation benchmarks' fixed-rate re-encodes do);
* each frame a window uses is transformed once (short side resized, cropped, normalised; ``transforms.ClipTransform``
  arithmetic, mmaction2's) into a rolling buffer that holds only the frames pending windows still need, so memory
  does not grow with the video's length, and frames shared by overlapping windows are not transformed again;
* windows are run through the model in batches, by default through ``inference.optimize_for_inference``'s fast eval
  copy on CPU (the plain model's outputs to float rounding, within 1e-4); overlapping full windows of the Inception
  I3D share its stem (``window_sharing.SharedStemWindows``: one stem convolution over the batch's run of frames,
  each window's edge frames corrected for its own zero padding).

Windows start at frame ``0, stride, 2 * stride, ...`` of the (resampled) frame sequence. A window that would run past
the last frame is the *last partial window*: ``last_window='pad'`` keeps it (the last frame repeated to ``clip_len``
frames; its ``last_frame`` and ``end`` are the true ones, ``padded_frames`` says how many were repeated) when it
covers frames no full window covered (always when the video is shorter than one window); ``'drop'`` leaves it out
(video_features does, which loses the video's tail).

Crops (``crops``): ``center`` (``Resize((-1, short_side))`` -> ``CenterCrop(crop_size)``, mmaction2's val pipeline),
``three`` (``Resize((-1, crop_size))`` -> ``ThreeCrop(crop_size)``: left/top, right/bottom, middle, spanning the short
side; ``crop_size=256`` gives mmaction2's test crops of the ResNet models) and ``ten`` (mmaction2 ``TenCrop(crop_size)``
after ``Resize((-1, short_side))``: upper left, its mirror, upper right, its mirror, lower left, its mirror, lower
right, its mirror, centre, its mirror; offsets ``(0, 0), (4 * w_step, 0), (0, 4 * h_step), (4 * w_step, 4 * h_step),
(2 * w_step, 2 * h_step)`` with ``step = (side - crop) // 4``).

Layers (``layer``): ``pooled`` is the base model's ``pooler_output``, the vector the classifier reads (Inception I3D:
1024-d, the VALID (2, 7, 7) average pool of Mixed_5c averaged over time, one time step for 16 frames; I3D-R50: 2048-d,
R34: 512-d, the global average pool of the last stage); ``logits`` is the classifier's output (``num_labels``-d).
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch

from ._validation import check_choice, check_positive_int
from .decoding import DEFAULT_VIDEO_BACKEND, SequentialVideoReader, check_video_backend
from .inference import optimize_for_inference, plain_forward
from .transforms import ClipParams, ClipTransform, rescale_size, resize_clip
from .window_sharing import SharedStemWindows

LAYERS = ("pooled", "logits")
CROPS = {"center": 1, "three": 3, "ten": 10}
LAST_WINDOW = ("pad", "drop")
DEFAULT_BATCH_SIZE = 16


# ---------------------------------------------------------------------------------------------------------------
# Presets: what published pipelines did
# ---------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FeaturePreset:
    """The window settings of a published feature pipeline, and where they come from."""

    name: str
    model: str
    clip_len: int
    stride: int
    crops: str
    layer: str
    source: str
    note: str = ""
    last_window: str = "pad"
    fps: float | None = None

    def describe(self) -> str:
        return (
            f"{self.name}: {self.model}, {self.clip_len}-frame windows every {self.stride} frames, "
            f"{self.crops} crop{'s' if self.crops != 'center' else ''}, {self.layer}, last window "
            f"{self.last_window}. Source: {self.source}. {self.note}"
        ).strip()


PRESETS: dict[str, FeaturePreset] = {
    preset.name: preset
    for preset in (
        FeaturePreset(
            name="actionformer-thumos",
            model="i3d-inception-kinetics400",
            clip_len=16,
            stride=4,
            crops="center",
            layer="pooled",
            source="ActionFormer THUMOS14 features (happyharrycn/actionformer_release README; configs/thumos_i3d.yaml: "
            "num_frames 16, feat_stride 4, input_dim 2048), at the video's native ~30 fps; TriDet reuses them",
            note="The released features concatenate RGB and optical-flow I3D (1024 + 1024); only the RGB stream "
            "(1024-d) is produced here.",
        ),
        FeaturePreset(
            name="rtfm",
            model="i3d-r50-kinetics400",
            clip_len=16,
            stride=16,
            crops="ten",
            layer="pooled",
            source="RTFM anomaly detection (tianyu0207/RTFM issue #2: 16-frame non-overlapping windows, 10 crops, "
            "I3D-R50 2048-d, arrays (T, 10, 2048))",
            note="RGB only, as RTFM used.",
        ),
        FeaturePreset(
            name="video-features",
            model="i3d-inception-kinetics400",
            clip_len=64,
            stride=64,
            crops="center",
            layer="pooled",
            last_window="drop",
            source="v-iashin/video_features I3D (configs/i3d.yml: stack_size 64, step_size 64; docs/models/i3d.md), "
            "short side 256, centre crop 224; its last partial window is not processed",
            note="video_features also computes a flow stream (PWC-Net or RAFT flow through the flow I3D); only the "
            "RGB stream (1024-d) is produced here.",
        ),
    )
}


# ---------------------------------------------------------------------------------------------------------------
# The window table
# ---------------------------------------------------------------------------------------------------------------
def plan_windows(num_frames: int, clip_len: int, stride: int, last_window: str = "pad") -> np.ndarray:
    """First frames of the windows of a ``num_frames`` sequence (int64), the last partial window last if kept.

    Full windows start at ``0, stride, ...`` while ``start + clip_len <= num_frames``; the next start is the partial
    window, kept with ``'pad'`` when it lies inside the video and covers frames after the last full window's end.
    """
    _check_window_args(clip_len, stride, last_window)
    full = (num_frames - clip_len) // stride + 1 if num_frames >= clip_len else 0
    starts = [k * stride for k in range(full)]
    if last_window == "pad" and _partial_window(num_frames, clip_len, stride, full) is not None:
        starts.append(full * stride)
    return np.asarray(starts, dtype=np.int64)


def _partial_window(num_frames: int, clip_len: int, stride: int, full: int) -> int | None:
    """Start of the last partial window after ``full`` full windows, or None when there is none worth keeping."""
    start = full * stride
    covered_to = (full - 1) * stride + clip_len - 1 if full else -1  # last frame a full window covers
    if start < num_frames and covered_to < num_frames - 1:
        return start
    return None


def _check_window_args(clip_len: int, stride: int, last_window: str) -> None:
    check_positive_int("clip_len", clip_len)
    check_positive_int("stride", stride)
    check_choice("last_window", last_window, LAST_WINDOW)


def _check_extractor_args(
    model: torch.nn.Module,
    *,
    clip_len: int,
    stride: int,
    fps: float | None,
    layer: str,
    crops: str,
    batch_size: int,
    last_window: str,
    video_backend: str,
) -> None:
    """Every check of the extractor's settings, in one place, before anything is built: a bad value is a
    ``ValueError`` naming it, an uninstalled video backend a one-line ``ImportError`` naming the extra."""
    _check_window_args(clip_len, stride, last_window)
    check_choice("layer", layer, LAYERS)
    check_choice("crops", crops, tuple(CROPS))
    check_positive_int("batch_size", batch_size)
    if fps is not None and not fps > 0:
        raise ValueError(f"fps must be a positive number, got {fps!r}")
    if layer == "logits" and model.base_model is model:
        raise ValueError(
            f"layer='logits' needs a classification model, got the base model {type(model).__name__}"
        )
    if model.config.model_type == "inception_i3d" and clip_len < 9:
        raise ValueError(
            f"the Inception I3D needs windows of at least 9 frames (Mixed_5c must have 2 time steps for its "
            f"(2, 7, 7) pool), got clip_len={clip_len}"
        )
    check_video_backend(video_backend, "feature extraction")


@dataclass
class WindowTable:
    """Where each window of :func:`extract_features` lies: one entry per row of the features.

    ``first_frame`` / ``last_frame``: the window's first and last real frame in the frame sequence windows are cut
    from (the decoded frames, or the resampled ones when ``fps`` is set); ``source_first_frame`` /
    ``source_last_frame``: the same frames' numbers in the decoded video; ``start`` / ``end``: seconds from the first
    frame to the start of the first frame and the end of the last one (``end = time(last_frame) + 1 / fps``);
    ``padded_frames``: copies of the last frame appended to fill ``clip_len`` (0 except in a padded last window).
    """

    first_frame: np.ndarray
    last_frame: np.ndarray
    start: np.ndarray
    end: np.ndarray
    padded_frames: np.ndarray
    source_first_frame: np.ndarray
    source_last_frame: np.ndarray
    clip_len: int
    stride: int
    last_window: str
    num_frames: int  # frames in the sequence the windows are cut from
    num_source_frames: int  # frames decoded from the video
    fps: float | None  # frame rate of that sequence (the requested one, or the video's)
    source_fps: float | None  # the video's average frame rate

    def __len__(self) -> int:
        return len(self.first_frame)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: the settings and one list per column."""
        columns = ("first_frame", "last_frame", "start", "end", "padded_frames")
        source = ("source_first_frame", "source_last_frame")
        out: dict[str, Any] = {
            "clip_len": self.clip_len,
            "stride": self.stride,
            "last_window": self.last_window,
            "num_frames": self.num_frames,
            "num_source_frames": self.num_source_frames,
            "fps": self.fps,
            "source_fps": self.source_fps,
            "num_windows": len(self),
        }
        for name in columns + source:
            values = getattr(self, name)
            out[name] = [None if isinstance(v, float) and math.isnan(v) else v for v in values.tolist()]
        return out


# ---------------------------------------------------------------------------------------------------------------
# Frames in: decoded video, resampling, per-frame views
# ---------------------------------------------------------------------------------------------------------------
def _array_frames(video: Any, video_fps: float | None) -> Iterator[tuple[int, float, np.ndarray]]:
    frames = video.detach().cpu().numpy() if hasattr(video, "detach") else np.asarray(video)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(
            f"decoded frames must be a uint8 (frames, height, width, 3) RGB array, got {frames.dtype} "
            f"{tuple(frames.shape)}"
        )
    for index, frame in enumerate(frames):
        yield index, (index / video_fps if video_fps else float("nan")), frame


def resample_nearest(
    frames: Iterable[tuple[int, float, Any]], fps: float, source_fps: float | None
) -> Iterator[tuple[int, float, int, Any]]:
    """Frames at a fixed rate: for every tick ``k / fps`` before the video's end, the source frame whose timestamp is
    nearest (ties to the earlier one), as ``(k, k / fps, source_index, frame)``. Streaming: a source frame is given
    out once the next one shows that no later tick is nearer to it. The end is the last frame's time plus one
    source frame period (``1 / source_fps``)."""
    if not fps or fps <= 0:
        raise ValueError(f"fps must be a positive number, got {fps!r}")
    tick, previous = 0, None
    eps = 1e-9
    for index, time, frame in frames:
        if math.isnan(time):
            raise ValueError(
                "resampling to a fixed fps needs frame timestamps (pass video_fps for decoded frames)"
            )
        if previous is not None:
            middle = (previous[1] + time) / 2
            while tick / fps <= middle + eps:
                yield tick, tick / fps, previous[0], previous[2]
                tick += 1
        previous = (index, time, frame)
    if previous is None:
        return
    end = previous[1] + (1 / source_fps if source_fps else 1 / fps)
    while tick / fps < end - eps:
        yield tick, tick / fps, previous[0], previous[2]
        tick += 1


def ten_crop_boxes(width: int, height: int, crop_w: int, crop_h: int | None = None) -> tuple:
    """mmaction2 ``TenCrop``'s five boxes ``(x1, y1, x2, y2)``: upper left, upper right, lower left, lower right,
    centre, on a grid of ``((W - cw) // 4, (H - ch) // 4)`` steps (each is taken plain, then mirrored)."""
    crop_h = crop_w if crop_h is None else crop_h
    if crop_w > width or crop_h > height or crop_w < 1 or crop_h < 1:
        raise ValueError(f"TenCrop: a {crop_w}x{crop_h} crop does not fit a {width}x{height} frame")
    w_step, h_step = (width - crop_w) // 4, (height - crop_h) // 4
    offsets = ((0, 0), (4 * w_step, 0), (0, 4 * h_step), (4 * w_step, 4 * h_step), (2 * w_step, 2 * h_step))
    return tuple((x, y, x + crop_w, y + crop_h) for x, y in offsets)


@dataclass
class ViewMaker:
    """Frames -> normalised float32 views ``(V, n, 3, crop, crop)``, in mmaction2's crop order (module docstring).

    Each call transforms every frame it is given exactly once; the resize and crop boxes are decided once per frame
    size (a video has one; the next video may have another).
    """

    crops: str = "center"
    short_side: int = 256
    crop_size: int = 224
    normalization: str = "imagenet"
    _transform: ClipTransform | None = field(default=None, repr=False)
    _params: ClipParams | None = field(default=None, repr=False)
    _size: tuple[int, int] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.crops not in CROPS:
            raise ValueError(f"crops must be one of {tuple(CROPS)}, got {self.crops!r}")

    @property
    def num_views(self) -> int:
        return CROPS[self.crops]

    def _setup(self, height: int, width: int) -> None:
        if self.crops == "three":
            self._transform = ClipTransform(
                mode="test",
                short_side=self.crop_size,
                test_crop_size=self.crop_size,
                num_crops=3,
                normalization=self.normalization,
            )
            self._params = self._transform.sample_params(height, width)
            return
        self._transform = ClipTransform(
            mode="val", short_side=self.short_side, crop_size=self.crop_size, normalization=self.normalization
        )
        self._params = self._transform.sample_params(height, width)
        if self.crops == "ten":
            size = rescale_size(width, height, self.short_side)
            self._params = ClipParams(size, ten_crop_boxes(*size, self.crop_size), None)

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        if self._size != frames.shape[1:3]:
            self._setup(frames.shape[1], frames.shape[2])
            self._size = frames.shape[1:3]
        transform, params = self._transform, self._params
        if self.crops != "ten":
            return transform.apply(frames, params)
        if params.resize is not None:
            frames = resize_clip(frames, *params.resize)  # once for the plain and the mirrored crops
        plain = transform.apply(frames, replace(params, resize=None))
        mirrored = transform.apply(frames, replace(params, resize=None, flip=True))
        out = np.empty((10, *plain.shape[1:]), dtype=np.float32)
        out[0::2], out[1::2] = plain, mirrored
        return out


# ---------------------------------------------------------------------------------------------------------------
# The extractor
# ---------------------------------------------------------------------------------------------------------------
def _model_normalization(model: torch.nn.Module) -> str:
    return "inception" if getattr(model.config, "model_type", None) == "inception_i3d" else "imagenet"


class FeatureExtractor:
    """A model prepared once (fast eval copy, device) and the window settings; call it on videos.

    ``batch_size`` counts clips per forward pass (a window with ten crops is ten clips; at least one window runs per
    pass). ``optimize`` runs the model through ``hf_i3d.inference.optimize_for_inference`` on CPU (BatchNorm folded,
    oneDNN kernels; the plain model's outputs within 1e-4); ``optimize=False`` runs the plain computation. ``model``
    is put in eval mode and moved to ``device``. See :func:`extract_features` for the rest.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        *,
        clip_len: int = 16,
        stride: int = 4,
        fps: float | None = None,
        layer: str = "pooled",
        crops: str = "center",
        batch_size: int = DEFAULT_BATCH_SIZE,
        last_window: str = "pad",
        short_side: int = 256,
        crop_size: int | None = None,
        normalization: str | None = None,
        optimize: bool = True,
        device: str | torch.device | None = None,
        video_backend: str = DEFAULT_VIDEO_BACKEND,
        num_threads: int = 1,
    ) -> None:
        _check_extractor_args(
            model,
            clip_len=clip_len,
            stride=stride,
            fps=fps,
            layer=layer,
            crops=crops,
            batch_size=batch_size,
            last_window=last_window,
            video_backend=video_backend,
        )
        config = model.config
        self.crop_size = int(crop_size or config.image_size)
        self.views = ViewMaker(
            crops, short_side, self.crop_size, normalization or _model_normalization(model)
        )
        self.clip_len, self.stride, self.fps = int(clip_len), int(stride), fps
        self.layer, self.crops, self.last_window = layer, crops, last_window
        self.batch_size = batch_size
        self.windows_per_batch = max(1, batch_size // self.views.num_views)
        self.video_backend, self.num_threads = video_backend, num_threads
        self.device = torch.device(device) if device is not None else next(model.parameters()).device
        model = model.eval().to(self.device)
        self.optimized = bool(optimize and self.device.type == "cpu" and torch.backends.mkldnn.is_available())
        if self.optimized:
            model = optimize_for_inference(
                model, example_shape=(1, self.clip_len, config.num_channels, self.crop_size, self.crop_size)
            )
        self.model = model
        # overlapping windows of a fast Inception I3D: the stem once per run of frames (``window_sharing``)
        self.shared_stem = (
            SharedStemWindows(model, self.clip_len, self.stride)
            if self.optimized and self.stride < self.clip_len and SharedStemWindows.applies(model)
            else None
        )
        self.feature_size = int(config.num_labels if layer == "logits" else config.hidden_size)

    @property
    def num_views(self) -> int:
        return self.views.num_views

    def settings(self) -> dict[str, Any]:
        """The settings that decide the features (what ``hf-i3d extract-features`` records)."""
        return {
            "layer": self.layer,
            "crops": self.crops,
            "clip_len": self.clip_len,
            "stride": self.stride,
            "fps": self.fps,
            "last_window": self.last_window,
            "short_side": self.views.short_side,
            "crop_size": self.crop_size,
            "normalization": self.views.normalization,
            "optimized": self.optimized,
            "shared_stem": self.shared_stem is not None,
        }

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Features of clips ``(B, T, 3, H, W)``: ``(B, D)`` float32 (the layer's output). With ``optimize=False``
        the plain computation runs (``inference.plain_forward``), not the models' automatic fast path."""
        with torch.inference_mode(), contextlib.nullcontext() if self.optimized else plain_forward():
            pixel_values = pixel_values.to(self.device)
            if self.layer == "pooled":
                out = self.model.base_model(pixel_values, return_dict=True).pooler_output
            else:
                out = self.model(pixel_values, return_dict=True).logits
        return out.float().cpu()

    def __call__(
        self,
        video: str | os.PathLike | np.ndarray | torch.Tensor,
        *,
        video_fps: float | None = None,
        progress: bool = False,
    ) -> tuple[np.ndarray, WindowTable]:
        """Features and window table of one video (a path, or decoded uint8 ``(T, H, W, 3)`` RGB frames with their
        frame rate ``video_fps`` for the times)."""
        if isinstance(video, (str, os.PathLike)):
            with SequentialVideoReader(video, self.video_backend, num_threads=self.num_threads) as reader:
                return self._run(iter(reader), reader.fps, reader.num_frames, progress)
        return self._run(_array_frames(video, video_fps), video_fps, len(video), progress)

    def _window_features(
        self, buffer: _FrameBuffer, pending: list[tuple[int, int]], index: np.ndarray
    ) -> torch.Tensor:
        """``(W, V, D)`` features of the pending windows (frame numbers ``index``, ``(W, T)``): full windows that
        overlap share the stem where ``shared_stem`` applies, the rest run as clips."""
        # full windows come first, one every ``stride`` frames; a padded last window after them
        full = sum(1 for _, padded in pending if padded == 0)
        parts = []
        if self.shared_stem is not None and self.shared_stem.worthwhile(full):
            first = pending[0][0]
            run = buffer.gather(np.arange(first, first + self.shared_stem.plan(full).run_length)[None])[0]
            with torch.inference_mode():
                out = self.shared_stem.features(torch.from_numpy(run), full, self.layer)
            parts.append(out.reshape(full, self.num_views, -1))
            index = index[full:]
        if len(index):
            clips = buffer.gather(index)  # (W, V, T, 3, h, w)
            out = self.forward(torch.from_numpy(clips.reshape(-1, *clips.shape[2:])))
            parts.append(out.reshape(len(index), self.num_views, -1))
        return torch.cat(parts) if len(parts) > 1 else parts[0]

    # -- the streaming loop ----------------------------------------------------------------------------------------
    def _run(
        self,
        source: Iterator[tuple[int, float, np.ndarray]],
        source_fps: float | None,
        num_source_hint: int | None,
        progress: bool,
    ) -> tuple[np.ndarray, WindowTable]:
        clip_len, stride = self.clip_len, self.stride
        counted = _Counter(source)
        if self.fps is not None:
            sequence: Iterator = resample_nearest(counted, self.fps, source_fps)
            sequence_fps = float(self.fps)
            hint = (
                None if not (num_source_hint and source_fps) else int(num_source_hint / source_fps * self.fps)
            )
        else:
            sequence = ((i, t, i, f) for i, t, f in counted)
            sequence_fps = source_fps
            hint = num_source_hint
        bar = _window_bar(progress, hint, clip_len, stride, self.last_window)
        buffer = _FrameBuffer(clip_len + (self.windows_per_batch - 1) * stride + 8)
        rows: list[tuple[int, int, int]] = []  # (first, last real frame, padded frames)
        meta: list[tuple[float, float, int, int]] = []  # (start, time of last, source first, source last)
        features: list[torch.Tensor] = []
        pending: list[tuple[int, int]] = []  # (start, padded) of windows whose frames are all in the buffer
        next_start, total = 0, 0
        group: list[tuple[int, float, int, np.ndarray]] = []

        def flush_group() -> None:
            if group:
                views = self.views(np.stack([frame for *_, frame in group]))
                buffer.append(views, [(i, t, s) for i, t, s, _ in group])
                group.clear()

        def run_pending() -> None:
            if not pending:
                buffer.drop_before(next_start)
                return
            index = np.asarray(
                [
                    [min(start + k, start + clip_len - 1 - padded) for k in range(clip_len)]
                    for start, padded in pending
                ]
            )
            features.append(self._window_features(buffer, pending, index))
            for start, padded in pending:
                last = start + clip_len - 1 - padded
                rows.append((start, last, padded))
                meta.append(
                    (buffer.time(start), buffer.time(last), buffer.source(start), buffer.source(last))
                )
            bar.update(len(pending))
            pending.clear()
            buffer.drop_before(next_start)

        for index, time, source_index, frame in sequence:
            total = index + 1
            if index < next_start:  # a frame between windows (stride > clip_len): no window reads it
                if buffer.size:
                    run_pending()  # the buffer holds consecutive frames: empty it before the gap
                continue
            group.append((index, time, source_index, frame))
            if len(group) >= min(stride, 8) or index - next_start + 1 >= clip_len:
                flush_group()
            while next_start + clip_len <= total and buffer.end >= next_start + clip_len:
                pending.append((next_start, 0))
                next_start += stride
                if len(pending) >= self.windows_per_batch:
                    run_pending()
        flush_group()
        full = len(rows) + len(pending)
        if self.last_window == "pad":
            start = _partial_window(total, clip_len, stride, full)
            if start is not None:
                pending.append((start, start + clip_len - total))
        run_pending()
        bar.close()

        num_views, size = self.num_views, self.feature_size
        array = torch.cat(features).numpy() if features else np.zeros((0, num_views, size), dtype=np.float32)
        if self.crops == "center":
            array = array[:, 0]
        rows_array = np.asarray(rows, dtype=np.int64).reshape(-1, 3)
        meta_array = np.asarray(meta, dtype=np.float64).reshape(-1, 4)
        period = 1 / sequence_fps if sequence_fps else float("nan")
        table = WindowTable(
            first_frame=rows_array[:, 0],
            last_frame=rows_array[:, 1],
            start=meta_array[:, 0],
            end=meta_array[:, 1] + period,
            padded_frames=rows_array[:, 2],
            source_first_frame=meta_array[:, 2].astype(np.int64),
            source_last_frame=meta_array[:, 3].astype(np.int64),
            clip_len=clip_len,
            stride=stride,
            last_window=self.last_window,
            num_frames=total,
            num_source_frames=counted.count,
            fps=sequence_fps,
            source_fps=source_fps,
        )
        return np.ascontiguousarray(array, dtype=np.float32), table


class _Counter:
    """Passes frames through and counts them (the decoded frame count, also when resampling)."""

    def __init__(self, frames: Iterator) -> None:
        self.frames, self.count = frames, 0

    def __iter__(self):
        for item in self.frames:
            self.count += 1
            yield item


class _FrameBuffer:
    """The transformed frames pending windows still need: float32 ``(V, capacity, 3, h, w)`` plus each frame's time
    and source number; frames ``first .. end - 1`` of the sequence are held. Compacted in place, so its size is
    fixed by the batch and window length, not by the video."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.data: np.ndarray | None = None
        self.times = np.zeros(capacity, dtype=np.float64)
        self.sources = np.zeros(capacity, dtype=np.int64)
        self.first = 0  # sequence index of slot 0
        self.size = 0

    @property
    def end(self) -> int:
        return self.first + self.size

    def append(self, views: np.ndarray, info: list[tuple[int, float, int]]) -> None:
        n = views.shape[1]
        if self.size == 0:
            self.first = info[0][0]
        if self.data is None:
            self.data = np.empty((views.shape[0], self.capacity, *views.shape[2:]), dtype=np.float32)
        if self.size + n > self.capacity:  # the caller drops frames after every batch; grow if it cannot
            grown = np.empty((self.data.shape[0], self.size + n, *self.data.shape[2:]), dtype=np.float32)
            grown[:, : self.size] = self.data[:, : self.size]
            self.data, self.capacity = grown, self.size + n
            self.times = np.resize(self.times, self.capacity)
            self.sources = np.resize(self.sources, self.capacity)
        self.data[:, self.size : self.size + n] = views
        self.times[self.size : self.size + n] = [t for _, t, _ in info]
        self.sources[self.size : self.size + n] = [s for _, _, s in info]
        self.size += n

    def drop_before(self, index: int) -> None:
        keep_from = min(max(index - self.first, 0), self.size)
        if keep_from == 0:
            return
        remaining = self.size - keep_from
        if remaining:
            self.data[:, :remaining] = self.data[:, keep_from : self.size].copy()
            self.times[:remaining] = self.times[keep_from : self.size]
            self.sources[:remaining] = self.sources[keep_from : self.size]
        self.first += keep_from
        self.size = remaining

    def gather(self, index: np.ndarray) -> np.ndarray:
        """Frames ``index`` (sequence numbers, ``(W, T)``) as ``(W, V, T, 3, h, w)``."""
        slots = index - self.first
        return np.ascontiguousarray(self.data[:, slots].transpose(1, 0, 2, 3, 4, 5))

    def time(self, index: int) -> float:
        return float(self.times[index - self.first])

    def source(self, index: int) -> int:
        return int(self.sources[index - self.first])


class _NoBar:
    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


def _window_bar(progress: bool, num_frames: int | None, clip_len: int, stride: int, last_window: str):
    if not progress:
        return _NoBar()
    from tqdm.auto import tqdm

    total = len(plan_windows(num_frames, clip_len, stride, last_window)) if num_frames else None
    return tqdm(total=total, desc="windows", unit="window", leave=False)


# ---------------------------------------------------------------------------------------------------------------
# Output files
# ---------------------------------------------------------------------------------------------------------------
OUTPUT_ARRAYS = {
    "NAME.npy": "float32 features, (num_windows, D) for centre crops or (num_windows, num_crops, D); row i belongs "
    "to window i of NAME.json",
    "windows.first_frame / last_frame": "first and last real frame of each window in the frame sequence (the "
    "decoded frames, or the resampled ones with fps)",
    "windows.source_first_frame / source_last_frame": "the same frames' numbers in the decoded video",
    "windows.start / end": "seconds from the first frame: start of the first frame, end of the last one",
    "windows.padded_frames": "copies of the last frame appended to the last partial window (last_window 'pad')",
}


def feature_paths(output_dir: str | os.PathLike, name: str) -> tuple[str, str]:
    """``(NAME.npy, NAME.json)`` in ``output_dir``."""
    base = os.path.join(os.fspath(output_dir), name)
    return base + ".npy", base + ".json"


def is_finished(output_dir: str | os.PathLike, name: str) -> bool:
    """Both files of ``name`` exist (the JSON is written last, so a video stopped half-way is not finished)."""
    return all(os.path.isfile(path) for path in feature_paths(output_dir, name))


def _write_atomic(path: str, write) -> None:
    """Write through a hidden temporary file in the same folder, then rename it into place (never a half file)."""
    folder, name = os.path.split(path)
    temporary = os.path.join(folder, f".{name}.{os.getpid()}.partial")
    try:
        with open(temporary, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


def remove_stale_partials(output_dir: str | os.PathLike, name: str) -> list[str]:
    """Delete the temporary files a killed run left for ``name`` (``.NAME.npy.<pid>.partial``); returns them."""
    import glob

    stale = glob.glob(os.path.join(glob.escape(os.fspath(output_dir)), f".{glob.escape(name)}.*.partial"))
    for path in stale:
        os.remove(path)
    return stale


def save_features(
    output_dir: str | os.PathLike, name: str, features: np.ndarray, metadata: dict[str, Any]
) -> tuple[str, str]:
    """Write ``NAME.npy`` then ``NAME.json`` (``metadata`` plus the array's shape), each atomically."""
    import json

    npy, json_path = feature_paths(output_dir, name)
    _write_atomic(npy, lambda handle: np.save(handle, features, allow_pickle=False))
    record = {"features": os.path.basename(npy), "shape": list(features.shape), "dtype": str(features.dtype)}
    record.update(metadata)
    text = json.dumps(record, indent=1, allow_nan=False) + "\n"
    _write_atomic(json_path, lambda handle: handle.write(text.encode("utf-8")))
    return npy, json_path


def extract_features(
    model: torch.nn.Module,
    video: str | os.PathLike | np.ndarray | torch.Tensor,
    *,
    clip_len: int = 16,
    stride: int = 4,
    fps: float | None = None,
    layer: str = "pooled",
    crops: str = "center",
    batch_size: int = DEFAULT_BATCH_SIZE,
    last_window: str = "pad",
    short_side: int = 256,
    crop_size: int | None = None,
    normalization: str | None = None,
    optimize: bool = True,
    device: str | torch.device | None = None,
    video_backend: str = DEFAULT_VIDEO_BACKEND,
    video_fps: float | None = None,
    progress: bool = False,
) -> tuple[np.ndarray, WindowTable]:
    """Features of every ``clip_len``-frame window started every ``stride`` frames of ``video``.

    Args:
        model: an I3D or Inception I3D model of hf_i3d (classification or base model).
        video: a video file, or decoded uint8 ``(T, H, W, 3)`` RGB frames (then ``video_fps`` gives the times).
        clip_len, stride: window length and step, in frames of the (resampled) sequence.
        fps: resample to this frame rate first (nearest frame by timestamp); None keeps the video's frames.
        layer: 'pooled' (the vector before the classifier) or 'logits'.
        crops: 'center', 'three' or 'ten' (mmaction2's CenterCrop / ThreeCrop / TenCrop, in their order).
        batch_size: clips per forward pass (windows x crops; at least one window).
        last_window: 'pad' (repeat the last frame; the true end is recorded) or 'drop'.
        short_side, crop_size: the resize before the centre and ten crops, and the crop (default
            ``config.image_size``); 'three' resizes the short side to ``crop_size``.
        normalization: 'imagenet' or 'inception' (default: the model family's).
        optimize: run through ``inference.optimize_for_inference`` on CPU.
        device: where the model runs (default: where its parameters are).
        video_backend: 'pyav', 'decord' or 'torchcodec' (``decoding.VIDEO_BACKENDS``; each decodes every frame
            once, in order, with ``decoding.SequentialVideoReader``: the same frames whichever).

    Returns ``(features, windows)``: float32 ``(num_windows, D)`` for 'center', ``(num_windows, num_crops, D)`` for
    'three' and 'ten'; and the :class:`WindowTable`. Several videos with one model: build a
    :class:`FeatureExtractor` once and call it per video.
    """
    extractor = FeatureExtractor(
        model,
        clip_len=clip_len,
        stride=stride,
        fps=fps,
        layer=layer,
        crops=crops,
        batch_size=batch_size,
        last_window=last_window,
        short_side=short_side,
        crop_size=crop_size,
        normalization=normalization,
        optimize=optimize,
        device=device,
        video_backend=video_backend,
    )
    return extractor(video, video_fps=video_fps, progress=progress)


__all__ = [
    "CROPS",
    "LAST_WINDOW",
    "LAYERS",
    "PRESETS",
    "FeatureExtractor",
    "FeaturePreset",
    "ViewMaker",
    "WindowTable",
    "OUTPUT_ARRAYS",
    "extract_features",
    "feature_paths",
    "is_finished",
    "remove_stale_partials",
    "save_features",
    "plan_windows",
    "resample_nearest",
    "ten_crop_boxes",
]
