"""Clip transforms with mmaction2's arithmetic: resize, crops, flip, normalise, and the fused ('lazy') variant.

A clip is a uint8 numpy array ``(T, H, W, 3)`` in RGB order (several clips are stacked clip-major). The crop boxes are
plain functions returning ``(x1, y1, x2, y2)`` so they can be checked on their own; :class:`ClipTransform` composes
them into the train / val / test pipelines of the zoo configs and returns float32 ``(V, T, C, H, W)`` views. The
arithmetic the video processor shares (resize, centre and three crops, normalisation, the one-pass cut of views)
lives in ``hf_i3d.frame_ops``; this module adds the training crops, flips and the per-mode pipelines.

Ported from ``mmaction/datasets/pipelines/augmentations.py`` at mmaction2 v0.5.0 (``7dc99cf6``): ``Resize``
(``mmcv.rescale_size`` + ``mmcv.imresize`` = ``cv2.resize(INTER_LINEAR)``), ``MultiScaleCrop``, ``RandomCrop``,
``CenterCrop``, ``ThreeCrop``, ``Flip`` (``mmcv.imflip_``), ``Normalize`` (``mmcv.imnormalize_``), ``Fuse`` and
``FormatShape('NCTHW')`` (view order). The work is done frame by frame in one pass: resize only when the size
changes (``cv2.resize`` to the same size is a copy), crop views instead of copies, and the normalisation as a
per-channel lookup table of the exact float32 values ``mmcv.imnormalize_`` produces for each of the 256 levels,
written straight into the one output array.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import cache
from typing import TYPE_CHECKING, Any

import numpy as np

from ._validation import check_choice, check_positive_int
from .frame_ops import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    Box,
    center_crop_box,
    check_fits,
    cut_views,
    output_size,
    resize_clip,
    three_crop_boxes,
)
from .frame_ops import normalization_lut as _lut

if TYPE_CHECKING:
    from .zoo import DataSettings

NORMALIZATIONS = ("imagenet", "inception", "pytorchvideo")
# pytorchvideo / PySlowFast Kinetics models: ``x / 255`` then mean 0.45, std 0.225 per channel (``DATA.MEAN/STD``)
PYTORCHVIDEO_MEAN = (0.45, 0.45, 0.45)
PYTORCHVIDEO_STD = (0.225, 0.225, 0.225)
MODES = ("train", "val", "test")
TRAIN_CROPS = ("multiscale", "random")


# ---------------------------------------------------------------------------------------------------------------
# Size and crop-box arithmetic (pure functions)
# ---------------------------------------------------------------------------------------------------------------
def rescale_size(width: int, height: int, short_side: int) -> tuple[int, int]:
    """``(new_w, new_h)`` of ``Resize(scale=(-1, short_side))``: keep the ratio, short side to ``short_side``.

    mmaction2 turns ``(-1, s)`` into ``(inf, s)`` and ``mmcv.rescale_size`` computes
    ``f = min(inf / long, s / short)`` and ``int(w * f + 0.5), int(h * f + 0.5)`` (``frame_ops.output_size``).
    """
    return output_size(width, height, {"shortest_edge": short_side})


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
    check_fits(width, height, crop_w, crop_h, "MultiScaleCrop")
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
    check_fits(width, height, size, size, "RandomCrop")
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


# ---------------------------------------------------------------------------------------------------------------
# Clip operations
# ---------------------------------------------------------------------------------------------------------------
#: ``rescale_factor, mean, std`` of each named normalisation, in transformers' terms (0-1 scale after rescaling):
#: mmaction2's ImageNet mean/std (``img_norm_cfg``, 0-255) and DeepMind's ``x / 127.5 - 1`` (Inception I3D).
NORMALIZATION_STATS = {
    "imagenet": (1 / 255, tuple(m / 255 for m in IMAGENET_MEAN), tuple(s / 255 for s in IMAGENET_STD)),
    "inception": (1 / 255, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
    "pytorchvideo": (1 / 255, PYTORCHVIDEO_MEAN, PYTORCHVIDEO_STD),
}


@cache
def normalization_lut(normalization: str) -> np.ndarray:
    """``(3, 256)`` float32: the normalised value of every uint8 level, per RGB channel (read-only).

    'imagenet' reproduces ``mmcv.imnormalize_`` bit for bit; 'inception' is DeepMind's ``x / 127.5 - 1``
    (see ``frame_ops.normalization_lut``); 'pytorchvideo' is PySlowFast's ``(x / 255 - 0.45) / 0.225`` in float32
    steps.
    """
    check_choice("normalization", normalization, NORMALIZATIONS)
    lut = _lut(*NORMALIZATION_STATS[normalization])
    if normalization == "pytorchvideo":  # PySlowFast's float32 steps: div255, then NormalizeVideo
        lut = _lut(*NORMALIZATION_STATS[normalization], rounding="float32")
    lut.setflags(write=False)
    return lut


def normalize_clip(frames: np.ndarray, normalization: str = "imagenet", flip: bool = False) -> np.ndarray:
    """uint8 ``(T, H, W, 3)`` -> float32 ``(T, 3, H, W)`` normalised (and mirrored left-right if ``flip``)."""
    frames = _check_frames(frames)
    height, width = frames.shape[1:3]
    box = ((0, 0, width, height),)
    return cut_views(frames, None, box, None, normalization_lut(normalization), flip=flip)[0]


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
            check_choice(name, getattr(self, name), allowed)
        if self.num_crops not in (1, 3):
            raise ValueError(f"num_crops must be 1 (centre crop) or 3 (ThreeCrop), got {self.num_crops!r}")
        for name in ("short_side", "crop_size", "test_crop_size"):
            check_positive_int(name, getattr(self, name))
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
        frames = _check_frames(frames)
        return cut_views(
            frames,
            params.resize,
            params.boxes,
            params.output_size,
            normalization_lut(self.normalization),
            num_clips,
            params.flip,
        )

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
    check_choice("mode", mode, MODES)
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
