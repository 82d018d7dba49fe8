"""Clip transforms with mmaction2's arithmetic: resize, crops, flip, normalise, and the fused ('lazy') variant.

A clip is a uint8 numpy array ``(T, H, W, 3)`` in RGB order (several clips are stacked clip-major). The crop boxes are
plain functions returning ``(x1, y1, x2, y2)`` so they can be checked on their own; :class:`ClipTransform` composes
them into the train / val / test pipelines of the zoo configs and returns float32 ``(V, T, C, H, W)`` views.

Ported from ``mmaction/datasets/pipelines/augmentations.py`` at mmaction2 v0.5.0 (``7dc99cf6``): ``Resize``
(``mmcv.rescale_size`` + ``mmcv.imresize`` = ``cv2.resize(INTER_LINEAR)``), ``MultiScaleCrop``, ``RandomCrop``,
``CenterCrop``, ``ThreeCrop``, ``Flip`` (``mmcv.imflip_``), ``Normalize`` (``mmcv.imnormalize_``), ``Fuse`` and
``FormatShape('NCTHW')`` (view order). The work is done frame by frame in one pass: resize only when the size
changes (``cv2.resize`` to the same size is a copy), crop views instead of copies, and the normalisation as a
per-channel lookup table of the exact float32 values ``mmcv.imnormalize_`` produces for each of the 256 levels,
written straight into the one output array.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, replace
from functools import cache
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from .zoo import DataSettings

IMAGENET_MEAN = (123.675, 116.28, 103.53)  # mmaction2 img_norm_cfg, RGB, 0-255 scale
IMAGENET_STD = (58.395, 57.12, 57.375)
NORMALIZATIONS = ("imagenet", "inception", "pytorchvideo")
# pytorchvideo / PySlowFast Kinetics models: ``x / 255`` then mean 0.45, std 0.225 per channel (``DATA.MEAN/STD``)
PYTORCHVIDEO_MEAN = (0.45, 0.45, 0.45)
PYTORCHVIDEO_STD = (0.225, 0.225, 0.225)
MODES = ("train", "val", "test")
TRAIN_CROPS = ("multiscale", "random")

Box = tuple[int, int, int, int]  # (x1, y1, x2, y2): columns x1..x2-1 and rows y1..y2-1


# ---------------------------------------------------------------------------------------------------------------
# Size and crop-box arithmetic (pure functions)
# ---------------------------------------------------------------------------------------------------------------
def rescale_size(width: int, height: int, short_side: int) -> tuple[int, int]:
    """``(new_w, new_h)`` of ``Resize(scale=(-1, short_side))``: keep the ratio, short side to ``short_side``.

    mmaction2 turns ``(-1, s)`` into ``(inf, s)`` and ``mmcv.rescale_size`` computes
    ``f = min(inf / long, s / short)`` and ``int(w * f + 0.5), int(h * f + 0.5)``.
    """
    factor = min(float("inf") / max(width, height), short_side / min(width, height))
    return int(width * factor + 0.5), int(height * factor + 0.5)


def center_crop_box(width: int, height: int, crop_w: int, crop_h: int | None = None) -> Box:
    """``CenterCrop``: ``left = (W - cw) // 2``, ``top = (H - ch) // 2``."""
    crop_h = crop_w if crop_h is None else crop_h
    _check_fits(width, height, crop_w, crop_h, "CenterCrop")
    left, top = (width - crop_w) // 2, (height - crop_h) // 2
    return left, top, left + crop_w, top + crop_h


def three_crop_boxes(width: int, height: int, crop_w: int, crop_h: int | None = None) -> tuple[Box, Box, Box]:
    """``ThreeCrop``: three crops along the long side, in mmaction2's order left/top, right/bottom, middle.

    The crop must span the short side (``crop_h == H`` or ``crop_w == W``); the offsets are ``0, 2*step, step``
    with ``step = (long - crop) // 2``. A landscape frame is cut along x, a portrait one along y.
    """
    crop_h = crop_w if crop_h is None else crop_h
    _check_fits(width, height, crop_w, crop_h, "ThreeCrop")
    if crop_h == height:
        step = (width - crop_w) // 2
        offsets = ((0, 0), (2 * step, 0), (step, 0))
    elif crop_w == width:
        step = (height - crop_h) // 2
        offsets = ((0, 0), (0, 2 * step), (0, step))
    else:
        raise ValueError(
            f"ThreeCrop needs the {crop_w}x{crop_h} crop to span the short side of the {width}x{height} frame "
            "(resize the short side to the crop size first)"
        )
    return tuple((x, y, x + crop_w, y + crop_h) for x, y in offsets)  # type: ignore[return-value]


def multiscale_crop_sizes(
    width: int,
    height: int,
    input_size: int | tuple[int, int] = 224,
    scales: tuple[float, ...] = (1, 0.8),
    max_wh_scale_gap: int = 0,
) -> list[tuple[int, int]]:
    """``MultiScaleCrop`` candidate ``(crop_w, crop_h)``: ``int(min(H, W) * s)`` per scale, pairs whose scale
    levels differ by at most ``max_wh_scale_gap``, each side snapped to ``input_size`` when within 3 px."""
    in_w, in_h = (input_size, input_size) if isinstance(input_size, int) else input_size
    base_size = min(height, width)
    sizes = [int(base_size * s) for s in scales]
    candidates = []
    for i, h in enumerate(sizes):
        for j, w in enumerate(sizes):
            if abs(i - j) <= max_wh_scale_gap:
                candidates.append((in_w if abs(w - in_w) < 3 else w, in_h if abs(h - in_h) < 3 else h))
    return candidates


def multiscale_crop_offsets(width: int, height: int, crop_w: int, crop_h: int) -> list[tuple[int, int]]:
    """The 5 fixed ``(x, y)`` offsets of ``MultiScaleCrop(random_crop=False)``: upper left, upper right, lower left,
    lower right, centre, on a grid of ``((W - cw) // 4, (H - ch) // 4)`` steps."""
    _check_fits(width, height, crop_w, crop_h, "MultiScaleCrop")
    w_step, h_step = (width - crop_w) // 4, (height - crop_h) // 4
    return [(0, 0), (4 * w_step, 0), (0, 4 * h_step), (4 * w_step, 4 * h_step), (2 * w_step, 2 * h_step)]


def multiscale_crop_box(
    width: int,
    height: int,
    rng: Any,
    input_size: int | tuple[int, int] = 224,
    scales: tuple[float, ...] = (1, 0.8),
    max_wh_scale_gap: int = 0,
) -> Box:
    """One ``MultiScaleCrop`` box: a uniform choice of candidate size, then of the 5 fixed offsets.

    mmaction2 makes both choices with Python's ``random.choice``; here they are ``rng.randint(n)`` draws from the
    given ``np.random.RandomState`` (same distribution, not the same random stream).
    """
    sizes = multiscale_crop_sizes(width, height, input_size, scales, max_wh_scale_gap)
    crop_w, crop_h = sizes[rng.randint(len(sizes))]
    offsets = multiscale_crop_offsets(width, height, crop_w, crop_h)
    x, y = offsets[rng.randint(len(offsets))]
    return x, y, x + crop_w, y + crop_h


def random_crop_box(width: int, height: int, size: int, rng: Any) -> Box:
    """``RandomCrop(size)``: ``y = randint(0, H - size)`` then ``x = randint(0, W - size)`` (upper bound exclusive,
    as mmaction2 writes it; 0 when the side equals ``size``)."""
    _check_fits(width, height, size, size, "RandomCrop")
    y = int(rng.randint(0, height - size)) if height > size else 0
    x = int(rng.randint(0, width - size)) if width > size else 0
    return x, y, x + size, y + size


def lazy_crop_box(box: Box, size: tuple[int, int], original_size: tuple[int, int]) -> Box:
    """A box on a frame resized to ``size = (w, h)``, mapped back to the ``original_size`` frame as ``Fuse`` does.

    The lazy crop ops scale the box by ``original / resized`` into a float32 ``crop_bbox`` and ``Fuse`` rounds it
    (``np.round``, half to even) before cutting the original frame.
    """
    (w, h), (ow, oh) = size, original_size
    x1, y1, x2, y2 = box
    scaled = np.array([x1 * ow / w, y1 * oh / h, x2 * ow / w, y2 * oh / h], dtype=np.float32)
    return tuple(int(v) for v in scaled.round().astype(int))  # type: ignore[return-value]


def _cv2():
    """OpenCV, imported lazily with an install hint (through importlib, so that transformers' remote-code import
    check does not report the module name 'cv2', which is not the name to pip-install)."""
    try:
        return importlib.import_module("cv2")
    except ImportError as exc:
        raise ImportError("hf_i3d.transforms needs OpenCV: pip install opencv-python-headless") from exc


def _check_fits(width: int, height: int, crop_w: int, crop_h: int, what: str) -> None:
    if crop_w > width or crop_h > height or crop_w < 1 or crop_h < 1:
        raise ValueError(f"{what}: a {crop_w}x{crop_h} crop does not fit a {width}x{height} frame")


# ---------------------------------------------------------------------------------------------------------------
# Clip operations
# ---------------------------------------------------------------------------------------------------------------
@cache
def normalization_lut(normalization: str) -> np.ndarray:
    """``(3, 256)`` float32: the normalised value of every uint8 level, per RGB channel.

    'imagenet' reproduces ``mmcv.imnormalize_`` bit for bit: ``cv2.subtract`` of the float64 mean then
    ``cv2.multiply`` by ``1 / float64(std)``, each rounded to float32 (std and mean are float32 first).
    'inception' is DeepMind's ``x / 127.5 - 1`` (rounded once to float32).
    'pytorchvideo' is PySlowFast's ``(x / 255 - 0.45) / 0.225`` in float32 steps (``div255`` then
    ``NormalizeVideo``).
    """
    levels = np.arange(256, dtype=np.float64)[None, :]
    if normalization == "imagenet":
        mean = np.asarray(IMAGENET_MEAN, dtype=np.float32).astype(np.float64)[:, None]
        stdinv = 1.0 / np.asarray(IMAGENET_STD, dtype=np.float32).astype(np.float64)[:, None]
        lut = ((levels - mean).astype(np.float32).astype(np.float64) * stdinv).astype(np.float32)
    elif normalization == "inception":
        lut = np.repeat(levels / 127.5 - 1.0, 3, axis=0).astype(np.float32)
    elif normalization == "pytorchvideo":
        scaled = (levels.astype(np.float32) / np.float32(255.0)).astype(np.float32)
        mean = np.asarray(PYTORCHVIDEO_MEAN, dtype=np.float32)[:, None]
        std = np.asarray(PYTORCHVIDEO_STD, dtype=np.float32)[:, None]
        lut = ((scaled - mean) / std).astype(np.float32)
    else:
        raise ValueError(f"normalization must be one of {NORMALIZATIONS}, got {normalization!r}")
    lut.setflags(write=False)
    return lut


def resize_clip(frames: np.ndarray, width: int, height: int) -> np.ndarray:
    """Every frame resized to ``width x height`` with ``cv2.resize(INTER_LINEAR)`` (``mmcv.imresize``);
    the input itself when it already has that size (cv2 would return an identical copy)."""
    if frames.shape[1:3] == (height, width):
        return frames
    cv2 = _cv2()
    out = np.empty((frames.shape[0], height, width, frames.shape[3]), dtype=frames.dtype)
    for i, frame in enumerate(frames):
        cv2.resize(frame, (width, height), dst=out[i], interpolation=cv2.INTER_LINEAR)
    return out


def normalize_clip(frames: np.ndarray, normalization: str = "imagenet", flip: bool = False) -> np.ndarray:
    """uint8 ``(T, H, W, 3)`` -> float32 ``(T, 3, H, W)`` normalised (and mirrored left-right if ``flip``)."""
    frames = _check_frames(frames)
    out = np.empty((frames.shape[0], 3, *frames.shape[1:3]), dtype=np.float32)
    _normalize_frames_into(out, frames, normalization_lut(normalization), flip)
    return out


def _normalize_frames_into(out: np.ndarray, frames: np.ndarray, lut: np.ndarray, flip: bool) -> None:
    cv2 = _cv2()

    luts = [np.ascontiguousarray(lut[c].reshape(256, 1)) for c in range(3)]
    for t, frame in enumerate(frames):
        if flip:
            frame = cv2.flip(frame, 1)
        for c, plane in enumerate(cv2.split(frame)):
            cv2.LUT(plane, luts[c], dst=out[t, c])


def _check_frames(frames: Any) -> np.ndarray:
    if not isinstance(frames, np.ndarray):
        raise TypeError(f"frames must be a numpy array (T, H, W, 3) of uint8, got {type(frames).__name__}")
    if frames.ndim != 4 or frames.shape[3] != 3 or frames.dtype != np.uint8:
        raise ValueError(
            f"frames must be a uint8 array of shape (T, H, W, 3) in RGB order, got {frames.dtype} {frames.shape}"
        )
    if frames.shape[0] == 0:
        raise ValueError("frames is empty (0 frames)")
    return frames


# ---------------------------------------------------------------------------------------------------------------
# The composed pipelines
# ---------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ClipParams:
    """What :meth:`ClipTransform.apply` does to every frame: resize the whole frame to ``resize`` (``None``: keep
    it), cut each box, resize each crop to ``output_size`` (``None``: keep it), mirror if ``flip``, normalise."""

    resize: tuple[int, int] | None
    boxes: tuple[Box, ...]
    output_size: tuple[int, int] | None
    flip: bool = False


@dataclass(frozen=True)
class ClipTransform:
    """The frame pipeline of one mode of an mmaction2 I3D config (resize -> crop -> flip -> normalise -> views).

    * ``train``: ``Resize((-1, short_side))`` -> ``MultiScaleCrop(crop_size, scales, random_crop=False,
      max_wh_scale_gap)`` -> ``Resize((crop_size, crop_size), keep_ratio=False)`` -> ``Flip(flip_ratio)``; with
      ``train_crop='random'``: ``RandomCrop(crop_size)`` instead of the last two crop steps.
    * ``val``: ``Resize((-1, short_side))`` -> ``CenterCrop(crop_size)``.
    * ``test``: ``Resize((-1, short_side))`` -> ``ThreeCrop(test_crop_size)`` (``num_crops=3``) or
      ``CenterCrop(test_crop_size)`` (``num_crops=1``).
    * ``lazy=True`` (train/val of the 'fast' config): the same boxes, mapped back to the original frame and rounded
      (``Fuse``), cut from the original frame, resized once to ``crop_size`` and flipped; close to, not equal to,
      the eager result unless the first resize is the identity. The test pipeline is never lazy.

    Output: float32 ``(V, T, 3, H, W)`` with ``V = crops * num_clips`` in mmaction2's ``FormatShape`` order,
    crop-major: view ``v`` is crop ``v // num_clips`` (left, right, middle for ``ThreeCrop``) of clip
    ``v % num_clips``.
    """

    mode: str = "test"
    short_side: int = 256
    crop_size: int = 224
    test_crop_size: int = 256
    num_crops: int = 3
    normalization: str = "imagenet"
    lazy: bool = False
    train_crop: str = "multiscale"
    scales: tuple[float, ...] = (1, 0.8)
    max_wh_scale_gap: int = 0
    flip_ratio: float = 0.5

    def __post_init__(self) -> None:
        for name, allowed in (
            ("mode", MODES),
            ("normalization", NORMALIZATIONS),
            ("train_crop", TRAIN_CROPS),
        ):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {getattr(self, name)!r}")
        if self.num_crops not in (1, 3):
            raise ValueError(f"num_crops must be 1 (centre crop) or 3 (ThreeCrop), got {self.num_crops!r}")
        for name in ("short_side", "crop_size", "test_crop_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if not 0.0 <= self.flip_ratio <= 1.0:
            raise ValueError(f"flip_ratio must lie in [0, 1], got {self.flip_ratio!r}")

    @property
    def crops_per_clip(self) -> int:
        """Views each clip gives (``num_crops`` in test, 1 otherwise)."""
        return self.num_crops if self.mode == "test" else 1

    def sample_params(self, height: int, width: int, rng: np.random.RandomState | None = None) -> ClipParams:
        """Decide the resize, crop boxes and flip for a clip of ``height x width`` frames.

        Random draws (train only) come from ``rng`` in this order: crop size, crop offset (multiscale) or y, x
        (random crop), then the flip (``rng.rand() < flip_ratio``, as mmaction2's ``Flip``). ``None`` draws from
        the global ``np.random``.
        """
        rw, rh = rescale_size(width, height, self.short_side)
        crop = self.crop_size
        if self.mode == "test":
            size = self.test_crop_size
            boxes = (
                three_crop_boxes(rw, rh, size) if self.num_crops == 3 else (center_crop_box(rw, rh, size),)
            )
            return ClipParams(resize=(rw, rh), boxes=boxes, output_size=None)
        rng = np.random if rng is None else rng
        flip = False
        if self.mode == "val":
            box = center_crop_box(rw, rh, crop)
        elif self.train_crop == "multiscale":
            box = multiscale_crop_box(rw, rh, rng, crop, self.scales, self.max_wh_scale_gap)
        else:
            box = random_crop_box(rw, rh, crop, rng)
        if self.mode == "train":
            flip = bool(rng.rand() < self.flip_ratio)
        if self.lazy:
            return ClipParams(None, (lazy_crop_box(box, (rw, rh), (width, height)),), (crop, crop), flip)
        return ClipParams((rw, rh), (box,), (crop, crop), flip)

    def apply(self, frames: np.ndarray, params: ClipParams, num_clips: int = 1) -> np.ndarray:
        """Apply ``params`` to ``frames`` (``num_clips`` clips stacked clip-major): float32 ``(V, T, 3, h, w)``."""
        cv2 = _cv2()
        frames = _check_frames(frames)
        total, height, width = frames.shape[:3]
        if (
            isinstance(num_clips, bool)
            or not isinstance(num_clips, int)
            or num_clips < 1
            or total % num_clips
        ):
            raise ValueError(
                f"{total} frames cannot be split into num_clips={num_clips!r} clips of equal length"
            )
        clip_len = total // num_clips
        fw, fh = params.resize or (width, height)
        for x1, y1, x2, y2 in params.boxes:
            if not (0 <= x1 < x2 <= fw and 0 <= y1 < y2 <= fh):
                raise ValueError(f"crop box {(x1, y1, x2, y2)} lies outside the {fw}x{fh} frame")
        first = params.boxes[0]
        ow, oh = params.output_size or (first[2] - first[0], first[3] - first[1])
        out = np.empty((len(params.boxes) * num_clips, clip_len, 3, oh, ow), dtype=np.float32)
        views = out.reshape(len(params.boxes), total, 3, oh, ow)  # crop-major, then clip-major frames
        luts = [
            np.ascontiguousarray(normalization_lut(self.normalization)[c].reshape(256, 1)) for c in range(3)
        ]
        resize_frame = (fw, fh) != (width, height)
        # several crops cut from one frame (ThreeCrop) share one split of the frame into planes
        split_frame_once = len(params.boxes) > 1 and not params.flip
        for t, frame in enumerate(frames):
            if resize_frame:
                frame = cv2.resize(frame, (fw, fh), interpolation=cv2.INTER_LINEAR)
            frame_planes = cv2.split(frame) if split_frame_once else None
            for k, (x1, y1, x2, y2) in enumerate(params.boxes):
                if (x2 - x1, y2 - y1) == (ow, oh) and frame_planes is not None:
                    planes = [plane[y1:y2, x1:x2] for plane in frame_planes]
                else:
                    crop = frame[y1:y2, x1:x2]
                    if (x2 - x1, y2 - y1) != (ow, oh):
                        crop = cv2.resize(crop, (ow, oh), interpolation=cv2.INTER_LINEAR)
                    if params.flip:
                        crop = cv2.flip(crop, 1)
                    planes = cv2.split(crop)
                for c, plane in enumerate(planes):
                    cv2.LUT(plane, luts[c], dst=views[k, t, c])
        return out

    def __call__(
        self, frames: np.ndarray, rng: np.random.RandomState | None = None, num_clips: int = 1
    ) -> np.ndarray:
        """Transform ``num_clips`` clips stacked clip-major in ``frames`` (uint8 ``(num_clips*T, H, W, 3)``, RGB)
        into float32 ``(crops_per_clip * num_clips, T, 3, h, w)``. All clips share one set of random choices, as
        in mmaction2 (one decision per sample)."""
        frames = _check_frames(frames)
        return self.apply(frames, self.sample_params(frames.shape[1], frames.shape[2], rng), num_clips)


def build_clip_transform(settings: DataSettings, mode: str, **overrides: Any) -> ClipTransform:
    """The :class:`ClipTransform` of a zoo entry's ``mode`` pipeline (``settings`` is a ``zoo.DataSettings``).

    ``lazy`` applies to train and val only (the 'fast' config tests eagerly). The train crop is mmaction2's
    ``MultiScaleCrop`` for the mmaction2 models and a ``RandomCrop`` for the DeepMind model (``normalization
    'inception'``: "224 random crop" in the kinetics-i3d README), unless ``settings`` has a ``train_crop`` field.
    ``overrides`` replace any field of the result.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    train_crop = getattr(settings, "train_crop", None) or (
        "random" if settings.normalization == "inception" else "multiscale"
    )
    transform = ClipTransform(
        mode=mode,
        short_side=settings.short_side,
        crop_size=settings.crop_size,
        test_crop_size=settings.test_crop_size,
        num_crops=settings.num_crops,
        normalization=settings.normalization,
        lazy=bool(settings.lazy) and mode != "test",
        train_crop=train_crop,
    )
    return replace(transform, **overrides) if overrides else transform


__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "Box",
    "ClipParams",
    "ClipTransform",
    "build_clip_transform",
    "center_crop_box",
    "lazy_crop_box",
    "multiscale_crop_box",
    "multiscale_crop_offsets",
    "multiscale_crop_sizes",
    "normalization_lut",
    "normalize_clip",
    "random_crop_box",
    "rescale_size",
    "resize_clip",
    "three_crop_boxes",
]
