"""``I3DVideoProcessor``: from a video file (or decoded frames) to the model's ``pixel_values``, as mmaction2 tests.

One processor serves both model families; the zoo entry's data settings decide sampling and normalisation:

* ``views="single"`` (default): one centred clip (mmaction2 ``SampleFrames(clip_len, frame_interval, 1,
  test_mode=True)``), ``Resize((-1, short_side))``, ``CenterCrop(crop_size)``, normalise -> ``(B, T, C, H, W)``.
* ``views="multi"``: the test protocol of the zoo entry (e.g. 10 clips x 3 crops of 256 for the mmaction2 models,
  0.x offsets, or 10 dense positions for the dense model) -> ``(B, V, T, C, H, W)`` in mmaction2's crop-major view
  order; the models average the views (``hf_i3d.multiview``).

Normalisation: ``"imagenet"`` (mean/std on 0-255, the mmaction2 models), ``"inception"`` (``x / 127.5 - 1``, the
DeepMind model) or ``"pytorchvideo"`` (``(x / 255 - 0.45) / 0.225``, the pytorchvideo model). Videos are decoded with decord (default) or PyAV, reading only the sampled frames; decoded frames
(``(T, H, W, 3)`` uint8 arrays, RGB) are accepted too. The arithmetic is that of ``sampling.ClipSampler`` and
``transforms.ClipTransform``, the same code the dataset loader uses.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from transformers.feature_extraction_utils import BatchFeature
from transformers.processing_utils import VideosKwargs
from transformers.video_processing_utils import BaseVideoProcessor

from .decoding import read_video_sampled
from .multiview import check_max_views_per_batch
from .sampling import ClipSampler
from .transforms import IMAGENET_MEAN, IMAGENET_STD, ClipTransform, resize_clip
from .zoo import get_entry

VIEWS = ("single", "multi")


class I3DVideosKwargs(VideosKwargs, total=False):
    frame_interval: int
    num_clips: int
    sampler: str
    offset_rule: str
    short_side: int
    test_crop_size: int
    num_crops: int
    normalization: str
    views: str
    video_backend: str
    zoo_name: str | None


class I3DVideoProcessor(BaseVideoProcessor):
    """Video processor of the hf_i3d models (see the module docstring).

    ``num_frames`` is mmaction2's ``clip_len`` (the pipeline passes ``config.num_frames`` as it); ``crop_size`` is
    the single-view crop and ``test_crop_size`` / ``num_crops`` the multi-view ones.
    """

    valid_kwargs = I3DVideosKwargs
    model_input_names = ["pixel_values"]
    num_frames = 32
    frame_interval = 2
    num_clips = 10
    sampler = "uniform"
    offset_rule = "0.x"
    short_side = 256
    crop_size = {"height": 224, "width": 224}
    test_crop_size = 256
    num_crops = 3
    normalization = "imagenet"
    image_mean = list(IMAGENET_MEAN)
    image_std = list(IMAGENET_STD)
    views = "single"
    video_backend = "decord"
    do_sample_frames = True
    zoo_name = None
    # Maps a name given to ``from_pretrained`` (e.g. a zoo name) to what to load; installed by ``hf_i3d``.
    name_resolver = None

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if self.normalization == "inception":
            self.image_mean, self.image_std = [127.5] * 3, [127.5] * 3
        elif self.normalization == "pytorchvideo":  # (x / 255 - 0.45) / 0.225, on the 0-255 scale
            self.image_mean, self.image_std = [0.45 * 255] * 3, [0.225 * 255] * 3
        self._check_settings(self._settings())

    @classmethod
    def from_zoo_entry(cls, entry: Any, **kwargs: Any) -> I3DVideoProcessor:
        """The processor of zoo ``entry`` (a ``ZooEntry`` or its name): its clip, crop and normalisation settings."""
        entry = get_entry(entry) if isinstance(entry, str) else entry
        data = entry.data
        settings = dict(
            num_frames=data.clip_len,
            frame_interval=data.frame_interval,
            num_clips=data.num_clips,
            sampler=data.sampler,
            offset_rule=data.offset_rule,
            short_side=data.short_side,
            crop_size={"height": data.crop_size, "width": data.crop_size},
            test_crop_size=data.test_crop_size,
            num_crops=data.num_crops,
            normalization=data.normalization,
            zoo_name=entry.name,
        )
        settings.update(kwargs)
        return cls(**settings)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *args, **kwargs):
        """``from_pretrained`` that also takes zoo names where ``hf_i3d`` installed ``name_resolver``."""
        if cls.name_resolver is not None:
            pretrained_model_name_or_path = cls.name_resolver(pretrained_model_name_or_path)
        return super().from_pretrained(pretrained_model_name_or_path, *args, **kwargs)

    # -- settings ------------------------------------------------------------------------------------------------
    def _settings(self, **overrides: Any) -> dict[str, Any]:
        unknown = sorted(set(overrides) - set(self.valid_kwargs.__annotations__) - {"return_tensors"})
        if unknown:
            raise TypeError(
                f"I3DVideoProcessor got unexpected argument(s) {unknown}; valid: "
                f"{sorted(self.valid_kwargs.__annotations__)}"
            )
        settings = {name: getattr(self, name, None) for name in self.valid_kwargs.__annotations__}
        settings.update({k: v for k, v in overrides.items() if v is not None})
        return settings

    @staticmethod
    def _check_settings(settings: dict[str, Any]) -> None:
        if settings["views"] not in VIEWS:
            raise ValueError(f"views must be one of {VIEWS}, got {settings['views']!r}")
        if settings["video_backend"] not in ("decord", "pyav"):
            raise ValueError(f"video_backend must be 'decord' or 'pyav', got {settings['video_backend']!r}")
        _square_side(settings["crop_size"])

    def sampler_for(self, settings: dict[str, Any]) -> ClipSampler:
        """The frame sampler of a single view (centred clip) or of the multi-view test protocol."""
        if settings["views"] == "single":
            return ClipSampler(settings["num_frames"], settings["frame_interval"], num_clips=1, mode="val")
        return ClipSampler(
            settings["num_frames"],
            settings["frame_interval"],
            num_clips=settings["num_clips"],
            mode="test",
            sampler=settings["sampler"],
            offset_rule=settings["offset_rule"],
        )

    def transform_for(self, settings: dict[str, Any]) -> ClipTransform:
        """The frame transform of a single view (centre crop) or of the multi-view test protocol."""
        return ClipTransform(
            mode="val" if settings["views"] == "single" else "test",
            short_side=settings["short_side"],
            crop_size=_square_side(settings["crop_size"]),
            test_crop_size=settings["test_crop_size"],
            num_crops=settings["num_crops"],
            normalization=settings["normalization"],
        )

    # -- processing ----------------------------------------------------------------------------------------------
    def sample_indices(self, total_frames: int, **kwargs: Any) -> np.ndarray:
        """0-based frame indices this processor reads from a video of ``total_frames`` frames."""
        settings = self._settings(**kwargs)
        return self.sampler_for(settings)(int(total_frames))

    def decode(
        self, video: Any, settings: dict[str, Any], num_threads: int = 1
    ) -> tuple[np.ndarray, np.ndarray, int]:
        """Decode (or index) the sampled frames of one video, each frame once: uint8 ``(F, H, W, 3)`` in frame
        order, the position in it of every sampled index (clip-major, ``clips * T``), and the clip count.

        Files are opened once (``decoding.read_video_sampled``); ``num_threads`` is the decoder's thread count
        (1, as mmaction2's ``DecordInit``; the frames are the same with more).
        """
        sampler = self.sampler_for(settings)
        if isinstance(video, (str, os.PathLike)):
            frames, indices = read_video_sampled(
                os.fspath(video),
                sampler,
                backend=settings["video_backend"],
                num_threads=num_threads,
                expand=False,
            )
            _, positions = np.unique(indices, return_inverse=True)
        else:
            frames_all = _as_frames(video)
            indices = sampler(len(frames_all))
            unique, positions = np.unique(indices, return_inverse=True)
            frames = frames_all[unique]
        return frames, positions.reshape(-1), len(indices) // settings["num_frames"]

    def preprocess(self, videos: Any, **kwargs: Any) -> BatchFeature:
        """``pixel_values`` for one video or a list of videos (paths or decoded ``(T, H, W, 3)`` uint8 frames).

        Keyword arguments override the processor's settings for this call (e.g. ``views="multi"``,
        ``num_frames=16``); ``return_tensors="pt"`` gives torch tensors.
        """
        return_tensors = kwargs.pop("return_tensors", None)
        kwargs.pop("do_sample_frames", None)  # frames are always sampled (the pipeline passes True)
        settings = self._settings(**kwargs)
        self._check_settings(settings)
        single = not isinstance(videos, (list, tuple))
        batch = []
        for video in [videos] if single else videos:
            [(_, views)] = self.iter_view_batches(
                video, None, **kwargs
            )  # all views, in order: (V, T, C, H, W)
            batch.append(views[0].numpy() if settings["views"] == "single" else views.numpy())
        pixel_values = np.stack(batch)
        return BatchFeature(data={"pixel_values": pixel_values}, tensor_type=return_tensors)

    def num_views(self, **kwargs: Any) -> int:
        """Views per video with these settings (1 for ``views='single'``; clips x crops for ``'multi'``)."""
        settings = self._settings(**kwargs)
        self._check_settings(settings)
        clips = self.sampler_for(settings).num_output_clips
        return clips * self.transform_for(settings).crops_per_clip

    def iter_view_batches(
        self, video: Any, max_views_per_batch: int | None = None, **kwargs: Any
    ) -> Iterator[tuple[np.ndarray, torch.Tensor]]:
        """The views of one video, made a few clips at a time: yields ``(view_indices, pixel_values)`` with float32
        ``pixel_values`` ``(n, T, C, H, W)`` and their positions in the ``(V, ...)`` order :meth:`preprocess` gives.

        The sampled frames are decoded once (with ``torch.get_num_threads()`` decoder threads) and each resized
        once, even where clips share it; each batch holds whole clips with all their crops (at most
        ``max_views_per_batch`` views, but at least one clip; None: every view in one batch, what :meth:`preprocess`
        takes), so only one batch of float32 views exists at a time (30 views of 32x256x256 are 755 MB as one
        tensor). Use with ``hf_i3d.multiview.predict_view_batches``.
        """
        settings = self._settings(**kwargs)
        self._check_settings(settings)
        check_max_views_per_batch(max_views_per_batch)
        transform = self.transform_for(settings)
        frames, positions, num_clips = self.decode(video, settings, num_threads=torch.get_num_threads())
        params = transform.sample_params(frames.shape[1], frames.shape[2])
        if params.resize is not None:  # each decoded frame resized once, even when clips share it
            frames = resize_clip(frames, *params.resize)
            params = dataclasses.replace(params, resize=None)
        crops = len(params.boxes)
        clip_len = len(positions) // num_clips
        clips_per_batch = max(1, (max_views_per_batch or crops * num_clips) // crops)
        for first in range(0, num_clips, clips_per_batch):
            count = min(clips_per_batch, num_clips - first)
            clips = frames[positions[first * clip_len : (first + count) * clip_len]]
            views = transform.apply(clips, params, count)
            # crop-major within the batch (crop k of clip first + j at k * count + j), as in the whole video
            indices = np.array([k * num_clips + first + j for k in range(crops) for j in range(count)])
            yield indices, torch.from_numpy(views)


def _square_side(crop_size: Any) -> int:
    """The side of a square ``crop_size`` given as an int, ``{'height': n, 'width': n}`` or a transformers SizeDict."""
    if isinstance(crop_size, int):
        return crop_size
    height, width = getattr(crop_size, "height", None), getattr(crop_size, "width", None)
    if isinstance(crop_size, dict):
        height, width = crop_size.get("height"), crop_size.get("width")
    if not isinstance(height, int) or height != width:
        raise ValueError(f"crop_size must be square, {{'height': n, 'width': n}}, got {crop_size!r}")
    return height


def _as_frames(video: Any) -> np.ndarray:
    """Decoded frames as a uint8 ``(T, H, W, 3)`` RGB array (from a numpy array, a tensor or a list of frames)."""
    if hasattr(video, "detach"):
        video = video.detach().cpu().numpy()
    if isinstance(video, (list, tuple)):
        video = np.stack([np.asarray(frame) for frame in video])
    video = np.asarray(video)
    if video.ndim != 4 or video.shape[-1] != 3:
        raise ValueError(
            f"decoded frames must be a (frames, height, width, 3) RGB array, got shape {tuple(video.shape)}"
        )
    if video.dtype != np.uint8:
        raise ValueError(f"decoded frames must be uint8 (0-255), got {video.dtype}")
    if len(video) == 0:
        raise ValueError("decoded frames: the video has no frames")
    return video


# A saved processor carries its code and an ``auto_map`` entry, like the models.
I3DVideoProcessor.register_for_auto_class()

__all__ = ["I3DVideoProcessor"]
