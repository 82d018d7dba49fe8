"""Converters from original checkpoints (mmaction2 ``.pth``, DeepMind I3D weights) to hf_i3d folders.

Shared pieces live here: the error type, ``--set key=value`` parsing and checking, the weight checks (NaN/Inf)
and the safe save that the converters use. The configs, models and processor register their code for the auto
classes where they are defined, so a plain ``save_pretrained`` already writes it with its ``auto_map``.

How a conversion writes its folder (:func:`save_converted`), so that nothing the user owns is ever lost:

1. the output path is checked first: never the working directory or a folder above it, never the folder of an
   input file or one above it, never a file; with ``overwrite`` an existing folder is replaced only when it looks
   like a model folder (a ``config.json`` and nothing but files a conversion writes);
2. everything is written to ``.NAME.tmp-PID-XXXX`` beside the output (removed on any error);
3. the new folder takes the old one's place in one atomic exchange (``renameat2(RENAME_EXCHANGE)`` on Linux;
   elsewhere the old folder is first renamed to ``.NAME.old-PID-XXXX``), and only then is the old one removed.

A conversion killed at any moment therefore leaves either the old folder or the new one at the output path (or, in
the two-rename fallback, the old one under ``.NAME.old-PID-*``); leftovers of dead processes are swept by the next
conversion to the same output (an orphaned ``.old`` folder is put back when the output is missing).
"""

from __future__ import annotations

import ast
import ctypes
import errno
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from huggingface_hub import HfApi

from ..video_processing_i3d import I3DVideoProcessor


class ConversionError(ValueError):
    """A checkpoint cannot be converted; the message names the file, keys or shapes at fault."""


def format_keys(keys: list[str], limit: int = 12) -> str:
    """``a, b, c, ... (N more)``: the first ``limit`` of a list of keys for an error message."""
    shown = ", ".join(keys[:limit])
    return shown + (f", ... ({len(keys) - limit} more)" if len(keys) > limit else "")


def parse_overrides(items: list[str] | None) -> dict[str, Any]:
    """Parse ``key=value`` strings (``--set``); values are Python literals when they parse as one, else strings."""
    overrides: dict[str, Any] = {}
    for item in items or []:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConversionError(f"--set expects key=value, got {item!r}")
        try:
            value = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            value = raw
        overrides[key.strip()] = value
    return overrides


# keys every transformers config takes besides the fields a config class declares
_COMMON_CONFIG_KEYS = frozenset({"num_labels", "id2label", "label2id", "problem_type"})


def config_keys(config_class: type) -> set[str]:
    """The keyword arguments ``config_class`` knows: its declared fields (and those of its bases), the names of its
    ``attribute_map``, the old names its module's ``RENAMED_FIELDS`` still accepts, and the label keys."""
    keys = set(_COMMON_CONFIG_KEYS)
    for klass in config_class.__mro__:
        keys.update(
            name
            for name, annotation in getattr(klass, "__annotations__", {}).items()
            if not name.startswith("_") and "ClassVar" not in str(annotation)
        )
        module = sys.modules.get(klass.__module__)
        for mapping in (klass.__dict__.get("attribute_map"), getattr(module, "RENAMED_FIELDS", None)):
            if isinstance(mapping, Mapping):
                keys.update(mapping)  # attribute aliases, and old field names that still load
    return keys


_SCALAR_TYPES: dict[str, tuple[type, ...]] = {
    "int": (int,),
    "float": (int, float),
    "bool": (bool,),
    "str": (str,),
    "str | None": (str, type(None)),
}


def _own_fields(config_class: type) -> dict[str, str]:
    """Field name -> annotation (as written) of ``config_class`` and its bases up to transformers' own config."""
    fields: dict[str, str] = {}
    for klass in config_class.__mro__:
        if klass.__module__.startswith("transformers."):
            break
        for name, annotation in getattr(klass, "__annotations__", {}).items():
            if "ClassVar" in str(annotation):
                continue
            fields.setdefault(
                name, annotation if isinstance(annotation, str) else getattr(annotation, "__name__", "")
            )
    return fields


def check_override_keys(overrides: Mapping[str, Any], config_class: type, where: str = "--set") -> None:
    """Refuse keys ``config_class`` does not know (a typo would otherwise be written into ``config.json`` and
    ignored), with the nearest known names, and values of the wrong type for an int/float/bool/str field
    (``base_channels=four``)."""
    import difflib

    known = config_keys(config_class)
    fields = _own_fields(config_class)
    for key, value in overrides.items():
        if key not in known:
            close = difflib.get_close_matches(key, sorted(known), n=3, cutoff=0.6)
            hint = f"did you mean {' or '.join(close)}?" if close else f"its fields: {', '.join(fields)}"
            raise ConversionError(f"{where} {key}: {config_class.__name__} has no field {key!r}; {hint}")
        allowed = _SCALAR_TYPES.get(fields.get(key, ""))
        if allowed and (not isinstance(value, allowed) or (bool not in allowed and isinstance(value, bool))):
            raise ConversionError(
                f"{where} {key}={value!r}: {config_class.__name__}.{key} takes {fields[key]} values, got "
                f"{type(value).__name__}"
            )


def check_finite(tensors: Iterable[tuple[str, Any]], source: str, allow_nonfinite: bool = False) -> None:
    """Refuse weights holding NaN or Inf (a diverged run or a damaged file gives NaN logits for every video):
    :class:`ConversionError` naming the first keys and their counts, unless ``allow_nonfinite``."""
    if allow_nonfinite:
        return
    import torch

    bad = []
    for key, value in tensors:
        tensor = torch.as_tensor(value)
        if not (tensor.is_floating_point() or tensor.is_complex()):
            continue
        nan = int(torch.isnan(tensor).sum())
        inf = int(torch.isinf(tensor).sum())
        if nan or inf:
            counts = " and ".join(f"{n} {what}" for n, what in ((nan, "NaN"), (inf, "Inf")) if n)
            bad.append(f"{key} ({counts})")
    if bad:
        raise ConversionError(
            f"{source}: {len(bad)} tensor(s) hold NaN or Inf values: {format_keys(bad, 6)}; the model would "
            "give NaN scores (pass --allow-nonfinite to convert it anyway)"
        )


# ----------------------------------------------------------------------------------------------------------------
# The safe save
# ----------------------------------------------------------------------------------------------------------------

# what a folder may hold to be replaced by --overwrite: the files a conversion (or save_pretrained) writes
_MODEL_FILE = re.compile(
    r"(?:.+\.(?:json|safetensors|bin|py|md|txt|msgpack|h5)|\.gitattributes|model\.safetensors\.index\.json)"
)


def _within(path: Path, folder: Path) -> bool:
    """``path`` is ``folder`` or lies inside it (both resolved)."""
    return path == folder or folder in path.parents


def check_output_dir(
    output_dir: str | os.PathLike, *, overwrite: bool = False, inputs: Iterable[str | os.PathLike] = ()
) -> Path:
    """Check that a conversion may write ``output_dir``; returns it resolved. :class:`ConversionError` when it is
    the working directory or a folder above it, the folder of an ``inputs`` file or one above it, a file (or under
    one), not writable, or a non-empty folder without ``overwrite``, or with ``overwrite`` a folder that does not
    look like a model folder."""
    given = os.fspath(output_dir)
    target = Path(given).expanduser().resolve()
    cwd = Path.cwd().resolve()
    if _within(cwd, target):
        where = "the working directory" if target == cwd else "a folder above the working directory"
        raise ConversionError(f"--output {given} is {where}; name a new folder for the converted model")
    for item in inputs:
        source = Path(os.fspath(item)).expanduser().resolve()
        if _within(source, target):
            raise ConversionError(
                f"--output {given} holds the input {os.fspath(item)}; name a new folder for the converted model"
            )
    for parent in [target, *target.parents]:
        if parent.exists():
            if not parent.is_dir():
                what = "is a file" if parent == target else f"lies under the file {parent}"
                raise ConversionError(f"--output {given} {what}; name a folder")
            if parent != target and not os.access(parent, os.W_OK | os.X_OK):
                raise ConversionError(f"--output {given}: cannot create it in {parent} (permission denied)")
            break
    if target.is_dir():
        entries = sorted(target.iterdir())
        if entries and not overwrite:
            raise ConversionError(f"{given} already exists and is not empty (pass --overwrite to replace it)")
        if entries:
            strangers = [
                p.name for p in entries if p.is_dir() or p.is_symlink() or not _MODEL_FILE.fullmatch(p.name)
            ]
            if strangers or not (target / "config.json").is_file():
                reason = f"it holds {format_keys(strangers, 5)}" if strangers else "it has no config.json"
                raise ConversionError(
                    f"--overwrite refuses to replace {given}: it does not look like a model folder ({reason}); "
                    "choose another --output or remove the folder yourself"
                )
        if not os.access(target.parent, os.W_OK | os.X_OK):
            raise ConversionError(
                f"--output {given}: cannot replace it in {target.parent} (permission denied)"
            )
    return target


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _sweep(target: Path) -> None:
    """Remove the temporary folders of dead conversions to ``target`` (``.NAME.tmp-PID-*``), and put back an
    orphaned old folder (``.NAME.old-PID-*``) when ``target`` itself is missing (a kill between the two renames of
    the fallback path), else remove it."""
    pattern = re.compile(rf"\.{re.escape(target.name)}\.(tmp|old)-(\d+)-[^/]+")
    if not target.parent.is_dir():
        return
    leftovers = []
    for path in target.parent.iterdir():
        match = pattern.fullmatch(path.name)
        if match and path.is_dir() and not path.is_symlink() and not _pid_alive(int(match.group(2))):
            leftovers.append((match.group(1), path))
    for kind, path in sorted(leftovers, key=lambda item: item[0] != "old"):
        if kind == "old" and not target.exists():
            os.replace(path, target)
        else:
            shutil.rmtree(path, ignore_errors=True)


def _exchange(first: Path, second: Path) -> bool:
    """Swap two paths atomically (Linux ``renameat2(RENAME_EXCHANGE)``); False where that is not available."""
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    if renameat2(at_fdcwd, os.fsencode(first), at_fdcwd, os.fsencode(second), rename_exchange) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
        return False
    raise OSError(code, os.strerror(code), os.fspath(second))


def _apply_umask(folder: Path) -> None:
    """Give the folder and its files the permissions a plain ``mkdir`` / ``open`` would (``mkdtemp`` makes 0700)."""
    mask = os.umask(0)
    os.umask(mask)
    for root, dirs, files in os.walk(folder):
        os.chmod(root, 0o777 & ~mask)
        for name in files:
            os.chmod(os.path.join(root, name), 0o666 & ~mask)
        for name in dirs:
            os.chmod(os.path.join(root, name), 0o777 & ~mask)


def save_converted(
    model: Any,
    output_dir: str | os.PathLike,
    write_extras: Callable[[Path], None] | None = None,
    overwrite: bool = False,
    *,
    inputs: Iterable[str | os.PathLike] = (),
) -> Path:
    """Save ``model`` (+ whatever ``write_extras(tmp_dir)`` adds) to ``output_dir`` without ever losing a file.

    The path is checked with :func:`check_output_dir` (``inputs``: the files the conversion reads, whose folders
    must not be replaced), everything is written to a temporary folder beside it and swapped into place at the end;
    an old folder is removed only once the new one is in place (see the module docstring). Returns ``output_dir``.
    """
    given = Path(output_dir)
    target = check_output_dir(given, overwrite=overwrite, inputs=inputs)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ConversionError(
            f"--output {given}: cannot create {target.parent} ({error.strerror})"
        ) from error
    _sweep(target)
    tmp_dir = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.tmp-{os.getpid()}-"))
    try:
        model.save_pretrained(tmp_dir)
        if write_extras is not None:
            write_extras(tmp_dir)
        _apply_umask(tmp_dir)
        if target.exists():
            if not _exchange(tmp_dir, target):
                aside = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.old-{os.getpid()}-"))
                os.replace(target, aside)  # onto the empty folder just made: atomic on POSIX
                os.replace(tmp_dir, target)
                shutil.rmtree(aside, ignore_errors=True)
            # after the exchange tmp_dir holds the old folder: removed below
        else:
            os.replace(tmp_dir, target)
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)
    return given


def push_folder(folder: str | os.PathLike, repo_id: str, commit_message: str) -> str:
    """Upload a converted folder to the Hub repo ``repo_id`` (created if needed); returns the commit URL."""
    api = HfApi()
    api.create_repo(repo_id, exist_ok=True)
    return str(api.upload_folder(repo_id=repo_id, folder_path=str(folder), commit_message=commit_message))


def save_processor(entry: Any, folder: Path) -> None:
    """Save the video processor of zoo ``entry`` (with its code, for remote loading) into ``folder``."""
    I3DVideoProcessor.from_zoo_entry(entry).save_pretrained(folder)


__all__ = [
    "ConversionError",
    "check_finite",
    "check_output_dir",
    "check_override_keys",
    "config_keys",
    "format_keys",
    "parse_overrides",
    "save_converted",
    "save_processor",
]
