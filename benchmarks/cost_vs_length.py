"""How cost grows with video length: wall time, CPU time and peak memory of ``hf-i3d predict --views multi`` and of
``hf-i3d extract-features`` on generated videos of 10 s, 1 min and 10 min.

    python benchmarks/cost_vs_length.py                      # about 3-6 minutes on 2 cores (tiny models)
    python benchmarks/cost_vs_length.py --lengths 10,60 --model-size full --output /tmp/cost.json

What users need to know is how a long video costs, so every cell is one run of the command as a user types it, in
its own process (``python -m hf_i3d.cli ...``, the ``hf-i3d`` entry point): wall time from start to exit, the
process's CPU time and its peak resident memory (``ru_maxrss`` from ``os.wait4`` on that process alone). Start-up
(imports, model load) is in every cell; the 10 s video shows it.

* Videos: ``--lengths`` seconds of 128x96 H.264 at 25 fps (libx264 defaults, so B-frames), a moving gradient and
  square made with numpy, written once with PyAV into ``--workdir`` (default ``/tmp/hf_i3d_cost_vs_length``).
* ``predict``: ``hf-i3d predict VIDEO --views multi --json``, the I3D-R50 zoo preset's test protocol (10 clips x 3
  crops of 32 frames, short side 256): the same 30 views whatever the length, sampled across the whole video.
* ``features``: ``hf-i3d extract-features VIDEO --output DIR --stride S --overwrite --quiet``: every 16-frame window
  started every S frames (``--feature-stride``, default 16: non-overlapping, as the ``rtfm`` and
  ``video-features`` presets; the CLI's default 4 makes 4x the windows), centre crop: the work grows with the
  length (10 min at 25 fps: 937 windows at stride 16, 3,747 at stride 4).
* Models (``--model-size``): ``tiny`` (default) are random-weight models with the real processors but narrow
  layers (I3D-R50 with ``base_channels=8``; its ``image_size=112`` for features), so the table shows what grows
  with length (decoding, frame transforms, windows) in a few minutes; ``full`` uses the full-size random-weight
  I3D-R50 (400 classes) for both, where the network dominates (much slower: use short lengths).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

WIDTH, HEIGHT, FPS = 128, 96, 25


def make_video(path: Path, seconds: int) -> Path:
    """``seconds`` of WIDTHxHEIGHT H.264 at FPS, written to a temporary name and moved into place."""
    import av

    if path.exists():
        return path
    ys, xs = np.mgrid[0:HEIGHT, 0:WIDTH]
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}.mp4")
    with av.open(str(tmp), mode="w") as container:
        stream = container.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        for index in range(seconds * FPS):
            frame = np.empty((HEIGHT, WIDTH, 3), np.uint8)
            frame[..., 0] = (xs + 3 * index) % 256
            frame[..., 1] = (ys + 2 * index) % 256
            frame[..., 2] = (xs + ys + index) % 256
            x, y = (5 * index) % (WIDTH - 24), (3 * index) % (HEIGHT - 24)
            frame[y : y + 24, x : x + 24] = 255
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    os.replace(tmp, path)
    return path


def make_models(workdir: Path, size: str) -> dict[str, Path]:
    """The model folders of both commands (written once per size): random weights, real zoo processors."""
    import torch

    from hf_i3d import I3DConfig, I3DForVideoClassification, I3DVideoProcessor
    from hf_i3d.zoo import get_entry

    folders = {}
    for command, image_size in (("predict", 224), ("features", 112 if size == "tiny" else 224)):
        folder = workdir / f"{size}-r50-{command}"
        folders[command] = folder
        if (folder / "config.json").exists():
            continue
        torch.manual_seed(0)
        base_channels = 8 if size == "tiny" else 64
        config = I3DConfig(base_channels=base_channels, num_labels=400, image_size=image_size)
        model = I3DForVideoClassification(config).eval()
        model.save_pretrained(folder)
        I3DVideoProcessor.from_zoo_entry(get_entry("i3d-r50-kinetics400")).save_pretrained(folder)
    return folders


def run_command(argv: list[str]) -> dict:
    """Run ``argv`` in its own process; its wall time, CPU time and peak RSS (MiB)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        process = subprocess.Popen(argv, stdout=out, stderr=err)
        _, status, usage = os.wait4(process.pid, 0)  # this process's own resource usage
        wall = time.perf_counter() - start
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({code}):\n{stderr.decode()[-3000:]}")
    return {
        "wall_s": round(wall, 3),
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 3),
        "peak_rss_mib": round(usage.ru_maxrss / 1024, 1),
        "stdout_tail": stdout.decode()[-400:],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lengths", default="10,60,600", help="video lengths in seconds (default 10,60,600)")
    parser.add_argument("--model-size", choices=("tiny", "full"), default="tiny")
    parser.add_argument("--commands", default="predict,features", help="predict, features or both")
    parser.add_argument(
        "--feature-stride", type=int, default=16, help="extract-features --stride (default 16)"
    )
    parser.add_argument("--workdir", default="/tmp/hf_i3d_cost_vs_length")
    parser.add_argument("--output", default=None, help="JSON file for the results")
    args = parser.parse_args()
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    lengths = [int(v) for v in args.lengths.split(",")]
    commands = args.commands.split(",")

    started = time.perf_counter()
    videos = {
        seconds: make_video(workdir / f"synthetic_{seconds}s_{WIDTH}x{HEIGHT}.mp4", seconds)
        for seconds in lengths
    }
    folders = make_models(workdir, args.model_size)
    print(f"videos and models ready in {time.perf_counter() - started:.1f} s", flush=True)

    cli = [sys.executable, "-m", "hf_i3d.cli"]
    results = []
    for seconds in lengths:
        video = str(videos[seconds])
        for command in commands:
            if command == "predict":
                argv = [
                    *cli,
                    "predict",
                    video,
                    "--model",
                    str(folders[command]),
                    "--views",
                    "multi",
                    "--json",
                ]
            else:
                argv = [
                    *cli,
                    "extract-features",
                    video,
                    "--model",
                    str(folders[command]),
                    "--quiet",
                    "--stride",
                    str(args.feature_stride),
                    "--overwrite",
                    "--output",
                    str(workdir / f"features-{seconds}s"),
                ]
            result = {"command": command, "seconds": seconds, "frames": seconds * FPS, **run_command(argv)}
            results.append(result)
            print(
                f"{command:9s} {seconds:5d} s ({seconds * FPS:6d} frames): wall {result['wall_s']:8.2f} s  "
                f"cpu {result['cpu_s']:8.2f} s  peak RSS {result['peak_rss_mib']:7.1f} MiB",
                flush=True,
            )
            if command == "features":
                features = np.load(
                    workdir / f"features-{seconds}s" / f"{videos[seconds].stem}.npy", mmap_mode="r"
                )
                result["windows"] = int(features.shape[0])

    if args.output:
        payload = {
            "argv": sys.argv,
            "model_size": args.model_size,
            "feature_stride": args.feature_stride,
            "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "load_avg": os.getloadavg()},
            "results": results,
        }
        Path(args.output).write_text(json.dumps(payload, indent=1) + "\n")
    print("| command | video | frames | windows | wall s | CPU s | peak RSS MiB |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in results:
        print(
            f"| {r['command']} | {r['seconds']} s | {r['frames']} | {r.get('windows', '')} | {r['wall_s']:.1f} | "
            f"{r['cpu_s']:.1f} | {r['peak_rss_mib']:.0f} |"
        )
    print(f"load average at the end: {os.getloadavg()}")


if __name__ == "__main__":
    main()
