"""Verified downloads and the package cache: the bottom layer the converters and the hub share.

Checkpoints are downloaded with a progress bar from their published URL (or a mirror: ``HF_I3D_MIRROR``), checked
against the sha256 prefix that mmaction2 puts in its file names (and a full digest where one is known), and kept
in the package cache (``HF_I3D_CACHE``, default ``~/.cache/hf_i3d``).
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from tqdm.auto import tqdm

CACHE_ENV = "HF_I3D_CACHE"
MIRROR_ENV = "HF_I3D_MIRROR"
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


__all__ = [
    "CACHE_ENV",
    "MIRROR_ENV",
    "DownloadError",
    "IntegrityError",
    "cache_dir",
    "download",
    "mirrored_url",
    "sha256_of",
    "verify_file",
]
