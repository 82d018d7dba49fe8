"""hf_i3d.features / ``hf-i3d extract-features``: window features of whole videos.

Every window's feature must be the model run on that window built by hand (frames decoded by ``read_video``, the same
``ClipTransform`` arithmetic, the plain model) to 1e-4, whatever the batching; the window table must list the windows
a person would write down; the command must resume, skip bad videos and never leave half-written files.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from _video_utils import write_garbage_video, write_video

from hf_i3d import (
    I3DConfig,
    I3DForVideoClassification,
    InceptionI3DConfig,
    InceptionI3DForVideoClassification,
)
from hf_i3d.cli import main
from hf_i3d.decoding import read_video
from hf_i3d.features import (
    FeatureExtractor,
    ViewMaker,
    _FrameBuffer,
    extract_features,
    plan_windows,
    resample_nearest,
)
from hf_i3d.inference import optimize_for_inference, plain_forward
from hf_i3d.transforms import ClipTransform, normalization_lut
from hf_i3d.window_sharing import SharedStemWindows

TOL = 1e-4
SHORT, CROP = 40, 32  # the tiny ResNet's data path: short side 40, 32x32 crops of 64x48 frames


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models run fastest on one thread (and the machine is shared)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def resnet() -> I3DForVideoClassification:
    torch.manual_seed(0)
    model = I3DForVideoClassification(I3DConfig(base_channels=4, num_labels=5, image_size=CROP, num_frames=8))
    with torch.no_grad():  # BatchNorm statistics far from identity, so a folding mistake would show
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm3d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.2, 0.2)
    return model.eval()


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> dict[str, str]:
    folder = tmp_path_factory.mktemp("feature_videos")
    paths = {}
    for name, frames in (("a", 30), ("b", 21), ("short", 5)):
        paths[name] = str(folder / f"{name}.mp4")
        write_video(paths[name], frames, fps=25)
    return paths


def hand_built(model, frames: np.ndarray, first: int, last: int, clip_len: int, transform, layer="pooled"):
    """The plain model on one window made by hand: frames first..last, the last repeated up to clip_len."""
    indices = list(range(first, last + 1))
    indices += [last] * (clip_len - len(indices))
    views = torch.from_numpy(transform(frames[indices]))  # (V, T, 3, h, w)
    with torch.no_grad(), plain_forward():
        if layer == "pooled":
            return model.base_model(views).pooler_output.numpy()
        return model(views).logits.numpy()


# ------------------------------------------------------------------------------------------------ the features
@pytest.mark.parametrize("batch_size", [1, 3, 16])
def test_every_window_equals_the_model_on_the_hand_built_window(resnet, videos, batch_size):
    features, windows = extract_features(
        resnet, videos["a"], clip_len=8, stride=3, short_side=SHORT, crop_size=CROP, batch_size=batch_size
    )
    frames = read_video(videos["a"], list(range(30)))
    transform = ClipTransform(mode="val", short_side=SHORT, crop_size=CROP)
    assert features.shape == (9, resnet.config.hidden_size) and features.dtype == np.float32
    for row, (first, last) in enumerate(zip(windows.first_frame, windows.last_frame)):
        expected = hand_built(resnet, frames, first, last, 8, transform)[0]
        np.testing.assert_allclose(features[row], expected, atol=TOL, rtol=0)


def test_decoders_agree_and_decoded_frames_are_accepted(resnet, videos):
    kwargs = dict(clip_len=8, stride=5, short_side=SHORT, crop_size=CROP)
    pyav, pyav_windows = extract_features(resnet, videos["b"], **kwargs)
    decord, decord_windows = extract_features(resnet, videos["b"], video_backend="decord", **kwargs)
    codec, codec_windows = extract_features(resnet, videos["b"], video_backend="torchcodec", **kwargs)
    frames, _ = extract_features(resnet, read_video(videos["b"], list(range(21))), video_fps=25, **kwargs)
    np.testing.assert_array_equal(pyav, decord)
    np.testing.assert_array_equal(pyav, codec)  # the same frames, the same features
    np.testing.assert_array_equal(pyav, frames)
    np.testing.assert_allclose(decord_windows.end, pyav_windows.end, atol=1e-6)
    assert codec_windows.to_dict() == pyav_windows.to_dict()  # torchcodec's times are PyAV's exactly


def test_one_extractor_for_videos_of_different_sizes(resnet, videos, tmp_path):
    portrait = tmp_path / "portrait.mp4"
    write_video(portrait, 12, width=48, height=64)
    extractor = FeatureExtractor(
        resnet, clip_len=8, stride=4, short_side=SHORT, crop_size=CROP, crops="three"
    )
    first, _ = extractor(videos["b"])
    second, _ = extractor(portrait)
    alone, _ = extract_features(
        resnet, portrait, clip_len=8, stride=4, short_side=SHORT, crop_size=CROP, crops="three"
    )
    np.testing.assert_array_equal(second, alone)
    assert first.shape == (5, 3, 128) and second.shape == (2, 3, 128)


def test_logits_and_three_crops_equal_the_hand_built_windows(resnet, videos):
    features, windows = extract_features(
        resnet, videos["b"], clip_len=8, stride=8, layer="logits", crops="three", crop_size=CROP, batch_size=4
    )
    frames = read_video(videos["b"], list(range(21)))
    # 'three': short side resized to the crop size, ThreeCrop(crop) left, right, middle
    transform = ClipTransform(mode="test", short_side=CROP, test_crop_size=CROP, num_crops=3)
    assert features.shape == (3, 3, 5)
    for row, (first, last) in enumerate(zip(windows.first_frame, windows.last_frame)):
        expected = hand_built(resnet, frames, first, last, 8, transform, layer="logits")
        np.testing.assert_allclose(features[row], expected, atol=TOL, rtol=0)


def test_inception_pooled_equals_the_hand_built_windows(tmp_path):
    """The Inception I3D: 16-frame windows leave one Mixed_5c time step after its (2, 7, 7) pool."""
    torch.manual_seed(1)
    narrow = {name: [8, 8, 8, 8, 8, 8] for name in InceptionI3DConfig().mixed_channels}
    model = InceptionI3DForVideoClassification(
        InceptionI3DConfig(num_labels=4, mixed_channels=narrow, num_frames=16, image_size=193)
    ).eval()
    video = tmp_path / "v.mp4"
    write_video(video, 18, fps=25)
    frames = read_video(video, list(range(18)))
    transform = ClipTransform(mode="val", short_side=200, crop_size=193, normalization="inception")
    features, windows = extract_features(model, video, clip_len=16, stride=8, short_side=200)
    # 18 frames: 0..15, then 8..17 padded with six copies of frame 17
    assert windows.first_frame.tolist() == [0, 8] and windows.padded_frames.tolist() == [0, 6]
    assert features.shape == (2, 8 * 4)  # hidden size: the four Mixed_5c branches
    for row in range(2):
        expected = hand_built(
            model, frames, windows.first_frame[row], windows.last_frame[row], 16, transform
        )[0]
        np.testing.assert_allclose(features[row], expected, atol=TOL, rtol=0)
    with pytest.raises(ValueError, match="at least 9 frames"):
        FeatureExtractor(model, clip_len=8)


def narrow_inception(num_labels: int = 4) -> InceptionI3DForVideoClassification:
    """A narrow Inception I3D (the stem at full width) whose BatchNorm statistics are those of random clips, so that
    every layer's output varies with the input (with made-up statistics a narrow net's Mixed_5c is nearly constant,
    and a wrong stem frame would not show)."""
    torch.manual_seed(2)
    narrow = {name: [8, 8, 8, 8, 8, 8] for name in InceptionI3DConfig().mixed_channels}
    model = InceptionI3DForVideoClassification(
        InceptionI3DConfig(num_labels=num_labels, mixed_channels=narrow, num_frames=16, image_size=193)
    )
    norms = [module for module in model.modules() if isinstance(module, torch.nn.BatchNorm3d)]
    for module in norms:
        module.momentum = None  # a cumulative average: one training-mode pass sets the batch's statistics
    with torch.no_grad():
        model.train()
        hidden = torch.rand(4, 3, 16, 48, 48) * 2 - 1
        for name in model.base_model.endpoint_names:  # the layers alone: no size check
            hidden = getattr(model.base_model, name.lower())(hidden)
        for module in norms:
            module.running_var.mul_(1.5)  # damped a little: the output scale does not grow layer after layer
            module.bias.uniform_(-0.1, 0.1)
    return model.eval()


@pytest.mark.parametrize(
    ("clip_len", "stride", "num_windows"),
    [(16, 4, 5), (16, 2, 4), (16, 3, 4), (15, 4, 3), (20, 6, 3), (9, 1, 6), (16, 8, 3)],
)
def test_shared_stem_windows_equal_each_window_run_alone(clip_len, stride, num_windows):
    """Every window of a run through ``window_sharing.SharedStemWindows`` (shared sums, corrections at the windows'
    edges) equals the plain model's layers on that window alone: odd strides (every stem position), odd and long
    windows (other SAME padding), two views; small frames, so Mixed_5c is compared (the pooler needs 224 pixels)."""
    model = narrow_inception()
    shared = SharedStemWindows(optimize_for_inference(model), clip_len, stride)
    torch.manual_seed(3)
    run = torch.rand(2, (num_windows - 1) * stride + clip_len, 3, 36, 44) * 2 - 1
    with torch.inference_mode():
        got = shared.last_hidden_state(run, num_windows)
        base = model.base_model
        for w in range(num_windows):
            hidden = run[:, w * stride : w * stride + clip_len].permute(0, 2, 1, 3, 4)
            for name in base.endpoint_names:
                hidden = getattr(base, name.lower())(hidden)
            assert got.shape[1:] == hidden.shape[1:]
            scale = max(1.0, hidden.abs().max().item())
            np.testing.assert_allclose(got[w * 2 : w * 2 + 2], hidden, atol=TOL * scale, rtol=0)


def test_shared_stem_computes_a_third_of_the_stem_at_16_every_4():
    """At 16-frame windows every 4 frames (16 per batch) the shared sums and corrections are 356 of the 896
    single-frame stem taps the windows would compute alone; non-overlapping windows do not share."""
    shared = SharedStemWindows(optimize_for_inference(narrow_inception()), 16, 4)
    plan = shared.plan(16)
    assert (plan.grid_size, len(plan.key_grid), plan.shared_cost, plan.direct_cost) == (38, 83, 356, 896)
    assert not shared.worthwhile(1)
    assert not SharedStemWindows(shared.model, 16, 12).worthwhile(16)


def test_inception_overlapping_windows_share_the_stem_and_equal_the_hand_built_windows(tmp_path, monkeypatch):
    """``extract_features`` at 16/4 runs the full windows of a batch through the shared stem (the padded last one
    as a clip) and every feature is the plain model on the window built by hand; logits too."""
    model = narrow_inception()
    video = tmp_path / "v.mp4"
    write_video(video, 26, fps=25)
    frames = read_video(video, list(range(26)))
    transform = ClipTransform(mode="val", short_side=200, crop_size=193, normalization="inception")
    runs = []
    original = SharedStemWindows.features

    def counted(self, run, num_windows, layer):
        runs.append(num_windows)
        return original(self, run, num_windows, layer)

    monkeypatch.setattr(SharedStemWindows, "features", counted)
    for layer in ("pooled", "logits"):
        features, windows = extract_features(model, video, clip_len=16, stride=4, short_side=200, layer=layer)
        assert windows.first_frame.tolist() == [0, 4, 8, 12]
        assert windows.padded_frames.tolist() == [0, 0, 0, 2]
        for row in range(4):
            expected = hand_built(
                model, frames, windows.first_frame[row], windows.last_frame[row], 16, transform, layer
            )[0]
            np.testing.assert_allclose(features[row], expected, atol=TOL, rtol=0)
    assert runs == [3, 3]


def test_ten_crops_are_mmaction2s_ten_distinct_views_in_order(resnet):
    rng = np.random.RandomState(0)
    frames = rng.randint(0, 256, size=(8, 48, 64, 3), dtype=np.uint8)
    views = ViewMaker("ten", short_side=48, crop_size=CROP)(frames)  # no resize: 64x48 keeps short side 48
    lut = normalization_lut("imagenet")
    # mmaction2 TenCrop: steps (64-32)//4 = 8 and (48-32)//4 = 4; per offset the crop, then np.flip(crop, axis=1)
    offsets = [(0, 0), (32, 0), (0, 16), (32, 16), (16, 8)]
    expected = []
    for x, y in offsets:
        crop = frames[:, y : y + CROP, x : x + CROP]
        for image in (crop, np.flip(crop, axis=2)):
            expected.append(np.stack([lut[c][image[..., c]] for c in range(3)], axis=1))  # (T, 3, h, w)
    np.testing.assert_array_equal(views, np.stack(expected))
    flat = views.reshape(10, -1)
    assert all(not np.array_equal(flat[i], flat[j]) for i in range(10) for j in range(i))

    features, windows = extract_features(
        resnet, frames, clip_len=8, stride=8, crops="ten", short_side=48, crop_size=CROP, video_fps=25
    )
    assert features.shape == (1, 10, resnet.config.hidden_size)
    with torch.no_grad(), plain_forward():
        expected_features = resnet.base_model(torch.from_numpy(views)).pooler_output.numpy()
    np.testing.assert_allclose(features[0], expected_features, atol=TOL, rtol=0)


# ------------------------------------------------------------------------------------------------ the window table
@pytest.mark.parametrize(
    ("num_frames", "clip_len", "stride", "last_window", "starts"),
    [
        (30, 8, 3, "pad", [0, 3, 6, 9, 12, 15, 18, 21, 24]),  # 24..29 + 2 copies of frame 29
        (30, 8, 3, "drop", [0, 3, 6, 9, 12, 15, 18, 21]),
        (32, 16, 16, "pad", [0, 16]),  # an exact fit: nothing partial
        (40, 16, 16, "pad", [0, 16, 32]),
        (40, 16, 16, "drop", [0, 16]),
        (16, 16, 4, "pad", [0]),  # 4..15 would be partial but covers nothing new
        (18, 16, 4, "pad", [0, 4]),
        (5, 16, 4, "pad", [0]),  # shorter than one window
        (5, 16, 4, "drop", []),
        (25, 4, 10, "pad", [0, 10, 20]),  # stride > clip_len: frames 24 is in no window, 30 lies past the end
        (250, 16, 4, "pad", list(range(0, 235, 4)) + [236]),
    ],
)
def test_plan_windows(num_frames, clip_len, stride, last_window, starts):
    assert plan_windows(num_frames, clip_len, stride, last_window).tolist() == starts


def test_window_table_frames_and_times(resnet, videos):
    _, windows = extract_features(resnet, videos["a"], clip_len=8, stride=3, short_side=SHORT, crop_size=CROP)
    assert len(windows) == 9 and windows.num_frames == windows.num_source_frames == 30
    assert windows.first_frame.tolist() == [0, 3, 6, 9, 12, 15, 18, 21, 24]
    assert windows.last_frame.tolist() == [7, 10, 13, 16, 19, 22, 25, 28, 29]
    assert windows.padded_frames.tolist() == [0] * 8 + [2]
    np.testing.assert_allclose(windows.start, windows.first_frame / 25, atol=1e-6)
    np.testing.assert_allclose(windows.end, (windows.last_frame + 1) / 25, atol=1e-6)
    assert windows.end[-1] == pytest.approx(30 / 25)  # the padded window records the video's true end
    assert windows.fps == windows.source_fps == 25

    _, dropped = extract_features(
        resnet, videos["a"], clip_len=8, stride=3, short_side=SHORT, crop_size=CROP, last_window="drop"
    )
    assert dropped.first_frame.tolist() == [0, 3, 6, 9, 12, 15, 18, 21]
    assert dropped.to_dict()["last_window"] == "drop"


def test_fps_resampling_takes_the_nearest_frame(resnet, videos):
    # 30 frames at 25 fps (1.2 s) at 10 fps: ticks 0, 0.1, ... 1.1 -> nearest frames, ties (2.5, 7.5, ...) earlier
    features, windows = extract_features(
        resnet, videos["a"], clip_len=8, stride=4, fps=10, short_side=SHORT, crop_size=CROP
    )
    sources = [0, 2, 5, 7, 10, 12, 15, 17, 20, 22, 25, 27]
    assert windows.num_frames == 12 and windows.num_source_frames == 30 and windows.fps == 10
    assert windows.first_frame.tolist() == [0, 4] and windows.last_frame.tolist() == [7, 11]
    assert windows.source_first_frame.tolist() == [0, 10]
    assert windows.source_last_frame.tolist() == [17, 27]
    np.testing.assert_allclose(windows.start, [0.0, 0.4], atol=1e-9)
    np.testing.assert_allclose(windows.end, [0.8, 1.2], atol=1e-9)
    frames = read_video(videos["a"], list(range(30)))
    transform = ClipTransform(mode="val", short_side=SHORT, crop_size=CROP)
    for row in range(2):
        clip = torch.from_numpy(transform(frames[sources[4 * row : 4 * row + 8]]))
        with torch.no_grad(), plain_forward():
            expected = resnet.base_model(clip).pooler_output[0].numpy()
        np.testing.assert_allclose(features[row], expected, atol=TOL, rtol=0)


def test_resample_nearest_up_and_down():
    down = [s for _, _, s, _ in resample_nearest(((i, i / 25, i) for i in range(30)), 10, 25)]
    assert down == [0, 2, 5, 7, 10, 12, 15, 17, 20, 22, 25, 27]
    # 3 frames at 10 fps (0.3 s) at 25 fps: ticks 0 .. 0.28
    up = [(k, s) for k, _, s, _ in resample_nearest(((i, i / 10, i) for i in range(3)), 25, 10)]
    assert up == [(0, 0), (1, 0), (2, 1), (3, 1), (4, 2), (5, 2), (6, 2), (7, 2)]


def test_video_shorter_than_one_window(resnet, videos):
    features, windows = extract_features(resnet, videos["short"], clip_len=8, stride=4, crop_size=CROP)
    assert features.shape == (1, resnet.config.hidden_size)
    assert (windows.first_frame.tolist(), windows.last_frame.tolist(), windows.padded_frames.tolist()) == (
        [0],
        [4],
        [3],
    )
    assert windows.end[0] == pytest.approx(5 / 25)
    features, windows = extract_features(
        resnet, videos["short"], clip_len=8, stride=4, crop_size=CROP, last_window="drop", crops="ten"
    )
    assert features.shape == (0, 10, resnet.config.hidden_size) and len(windows) == 0


def test_streaming_memory_and_each_frame_transformed_once(resnet, videos, monkeypatch):
    """The frame buffer's size does not depend on the video's length, and no frame is transformed twice."""
    peaks = []
    original = _FrameBuffer.append

    def append(self, views, info):
        original(self, views, info)
        peaks[-1] = max(peaks[-1], self.data.shape[1], self.size)

    transformed = []
    make_views = ViewMaker.__call__

    def counted(self, frames):
        transformed.append(len(frames))
        return make_views(self, frames)

    monkeypatch.setattr(_FrameBuffer, "append", append)
    monkeypatch.setattr(ViewMaker, "__call__", counted)
    extractor = FeatureExtractor(resnet, clip_len=8, stride=2, short_side=SHORT, crop_size=CROP, batch_size=2)
    for name, length in (("b", 21), ("a", 30)):
        peaks.append(0)
        transformed.clear()
        extractor(videos[name])
        assert sum(transformed) == length
    assert peaks[0] == peaks[1] <= 8 + 2 + 8


# ------------------------------------------------------------------------------------------------ the command
@pytest.fixture(scope="module")
def model_dir(resnet, tmp_path_factory) -> str:
    folder = tmp_path_factory.mktemp("tiny_model")
    resnet.save_pretrained(folder)
    return str(folder)


def run_cli(*args: str) -> int:
    return main(["extract-features", "--quiet", *args])


def test_cli_writes_features_skips_bad_videos_and_resumes(model_dir, videos, tmp_path, capsys):
    corrupt = tmp_path / "broken.mp4"
    write_garbage_video(corrupt)
    listing = tmp_path / "list.txt"
    listing.write_text(f"{videos['a']}\n\n# a comment\n{corrupt}\n{videos['b']}\n")
    out = tmp_path / "out"
    args = (
        "--list",
        str(listing),
        "--output",
        str(out),
        "--model",
        model_dir,
        "--clip-len",
        "8",
        "--stride",
        "3",
    )
    assert run_cli(*args) == 1
    err = capsys.readouterr().err
    assert f"error: {listing}:4: {corrupt}: is not a readable video" in err and "(skipped)" in err
    assert "2 videos written, 0 already done, 1 failed" in err
    assert sorted(os.listdir(out)) == ["a.json", "a.npy", "b.json", "b.npy"]

    record = json.loads((out / "a.json").read_text())
    features = np.load(out / "a.npy")
    assert (
        features.shape == tuple(record["shape"]) == (9, 128)
    )  # hidden size of the tiny R50: 4 * 8 * 4 channels
    assert record["model"] == model_dir and record["layer"] == "pooled" and record["crops"] == "center"
    assert (record["clip_len"], record["stride"], record["fps"], record["last_window"]) == (8, 3, None, "pad")
    assert record["num_frames"] == 30 and record["decoder"].startswith("pyav ")
    assert record["windows"]["first_frame"] == [0, 3, 6, 9, 12, 15, 18, 21, 24]
    assert record["windows"]["padded_frames"][-1] == 2
    assert record["windows"]["end"][-1] == pytest.approx(1.2)
    # the library, on the same model and settings (the CLI's crop is the config's image size, short side 256)
    expected, _ = extract_features(resnet_from(model_dir), videos["a"], clip_len=8, stride=3)
    np.testing.assert_allclose(features, expected, atol=1e-6, rtol=0)

    before = os.stat(out / "a.npy").st_mtime_ns
    assert run_cli(*args) == 1
    assert "0 videos written, 2 already done, 1 failed" in capsys.readouterr().err
    assert os.stat(out / "a.npy").st_mtime_ns == before
    assert run_cli(videos["a"], "--output", str(out), "--model", model_dir, "--overwrite") == 0
    assert os.stat(out / "a.npy").st_mtime_ns != before
    assert json.loads((out / "a.json").read_text())["stride"] == 4  # the defaults, 16/4, this time


def test_cli_list_takes_mmaction_lines_and_names_missing_ones_by_line(
    model_dir, videos, tmp_path, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)
    shutil.copy(videos["short"], tmp_path / "my clip.mp4")
    (tmp_path / "frames").mkdir()
    (tmp_path / "lists").mkdir()
    listing = "lists/train.txt"  # relative paths inside are relative to the current folder, not to lists/
    lines = [f"{videos['a']} 0", "my clip.mp4 3", "# a comment", "gone.mp4 1", "frames 300 5", ""]
    (tmp_path / listing).write_text("\n".join(lines))
    common = ("--output", "out", "--clip-len", "8", "--stride", "8")
    assert run_cli("--list", listing, *common, "--model", model_dir) == 1
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("hf-i3d") or "videos" in line]
    assert err == [
        "hf-i3d extract-features: error: lists/train.txt:4: gone.mp4: no such file (skipped)",
        "hf-i3d extract-features: error: lists/train.txt:5: frames: not a file (skipped)",
        "2 videos written, 0 already done, 2 failed -> out",
    ]
    assert sorted(os.listdir("out")) == ["a.json", "a.npy", "my clip.json", "my clip.npy"]
    assert json.loads(Path("out/my clip.json").read_text())["video"] == "my clip.mp4"
    assert np.load("out/a.npy").shape == (4, 128)  # 30 frames, 8/8: 0, 8, 16 and the padded 24..29

    # missing videos are told before the model loads: none is loaded when nothing is left to do
    (tmp_path / "missing.txt").write_text("gone.mp4 1\n")
    assert run_cli("--list", "missing.txt", "gone2.mp4", *common, "--model", "./no/such/model") == 1
    assert capsys.readouterr().err.splitlines() == [
        "hf-i3d extract-features: error: gone2.mp4: no such file (skipped)",
        "hf-i3d extract-features: error: missing.txt:1: gone.mp4: no such file (skipped)",
        "0 videos written, 0 already done, 2 failed -> out",
    ]
    assert run_cli("--list", "nothere.txt", *common, "--model", model_dir) == 1
    assert capsys.readouterr().err.splitlines() == [
        "hf-i3d extract-features: error: --list nothere.txt: No such file or directory"
    ]


def resnet_from(folder: str) -> I3DForVideoClassification:
    return I3DForVideoClassification.from_pretrained(folder).eval()


def test_cli_kill_leaves_no_partial_npy_and_resumes(model_dir, videos, tmp_path, monkeypatch, capsys):
    out = tmp_path / "out"
    args = (videos["a"], videos["b"], "--output", str(out), "--model", model_dir, "--clip-len", "8")
    real_save, calls = np.save, []

    def killed_on_second_video(handle, array, **kwargs):
        calls.append(1)
        if len(calls) == 2:  # half the bytes of b.npy are out when the process is stopped
            handle.write(b"\x93NUMPY partial")
            raise KeyboardInterrupt
        real_save(handle, array, **kwargs)

    monkeypatch.setattr(np, "save", killed_on_second_video)
    assert run_cli(*args) == 130  # the CLI turns Ctrl-C into one line and exit code 130
    assert "hf-i3d extract-features: interrupted" in capsys.readouterr().err
    assert sorted(os.listdir(out)) == ["a.json", "a.npy"]  # no b.npy, no temporary file
    monkeypatch.setattr(np, "save", real_save)

    # a SIGKILL leaves the hidden temporary file behind; the rerun removes it and does only b
    stale = out / ".b.npy.12345.partial"
    stale.write_bytes(b"\x93NUMPY partial")
    before = os.stat(out / "a.npy").st_mtime_ns
    assert run_cli(*args) == 0
    assert "1 videos written, 1 already done, 0 failed" in capsys.readouterr().err
    assert sorted(os.listdir(out)) == ["a.json", "a.npy", "b.json", "b.npy"]
    assert os.stat(out / "a.npy").st_mtime_ns == before
    # 21 frames, 8/4: full windows 0, 4, 8, 12 (12..19), then 16..20 padded
    assert np.load(out / "b.npy").shape == (5, 128)


def test_cli_processes_split_the_list(model_dir, videos, tmp_path, monkeypatch, capsys):
    out = tmp_path / "out"
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert run_cli(videos["a"], videos["b"], videos["short"], "--output", str(out), "--model", model_dir) == 0
    assert sorted(os.listdir(out)) == ["b.json", "b.npy"]
    assert "(process 1 of 2)" in capsys.readouterr().err


def test_cli_does_a_video_named_twice_once(model_dir, videos, tmp_path, capsys):
    out = tmp_path / "out"
    listing = tmp_path / "list.txt"
    listing.write_text(f"{videos['a']} 0\n{videos['a']} 1\n")
    args = ("--list", str(listing), "--output", str(out), "--model", model_dir, "--clip-len", "8", "--stride", "8")
    assert run_cli(videos["a"], *args) == 0
    captured = capsys.readouterr()
    assert "hf-i3d extract-features: 2 repeated entries skipped (each video is done once)" in captured.err
    assert "1 videos written, 0 already done, 0 failed" in captured.err  # run_cli runs with --quiet
    assert "Loading weights" not in captured.err + captured.out  # --quiet: not even transformers' bar
    assert sorted(os.listdir(out)) == ["a.json", "a.npy"]


def test_cli_presets_and_errors(model_dir, videos, tmp_path, capsys):
    out = tmp_path / "out"
    assert run_cli(videos["a"], "--output", str(out), "--model", model_dir, "--preset", "rtfm") == 0
    record = json.loads((out / "a.json").read_text())
    assert (record["preset"], record["clip_len"], record["stride"], record["crops"]) == (
        "rtfm",
        16,
        16,
        "ten",
    )
    assert np.load(out / "a.npy").shape == (2, 10, 128)  # 30 frames: 0..15 and the padded 16..29
    assert run_cli("--output", str(out), "--model", model_dir) == 1
    assert "no videos" in capsys.readouterr().err
    other = tmp_path / "x" / "a.mp4"
    other.parent.mkdir()
    other.write_bytes(b"")
    assert run_cli(videos["a"], str(other), "--output", str(out), "--model", model_dir) == 1
    assert "would both be written as a.npy" in capsys.readouterr().err


def test_cli_backend_torchcodec_and_a_missing_decoder(model_dir, videos, tmp_path, capsys, monkeypatch):
    from importlib.metadata import version

    out = tmp_path / "out"
    common = ("--output", str(out), "--model", model_dir, "--clip-len", "8", "--stride", "3")
    assert run_cli(videos["a"], *common, "--backend", "torchcodec") == 0
    record = json.loads((out / "a.json").read_text())
    assert record["decoder"] == f"torchcodec {version('torchcodec')} (sequential)"
    model = resnet_from(model_dir)
    expected, _ = extract_features(model, videos["a"], clip_len=8, stride=3)  # PyAV
    np.testing.assert_allclose(np.load(out / "a.npy"), expected, atol=1e-6, rtol=0)
    capsys.readouterr()
    monkeypatch.setitem(sys.modules, "torchcodec", None)  # not installed
    assert run_cli(videos["b"], *common, "--backend", "torchcodec") == 1
    assert capsys.readouterr().err.strip() == (
        "hf-i3d extract-features: error: decoding with the 'torchcodec' video backend needs the 'torchcodec' "
        'package: pip install "hf_i3d[video]" (or pip install torchcodec)'
    )
    assert not (out / "b.npy").exists()
    with pytest.raises(ImportError, match="^feature extraction with the 'torchcodec' video backend needs"):
        FeatureExtractor(model, video_backend="torchcodec")
    with pytest.raises(ValueError, match=r"^video backend must be one of \('pyav', 'decord', 'torchcodec'\)"):
        FeatureExtractor(model, video_backend="opencv")
    with pytest.raises(ValueError, match=r"^crops must be one of \('center', 'three', 'ten'\), got 'five'$"):
        FeatureExtractor(model, crops="five")
