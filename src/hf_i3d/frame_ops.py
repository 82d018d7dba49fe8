"""mmaction2's test-time arithmetic: clip offsets, sizes, crop boxes, ``cv2`` resizing, the normalisation table.

Self-contained (numpy; OpenCV on first use): a saved ``I3DVideoProcessor`` carries it, and ``hf_i3d.sampling`` /
``hf_i3d.transforms`` build on it. Ported from mmaction2 v0.5.0 (``7dc99cf6``) ``datasets/pipelines``: ``Resize``
(``mmcv.rescale_size`` + ``cv2.resize``), ``CenterCrop``, ``ThreeCrop``, ``Flip``, ``Normalize``
(``mmcv.imnormalize_``, as a per-level lookup table), done frame by frame in one pass. Also the one list of video
decoders (``VIDEO_BACKENDS``) and the install hints naming hf_i3d's extras.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Sequence
from typing import Any

import numpy as np

# mmaction2's img_norm_cfg, RGB, on the 0-255 scale (255 x the ImageNet 0-1 values)
IMAGENET_MEAN = (123.675, 116.28, 103.53)
IMAGENET_STD = (58.395, 57.12, 57.375)

Box = tuple[int, int, int, int]  # (x1, y1, x2, y2): columns x1..x2-1 and rows y1..y2-1


VIDEO_BACKENDS = ("pyav", "decord", "torchcodec")  # the one list (loaders, CLI, features, FVD, processor)
VIDEO_BACKEND_PACKAGES = {"pyav": "av", "decord": "decord", "torchcodec": "torchcodec"}  # what each imports
DEFAULT_VIDEO_BACKEND = "pyav"  # decord's pixels on H.264, the fastest on one core (benchmarks/RESULTS.md)
_EXTRAS = {
    "simplejpeg": "data",
    **dict.fromkeys(("av", "decord", "torchcodec", "Pillow", "opencv-python-headless"), "video"),
}


def install_hint(package: str) -> str:
    """What installs an optional package: the extra of hf_i3d (setup.cfg) that holds it, or the package alone."""
    extra = _EXTRAS.get(package)
    return f'pip install "hf_i3d[{extra}]" (or pip install {package})' if extra else f"pip install {package}"


def optional_import(module: str, package: str, what: str) -> Any:
    """Import an optional dependency on first use, with a one-line install hint. (Through importlib, so that
    transformers' remote-code import check does not make it a requirement of every saved folder.)"""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(f"{what} needs the {package!r} package: {install_hint(package)}") from exc


def check_video_backend(backend: str, what: str = "decoding") -> None:
    """``ValueError`` for a name not in ``VIDEO_BACKENDS``, a one-line ``ImportError`` naming the extra to install
    when its package is missing (imports nothing)."""
    if backend not in VIDEO_BACKENDS:
        raise ValueError(f"video backend must be one of {VIDEO_BACKENDS}, got {backend!r}")
    if importlib.util.find_spec(package := VIDEO_BACKEND_PACKAGES[backend]) is None:
        raise ImportError(
            f"{what} with the {backend!r} video backend needs the {package!r} package: {install_hint(package)}"
        )


def _cv2() -> Any:
    return optional_import("cv2", "opencv-python-headless", "hf_i3d's mmaction2 frame arithmetic")


def uniform_test_offsets(
    total_frames: int, clip_len: int, frame_interval: int = 1, num_clips: int = 1, offset_rule: str = "0.x"
) -> np.ndarray:
    """First frame of each of ``num_clips`` test clips, ``SampleFrames._get_test_clips``: the 0.x rule
    ``int(i * avg + avg / 2)`` (mmaction2 v0.5.0 ... v0.24.1, ``loading.py`` at ``7dc99cf6``) or the 1.x rule
    ``round(i * max_offset / (num_clips - 1))`` (v1.0+, ``transforms/loading.py`` at ``4d6c9347``)."""
    if offset_rule == "0.x":
        avg_interval = (total_frames - clip_len * frame_interval + 1) / float(num_clips)
        if total_frames > clip_len * frame_interval - 1:
            return (np.arange(num_clips) * avg_interval + avg_interval / 2.0).astype(np.int64)
        return np.zeros((num_clips,), dtype=np.int64)
    if clip_len == 1:  # 1.x keeps the TSN-style rule for 2D models (fractional until the final cast)
        avg_interval = total_frames / float(num_clips)
        return np.arange(num_clips) * avg_interval + avg_interval / 2.0
    max_offset = max(total_frames - ((clip_len - 1) * frame_interval + 1), 0)
    if num_clips > 1:
        return np.round(np.arange(num_clips) * (max_offset / float(num_clips - 1)))
    return np.array([max_offset // 2])


def dense_test_offsets(
    total_frames: int, num_clips: int = 1, sample_range: int = 64, num_sample_positions: int = 10
) -> np.ndarray:
    """``DenseSampleFrames._get_test_clips``: ``num_clips`` clips from each of ``num_sample_positions`` evenly
    spaced starts (``linspace``), wrapped modulo the video length."""
    sample_position = max(1, 1 + total_frames - sample_range)
    starts = np.linspace(0, sample_position - 1, num=num_sample_positions, dtype=int)
    base_offsets = np.arange(num_clips) * (sample_range // num_clips)
    return ((starts[:, None] + base_offsets[None, :]) % total_frames).reshape(-1)


def clip_frame_indices(
    offsets: np.ndarray, clip_len: int, frame_interval: int, total_frames: int, out_of_bound: str = "loop"
) -> np.ndarray:
    """Frame indices of clips starting at ``offsets``, clip-major: ``clip_len`` frames ``frame_interval`` apart;
    past the end they loop (``mod total_frames``) or, with ``'repeat_last'``, repeat each clip's last valid frame."""
    frame_inds = np.asarray(offsets)[:, None] + np.arange(clip_len)[None, :] * frame_interval
    if out_of_bound == "loop":
        frame_inds = np.mod(frame_inds, total_frames)
    else:  # 'repeat_last', as SampleFrames.__call__ writes it (each clip's largest in-range index)
        safe = frame_inds < total_frames
        last = np.max(safe * frame_inds, axis=1)
        frame_inds = safe * frame_inds + (~safe) * last[:, None]
    return frame_inds.reshape(-1).astype(np.int64)


def output_size(width: int, height: int, size: Any) -> tuple[int, int]:
    """``(new_w, new_h)`` for a transformers ``size`` (a dict or SizeDict): ``height``/``width`` exactly, else the ratio
    kept with ``shortest_edge`` and/or ``longest_edge`` as mmcv rounds ``Resize(scale=(-1, short))``: the factor
    ``min(short / min(w, h), long / max(w, h))`` and ``int(w * f + 0.5), int(h * f + 0.5)``."""
    get = size.get if isinstance(size, dict) else lambda key: getattr(size, key, None)
    if get("height") and get("width"):
        return int(get("width")), int(get("height"))
    short, long = get("shortest_edge"), get("longest_edge")
    if not short and not long:
        raise ValueError(f"size must give shortest_edge, longest_edge or height and width, got {size!r}")
    factor = min(
        short / min(width, height) if short else float("inf"),
        long / max(width, height) if long else float("inf"),
    )
    return int(width * factor + 0.5), int(height * factor + 0.5)


def check_fits(width: int, height: int, crop_w: int, crop_h: int, what: str) -> None:
    """A ValueError unless a ``crop_w x crop_h`` crop fits a ``width x height`` frame."""
    if crop_w > width or crop_h > height or crop_w < 1 or crop_h < 1:
        raise ValueError(f"{what}: a {crop_w}x{crop_h} crop does not fit a {width}x{height} frame")


def center_crop_box(width: int, height: int, crop_w: int, crop_h: int | None = None) -> Box:
    """``CenterCrop``: ``left = (W - cw) // 2``, ``top = (H - ch) // 2``."""
    crop_h = crop_w if crop_h is None else crop_h
    check_fits(width, height, crop_w, crop_h, "CenterCrop")
    left, top = (width - crop_w) // 2, (height - crop_h) // 2
    return left, top, left + crop_w, top + crop_h


def three_crop_boxes(width: int, height: int, crop_w: int, crop_h: int | None = None) -> tuple[Box, Box, Box]:
    """``ThreeCrop``: three crops along the long side, in mmaction2's order left/top, right/bottom, middle.

    The crop must span the short side (``crop_h == H`` or ``crop_w == W``); the offsets are ``0, 2*step, step``
    with ``step = (long - crop) // 2``. A landscape frame is cut along x, a portrait one along y.
    """
    crop_h = crop_w if crop_h is None else crop_h
    check_fits(width, height, crop_w, crop_h, "ThreeCrop")
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


def normalization_lut(
    rescale_factor: float | None,
    mean: Sequence[float] | None,
    std: Sequence[float] | None,
    channels: int = 3,
    rounding: str = "mmcv",
) -> np.ndarray:
    """``(channels, 256)`` float32 ``(level * rescale_factor - mean) / std`` of every uint8 level (None skips a step),
    rounded as ``mmcv.imnormalize_`` on the 0-255 scale: ``level - float32(mean / rescale_factor)`` to float32, times
    ``1 / float64(float32(std / rescale_factor))`` (exact for mmaction2's ImageNet values and DeepMind's x/127.5-1);
    ``rounding='float32'``: ``x / (1 / rescale_factor)``, minus mean, over std, each in float32 (PySlowFast)."""
    scale = 1.0 if rescale_factor is None else float(rescale_factor)
    levels = np.arange(256, dtype=np.float64)[None, :]
    if (
        rounding == "float32" and mean is not None and std is not None
    ):  # PySlowFast: x / 255, then (x - m) / s
        scaled = np.arange(256, dtype=np.float32)[None, :] / np.float32(1.0 / scale)
        mean32 = np.broadcast_to(np.asarray(mean, dtype=np.float32), (channels,))[:, None]
        return (
            (scaled - mean32) / np.broadcast_to(np.asarray(std, dtype=np.float32), (channels,))[:, None]
        ).astype(np.float32)
    if mean is None or std is None:
        return np.repeat((levels * scale).astype(np.float32), channels, axis=0)
    mean64 = np.broadcast_to(np.asarray(mean, dtype=np.float64), (channels,)) / scale
    std64 = np.broadcast_to(np.asarray(std, dtype=np.float64), (channels,)) / scale
    mean64 = mean64.astype(np.float32).astype(np.float64)[:, None]
    stdinv = 1.0 / std64.astype(np.float32).astype(np.float64)[:, None]
    return ((levels - mean64).astype(np.float32).astype(np.float64) * stdinv).astype(np.float32)


def resize_clip(frames: np.ndarray, width: int, height: int, interpolation: int | None = None) -> np.ndarray:
    """Every frame resized to ``width x height`` with ``cv2.resize`` (``INTER_LINEAR``: ``mmcv.imresize``);
    the input itself when it already has that size (cv2 would return an identical copy)."""
    if frames.shape[1:3] == (height, width):
        return frames
    cv2 = _cv2()
    flag = cv2.INTER_LINEAR if interpolation is None else interpolation
    out = np.empty((frames.shape[0], height, width, *frames.shape[3:]), dtype=frames.dtype)
    for i, frame in enumerate(frames):
        out[i] = cv2.resize(frame, (width, height), interpolation=flag).reshape(out.shape[1:])
    return out


def cut_views(
    frames: np.ndarray,
    resize: tuple[int, int] | None,
    boxes: Sequence[Box],
    output_size: tuple[int, int] | None,
    norm: tuple[float | None, Sequence[float] | None, Sequence[float] | None],
    num_clips: int = 1,
    flip: bool = False,
    interpolation: int | None = None,
) -> np.ndarray:
    """``(num_clips * T, H, W, C)`` clip-major frames -> float32 ``(len(boxes) * num_clips, T, C, h, w)`` views in
    mmaction2's crop-major ``FormatShape`` order (view ``v``: box ``v // num_clips`` of clip ``v % num_clips``):
    each frame resized to ``resize`` (None: kept), boxes cut, crops resized to ``output_size`` (None: kept),
    mirrored if ``flip``, normalised with ``norm = (rescale_factor, mean, std)`` (uint8 through the table)."""
    cv2 = _cv2()
    flag = cv2.INTER_LINEAR if interpolation is None else interpolation
    total, height, width = frames.shape[:3]
    channels = frames.shape[3] if frames.ndim == 4 else 1
    frames = frames.reshape(total, height, width, channels)
    if isinstance(num_clips, bool) or not isinstance(num_clips, int) or num_clips < 1 or total % num_clips:
        raise ValueError(f"{total} frames cannot be split into num_clips={num_clips!r} clips of equal length")
    fw, fh = resize or (width, height)
    for x1, y1, x2, y2 in boxes:
        if not (0 <= x1 < x2 <= fw and 0 <= y1 < y2 <= fh):
            raise ValueError(f"crop box {(x1, y1, x2, y2)} lies outside the {fw}x{fh} frame")
    first = boxes[0]
    ow, oh = output_size or (first[2] - first[0], first[3] - first[1])
    out = np.empty((len(boxes) * num_clips, total // num_clips, channels, oh, ow), dtype=np.float32)
    views = out.reshape(len(boxes), total, channels, oh, ow)  # crop-major, then clip-major frames
    luts = None
    if frames.dtype == np.uint8:
        table = norm if isinstance(norm, np.ndarray) else normalization_lut(*norm[:3], channels, *norm[3:])
        luts = [np.ascontiguousarray(table[c].reshape(256, 1)) for c in range(channels)]
    resize_frame = (fw, fh) != (width, height)
    # several crops cut from one frame (ThreeCrop) share one split of the frame into planes
    split_frame_once = len(boxes) > 1 and not flip and luts is not None
    for t, frame in enumerate(frames):
        if resize_frame:
            frame = cv2.resize(frame, (fw, fh), interpolation=flag).reshape(fh, fw, channels)
        frame_planes = cv2.split(frame) if split_frame_once else None
        for k, (x1, y1, x2, y2) in enumerate(boxes):
            if (x2 - x1, y2 - y1) == (ow, oh) and frame_planes is not None:
                planes = [plane[y1:y2, x1:x2] for plane in frame_planes]
            else:
                crop = frame[y1:y2, x1:x2]
                if (x2 - x1, y2 - y1) != (ow, oh):
                    crop = cv2.resize(crop, (ow, oh), interpolation=flag).reshape(oh, ow, channels)
                if flip:
                    crop = crop[:, ::-1]
                if luts is None:  # float frames: (x * rescale_factor - mean) / std in float32
                    value = crop.astype(np.float32) * np.float32(1.0 if norm[0] is None else norm[0])
                    if norm[1] is not None and norm[2] is not None:
                        value = (value - np.float32(norm[1])) / np.float32(norm[2])
                    views[k, t] = value.transpose(2, 0, 1)
                    continue
                planes = cv2.split(np.ascontiguousarray(crop))
            for c, plane in enumerate(planes):
                cv2.LUT(plane, luts[c], dst=views[k, t, c])
    return out
