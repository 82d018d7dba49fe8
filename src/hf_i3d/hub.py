"""Where models come from: the package cache, verified downloads and zoo-name resolution.

A zoo name (``i3d-r50-kinetics400``, or one of its aliases such as the mmaction2 config name) resolves, in order, to

1. a local folder of that name;
2. the Hub repo ``<namespace>/<name>`` when a namespace for the zoo is configured (``HF_I3D_HUB_NAMESPACE``);
3. the original checkpoint, downloaded from its published URL (or a mirror: ``HF_I3D_MIRROR``), verified against the
   sha256 prefix in its file name (and the full digest where the zoo records one), converted once into the package
   cache (``HF_I3D_CACHE``, default ``~/.cache/hf_i3d``) and loaded from there afterwards.

Nothing is downloaded when the cache already holds the converted model. Downloading and verifying files is
``hf_i3d.downloads`` (below the converters); this module sits above them.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

from filelock import FileLock
from huggingface_hub import snapshot_download

from .convert.deepmind import convert_deepmind
from .convert.mmaction import convert_mmaction_checkpoint
from .convert.pytorchvideo import convert_pytorchvideo_checkpoint
from .downloads import DownloadError, IntegrityError, cache_dir, download, mirrored_url, verify_file
from .zoo import ZooEntry, canonical_name, get_entry, suggest_names

logger = logging.getLogger(__name__)

HUB_NAMESPACE_ENV = "HF_I3D_HUB_NAMESPACE"


class UnknownModelError(ValueError):
    """A model name that is neither a zoo name, an existing path nor a Hub id, but looks like a mistyped zoo name."""


_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")


def check_model_name(text: str) -> None:
    """Raise :class:`UnknownModelError` for a name that is not a zoo name, not an existing path and not of the
    form ``owner/repo`` but looks like a zoo name (starts with ``i3d`` or is close to one), with the nearest zoo
    names, before any network call (the Hub would be asked, retried and answer with a generic error)."""
    if canonical_name(text) is not None or os.path.exists(text) or _HUB_ID.fullmatch(text):
        return
    suggestions = suggest_names(text)
    if suggestions or text.strip().lower().startswith("i3d"):
        hint = (
            f"did you mean {' or '.join(suggestions)}?" if suggestions else "see `hf-i3d zoo` for the names"
        )
        raise UnknownModelError(
            f"unknown model {text!r}: not a zoo name, a local folder or a Hub id (OWNER/NAME); {hint}"
        )


def converted_model_dir(name: str) -> Path:
    """Cache folder of the converted zoo model ``name``."""
    return cache_dir() / "models" / get_entry(name).name


def resolve_model(
    name_or_path: str | os.PathLike,
    *,
    mirror: str | None = None,
    hub_namespace: str | None = None,
    progress: bool = True,
) -> str:
    """Return what ``from_pretrained`` should load for ``name_or_path``: a local folder for zoo names.

    Anything that is not a zoo name (a path, a Hub repo id) is returned unchanged, except a name that looks like a
    mistyped zoo name (:class:`UnknownModelError` with the nearest names). For zoo names: a local folder of
    that name, then ``<namespace>/<name>`` on the Hub when a namespace is configured, then the converted original
    checkpoint in the cache (converting it on first use).
    """
    text = os.fspath(name_or_path)
    if os.path.isdir(text):
        return text
    canonical = canonical_name(text)
    if canonical is None:
        check_model_name(text)
        return text
    entry = get_entry(canonical)
    if os.path.isdir(entry.name):
        return entry.name
    namespace = hub_namespace or os.environ.get(HUB_NAMESPACE_ENV)
    if namespace:
        return snapshot_download(f"{namespace}/{entry.name}")
    target = converted_model_dir(entry.name)
    if (target / "config.json").is_file():
        return str(target)
    # several processes (accelerate launch, parallel jobs) may ask at once: one converts, the others wait for it
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target.parent / f".{target.name}.lock")):
        if (target / "config.json").is_file():
            return str(target)
        return str(build_zoo_model(entry, target, mirror=mirror, progress=progress))


def build_zoo_model(
    entry: ZooEntry, output_dir: Path, *, mirror: str | None = None, progress: bool = True
) -> Path:
    """Convert the original weights of ``entry`` into ``output_dir`` (once), with progress messages."""
    logger.warning(
        "Building %s from its original weights into %s (once; later loads reuse it)", entry.name, output_dir
    )
    if entry.model_type == "inception_i3d":
        return Path(convert_deepmind(None, output_dir))
    if entry.checkpoint_url is None:
        raise DownloadError(f"{entry.name} has no published checkpoint URL")
    try:
        checkpoint = download(entry.checkpoint_url, sha256=entry.sha256, mirror=mirror, progress=progress)
    except DownloadError as error:
        raise DownloadError(
            f"{error}. Download the checkpoint by hand from {entry.checkpoint_url} and convert it with "
            f"`hf-i3d convert {entry.checkpoint_format} CHECKPOINT --preset {entry.name} --output {output_dir}`"
        ) from error
    if entry.checkpoint_format == "pytorchvideo":
        return Path(convert_pytorchvideo_checkpoint(str(checkpoint), output_dir, entry.name))
    return Path(convert_mmaction_checkpoint(str(checkpoint), entry.name, output_dir))


def resolve_pretrained_name(name_or_path):
    """What ``from_pretrained`` should load for ``name_or_path``: zoo names become model folders.

    Anything that is not a string or path, an existing folder, or not a zoo name passes through unchanged. This is the
    ``name_resolver`` that ``hf_i3d/__init__.py`` installs on the config, model and processor classes, so that
    ``I3DForVideoClassification.from_pretrained("i3d-r50-kinetics400")`` works; code saved into a model folder has
    no resolver and loads paths and Hub ids only.
    """
    if not isinstance(name_or_path, (str, os.PathLike)):
        return name_or_path
    text = os.fspath(name_or_path)
    if os.path.isdir(text):
        return name_or_path
    if canonical_name(text) is None:
        check_model_name(text)  # a mistyped zoo name fails here, before the Hub is asked
        return name_or_path
    return resolve_model(text)


__all__ = [
    "DownloadError",
    "IntegrityError",
    "UnknownModelError",
    "check_model_name",
    "cache_dir",
    "download",
    "mirrored_url",
    "resolve_model",
    "resolve_pretrained_name",
    "verify_file",
]
