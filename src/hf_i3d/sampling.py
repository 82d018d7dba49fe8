"""Which frames of a video make up its clips: mmaction2's ``SampleFrames`` and ``DenseSampleFrames``, exactly.

One sampler, :class:`ClipSampler`, gives the frame indices of every clip a video contributes in one mode:

* ``train``: random clip offsets (``SampleFrames._get_train_clips`` / ``DenseSampleFrames._get_train_clips``),
* ``val``: one centred clip for the uniform sampler (``SampleFrames(num_clips=1, test_mode=True)``); the dense
  sampler's val pipeline is its test sampling (10 start positions),
* ``test``: ``num_clips`` evenly placed clips, with the 0.x rule (``int(i*avg + avg/2)``, the rule behind the
  published 2020 numbers) or the 1.x rule (``round(i*max_offset/(num_clips-1))``, mmaction2 >= 1.0); dense: 10
  ``linspace`` start positions.

The test-time rules (used by the video processor too) live in ``hf_i3d.frame_ops``; this module adds the training
draws and puts the modes together. Sources: ``mmaction/datasets/pipelines/loading.py`` at v0.5.0 (``7dc99cf6``) for the 0.x rules and
``mmaction/datasets/transforms/loading.py`` at v1.2.0 (``4d6c9347``) for the 1.x test rule. mmaction2 draws from the
global ``np.random``; here the draws come from an explicit ``np.random.RandomState`` (``rng``), so
``RandomState(s)`` reproduces what mmaction2 samples after ``np.random.seed(s)``. Indices are 0-based positions in
the video plus ``start_index`` (1 for ``img_00001.jpg`` frame folders, 0 for decoded videos).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from ._validation import check_choice, check_positive_int
from .frame_ops import clip_frame_indices, dense_test_offsets, uniform_test_offsets

MODES = ("train", "val", "test")
SAMPLERS = ("uniform", "dense")
OFFSET_RULES = ("0.x", "1.x")
OUT_OF_BOUND_OPTS = ("loop", "repeat_last")


@dataclass(frozen=True)
class ClipSampler:
    """Frame indices of the clips of one video (mmaction2 ``SampleFrames`` / ``DenseSampleFrames``).

    ``clip_len`` frames ``frame_interval`` apart make a clip. ``num_clips`` is mmaction2's argument: the number of
    clips for the uniform sampler, the clips inside one ``sample_range`` window for the dense sampler (whose test
    mode repeats that at ``num_sample_positions`` starts, so it returns ``num_clips * num_sample_positions`` clips;
    see :attr:`num_output_clips`). ``out_of_bound`` is mmaction2's ``out_of_bound_opt``: ``'loop'`` wraps
    indices past the end (``mod total_frames``), ``'repeat_last'`` repeats a clip's last valid frame.
    """

    clip_len: int
    frame_interval: int = 1
    num_clips: int = 1
    mode: str = "train"
    sampler: str = "uniform"
    offset_rule: str = "0.x"
    out_of_bound: str = "loop"
    sample_range: int = 64
    num_sample_positions: int = 10

    def __post_init__(self) -> None:
        for name in ("clip_len", "frame_interval", "num_clips", "sample_range", "num_sample_positions"):
            check_positive_int(name, getattr(self, name))
        for name, allowed in (
            ("mode", MODES),
            ("sampler", SAMPLERS),
            ("offset_rule", OFFSET_RULES),
            ("out_of_bound", OUT_OF_BOUND_OPTS),
        ):
            check_choice(name, getattr(self, name), allowed)

    @classmethod
    def from_settings(cls, settings: Any, mode: str, **overrides: Any) -> ClipSampler:
        """The sampler of a zoo entry's ``mode`` pipeline (``settings``: a ``zoo.DataSettings``, read by attribute, so
        that this module stays self-contained for saved processors), as its mmaction2 config builds it.

        Uniform configs sample 1 clip in train and val and ``settings.num_clips`` in test; dense configs pass
        ``settings.num_clips`` (1) everywhere. ``overrides`` replace any field (e.g. ``num_clips=1`` for a
        single-clip test, ``offset_rule='1.x'``).
        """
        check_choice("mode", mode, MODES)
        num_clips = settings.num_clips if (mode == "test" or settings.sampler == "dense") else 1
        sampler = cls(
            clip_len=settings.clip_len,
            frame_interval=settings.frame_interval,
            num_clips=num_clips,
            mode=mode,
            sampler=settings.sampler,
            offset_rule=settings.offset_rule,
        )
        return replace(sampler, **overrides) if overrides else sampler

    @property
    def num_output_clips(self) -> int:
        """How many clips one call returns (the index array holds ``num_output_clips * clip_len`` entries)."""
        if self.sampler == "dense" and self.mode != "train":
            return self.num_clips * self.num_sample_positions
        return self.num_clips

    # -- clip offsets (0-based first frame of each clip), one function per mmaction2 method ------------------------
    def _uniform_train_offsets(self, total_frames: int, rng: Any) -> np.ndarray:
        """``SampleFrames._get_train_clips`` (``keep_tail_frames=False``, the same in 0.x and 1.x)."""
        ori_clip_len = self.clip_len * self.frame_interval
        avg_interval = (total_frames - ori_clip_len + 1) // self.num_clips
        if avg_interval > 0:
            return np.arange(self.num_clips) * avg_interval + rng.randint(avg_interval, size=self.num_clips)
        if total_frames > max(self.num_clips, ori_clip_len):
            return np.sort(rng.randint(total_frames - ori_clip_len + 1, size=self.num_clips))
        if avg_interval == 0:
            ratio = (total_frames - ori_clip_len + 1.0) / self.num_clips
            return np.around(np.arange(self.num_clips) * ratio)
        return np.zeros((self.num_clips,), dtype=np.int64)

    def _uniform_test_offsets(self, total_frames: int) -> np.ndarray:
        """``SampleFrames._get_test_clips``: 0.x (v0.5.0 ... v0.24.1) or 1.x (v1.0+, PySlowFast-style) rule."""
        return uniform_test_offsets(
            total_frames, self.clip_len, self.frame_interval, self.num_clips, self.offset_rule
        )

    def _dense_train_offsets(self, total_frames: int, rng: Any) -> np.ndarray:
        """``DenseSampleFrames._get_train_clips``: one random start in ``[0, N - sample_range - 1]``."""
        sample_position = max(1, 1 + total_frames - self.sample_range)
        interval = self.sample_range // self.num_clips
        start_idx = 0 if sample_position == 1 else rng.randint(0, sample_position - 1)
        return (np.arange(self.num_clips) * interval + start_idx) % total_frames

    def _dense_test_offsets(self, total_frames: int) -> np.ndarray:
        """``DenseSampleFrames._get_test_clips``: ``num_sample_positions`` evenly spaced starts."""
        return dense_test_offsets(total_frames, self.num_clips, self.sample_range, self.num_sample_positions)

    def clip_offsets(self, total_frames: int, rng: np.random.RandomState | None = None) -> np.ndarray:
        """The 0-based first frame of each clip (before ``out_of_bound`` handling), as mmaction2 computes it."""
        if isinstance(total_frames, bool) or not isinstance(total_frames, int | np.integer):
            raise ValueError(f"total_frames must be an int, got {total_frames!r}")
        if total_frames < 1:
            raise ValueError(f"cannot sample clips from a video with {total_frames} frames (need at least 1)")
        total_frames = int(total_frames)
        rng = np.random if rng is None else rng  # None: mmaction2's own behaviour, the global numpy state
        if self.sampler == "dense":
            if self.mode == "train":
                return self._dense_train_offsets(total_frames, rng)
            return self._dense_test_offsets(total_frames)
        if self.mode == "train":
            return self._uniform_train_offsets(total_frames, rng)
        return self._uniform_test_offsets(total_frames)

    def __call__(
        self,
        total_frames: int,
        rng: np.random.RandomState | None = None,
        start_index: int = 0,
        offset: int = 0,
    ) -> np.ndarray:
        """Frame indices of every clip, clip-major: an int64 array of ``num_output_clips * clip_len`` entries.

        ``rng`` is a ``np.random.RandomState`` (train mode only; ``None`` uses the global ``np.random`` as mmaction2
        does). ``start_index`` is added to every index (1 for 1-based frame folders); ``offset`` is the optional
        per-video offset column of mmaction2 rawframe lists (``with_offset=True``), added on top. A video shorter
        than a clip loops (or repeats its last frame with ``out_of_bound='repeat_last'``).
        """
        clip_offsets = self.clip_offsets(total_frames, rng)
        frame_inds = clip_frame_indices(
            clip_offsets, self.clip_len, self.frame_interval, total_frames, self.out_of_bound
        )
        return (frame_inds + start_index + offset).astype(np.int64)


__all__ = ["ClipSampler", "MODES", "OFFSET_RULES", "OUT_OF_BOUND_OPTS", "SAMPLERS"]
