"""What ``datasets`` users have, as hf_i3d clip datasets: a video column and a label column, a local
``videofolder``, a Hub dataset id, and streaming.

* :func:`load_hf_video_dataset` loads a Hub dataset id (or any ``datasets`` builder name) or a local
  ``videofolder`` (``train_dir`` / ``validation_dir`` / ``test_dir``: one sub-folder per class, as Kinetics and
  UCF101 are laid out; ``datasets`` makes the ``ClassLabel`` from the folder names), optionally streaming.
* :func:`as_clip_dataset` turns a ``Dataset`` / ``IterableDataset`` (or a dict of them) with a video column
  (file paths, or ``datasets.Video()`` values) and a label column (``ClassLabel`` or int) into the layout the clip
  transforms of :mod:`hf_i3d.data` read: ``path`` (a local video file) and ``label`` (``ClassLabel``). ``Video()``
  values are never decoded by ``datasets`` (no torchcodec needed for that): their file is used where it is local;
  embedded bytes and remote files are written once into the package cache (map-style) or into a temporary file
  kept only while the item is read (streaming).
* :func:`clip_datasets_from_hf` gives each split its clip pipeline (:func:`hf_i3d.data.set_clip_transform` for
  map-style splits; :func:`streaming_clips` for streamed ones): the same samplers, transforms, seeds and
  ``on_error`` skip policy as annotation lists.
* :func:`split_stream` divides a stream between processes (``rank`` of ``world_size``) so that every video is read
  by exactly one of them per epoch: whole shards when their number divides evenly, else every
  ``world_size``-th item, chosen *before* anything is decoded.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from collections import deque
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ._ffmpeg import provide_ffmpeg
from .data import SPLIT_MODES, ClipDatasets, build_dataset_transform, set_clip_transform
from .downloads import cache_dir
from .zoo import DataSettings

logger = logging.getLogger(__name__)

VIDEOFOLDER = "videofolder"
_REMOTE_PREFIXES = ("hf://", "http://", "https://", "s3://", "gs://", "zip://", "tar://")


class DatasetFormatError(ValueError):
    """The dataset lacks a column, or its label column cannot give class names (one line naming what to pass)."""


# ---------------------------------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------------------------------
def _ffmpeg_for_datasets() -> None:
    """Give torchcodec its FFmpeg before ``datasets`` imports it (its ``Video`` feature does while building a
    videofolder), so ``datasets``' own ``Video()`` decoding works too; without torchcodec nothing is needed."""
    try:
        provide_ffmpeg()
    except ImportError:
        pass


def load_hf_video_dataset(
    dataset_name: str | None = None,
    dataset_config_name: str | None = None,
    *,
    train_dir: str | os.PathLike | None = None,
    validation_dir: str | os.PathLike | None = None,
    test_dir: str | os.PathLike | None = None,
    streaming: bool = False,
    revision: str | None = None,
    token: str | bool | None = None,
    cache_dir: str | None = None,
):
    """``datasets.load_dataset`` the way ``run_image_classification.py`` calls it: a Hub id (or builder name) with
    its config, or ``videofolder`` over class folders (``dataset_name`` None or ``"videofolder"`` with
    ``train_dir`` / ``validation_dir`` / ``test_dir``). Returns a ``DatasetDict`` (``IterableDatasetDict`` when
    ``streaming``), not yet normalised (see :func:`as_clip_dataset`)."""
    from datasets import load_dataset

    _ffmpeg_for_datasets()
    folders = {"train": train_dir, "validation": validation_dir, "test": test_dir}
    folders = {split: folder for split, folder in folders.items() if folder is not None}
    if dataset_name in (None, VIDEOFOLDER):
        if not folders:
            raise DatasetFormatError(
                "a videofolder needs --train_dir, --validation_dir or --test_dir (class sub-folders of videos)"
            )
        for split, folder in folders.items():
            if not Path(folder).is_dir():
                raise DatasetFormatError(f"{folder}: no such folder (the {split} videofolder)")
        data_files = {split: os.path.join(os.path.abspath(folder), "**") for split, folder in folders.items()}
        return load_dataset(VIDEOFOLDER, data_files=data_files, streaming=streaming, cache_dir=cache_dir)
    if folders:
        data_files = {split: os.path.join(os.fspath(folder), "**") for split, folder in folders.items()}
        return load_dataset(
            dataset_name,
            dataset_config_name,
            data_files=data_files,
            streaming=streaming,
            revision=revision,
            token=token,
            cache_dir=cache_dir,
        )
    return load_dataset(
        dataset_name,
        dataset_config_name,
        streaming=streaming,
        revision=revision,
        token=token,
        cache_dir=cache_dir,
    )


# ---------------------------------------------------------------------------------------------------------------
# Normalising: video column -> local ``path``, label column -> ``label`` (ClassLabel)
# ---------------------------------------------------------------------------------------------------------------
def _video_cache_dir() -> Path:
    return cache_dir() / "videos"


def _suffix(name: str | None) -> str:
    suffix = Path(name or "").suffix.lower()
    return suffix if 1 < len(suffix) <= 6 else ".mp4"


def _write_once(data: bytes, name: str | None) -> str:
    """Content-addressed copy of ``data`` in the package cache (temp file moved into place; never half-written)."""
    folder = _video_cache_dir()
    target = folder / f"{hashlib.sha256(data).hexdigest()[:32]}{_suffix(name)}"
    if not target.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(prefix=".partial-", dir=folder)
        with os.fdopen(handle, "wb") as file:
            file.write(data)
        os.replace(temporary, target)
    return str(target)


def _read_remote(url: str) -> bytes:
    from datasets.utils.file_utils import xopen

    with xopen(url, "rb") as file:
        return file.read()


class _LocalVideos:
    """Maps one raw row to ``{"path", "label"}``: the video value to a local file (see module docstring). In
    ``transient`` mode (streaming) files made from bytes or downloads are temporary, and only the last ``keep``
    of them exist at any time (each is read before the next items are made)."""

    def __init__(self, video_column: str, label_column: str, transient: bool, keep: int = 16) -> None:
        self.video_column = video_column
        self.label_column = label_column
        self.transient = transient
        self.keep = keep
        self._recent: deque[str] = deque()

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_recent": deque()}

    def _store(self, data: bytes, name: str | None) -> str:
        if not self.transient:
            return _write_once(data, name)
        handle, path = tempfile.mkstemp(prefix="hf_i3d_stream_", suffix=_suffix(name))
        with os.fdopen(handle, "wb") as file:
            file.write(data)
        self._recent.append(path)
        while len(self._recent) > self.keep:
            stale = self._recent.popleft()
            if os.path.exists(stale):
                os.remove(stale)
        return path

    def local_path(self, value: Any) -> str:
        if isinstance(value, Mapping):
            path, data = value.get("path"), value.get("bytes")
            if data is not None:
                return self._store(bytes(data), path)
            value = path
        if not isinstance(value, (str, os.PathLike)):
            raise DatasetFormatError(
                f"column {self.video_column!r} holds {type(value).__name__} values; expected file paths or "
                "datasets.Video() values"
            )
        value = os.fspath(value)
        if value.startswith(_REMOTE_PREFIXES):
            return self._store(_read_remote(value), value)
        return os.path.abspath(value)

    def __call__(self, batch: Mapping[str, list], indices: list[int] | None = None) -> dict[str, list]:
        out = {
            "path": [self.local_path(value) for value in batch[self.video_column]],
            "label": list(batch[self.label_column]),
        }
        if indices is not None:  # map-style: row numbers (1-based, as list lines) key the seeded draws
            out["line"] = [index + 1 for index in indices]
        return out


def _label_feature(dataset: Any, label_column: str, label_names: list[str] | None):
    """The ``ClassLabel`` of the label column: its own, one from ``label_names``, or (map-style, int labels)
    ``max + 1`` unnamed classes."""
    from datasets import ClassLabel, Value

    feature = (dataset.features or {}).get(label_column)
    if isinstance(feature, ClassLabel):
        if label_names is not None and list(label_names) != list(feature.names):
            raise DatasetFormatError(f"label_names differ from the ClassLabel of column {label_column!r}")
        return feature
    if label_names is not None:
        return ClassLabel(names=list(label_names))
    integer = isinstance(feature, Value) and feature.dtype.startswith(("int", "uint"))
    if integer and hasattr(dataset, "__len__"):
        labels = dataset[label_column]
        return ClassLabel(num_classes=int(max(labels, default=0)) + 1)
    raise DatasetFormatError(
        f"column {label_column!r} is {feature!r}, not a ClassLabel: pass label_names (--label_file) "
        "to name the classes"
    )


def as_clip_dataset(
    dataset: Any,
    video_column: str = "video",
    label_column: str = "label",
    *,
    label_names: list[str] | None = None,
):
    """``dataset`` (a ``Dataset``/``IterableDataset`` or a dict of them) with columns ``path`` (a local video file)
    and ``label`` (``ClassLabel``), what :func:`hf_i3d.data.set_clip_transform` reads; map-style datasets also get
    ``line`` (the 1-based row number), which keys seeded clip draws as an annotation list's line does, so a list
    written in the same row order gives the same clips.

    ``video_column`` holds file paths or ``datasets.Video()`` values (read undecoded); ``label_column`` a
    ``ClassLabel``, or ints (with ``label_names``, or for map-style data ``max + 1`` classes). Map-style datasets
    are normalised once (``Dataset.map``, cached by ``datasets``); streamed ones lazily, item by item.
    """
    from datasets import Dataset, DatasetDict, Features, IterableDataset, IterableDatasetDict, Value, Video

    if isinstance(dataset, (DatasetDict, IterableDatasetDict, dict)):
        kind = IterableDatasetDict if isinstance(dataset, IterableDatasetDict) else DatasetDict
        return kind(
            {
                split: as_clip_dataset(part, video_column, label_column, label_names=label_names)
                for split, part in dataset.items()
            }
        )
    if not isinstance(dataset, (Dataset, IterableDataset)):
        raise TypeError(f"expected a datasets Dataset or IterableDataset, got {type(dataset).__name__}")
    known = dataset.features is not None  # a stream from a generator may not know its columns before reading
    columns = list(dataset.features) if known else [video_column, label_column]
    for role, name, flag in (
        ("video", video_column, "--video_column_name"),
        ("label", label_column, "--label_column_name"),
    ):
        if known and name not in columns:
            raise DatasetFormatError(
                f"the dataset has no {role} column {name!r} (columns: {columns}); pass {flag}"
            )
    label_feature = _label_feature(dataset, label_column, label_names)
    streaming = isinstance(dataset, IterableDataset)
    if streaming:  # media as {"path", "bytes"} (a streamed Hub dataset may not know its features yet)
        dataset = dataset.decode(False)
    elif isinstance(dataset.features[video_column], Video):
        dataset = dataset.cast_column(video_column, Video(decode=False))
    features = Features(
        {"path": Value("string"), "label": label_feature, **({} if streaming else {"line": Value("int64")})}
    )
    normalise = _LocalVideos(video_column, label_column, transient=streaming)
    # streamed: one item at a time, so a temporary video is made just before its clip is (shuffle the raw stream,
    # before this, with a buffer below ``keep``: a file is deleted ``keep`` items after it was made)
    kwargs = {"batch_size": 1} if streaming else {"desc": "locating videos", "with_indices": True}
    return dataset.map(normalise, batched=True, remove_columns=columns, features=features, **kwargs)


# ---------------------------------------------------------------------------------------------------------------
# Streams between processes, clip pipelines
# ---------------------------------------------------------------------------------------------------------------
def split_stream(dataset: Any, rank: int, world_size: int):
    """The part of a stream that process ``rank`` of ``world_size`` reads: whole shards when their number is a
    multiple of ``world_size`` (``datasets.distributed.split_dataset_by_node``), else every ``world_size``-th item
    starting at ``rank``, picked before the items are decoded. Apply it before :func:`streaming_clips`."""
    if not 0 <= rank < world_size:
        raise ValueError(f"rank must lie in [0, {world_size}), got {rank}")
    if world_size == 1:
        return dataset
    if dataset.n_shards % world_size == 0:
        from datasets.distributed import split_dataset_by_node

        return split_dataset_by_node(dataset, rank=rank, world_size=world_size)
    return dataset.filter(lambda _, index: index % world_size == rank, with_indices=True)


def streaming_clips(
    dataset: Any,
    preset: str | DataSettings,
    mode: str = "train",
    *,
    seed: int | None = None,
    on_error: str = "raise",
    backend: str | None = None,
    **overrides: Any,
):
    """A normalised stream (:func:`as_clip_dataset`) as a stream of clips: the items of
    :func:`hf_i3d.data.set_clip_transform`, made one at a time (a failing item is dropped with
    ``on_error="skip"``). Seeded draws key on the video path, so they do not depend on the process or worker."""
    transform = build_dataset_transform(
        dataset,
        preset,
        mode,
        seed=seed,
        on_error=on_error,
        modality="video",
        backend=backend,
        **overrides,
    )
    return dataset.map(transform, batched=True, batch_size=1, remove_columns=["path", "label"])


def clip_datasets_from_hf(
    dataset: Any,
    settings: DataSettings,
    *,
    video_column: str = "video",
    label_column: str = "label",
    label_names: list[str] | None = None,
    seed: int | None = None,
    backend: str | None = None,
    train_overrides: dict[str, Any] | None = None,
    rank: int = 0,
    world_size: int = 1,
) -> ClipDatasets:
    """The splits (``train`` / ``validation`` / ``test``) of a ``DatasetDict`` / ``IterableDatasetDict`` with the
    clip pipeline of each split's mode under ``settings``, as :func:`hf_i3d.data.load_clip_datasets` gives them
    for annotation lists. Streamed splits are divided between processes (:func:`split_stream`) except ``train``,
    which the Trainer's data loader divides; their ``videos`` entry is empty (unknown before reading)."""
    from datasets import IterableDataset

    unknown = sorted(set(dataset) - set(SPLIT_MODES))
    if unknown:
        raise DatasetFormatError(f"unknown split(s) {unknown}; use {sorted(SPLIT_MODES)}")
    normalised = as_clip_dataset(dataset, video_column, label_column, label_names=label_names)
    names = None
    splits, videos = {}, {}
    for split, part in normalised.items():
        feature_names = list(part.features["label"].names)
        if names is not None and feature_names != names:
            raise DatasetFormatError(f"split {split!r} has other classes than the others: {feature_names}")
        names = feature_names
        overrides = (train_overrides or {}) if split == "train" else {}
        if isinstance(part, IterableDataset):
            stream = part if split == "train" else split_stream(part, rank, world_size)
            splits[split] = streaming_clips(
                stream, settings, SPLIT_MODES[split], seed=seed, backend=backend, **overrides
            )
            videos[split] = []
        else:
            videos[split] = list(part["path"])
            splits[split] = set_clip_transform(
                part, settings, SPLIT_MODES[split], seed=seed, modality="video", backend=backend, **overrides
            )
    return ClipDatasets(splits=splits, label_names=names or [], videos=videos)


__all__ = [
    "VIDEOFOLDER",
    "DatasetFormatError",
    "as_clip_dataset",
    "clip_datasets_from_hf",
    "load_hf_video_dataset",
    "split_stream",
    "streaming_clips",
]
