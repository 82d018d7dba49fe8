"""Where models come from: the package cache, verified downloads and zoo-name resolution.

A zoo name (``i3d-r50-kinetics400``, or one of its aliases such as the mmaction2 config name) resolves, in order, to

1. a local folder of that name;
2. the Hub repo ``<namespace>/<name>`` when a namespace for the zoo is configured (``HF_I3D_HUB_NAMESPACE``);
3. the original checkpoint, downloaded from its published URL (or a mirror: ``HF_I3D_MIRROR``), verified against the
   sha256 prefix in its file name (and the full digest where the zoo records one), converted once into the package
   cache (``HF_I3D_CACHE``, default ``~/.cache/hf_i3d``) and loaded from there afterwards.

Nothing is downloaded when the cache already holds the converted model.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from .zoo import ZooEntry, canonical_name, get_entry

CACHE_ENV = "HF_I3D_CACHE"
MIRROR_ENV = "HF_I3D_MIRROR"
HUB_NAMESPACE_ENV = "HF_I3D_HUB_NAMESPACE"
_HASH_IN_NAME = re.compile(r"-([0-9a-f]{8})\.pth$")


class DownloadError(RuntimeError):
    """A checkpoint could not be downloaded."""


class IntegrityError(RuntimeError):
    """A downloaded file does not match its published checksum."""


def cache_dir() -> Path:
    """The package cache (``$HF_I3D_CACHE`` or ``~/.cache/hf_i3d``)."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "hf_i3d")


def mirrored_url(url: str, mirror: str | None = None) -> str:
    """``url`` with its scheme and host replaced by ``mirror`` (argument, else ``$HF_I3D_MIRROR``), if any."""
    mirror = mirror or os.environ.get(MIRROR_ENV)
    if not mirror:
        return url
    return mirror.rstrip("/") + urllib.parse.urlparse(url).path


def sha256_of(path: str | Path, chunk_size: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def verify_file(path: str | Path, sha256: str | None = None, name: str | None = None) -> None:
    """Check ``path`` against a full ``sha256`` and/or the 8-hex-digit sha256 prefix that mmaction2's
    ``tools/publish_model.py`` puts at the end of published file names (``..._20200614-c25ef9a4.pth``)."""
    name = name or Path(path).name
    match = _HASH_IN_NAME.search(name)
    if sha256 is None and match is None:
        return
    actual = sha256_of(path)
    if sha256 is not None and actual != sha256.lower():
        raise IntegrityError(f"{name}: sha256 is {actual}, expected {sha256.lower()}")
    if match is not None and not actual.startswith(match.group(1)):
        raise IntegrityError(
            f"{name}: sha256 starts with {actual[:8]} but the file name says {match.group(1)}; the file is corrupt or not "
            "the published checkpoint"
        )


def download(
    url: str,
    dest_dir: str | Path | None = None,
    *,
    sha256: str | None = None,
    mirror: str | None = None,
    progress: bool = True,
) -> Path:
    """Download ``url`` into ``dest_dir`` (default: ``<cache>/downloads``) with a progress bar and verify it.

    An existing verified file is reused without a request. A file that fails verification is deleted and an
    :class:`IntegrityError` raised; an unreachable host raises :class:`DownloadError` naming the URL.
    """
    dest_dir = Path(dest_dir) if dest_dir is not None else cache_dir() / "downloads"
    name = Path(urllib.parse.urlparse(url).path).name or "download"
    target = dest_dir / name
    if target.exists():
        try:
            verify_file(target, sha256)
            return target
        except IntegrityError:
            target.unlink()
    source = mirrored_url(url, mirror)
    dest_dir.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkstemp(dir=dest_dir, prefix=f".{name}.", suffix=".part")[1])
    try:
        try:
            response = urllib.request.urlopen(source, timeout=60)
        except (urllib.error.URLError, OSError, ValueError) as error:
            reason = getattr(error, "reason", error)
            raise DownloadError(f"Could not download {source}: {reason}") from error
        total = int(response.headers.get("Content-Length") or 0) or None
        from tqdm.auto import tqdm

        with (
            response,
            open(partial, "wb") as handle,
            tqdm(total=total, unit="B", unit_scale=True, desc=name, disable=not progress) as bar,
        ):
            while chunk := response.read(1 << 20):
                handle.write(chunk)
                bar.update(len(chunk))
        try:
            verify_file(partial, sha256, name=name)
        except IntegrityError as error:
            raise IntegrityError(f"{error} (downloaded from {source}); the download was deleted") from None
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    return target


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

    Anything that is not a zoo name (a path, a Hub repo id) is returned unchanged. For zoo names: a local folder of
    that name, then ``<namespace>/<name>`` on the Hub when a namespace is configured, then the converted original
    checkpoint in the cache (converting it on first use).
    """
    text = os.fspath(name_or_path)
    if os.path.isdir(text):
        return text
    canonical = canonical_name(text)
    if canonical is None:
        return text
    entry = get_entry(canonical)
    if os.path.isdir(entry.name):
        return entry.name
    namespace = hub_namespace or os.environ.get(HUB_NAMESPACE_ENV)
    if namespace:
        from huggingface_hub import snapshot_download

        return snapshot_download(f"{namespace}/{entry.name}")
    target = converted_model_dir(entry.name)
    if (target / "config.json").is_file():
        return str(target)
    return str(build_zoo_model(entry, target, mirror=mirror, progress=progress))


def build_zoo_model(
    entry: ZooEntry, output_dir: Path, *, mirror: str | None = None, progress: bool = True
) -> Path:
    """Convert the original weights of ``entry`` into ``output_dir`` (once), with progress messages."""
    import logging

    logging.getLogger(__name__).warning(
        "Building %s from its original weights into %s (once; later loads reuse it)", entry.name, output_dir
    )
    if entry.model_type == "inception_i3d":
        from .convert.deepmind import convert_deepmind

        return Path(convert_deepmind(None, output_dir))
    from .convert.mmaction import convert_mmaction_checkpoint

    if entry.checkpoint_url is None:
        raise DownloadError(f"{entry.name} has no published checkpoint URL")
    try:
        checkpoint = download(entry.checkpoint_url, sha256=entry.sha256, mirror=mirror, progress=progress)
    except DownloadError as error:
        raise DownloadError(
            f"{error}. Download the checkpoint by hand from {entry.checkpoint_url} and convert it with "
            f"`hf-i3d convert mmaction CHECKPOINT --preset {entry.name} --output {output_dir}`"
        ) from error
    return Path(convert_mmaction_checkpoint(str(checkpoint), entry.name, output_dir))


def clear_model(name: str) -> None:
    """Remove the converted copy of zoo model ``name`` from the cache."""
    shutil.rmtree(converted_model_dir(name), ignore_errors=True)


__all__ = [
    "DownloadError",
    "IntegrityError",
    "cache_dir",
    "download",
    "mirrored_url",
    "resolve_model",
    "verify_file",
]
