"""mmaction2 annotation lists as Hugging Face ``datasets``, with the train / val / test clip pipelines applied lazily.

* :func:`load_video_dataset` turns mmaction2 lists (parsed by :func:`hf_i3d.annotations.parse_annotation_list`)
  into a ``DatasetDict`` with one split per list and a ``ClassLabel`` from
  :func:`hf_i3d.annotations.read_label_names` (a Kinetics class list, UCF101 ``classInd.txt``,
  Something-Something labels).
* :func:`set_clip_transform` attaches a zoo preset's pipeline (``SampleFrames`` / ``DenseSampleFrames`` -> decode ->
  ``Resize`` -> ``MultiScaleCrop`` / ``CenterCrop`` / ``ThreeCrop`` -> ``Flip`` -> ``Normalize``) with
  ``Dataset.with_transform``: nothing is decoded until an item is read. The sampler and the transform are
  :class:`~hf_i3d.sampling.ClipSampler` and :class:`~hf_i3d.transforms.ClipTransform`, the code the video
  processor uses for its val/test views.
* :func:`to_iterable_clips` does the same for an ``IterableDataset`` (lists of hundreds of thousands of videos,
  ``datasets.distributed.split_dataset_by_node``); :func:`collate_clips` batches items.
* :func:`load_clip_datasets` does both for the train / validation / test splits of a run under one zoo preset's
  data settings (what ``examples/run_video_classification.py`` trains and tests on).

Randomness (train crops, offsets, flips): with ``seed=None`` the draws come from the global ``np.random``, as in
mmaction2; ``transformers.Trainer`` seeds every DataLoader worker (``seed_worker``), so runs repeat for a fixed
``args.seed`` and worker count. With ``seed=s`` every item draws from its own ``np.random.RandomState([s, epoch,
line])`` (``line`` = its line in the list), so a clip depends on nothing else: not on the worker that loads it,
the number of workers, the order or the sharding. Advance ``epoch`` with :func:`set_epoch` (under
``transformers.Trainer``: ``hf_i3d.training.ClipEpochCallback``), or every epoch repeats the same augmentation.

Bad input (``on_error``): a malformed list line always raises, naming ``file:line``. ``on_error="raise"`` (default)
raises for a label outside the label set (at load time), and for a missing or undecodable video, a frame folder
shorter than its line claims or a corrupt JPEG (when the item is read), naming the list line and the file.
``on_error="skip"`` drops lines with bad labels at load time (listed in ``DatasetDict.skipped``) and replaces an
item that fails to load by another item of the dataset, drawn deterministically from the failed item's line (an
``IterableDataset`` drops it instead); each skip is logged and counted (:func:`skip_stats`), and a clip is only
ever made from frames that all decoded.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields, replace
from multiprocessing.context import get_spawning_popen
from typing import Any

import numpy as np

from ._validation import check_choice
from .annotations import (
    MODALITIES,
    Annotation,
    AnnotationError,
    check_not_one_based,
    parse_annotation_list,
    read_label_names,
)
from .decoding import (
    DEFAULT_FILENAME_TMPL,
    DEFAULT_VIDEO_BACKEND,
    JPEG_BACKENDS,
    VIDEO_BACKENDS,
    DecodeError,
    FrameDecodeError,
    count_frames,
    read_frames,
    read_video_sampled,
)
from .sampling import ClipSampler
from .transforms import ClipTransform, build_clip_transform
from .zoo import DataSettings, get_entry

logger = logging.getLogger(__name__)

ON_ERROR = ("raise", "skip")
DEFAULT_PRESET = "i3d-r50-kinetics400"
_META_KEY = "hf_i3d"


class ClipLoadError(ValueError):
    """An item whose clip could not be made (missing or undecodable video, short frame folder, corrupt JPEG)."""


# ---------------------------------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------------------------------
def load_video_dataset(
    data_root: str | os.PathLike | Mapping[str, str | os.PathLike] | None,
    ann_files: Mapping[str, str | os.PathLike],
    modality: str = "video",
    label_names: str | os.PathLike | Sequence[str] | None = None,
    *,
    filename_tmpl: str = DEFAULT_FILENAME_TMPL,
    start_index: int | None = None,
    with_offset: bool = False,
    multi_label: bool = False,
    num_classes: int | None = None,
    on_error: str = "raise",
    check_files: bool = False,
):
    """mmaction2 annotation lists as a ``datasets.DatasetDict``, one split per entry of ``ann_files``.

    Columns: ``path`` (absolute video file or frame folder: ``data_root`` joined with the list's path, as
    mmaction2's ``data_prefix``), ``total_frames`` (the list's count for frame folders; -1 for videos, counted
    when the item is read), ``offset`` (0 without ``with_offset``), ``label`` (``ClassLabel``) or with
    ``multi_label`` ``labels`` (a sequence of ``ClassLabel``), and ``line`` (the item's line in its list, which
    errors name and seeded transforms key on). ``data_root`` may be one folder or a folder per split.

    The label set is ``label_names`` (:func:`read_label_names`), else ``num_classes`` unnamed classes, else
    ``max(label) + 1`` over all lists. ``start_index`` defaults to 1 for frame folders (``img_00001.jpg``) and 0
    for videos; it, ``filename_tmpl`` and ``modality`` are recorded in each split's ``info.description`` (JSON)
    for :func:`set_clip_transform`. ``check_files`` stats every video and counts every frame folder now (slow on
    network storage) instead of when an item is read. ``on_error``: see the module docstring; lines skipped at
    load time are logged and listed per split in the returned dict's ``skipped`` attribute.
    """
    from datasets import ClassLabel, Dataset, DatasetDict, DatasetInfo, Features, Sequence, Value

    check_choice("modality", modality, MODALITIES)
    check_choice("on_error", on_error, ON_ERROR)
    if not isinstance(ann_files, Mapping) or not ann_files:
        raise ValueError(
            'ann_files must be a non-empty dict of split name -> list file, e.g. {"train": "train.txt"}'
        )
    if start_index is None:
        start_index = 1 if modality == "rawframes" else 0
    names = read_label_names(label_names) if label_names is not None else None
    if names is not None and num_classes is not None and num_classes != len(names):
        raise ValueError(f"num_classes={num_classes} but label_names holds {len(names)} names")
    parsed = {
        split: parse_annotation_list(ann_file, modality, with_offset=with_offset, multi_label=multi_label)
        for split, ann_file in ann_files.items()
    }
    for split, records in parsed.items():
        if not records:
            raise AnnotationError(f"{ann_files[split]}: the {split} list holds no lines")
    if names is not None:
        check_not_one_based(parsed, ann_files, len(names))
        num_classes, label_source = len(names), f"{len(names)} label names"
    elif num_classes is not None:
        label_source = f"num_classes={num_classes}"
    else:
        num_classes = 1 + max((max(r.labels) for records in parsed.values() for r in records), default=0)
        label_source = "the largest label in the lists"
    if num_classes < 1:
        raise ValueError(f"num_classes must be at least 1, got {num_classes}")

    label_feature = ClassLabel(names=names) if names is not None else ClassLabel(num_classes=num_classes)
    features = Features(
        {
            "path": Value("string"),
            "total_frames": Value("int64"),
            "offset": Value("int64"),
            **({"labels": Sequence(label_feature)} if multi_label else {"label": label_feature}),
            "line": Value("int64"),
        }
    )
    splits, skipped = {}, {}
    for split, records in parsed.items():
        ann_file = os.path.abspath(ann_files[split])
        root = data_root.get(split) if isinstance(data_root, Mapping) else data_root
        if isinstance(data_root, Mapping) and root is None:
            raise ValueError(f"data_root has no folder for split {split!r} (it has {sorted(data_root)})")
        columns: dict[str, list] = {name: [] for name in features}
        skipped[split] = []
        for record in records:
            path = os.path.abspath(os.path.join(os.fspath(root), record.path) if root else record.path)
            problem = _label_problem(record.labels, num_classes, label_source)
            if problem is None and check_files:
                problem = _file_problem(path, modality, record, filename_tmpl, start_index)
            if problem is not None:
                message = f"{ann_file}:{record.line}: {problem}"
                if on_error == "raise":
                    raise ClipLoadError(message)
                logger.warning("skipped %s", message)
                skipped[split].append(message)
                continue
            columns["path"].append(path)
            columns["total_frames"].append(record.total_frames)
            columns["offset"].append(record.offset)
            columns["labels" if multi_label else "label"].append(
                list(record.labels) if multi_label else record.labels[0]
            )
            columns["line"].append(record.line)
        if skipped[split]:
            logger.warning("%s: skipped %d of %d lines", ann_file, len(skipped[split]), len(records))
        meta = {
            "modality": modality,
            "filename_tmpl": filename_tmpl,
            "start_index": start_index,
            "ann_file": ann_file,
            "multi_label": multi_label,
        }
        info = DatasetInfo(description=json.dumps({_META_KEY: meta}), features=features)
        splits[split] = Dataset.from_dict(columns, features=features, info=info, split=split)
    result = DatasetDict(splits)
    result.skipped = skipped
    return result


def _label_problem(labels: tuple[int, ...], num_classes: int, source: str) -> str | None:
    for label in labels:
        if not 0 <= label < num_classes:
            return f"label {label} is outside the label set 0..{num_classes - 1} ({source})"
    return None


def _file_problem(
    path: str, modality: str, record: Annotation, filename_tmpl: str, start_index: int
) -> str | None:
    if modality == "video":
        return None if os.path.isfile(path) else f"{path}: no such video file"
    try:
        held = count_frames(path, filename_tmpl, start_index)
    except FrameDecodeError as exc:
        return str(exc)
    if held < record.offset + record.total_frames:
        needed = record.offset + record.total_frames
        return f"{path}: the frame folder holds {held} frames, its list line claims {needed}"
    return None


# ---------------------------------------------------------------------------------------------------------------
# Clip transforms
# ---------------------------------------------------------------------------------------------------------------
_SAMPLER_FIELDS = tuple(f.name for f in fields(ClipSampler) if f.name != "mode")
_TRANSFORM_FIELDS = tuple(f.name for f in fields(ClipTransform) if f.name != "mode")
_LOADER_FIELDS = ("filename_tmpl", "start_index", "num_threads")


class _SharedCounters:
    """``[epoch, clips loaded, items skipped]`` in shared memory, so DataLoader workers (fork or spawn) see the
    epoch the main process sets and add to the same counts. Ordinary pickling (``datasets`` fingerprinting)
    leaves the shared block out and starts a new one."""

    def __init__(self) -> None:
        self._array = _new_counter_array()

    def __getstate__(self) -> dict[str, Any]:
        if get_spawning_popen() is not None:
            return {"array": self._array}
        return {"values": list(self._array[:])}

    def __setstate__(self, state: dict[str, Any]) -> None:
        if "array" in state:
            self._array = state["array"]
        else:
            self._array = _new_counter_array()
            self._array[:] = state["values"]

    def get(self, slot: int) -> int:
        return int(self._array[slot])

    def set(self, slot: int, value: int) -> None:
        self._array[slot] = value

    def add(self, slot: int, value: int = 1) -> None:
        with self._array.get_lock():
            self._array[slot] += value


_EPOCH, _LOADED, _SKIPPED = range(3)


def _new_counter_array():
    # a spawn-context lock can go to spawned workers too (a fork-context one cannot); forked ones inherit it
    return multiprocessing.get_context("spawn").Array("q", 3)


class ClipDatasetTransform:
    """The batch transform :func:`set_clip_transform` and :func:`to_iterable_clips` install: rows of a loaded
    dataset -> ``{"pixel_values": [...], "labels": [...]}`` (float32 torch tensors; int64 labels or float
    multi-hot). Holds the sampler, the frame transform, how to decode, the seed and the error policy."""

    def __init__(
        self,
        sampler: ClipSampler,
        transform: ClipTransform,
        *,
        modality: str | None,
        backend: str | None,
        filename_tmpl: str = DEFAULT_FILENAME_TMPL,
        start_index: int | None = None,
        num_threads: int = 1,
        seed: int | None = None,
        on_error: str = "raise",
        num_classes: int | None = None,
        ann_file: str | None = None,
        source: Any = None,
        max_replacements: int = 10,
    ) -> None:
        check_choice("on_error", on_error, ON_ERROR)
        if modality is not None:
            check_choice("modality", modality, MODALITIES)
        if backend is not None and backend not in VIDEO_BACKENDS + JPEG_BACKENDS:
            raise ValueError(f"backend must be one of {VIDEO_BACKENDS} (videos) or {JPEG_BACKENDS} (frames)")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
            raise ValueError(f"seed must be a non-negative int or None, got {seed!r}")
        self.sampler = sampler
        self.transform = transform
        self.modality = modality
        self.backend = backend
        self.filename_tmpl = filename_tmpl
        self.start_index = start_index
        self.num_threads = num_threads
        self.seed = seed
        self.on_error = on_error
        self.num_classes = num_classes
        self.ann_file = ann_file
        self.source = source
        self.max_replacements = max_replacements
        self._counters = _SharedCounters()
        self._bad: dict[int, str] = {}  # per process: items known to fail, by key

    def __deepcopy__(self, memo: dict) -> ClipDatasetTransform:
        return self  # datasets copies formats; every copy shares the epoch and the counts

    # -- epoch and counts ----------------------------------------------------------------------------------------
    @property
    def epoch(self) -> int:
        return self._counters.get(_EPOCH)

    def set_epoch(self, epoch: int) -> None:
        """The epoch seeded draws use (takes effect in DataLoader workers started afterwards, and in persistent
        ones at once)."""
        self._counters.set(_EPOCH, int(epoch))

    def stats(self) -> dict[str, int]:
        """``{"loaded": clips made, "skipped": items that failed and were replaced or dropped}``, all workers."""
        return {"loaded": self._counters.get(_LOADED), "skipped": self._counters.get(_SKIPPED)}

    # -- per item ------------------------------------------------------------------------------------------------
    def _key(self, row: Mapping[str, Any]) -> int:
        line = row.get("line")
        return int(line) if line is not None else zlib.crc32(str(row["path"]).encode())

    def _name(self, row: Mapping[str, Any]) -> str:
        if self.ann_file is not None and row.get("line") is not None:
            return f"{self.ann_file}:{row['line']}"
        return f"item {row['path']}"

    def _rng(self, key: int) -> np.random.RandomState | None:
        if self.seed is None:
            return None
        return np.random.RandomState([self.seed % 2**32, self.epoch % 2**32, key % 2**32])

    def load_clip(self, row: Mapping[str, Any]) -> np.ndarray:
        """float32 ``(V, T, C, H, W)`` views of one row; :class:`ClipLoadError` naming the item if it fails."""
        path = str(row["path"])
        modality = self.modality or ("rawframes" if os.path.isdir(path) else "video")
        start_index = self.start_index if self.start_index is not None else int(modality == "rawframes")
        total = -1 if row.get("total_frames") is None else int(row["total_frames"])
        offset = int(row.get("offset") or 0)
        rng = self._rng(self._key(row))

        def sample(total_frames: int) -> np.ndarray:
            if total_frames < 1:
                raise DecodeError(path, f"has {total_frames} frames, cannot sample a clip")
            return self.sampler(total_frames, rng, start_index=start_index, offset=offset)

        try:
            if modality == "video":
                if not os.path.exists(path):
                    raise DecodeError(path, "no such video file")
                backend = self.backend or DEFAULT_VIDEO_BACKEND
                frames, indices = read_video_sampled(
                    path, sample, backend, self.num_threads, total_frames=total if total >= 0 else None
                )
            else:
                if not os.path.exists(path):
                    raise DecodeError(path, "no such frame folder")
                if total < 0:
                    total = count_frames(path, self.filename_tmpl, start_index)
                indices = sample(total)
                frames = read_frames(
                    path, indices, self.filename_tmpl, self.backend or "simplejpeg", self.num_threads
                )
        except FrameDecodeError as exc:
            message = str(exc)
            if exc.frame is not None and total >= 0:
                frame_file = os.path.join(path, self.filename_tmpl.format(exc.frame))
                if os.path.isdir(path) and not os.path.exists(frame_file):
                    claim = f"{total} frames" + (f" from offset {offset}" if offset else "")
                    message += f"; its list line claims {claim}"
            raise ClipLoadError(f"{self._name(row)}: {message}") from exc
        except (DecodeError, OSError) as exc:
            raise ClipLoadError(f"{self._name(row)}: {exc}") from exc
        num_clips = len(indices) // self.sampler.clip_len
        return self.transform(frames, rng, num_clips=num_clips)

    def _label(self, row: Mapping[str, Any]):
        import torch

        if "labels" in row and row.get("label") is None:
            if self.num_classes is None:
                raise ValueError("multi-label rows need num_classes (the ClassLabel of the 'labels' column)")
            target = torch.zeros(self.num_classes, dtype=torch.float32)
            target[list(row["labels"])] = 1.0
            return target
        return torch.tensor(int(row["label"]), dtype=torch.int64)

    def _load_or_replace(self, row: Mapping[str, Any]) -> tuple[np.ndarray, Mapping[str, Any]] | None:
        key = self._key(row)
        try:
            if key in self._bad:
                raise ClipLoadError(self._bad[key])
            return self.load_clip(row), row
        except ClipLoadError as exc:
            if self.on_error == "raise":
                raise
            self._remember(key, exc)
        self._counters.add(_SKIPPED)  # one per item served by another item (or dropped)
        if self.source is None:
            return None  # iterable: the item is dropped
        failures = [key]
        for attempt in range(1, self.max_replacements + 1):
            draw = np.random.RandomState([0x5EED, key % 2**32, attempt]).randint(len(self.source))
            candidate = self.source[int(draw)]
            candidate_key = self._key(candidate)
            if candidate_key in self._bad:
                continue
            try:
                return self.load_clip(candidate), candidate
            except ClipLoadError as exc:
                self._remember(candidate_key, exc)
                failures.append(candidate_key)
        raise ClipLoadError(
            f"{self._name(row)} failed and so did its {self.max_replacements} replacement draws "
            f"(items {failures}); is the data there?"
        )

    def _remember(self, key: int, exc: ClipLoadError) -> None:
        """Log a failing item once per process and never decode it again here."""
        if key not in self._bad:
            self._bad[key] = str(exc)
            logger.warning("on_error='skip': %s", exc)

    def __call__(self, batch: Mapping[str, list]) -> dict[str, list]:
        import torch

        size = len(next(iter(batch.values())))
        pixel_values, labels = [], []
        for i in range(size):
            row = {name: values[i] for name, values in batch.items()}
            loaded = self._load_or_replace(row)
            if loaded is None:
                continue
            views, used = loaded
            if self.transform.mode != "test" and len(views) == 1:
                views = views[0]
            pixel_values.append(torch.from_numpy(views))
            labels.append(self._label(used))
            self._counters.add(_LOADED)
        return {"pixel_values": pixel_values, "labels": labels}


def _settings_of(preset: str | DataSettings) -> DataSettings:
    if isinstance(preset, DataSettings):
        return preset
    if isinstance(preset, str):
        return get_entry(preset).data
    raise TypeError(f"preset must be a zoo name or a DataSettings, got {type(preset).__name__}")


def _loader_meta(dataset: Any) -> dict[str, Any]:
    """What :func:`load_video_dataset` recorded about a split (empty for other datasets)."""
    info = getattr(dataset, "info", None)
    description = getattr(info, "description", None) or ""
    if not description.startswith("{"):
        return {}
    try:
        return dict(json.loads(description).get(_META_KEY, {}))
    except (json.JSONDecodeError, AttributeError):
        return {}


def _num_classes(dataset: Any) -> int | None:
    features = getattr(dataset, "features", None) or {}
    feature = features.get("label")
    if feature is None and "labels" in features:
        feature = getattr(features["labels"], "feature", None)
    return getattr(feature, "num_classes", None)


def build_dataset_transform(
    dataset: Any,
    preset: str | DataSettings = DEFAULT_PRESET,
    mode: str = "train",
    *,
    seed: int | None = None,
    on_error: str = "raise",
    modality: str | None = None,
    backend: str | None = None,
    replace_from: Any = None,
    **overrides: Any,
) -> ClipDatasetTransform:
    """The :class:`ClipDatasetTransform` of a preset's ``mode`` pipeline for ``dataset`` (see
    :func:`set_clip_transform` for the arguments). ``replace_from`` is the dataset failed items are replaced
    from (``None``: they are dropped)."""
    settings = _settings_of(preset)
    unknown = sorted(set(overrides) - set(_SAMPLER_FIELDS) - set(_TRANSFORM_FIELDS) - set(_LOADER_FIELDS))
    if unknown:
        valid = sorted(_SAMPLER_FIELDS + _TRANSFORM_FIELDS + _LOADER_FIELDS)
        raise TypeError(f"unknown clip setting(s) {unknown}; valid: {valid}")
    sampler_args = {k: v for k, v in overrides.items() if k in _SAMPLER_FIELDS}
    transform_args = {k: v for k, v in overrides.items() if k in _TRANSFORM_FIELDS}
    if mode == "val" and settings.sampler == "dense" and "sampler" not in sampler_args:
        # mmaction2's dense val samples 10 positions; one view for validation is the centred uniform clip
        settings = replace(settings, sampler="uniform")
    sampler = ClipSampler.from_settings(settings, mode, **sampler_args)
    transform = build_clip_transform(settings, mode, **transform_args)
    meta = _loader_meta(dataset)
    modality = modality or meta.get("modality")
    if backend is None and modality == "rawframes":
        backend = settings.jpeg_backend
    if modality == "video" and backend is not None and backend not in VIDEO_BACKENDS:
        raise ValueError(f"backend {backend!r} is not a video backend {VIDEO_BACKENDS}")
    if modality == "rawframes" and backend not in JPEG_BACKENDS:
        raise ValueError(f"backend {backend!r} is not a JPEG backend {JPEG_BACKENDS}")
    return ClipDatasetTransform(
        sampler,
        transform,
        modality=modality,
        backend=backend,
        filename_tmpl=overrides.get("filename_tmpl", meta.get("filename_tmpl", DEFAULT_FILENAME_TMPL)),
        start_index=overrides.get("start_index", meta.get("start_index")),
        num_threads=overrides.get("num_threads", 1),
        seed=seed,
        on_error=on_error,
        num_classes=_num_classes(dataset),
        ann_file=meta.get("ann_file"),
        source=replace_from,
    )


def set_clip_transform(
    dataset: Any,
    preset: str | DataSettings = DEFAULT_PRESET,
    mode: str = "train",
    *,
    seed: int | None = None,
    on_error: str = "raise",
    modality: str | None = None,
    backend: str | None = None,
    **overrides: Any,
):
    """A copy of ``dataset`` (a split of :func:`load_video_dataset`) that decodes and transforms items when read.

    Items become ``{"pixel_values", "labels"}``: float32 ``(T, C, H, W)`` in train and val (one view; val is
    mmaction2's centred clip + centre crop; for the dense preset, whose mmaction2 val pipeline samples 10
    positions, val is the centred uniform clip, the single-view equivalent), ``(V, T, C, H, W)`` in test (the
    preset's views, e.g. 10 clips x 3 crops, crop-major as mmaction2's ``FormatShape``); int64 labels, or float
    multi-hot for multi-label lists.

    ``preset`` is a zoo name or a ``DataSettings``; ``overrides`` replace any sampler setting (``clip_len``,
    ``frame_interval``, ``num_clips``, ``sampler``, ``offset_rule``, ``out_of_bound``, ...), transform setting
    (``short_side``, ``crop_size``, ``test_crop_size``, ``num_crops``, ``flip_ratio``, ``lazy``, ...) or decoding
    setting (``filename_tmpl``, ``start_index``, ``num_threads``). ``modality`` and ``backend`` default to what
    the dataset was loaded as and to PyAV for videos / the preset's JPEG decoder for frames (``backend="decord"``
    is mmaction2's). ``seed`` and ``on_error``: see the module docstring.
    """
    from datasets import DatasetDict

    if isinstance(dataset, DatasetDict):
        raise TypeError("set_clip_transform takes one split (dataset['train']), not a DatasetDict")
    raw = (
        dataset.with_format(None)
        if dataset.format.get("type") or dataset.format["format_kwargs"]
        else dataset
    )
    transform = build_dataset_transform(
        raw,
        preset,
        mode,
        seed=seed,
        on_error=on_error,
        modality=modality,
        backend=backend,
        replace_from=raw,
        **overrides,
    )
    return raw.with_transform(transform)


def to_iterable_clips(
    dataset: Any,
    preset: str | DataSettings = DEFAULT_PRESET,
    mode: str = "train",
    *,
    num_shards: int = 1,
    seed: int | None = None,
    on_error: str = "raise",
    modality: str | None = None,
    backend: str | None = None,
    **overrides: Any,
):
    """``dataset`` (a split of :func:`load_video_dataset`) as a ``datasets.IterableDataset`` of clips, in
    ``num_shards`` contiguous shards (for DataLoader workers and ``split_dataset_by_node``, which assigns whole
    shards when ``num_shards`` is a multiple of the world size). Items are those of :func:`set_clip_transform`,
    made one at a time while iterating; with ``on_error="skip"`` a failed item is dropped. Shuffle with
    ``.shuffle(seed=..., buffer_size=...)``; call :func:`set_epoch` every epoch."""
    raw = (
        dataset.with_format(None)
        if dataset.format.get("type") or dataset.format["format_kwargs"]
        else dataset
    )
    transform = build_dataset_transform(
        raw, preset, mode, seed=seed, on_error=on_error, modality=modality, backend=backend, **overrides
    )
    iterable = raw.to_iterable_dataset(num_shards=num_shards)
    return iterable.map(transform, batched=True, batch_size=1, remove_columns=list(raw.column_names))


def find_clip_transform(dataset: Any) -> ClipDatasetTransform | None:
    """The :class:`ClipDatasetTransform` a dataset reads through (map-style or iterable), or ``None``."""
    format_kwargs = (
        getattr(dataset, "format", {}).get("format_kwargs") if hasattr(dataset, "format") else None
    )
    if format_kwargs and isinstance(format_kwargs.get("transform"), ClipDatasetTransform):
        return format_kwargs["transform"]
    node = getattr(dataset, "_ex_iterable", None)
    while node is not None:
        if isinstance(getattr(node, "function", None), ClipDatasetTransform):
            return node.function
        node = getattr(node, "ex_iterable", None)
    return None


def set_epoch(dataset: Any, epoch: int) -> None:
    """Set the epoch of a dataset's seeded clip draws (and of an ``IterableDataset``'s shuffling)."""
    transform = find_clip_transform(dataset)
    if transform is None:
        raise ValueError(
            "this dataset has no hf_i3d clip transform (use set_clip_transform / to_iterable_clips)"
        )
    transform.set_epoch(epoch)
    if hasattr(dataset, "set_epoch"):
        dataset.set_epoch(epoch)


def skip_stats(dataset: Any) -> dict[str, int]:
    """``{"loaded": n, "skipped": n}`` of a dataset's clip transform, summed over all DataLoader workers."""
    transform = find_clip_transform(dataset)
    if transform is None:
        raise ValueError(
            "this dataset has no hf_i3d clip transform (use set_clip_transform / to_iterable_clips)"
        )
    return transform.stats()


def collate_clips(batch: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Stack the items' ``pixel_values`` (and ``labels``) into batch tensors: ``(B, T, C, H, W)`` or ``(B, V, T,
    C, H, W)``; int64 ``(B,)`` labels or float ``(B, num_classes)`` multi-hot."""
    import torch

    if not batch:
        raise ValueError("collate_clips got an empty batch")
    out = {"pixel_values": torch.stack([torch.as_tensor(item["pixel_values"]) for item in batch])}
    if all("labels" in item for item in batch):
        out["labels"] = torch.stack([torch.as_tensor(item["labels"]) for item in batch])
    return out


# ---------------------------------------------------------------------------------------------------------------
# The splits of a training / test run
# ---------------------------------------------------------------------------------------------------------------
SPLIT_MODES = {"train": "train", "validation": "val", "test": "test"}


@dataclass
class ClipDatasets:
    """The splits with their clip transforms, the class names, and each split's video paths (in list order)."""

    splits: dict[str, Any]
    label_names: list[str]
    videos: dict[str, list[str]]


def load_clip_datasets(
    data_root: str | os.PathLike,
    ann_files: dict[str, str | os.PathLike],
    settings: DataSettings,
    *,
    label_file: str | os.PathLike | None = None,
    seed: int | None = None,
    backend: str | None = None,
    train_overrides: dict[str, Any] | None = None,
    on_error: str = "raise",
    **load_kwargs: Any,
) -> ClipDatasets:
    """Read the annotation lists (:func:`load_video_dataset`; split names ``train``, ``validation``,
    ``test``) and give each split the clip pipeline of its mode under ``settings`` (train: random crops seeded by
    ``seed``, epoch and list line; validation: one centred clip; test: the multi-view protocol).
    ``train_overrides`` (e.g. ``flip_ratio``) apply to the train pipeline only; ``load_kwargs`` go to
    ``load_video_dataset`` (``filename_tmpl``, ``start_index``, ``with_offset``, ...). ``on_error="skip"`` drops
    lines with bad labels and replaces items that fail to load (see the module docstring; :func:`skip_stats`)."""
    unknown = sorted(set(ann_files) - set(SPLIT_MODES))
    if unknown:
        raise ValueError(f"unknown split(s) {unknown}; use {sorted(SPLIT_MODES)}")
    raw = load_video_dataset(
        data_root,
        dict(ann_files),
        modality=settings.modality,
        label_names=label_file,
        on_error=on_error,
        **load_kwargs,
    )
    label_names = (
        read_label_names(label_file) if label_file else list(next(iter(raw.values())).features["label"].names)
    )
    splits, videos = {}, {}
    for split, dataset in raw.items():
        videos[split] = list(dataset["path"])
        splits[split] = set_clip_transform(
            dataset,
            settings,
            SPLIT_MODES[split],
            seed=seed,
            backend=backend,
            on_error=on_error,
            **((train_overrides or {}) if split == "train" else {}),
        )
    return ClipDatasets(splits=splits, label_names=label_names, videos=videos)


__all__ = [
    "SPLIT_MODES",
    "ClipDatasetTransform",
    "ClipDatasets",
    "ClipLoadError",
    "build_dataset_transform",
    "collate_clips",
    "find_clip_transform",
    "load_clip_datasets",
    "load_video_dataset",
    "set_clip_transform",
    "set_epoch",
    "skip_stats",
    "to_iterable_clips",
]
