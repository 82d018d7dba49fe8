"""The CPU training step of ``hf_i3d.cpu_training`` against channels-last 3D alone, per layer and for the whole step.

    python benchmarks/bench_cpu_training.py                        # layers and the step, 2 threads
    python benchmarks/bench_cpu_training.py --no-layers --repeats 21 --output /tmp/step.json

Layers: one convolution's forward and backward (input and weight gradients) on channels-last tensors, as oneDNN runs
it (``F.conv3d``, with its copy of the weight gradient into the parameter's layout) and as the matrix product
(``_PatchMatmulConv``), alternately in one process; ``ratio`` is oneDNN's median over the matrix product's (above 1:
the matrix product is faster), ``rule`` whether ``CPUTrainingConv3d`` picks it there. The shapes are the I3D-R50's
stages 2-4 at batches 2x8x112 (rows = batch x frames x output positions), 8x8x112 and 8x32x112 (stage 1 too).
Then the inflated (3, 1, 1) convolutions over several frames, oneDNN's weight gradient against
``_TemporalKernelConv``'s, and the RGB stem's forward in channels-last against ``_PlainForwardConv``.

Step: the I3D-R50 (random weights, 400 classes) on a 2x8x112x112 batch, forward, backward and an SGD step (momentum
0.9, weight decay 1e-4, fused kernel), the case ``benchmarks/run.py`` compares with mmaction2: ``channels_last``
(channels-last 3D weights, torch's SGD: the example's CPU default before 2026-12-02) against ``optimized``
(``optimize_for_cpu_training`` and ``ChannelsLastSGD``: the default since), alternately, and each part alone.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

from hf_i3d import I3DConfig, I3DForVideoClassification
from hf_i3d.cpu_training import (
    ChannelsLastSGD,
    CPUTrainingConv3d,
    _PatchMatmulConv,
    _PlainForwardConv,
    _TemporalKernelConv,
    optimize_for_cpu_training,
)

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import time_alternately  # noqa: E402

CL = torch.channels_last_3d
SGD_ARGS = dict(lr=0.01, momentum=0.9, weight_decay=1e-4, fused=True)

# (batch, frames, C_in, C_out, kernel (kh = kw), spatial stride, input size)
LAYERS = [
    (2, 1, 64, 64, 1, 1, 28),
    (2, 1, 512, 128, 1, 1, 14),
    (2, 1, 128, 128, 3, 1, 14),
    (2, 1, 1024, 256, 1, 1, 7),
    (2, 1, 256, 256, 3, 1, 7),
    (2, 1, 256, 256, 3, 2, 14),
    (2, 1, 2048, 512, 1, 1, 4),
    (2, 1, 512, 512, 3, 1, 4),
    (2, 1, 512, 512, 3, 2, 7),
    (8, 1, 1024, 256, 1, 1, 7),
    (8, 1, 256, 256, 3, 1, 7),
    (8, 1, 512, 512, 3, 1, 4),
    (8, 4, 64, 64, 3, 1, 28),
    (8, 4, 512, 128, 1, 1, 14),
    (8, 4, 128, 128, 3, 1, 14),
    (8, 4, 512, 512, 3, 1, 4),
]


def bench_layer(batch, frames, c_in, c_out, kernel, stride, size, repeats) -> dict:
    x = torch.randn(batch, c_in, frames, size, size).contiguous(memory_format=CL).requires_grad_()
    weight = torch.randn(c_out, c_in, 1, kernel, kernel).contiguous(memory_format=CL).requires_grad_()
    padding = kernel // 2
    grad_output = torch.randn_like(F.conv3d(x, weight, None, (1, stride, stride), (0, padding, padding)))

    def onednn():
        F.conv3d(x, weight, None, (1, stride, stride), (0, padding, padding)).backward(grad_output)
        x.grad = weight.grad = None

    def matmul():
        _PatchMatmulConv.apply(x, weight, 0, (stride, stride), (padding, padding)).backward(grad_output)
        x.grad = weight.grad = None

    times = time_alternately({"onednn": onednn, "matmul": matmul}, repeats, warmup_rounds=1)
    conv = CPUTrainingConv3d(
        c_in, c_out, (1, kernel, kernel), (1, stride, stride), (0, padding, padding), bias=False
    )
    out_size = (size + 2 * padding - kernel) // stride + 1
    return {
        "shape": [batch, frames, c_in, c_out, kernel, stride, size],
        "rows": batch * frames * out_size * out_size,
        "onednn_ms": statistics.median(times["onednn"]) * 1e3,
        "matmul_ms": statistics.median(times["matmul"]) * 1e3,
        "ratio": statistics.median(times["onednn"]) / statistics.median(times["matmul"]),
        "rule": conv._matmul_tap(x) is not None,
    }


# (batch, frames, C_in, C_out, size): (3, 1, 1) kernels with temporal padding 1, the I3D-R50's inflated conv1 of
# stage 1 at 2x8x112 (two frames), and of stages 1-2 at 8x32x112 (eight and four frames)
TEMPORAL_LAYERS = [
    (2, 2, 64, 64, 28),
    (2, 2, 256, 64, 28),
    (8, 8, 256, 64, 28),
    (8, 4, 512, 128, 14),
]


def bench_temporal_layer(batch, frames, c_in, c_out, size, repeats) -> dict:
    """One (3, 1, 1) convolution's forward and backward: oneDNN's weight gradient against ``_TemporalKernelConv``'s
    (the forward and input gradient are oneDNN's in both)."""
    x = torch.randn(batch, c_in, frames, size, size).contiguous(memory_format=CL).requires_grad_()
    weight = torch.randn(c_out, c_in, 3, 1, 1).contiguous(memory_format=CL).requires_grad_()
    grad_output = torch.randn_like(F.conv3d(x, weight, None, 1, (1, 0, 0)))

    def onednn():
        F.conv3d(x, weight, None, 1, (1, 0, 0)).backward(grad_output)
        x.grad = weight.grad = None

    def taps():
        _TemporalKernelConv.apply(x, weight, 1, torch.get_num_threads() == 1).backward(grad_output)
        x.grad = weight.grad = None

    times = time_alternately({"onednn": onednn, "taps": taps}, repeats, warmup_rounds=1)
    return {
        "shape": [batch, frames, c_in, c_out, size],
        "onednn_ms": statistics.median(times["onednn"]) * 1e3,
        "taps_ms": statistics.median(times["taps"]) * 1e3,
        "ratio": statistics.median(times["onednn"]) / statistics.median(times["taps"]),
    }


def bench_stem(repeats: int) -> dict:
    """The I3D-R50 stem (3 -> 64, 5x7x7, stride 2) on the 2x8x112 clips: its forward on channels-last weights
    (oneDNN's channels-last kernel) against ``_PlainForwardConv`` (the default layout), and both with the weight
    gradient."""
    clips = torch.randn(2, 8, 3, 112, 112).permute(0, 2, 1, 3, 4)  # as the model reads them
    weight = torch.randn(64, 3, 5, 7, 7).contiguous(memory_format=CL).requires_grad_()
    geometry = ((2, 2, 2), (2, 3, 3), (1, 1, 1))
    grad_output = torch.randn(2, 64, 4, 56, 56).contiguous(memory_format=CL)

    def forward(conv):
        def run():
            with torch.no_grad():
                conv()

        return run

    def with_weight_gradient(conv):
        def run():
            conv().backward(grad_output)
            weight.grad = None

        return run

    channels_last = lambda: F.conv3d(clips, weight, None, *geometry)  # noqa: E731
    plain = lambda: _PlainForwardConv.apply(clips, weight, *geometry)  # noqa: E731
    calls = {
        "forward_channels_last": forward(channels_last),
        "forward_plain": forward(plain),
        "step_channels_last": with_weight_gradient(channels_last),
        "step_plain": with_weight_gradient(plain),
    }
    times = time_alternately(calls, repeats, warmup_rounds=1)
    return {name: statistics.median(values) * 1e3 for name, values in times.items()}


def bench_step(repeats: int) -> dict:
    torch.manual_seed(0)
    base = I3DForVideoClassification(I3DConfig(num_labels=400)).train()
    clips, labels = torch.randn(2, 8, 3, 112, 112), torch.tensor([3, 40])
    setups = {
        "channels_last": (base.to(memory_format=CL), torch.optim.SGD),
        "convolutions_only": (optimize_for_cpu_training(copy.deepcopy(base)), torch.optim.SGD),
        "channels_last_sgd_only": (copy.deepcopy(base), ChannelsLastSGD),
        "optimized": (optimize_for_cpu_training(copy.deepcopy(base)), ChannelsLastSGD),
    }
    calls = {}
    for name, (model, optimizer_class) in setups.items():
        optimizer = optimizer_class(model.parameters(), **SGD_ARGS)

        def step(model=model, optimizer=optimizer):
            model(clips, labels=labels).loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)

        step()
        calls[name] = step
    times = time_alternately(calls, repeats, warmup_rounds=1)
    medians = {name: statistics.median(values) for name, values in times.items()}
    return {
        "median_s": medians,
        "min_s": {name: min(values) for name, values in times.items()},
        "speed_up_vs_channels_last": {
            name: medians["channels_last"] / value for name, value in medians.items()
        },
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=11)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-layers", dest="layers", action="store_false")
    parser.add_argument("--no-step", dest="step", action="store_false")
    parser.add_argument("--output", help="write the results as JSON here")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    results: dict = {"torch": torch.__version__, "threads": args.threads, "repeats": args.repeats}
    if args.layers:
        results["layers"] = []
        print(
            f"{'batch x frames, C_in->C_out, k, stride, size':<46} {'rows':>6} {'oneDNN ms':>10} "
            f"{'matmul ms':>10} {'ratio':>6} rule"
        )
        for layer in LAYERS:
            row = bench_layer(*layer, repeats=args.repeats)
            results["layers"].append(row)
            b, t, ci, co, k, s, size = layer
            print(
                f"{f'{b}x{t}, {ci}->{co}, {k}x{k}, s{s}, {size}x{size}':<46} {row['rows']:>6} "
                f"{row['onednn_ms']:>10.2f} {row['matmul_ms']:>10.2f} {row['ratio']:>6.2f} {row['rule']}"
            )
        results["temporal_layers"] = []
        print(
            f"\n{'batch x frames, C_in->C_out, 3x1x1, size':<46} {'oneDNN ms':>10} {'taps ms':>10} {'ratio':>6}"
        )
        for layer in TEMPORAL_LAYERS:
            row = bench_temporal_layer(*layer, repeats=args.repeats)
            results["temporal_layers"].append(row)
            b, t, ci, co, size = layer
            print(
                f"{f'{b}x{t}, {ci}->{co}, 3x1x1, {size}x{size}':<46} {row['onednn_ms']:>10.2f} "
                f"{row['taps_ms']:>10.2f} {row['ratio']:>6.2f}"
            )
        results["stem"] = bench_stem(args.repeats)
        print("\nstem 2x8x112 (ms): " + ", ".join(f"{k} {v:.1f}" for k, v in results["stem"].items()))
    if args.step:
        results["step"] = bench_step(args.repeats)
        for name, median in results["step"]["median_s"].items():
            print(
                f"step {name:<24} median {median:.4f} s  min {results['step']['min_s'][name]:.4f} s  "
                f"{results['step']['speed_up_vs_channels_last'][name]:.3f}x channels_last"
            )
    if args.output:
        with open(args.output, "w") as handle:
            json.dump(results, handle, indent=1)


if __name__ == "__main__":
    main()
