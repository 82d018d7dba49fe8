"""ClipSampler against mmaction2's SampleFrames / DenseSampleFrames arithmetic (golden values with their source)."""

import numpy as np
import pytest

from hf_i3d.sampling import ClipSampler
from hf_i3d.zoo import get_entry


def _offsets(sampler: ClipSampler, total_frames: int, **kwargs) -> list[int]:
    return sampler(total_frames, **kwargs)[:: sampler.clip_len].tolist()


# -- test / val placement ---------------------------------------------------------------------------------------
def test_test_offsets_0x_rule():
    # mmaction2 v0.5.0 SampleFrames._get_test_clips: int(i*avg + avg/2), avg = (300-64+1)/10 = 23.7
    sampler = ClipSampler(clip_len=32, frame_interval=2, num_clips=10, mode="test")
    indices = sampler(300)
    assert indices.dtype == np.int64 and indices.shape == (320,)
    assert _offsets(sampler, 300) == [11, 35, 59, 82, 106, 130, 154, 177, 201, 225]
    assert indices[:4].tolist() == [11, 13, 15, 17]  # frames of a clip are frame_interval apart


def test_test_offsets_1x_rule():
    # mmaction2 1.x: round(i * max_offset / 9), max_offset = 300 - (31*2+1) = 237
    sampler = ClipSampler(32, 2, 10, "test", offset_rule="1.x")
    assert _offsets(sampler, 300) == [0, 26, 53, 79, 105, 132, 158, 184, 211, 237]


@pytest.mark.parametrize("rule", ["0.x", "1.x"])
def test_single_val_clip_is_centred(rule):
    # 0.x: int((300-64+1)/2) = 118; 1.x: (300-63)//2 = 118
    sampler = ClipSampler(32, 2, 1, "val", offset_rule=rule)
    assert sampler(300).tolist() == list(range(118, 182, 2))


def test_dense_test_starts():
    # DenseSampleFrames test: linspace(0, 300-64, 10, dtype=int) start positions, one 32x2 clip each
    sampler = ClipSampler(32, 2, 1, "test", sampler="dense")
    assert sampler.num_output_clips == 10
    indices = sampler(300)
    assert indices.shape == (320,)
    assert _offsets(sampler, 300) == [0, 26, 52, 78, 104, 131, 157, 183, 209, 236]


def test_dense_test_fixture_of_mmaction():
    # mmaction2 tests/test_loading.py: DenseSampleFrames(clip_len=4, num_clips=6, test_mode=True) -> 240 indices
    sampler = ClipSampler(clip_len=4, frame_interval=1, num_clips=6, mode="test", sampler="dense")
    indices = sampler(5, start_index=1)
    assert indices.shape == (240,) and sampler.num_output_clips == 60
    assert indices.min() >= 1 and indices.max() <= 5


def test_too_short_video_loops_or_repeats_last():
    # mmaction2 test_loading.py: 5 frames, clip_len 6, test mode, start_index 1
    assert ClipSampler(6, 1, 1, "test")(5, start_index=1).tolist() == [1, 2, 3, 4, 5, 1]
    assert ClipSampler(6, 1, 1, "test", out_of_bound="repeat_last")(5, start_index=1).tolist() == [
        1,
        2,
        3,
        4,
        5,
        5,
    ]
    # a 10-frame video and a 32x2 clip: every index stays inside the video
    indices = ClipSampler(32, 2, 10, "test")(10)
    assert indices.shape == (320,) and indices.min() >= 0 and indices.max() <= 9


def test_start_index_and_offset_column():
    base = ClipSampler(32, 2, 10, "test")(300)
    assert np.array_equal(ClipSampler(32, 2, 10, "test")(300, start_index=1), base + 1)
    # rawframe lists with an offset column (mmaction2 RawFrameDecode adds results['offset'] to every index)
    assert np.array_equal(ClipSampler(32, 2, 10, "test")(300, start_index=1, offset=40), base + 41)


# -- train ---------------------------------------------------------------------------------------------------------
def test_seeded_train_offsets_match_mmaction_formula():
    # SampleFrames._get_train_clips with avg = (300-64+1)//1 = 237: offset = np.random.randint(237);
    # np.random.RandomState(0).randint(237) == 172 (computed by hand with numpy), so the clip is 172, 174, ...
    sampler = ClipSampler(32, 2, 1, "train")
    assert sampler(300, rng=np.random.RandomState(0)).tolist() == list(range(172, 236, 2))
    # 3 clips of 8x8 over 300 frames: avg = (300-64+1)//3 = 79, offsets = [0, 79, 158] + randint(79, size=3);
    # RandomState(0).randint(79, size=3) == [44, 47, 64]  ->  [44, 126, 222]
    sampler = ClipSampler(8, 8, 3, "train")
    assert _offsets(sampler, 300, rng=np.random.RandomState(0)) == [44, 126, 222]


def test_seeded_train_reproduces_global_numpy_state():
    # rng=None draws from the global np.random, as mmaction2 does: RandomState(s) == np.random.seed(s)
    sampler = ClipSampler(32, 2, 1, "train")
    np.random.seed(7)
    from_global = sampler(300)
    assert np.array_equal(from_global, sampler(300, rng=np.random.RandomState(7)))


def test_train_short_video_branches():
    # N=70, 32x2, 2 clips: avg = (70-64+1)//2 = 3 > 0 -> offsets [0,3] + randint(3, size=2)
    offsets = _offsets(ClipSampler(32, 2, 2, "train"), 70, rng=np.random.RandomState(0))
    # RandomState(0).randint(3, size=2) == [0, 1]  ->  [0, 4]
    assert offsets == [0, 4]
    # N=64 with 2 clips: avg == 0 and N is not > max(2, 64) -> round(i * (64-64+1)/2) = [0, 0] (np.around: 0.5 -> 0)
    assert _offsets(ClipSampler(32, 2, 2, "train"), 64) == [0, 0]
    # N=40 < 64: zeros, then every index loops mod 40
    indices = ClipSampler(32, 2, 1, "train")(40, rng=np.random.RandomState(0))
    assert indices[:3].tolist() == [0, 2, 4] and indices[20:23].tolist() == [0, 2, 4]


def test_dense_train_start():
    # DenseSampleFrames._get_train_clips: start = randint(0, 300-64) (upper bound exclusive);
    # RandomState(0).randint(0, 236) == 172
    sampler = ClipSampler(32, 2, 1, "train", sampler="dense")
    assert sampler.num_output_clips == 1
    assert _offsets(sampler, 300, rng=np.random.RandomState(0)) == [172]
    assert _offsets(sampler, 64, rng=np.random.RandomState(0)) == [0]  # one position only


# -- construction and errors ---------------------------------------------------------------------------------------
def test_from_settings_follows_the_configs():
    r50 = get_entry("i3d-r50-kinetics400").data
    assert ClipSampler.from_settings(r50, "train") == ClipSampler(32, 2, 1, "train")
    assert ClipSampler.from_settings(r50, "val") == ClipSampler(32, 2, 1, "val")
    assert ClipSampler.from_settings(r50, "test") == ClipSampler(32, 2, 10, "test")
    dense = ClipSampler.from_settings(get_entry("i3d-r50-dense-kinetics400").data, "val")
    assert (dense.sampler, dense.num_clips, dense.num_output_clips) == ("dense", 1, 10)
    heavy = ClipSampler.from_settings(get_entry("i3d-r50-heavy").data, "test")
    assert (heavy.clip_len, heavy.frame_interval, heavy.num_clips, heavy.offset_rule) == (32, 2, 10, "1.x")
    single = ClipSampler.from_settings(r50, "test", num_clips=1)
    assert single.num_output_clips == 1


def test_errors():
    with pytest.raises(ValueError, match="cannot sample clips from a video with 0 frames"):
        ClipSampler(32, 2, 1, "test")(0)
    with pytest.raises(ValueError, match=r"mode must be one of \('train', 'val', 'test'\), got 'eval'"):
        ClipSampler(32, 2, 1, "eval")
    with pytest.raises(ValueError, match="out_of_bound must be one of"):
        ClipSampler(32, 2, 1, out_of_bound="clamp")
    with pytest.raises(ValueError, match="clip_len must be a positive int, got 0"):
        ClipSampler(0)
    with pytest.raises(ValueError, match="total_frames must be an int"):
        ClipSampler(32, 2, 1, "test")(300.0)
