"""Dataset preparation: annotation lists from class folders, and videos -> extracted JPEG frame folders.

* :func:`build_file_list` follows mmaction2 ``tools/data/build_file_list.py``: level 2 is ``ROOT/<class>/<item>``
  with class ids the indices of the sorted class folder names; level 1 is ``ROOT/<item>`` with labels from an
  annotation csv (Something-Something ``<id>;<label text>``). Lines are ``<item> <label>`` for videos and
  ``<frame dir> <number of frames> <label>`` for frame folders (frames counted by the ``img_`` prefix, as
  ``parse_directory`` counts them); ``shuffle`` uses ``random.Random(seed)`` as the tool's ``random.seed`` +
  ``random.shuffle`` does.
* :func:`extract_frames` writes every frame of every video as ``img_00001.jpg``, ... (JPEG quality 95, OpenCV, as
  denseflow does for mmaction2's ``build_rawframes.py``), optionally resized to a short side (mmcv arithmetic) or to
  a fixed ``new_width x new_height`` (denseflow ``--new-width 340 --new-height 256``, the 2020 Kinetics frames). A
  folder is written under a temporary name and renamed when complete, so an interrupted run resumes by skipping
  the folders that exist.
"""

from __future__ import annotations

import os
import random
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ._validation import check_choice, check_positive_int
from .annotations import AnnotationError, read_label_names
from .decoding import _first_line, _rgb_reformatter
from .transforms import rescale_size

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mkv", ".webm", ".mov", ".m4v", ".flv", ".mpg", ".mpeg", ".3gp", ".wmv")
FORMATS = ("videos", "rawframes")


@dataclass
class FileList:
    """The lines of an annotation list, the class names of level 2 (label id order), and what was left out."""

    lines: list[str]
    classes: list[str]
    skipped: list[str] = field(default_factory=list)

    def write(self, out: str | os.PathLike, classes_out: str | os.PathLike | None = None) -> None:
        """Write the list (one line per item) and, if asked, the class names (one per line, id order)."""
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text("".join(f"{line}\n" for line in self.lines), encoding="utf-8")
        if classes_out is not None:
            Path(classes_out).write_text("".join(f"{name}\n" for name in self.classes), encoding="utf-8")


def _is_video(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in VIDEO_EXTENSIONS


def _count_prefixed(folder: Path, prefix: str) -> int:
    return sum(1 for entry in os.scandir(folder) if entry.is_file() and entry.name.startswith(prefix))


def read_annotation_csv(
    path: str | os.PathLike, label_names: Sequence[str] | str | os.PathLike
) -> dict[str, int]:
    """Something-Something style ``<id>;<label text>`` lines -> ``{id: label id}`` (the label text's index in
    ``label_names``); an unknown label or a malformed line raises naming ``file:line``."""
    names = read_label_names(label_names)
    index = {name: i for i, name in enumerate(names)}
    labels: dict[str, int] = {}
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        item, sep, text = line.strip().partition(";")
        if not sep or not item:
            raise AnnotationError(f"{path}:{number}: expected '<id>;<label text>', got {line.strip()!r}")
        if text not in index:
            raise AnnotationError(
                f"{path}:{number}: label {text!r} is not one of the {len(names)} label names"
            )
        labels[item] = index[text]
    return labels


def build_file_list(
    root: str | os.PathLike,
    format: str = "videos",
    level: int = 2,
    *,
    shuffle: bool = False,
    seed: int = 0,
    rgb_prefix: str = "img_",
    annotations: Mapping[str, int] | None = None,
) -> FileList:
    """An mmaction2 annotation list of the videos or frame folders under ``root`` (see the module docstring).

    Level 2 labels items by their class folder (sorted names -> ids 0, 1, ...); level 1 needs ``annotations``
    (``{item id: label id}``, e.g. from :func:`read_annotation_csv`) and lists the annotated items found under
    ``root``, in annotation order. Frame folders without frames and annotated items that are missing are left
    out and named in ``skipped``.
    """
    root = Path(root)
    check_choice("format", format, FORMATS)
    if level not in (1, 2):
        raise ValueError(f"level must be 1 or 2, got {level!r}")
    if not root.is_dir():
        raise FileNotFoundError(f"{root} is not a folder")
    lines: list[str] = []
    skipped: list[str] = []
    classes: list[str] = []

    def add(item: Path, label: int) -> None:
        relative = item.relative_to(root).as_posix()
        if format == "videos":
            lines.append(f"{relative} {label}")
            return
        count = _count_prefixed(item, rgb_prefix)
        if count == 0:
            skipped.append(f"{item}: no frames named {rgb_prefix}*")
        else:
            lines.append(f"{relative} {count} {label}")

    def items_in(folder: Path) -> list[Path]:
        if format == "videos":
            return sorted(p for p in folder.iterdir() if _is_video(p))
        return sorted(p for p in folder.iterdir() if p.is_dir())

    if level == 2:
        if annotations is not None:
            raise ValueError("level 2 takes its labels from the class folders; annotations are for level 1")
        classes = sorted(p.name for p in root.iterdir() if p.is_dir())
        if not classes:
            raise ValueError(f"{root} holds no class folders (level 2 expects ROOT/<class>/<item>)")
        for label, name in enumerate(classes):
            for item in items_in(root / name):
                add(item, label)
    else:
        if annotations is None:
            raise ValueError(
                "level 1 needs annotations (item id -> label id), e.g. a Something-Something csv"
            )
        found = {(p.stem if format == "videos" else p.name): p for p in items_in(root)}
        for item_id, label in annotations.items():
            if item_id in found:
                add(found[item_id], label)
            else:
                skipped.append(f"{root / item_id}: annotated but not found")
    if shuffle:
        random.Random(seed).shuffle(lines)
    return FileList(lines, classes, skipped)


# ---------------------------------------------------------------------------------------------------------------
# Frame extraction
# ---------------------------------------------------------------------------------------------------------------
@dataclass
class ExtractReport:
    """What :func:`extract_frames` did: folders written, folders that already existed, videos that failed."""

    written: list[str] = field(default_factory=list)
    existing: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)


def _target_size(width: int, height: int, short_side: int | None, new_size: tuple[int, int] | None):
    if new_size is not None:
        return new_size
    if short_side is not None:
        return rescale_size(width, height, short_side)
    return width, height


def _extract_one(
    video: str,
    out_dir: str,
    short_side: int | None,
    new_size: tuple[int, int] | None,
    quality: int,
    filename_tmpl: str,
) -> tuple[str, str | None]:
    """Write one video's frames into ``out_dir`` through a temporary folder; ``(video, error or None)``."""
    import av
    import cv2

    target = Path(out_dir)
    target.parent.mkdir(parents=True, exist_ok=True)
    for stale in target.parent.glob(f".{target.name}.tmp-*"):  # left by an interrupted run
        shutil.rmtree(stale, ignore_errors=True)
    temporary = target.parent / f".{target.name}.tmp-{os.getpid()}"
    temporary.mkdir()
    try:
        count = 0
        with av.open(video) as container:
            if not container.streams.video:
                raise ValueError("has no video stream")
            for count, frame in enumerate(container.decode(video=0), 1):
                image = _rgb_reformatter(av).reformat(frame, format="bgr24").to_ndarray()
                size = _target_size(image.shape[1], image.shape[0], short_side, new_size)
                if size != (image.shape[1], image.shape[0]):
                    image = cv2.resize(image, size, interpolation=cv2.INTER_LINEAR)
                name = str(temporary / filename_tmpl.format(count))
                if not cv2.imwrite(name, image, [cv2.IMWRITE_JPEG_QUALITY, quality]):
                    raise OSError(f"could not write {name}")
        if count == 0:
            raise ValueError("has no decodable video frames")
        temporary.rename(target)
        return video, None
    except Exception as exc:  # one bad video must not stop the others; it is reported
        shutil.rmtree(temporary, ignore_errors=True)
        return video, _first_line(exc)


def extract_frames(
    video_root: str | os.PathLike,
    out_root: str | os.PathLike,
    *,
    short_side: int | None = None,
    new_width: int | None = None,
    new_height: int | None = None,
    quality: int = 95,
    workers: int = 1,
    filename_tmpl: str = "img_{:05}.jpg",
    progress: bool = True,
) -> ExtractReport:
    """Extract the frames of every video under ``video_root`` into ``out_root/<same relative path, no extension>/``.

    Folders that exist are complete (they are renamed into place when done) and skipped; ``workers`` processes
    run in parallel. Videos that fail are reported in the result, never left half-written.
    """
    video_root, out_root = Path(video_root), Path(out_root)
    if not video_root.is_dir():
        raise FileNotFoundError(f"{video_root} is not a folder")
    if (new_width is None) != (new_height is None):
        raise ValueError("give both new_width and new_height (a fixed frame size), or short_side")
    if short_side is not None and new_width is not None:
        raise ValueError("give either short_side or new_width/new_height, not both")
    for name, value in (("short_side", short_side), ("new_width", new_width), ("new_height", new_height)):
        if value is not None:
            check_positive_int(name, value)
    if not 1 <= quality <= 100:
        raise ValueError(f"quality must lie in [1, 100], got {quality!r}")
    new_size = (new_width, new_height) if new_width is not None else None
    videos = sorted(p for p in video_root.rglob("*") if _is_video(p))
    report = ExtractReport()
    jobs = []
    for video in videos:
        out_dir = out_root / video.relative_to(video_root).with_suffix("")
        if out_dir.is_dir():
            report.existing.append(str(out_dir))
        else:
            jobs.append((str(video), str(out_dir), short_side, new_size, quality, filename_tmpl))
    from tqdm.auto import tqdm

    bar = tqdm(total=len(jobs), desc="extract-frames", unit="video", disable=not progress)
    results = []
    if workers <= 1:
        for job in jobs:
            results.append(_extract_one(*job))
            bar.update()
    else:
        from concurrent.futures import ProcessPoolExecutor, as_completed

        with ProcessPoolExecutor(max_workers=workers) as pool:
            for future in as_completed([pool.submit(_extract_one, *job) for job in jobs]):
                results.append(future.result())
                bar.update()
    bar.close()
    out_of = {job[0]: job[1] for job in jobs}
    for video, error in sorted(results):
        if error is None:
            report.written.append(out_of[video])
        else:
            report.failed.append((video, error))
    return report


__all__ = [
    "VIDEO_EXTENSIONS",
    "ExtractReport",
    "FileList",
    "build_file_list",
    "extract_frames",
    "read_annotation_csv",
]
