"""Our side of a benchmark case, run by ``benchmarks/run.py`` in our venv: builds hf_i3d models from the shared
weights and input files and times one variant of the case's step (see ``serve`` in ``_protocol.py``)."""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
# this checkout's hf_i3d, not the one an editable install elsewhere points at (run.py drops PYTHONPATH)
sys.path.insert(1, str(Path(__file__).resolve().parent.parent / "src"))
from _protocol import serve  # noqa: E402

# SGD of the mmaction2 I3D configs (optim_wrapper.optimizer), the same on both sides.
SGD_ARGS = dict(lr=0.01, momentum=0.9, weight_decay=1e-4)


def load_model(spec: dict) -> torch.nn.Module:
    """The case's model with the shared weights: the R50 through our mmaction2 converter, Inception from our file."""
    files = spec["files"]
    if spec["model"] == "i3d_r50":
        from hf_i3d import I3DConfig, I3DForVideoClassification
        from hf_i3d.convert.mmaction import convert_mmaction_state_dict, load_mmaction_checkpoint

        config = I3DConfig(num_labels=400)
        model = I3DForVideoClassification(config)
        state_dict = convert_mmaction_state_dict(load_mmaction_checkpoint(files["weights"]), config)
    elif spec["model"] == "inception_i3d":
        from hf_i3d import InceptionI3DConfig, InceptionI3DForVideoClassification

        model = InceptionI3DForVideoClassification(InceptionI3DConfig(num_labels=400))
        state_dict = torch.load(files["weights"], weights_only=True)
    else:
        raise ValueError(f"unknown model {spec['model']!r}")
    model.load_state_dict(state_dict, strict=True)
    return model


def build(spec: dict):
    variant = spec["variant"]
    if variant.endswith("+malloc"):
        from hf_i3d.inference import keep_freed_memory

        assert keep_freed_memory()
        variant = variant.removesuffix("+malloc")
    if spec["task"] == "train_clips":
        return build_train_clips(spec["files"]["input"].split(os.pathsep), variant)
    model = load_model(spec)
    if spec["task"] == "video_test":
        return build_video_test(model, spec["files"]["input"], variant)
    if spec["task"] == "video_features":
        return build_video_features(model, spec["files"]["input"], variant)
    # The shared input is NCTHW (mmaction2's layout); ours takes (batch, frames, channels, height, width), as the
    # video processor returns it.
    pixel_values = torch.load(spec["files"]["input"], weights_only=True).permute(0, 2, 1, 3, 4).contiguous()
    if spec["task"] == "forward":
        return build_forward(model, pixel_values, variant)
    if spec["task"] == "train_step":
        labels = torch.load(spec["files"]["labels"], weights_only=True)
        return build_train_step(model, pixel_values, labels, variant)
    raise ValueError(f"unknown task {spec['task']!r}")


def build_forward(model: torch.nn.Module, pixel_values: torch.Tensor, variant: str):
    """``eager``: the plain computation (``plain_forward``); ``default``: what a user's ``model.eval()`` +
    ``model(x)`` under inference_mode runs with no extra call (the cached fast copy); ``fast`` / ``fast_direct``
    (every convolution direct, no Winograd) / ``fast_bf16`` / ``compiled``: an explicit ``optimize_for_inference``
    copy."""
    import contextlib

    from hf_i3d.inference import optimize_for_inference, plain_forward

    model.eval()
    if variant == "onnxruntime":
        return build_onnxruntime(model, pixel_values)
    options = {
        "eager": None,
        "default": None,
        "fast": dict(),
        "fast_direct": dict(winograd=False),
        "fast_bf16": dict(dtype=torch.bfloat16),
        "compiled": dict(compile=True),
    }[variant]
    if options is not None:
        model = optimize_for_inference(model, **options)
    mode = plain_forward if variant == "eager" else contextlib.nullcontext
    logits = {}

    def step():
        with torch.inference_mode(), mode():
            logits["last"] = model(pixel_values).logits

    return step, lambda: {"logits": logits["last"]}


def build_onnxruntime(model: torch.nn.Module, pixel_values: torch.Tensor):
    """The model as ``hf-i3d export`` writes it by default (``hf_i3d.export.export_onnx``: batch 1, the ResNet3d
    frame axis dynamic), run by onnxruntime's CPU provider with the worker's thread count. Exporting is setup, not
    timed; the benchmark's output comparison with our eager model is the parity check."""
    import tempfile

    import onnxruntime

    from hf_i3d.export import export_onnx

    path = Path(tempfile.mkdtemp(prefix="hf_i3d_bench_onnx_")) / "model.onnx"
    export_onnx(model, path, num_frames=pixel_values.shape[1], image_size=pixel_values.shape[-1], check=False)
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    options.inter_op_num_threads = 1
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    path.unlink()
    path.parent.rmdir()
    inputs = {"pixel_values": pixel_values.numpy()}
    logits = {}

    def step():
        logits["last"] = session.run(None, inputs)[0]

    return step, lambda: {"logits": torch.from_numpy(logits["last"])}


def build_video_test(model: torch.nn.Module, video: str, variant: str):
    """The 30-view test of one video, decode to scores, as ``hf-i3d predict --views multi --backend decord`` runs it.

    ``eager``: the plain model, all 30 views made and classified in one batch (what mmaction2 does);
    ``default``: ``pipeline("video-classification")`` with the 30-view processor and the model as
    ``from_pretrained`` returns it, no extra call: its eval path is the fast copy, the 30 views are made in one
    processor call and go through the network 6 at a time (``config.max_views_per_batch``);
    ``fast``: ``optimize_for_inference`` and views made and classified 6 at a time (``predict``'s defaults).
    Frames are sampled with mmaction2 1.x's test offsets (``offset_rule='1.x'``), as the reference samples them.
    """
    import contextlib

    from hf_i3d import I3DVideoProcessor
    from hf_i3d.inference import optimize_for_inference, plain_forward
    from hf_i3d.predict import Classifier, video_scores
    from hf_i3d.zoo import get_entry

    # decord, as the reference decodes
    processor = I3DVideoProcessor.from_zoo_entry(
        get_entry("i3d-r50-kinetics400"), offset_rule="1.x", video_backend="decord"
    )
    model.eval()
    scores = {}
    if variant == "default":
        from transformers import pipeline

        multi = I3DVideoProcessor.from_zoo_entry(
            get_entry("i3d-r50-kinetics400"), offset_rule="1.x", video_backend="decord", views="multi"
        )
        classify = pipeline("video-classification", model=model, video_processor=multi)
        label2id = model.config.label2id

        def pipeline_step():
            ranked = classify(video, top_k=model.config.num_labels)
            probabilities = torch.zeros(model.config.num_labels)
            for item in ranked:
                probabilities[label2id[item["label"]]] = item["score"]
            scores["last"] = probabilities

        return pipeline_step, lambda: {"scores": scores["last"]}
    if variant == "eager":
        classifier, per_batch = Classifier(model, processor, "i3d_r50"), None
    elif variant == "fast":
        classifier, per_batch = Classifier(optimize_for_inference(model), processor, "i3d_r50", True), 6
    else:
        raise ValueError(f"unknown video-test variant {variant!r}")

    def step():
        with plain_forward() if variant == "eager" else contextlib.nullcontext():
            scores["last"], _ = video_scores(classifier, video, views="multi", max_views_per_batch=per_batch)

    return step, lambda: {"scores": scores["last"]}


def build_video_features(model: torch.nn.Module, video: str, variant: str, device: str | None = None):
    """Pooled Inception features of every 16-frame window every 4 frames of one video, decode to features.

    ``eager``: the plain approach of research scripts: every frame decoded (decord) and held, each window sliced,
    transformed (short side 256, centre crop 224) and run alone through the plain model (``plain_forward``);
    ``fast``: ``hf_i3d.features.FeatureExtractor`` (prepared once, as ``hf-i3d extract-features`` does per process):
    streaming PyAV decode, each frame transformed once, windows batched through the fast eval path (on CPU; on
    another ``device``, ``gpu.py``, batched through the model as it is). Features come back on the CPU.
    """
    import numpy as np

    from hf_i3d.features import FeatureExtractor, plan_windows
    from hf_i3d.inference import plain_forward

    model.eval()
    out = {}
    if variant == "eager":
        from hf_i3d.decoding import count_video_frames, read_video
        from hf_i3d.transforms import ClipTransform

        transform = ClipTransform(mode="val", short_side=256, crop_size=224, normalization="inception")

        def step():
            total = count_video_frames(video)
            frames = read_video(video, np.arange(total))
            rows = []
            for start in plan_windows(total, 16, 4, "pad"):
                clip = frames[np.minimum(np.arange(start, start + 16), total - 1)]
                with torch.inference_mode(), plain_forward():
                    clip = torch.from_numpy(transform(clip)).to(device)
                    rows.append(model.base_model(clip).pooler_output.cpu())
            out["features"] = torch.cat(rows)

    elif variant == "fast":
        extractor = FeatureExtractor(model, clip_len=16, stride=4, layer="pooled", crops="center", device=device)

        def step():
            out["features"] = torch.from_numpy(extractor(video)[0])

    else:
        raise ValueError(f"unknown video-features variant {variant!r}")
    return step, lambda: {"features": out["features"]}


def build_train_clips(videos: list[str], backend: str):
    """16 training clips through ``hf_i3d.data`` (``bench_data_pipeline._ours``) with the ``backend`` decoder."""
    from bench_data_pipeline import _ours, clips_step

    return clips_step(lambda: _ours(videos, backend))


def build_train_step(model: torch.nn.Module, pixel_values: torch.Tensor, labels: torch.Tensor, variant: str):
    model.train()
    precision = contextlib.nullcontext()
    if variant == "eager":
        optimizer = torch.optim.SGD(model.parameters(), **SGD_ARGS)
    elif variant == "fast":  # torch's fused SGD kernel (the example's Trainer uses it): the same arithmetic
        optimizer = torch.optim.SGD(model.parameters(), **SGD_ARGS, fused=True)
    elif variant == "fast_cl":  # fused SGD + channels-last 3D: the example's CPU default in sessions 7-8
        model.to(memory_format=torch.channels_last_3d)
        optimizer = torch.optim.SGD(model.parameters(), **SGD_ARGS, fused=True)
    elif variant in ("fast_cpu", "fast_cpu_bf16"):  # hf_i3d.cpu_training, the example's CPU default (session 9)
        from hf_i3d.cpu_training import ChannelsLastSGD, optimize_for_cpu_training

        optimize_for_cpu_training(model)
        optimizer = ChannelsLastSGD(model.parameters(), **SGD_ARGS, fused=True)
        if variant == "fast_cpu_bf16":  # with the example's --bf16: the forward and loss under CPU autocast
            precision = torch.autocast("cpu", dtype=torch.bfloat16)
    elif variant == "compiled":  # + torch.compile of the model (forward and backward), first step compiles
        optimizer = torch.optim.SGD(model.parameters(), **SGD_ARGS, fused=True)
        model.compile()
    else:
        raise ValueError(f"unknown train-step variant {variant!r}")
    first = {}

    def step():
        if not first:
            torch.manual_seed(0)  # the same dropout mask as the reference's first step
        with precision:
            loss = model(pixel_values, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if not first:
            first["loss"] = loss.detach()
            first["stem_weight"] = model.i3d.stem.conv.conv.weight.detach().clone()
            first["classifier_weight"] = model.classifier.weight.detach().clone()

    return step, lambda: first


if __name__ == "__main__":
    serve(build, {"torch": str(torch.__version__), "side": "hf_i3d"})
