"""hf_i3d.data and hf_i3d.annotations: a Kinetics-style tree (class folders, real H.264 videos and JPEG frame
folders, lists written by build_file_list) loads into the expected splits and labels; the clips hold the frames
mmaction2's samplers pick (read back from the synthetic frames' grey levels); label files of every format; every bad
input named, under on_error='raise' and 'skip'; seeded, multi-worker, iterable and distributed loading."""

import ast
import logging
import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from _video_utils import write_class_tree, write_frame_folder, write_garbage_video, write_video
from datasets.distributed import split_dataset_by_node

import hf_i3d
from hf_i3d.annotations import (
    AnnotationError,
    ListedPath,
    parse_annotation_list,
    read_label_names,
    read_path_list,
)
from hf_i3d.data import (
    ClipLoadError,
    collate_clips,
    find_clip_transform,
    load_video_dataset,
    set_clip_transform,
    set_epoch,
    skip_stats,
    to_iterable_clips,
)
from hf_i3d.filelists import build_file_list
from hf_i3d.training import ClipEpochCallback
from hf_i3d.transforms import IMAGENET_MEAN, IMAGENET_STD

CLASSES = ["abseiling", "air_drumming", "zumba"]
ITEMS = {
    "abseiling": {"a1": 30, "a2": 36},
    "air_drumming": {"b1": 40, "b2": 24},
    "zumba": {"c1": 28, "c2": 32},
}
# tiny clips: 8 frames 2 apart, frames 64x48 kept (short side 48), 48x48 crops (train from 48 or 38 multiscale)
SMALL = dict(clip_len=8, frame_interval=2, short_side=48, crop_size=48, test_crop_size=48)


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    """The tree, a list per modality and split written by build_file_list (train: items *1, val: items *2), and
    the class names file."""
    root = tmp_path_factory.mktemp("kinetics_tiny")
    write_class_tree(root, ITEMS)
    lists = {}
    for modality, fmt in (("video", "videos"), ("rawframes", "rawframes")):
        file_list = build_file_list(root / fmt, fmt, 2)
        file_list.write(root / f"all_{fmt}.txt", root / "classes.txt")
        for split, digit in (("train", "1"), ("validation", "2")):
            path = root / f"{split}_{fmt}.txt"
            path.write_text(
                "".join(f"{line}\n" for line in file_list.lines if line.split()[0][-5:].count(digit))
            )
            lists[modality, split] = path
    return SimpleNamespace(root=root, lists=lists, classes=root / "classes.txt")


def load(tree, modality, **kwargs):
    folder = tree.root / ("videos" if modality == "video" else "rawframes")
    ann_files = {split: tree.lists[modality, split] for split in ("train", "validation")}
    return load_video_dataset(folder, ann_files, modality, tree.classes, **kwargs)


def frame_indices(pixel_values: torch.Tensor) -> list[int]:
    """Synthetic frame indices of a (T, C, H, W) normalised clip: grey level 16 + 4 i of the bottom half."""
    red = (
        pixel_values[:, 0, pixel_values.shape[2] // 2 :].mean(dim=(1, 2)) * IMAGENET_STD[0] + IMAGENET_MEAN[0]
    )
    return [round((float(level) - 16) / 4) for level in red]


# -- loading ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("modality", ["video", "rawframes"])
def test_tree_loads_into_splits_and_labels(tree, modality):
    dataset = load(tree, modality)
    assert set(dataset) == {"train", "validation"}
    assert dataset["train"].features["label"].names == CLASSES  # sorted class folders -> ids
    folder = tree.root / ("videos" if modality == "video" else "rawframes")
    for split, digit in (("train", "1"), ("validation", "2")):
        rows = list(dataset[split])
        expected = {
            str(folder / name / (item + (".mp4" if modality == "video" else ""))): (CLASSES.index(name), n)
            for name, videos in ITEMS.items()
            for item, n in videos.items()
            if item.endswith(digit)
        }
        assert {row["path"]: row["label"] for row in rows} == {p: label for p, (label, _) in expected.items()}
        for row in rows:
            assert row["total_frames"] == (-1 if modality == "video" else expected[row["path"]][1])
            assert row["offset"] == 0
        assert [row["line"] for row in rows] == [1, 2, 3]
    assert dataset.skipped == {"train": [], "validation": []}


@pytest.mark.parametrize("modality", ["video", "rawframes"])
def test_val_clip_holds_the_centred_frames(tree, modality):
    # a1 has 30 frames: SampleFrames(8, 2, 1, test_mode=True) 0.x offset int((30 - 16 + 1) / 2) = 7
    dataset = set_clip_transform(load(tree, modality)["train"], mode="val", **SMALL)
    row = next(i for i, path in enumerate(dataset.with_format(None)["path"]) if "a1" in path)
    item = dataset[row]
    assert item["pixel_values"].shape == (8, 3, 48, 48) and item["pixel_values"].dtype == torch.float32
    assert frame_indices(item["pixel_values"]) == [7, 9, 11, 13, 15, 17, 19, 21]
    assert item["labels"].dtype == torch.int64 and int(item["labels"]) == 0


def test_val_transform_is_the_processors(tree):
    # the processor's single view and the dataset's val view run the same sampler and transform code
    from hf_i3d import I3DVideoProcessor

    dataset = set_clip_transform(load(tree, "video")["validation"], mode="val", backend="decord", **SMALL)
    processor = I3DVideoProcessor(
        num_frames=8, frame_interval=2, short_side=48, crop_size={"height": 48, "width": 48}
    )
    for i, path in enumerate(dataset.with_format(None)["path"]):
        expected = processor(path, return_tensors="pt")["pixel_values"][0]
        assert torch.equal(dataset[i]["pixel_values"], expected)
    # the default PyAV backend decodes the same pixels as decord
    pyav = set_clip_transform(load(tree, "video")["validation"], mode="val", **SMALL)
    assert torch.equal(pyav[0]["pixel_values"], dataset[0]["pixel_values"])


def test_test_mode_gives_the_presets_views(tree):
    split = load(tree, "video")["validation"]
    # r50: 10 clips x ThreeCrop -> 30 views, crop-major
    views = set_clip_transform(split, mode="test", **SMALL)[0]["pixel_values"]
    assert views.shape == (30, 8, 3, 48, 48)
    one_crop = set_clip_transform(split, mode="test", num_crops=1, **SMALL)[0]["pixel_values"]
    assert one_crop.shape == (10, 8, 3, 48, 48)
    assert torch.equal(one_crop, views[20:])  # ThreeCrop's middle crop (x = 8) is the centre crop of 64x48
    dense = set_clip_transform(split, "i3d-r50-dense-kinetics400", mode="test", **SMALL)[0]["pixel_values"]
    assert dense.shape == (30, 8, 3, 48, 48)
    # dense val: the single-view equivalent, one centred uniform clip
    dense_val = set_clip_transform(split, "i3d-r50-dense-kinetics400", mode="val", **SMALL)[0]["pixel_values"]
    assert dense_val.shape == (8, 3, 48, 48)


def test_rawframes_offset_template_and_start_index(tmp_path):
    # Something-Something v1 frames are 00001.jpg; the offset column shifts every index (with_offset=True)
    write_frame_folder(tmp_path / "frames" / "100218", 40, filename_tmpl="{:05}.jpg")
    (tmp_path / "list.txt").write_text("100218 10 30 1\n")
    dataset = load_video_dataset(
        tmp_path / "frames",
        {"train": tmp_path / "list.txt"},
        "rawframes",
        num_classes=3,
        filename_tmpl="{:05}.jpg",
        with_offset=True,
    )["train"]
    assert dataset[0] == {"path": str(tmp_path / "frames" / "100218"), "total_frames": 30, "offset": 10,
                          "label": 1, "line": 1}  # fmt: skip
    item = set_clip_transform(dataset, mode="val", **SMALL)[0]
    # 30 frames: centred offset int((30 - 16 + 1) / 2) = 7, + offset 10 -> synthetic frames 17, 19, ...
    assert frame_indices(item["pixel_values"]) == list(range(17, 32, 2))


def test_multi_label_lists(tmp_path):
    write_video(tmp_path / "v.mp4", 20)
    (tmp_path / "list.txt").write_text("v.mp4 0 2\n")
    with pytest.raises(
        AnnotationError, match=r"list\.txt:1: expected 'path label', got 3 fields .*multi_label"
    ):
        load_video_dataset(tmp_path, {"train": tmp_path / "list.txt"}, "video", num_classes=4)
    dataset = load_video_dataset(tmp_path, {"train": tmp_path / "list.txt"}, "video", multi_label=True,
                                 num_classes=4)["train"]  # fmt: skip
    assert dataset[0]["labels"] == [0, 2]
    item = set_clip_transform(dataset, mode="val", **SMALL)[0]
    assert torch.equal(item["labels"], torch.tensor([1.0, 0.0, 1.0, 0.0]))
    batch = collate_clips([item, item])
    assert batch["pixel_values"].shape == (2, 8, 3, 48, 48) and batch["labels"].shape == (2, 4)


def test_path_list_reads_plain_and_mmaction_lines(tmp_path, monkeypatch):
    """``read_path_list`` (``hf-i3d extract-features --list``): the paths of plain and mmaction2 lists, relative to the
    current folder, the longest existing spelling of a path with spaces."""
    monkeypatch.chdir(tmp_path)
    for name in ("plain.mp4", "a.mp4", "my clip.mp4", "take 2.mp4", "Season 2 300 5.mp4"):
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "Season 2").mkdir()
    (tmp_path / "lists").mkdir()
    listing = tmp_path / "lists" / "mixed.txt"
    lines = [
        "# videos",
        "plain.mp4",
        "  a.mp4 0  ",
        "",
        "my clip.mp4 3",  # a path with a space, then its label
        "take 2.mp4",  # "2.mp4" is no number: the whole line
        "Season 2 300 5",  # a frame folder line: 'Season 2', not 'Season'
        "Season 2 300 5.mp4",  # a file named so: the whole line wins
        "frames/v_1 40 2 7",  # rawframes with offset, missing: the path without the numbers
        "gone.mp4 -1",
        "gone dir 12x 3",  # only the trailing numbers go
    ]
    listing.write_text("\n".join(lines) + "\n", encoding="utf-8-sig")  # a byte-order mark is not a path
    assert read_path_list(listing) == [
        ListedPath("plain.mp4", 2),
        ListedPath("a.mp4", 3),
        ListedPath("my clip.mp4", 5),
        ListedPath("take 2.mp4", 6),
        ListedPath("Season 2", 7),
        ListedPath("Season 2 300 5.mp4", 8),
        ListedPath("frames/v_1", 9),
        ListedPath("gone.mp4", 10),
        ListedPath("gone dir 12x", 11),
    ]
    (tmp_path / "latin1.txt").write_bytes(b"caf\xe9.mp4 1\n")
    with pytest.raises(AnnotationError, match=r"latin1\.txt:1: not UTF-8 text \(byte 0xe9\)"):
        read_path_list(tmp_path / "latin1.txt")


# -- label files -----------------------------------------------------------------------------------------------
def test_label_files_of_every_format(tmp_path):
    kinetics = tmp_path / "kinetics400_labels.txt"
    kinetics.write_text("abseiling\nair drumming\n\nanswering questions\n")
    assert read_label_names(kinetics) == ["abseiling", "air drumming", "answering questions"]
    ucf = tmp_path / "classInd.txt"  # 1-based ids, any order
    ucf.write_text("2 ApplyLipstick\n1 ApplyEyeMakeup\n3 Archery\n")
    assert read_label_names(ucf) == ["ApplyEyeMakeup", "ApplyLipstick", "Archery"]
    sthv1 = tmp_path / "something-something-v1-labels.csv"  # the line index is the id
    sthv1.write_text("Holding something\nPutting something, something and something on the table\n")
    assert read_label_names(sthv1)[1] == "Putting something, something and something on the table"
    sthv2 = tmp_path / "labels.json"
    sthv2.write_text(
        '{"Approaching something with your camera": "1", "Attaching something to something": "0"}'
    )
    assert read_label_names(sthv2) == [
        "Attaching something to something",
        "Approaching something with your camera",
    ]
    csv = tmp_path / "kinetics_train.csv"  # official csv: sorted set of labels
    csv.write_text("label,youtube_id,time_start,time_end,split\nzumba,x,0,10,train\nair drumming,y,1,11,train\n"
                   "zumba,z,2,12,train\n")  # fmt: skip
    assert read_label_names(csv) == ["air drumming", "zumba"]
    assert read_label_names(["b", "a"]) == ["b", "a"]
    duplicated = tmp_path / "dup.txt"
    duplicated.write_text("a\nb\na\n")
    with pytest.raises(AnnotationError, match=re.escape(f"{duplicated}:3: label name 'a' repeats line 1")):
        read_label_names(duplicated)
    with pytest.raises(FileNotFoundError, match="label names file .*missing.txt does not exist"):
        read_label_names(tmp_path / "missing.txt")


def test_kinetics_labels_of_the_package_load():

    import hf_i3d

    names = read_label_names(Path(hf_i3d.__file__).with_name("labels") / "kinetics400_labels.txt")
    assert len(names) == 400 and names[:2] == ["abseiling", "air drumming"]


# -- bad input ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "modality, line, message",
    [
        ("rawframes", "some/dir 12", "expected 'frame_dir total_frames label', got 2 fields 'some/dir 12'"),
        (
            "rawframes",
            "some/dir twelve 1",
            "total_frames must be an integer, got 'twelve' in 'some/dir twelve 1'",
        ),
        (
            "rawframes",
            "some/dir 0 12 1",
            "expected 'frame_dir total_frames label', got 4 fields 'some/dir 0 12 1' (an offset column: "
            "with_offset=True; only a multi-label list takes multi_label=True)",
        ),  # fmt: skip
        ("rawframes", "some/dir 0 1", "total_frames must be at least 1, got 0"),
        ("video", "a.mp4", "expected 'path label', got 1 fields 'a.mp4'"),
        ("video", "a.mp4 x", "label must be an integer, got 'x' in 'a.mp4 x'"),
    ],
)
@pytest.mark.parametrize("on_error", ["raise", "skip"])
def test_malformed_line_names_file_and_line(tmp_path, modality, line, message, on_error):
    # a malformed line is a broken list (wrong format or options), never skipped
    ann = tmp_path / "list.txt"
    good = "other/dir 10 0" if modality == "rawframes" else "b.mp4 0"
    ann.write_text(f"{good}\n\n{line}\n")
    with pytest.raises(AnnotationError, match=f"^{re.escape(f'{ann}:3: {message}')}$"):
        load_video_dataset(tmp_path, {"train": ann}, modality, num_classes=2, on_error=on_error)


def test_label_outside_the_label_set(tree, tmp_path, caplog):
    ann = tmp_path / "list.txt"
    ann.write_text("abseiling/a1.mp4 0\nzumba/c1.mp4 7\nzumba/c3.mp4 -1\nzumba/c2.mp4 2\n")
    root = tree.root / "videos"
    with pytest.raises(ClipLoadError) as error:
        load_video_dataset(root, {"train": ann}, "video", tree.classes)
    assert str(error.value) == f"{ann}:2: label 7 is outside the label set 0..2 (3 label names)"
    with caplog.at_level(logging.WARNING, logger="hf_i3d.data"):
        dataset = load_video_dataset(root, {"train": ann}, "video", tree.classes, on_error="skip")
    assert [row["line"] for row in dataset["train"]] == [1, 4]
    assert dataset.skipped["train"] == [
        f"{ann}:2: label 7 is outside the label set 0..2 (3 label names)",
        f"{ann}:3: label -1 is outside the label set 0..2 (3 label names)",
    ]
    assert f"skipped {ann}:2: label 7" in caplog.text and f"{ann}: skipped 2 of 4 lines" in caplog.text


@pytest.fixture(scope="module")
def broken(tree, tmp_path_factory):
    """Lists mixing good items with a missing video, an undecodable one, and a frame folder shorter than its line."""
    folder = tmp_path_factory.mktemp("broken")
    write_garbage_video(folder / "garbage.mp4")
    videos = folder / "videos.txt"
    videos.write_text(
        f"{tree.root}/videos/abseiling/a1.mp4 0\n{folder}/missing.mp4 1\n{folder}/garbage.mp4 2\n"
        f"{tree.root}/videos/zumba/c1.mp4 2\n"
    )
    frames = folder / "rawframes.txt"
    frames.write_text(
        f"{tree.root}/rawframes/abseiling/a1 30 0\n{tree.root}/rawframes/air_drumming/b2 40 1\n"
    )
    return SimpleNamespace(folder=folder, videos=videos, frames=frames)


def test_bad_items_raise_naming_list_line_and_file(broken):
    videos = load_video_dataset(None, {"train": broken.videos}, "video", num_classes=3)["train"]
    clips = set_clip_transform(videos, mode="val", **SMALL)
    assert clips[0]["pixel_values"].shape == (8, 3, 48, 48)
    with pytest.raises(ClipLoadError, match=f"^{re.escape(f'{broken.videos}:2: {broken.folder}/missing.mp4: no such video file')}$"):  # fmt: skip
        clips[1]
    garbage = f"{broken.videos}:3: {broken.folder}/garbage.mp4: is not a readable video (Invalid data found when processing input)"  # fmt: skip
    with pytest.raises(ClipLoadError, match=f"^{re.escape(garbage)}$"):
        clips[2]
    with pytest.raises(ClipLoadError, match=re.escape(f"{broken.videos}:3: {broken.folder}/garbage.mp4: ")):
        set_clip_transform(videos, mode="val", backend="decord", **SMALL)[2]
    # b2 has 24 frames, its line claims 40: the centred clip of 40 frames needs frames 13..27 (files 00013..)
    frames = load_video_dataset(None, {"train": broken.frames}, "rawframes", num_classes=3)["train"]
    short = (
        f"{broken.frames}:2: {frames[1]['path']}/img_00025.jpg: frame 25 does not exist (the folder holds 24 "
        "frames); its list line claims 40 frames"
    )
    with pytest.raises(ClipLoadError, match=f"^{re.escape(short)}$"):
        set_clip_transform(frames, mode="val", **SMALL)[1]
    # the cheap checks can run at load time instead
    with pytest.raises(ClipLoadError, match=re.escape(f"{broken.videos}:2: {broken.folder}/missing.mp4: no such video file")):  # fmt: skip
        load_video_dataset(None, {"train": broken.videos}, "video", num_classes=3, check_files=True)
    with pytest.raises(ClipLoadError, match=re.escape(f"{broken.frames}:2: {frames[1]['path']}: the frame folder holds 24 frames, its list line claims 40")):  # fmt: skip
        load_video_dataset(None, {"train": broken.frames}, "rawframes", num_classes=3, check_files=True)


def test_skip_replaces_bad_items_with_valid_clips_and_counts(broken, caplog):
    videos = load_video_dataset(None, {"train": broken.videos}, "video", num_classes=3)["train"]
    clips = set_clip_transform(videos, mode="val", on_error="skip", **SMALL)
    good = {0: clips[0], 3: clips[3]}
    with caplog.at_level(logging.WARNING, logger="hf_i3d.data"):
        replaced = [clips[1], clips[2]]
    for item in replaced:  # each replaced by a good item, its clip and label together, never a corrupt clip
        assert any(torch.equal(item["pixel_values"], g["pixel_values"]) and torch.equal(item["labels"], g["labels"])
                   for g in good.values())  # fmt: skip
    assert skip_stats(clips) == {"loaded": 4, "skipped": 2}
    assert (
        "missing.mp4: no such video file" in caplog.text
        and "garbage.mp4: is not a readable video" in caplog.text
    )
    # deterministic: the same replacement every time
    assert torch.equal(clips[1]["pixel_values"], replaced[0]["pixel_values"])
    # an iterable dataset drops them
    iterable = to_iterable_clips(videos, mode="val", on_error="skip", **SMALL)
    assert [int(item["labels"]) for item in iterable] == [0, 2]
    # a short frame folder is skipped too, and found at load time with check_files
    frames = load_video_dataset(None, {"train": broken.frames}, "rawframes", num_classes=3, on_error="skip",
                                check_files=True)  # fmt: skip
    assert len(frames["train"]) == 1 and len(frames.skipped["train"]) == 1


# -- randomness, workers, sharding -------------------------------------------------------------------------------
def test_seeded_train_clips_reproduce_and_change_with_epoch(tree):
    split = load(tree, "video")["train"]
    first = set_clip_transform(split, mode="train", seed=7, **SMALL)
    again = set_clip_transform(split, mode="train", seed=7, **SMALL)
    clips = [first[i]["pixel_values"] for i in range(3)]
    assert all(torch.equal(a, again[i]["pixel_values"]) for i, a in enumerate(clips))
    assert all(
        torch.equal(a, first[i]["pixel_values"]) for i, a in enumerate(clips)
    )  # per item, not per call
    other_seed = set_clip_transform(split, mode="train", seed=8, **SMALL)
    assert any(not torch.equal(a, other_seed[i]["pixel_values"]) for i, a in enumerate(clips))
    set_epoch(first, 1)
    assert any(not torch.equal(a, first[i]["pixel_values"]) for i, a in enumerate(clips))
    # the order of reading does not matter: an item's draws come from (seed, epoch, line)
    shuffled = first.shuffle(seed=0)
    for i in range(3):
        line = shuffled.with_format(None)[i]["line"]
        j = list(first.with_format(None)["line"]).index(line)
        assert torch.equal(shuffled[i]["pixel_values"], first[j]["pixel_values"])
    # seed=None draws from the global numpy state, as mmaction2 does
    unseeded = set_clip_transform(split, mode="train", **SMALL)
    np.random.seed(3)
    a = unseeded[0]["pixel_values"]
    np.random.seed(3)
    assert torch.equal(a, unseeded[0]["pixel_values"])


def test_multiworker_loading_matches_single_process(tree):
    split = load(tree, "video")["train"]
    clips = set_clip_transform(split, mode="train", seed=11, **SMALL)

    def batches(workers):
        loader = torch.utils.data.DataLoader(
            clips, batch_size=2, num_workers=workers, collate_fn=collate_clips
        )
        return list(loader)

    single, multi = batches(0), batches(2)
    assert len(single) == len(multi) == 2
    for a, b in zip(single, multi):
        assert torch.equal(a["pixel_values"], b["pixel_values"]) and torch.equal(a["labels"], b["labels"])
    assert a["pixel_values"].shape[1:] == (8, 3, 48, 48)
    assert skip_stats(clips) == {"loaded": 6, "skipped": 0}  # the workers' counts reach the main process


def test_epoch_callback_sets_the_epoch(tree):
    clips = set_clip_transform(load(tree, "video")["train"], mode="train", seed=1, **SMALL)
    loader = torch.utils.data.DataLoader(clips, batch_size=1)
    ClipEpochCallback().on_epoch_begin(None, SimpleNamespace(epoch=2.0), None, train_dataloader=loader)
    assert find_clip_transform(clips).epoch == 2


def test_split_dataset_by_node_partitions_items(tree):
    split = load(tree, "video")["train"]
    clips = set_clip_transform(split, mode="val", **SMALL)
    reference = [clips[i]["pixel_values"] for i in range(len(clips))]
    # map-style: contiguous chunks
    ranks = [split_dataset_by_node(clips, rank=r, world_size=2) for r in range(2)]
    assert [len(r) for r in ranks] == [2, 1]
    got = [item["pixel_values"] for r in ranks for item in r]
    assert all(torch.equal(a, b) for a, b in zip(got, reference))
    # iterable: 2 shards, one per rank
    iterable = to_iterable_clips(split, mode="val", num_shards=2, **SMALL)
    per_rank = [[item["pixel_values"] for item in split_dataset_by_node(iterable, r, 2)] for r in range(2)]
    assert [len(items) for items in per_rank] == [2, 1]
    assert all(torch.equal(a, b) for a, b in zip(per_rank[0] + per_rank[1], reference))
    set_epoch(iterable, 3)  # reaches the clip transform inside the iterable dataset
    assert find_clip_transform(split_dataset_by_node(iterable, 0, 2)).epoch == 3


def test_parse_annotation_list_and_bad_arguments(tmp_path):
    ann = tmp_path / "l.txt"
    ann.write_text("x 5 3\n")
    (record,) = parse_annotation_list(ann, "rawframes")
    assert (record.path, record.total_frames, record.offset, record.labels, record.line) == (
        "x",
        5,
        0,
        (3,),
        1,
    )
    with pytest.raises(ValueError, match=r"modality must be one of \('video', 'rawframes'\), got 'frames'"):
        load_video_dataset(tmp_path, {"train": ann}, "frames")
    with pytest.raises(FileNotFoundError, match="annotation list .*nope.txt does not exist"):
        load_video_dataset(tmp_path, {"train": tmp_path / "nope.txt"}, "rawframes")
    dataset = load_video_dataset(tmp_path, {"train": ann}, "rawframes")["train"]
    assert dataset.features["label"].num_classes == 4  # max label + 1
    with pytest.raises(TypeError, match=r"unknown clip setting\(s\) \['crop'\]"):
        set_clip_transform(dataset, crop=3)
    with pytest.raises(ValueError, match=r"backend 'decord' is not a JPEG backend"):
        set_clip_transform(dataset, backend="decord")


def _package_imports(module: str) -> set[str]:
    """The hf_i3d modules ``module`` imports anywhere (function-local imports included), and ``transformers``."""
    path = Path(hf_i3d.__file__).with_name(f"{module}.py")
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            names = [node.module] if node.module else [alias.name for alias in node.names]
            found.update(name.split(".")[0] for name in names)
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "transformers":
            found.add("transformers")
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.split(".")[0] == "transformers")
    return found


def test_annotations_and_data_look_only_down():
    # annotation files are parsed with the validator alone; datasets use the parsing, decoding, sampling and
    # transforms below them and never the Trainer side (training, evaluation) or transformers
    assert _package_imports("annotations") == {"_validation"}
    assert _package_imports("data") == {"_validation", "annotations", "decoding", "sampling", "transforms", "zoo"}
    assert "data" in _package_imports("training") and "training" not in _package_imports("evaluation")
