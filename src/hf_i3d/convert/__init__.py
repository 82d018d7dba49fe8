"""Converters from original checkpoints (mmaction2 ``.pth``, DeepMind I3D weights) to hf_i3d folders.

Shared pieces live here: the error type, ``--set key=value`` parsing, remote-code registration and the atomic save
that both converters use.
"""

from __future__ import annotations

import ast
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from huggingface_hub import HfApi

from ..video_processing_i3d import I3DVideoProcessor


class ConversionError(ValueError):
    """A checkpoint cannot be converted; the message names the file, keys or shapes at fault."""


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


def prepare_for_remote_code(model: Any) -> None:
    """Register the model's classes so ``save_pretrained`` copies their code and writes ``auto_map``.

    ``AutoModel`` is added by hand because only the saved class goes into ``auto_map`` by itself.
    """
    type(model.config).register_for_auto_class()
    type(model).register_for_auto_class("AutoModelForVideoClassification")
    base_class = type(getattr(model, model.base_model_prefix, model))
    module = base_class.__module__.rsplit(".", 1)[-1]
    auto_map = dict(getattr(model.config, "auto_map", None) or {})
    auto_map["AutoModel"] = f"{module}.{base_class.__name__}"
    model.config.auto_map = auto_map


def save_converted(
    model: Any,
    output_dir: str | os.PathLike,
    write_extras: Callable[[Path], None] | None = None,
    overwrite: bool = False,
) -> Path:
    """Save ``model`` (+ whatever ``write_extras(tmp_dir)`` adds) to ``output_dir`` atomically.

    Everything is written to a temporary folder next to ``output_dir`` and renamed into place at the end, so an error
    leaves no half-written output folder behind. A non-empty ``output_dir`` is replaced only with ``overwrite``.
    """
    output_dir = Path(output_dir)
    if output_dir.exists() and any(output_dir.iterdir()) and not overwrite:
        raise ConversionError(
            f"{output_dir} already exists and is not empty (pass --overwrite to replace it)"
        )
    output_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp_dir = Path(tempfile.mkdtemp(dir=output_dir.parent, prefix=f".{output_dir.name}.tmp-"))
    try:
        prepare_for_remote_code(model)
        model.save_pretrained(tmp_dir)
        if write_extras is not None:
            write_extras(tmp_dir)
        if output_dir.exists():
            shutil.rmtree(output_dir)
        os.replace(tmp_dir, output_dir)
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)
    return output_dir


def push_folder(folder: str | os.PathLike, repo_id: str, commit_message: str) -> str:
    """Upload a converted folder to the Hub repo ``repo_id`` (created if needed); returns the commit URL."""
    api = HfApi()
    api.create_repo(repo_id, exist_ok=True)
    return str(api.upload_folder(repo_id=repo_id, folder_path=str(folder), commit_message=commit_message))


def save_processor(entry: Any, folder: Path) -> None:
    """Save the video processor of zoo ``entry`` (with its code, for remote loading) into ``folder``."""
    processor = I3DVideoProcessor.from_zoo_entry(entry)
    I3DVideoProcessor.register_for_auto_class()
    processor.save_pretrained(folder)


__all__ = [
    "ConversionError",
    "parse_overrides",
    "prepare_for_remote_code",
    "save_converted",
    "save_processor",
]
