"""hf-i3d build-file-list (mmaction2 build_file_list: class folders -> sorted ids, seeded shuffle, level 1 from a
Something-Something csv) and hf-i3d extract-frames (every frame as img_00001.jpg, resized like denseflow,
resumable, parallel, bad videos reported)."""

import random
import re

import cv2
import numpy as np
import pytest
from _video_utils import (
    frame_indices_of,
    write_class_tree,
    write_frame_folder,
    write_garbage_video,
    write_video,
)

from hf_i3d.annotations import AnnotationError
from hf_i3d.cli import main
from hf_i3d.filelists import build_file_list, extract_frames, read_annotation_csv

ITEMS = {"zumba": {"c1": 6, "c2": 7}, "abseiling": {"a1": 5}, "air_drumming": {"b1": 8, "b2": 9}}


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("tree")
    write_class_tree(root, ITEMS, width=32, height=24)
    (root / "rawframes" / "zumba" / "empty").mkdir()  # a frame folder without frames
    (root / "videos" / "zumba" / "notes.txt").write_text("not a video")
    return root


def test_level2_lists_sorted_class_ids(tree):
    videos = build_file_list(tree / "videos", "videos", 2)
    assert videos.classes == ["abseiling", "air_drumming", "zumba"]
    assert videos.lines == [
        "abseiling/a1.mp4 0",
        "air_drumming/b1.mp4 1",
        "air_drumming/b2.mp4 1",
        "zumba/c1.mp4 2",
        "zumba/c2.mp4 2",
    ]
    frames = build_file_list(tree / "rawframes", "rawframes", 2)
    assert frames.lines == ["abseiling/a1 5 0", "air_drumming/b1 8 1", "air_drumming/b2 9 1", "zumba/c1 6 2",
                            "zumba/c2 7 2"]  # fmt: skip
    assert frames.skipped == [f"{tree}/rawframes/zumba/empty: no frames named img_*"]
    shuffled = build_file_list(tree / "rawframes", "rawframes", 2, shuffle=True, seed=3)
    expected = list(frames.lines)
    random.seed(3)  # what the mmaction2 tool does: random.seed(seed); random.shuffle(lines)
    random.shuffle(expected)
    assert shuffled.lines == expected != frames.lines


def test_level1_from_a_something_something_csv(tmp_path):
    for name, n in (("100218", 4), ("48032", 6)):
        write_frame_folder(tmp_path / "frames" / name, n, 32, 24, filename_tmpl="{:05}.jpg")
    labels = tmp_path / "something-something-v1-labels.csv"
    labels.write_text("Holding something\nPutting something, something and something on the table\n")
    annotations = tmp_path / "something-something-v1-train.csv"
    annotations.write_text(
        "48032;Putting something, something and something on the table\n100218;Holding something\n"
        "99;Holding something\n"
    )
    mapping = read_annotation_csv(annotations, labels)
    assert mapping == {"48032": 1, "100218": 0, "99": 0}
    file_list = build_file_list(tmp_path / "frames", "rawframes", 1, rgb_prefix="", annotations=mapping)
    assert file_list.lines == ["48032 6 1", "100218 4 0"]
    assert file_list.skipped == [f"{tmp_path}/frames/99: annotated but not found"]
    bad = tmp_path / "bad.csv"
    bad.write_text("1;Holding something\n2;Juggling\n")
    with pytest.raises(
        AnnotationError, match=re.escape(f"{bad}:2: label 'Juggling' is not one of the 2 label names")
    ):
        read_annotation_csv(bad, labels)


def test_build_file_list_command(tree, tmp_path, capsys):
    out, classes = tmp_path / "lists" / "train.txt", tmp_path / "classes.txt"
    code = main(["build-file-list", str(tree / "videos"), "--format", "videos", "--out", str(out),
                 "--classes-out", str(classes)])  # fmt: skip
    assert code == 0
    assert out.read_text().splitlines()[0] == "abseiling/a1.mp4 0"
    assert classes.read_text() == "abseiling\nair_drumming\nzumba\n"
    assert f"Wrote 5 lines (3 classes) -> {out}" in capsys.readouterr().out
    assert (
        main(
            ["build-file-list", str(tree / "videos"), "--format", "videos", "--level", "1", "--out", str(out)]
        )
        == 1
    )
    assert capsys.readouterr().err == (
        "hf-i3d build-file-list: error: level 1 needs annotations (item id -> label id), e.g. a Something-Something "
        "csv\n"
    )


# -- extract-frames ----------------------------------------------------------------------------------------------
@pytest.fixture()
def videos(tmp_path):
    root = tmp_path / "videos"
    (root / "b").mkdir(parents=True)
    write_video(root / "a.mp4", 12, 64, 48)
    write_video(root / "b" / "c.mp4", 10, 64, 48, codec="mpeg4")
    return root


def test_extract_frames_writes_every_frame(videos, tmp_path):
    out = tmp_path / "frames"
    report = extract_frames(videos, out, progress=False)
    assert report.written == [str(out / "a"), str(out / "b" / "c")] and not report.failed
    names = sorted(p.name for p in (out / "a").iterdir())
    assert names == [f"img_{i:05}.jpg" for i in range(1, 13)]
    frames = np.stack([cv2.cvtColor(cv2.imread(str(out / "a" / n)), cv2.COLOR_BGR2RGB) for n in names])
    assert frames.shape == (12, 48, 64, 3)
    assert frame_indices_of(frames) == list(range(12))  # the right frames, in order, RGB kept
    # resumable: complete folders are skipped
    again = extract_frames(videos, out, progress=False)
    assert again.written == [] and again.existing == [str(out / "a"), str(out / "b" / "c")]


def test_extract_frames_resizes_like_denseflow(videos, tmp_path):
    extract_frames(videos, tmp_path / "short", short_side=32, progress=False)
    assert cv2.imread(str(tmp_path / "short" / "a" / "img_00001.jpg")).shape == (
        32,
        43,
        3,
    )  # int(64*32/48+.5)
    extract_frames(videos, tmp_path / "fixed", new_width=34, new_height=26, workers=2, progress=False)
    assert cv2.imread(str(tmp_path / "fixed" / "b" / "c" / "img_00010.jpg")).shape == (26, 34, 3)
    with pytest.raises(ValueError, match="give both new_width and new_height"):
        extract_frames(videos, tmp_path / "x", new_width=34)


def test_extract_frames_recovers_and_reports_bad_videos(videos, tmp_path, capsys):
    out = tmp_path / "frames"
    (out / ".a.tmp-999").mkdir(parents=True)  # an interrupted run's half-written folder
    (out / ".a.tmp-999" / "img_00001.jpg").write_bytes(b"")
    write_garbage_video(videos / "broken.mp4")
    code = main(["extract-frames", str(videos), str(out), "--quiet"])
    assert code == 1
    captured = capsys.readouterr()
    assert captured.err == (
        f"hf-i3d extract-frames: error: {videos / 'broken.mp4'}: Invalid data found when processing input\n"
    )
    assert "2 videos extracted, 0 already done, 1 failed" in captured.out
    assert sorted(p.name for p in out.iterdir()) == ["a", "b"]  # no temporary or half-written folder left
    assert len(list((out / "a").iterdir())) == 12
