"""A video dataset that only a video model can learn: a bright square moving in one of eight directions.

Each video is ``num_frames`` frames of ``size x size`` pixels: a dark background and a bright square that moves
``SPEED`` pixels per frame in the direction of its class, wrapping around the frame edges (a torus). The start
position is uniform at random, so the square's position in any one frame is uniform whatever the class: a single
frame carries no information about the label, only the change between frames does. Horizontal flips swap the
leftward and rightward classes, so train on it with ``flip_ratio=0``. Eight classes, so top-5 accuracy means
something.

The videos are real encoded files (H.264 in MP4 via PyAV) listed in mmaction2 annotation lists
(``<relative path> <label>`` per line), with a class-name file: what ``hf_i3d.data.load_video_dataset`` reads.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

SPEED = (
    3  # pixels per frame: 6 between the frames of a clip sampled every 2nd frame, less than half the frame
)
# (dy, dx) velocity of each class in pixels per frame (image rows grow downwards)
VELOCITIES = {
    name: (SPEED * dy, SPEED * dx)
    for name, (dy, dx) in {
        "up": (-1, 0),
        "down": (1, 0),
        "left": (0, -1),
        "right": (0, 1),
        "up-left": (-1, -1),
        "up-right": (-1, 1),
        "down-left": (1, -1),
        "down-right": (1, 1),
    }.items()
}
CLASSES = tuple(VELOCITIES)


def moving_square_frames(
    velocity: tuple[int, int], start: tuple[int, int], num_frames: int = 16, size: int = 32, square: int = 8
) -> np.ndarray:
    """``(num_frames, size, size, 3)`` uint8 RGB frames: a grey-white square at ``start`` (y, x) moving
    ``velocity`` (dy, dx) pixels per frame, wrapping around the edges, on a dark background."""
    dy, dx = velocity
    frames = np.full((num_frames, size, size, 3), 20, dtype=np.uint8)
    rows, cols = np.arange(square), np.arange(square)
    for t in range(num_frames):
        y = (start[0] + dy * t + rows) % size
        x = (start[1] + dx * t + cols) % size
        frames[t][np.ix_(y, x)] = 235
    return frames


def encode_video(path: str | Path, frames: np.ndarray, fps: int = 25) -> None:
    """Encode RGB frames as near-lossless H.264 (yuv420p) with PyAV."""
    import av

    height, width = frames.shape[1:3]
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"crf": "12", "preset": "ultrafast"}
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


@dataclass(frozen=True)
class SyntheticDataset:
    """Where :func:`write_moving_square_dataset` put things."""

    root: Path
    ann_files: dict[str, Path]
    label_file: Path
    classes: tuple[str, ...] = CLASSES


def write_moving_square_dataset(
    root: str | Path,
    splits: dict[str, int] | None = None,
    num_frames: int = 16,
    size: int = 32,
    seed: int = 0,
    velocities: dict[str, tuple[int, int]] | None = None,
) -> SyntheticDataset:
    """Write ``videos/<split>_<i>.mp4``, ``<split>_list.txt`` and ``classes.txt`` under ``root``.

    ``splits`` maps a split name to its number of videos (default 64 train, 32 validation); labels cycle through
    the classes (``velocities``: name -> (dy, dx) per frame, default :data:`VELOCITIES`) so every split is
    balanced. Generation is deterministic in ``seed``.
    """
    root = Path(root)
    velocities = velocities or VELOCITIES
    classes = tuple(velocities)
    splits = splits or {"train": 64, "validation": 32}
    rng = np.random.RandomState(seed)
    (root / "videos").mkdir(parents=True, exist_ok=True)
    ann_files = {}
    for split, count in splits.items():
        lines = []
        for i in range(count):
            label = i % len(classes)
            start = (int(rng.randint(size)), int(rng.randint(size)))
            name = f"videos/{split}_{i:03d}.mp4"
            encode_video(
                root / name, moving_square_frames(velocities[classes[label]], start, num_frames, size)
            )
            lines.append(f"{name} {label}")
        ann_files[split] = root / f"{split}_list.txt"
        ann_files[split].write_text("\n".join(lines) + "\n", encoding="utf-8")
    label_file = root / "classes.txt"
    label_file.write_text("\n".join(classes) + "\n", encoding="utf-8")
    return SyntheticDataset(root=root, ann_files=ann_files, label_file=label_file, classes=classes)
