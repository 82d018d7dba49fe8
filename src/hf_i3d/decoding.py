"""Read only the frames a clip needs, from a video file or from a folder of extracted JPEG frames.

One decode path per source kind, each returning uint8 RGB ``(len(indices), H, W, 3)`` in the order of ``indices``
(repeated indices are decoded once and copied):

* videos: :func:`read_video` with decord (``VideoReader.get_batch`` on the sorted unique indices, as mmaction2 1.x
  ``DecordDecode``; frame-accurate seeking) or PyAV (frames numbered as decord numbers them, by timestamp; seeks to
  the keyframe before the first wanted frame, lets the decoder drop unwanted B-frames and converts only the wanted
  frames; the same pixels as decord on H.264, faster on one core; falls back to mmaction2 ``PyAVDecode``'s
  sequential decoding when the packets carry no usable index) or torchcodec (``VideoDecoder`` in exact seek mode,
  frames numbered by timestamp as well: the same frames; FFmpeg from the system or PyAV's wheel, ``_ffmpeg``). The
  backends are ``VIDEO_BACKENDS`` (one list for the package, defined in ``frame_ops`` with ``DEFAULT_VIDEO_BACKEND``,
  PyAV, chosen by measurement in ``benchmarks/RESULTS.md``); :func:`check_video_backend` refuses an unknown or
  uninstalled one in one line; :func:`count_video_frames`;
  :func:`read_video_sampled` (count, sample and decode in one open, for data loaders); :class:`SequentialVideoReader`
  (every frame once, in order, with its time: streaming over a whole video).
* frame folders: :func:`read_frames` (``RawFrameDecode``: ``join(frame_dir, filename_tmpl.format(index))``) with
  simplejpeg (libjpeg-turbo, the default), cv2 (mmaction2's default ``mmcv.imfrombytes``), PIL, or 'turbojpeg'
  (an alias of simplejpeg: both call libjpeg-turbo's TurboJPEG API with its default accurate DCT and fancy
  upsampling, which is what mmcv's PyTurboJPEG backend of the 'fast' config did); :func:`count_frames`.

Everything is opened per call (no global readers), so the functions are safe in DataLoader workers. Failures raise
:class:`VideoDecodeError` / :class:`FrameDecodeError` (both ``ValueError``) with the file, and the frame, named.

decord cannot read every valid video (small H.264 frames such as 16x16 or 48x48, GIFs, file names that are not
UTF-8) and, where the resolution changes mid-stream, returns damaged frames without a word. So the decord backend
falls back to PyAV for a file decord cannot open or decode (said once per process on stderr), and first checks with
PyAV that the frame size does not change at a keyframe (decoding the keyframes only, once per file and process); a
video whose size changes is an error with either backend.
"""

from __future__ import annotations

import importlib
import io
import os
import re
import string
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from ._validation import check_choice
from .frame_ops import (
    DEFAULT_VIDEO_BACKEND,
    VIDEO_BACKEND_PACKAGES,
    VIDEO_BACKENDS,
    check_video_backend,
    install_hint,
)
from .frame_ops import optional_import as _optional

# VIDEO_BACKENDS (the one list of video decoders) and DEFAULT_VIDEO_BACKEND (PyAV) live in frame_ops, which the saved
# video processor carries too; everything else takes them from here
JPEG_BACKENDS = ("simplejpeg", "turbojpeg", "cv2", "pil")
DEFAULT_FILENAME_TMPL = "img_{:05}.jpg"


class DecodeError(ValueError):
    """A file could not be read as asked; ``path`` names it and ``frame`` the frame index, where one is involved."""

    def __init__(self, path: str | os.PathLike, message: str, frame: int | None = None) -> None:
        self.path = str(path)
        self.frame = frame
        super().__init__(f"{self.path}: {message}")


class VideoDecodeError(DecodeError):
    """A video is missing, not a video, has no decodable frames, or lacks a requested frame."""


class FrameDecodeError(DecodeError):
    """A frame folder is missing, lacks a requested frame, or holds a corrupt JPEG."""


def _unique_indices(
    indices: Sequence[int] | np.ndarray, source: str | os.PathLike
) -> tuple[np.ndarray, np.ndarray]:
    """Sorted unique indices and, for each requested position, its place among them."""
    array = np.asarray(indices)
    if array.ndim != 1 or array.size == 0 or not np.issubdtype(array.dtype, np.integer):
        raise ValueError(
            f"{source}: indices must be a non-empty 1-D sequence of ints, got {array.dtype} {array.shape}"
        )
    if array.min() < 0:
        raise ValueError(f"{source}: frame indices must be >= 0, got {int(array.min())}")
    unique, inverse = np.unique(array, return_inverse=True)
    return unique, inverse.reshape(-1)


def _expand(frames: np.ndarray, unique: np.ndarray, inverse: np.ndarray) -> np.ndarray:
    """``frames[i]`` belongs to ``unique[i]``: lay them out in the requested order (no copy when already so)."""
    if len(unique) == len(inverse) and np.array_equal(inverse, np.arange(len(inverse))):
        return frames
    return frames[inverse]


# ---------------------------------------------------------------------------------------------------------------
# Videos
# ---------------------------------------------------------------------------------------------------------------
def video_path_problem(path: str | os.PathLike) -> str | None:
    """Why ``path`` cannot be opened as a video file (``"no such file"``, ``"not a file"``), or None: the readers' own
    first check, for commands that check every path before the slow model load (``hf-i3d predict``)."""
    path = os.fspath(path)
    if os.path.isfile(path):
        return None
    return "no such file" if not os.path.exists(path) else "not a file"


def _check_video_args(path: str | os.PathLike, backend: str) -> str:
    check_choice("video backend", backend, VIDEO_BACKENDS)
    path = os.fspath(path)
    problem = video_path_problem(path)
    if problem is not None:
        raise VideoDecodeError(path, problem)
    return path


def _first_line(exc: BaseException) -> str:
    """The first line of an error, without FFmpeg's ``[Errno N]`` prefix and trailing ``: 'filename'`` and without
    the time and source location decord puts first."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    if not lines:
        return type(exc).__name__
    line = re.sub(r"^\[\d\d:\d\d:\d\d\] \S+:\d+: ", "", lines[0])  # decord's "[hh:mm:ss] file.cc:N: "
    return re.sub(r": '[^']*'$", "", re.sub(r"^\[Errno -?\d+\] ", "", line))


class _DecordCannot(Exception):
    """decord cannot read a file that PyAV can (or decord is missing): the caller decodes it with PyAV instead."""


_FALLBACK_SAID: list[str] = []


def _say_fallback(path: str, reason: str) -> None:
    """Tell once per process, on stderr, that decord could not read a file and PyAV decodes it instead."""
    if not _FALLBACK_SAID:
        _FALLBACK_SAID.append(path)
        print(
            f"hf_i3d: decord cannot read {_printable(path)} ({reason}); decoding it with PyAV instead (said once; "
            "later files that decord cannot read are decoded with PyAV too)",
            file=sys.stderr,
        )


def _printable(path: str) -> str:
    """``path`` as text that can be printed: bytes that are not UTF-8 (kept as surrogates) shown as ``\\xNN``."""
    return path.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _probe_failure(path: str, exc: BaseException) -> VideoDecodeError | None:
    """Why decord could not open ``path``: PyAV (when installed) tells a non-video, a file without a video stream
    and a video without decodable frames apart; ``None`` when PyAV can decode it (the caller falls back to PyAV).
    Without PyAV decord's own first error line is reported."""
    try:
        av = importlib.import_module("av")
    except ImportError:
        return VideoDecodeError(path, f"cannot be opened as a video by decord ({_first_line(exc)})")
    try:
        with av.open(path) as container:
            if not container.streams.video:
                return VideoDecodeError(path, "has no video stream")
            for _ in container.decode(container.streams.video[0]):
                break
            else:
                return VideoDecodeError(path, "has no decodable video frames")
    except av.error.FFmpegError as probe_exc:
        return VideoDecodeError(path, f"is not a readable video ({_first_line(probe_exc)})")
    return None


def _pyav_available() -> bool:
    try:
        importlib.import_module("av")
    except ImportError:
        return False
    return True


def _open_decord(path: str, num_threads: int):
    """A decord ``VideoReader``; raises :class:`_DecordCannot` when PyAV should read the file instead (decord
    missing, a name that is not UTF-8, a file decord cannot open but PyAV can) and :class:`VideoDecodeError` for a
    file nothing can read."""
    try:
        decord = importlib.import_module("decord")
    except ImportError as exc:
        if _pyav_available():
            raise _DecordCannot("the decord package is not installed") from exc
        raise ImportError(
            f"read_video(backend='decord') needs the 'decord' package: {install_hint('decord')}"
        ) from exc
    try:
        path.encode("utf-8")
    except UnicodeEncodeError as exc:
        if _pyav_available():
            raise _DecordCannot("its name is not valid UTF-8") from exc
        raise VideoDecodeError(path, "decord cannot open a file whose name is not valid UTF-8") from exc
    try:
        reader = decord.VideoReader(path, num_threads=num_threads)
    except Exception as exc:  # decord raises RuntimeError / DECORDError with multi-line C++ logs
        failure = _probe_failure(path, exc)
        if failure is not None:
            raise failure from exc
        raise _DecordCannot(f"it fails to open it: {_first_line(exc)}") from exc
    _check_constant_resolution(path)
    return reader


_RESOLUTION_CHECKED: dict[tuple[str, int, int], tuple[tuple[int, int], ...]] = {}


def _resolution_change_error(
    path: str, first: tuple[int, int], later: tuple[int, int], frame: int | None = None
) -> VideoDecodeError:
    where = f"frame {frame} is {later[0]}x{later[1]}" if frame is not None else f"then {later[0]}x{later[1]}"
    return VideoDecodeError(
        path,
        f"the frame size changes mid-video ({first[0]}x{first[1]}, {where}); re-encode it at one size "
        f"(e.g. ffmpeg -i IN -vf scale={first[0]}:{first[1]} OUT)",
        frame,
    )


def _check_constant_resolution(path: str) -> None:
    """Raise :class:`VideoDecodeError` when the frame size changes at a keyframe (decord would return damaged
    frames). Decodes the keyframes only, with PyAV, once per file (path, size, mtime) and process; skipped without
    PyAV."""
    try:
        av = importlib.import_module("av")
        stat = os.stat(path)
    except (ImportError, OSError):
        return
    key = (path, stat.st_size, stat.st_mtime_ns)
    sizes = _RESOLUTION_CHECKED.get(key)
    if sizes is None:
        found: list[tuple[int, int]] = []
        try:
            with av.open(path) as container:
                stream = container.streams.video[0]
                stream.codec_context.skip_frame = "NONKEY"
                for packet in container.demux(stream):
                    if packet.size and not packet.is_keyframe:
                        continue
                    for frame in packet.decode():
                        if (frame.width, frame.height) not in found:
                            found.append((frame.width, frame.height))
        except (av.error.FFmpegError, IndexError):
            return  # not readable by PyAV: decord's own result stands
        sizes = _RESOLUTION_CHECKED[key] = tuple(found)
    if len(sizes) > 1:
        raise _resolution_change_error(path, sizes[0], sizes[1])


def _open_pyav(path: str):
    av = _optional("av", "av", "read_video(backend='pyav')")

    try:
        container = av.open(path)
    except av.error.FFmpegError as exc:
        raise VideoDecodeError(path, f"is not a readable video ({_first_line(exc)})") from exc
    if not container.streams.video:
        container.close()
        raise VideoDecodeError(path, "has no video stream")
    return container


def count_video_frames(path: str | os.PathLike, backend: str = DEFAULT_VIDEO_BACKEND) -> int:
    """Number of frames of the video (decord: ``len(VideoReader)``; PyAV: the video packets counted without
    decoding, as decord's index does, or the frames decoded when packets carry no timestamps). Raises
    :class:`VideoDecodeError` if it has none."""
    path = _check_video_args(path, backend)
    if backend == "torchcodec":
        return _TorchcodecVideo(path, num_threads=1).frame_count()
    if backend == "decord":
        try:
            total = len(_open_decord(path, num_threads=1))
        except _DecordCannot as exc:
            _say_fallback(path, str(exc))
            backend = "pyav"
    if backend == "pyav":
        with _PyAVVideo(path, num_threads=1) as video:
            total = video.frame_count()
    if total <= 0:
        raise VideoDecodeError(path, "has no decodable video frames")
    return int(total)


def read_video(
    path: str | os.PathLike,
    indices: Sequence[int] | np.ndarray,
    backend: str = DEFAULT_VIDEO_BACKEND,
    num_threads: int = 1,
) -> np.ndarray:
    """Frames ``indices`` (0-based) of a video as uint8 RGB ``(len(indices), H, W, 3)``, in the order asked.

    ``num_threads`` is the decoder's thread count (1 as mmaction2's ``DecordInit``; 0 lets the library choose).
    An index past the last frame raises :class:`VideoDecodeError` (sample with ``ClipSampler``, which wraps).
    """
    path = _check_video_args(path, backend)
    unique, inverse = _unique_indices(indices, path)
    if backend == "torchcodec":
        return _expand(_TorchcodecVideo(path, num_threads).read(unique), unique, inverse)
    if backend == "decord":
        try:
            frames = _read_decord(_open_decord(path, num_threads), path, unique)
        except _DecordCannot as exc:
            _say_fallback(path, str(exc))
            backend = "pyav"
    if backend == "pyav":
        with _PyAVVideo(path, num_threads) as video:
            frames = video.read(unique)
    return _expand(frames, unique, inverse)


def read_video_sampled(
    path: str | os.PathLike,
    sample: Callable[[int], Sequence[int] | np.ndarray],
    backend: str = DEFAULT_VIDEO_BACKEND,
    num_threads: int = 1,
    total_frames: int | None = None,
    expand: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Open a video once, count its frames, decode the frames ``sample(count)`` picks: ``(frames, indices)``.

    What a data loader needs per item (mmaction2 ``DecordInit`` -> ``SampleFrames`` -> ``DecordDecode``) without
    opening the file twice. A known ``total_frames`` (e.g. from an annotation list) skips the count.
    ``expand=False`` returns each picked frame once, in index order (``frames[i]`` is frame
    ``np.unique(indices)[i]``), for a caller that transforms each frame once before laying clips out.
    """
    path = _check_video_args(path, backend)
    if backend == "torchcodec":
        video = _TorchcodecVideo(path, num_threads)
        indices = np.asarray(sample(video.frame_count() if total_frames is None else total_frames))
        unique, inverse = _unique_indices(indices, path)
        frames = video.read(unique)
        return (_expand(frames, unique, inverse) if expand else frames), indices
    if backend == "decord":
        try:
            reader = _open_decord(path, num_threads)
            total = len(reader) if total_frames is None else total_frames
            if total == 0:
                raise VideoDecodeError(path, "has no decodable video frames")
            indices = np.asarray(sample(total))
            unique, inverse = _unique_indices(indices, path)
            frames = _read_decord(reader, path, unique)
        except _DecordCannot as exc:
            _say_fallback(path, str(exc))
            backend = "pyav"
    if backend == "pyav":
        with _PyAVVideo(path, num_threads) as video:
            total = video.frame_count() if total_frames is None else total_frames
            if total == 0:
                raise VideoDecodeError(path, "has no decodable video frames")
            indices = np.asarray(sample(total))
            unique, inverse = _unique_indices(indices, path)
            frames = video.read(unique)
    return (_expand(frames, unique, inverse) if expand else frames), indices


def _read_decord(reader, path: str, unique: np.ndarray) -> np.ndarray:
    total = len(reader)
    if total == 0:
        raise VideoDecodeError(path, "has no decodable video frames")
    if unique[-1] >= total:
        raise VideoDecodeError(
            path, f"frame {int(unique[-1])} requested, the video has {total} frames", int(unique[-1])
        )
    try:
        return reader.get_batch(unique.tolist()).asnumpy()
    except Exception as exc:
        if _pyav_available():  # e.g. H.264 of 16x16 or 48x48 pixels: decord's frame copy fails, PyAV's works
            raise _DecordCannot(
                f"decoding frames {int(unique[0])}..{int(unique[-1])} fails: {_first_line(exc)}"
            ) from exc
        raise VideoDecodeError(
            path, f"decoding frames {int(unique[0])}..{int(unique[-1])} failed ({_first_line(exc)})"
        ) from exc


class _TorchcodecVideo:
    """One open video read with torchcodec's ``VideoDecoder`` (exact seek mode: the file's packets are scanned once
    and numbered by timestamp, as decord and :class:`_PyAVVideo` number them; ``get_frames_at`` seeks to the
    keyframe before each wanted frame). FFmpeg comes from the system or PyAV's wheel (:mod:`hf_i3d._ffmpeg`)."""

    def __init__(self, path: str, num_threads: int) -> None:
        from ._ffmpeg import load_torchcodec

        decoder_class = load_torchcodec()
        self.path = path
        try:
            self.decoder = decoder_class(
                path, dimension_order="NHWC", num_ffmpeg_threads=num_threads, seek_mode="exact"
            )
        except (RuntimeError, ValueError) as exc:
            raise self._failure(exc) from exc

    def _failure(self, exc: BaseException) -> VideoDecodeError:
        """Why torchcodec could not open the file, told apart by PyAV when it is installed (not a video, no video
        stream, no decodable frame), else torchcodec's own first error line."""
        try:
            with _PyAVVideo(self.path, num_threads=1) as video:
                if video.frame_count() <= 0:
                    return VideoDecodeError(self.path, "has no decodable video frames")
        except VideoDecodeError as probed:
            return probed
        except ImportError:
            pass
        return VideoDecodeError(self.path, f"cannot be opened as a video by torchcodec ({_first_line(exc)})")

    def frame_count(self) -> int:
        total = self.decoder.metadata.num_frames or 0
        if total <= 0:
            raise VideoDecodeError(self.path, "has no decodable video frames")
        return int(total)

    def read_range(self, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        """Frames ``start..stop-1`` and their presentation times in seconds (decoded forward, no seek back)."""
        try:
            batch = self.decoder.get_frames_in_range(start, stop)
        except (RuntimeError, IndexError, ValueError) as exc:
            raise VideoDecodeError(
                self.path, f"decoding frames {start}..{stop - 1} failed ({_first_line(exc)})", start
            ) from exc
        return batch.data.numpy(), batch.pts_seconds.numpy().astype(np.float64)

    def read(self, unique: np.ndarray) -> np.ndarray:
        total = self.frame_count()
        if unique[-1] >= total:
            raise VideoDecodeError(
                self.path, f"frame {int(unique[-1])} requested, the video has {total} frames", int(unique[-1])
            )
        try:
            return self.decoder.get_frames_at(unique.tolist()).data.numpy()
        except (RuntimeError, IndexError, ValueError) as exc:
            raise VideoDecodeError(
                self.path, f"decoding frames {int(unique[0])}..{int(unique[-1])} failed ({_first_line(exc)})"
            ) from exc


_THREAD_STATE = threading.local()


def _rgb_reformatter(av):
    """A PyAV ``VideoReformatter`` kept per thread and process: its scaler context is set up once, not once per
    clip (setting it up costs more than converting a clip's frames). Output is that of
    ``frame.to_ndarray('rgb24')``."""
    # by process: one inherited through fork is never used nor freed (its scaler threads did not come along)
    reformatters = _THREAD_STATE.__dict__.setdefault("reformatters", {})
    reformatter = reformatters.get(os.getpid())
    if reformatter is None:
        reformatter = reformatters[os.getpid()] = av.video.reformatter.VideoReformatter()
    return reformatter


class _PyAVVideo:
    """One open video read with PyAV: frames are numbered as decord numbers them (packets sorted by timestamp).

    ``read`` seeks to the last keyframe at or before the first wanted frame and decodes forward, converting only
    the wanted frames to RGB (decord ``get_batch`` does the same seek, mmaction2 ``PyAVDecode`` decodes from the
    start). Every decoded frame is identified by its timestamp; when the packet index cannot be trusted (packets
    without timestamps, a seek that lands past the first wanted frame, a packet that yields no frame) it decodes
    sequentially from the first frame instead, counting frames, so the result is exact either way.
    """

    def __init__(self, path: str, num_threads: int) -> None:
        self.av = _optional("av", "av", "read_video(backend='pyav')")
        self.path = path
        self.num_threads = num_threads
        self.container = _open_pyav(path)
        self.stream = self._configure(self.container)
        self._index: tuple[np.ndarray, np.ndarray] | None | bool = False  # False: not built yet

    def _configure(self, container):
        stream = container.streams.video[0]
        stream.codec_context.thread_count = self.num_threads
        if self.num_threads != 1:
            stream.thread_type = "AUTO"
        return stream

    def __enter__(self) -> _PyAVVideo:
        return self

    def __exit__(self, *exc_info) -> None:
        self.container.close()

    def index(self) -> tuple[np.ndarray, np.ndarray] | None:
        """``(pts, is_keyframe)`` of the video packets in presentation order, or ``None`` if unusable."""
        if self._index is False:
            pts, keys = [], []
            try:
                for packet in self.container.demux(self.stream):
                    if packet.size == 0:  # the demuxer's end-of-stream marker
                        continue
                    if packet.pts is None:
                        pts = None
                        break
                    pts.append(packet.pts)
                    keys.append(packet.is_keyframe)
            except self.av.error.FFmpegError as exc:
                raise VideoDecodeError(self.path, f"is not a readable video ({_first_line(exc)})") from exc
            self._index = None
            if pts:
                order = np.argsort(np.asarray(pts, dtype=np.int64), kind="stable")
                sorted_pts = np.asarray(pts, dtype=np.int64)[order]
                if np.all(np.diff(sorted_pts) > 0):
                    self._index = (sorted_pts, np.asarray(keys, dtype=bool)[order])
        return self._index

    def frame_count(self) -> int:
        index = self.index()
        if index is not None:
            return len(index[0])
        total = self.stream.frames
        if total <= 0:
            with _open_pyav(self.path) as container:
                try:
                    total = sum(1 for _ in container.decode(container.streams.video[0]))
                except self.av.error.FFmpegError as exc:
                    raise VideoDecodeError(self.path, f"decoding failed ({_first_line(exc)})") from exc
        return int(total)

    def read(self, unique: np.ndarray) -> np.ndarray:
        index = self.index()
        if index is not None:
            if unique[-1] >= len(index[0]):
                raise VideoDecodeError(
                    self.path,
                    f"frame {int(unique[-1])} requested, the video has {len(index[0])} frames",
                    int(unique[-1]),
                )
            frames = self._read_after_seek(unique, *index)
            if frames is not None:
                return frames
        return self._read_sequential(unique)

    def _read_after_seek(self, unique: np.ndarray, pts: np.ndarray, keys: np.ndarray) -> np.ndarray | None:
        """The wanted frames, decoded from the keyframe before the first one; ``None`` if the index misleads.

        Packets of frames nobody asked for are decoded with ``skip_frame='NONREF'``: the decoder drops them if no
        other frame refers to them (B-frames), which changes no other frame (about a third less decoding at
        ``frame_interval=2``).
        """
        keyframes = np.flatnonzero(keys[: int(unique[0]) + 1])
        if len(keyframes) == 0:
            return None
        start = int(keyframes[-1])
        wanted = {int(i): k for k, i in enumerate(unique)}
        last = int(unique[-1])
        frames: np.ndarray | None = None
        filled = 0  # wanted frames decoded so far; the decoder returns frames in presentation order
        position = start
        context = self.stream.codec_context
        to_rgb = _rgb_reformatter(self.av)

        position_of = dict(zip(pts.tolist(), range(len(pts)))).get  # timestamp -> frame number
        skipping = None

        try:
            self.container.seek(int(pts[start]), stream=self.stream, backward=True, any_frame=False)
            for packet in self.container.demux(self.stream):
                if packet.size and skipping != (position_of(packet.pts) not in wanted):
                    skipping = not skipping
                    context.skip_frame = "NONREF" if skipping else "DEFAULT"
                for frame in packet.decode():
                    position = position_of(frame.pts)
                    if position is None:
                        return None  # a frame the packet index does not know
                    if position < start:
                        continue  # leading frames of an open GOP, before the keyframe in display order
                    if filled < len(unique) and unique[filled] < position:
                        return None  # a wanted frame never came (the seek overshot): numbering is not certain
                    slot = wanted.get(position)
                    if slot is not None:
                        image = to_rgb.reformat(frame, format="rgb24", threads=1).to_ndarray()
                        if frames is None:
                            frames = np.empty((len(unique), *image.shape), dtype=np.uint8)
                        elif image.shape != frames.shape[1:]:
                            raise _size_change(self.path, frames, image, position)
                        frames[slot] = image
                        filled += 1
                    if position >= last:
                        return frames
        except self.av.error.FFmpegError as exc:
            raise VideoDecodeError(
                self.path, f"decoding frame {position} failed ({_first_line(exc)})", position
            ) from exc
        raise VideoDecodeError(
            self.path, f"frame {last} requested, frame {position} was the last that could be decoded", last
        )

    def _read_sequential(self, unique: np.ndarray) -> np.ndarray:
        """mmaction2 ``PyAVDecode``: decode from the first frame, the n-th decoded frame is frame n."""
        av = self.av
        wanted = {int(i): k for k, i in enumerate(unique)}
        last = int(unique[-1])
        frames: np.ndarray | None = None
        decoded = 0
        with _open_pyav(self.path) as container:
            stream = self._configure(container)
            try:
                for index, frame in enumerate(container.decode(stream)):
                    decoded = index + 1
                    slot = wanted.get(index)
                    if slot is not None:
                        image = frame.to_ndarray(format="rgb24")
                        if frames is None:
                            frames = np.empty((len(unique), *image.shape), dtype=np.uint8)
                        elif image.shape != frames.shape[1:]:
                            raise _size_change(self.path, frames, image, index)
                        frames[slot] = image
                    if index >= last:
                        break
            except av.error.FFmpegError as exc:
                raise VideoDecodeError(
                    self.path, f"decoding frame {decoded} failed ({_first_line(exc)})", decoded
                ) from exc
        if decoded == 0:
            raise VideoDecodeError(self.path, "has no decodable video frames")
        if decoded <= last:
            raise VideoDecodeError(
                self.path, f"frame {last} requested, only {decoded} frames could be decoded", last
            )
        return frames


def _size_change(path: str, frames: np.ndarray, image: np.ndarray, position: int) -> VideoDecodeError:
    """The error for a decoded frame whose size differs from the frames before it."""
    height, width = frames.shape[1:3]
    return _resolution_change_error(path, (width, height), (image.shape[1], image.shape[0]), position)


# ---------------------------------------------------------------------------------------------------------------
# Every frame, in order (streaming)
# ---------------------------------------------------------------------------------------------------------------
class SequentialVideoReader:
    """Every frame of a video once, in presentation order, without holding more than a few frames in memory.

    For consumers that walk a whole video (window features): ``for index, time, frame in reader`` yields the frame
    number (0-based, as :func:`read_video` numbers frames), its presentation time in seconds from the first frame,
    and the uint8 RGB ``(H, W, 3)`` frame. PyAV (default) decodes the stream from the start, as mmaction2
    ``PyAVDecode`` does (the n-th decoded frame is frame n); decord reads consecutive runs of ``chunk`` frames with
    ``get_batch``, torchcodec with ``get_frames_in_range`` (the same frames and times as PyAV). ``fps`` is the stream's average frame rate (``None`` when the container does not say);
    ``num_frames`` its frame count as the container reports it (``None`` when unknown; only a hint for progress).
    Use as a context manager, or call :meth:`close`.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        backend: str = DEFAULT_VIDEO_BACKEND,
        num_threads: int = 1,
        chunk: int = 16,
    ) -> None:
        self.path = _check_video_args(path, backend)
        self.backend = backend
        self.chunk = max(1, int(chunk))
        self._container = None
        self._reader = None
        if backend == "decord":
            try:
                self._reader = _open_decord(self.path, num_threads)
            except _DecordCannot as exc:
                _say_fallback(self.path, str(exc))
                self.backend = backend = "pyav"
        if backend == "torchcodec":
            self._reader = _TorchcodecVideo(self.path, num_threads)
            metadata = self._reader.decoder.metadata
            self.fps = float(metadata.average_fps) if metadata.average_fps else None
            self.num_frames = int(metadata.num_frames) if metadata.num_frames else None
        elif backend == "pyav":
            self._av = _optional("av", "av", "SequentialVideoReader(backend='pyav')")
            self._container = _open_pyav(self.path)
            stream = self._container.streams.video[0]
            stream.codec_context.thread_count = num_threads
            if num_threads != 1:
                stream.thread_type = "AUTO"
            rate = stream.average_rate or stream.guessed_rate
            self.fps = float(rate) if rate else None
            self.num_frames = int(stream.frames) if stream.frames > 0 else None
        else:
            fps = float(self._reader.get_avg_fps())
            self.fps = fps if fps > 0 else None
            self.num_frames = len(self._reader) or None

    def __enter__(self) -> SequentialVideoReader:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def close(self) -> None:
        if self._container is not None:
            self._container.close()
            self._container = None
        self._reader = None

    def __iter__(self):
        return {"pyav": self._iter_pyav, "decord": self._iter_decord, "torchcodec": self._iter_torchcodec}[
            self.backend
        ]()

    def _iter_torchcodec(self):
        video = self._reader
        total = video.frame_count()
        first_time = None
        for start in range(0, total, self.chunk):
            frames, times = video.read_range(start, min(start + self.chunk, total))
            if first_time is None:
                first_time = float(times[0])
            for offset, frame in enumerate(frames):
                yield start + offset, float(times[offset] - first_time), frame

    def _iter_pyav(self):
        av = self._av
        stream = self._container.streams.video[0]
        to_rgb = _rgb_reformatter(av)
        index, first_time = 0, None
        try:
            for frame in self._container.decode(stream):
                if index == 0 and frame.time is not None:
                    first_time = frame.time
                if first_time is not None and frame.time is not None:
                    time = frame.time - first_time
                else:  # no timestamps: the frame rate's clock
                    time = index / self.fps if self.fps else float("nan")
                yield index, float(time), to_rgb.reformat(frame, format="rgb24", threads=1).to_ndarray()
                index += 1
        except av.error.FFmpegError as exc:
            raise VideoDecodeError(
                self.path, f"decoding frame {index} failed ({_first_line(exc)})", index
            ) from exc
        if index == 0:
            raise VideoDecodeError(self.path, "has no decodable video frames")

    def _iter_decord(self):
        reader = self._reader
        total = len(reader)
        if total == 0:
            raise VideoDecodeError(self.path, "has no decodable video frames")
        first_time = None
        for start in range(0, total, self.chunk):
            indices = list(range(start, min(start + self.chunk, total)))
            frames = _read_decord(reader, self.path, np.asarray(indices))
            times = np.asarray(reader.get_frame_timestamp(indices), dtype=np.float64).reshape(-1, 2)[:, 0]
            if first_time is None:
                first_time = float(times[0])
            for offset, index in enumerate(indices):
                yield index, float(times[offset] - first_time), frames[offset]


# ---------------------------------------------------------------------------------------------------------------
# Frame folders
# ---------------------------------------------------------------------------------------------------------------
def _template_pattern(filename_tmpl: str) -> re.Pattern:
    """A regex matching the file names of ``filename_tmpl`` (one integer field, e.g. ``img_{:05}.jpg``)."""
    parts, fields = [], 0
    for literal, field, _spec, _conv in string.Formatter().parse(filename_tmpl):
        parts.append(re.escape(literal))
        if field is not None:
            parts.append(r"(\d+)")
            fields += 1
    if fields != 1:
        raise ValueError(
            f"filename_tmpl must hold exactly one integer field like 'img_{{:05}}.jpg', got {filename_tmpl!r}"
        )
    return re.compile("".join(parts))


def count_frames(
    frame_dir: str | os.PathLike, filename_tmpl: str = DEFAULT_FILENAME_TMPL, start_index: int = 1
) -> int:
    """Number of frames in an extracted-frame folder: the files named ``filename_tmpl.format(i)``, which must be
    numbered ``start_index, start_index + 1, ...`` without gaps (a gap, another first number or no frame at all
    raises :class:`FrameDecodeError`)."""
    frame_dir = os.fspath(frame_dir)
    pattern = _template_pattern(filename_tmpl)
    if not os.path.isdir(frame_dir):
        raise FrameDecodeError(frame_dir, "no such frame folder")
    numbers = []
    for name in os.listdir(frame_dir):
        match = pattern.fullmatch(name)
        if match and filename_tmpl.format(int(match.group(1))) == name:
            numbers.append(int(match.group(1)))
    if not numbers:
        raise FrameDecodeError(frame_dir, f"holds no frames named like {filename_tmpl.format(start_index)!r}")
    numbers.sort()
    if numbers[0] != start_index:
        raise FrameDecodeError(
            frame_dir,
            f"frame numbering starts at {filename_tmpl.format(numbers[0])}, expected "
            f"{filename_tmpl.format(start_index)}",
            start_index,
        )
    if numbers[-1] != start_index + len(numbers) - 1:
        present = set(numbers)
        missing = next(i for i in range(start_index, numbers[-1]) if i not in present)
        raise FrameDecodeError(
            frame_dir,
            f"frames {filename_tmpl.format(start_index)}..{filename_tmpl.format(numbers[-1])} have gaps: "
            f"{filename_tmpl.format(missing)} is missing",
            missing,
        )
    return len(numbers)


def _jpeg_decoder(backend: str) -> Callable[[bytes, np.ndarray | None], np.ndarray]:
    """``decode(data, out)`` -> RGB uint8 (H, W, 3), written into ``out`` when the backend can."""
    check_choice("JPEG backend", backend, JPEG_BACKENDS)
    if backend in ("simplejpeg", "turbojpeg"):
        simplejpeg = _optional("simplejpeg", "simplejpeg", f"read_frames(backend={backend!r})")

        def decode(data: bytes, out: np.ndarray | None) -> np.ndarray:
            if out is not None:
                height, width = simplejpeg.decode_jpeg_header(data)[:2]
                if out.shape == (height, width, 3):
                    return simplejpeg.decode_jpeg(data, colorspace="RGB", buffer=out)
            return simplejpeg.decode_jpeg(data, colorspace="RGB")

    elif backend == "cv2":
        cv2 = _optional("cv2", "opencv-python-headless", "read_frames(backend='cv2')")

        # mmcv.imfrombytes: imdecode to BGR, then cvtColor to RGB; OpenCV >= 4.10 can ask libjpeg for RGB directly
        # (the same numbers, one pass less)
        rgb_flag = getattr(cv2, "IMREAD_COLOR_RGB", None)

        def decode(data: bytes, out: np.ndarray | None) -> np.ndarray:
            buffer = np.frombuffer(data, dtype=np.uint8)
            image = cv2.imdecode(buffer, rgb_flag if rgb_flag is not None else cv2.IMREAD_COLOR)
            if image is None:
                raise ValueError("cv2.imdecode could not decode it")
            return image if rgb_flag is not None else cv2.cvtColor(image, cv2.COLOR_BGR2RGB)

    else:  # "pil"
        Image = _optional("PIL.Image", "Pillow", "read_frames(backend='pil')")

        def decode(data: bytes, out: np.ndarray | None) -> np.ndarray:
            with Image.open(io.BytesIO(data)) as image:
                return np.asarray(image.convert("RGB"))

    return decode


def read_frames(
    frame_dir: str | os.PathLike,
    indices: Sequence[int] | np.ndarray,
    filename_tmpl: str = DEFAULT_FILENAME_TMPL,
    backend: str = "simplejpeg",
    num_threads: int = 1,
) -> np.ndarray:
    """Frames ``filename_tmpl.format(i)`` for ``i`` in ``indices`` (file numbers, so 1-based for ``img_00001.jpg``)
    as uint8 RGB ``(len(indices), H, W, 3)``. ``num_threads > 1`` decodes in a thread pool (the decoders release
    the GIL). A missing frame or a corrupt JPEG raises :class:`FrameDecodeError` naming the file."""
    frame_dir = os.fspath(frame_dir)
    decode = _jpeg_decoder(backend)
    _template_pattern(filename_tmpl)
    unique, inverse = _unique_indices(indices, frame_dir)
    if not os.path.isdir(frame_dir):
        raise FrameDecodeError(frame_dir, "no such frame folder")
    first = _read_jpeg(frame_dir, filename_tmpl, int(unique[0]), decode, None)
    frames = np.empty((len(unique), *first.shape), dtype=np.uint8)
    frames[0] = first

    def load(slot: int) -> None:
        image = _read_jpeg(frame_dir, filename_tmpl, int(unique[slot]), decode, frames[slot])
        if image.shape != first.shape:
            raise FrameDecodeError(
                os.path.join(frame_dir, filename_tmpl.format(int(unique[slot]))),
                f"frame is {image.shape[1]}x{image.shape[0]}, frame {int(unique[0])} is {first.shape[1]}x{first.shape[0]}",
                int(unique[slot]),
            )
        if not np.shares_memory(image, frames[slot]):
            frames[slot] = image

    if num_threads > 1 and len(unique) > 2:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=num_threads) as pool:
            list(pool.map(load, range(1, len(unique))))
    else:
        for slot in range(1, len(unique)):
            load(slot)
    return _expand(frames, unique, inverse)


def _read_jpeg(
    frame_dir: str,
    filename_tmpl: str,
    index: int,
    decode: Callable[[bytes, np.ndarray | None], np.ndarray],
    out: np.ndarray | None,
) -> np.ndarray:
    path = os.path.join(frame_dir, filename_tmpl.format(index))
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise _missing_frame(frame_dir, filename_tmpl, index, path) from None
    try:
        image = decode(data, out)
    except Exception as exc:
        raise FrameDecodeError(path, f"corrupt or unreadable JPEG ({_first_line(exc)})", index) from exc
    if image.ndim != 3 or image.shape[2] != 3:
        raise FrameDecodeError(path, f"decoded to shape {image.shape}, expected (H, W, 3)", index)
    return image


def _missing_frame(frame_dir: str, filename_tmpl: str, index: int, path: str) -> FrameDecodeError:
    try:
        held = f"the folder holds {count_frames(frame_dir, filename_tmpl)} frames"
    except FrameDecodeError as exc:
        held = str(exc)[len(frame_dir) + 2 :]
    return FrameDecodeError(path, f"frame {index} does not exist ({held})", index)


__all__ = [
    "DEFAULT_FILENAME_TMPL",
    "DEFAULT_VIDEO_BACKEND",
    "JPEG_BACKENDS",
    "VIDEO_BACKENDS",
    "VIDEO_BACKEND_PACKAGES",
    "DecodeError",
    "FrameDecodeError",
    "SequentialVideoReader",
    "VideoDecodeError",
    "check_video_backend",
    "count_frames",
    "count_video_frames",
    "read_frames",
    "read_video",
    "read_video_sampled",
    "video_path_problem",
]
