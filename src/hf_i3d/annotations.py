"""mmaction2 annotation lists and class-name files: parsing only, nothing decoded, no ``datasets`` needed.

* :func:`read_label_names` reads class names in label-id order from the files the common datasets ship (a
  Kinetics class list or csv, UCF101 ``classInd.txt``, Something-Something v1 csv / v2 json).
* :func:`parse_annotation_list` reads an mmaction2 list (``frame_dir total_frames label...`` for extracted frames,
  with the optional offset column; ``path label...`` for videos; ``mmaction/datasets/rawframe_dataset.py`` and
  ``video_dataset.py``, ``load_annotations``) into :class:`Annotation` records; docs/mmaction2-port.md §4 has the
  formats. ``hf_i3d.data`` turns the records into datasets.
* :func:`read_path_list` reads only the paths of a list (one path per line, or the lines above): what
  ``hf-i3d extract-features --list`` takes.

A malformed line raises :class:`AnnotationError` whose message starts with ``file:line:``.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from ._validation import check_choice

logger = logging.getLogger(__name__)

MODALITIES = ("video", "rawframes")
_INTEGER = re.compile(r"-?\d+")  # a numeric field of a list line (label, total_frames, offset)


class AnnotationError(ValueError):
    """A malformed annotation-list or label-file line (the message starts with ``file:line:``)."""


def _read_text(path: Path) -> str:
    """A list or label file as text: UTF-8 with or without a byte-order mark; anything else (a Latin-1 list) is an
    :class:`AnnotationError` naming the file, line and byte."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise AnnotationError(
            f"{path}:{line}: not UTF-8 text (byte 0x{data[exc.start]:02x}); save the file as UTF-8 "
            "(e.g. iconv -f latin1 -t utf-8)"
        ) from None


# ---------------------------------------------------------------------------------------------------------------
# Label names
# ---------------------------------------------------------------------------------------------------------------
_CLASS_IND = re.compile(r"^\s*(\d+)\s+(\S.*?)\s*$")


def read_label_names(source: str | os.PathLike | Sequence[str]) -> list[str]:
    """Class names in label-id order, from a list of names or a file.

    Files: a plain list, one name per line (a Kinetics class list, Something-Something v1
    ``something-something-v1-labels.csv``: the id is the line's index); UCF101 ``classInd.txt`` (``1 ApplyEyeMakeup``:
    every line ``id name``, ids 1..N or 0..N-1, id 1 is label 0); a Something-Something v2 ``labels.json``
    (``{"name": "id"}``); the official Kinetics csv (``label,youtube_id,time_start,time_end,split``: the sorted
    set of its labels, sorted as mmaction2's ``parse_kinetics_splits`` sorts them, with spaces as ``_``). Blank
    lines are ignored; a duplicate name raises naming ``file:line``.
    """
    if not isinstance(source, (str, os.PathLike)):
        names = [str(name) for name in source]
        _check_unique(names, "label_names")
        return names
    path = Path(source)
    if not path.is_file():
        raise FileNotFoundError(f"label names file {path} does not exist")
    text = _read_text(path)
    if path.suffix.lower() == ".json":
        return _labels_from_json(path, text)
    lines = [(number, line.strip()) for number, line in enumerate(text.splitlines(), 1) if line.strip()]
    if not lines:
        raise AnnotationError(f"{path}: holds no label names")
    header = [field.strip() for field in lines[0][1].split(",")]
    if header[:2] == ["label", "youtube_id"]:
        return _labels_from_kinetics_csv(path, lines)
    matches = [_CLASS_IND.match(line) for _, line in lines]
    if all(matches):  # classInd.txt: every line "id name"
        ids = [int(m.group(1)) for m in matches]
        first = min(ids)
        seen: dict[int, int] = {}
        for (number, _), class_id in zip(lines, ids):
            if class_id in seen:
                raise AnnotationError(f"{path}:{number}: class id {class_id} repeats line {seen[class_id]}")
            seen[class_id] = number
        if first not in (0, 1):
            raise AnnotationError(
                f"{path}:{seen[first]}: class ids must start at 0 or 1 (classInd.txt 'id name' lines), the "
                f"smallest is {first}"
            )
        if sorted(ids) != list(range(first, first + len(ids))):
            missing = next(i for i in range(first, first + len(ids)) if i not in seen)
            raise AnnotationError(
                f"{path}: class ids must run {first}..{first + len(ids) - 1} without gaps (classInd.txt 'id name' "
                f"lines); id {missing} is missing"
            )
        names = [""] * len(ids)
        numbers = [0] * len(ids)
        for (number, _), class_id, match in zip(lines, ids, matches):
            names[class_id - first], numbers[class_id - first] = match.group(2), number
        _check_unique(names, str(path), numbers)
        return names
    names = [line for _, line in lines]
    _check_unique(names, str(path), [number for number, _ in lines])
    return names


def _labels_from_json(path: Path, text: str) -> list[str]:
    try:
        mapping = json.loads(text)
    except json.JSONDecodeError as exc:
        raise AnnotationError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg})") from None
    if not isinstance(mapping, dict) or not mapping:
        raise AnnotationError(f'{path}: expected a JSON object {{"label name": "id", ...}}')
    try:
        by_id = {int(class_id): str(name) for name, class_id in mapping.items()}
    except (TypeError, ValueError):
        raise AnnotationError(f"{path}: every value must be an integer label id") from None
    if sorted(by_id) != list(range(len(mapping))):
        raise AnnotationError(f"{path}: label ids must be 0..{len(mapping) - 1}, each once")
    return [by_id[i] for i in range(len(by_id))]


def _labels_from_kinetics_csv(path: Path, lines: list[tuple[int, str]]) -> list[str]:
    names = set()
    for number, line in lines[1:]:
        label = line.split(",")[0].strip().replace('"', "")
        if not label:
            raise AnnotationError(f"{path}:{number}: empty label")
        names.add(label)
    return sorted(names, key=lambda name: name.replace(" ", "_"))


def _check_unique(names: list[str], where: str, line_numbers: list[int] | None = None) -> None:
    seen: dict[str, int] = {}
    for i, name in enumerate(names):
        if name in seen:
            if line_numbers is not None:
                raise AnnotationError(
                    f"{where}:{line_numbers[i]}: label name {name!r} repeats line {line_numbers[seen[name]]}"
                )
            raise ValueError(f"{where}: label name {name!r} appears twice (positions {seen[name]} and {i})")
        seen[name] = i


# ---------------------------------------------------------------------------------------------------------------
# Annotation lists
# ---------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Annotation:
    """One parsed list line: ``path`` as written, ``total_frames`` (-1 for video lists), ``offset``, labels."""

    path: str
    total_frames: int
    offset: int
    labels: tuple[int, ...]
    line: int


def parse_annotation_list(
    ann_file: str | os.PathLike,
    modality: str = "video",
    *,
    with_offset: bool = False,
    multi_label: bool = False,
) -> list[Annotation]:
    """Parse an mmaction2 list; a malformed line raises :class:`AnnotationError` naming ``file:line``.

    ``rawframes``: ``frame_dir total_frames label`` (``frame_dir offset total_frames label`` with ``with_offset``);
    ``video``: ``path label``; several labels per line with ``multi_label`` (``RawframeDataset`` /
    ``VideoDataset.load_annotations``, whitespace-separated). Blank lines are skipped.
    """
    check_choice("modality", modality, MODALITIES)
    path = Path(ann_file)
    if not path.is_file():
        raise FileNotFoundError(f"annotation list {path} does not exist")
    if modality == "rawframes":
        layout = "frame_dir offset total_frames label" if with_offset else "frame_dir total_frames label"
    else:
        layout = "path label"
    numeric = layout.count(" ")  # fields after the path, the last being the first label
    records = []
    first_seen: dict[str, tuple[int, tuple[int, ...], str]] = {}
    exact_duplicates: list[str] = []
    for number, text in enumerate(_read_text(path).splitlines(), 1):
        parts = text.split()
        if not parts:
            continue
        where = f"{path}:{number}"
        expected = numeric + 1
        if len(parts) < expected or (len(parts) > expected and not multi_label):
            hint = ""
            if len(parts) > expected and not multi_label:
                hint = _extra_fields_hint(parts, expected, modality, with_offset)
            raise AnnotationError(
                f"{where}: expected '{layout}{' ...' if multi_label else ''}', got {len(parts)} fields "
                f"{text.strip()!r}{hint}"
            )
        values = []
        for name, field in zip(layout.split()[1:] + ["label"] * (len(parts) - expected), parts[1:]):
            if not _INTEGER.fullmatch(field):
                raise AnnotationError(
                    f"{where}: {name} must be an integer, got {field!r} in {text.strip()!r}"
                )
            values.append(int(field))
        offset, total = (values[0], values[1]) if with_offset and modality == "rawframes" else (0, values[0])
        if modality == "video":
            total = -1
            label_values = values
        else:
            label_values = values[2:] if with_offset else values[1:]
            if total < 1:
                raise AnnotationError(f"{where}: total_frames must be at least 1, got {total}")
            if offset < 0:
                raise AnnotationError(f"{where}: offset must be >= 0, got {offset}")
        key = " ".join(parts[1:])
        if parts[0] in first_seen:
            line, labels, seen_key = first_seen[parts[0]]
            if seen_key != key:
                raise AnnotationError(
                    f"{where}: {parts[0]} is listed again with other values ({text.strip()!r}; line {line} has "
                    f"{parts[0]} {seen_key}): keep one of the two lines"
                )
            exact_duplicates.append(f"{number} (= line {line})")
            continue
        first_seen[parts[0]] = (number, tuple(label_values), key)
        records.append(Annotation(parts[0], total, offset, tuple(label_values), number))
    if exact_duplicates:
        logger.warning(
            "%s: %d exact duplicate line(s) ignored: lines %s",
            path,
            len(exact_duplicates),
            ", ".join(exact_duplicates[:10]) + (", ..." if len(exact_duplicates) > 10 else ""),
        )
    return records


@dataclass(frozen=True)
class ListedPath:
    """One entry of a path list: the path (as written, or as resolved from a line with spaces) and its line."""

    path: str
    line: int


def read_path_list(list_file: str | os.PathLike) -> list[ListedPath]:
    """The paths of a list of videos: one path per line, or mmaction2 list lines (``path label...``,
    ``frame_dir [offset] total_frames label...``, as :func:`parse_annotation_list` reads them) whose trailing integer
    fields are ignored, so one list serves training and feature extraction. Blank lines and lines starting with
    ``#`` are skipped; the text is read as :func:`parse_annotation_list` reads it (UTF-8, byte-order mark allowed).

    Paths are kept as written: a relative one is relative to the current folder, as the paths of
    :func:`parse_annotation_list` are without a ``data_root`` (never to the list's folder). A path may hold
    spaces: of the whole line and the line without 1, 2, ... of its trailing integer fields, the longest that
    exists wins; when none exists, the line without all of them (``a.mp4 0`` -> ``a.mp4``) is the path, for the
    caller to report as missing with its ``line``.
    """
    path = Path(list_file)
    entries = []
    for number, text in enumerate(_read_text(path).splitlines(), 1):
        candidate = text.strip()
        if not candidate or candidate.startswith("#"):
            continue
        candidates = [candidate]
        for field in reversed(candidate.split()[1:]):
            if not _INTEGER.fullmatch(field):
                break
            candidate = candidate[: -len(field)].rstrip()
            candidates.append(candidate)
        chosen = next((c for c in candidates if os.path.exists(c)), candidates[-1])
        entries.append(ListedPath(chosen, number))
    return entries


def _extra_fields_hint(parts: list[str], expected: int, modality: str, with_offset: bool) -> str:
    """Why a line may have more fields than its layout, in the order of likelihood (a hint that, when followed
    blindly, does not mislabel the data)."""
    numeric = [_INTEGER.fullmatch(field) is not None for field in parts[1:]]
    if not all(numeric):
        return " (a path with spaces? list paths cannot contain spaces)"
    if modality == "video" and len(parts) in (3, 4):
        return (
            " (a rawframes list 'frame_dir total_frames label'? load it with modality='rawframes'; "
            "only a multi-label list takes multi_label=True)"
        )
    if modality == "rawframes" and not with_offset and len(parts) == 4:
        return " (an offset column: with_offset=True; only a multi-label list takes multi_label=True)"
    return " (only a multi-label list takes multi_label=True)"


def check_not_one_based(
    parsed: Mapping[str, list[Annotation]], ann_files: Mapping[str, str | os.PathLike], num_names: int
) -> None:
    """A list whose labels run 1..N against N label names was written 1-based (UCF101's classInd ids): every label
    would name the next class, and the last would be out of range. An :class:`AnnotationError`, whatever
    ``on_error``, naming the list and a line with label N."""
    labels = [label for records in parsed.values() for record in records for label in record.labels]
    if labels and min(labels) == 1 and max(labels) == num_names:
        for split, records in parsed.items():
            for record in records:
                if num_names in record.labels:
                    raise AnnotationError(
                        f"{ann_files[split]}:{record.line}: labels run 1..{num_names} but there are {num_names} "
                        f"label names (labels 0..{num_names - 1}): the lists look 1-based; subtract 1 from every "
                        "label (mmaction2 lists are 0-based)"
                    )


__all__ = [
    "MODALITIES",
    "Annotation",
    "AnnotationError",
    "ListedPath",
    "check_not_one_based",
    "parse_annotation_list",
    "read_label_names",
    "read_path_list",
]
