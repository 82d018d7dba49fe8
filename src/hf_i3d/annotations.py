"""mmaction2 annotation lists and class-name files: parsing only, nothing decoded, no ``datasets`` needed.

* :func:`read_label_names` reads class names in label-id order from the files the common datasets ship (a
  Kinetics class list or csv, UCF101 ``classInd.txt``, Something-Something v1 csv / v2 json).
* :func:`parse_annotation_list` reads an mmaction2 list (``frame_dir total_frames label...`` for extracted frames,
  with the optional offset column; ``path label...`` for videos; ``mmaction/datasets/rawframe_dataset.py`` and
  ``video_dataset.py``, ``load_annotations``) into :class:`Annotation` records; docs/mmaction2-port.md §4 has the
  formats. ``hf_i3d.data`` turns the records into datasets.

A malformed line raises :class:`AnnotationError` whose message starts with ``file:line:``.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ._validation import check_choice

MODALITIES = ("video", "rawframes")


class AnnotationError(ValueError):
    """A malformed annotation-list or label-file line (the message starts with ``file:line:``)."""


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
    text = path.read_text(encoding="utf-8-sig")
    if path.suffix.lower() == ".json":
        return _labels_from_json(path, text)
    lines = [(number, line.strip()) for number, line in enumerate(text.splitlines(), 1) if line.strip()]
    if not lines:
        raise AnnotationError(f"{path}: holds no label names")
    header = [field.strip() for field in lines[0][1].split(",")]
    if header[:2] == ["label", "youtube_id"]:
        return _labels_from_kinetics_csv(path, lines)
    matches = [_CLASS_IND.match(line) for _, line in lines]
    if all(matches):
        ids = [int(m.group(1)) for m in matches]
        first = min(ids)
        if first in (0, 1) and sorted(ids) == list(range(first, first + len(ids))):
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
    for number, text in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        parts = text.split()
        if not parts:
            continue
        where = f"{path}:{number}"
        expected = numeric + 1
        if len(parts) < expected or (len(parts) > expected and not multi_label):
            hint = ""
            if len(parts) > expected and not multi_label:
                hint = " (several labels need multi_label=True"
                hint += (
                    ", an offset column with_offset=True)"
                    if modality == "rawframes" and not with_offset
                    else ")"
                )
            raise AnnotationError(
                f"{where}: expected '{layout}{' ...' if multi_label else ''}', got {len(parts)} fields "
                f"{text.strip()!r}{hint}"
            )
        values = []
        for name, field in zip(layout.split()[1:] + ["label"] * (len(parts) - expected), parts[1:]):
            if not re.fullmatch(r"-?\d+", field):
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
        records.append(Annotation(parts[0], total, offset, tuple(label_values), number))
    return records


__all__ = [
    "MODALITIES",
    "Annotation",
    "AnnotationError",
    "parse_annotation_list",
    "read_label_names",
]
