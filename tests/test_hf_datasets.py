"""The ``datasets`` way in (hf_i3d.hf_datasets and the example's --dataset_name / --train_dir / --streaming): a local
videofolder trains exactly as the same videos in annotation lists do, ``datasets.Video()`` values and paths give the
same clips, a dataset repo on the local fake Hub loads by id, and two processes streaming a dataset see every
video once per epoch.

The videos are the moving-square task of ``tests/_synthetic.py`` (a square moving in one of 8 directions; one frame
says nothing about the label), laid out as a videofolder (one sub-folder per class) by hard links.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from _synthetic import write_moving_square_dataset
from test_training import TINY_I3D, accuracy_keys, run_example

from hf_i3d.zoo import get_entry

SRC = str(Path(__file__).resolve().parents[1] / "src")
SETTINGS = replace(
    get_entry("i3d-r50-kinetics400").data,
    clip_len=8,
    frame_interval=2,
    short_side=32,
    crop_size=32,
    test_crop_size=32,
)


@pytest.fixture(scope="module")
def squares(tmp_path_factory):
    """48 training and 24 validation videos, in lists (``root/<split>_list.txt``) and as a videofolder
    (``root/squares/<split>/<class>/<name>.mp4``, hard links to the same files)."""
    data = write_moving_square_dataset(tmp_path_factory.mktemp("squares"), {"train": 48, "validation": 24})
    folder = data.root / "squares"
    for split, ann_file in data.ann_files.items():
        for line in ann_file.read_text().splitlines():
            name, label = line.split()
            target = folder / split / data.classes[int(label)] / Path(name).name
            target.parent.mkdir(parents=True, exist_ok=True)
            os.link(data.root / name, target)
    return data


@pytest.fixture(scope="module")
def folder_splits(squares, tmp_path_factory):
    """The videofolder loaded by ``datasets`` and normalised: ``{split: normalised Dataset}``."""
    from hf_i3d.hf_datasets import as_clip_dataset, load_hf_video_dataset

    with pytest.MonkeyPatch.context() as patch:  # this module's own cache, given back after it
        patch.setenv("HF_I3D_CACHE", str(tmp_path_factory.mktemp("hf_i3d_cache")))
        folder = squares.root / "squares"
        raw = load_hf_video_dataset(
            train_dir=folder / "train",
            validation_dir=folder / "validation",
            cache_dir=str(tmp_path_factory.mktemp("datasets_cache")),
        )
        yield as_clip_dataset(raw)


def test_videofolder_rows_are_paths_labels_and_row_numbers(squares, folder_splits):
    train = folder_splits["train"]
    names = sorted(squares.classes)  # datasets names the classes after the folders, sorted
    assert train.features["label"].names == names
    assert len(train) == 48 and len(folder_splits["validation"]) == 24
    assert list(train["line"]) == list(range(1, 49))
    for row in train:
        path = Path(row["path"])
        assert path.is_file() and path.parent.name == names[row["label"]]


def test_videofolder_trains_like_the_annotation_lists(squares, folder_splits, tmp_path):
    """The example script on the videofolder and on annotation lists of the same videos in the same row order
    (labels numbered as the folder's ClassLabel): the same seeded clips, so the same training, to the same
    accuracy, which is far above chance (1/8)."""
    names = folder_splits["train"].features["label"].names
    (tmp_path / "classes.txt").write_text("\n".join(names) + "\n")
    for split, dataset in folder_splits.items():
        lines = [f"{row['path']} {row['label']}" for row in dataset]
        (tmp_path / f"{split}.txt").write_text("\n".join(lines) + "\n")
    common = [
        "--preset", "i3d-r50-kinetics400", "--config_overrides", *TINY_I3D,
        "--clip_len", "8", "--frame_interval", "2",
        "--short_side", "32", "--crop_size", "32", "--test_crop_size", "32", "--flip_ratio", "0",
        "--use_cpu", "--seed", "0", "--full_determinism",
        "--do_train", "--do_eval", "--num_train_epochs", "8", "--lr_milestones", "6", "7",
        "--learning_rate", "0.8", "--dataloader_num_workers", "0", "--logging_steps", "6",
        "--eval_every_epochs", "8", "--save_every_epochs", "8",
    ]  # fmt: skip
    folder = squares.root / "squares"
    by_folder = tmp_path / "by_folder"
    run_example(
        [*common, "--train_dir", str(folder / "train"), "--validation_dir", str(folder / "validation"),
         "--output_dir", str(by_folder)],
        tmp_path,
    )  # fmt: skip
    by_lists = tmp_path / "by_lists"
    run_example(
        [*common, "--train_ann_file", str(tmp_path / "train.txt"),
         "--validation_ann_file", str(tmp_path / "validation.txt"),
         "--label_file", str(tmp_path / "classes.txt"), "--modality", "video", "--output_dir", str(by_lists)],
        tmp_path,
    )  # fmt: skip
    folder_eval = json.loads((by_folder / "eval_results.json").read_text())
    lists_eval = json.loads((by_lists / "eval_results.json").read_text())
    assert accuracy_keys(folder_eval) == pytest.approx(accuracy_keys(lists_eval), abs=1e-6)
    assert folder_eval["eval_top1_acc"] >= 0.5, folder_eval
    config = json.loads((by_folder / "config.json").read_text())
    assert [config["id2label"][str(i)] for i in range(len(names))] == names  # labels from the ClassLabel
    card = (by_folder / "README.md").read_text()
    assert "squares" in card  # the videofolder's parent folder names the dataset


def test_video_feature_and_path_column_give_the_same_clips(squares, folder_splits):
    from datasets import ClassLabel, Dataset, Features, Value, Video

    from hf_i3d.data import set_clip_transform
    from hf_i3d.hf_datasets import as_clip_dataset

    rows = folder_splits["train"].select(range(6))
    paths, labels = list(rows["path"]), list(rows["label"])
    names = rows.features["label"].names
    as_paths = Dataset.from_dict(
        {"file": paths, "class": labels},
        features=Features({"file": Value("string"), "class": ClassLabel(names=names)}),
    )
    as_videos = Dataset.from_dict(
        {"video": paths, "label": labels},
        features=Features({"video": Video(), "label": ClassLabel(names=names)}),
    )
    embedded = Dataset.from_dict(  # Video() values that hold the file's bytes (as a Hub parquet export does)
        {"video": [{"bytes": Path(p).read_bytes(), "path": None} for p in paths], "label": labels},
        features=Features({"video": Video(decode=False), "label": Value("int64")}),
    )
    clips = {}
    for name, dataset, columns in (
        ("paths", as_paths, ("file", "class")),
        ("videos", as_videos, ("video", "label")),
        ("embedded", embedded, ("video", "label")),
    ):
        normalised = as_clip_dataset(dataset, *columns, label_names=names if name == "embedded" else None)
        train = set_clip_transform(normalised, SETTINGS, "train", seed=3, modality="video", flip_ratio=0)
        clips[name] = [(item["pixel_values"].numpy(), int(item["labels"])) for item in train]
    for name in ("videos", "embedded"):
        for (mine, label), (reference, reference_label) in zip(clips[name], clips["paths"]):
            assert label == reference_label
            np.testing.assert_array_equal(mine, reference)
    assert [label for _, label in clips["paths"]] == labels


def test_missing_columns_and_unnamed_labels_are_one_line(folder_splits):
    from datasets import Dataset, Features, IterableDataset, Value

    from hf_i3d.hf_datasets import DatasetFormatError, as_clip_dataset

    dataset = Dataset.from_dict({"clip": ["a.mp4"], "label": [0]})
    with pytest.raises(
        DatasetFormatError,
        match=r"^the dataset has no video column 'video' \(columns: \['clip', 'label'\]\); pass --video_column_name$",
    ):
        as_clip_dataset(dataset)
    stream = IterableDataset.from_generator(
        lambda: iter([{"video": "a.mp4", "label": 0}]),
        features=Features({"video": Value("string"), "label": Value("int64")}),
    )
    with pytest.raises(DatasetFormatError, match="column 'label' is .* not a ClassLabel: pass label_names"):
        as_clip_dataset(stream)


_HUB_CLIENT = """
import hashlib, json, sys
from hf_i3d.hf_datasets import clip_datasets_from_hf, load_hf_video_dataset
from hf_i3d.zoo import get_entry
from dataclasses import replace
settings = replace(get_entry("i3d-r50-kinetics400").data, clip_len=8, frame_interval=2, short_side=32,
                   crop_size=32, test_crop_size=32)
out = {}
for streaming in (False, True):
    raw = load_hf_video_dataset("tester/squares", streaming=streaming)
    data = clip_datasets_from_hf({"validation": raw["validation"]}, settings)
    items = list(data.splits["validation"])
    out[str(streaming)] = {
        "names": data.label_names,
        "clips": sorted(
            [int(item["labels"]), hashlib.sha1(item["pixel_values"].numpy().tobytes()).hexdigest()] for item in items
        ),
    }
print(json.dumps(out))
"""


def test_dataset_repo_on_the_fake_hub_loads_by_id(squares, folder_splits, tmp_path):
    """The videofolder uploaded as a Hub dataset repo loads by id (downloaded, and streamed: one temporary video
    at a time) and gives the validation clips of the local folder."""
    import hashlib

    from _fake_hub import FakeHub

    from hf_i3d.data import set_clip_transform

    folder = squares.root / "squares"
    hub = FakeHub()
    try:
        hub.add_dataset(
            "tester/squares", {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*.mp4")}
        )
        env = {**os.environ, "HF_ENDPOINT": hub.url, "HF_HOME": str(tmp_path / "hf_home"), "PYTHONPATH": SRC,
               "HF_I3D_CACHE": str(tmp_path / "cache")}  # fmt: skip
        env.pop("HF_HUB_OFFLINE", None)
        result = subprocess.run(
            [sys.executable, "-c", _HUB_CLIENT], env=env, capture_output=True, text=True, timeout=600
        )
        assert result.returncode == 0, result.stderr[-4000:]
    finally:
        hub.close()
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    local = set_clip_transform(folder_splits["validation"], SETTINGS, "val", modality="video")
    expected = sorted(
        [int(item["labels"]), hashlib.sha1(item["pixel_values"].numpy().tobytes()).hexdigest()]
        for item in local
    )
    for streaming in ("False", "True"):
        assert loaded[streaming]["names"] == sorted(squares.classes)
        assert loaded[streaming]["clips"] == expected, streaming
    downloads = [path for method, path in hub.requests if method == "GET" and "/resolve/" in path]
    assert any(path.endswith(".mp4") for path in downloads)


_STREAM_WORKER = """
import json, sys
from hf_i3d.hf_datasets import as_clip_dataset, load_hf_video_dataset, split_stream, streaming_clips
from hf_i3d.data import set_epoch
from hf_i3d.zoo import get_entry
from dataclasses import replace
rank, world, folder = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
settings = replace(get_entry("i3d-r50-kinetics400").data, clip_len=8, frame_interval=2, short_side=32,
                   crop_size=32, test_crop_size=32)
stream = as_clip_dataset(load_hf_video_dataset(train_dir=folder, streaming=True)["train"])
mine = split_stream(stream.shuffle(seed=0, buffer_size=8), rank, world)
clips = streaming_clips(mine, settings, "train", seed=0, flip_ratio=0)
epochs = []
for epoch in range(2):
    mine.set_epoch(epoch)
    set_epoch(clips, epoch)
    seen = [row["path"] for row in mine]
    made = [int(item["labels"]) for item in clips]
    epochs.append({"seen": seen, "clips": len(made)})
print(json.dumps(epochs))
"""


def test_streaming_two_processes_see_every_video_once_per_epoch(squares, tmp_path):
    folder = squares.root / "squares" / "train"
    env = {**os.environ, "PYTHONPATH": SRC, "HF_HOME": str(tmp_path / "hf_home"), "HF_HUB_OFFLINE": "1",
           "HF_I3D_CACHE": str(tmp_path / "cache")}  # fmt: skip
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", _STREAM_WORKER, str(rank), "2", str(folder)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        for rank in range(2)
    ]
    results = []
    for worker in workers:
        stdout, stderr = worker.communicate(timeout=600)
        assert worker.returncode == 0, stderr[-4000:]
        results.append(json.loads(stdout.strip().splitlines()[-1]))
    everything = sorted(str(p) for p in folder.rglob("*.mp4"))
    for epoch in range(2):
        seen = [results[rank][epoch]["seen"] for rank in range(2)]
        assert sorted(seen[0] + seen[1]) == everything  # every video once: none twice, none missed
        assert abs(len(seen[0]) - len(seen[1])) <= 1
        assert [results[rank][epoch]["clips"] for rank in range(2)] == [len(s) for s in seen]
    assert results[0][0]["seen"] != results[0][1]["seen"]  # the shuffle changes with the epoch


def test_example_refuses_a_stream_without_max_steps(squares, tmp_path):
    from test_training import EXAMPLE

    command = [sys.executable, str(EXAMPLE), "--train_dir", str(squares.root / "squares" / "train"),
               "--streaming", "--do_train", "--use_cpu", "--output_dir", str(tmp_path / "out")]  # fmt: skip
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf_home")}
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 1
    assert (
        result.stderr.strip().splitlines()[-1]
        == "--streaming --do_train needs --max_steps (a stream has no length)"
    )
    assert "Traceback" not in result.stderr


def test_datasets_own_video_decoding_works_and_agrees(folder_splits):
    """``datasets`` decodes ``Video()`` values with torchcodec; once hf_i3d has given torchcodec its FFmpeg
    (``load_hf_video_dataset`` does), that works on a machine without system FFmpeg, and gives our frames."""
    from datasets import Dataset, Features, Video

    from hf_i3d.decoding import read_video

    path = folder_splits["train"][0]["path"]
    decoder = Dataset.from_dict({"video": [path]}, features=Features({"video": Video()}))[0]["video"]
    frames = decoder.get_frames_at([0, 5, 15]).data.permute(0, 2, 3, 1).numpy()
    np.testing.assert_array_equal(frames, read_video(path, [0, 5, 15], backend="pyav"))
