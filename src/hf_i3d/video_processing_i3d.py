"""``I3DVideoProcessor``: from videos to the model's ``pixel_values``, with mmaction2's test-time arithmetic.

A transformers ``BaseVideoProcessor``: it takes every input form video processors take (a path, frames as a list of PIL
images / arrays / tensors or a ``(T, H, W, C)`` / ``(T, C, H, W)`` array or tensor, batches of these; grayscale and
4-channel frames become RGB with ``do_convert_rgb``), and the standard settings mean what they mean everywhere. The
arithmetic is mmaction2's (``hf_i3d.frame_ops``), so the zoo models see what they were tested on: ``sampler="uniform"``
is ``SampleFrames(num_frames, frame_interval)`` (a centred clip; a short video loops), ``"dense"``
``DenseSampleFrames`` (multi-view), ``"even"`` transformers' rule (``num_frames`` spread out, or ``fps``); resizing is
``cv2.resize`` with ``mmcv.rescale_size`` rounding (no antialiasing), crops have floor offsets, and
``(x * rescale_factor - mean) / std`` is rounded as ``mmcv.imnormalize_`` rounds it.

``views="single"`` gives ``(B, T, C, H, W)``; ``views="multi"`` the test protocol, ``num_clips`` clips (10 positions
for ``"dense"``) x ``num_crops`` crops of ``test_crop_size``: ``(B, V, T, C, H, W)`` in mmaction2's crop-major order
(the models average the views). Paths are decoded by ``transformers.video_utils.load_video`` (``video_backend``:
PyAV, decord or torchcodec, which gets its FFmpeg from ``_ffmpeg``, carried with this file, when the system has none).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from huggingface_hub.dataclasses import validate_typed_dict
from PIL import Image
from transformers.feature_extraction_utils import BatchFeature
from transformers.image_utils import (
    IMAGENET_DEFAULT_MEAN,
    IMAGENET_DEFAULT_STD,
    PILImageResampling,
    infer_channel_dimension_format,
)
from transformers.processing_utils import VideosKwargs
from transformers.video_processing_utils import BaseVideoProcessor
from transformers.video_utils import (
    VideoMetadata,
    default_sample_indices_fn,
    load_video,
    make_batched_metadata,
)

from .frame_ops import (
    DEFAULT_VIDEO_BACKEND,
    VIDEO_BACKENDS,
    center_crop_box,
    check_video_backend,
    clip_frame_indices,
    cut_views,
    dense_test_offsets,
    output_size,
    resize_clip,
    three_crop_boxes,
    uniform_test_offsets,
)

VIEWS = ("single", "multi")  # one centred clip, or the model's multi-view test protocol
_CHOICES = {"views": VIEWS, "sampler": ("uniform", "dense", "even"), "video_backend": VIDEO_BACKENDS}
_CHOICES.update(offset_rule=("0.x", "1.x"), num_crops=(1, 3), rounding=("mmcv", "float32"))
# (mean, std) on the 0-1 scale of the normalisations old saved configs named instead of giving mean/std
LEGACY_NORMALIZATIONS = {
    "imagenet": (IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD),  # mmaction2's img_norm_cfg / 255
    "inception": ([0.5, 0.5, 0.5], [0.5, 0.5, 0.5]),  # DeepMind's x / 127.5 - 1
    "pytorchvideo": ([0.45, 0.45, 0.45], [0.225, 0.225, 0.225]),  # PySlowFast's (x / 255 - 0.45) / 0.225
}
# PIL resampling NEAREST, LANCZOS, BILINEAR, BICUBIC, BOX -> cv2 INTER_NEAREST, _LANCZOS4, _LINEAR, _CUBIC, _AREA
_CV2_FLAGS = {0: 0, 1: 4, 2: 1, 3: 2, 4: 3}


class I3DVideoProcessorKwargs(VideosKwargs, total=False):
    """The settings beyond ``VideosKwargs`` (sampling, the multi-view protocol, the decoder of paths)."""

    frame_interval: int
    sampler: str
    num_clips: int
    offset_rule: str
    test_crop_size: int
    num_crops: int
    views: str
    video_backend: str
    zoo_name: str | None
    rounding: str


class I3DVideoProcessor(BaseVideoProcessor):
    """Video processor of the hf_i3d models (module docstring), with ``i3d-r50-kinetics400``'s defaults.
    ``num_frames`` is mmaction2's ``clip_len``; ``crop_size`` the single view's crop, ``test_crop_size`` the others'."""

    valid_kwargs = I3DVideoProcessorKwargs
    model_input_names = ["pixel_values"]
    resample = PILImageResampling.BILINEAR
    size = {"shortest_edge": 256}
    default_to_square = False
    crop_size = {"height": 224, "width": 224}
    do_resize = do_center_crop = do_rescale = do_normalize = do_convert_rgb = do_sample_frames = True
    rescale_factor = 1 / 255
    image_mean, image_std = IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
    num_frames = 32
    frame_interval = 2
    sampler = "uniform"
    num_clips = 10
    offset_rule = "0.x"
    test_crop_size = 256
    num_crops = 3
    views = "single"
    video_backend = DEFAULT_VIDEO_BACKEND
    zoo_name = None
    rounding = "mmcv"  # normalisation rounded as mmcv.imnormalize_, or 'float32' steps (PySlowFast models)
    # Maps a name given to ``from_pretrained`` (e.g. a zoo name) to what to load; installed by ``hf_i3d``.
    name_resolver = None

    def __init__(self, **kwargs: Any) -> None:
        # configs saved before the standard fields had `short_side` and `normalization` (not the saved mean/std)
        short_side = kwargs.pop("short_side", None)
        normalization = kwargs.pop("normalization", None)
        if short_side is not None:
            kwargs["size"] = {"shortest_edge": int(short_side)}
        if normalization is not None:
            mean, std = LEGACY_NORMALIZATIONS[normalization]
            kwargs.update(image_mean=list(mean), image_std=list(std), rescale_factor=1 / 255)
            kwargs.update(do_rescale=True, do_normalize=True)
            kwargs["rounding"] = "float32" if normalization == "pytorchvideo" else "mmcv"
        if isinstance(kwargs.get("crop_size"), int):
            kwargs["crop_size"] = {"height": kwargs["crop_size"], "width": kwargs["crop_size"]}
        super().__init__(**kwargs)
        self._settings()

    @classmethod
    def from_zoo_entry(cls, entry: Any, **kwargs: Any) -> I3DVideoProcessor:
        """The processor of a zoo entry (``hf_i3d.zoo.ZooEntry``, read by attribute): its ``data`` settings in the
        standard fields; ``kwargs`` override any setting."""
        if isinstance(entry, str):
            raise TypeError("from_zoo_entry takes a ZooEntry; for a name pass hf_i3d.zoo.get_entry(name)")
        d = entry.data
        mean, std = LEGACY_NORMALIZATIONS[d.normalization]
        settings = dict(
            num_frames=d.clip_len, frame_interval=d.frame_interval, sampler=d.sampler, zoo_name=entry.name
        )
        settings.update(
            num_clips=d.num_clips, offset_rule=d.offset_rule, size={"shortest_edge": d.short_side}
        )
        settings.update(crop_size=d.crop_size, test_crop_size=d.test_crop_size, num_crops=d.num_crops)
        settings["rounding"] = "float32" if d.normalization == "pytorchvideo" else "mmcv"
        return cls(**{**settings, "image_mean": list(mean), "image_std": list(std), **kwargs})

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: Any, *args: Any, **kwargs: Any) -> Any:
        """``from_pretrained`` that also takes zoo names where ``hf_i3d`` installed ``name_resolver``."""
        if cls.name_resolver is not None:
            pretrained_model_name_or_path = cls.name_resolver(pretrained_model_name_or_path)
        return super().from_pretrained(pretrained_model_name_or_path, *args, **kwargs)

    def _settings(self, standard: bool = False, **overrides: Any) -> dict[str, Any]:
        """Every setting of one call, checked: the processor's, replaced by the non-None ``overrides``; with
        ``standard``, ``size``/``crop_size`` in transformers' form (``size=42`` is ``{'shortest_edge': 42}``)."""
        s = {name: getattr(self, name, None) for name in self.valid_kwargs.__annotations__}
        unknown = sorted(set(overrides) - set(s) - {"return_tensors"})
        if unknown:
            raise TypeError(f"I3DVideoProcessor got unexpected argument(s) {unknown}; valid: {sorted(s)}")
        s.update({k: v for k, v in overrides.items() if v is not None})
        for name, allowed in _CHOICES.items():
            if s[name] not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {s[name]!r}")
        for name in ("num_frames", "frame_interval", "num_clips", "test_crop_size"):
            _positive_int(name, s[name])
        if s["views"] == "multi" and (s["sampler"] == "even" or not s["do_sample_frames"]):
            raise ValueError(
                "views='multi' samples clips: it needs do_sample_frames and sampler 'uniform' or 'dense'"
            )
        if standard:
            s.update(self._standardize_kwargs(**s))
            self._validate_preprocess_kwargs(**s)
        return s

    def sample_frames(
        self, metadata: VideoMetadata, num_frames: int | None = None, fps: float | None = None, **kwargs: Any
    ) -> np.ndarray:
        """The frames of the views, clip-major (a frame can repeat): mmaction2's ``SampleFrames`` / ``DenseSampleFrames``
        test offsets; with ``sampler='even'`` or ``fps``, transformers' rule (no more frames than the video has)."""
        s = self._settings(**{k: v for k, v in kwargs.items() if k in self.valid_kwargs.__annotations__})
        total, clip_len, step = metadata.total_num_frames, num_frames or s["num_frames"], s["frame_interval"]
        if fps is not None or s["sampler"] == "even":
            if s["views"] == "multi":
                raise ValueError(
                    "views='multi' samples mmaction2 clips; fps and sampler='even' give one clip"
                )
            return default_sample_indices_fn(metadata, num_frames=None if fps else clip_len, fps=fps)
        if total < 1:
            raise ValueError(f"cannot sample clips from a video with {total} frames")
        if s["views"] == "single":  # mmaction2's val clip: SampleFrames(num_clips=1, test_mode=True)
            offsets = uniform_test_offsets(total, clip_len, step)
        elif s["sampler"] == "dense":
            offsets = dense_test_offsets(total, s["num_clips"])
        else:
            offsets = uniform_test_offsets(total, clip_len, step, s["num_clips"], s["offset_rule"])
        return clip_frame_indices(offsets, clip_len, step, total)

    def sample_indices(self, total_frames: int, **kwargs: Any) -> np.ndarray:
        """0-based frame indices this processor reads from a video of ``total_frames`` frames (clip-major)."""
        return self.sample_frames(VideoMetadata(total_num_frames=int(total_frames)), **kwargs)

    def num_views(self, **kwargs: Any) -> int:
        """Views per video with these settings (1 for ``views='single'``; clips x crops for ``'multi'``)."""
        s = self._settings(**kwargs)
        return (
            1
            if s["views"] == "single"
            else s["num_clips"] * (10 if s["sampler"] == "dense" else 1) * s["num_crops"]
        )

    def fetch_videos(
        self, video_url_or_urls: Any, sample_indices_fn: Any = None, backend: str | None = None
    ) -> Any:
        """Paths decoded by ``load_video`` (``video_backend``), each sampled frame once: ``(frames (F, H, W, 3) in
        index order, metadata)``; ``metadata.frames_indices`` holds the sampled indices. A decoder that is not
        installed is one line naming the package; torchcodec is given FFmpeg first (``_ffmpeg.load_torchcodec``)."""
        if isinstance(video_url_or_urls, (list, tuple)):
            return list(zip(*[self.fetch_videos(v, sample_indices_fn, backend) for v in video_url_or_urls]))
        picked: dict[str, np.ndarray] = {}

        def unique_indices(metadata: VideoMetadata, **kwargs: Any) -> np.ndarray:
            picked["all"] = np.asarray(
                sample_indices_fn(metadata) if sample_indices_fn else range(metadata.total_num_frames)
            )
            return np.unique(picked["all"])

        path, backend = os.fspath(video_url_or_urls), backend or self.video_backend
        check_video_backend(backend, "I3DVideoProcessor")
        if (
            backend == "torchcodec"
        ):  # FFmpeg from the system or PyAV's wheel before load_video imports torchcodec
            from ._ffmpeg import load_torchcodec

            load_torchcodec()
        frames, metadata = load_video(path, backend=backend, sample_indices_fn=unique_indices)
        frames = np.asarray(frames).transpose(0, 2, 3, 1) if backend == "torchcodec" else np.asarray(frames)
        metadata.frames_indices = picked["all"]
        if len(frames) != len(np.unique(picked["all"])):
            raise ValueError(f"{video_url_or_urls}: {len(frames)} of the sampled frames could be decoded")
        return frames, metadata

    def _load(
        self, video: Any, metadata: VideoMetadata | None, s: dict[str, Any], input_data_format: Any = None
    ) -> tuple[np.ndarray, np.ndarray, VideoMetadata]:
        """One video's sampled frames ``(F, H, W, C)``, each once, and the clip-major positions of the samples."""
        sample = None
        if s["do_sample_frames"]:

            def sample(metadata: VideoMetadata) -> np.ndarray:
                return self.sample_frames(metadata, **s)

        if isinstance(video, (str, os.PathLike)):
            frames, metadata = self.fetch_videos(video, sample, backend=s["video_backend"])
            indices = metadata.frames_indices
        else:
            video = torch.as_tensor(np.asarray(video)) if not isinstance(video, torch.Tensor) else video
            if input_data_format is None:
                input_data_format = infer_channel_dimension_format(video, num_channels=(1, 3, 4))
            (video,) = self._prepare_input_videos(
                [video], do_convert_rgb=s["do_convert_rgb"], input_data_format=input_data_format
            )
            frames = video.permute(0, 2, 3, 1).cpu().numpy()
            if len(frames) == 0:
                raise ValueError("the video has no frames")
            metadata = metadata or VideoMetadata(len(frames), height=frames.shape[1], width=frames.shape[2])
            indices = sample(metadata) if sample else np.arange(len(frames))
            metadata.frames_indices = indices
        unique, positions = np.unique(indices, return_inverse=True)
        if not isinstance(video, (str, os.PathLike)):
            frames = frames[unique]
        return frames, positions.reshape(-1), metadata

    def _iter_views(
        self, frames: np.ndarray, positions: np.ndarray, s: dict[str, Any], max_views_per_batch: int | None
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """``(view_indices, float32 (n, T, C, h, w))`` batches of whole clips with all their crops (frames resized once)."""
        multi = s["views"] == "multi"
        num_clips = len(positions) // s["num_frames"] if multi else 1
        height, width = frames.shape[1:3]
        if s["do_resize"]:
            width, height = output_size(width, height, s["size"])
            flag = None if s["resample"] is None else _CV2_FLAGS[int(s["resample"])]
            frames = resize_clip(frames, width, height, flag)
        crop = s["test_crop_size"]
        boxes = [(0, 0, width, height)]
        if multi:
            boxes = (
                three_crop_boxes(width, height, crop)
                if s["num_crops"] == 3
                else [center_crop_box(width, height, crop)]
            )
        elif s["do_center_crop"]:
            boxes = [center_crop_box(width, height, s["crop_size"].width, s["crop_size"].height)]
        norm = (
            s["rescale_factor"] if s["do_rescale"] else None,
            s["image_mean"] if s["do_normalize"] else None,
            s["image_std"] if s["do_normalize"] else None,
            s["rounding"],
        )
        crops, clip_len = len(boxes), len(positions) // num_clips
        clips_per_batch = max(1, (max_views_per_batch or crops * num_clips) // crops)
        for first in range(0, num_clips, clips_per_batch):
            count = min(clips_per_batch, num_clips - first)
            clips = frames[positions[first * clip_len : (first + count) * clip_len]]
            views = cut_views(clips, None, boxes, None, norm, count)
            # crop-major within the batch (crop k of clip first + j at k * count + j), as in the whole video
            yield np.array([k * num_clips + first + j for k in range(crops) for j in range(count)]), views

    def iter_view_batches(
        self, video: Any, max_views_per_batch: int | None = None, *, frame_indices: Any = None, **kwargs: Any
    ) -> Iterator[tuple[np.ndarray, torch.Tensor]]:
        """One video's views a few whole clips at a time (at most ``max_views_per_batch`` views but one clip; None:
        all), so only one batch of float32 views exists at once: ``(view_indices in preprocess's order, (n, T, C, H, W))``.
        ``video``: what :meth:`preprocess` takes, or only the frames sampled at ``frame_indices`` (``(F, H, W, 3)`` in
        index order, as ``hf_i3d.decoding.read_video_sampled(..., expand=False)`` gives them)."""
        s = self._settings(True, **kwargs)
        _positive_int("max_views_per_batch", max_views_per_batch)
        if frame_indices is not None:
            unique, positions = np.unique(np.asarray(frame_indices), return_inverse=True)
            frames = np.asarray(video)
            if len(frames) != len(unique):
                raise ValueError(f"{len(frames)} frames given for {len(unique)} distinct frame_indices")
        else:
            frames, positions, _ = self._load(video, None, s)
        for indices, views in self._iter_views(frames, positions.reshape(-1), s, max_views_per_batch):
            yield indices, torch.from_numpy(views)

    def preprocess(self, videos: Any, **kwargs: Any) -> BatchFeature:
        """``pixel_values`` ``(B, T, C, H, W)`` (``(B, V, T, C, H, W)`` with ``views='multi'``) of one video or a batch;
        keyword arguments override the settings for this call."""
        return_tensors = kwargs.pop("return_tensors", None)
        s = self._settings(True, **kwargs)
        validate_typed_dict(self.valid_kwargs, kwargs)
        videos = _batched_videos(videos)
        metadata = s["video_metadata"]
        metadata = make_batched_metadata(videos, metadata) if metadata is not None else [None] * len(videos)
        batch, metas = [], []
        for video, meta in zip(videos, metadata):
            frames, positions, meta = self._load(video, meta, s, s["input_data_format"])
            chunks = [v for _, v in self._iter_views(frames, positions, s, None)]
            views = chunks[0] if len(chunks) == 1 else np.concatenate(chunks)
            batch.append(views if s["views"] == "multi" else views[0])
            metas.append(meta)
        same = all(view.shape == batch[0].shape for view in batch)  # one video (the pipeline's): no copy
        data: dict[str, Any] = {"pixel_values": batch[0][None] if len(batch) == 1 else np.stack(batch) if same else batch}
        if s["device"] is not None and return_tensors == "pt":
            data["pixel_values"] = torch.as_tensor(data["pixel_values"]).to(s["device"])
        if s["return_metadata"]:
            data["video_metadata"] = metas
        return BatchFeature(data=data, tensor_type=return_tensors)


def _positive_int(name: str, value: Any) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise ValueError(f"{name} must be a positive int or None, got {value!r}")


def _is_frame(item: Any) -> bool:
    return isinstance(item, Image.Image) or getattr(item, "ndim", None) in (2, 3)


def _as_video(video: Any) -> Any:
    """One video as a path or a 4-D array/tensor: frames stacked, grayscale ones given a channel."""
    if isinstance(video, (str, os.PathLike)):
        return os.fspath(video)
    if isinstance(video, (list, tuple)):
        frames = [np.asarray(frame) if isinstance(frame, Image.Image) else frame for frame in video]
        video = torch.stack(frames) if isinstance(frames[0], torch.Tensor) else np.stack(frames)
    if getattr(video, "ndim", None) == 3:  # grayscale (T, H, W)
        video = video[..., None]
    if getattr(video, "ndim", None) != 4:
        raise ValueError(
            f"a video must be a path or frames (T, H, W, C) / (T, C, H, W), got {type(video).__name__}"
            f" of shape {tuple(getattr(video, 'shape', ()))}"
        )
    return video


def _batched_videos(videos: Any) -> list[Any]:
    """A list of videos from transformers' input forms: a video (path, frame list, 4-D array) or a batch of them."""
    if isinstance(videos, (list, tuple)) and videos and not _is_frame(videos[0]):
        return [_as_video(video) for video in videos]
    if getattr(videos, "ndim", None) == 5:
        return list(videos)
    if _is_frame(videos):  # one frame: a one-frame video
        videos = [videos]
    return [_as_video(videos)]


# A saved processor carries its code and an ``auto_map`` entry, like the models.
I3DVideoProcessor.register_for_auto_class()

__all__ = ["I3DVideoProcessor", "I3DVideoProcessorKwargs"]
