"""FFmpeg's shared libraries for torchcodec: the system's, or the copy inside PyAV's wheel under standard names.

torchcodec (0.17) ships one build per FFmpeg major version (4-9), each linked against FFmpeg's standard sonames
(``libavutil.so.60``, ``libavcodec.so.62``, ...), and bundles no FFmpeg; a new machine has none installed. PyAV's
manylinux wheel bundles a complete FFmpeg build, which auditwheel renamed (``av.libs/libavutil-5809ad29.so.60...``,
with that name as its soname), so the dynamic linker cannot hand it to torchcodec as it is.

:func:`load_torchcodec` makes torchcodec usable: if the system's FFmpeg satisfies one of torchcodec's builds, it is
used as torchcodec would use it. Otherwise, when PyAV's FFmpeg has the majors of one of torchcodec's builds, copies of
its seven libraries are written once into the package cache (``$HF_I3D_CACHE`` or ``~/.cache/hf_i3d``) with the
hashed names in their ELF dynamic string tables rewritten in place to the standard ones (shorter, NUL-padded; no
other byte changes), loaded by path, and torchcodec then finds them loaded under the sonames it needs. Nothing here
imports a third-party module at module level (the video processor's remote code copies this file).
"""

from __future__ import annotations

import ctypes
import hashlib
import importlib
import importlib.util
import os
import re
import struct
import sys
import tempfile
import threading
from pathlib import Path

# dependency order: each library is loaded after the ones it needs
FFMPEG_LIBRARIES = (
    "libavutil",
    "libswresample",
    "libswscale",
    "libavcodec",
    "libavformat",
    "libavfilter",
    "libavdevice",
)
INSTALL_HINT = (
    "torchcodec needs FFmpeg 4-9 shared libraries: pip install av (hf_i3d lends torchcodec the FFmpeg inside "
    "PyAV's wheel) or install the system's (Debian 12: apt-get install libavcodec59 libavformat59 "
    "libavdevice59 libavfilter8 libswscale6 libswresample4 libavutil57)"
)
_HASHED = re.compile(
    r"^(lib(?:avutil|avcodec|avformat|avdevice|avfilter|swscale|swresample))-[0-9a-f]{8}\.so\.(\d+)"
)
_DT_NEEDED, _DT_STRTAB, _DT_STRSZ = 1, 5, 10
_LOCK = threading.Lock()
_STATE: dict[str, str] = {}
_HANDLES: list[ctypes.CDLL] = []  # kept so the libraries stay loaded


def _dynamic_strings(data: bytes | bytearray) -> tuple[int, int, list[int]]:
    """``(start, end, needed)``: the file range of a 64-bit little-endian ELF's dynamic string table and the
    offsets in it of its ``DT_NEEDED`` names."""
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        raise ValueError("not a 64-bit little-endian ELF file")
    (phoff,) = struct.unpack_from("<Q", data, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", data, 0x36)
    loads, dynamic = [], None
    for i in range(phnum):
        p_type, _, p_offset, p_vaddr, _, p_filesz, _, _ = struct.unpack_from(
            "<IIQQQQQQ", data, phoff + i * phentsize
        )
        if p_type == 1:  # PT_LOAD
            loads.append((p_vaddr, p_offset, p_filesz))
        elif p_type == 2:  # PT_DYNAMIC
            dynamic = (p_offset, p_filesz)
    if dynamic is None:
        raise ValueError("no dynamic section")
    tags: dict[int, int] = {}
    needed = []
    for offset in range(dynamic[0], dynamic[0] + dynamic[1], 16):
        tag, value = struct.unpack_from("<qQ", data, offset)
        if tag == 0:
            break
        if tag == _DT_NEEDED:
            needed.append(value)
        tags.setdefault(tag, value)
    address, size = tags[_DT_STRTAB], tags[_DT_STRSZ]
    for vaddr, offset, filesz in loads:
        if vaddr <= address < vaddr + filesz:
            start = address - vaddr + offset
            return start, start + size, needed
    raise ValueError("dynamic string table outside the loaded segments")


def needed_libraries(path: str | os.PathLike) -> list[str]:
    """The ``DT_NEEDED`` names of a shared library (what ``readelf -d`` lists as NEEDED)."""
    data = Path(path).read_bytes()
    start, _, needed = _dynamic_strings(data)
    return [data[start + offset : data.index(b"\0", start + offset)].decode() for offset in needed]


def torchcodec_ffmpeg_builds() -> dict[int, list[str]]:
    """``{FFmpeg major: the FFmpeg sonames its torchcodec build needs}`` for the installed torchcodec."""
    spec = importlib.util.find_spec("torchcodec")
    if spec is None or not spec.submodule_search_locations:
        return {}
    folder = Path(spec.submodule_search_locations[0])
    builds = {}
    for core in folder.glob("libtorchcodec_core*.so"):
        match = re.fullmatch(r"libtorchcodec_core(\d+)\.so", core.name)
        if match:
            names = [n for n in needed_libraries(core) if n.startswith(("libav", "libsw"))]
            builds[int(match.group(1))] = names
    return dict(sorted(builds.items(), reverse=True))


def _system_has(names: list[str]) -> bool:
    for name in names:
        try:
            ctypes.CDLL(name)
        except OSError:
            return False
    return True


def pyav_ffmpeg() -> dict[str, Path]:
    """``{standard soname: path}`` of the FFmpeg libraries bundled in the installed PyAV wheel (empty if none)."""
    spec = importlib.util.find_spec("av")
    if spec is None or not spec.submodule_search_locations:
        return {}
    libs = Path(spec.submodule_search_locations[0]).parent / "av.libs"
    found = {}
    for path in sorted(libs.glob("lib*.so*")) if libs.is_dir() else []:
        match = _HASHED.match(path.name)
        if match:
            found[f"{match.group(1)}.so.{match.group(2)}"] = path
    return found


def _renamed_copies(libraries: dict[str, Path]) -> Path:
    """A cache folder holding the libraries under their standard names (the hashed names in their dynamic string
    tables rewritten) beside links to the other libraries of PyAV's wheel; written once, atomically."""
    source = next(iter(libraries.values())).parent
    renames = {path.name: standard for standard, path in libraries.items()}
    key = hashlib.sha256("\n".join(sorted(renames)).encode()).hexdigest()[:16]
    root = Path(os.environ.get("HF_I3D_CACHE") or Path.home() / ".cache" / "hf_i3d") / "ffmpeg-for-torchcodec"
    target = root / key
    if all((target / standard).is_file() for standard in libraries):
        return target
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{key}-", dir=root))
    for hashed, standard in renames.items():
        data = bytearray((source / hashed).read_bytes())
        start, end, _ = _dynamic_strings(data)
        table = bytes(data[start:end])
        for old, new in renames.items():
            old_bytes, new_bytes = b"\0" + old.encode() + b"\0", b"\0" + new.encode() + b"\0"
            table = table.replace(old_bytes, new_bytes.ljust(len(old_bytes), b"\0"))
        data[start:end] = table
        (staging / standard).write_bytes(data)
    for other in source.iterdir():
        if other.name not in renames:
            (staging / other.name).symlink_to(other)
    try:
        staging.rename(target)
    except OSError:  # another process got there first (or a stale partial folder): use what is there
        if not all((target / standard).is_file() for standard in libraries):
            raise
        for item in staging.iterdir():
            item.unlink()
        staging.rmdir()
    return target


def provide_ffmpeg() -> str:
    """Make FFmpeg libraries for one of torchcodec's builds loadable; returns where they come from (``"system"``
    or the cache folder of PyAV's). Raises ``ImportError`` (one line, :data:`INSTALL_HINT`) when neither serves."""
    with _LOCK:
        if "source" in _STATE:
            return _STATE["source"]
        builds = torchcodec_ffmpeg_builds()
        if any(_system_has(names) for names in builds.values()):
            _STATE["source"] = "system"
            return "system"
        bundled = pyav_ffmpeg()
        for names in builds.values():
            if names and all(name in bundled for name in names):
                folder = _renamed_copies({name: bundled[name] for name in names})
                by_library = {name.split(".so.")[0]: name for name in names}
                for library in FFMPEG_LIBRARIES:
                    if library in by_library:
                        _HANDLES.append(ctypes.CDLL(str(folder / by_library[library])))
                _STATE["source"] = str(folder)
                return _STATE["source"]
        majors = sorted({name for name in bundled if name.startswith("libavutil")})
        have = f" (PyAV's wheel has {', '.join(majors)}, which no torchcodec build uses)" if majors else ""
        raise ImportError(f"{INSTALL_HINT}{have}")


def load_torchcodec():
    """``torchcodec.decoders.VideoDecoder``, with FFmpeg provided (:func:`provide_ffmpeg`). A torchcodec imported
    earlier without FFmpeg is imported afresh. Raises ``ImportError`` with one line naming what to install."""
    try:
        spec = importlib.util.find_spec("torchcodec")
    except ValueError:  # sys.modules["torchcodec"] is None: imports of it are blocked
        spec = None
    if spec is None:
        raise ImportError(
            "the torchcodec backend needs the 'torchcodec' package: pip install \"hf_i3d[video]\" (or pip install "
            "torchcodec)"
        )
    ops = sys.modules.get("torchcodec._core.ops")
    if ops is not None and getattr(ops, "_FFMPEG_AVAILABLE", False):
        return importlib.import_module("torchcodec.decoders").VideoDecoder
    provide_ffmpeg()
    if ops is not None:  # imported before FFmpeg was there: its ops are placeholders, import it again
        for name in [name for name in sys.modules if name == "torchcodec" or name.startswith("torchcodec.")]:
            del sys.modules[name]
    ops = importlib.import_module("torchcodec._core.ops")
    if not getattr(ops, "_FFMPEG_AVAILABLE", False):
        torch_version = getattr(sys.modules.get("torch"), "__version__", "?")
        raise ImportError(
            f"torchcodec could not load its libraries with the FFmpeg from {_STATE.get('source')} (torch "
            f"{torch_version}: is this torchcodec built for it? see torchcodec's compatibility table); {INSTALL_HINT}"
        )
    return importlib.import_module("torchcodec.decoders").VideoDecoder


__all__ = ["INSTALL_HINT", "load_torchcodec", "needed_libraries", "provide_ffmpeg", "pyav_ffmpeg"]
