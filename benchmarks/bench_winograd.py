"""Winograd F(4x4, 3x3) against oneDNN's direct convolution, per eval convolution of the I3D models.

    python benchmarks/bench_winograd.py                         # the layers of both models, 5 rounds, 2 threads
    python benchmarks/bench_winograd.py --layers brief --repeats 3 --threads 1
    python benchmarks/bench_winograd.py --layers r50,mid --models --busy 2  # with 2 busy processes on the cores

Each layer is one ``hf_i3d.inference.FoldedConv3d`` (bias and ReLU fused), timed with ``winograd=False`` (oneDNN's
direct kernel with the packed weight, what the fast path ran before) and with ``winograd=True`` and the rule
forced on (``hf_i3d.inference.winograd_conv3d``: all transforms included), alternately in one process so machine load
hits both alike. The ratio is the median over rounds of ``winograd / direct`` (below 1: Winograd is faster); the
error columns are each path's max abs difference from the float64 ``F.conv3d`` over the largest output. ``inc`` are the
3x3x3 convolutions of the Inception I3D at 1x16x224x224, ``r50`` the 1x3x3 ones of the I3D-R50 at 1x32x224x224 (their
input shapes traced from the models; a count > 1 repeats the layer in the model), ``brief`` the batch-8 shapes of the
investigation, ``mid`` shapes around ``WINOGRAD_MIN_MACS``. ``use`` says whether the default rule (``FoldedConv3d._winograd_applies``) picks Winograd there.
``--models`` also times whole fast forwards (random weights) with ``WINOGRAD_MIN_MACS`` at its value and at
``--compare-min-macs`` (3e9, the rule before 2026-12-02), alternately. ``--busy N`` keeps N other processes
spinning on the cores while it measures (a machine shared with other work).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

from hf_i3d import I3DConfig, I3DForVideoClassification, InceptionI3DConfig, InceptionI3DModel, inference
from hf_i3d.inference import FoldedConv3d, optimize_for_inference

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import time_alternately  # noqa: E402

# (batch, C_in, C_out, frames, height, width, temporal taps), count in the model
LAYERS = {
    "inc": [
        ((1, 64, 192, 8, 56, 56, 3), 1),
        ((1, 96, 128, 8, 28, 28, 3), 1),
        ((1, 16, 32, 8, 28, 28, 3), 1),
        ((1, 128, 192, 8, 28, 28, 3), 1),
        ((1, 32, 96, 8, 28, 28, 3), 1),
        ((1, 96, 208, 4, 14, 14, 3), 1),
        ((1, 16, 48, 4, 14, 14, 3), 1),
        ((1, 112, 224, 4, 14, 14, 3), 1),
        ((1, 24, 64, 4, 14, 14, 3), 2),
        ((1, 128, 256, 4, 14, 14, 3), 1),
        ((1, 144, 288, 4, 14, 14, 3), 1),
        ((1, 32, 64, 4, 14, 14, 3), 1),
        ((1, 160, 320, 4, 14, 14, 3), 1),
        ((1, 32, 128, 4, 14, 14, 3), 1),
        ((1, 160, 320, 2, 7, 7, 3), 1),
        ((1, 32, 128, 2, 7, 7, 3), 1),
        ((1, 192, 384, 2, 7, 7, 3), 1),
        ((1, 48, 128, 2, 7, 7, 3), 1),
    ],
    "r50": [
        ((1, 64, 64, 8, 56, 56, 1), 3),
        ((1, 128, 128, 4, 28, 28, 1), 3),
        ((1, 256, 256, 4, 14, 14, 1), 5),
        ((1, 512, 512, 4, 7, 7, 1), 2),
    ],
    "mid": [  # around WINOGRAD_MIN_MACS: Inception at 64 frames, I3D-R50 on 6 views of 32x256x256 (predict's batches)
        ((1, 96, 208, 16, 14, 14, 3), 1),
        ((1, 96, 128, 8, 28, 28, 3), 1),
        ((1, 144, 288, 16, 14, 14, 3), 1),
        ((6, 128, 128, 4, 32, 32, 1), 1),
        ((6, 256, 256, 4, 16, 16, 1), 1),
        ((1, 160, 320, 16, 14, 14, 3), 1),
        ((1, 128, 192, 8, 28, 28, 3), 1),
    ],
    "brief": [
        ((8, 64, 192, 8, 56, 56, 3), 1),
        ((8, 96, 128, 8, 28, 28, 3), 1),
        ((8, 96, 208, 4, 14, 14, 3), 1),
    ],
}


def bench_layer(shape: tuple[int, ...], repeats: int) -> dict:
    batch, in_channels, out_channels, frames, height, width, taps = shape
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(batch, in_channels, frames, height, width, generator=generator)
    x = x.contiguous(memory_format=torch.channels_last_3d)
    weight = (
        torch.randn(out_channels, in_channels, taps, 3, 3, generator=generator)
        / (in_channels * taps * 9) ** 0.5
    )
    bias = torch.randn(out_channels, generator=generator)
    args = (weight, bias, (1, 1, 1), (taps // 2, 1, 1), (1, 1, 1), 1)
    direct = FoldedConv3d(*args, relu=True, winograd=False)
    winograd = FoldedConv3d(*args, relu=True, winograd=True)
    use = winograd._winograd_applies(x, weight, [taps // 2, 1, 1])
    winograd._winograd_applies = lambda *_: True  # measure it where the rule would not pick it too
    with torch.inference_mode():
        outputs = {"direct": direct(x), "winograd": winograd(x)}  # warm-up: packing, transformed weights
        times = time_alternately({"direct": lambda: direct(x), "winograd": lambda: winograd(x)}, repeats)
        reference = F.relu(F.conv3d(x.double(), weight.double(), bias.double(), padding=(taps // 2, 1, 1)))
    scale = float(reference.abs().max())
    return {
        "direct_ms": statistics.median(times["direct"]) * 1e3,
        "winograd_ms": statistics.median(times["winograd"]) * 1e3,
        "ratio": statistics.median(w / d for w, d in zip(times["winograd"], times["direct"])),
        "gmac": batch * out_channels * frames * height * width * in_channels * taps * 9 / 1e9,
        "direct_error": float((outputs["direct"].double() - reference).abs().max()) / scale,
        "winograd_error": float((outputs["winograd"].double() - reference).abs().max()) / scale,
        "use": use,
    }


# whole fast forwards: name -> (model factory, input shape (N, T, C, H, W))
MODELS = {
    "r50 6x32x256 (predict's batch)": (
        lambda: I3DForVideoClassification(I3DConfig(num_labels=400)),
        (6, 32, 3, 256, 256),
    ),
    "r50 1x32x224": (lambda: I3DForVideoClassification(I3DConfig(num_labels=400)), (1, 32, 3, 224, 224)),
    "inception 8x16x224 (features batch)": (
        lambda: InceptionI3DModel(InceptionI3DConfig()),
        (8, 16, 3, 224, 224),
    ),
}


def _forward_at(model: torch.nn.Module, x: torch.Tensor, min_macs: float):
    """A call of ``model(x)`` with ``WINOGRAD_MIN_MACS`` at ``min_macs``."""

    def call():
        inference.WINOGRAD_MIN_MACS = min_macs
        model(x)

    return call


def bench_models(repeats: int, compare_min_macs: int) -> None:
    """Median forward time of each fast model with ``WINOGRAD_MIN_MACS`` at its value and at ``compare_min_macs``."""
    current = inference.WINOGRAD_MIN_MACS
    print(f"| model | MIN_MACS {current:.0e} s | MIN_MACS {compare_min_macs:.0e} s | ratio |")
    print("|---|---|---|---|")
    for name, (factory, shape) in MODELS.items():
        torch.manual_seed(0)
        model = optimize_for_inference(factory().eval(), example_shape=(1, *shape[1:]))
        x = torch.randn(shape)
        with torch.inference_mode():  # the first round warms both up
            times = time_alternately(
                {"now": _forward_at(model, x, current), "before": _forward_at(model, x, compare_min_macs)},
                repeats,
                warmup_rounds=1,
            )
        inference.WINOGRAD_MIN_MACS = current
        now, before = statistics.median(times["now"]), statistics.median(times["before"])
        print(f"| {name} | {now:.3f} | {before:.3f} | {now / before:.3f} |", flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--layers", default="inc,r50", help="comma-separated groups of LAYERS (inc, r50, mid, brief)"
    )
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--models", action="store_true", help="also time whole fast forwards (MODELS)")
    parser.add_argument("--compare-min-macs", type=float, default=3e9)
    parser.add_argument("--busy", type=int, default=0, help="other processes spinning while it measures")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.busy)]
    try:
        run(args)
    finally:
        for process in busy:
            process.kill()


def run(args: argparse.Namespace) -> None:
    print(
        f"threads {args.threads}, repeats {args.repeats}, busy processes {args.busy}, torch {torch.__version__}"
    )
    print(
        "| layer (N, C_in, C_out, T, H, W, kt) | x | GMAC | direct ms | winograd ms | winograd / direct | "
        "error direct | error winograd | rule |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for group in args.layers.split(","):
        total = {"direct": 0.0, "winograd": 0.0, "rule": 0.0}
        for shape, count in LAYERS[group]:
            row = bench_layer(shape, args.repeats)
            total["direct"] += count * row["direct_ms"]
            total["winograd"] += count * row["winograd_ms"]
            total["rule"] += count * (row["winograd_ms"] if row["use"] else row["direct_ms"])
            print(
                f"| {group} {shape} | {count} | {row['gmac']:.3f} | {row['direct_ms']:.1f} | {row['winograd_ms']:.1f} "
                f"| {row['ratio']:.3f} | {row['direct_error']:.1e} | {row['winograd_error']:.1e} | "
                f"{'winograd' if row['use'] else 'direct'} |",
                flush=True,
            )
        print(
            f"| {group} total (medians x count) | | | {total['direct']:.1f} | {total['winograd']:.1f} | "
            f"{total['winograd'] / total['direct']:.3f} | | | rule: {total['rule'] / total['direct']:.3f} |"
        )
    if args.models:
        bench_models(args.repeats, int(args.compare_min_macs))


if __name__ == "__main__":
    main()
