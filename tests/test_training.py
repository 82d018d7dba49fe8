"""examples/run_video_classification.py, hf_i3d.training and hf_i3d.evaluation: the mmaction2 I3D recipe on
transformers.Trainer, the multi-view test and the card of a trained checkpoint.

The end-to-end tests run the example script in subprocesses on a synthetic dataset of real encoded videos where a
single frame says nothing about the label (a square moving in one of 8 directions, wrapping around the frame:
``tests/_synthetic.py``), so only a model that sees motion can learn it. One trained checkpoint (module fixture) is
shared by the learning, 30-view and Hub tests.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from _ports import free_port
from _synthetic import CLASSES, write_moving_square_dataset
from huggingface_hub import ModelCard
from huggingface_hub.repocard_data import model_index_to_eval_results
from safetensors.torch import load_file
from transformers import AutoModelForVideoClassification, HfArgumentParser, TrainerControl, TrainingArguments

from hf_i3d import I3DConfig, I3DForVideoClassification
from hf_i3d.evaluation import MultiViewResult, write_results_json
from hf_i3d.metrics import compute_video_metrics
from hf_i3d.modelcard import CardInfo, build_model_card
from hf_i3d.training import (
    EpochIntervalCallback,
    Recipe,
    VideoClassificationTrainer,
    build_model,
    last_checkpoint,
    parse_arguments,
    scale_learning_rate,
)
from hf_i3d.zoo import get_entry

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "run_video_classification.py"
# A small I3D: ResNet3d-18 at 1/4 width, 2 stages, every block 3x3x3, no temporal downsampling (8-frame clips).
TINY_I3D = [
    "depth=18",
    "base_channels=16",
    "num_stages=2",
    "conv1_kernel=(3,7,7)",
    "conv1_stride_t=1",
    "pool1_stride_t=1",
    "with_pool2=False",
    "inflate=1",
    "dropout_ratio=0.0",
]
STEPS_PER_EPOCH = 12  # 96 training videos, 8 per batch


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    return write_moving_square_dataset(tmp_path_factory.mktemp("squares"), {"train": 96, "validation": 48})


def script_args(data, output_dir: Path, *extra: str, train_list: Path | None = None) -> list[str]:
    """The example's arguments for the synthetic data and the tiny model (32x32 clips of 8 frames, no flips)."""
    return [
        "--preset", "i3d-r50-kinetics400",
        "--config_overrides", *TINY_I3D,
        "--data_root", str(data.root),
        "--train_ann_file", str(train_list or data.ann_files["train"]),
        "--validation_ann_file", str(data.ann_files["validation"]),
        "--label_file", str(data.label_file),
        "--dataset_name", "moving-squares",
        "--modality", "video",
        "--clip_len", "8", "--frame_interval", "2",
        "--short_side", "32", "--crop_size", "32", "--test_crop_size", "32",
        "--flip_ratio", "0",
        "--use_cpu", "--seed", "0", "--full_determinism",
        "--output_dir", str(output_dir),
        *extra,
    ]  # fmt: skip


def run_example(args: list[str], cwd: Path, *, env: dict | None = None, launcher: list[str] | None = None,
                timeout: float = 600) -> subprocess.CompletedProcess:  # fmt: skip
    """Run the example script (offline, private HF_HOME) and fail with its output if it fails."""
    full_env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(cwd / "hf_home"), **(env or {})}
    command = [*(launcher or [sys.executable]), str(EXAMPLE), *args]
    result = subprocess.run(command, cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        pytest.fail(
            f"{' '.join(command[:3])} ... failed ({result.returncode}):\n{result.stdout[-4000:]}\n{result.stderr[-6000:]}"
        )
    return result


def logged_metrics(output: str, split: str) -> dict[int, dict]:
    """``{rank: metrics}`` from the script's ``[rank r/w] <split> metrics: {...}`` log lines."""
    found = {}
    for line in output.splitlines():
        marker = f"] {split} metrics: "
        if "[rank " in line and marker in line:
            rank = int(line.split("[rank ", 1)[1].split("/", 1)[0])
            found[rank] = json.loads(line.split(marker, 1)[1])
    return found


def accuracy_keys(metrics: dict) -> dict:
    """The metrics that must agree between runs (not the timings)."""
    return {k: v for k, v in metrics.items() if "runtime" not in k and "per_second" not in k}


@pytest.fixture(scope="module")
def trained(synthetic, tmp_path_factory):
    """Train the tiny I3D with the recipe's shape (SGD, lr x 0.1 at two milestones, validation every 5 epochs)
    for 12 epochs, validate, and run the 30-view test: one script run, about a minute on 2 CPU cores."""
    workdir = tmp_path_factory.mktemp("trained")
    output = workdir / "out"
    start = time.perf_counter()
    result = run_example(
        script_args(
            synthetic, output,
            "--do_train", "--do_eval", "--do_predict",
            "--num_train_epochs", "12", "--lr_milestones", "8", "11",
            "--learning_rate", "0.8",  # per 64 clips: 0.1 for the global batch of 8
            "--num_clips", "10", "--num_crops", "3",
            "--dataloader_num_workers", "0", "--logging_steps", str(STEPS_PER_EPOCH),
        ),
        workdir,
    )  # fmt: skip
    print(f"training + 30-view test: {time.perf_counter() - start:.0f} s")
    return {"dir": output, "stdout": result.stdout + result.stderr}


# ---------------------------------------------------------------------------------------------------------------
# Learning, schedule, 30-view test
# ---------------------------------------------------------------------------------------------------------------
def test_single_frames_carry_no_label():
    """By construction any one frame is a square at a place that is uniform over the frame whatever the class:
    frame t of a video starting at s is frame 0 of a video starting at s + t * velocity, and frame 0 does not
    depend on the class. Only the change between frames does."""
    from _synthetic import VELOCITIES, moving_square_frames

    for start in [(0, 0), (5, 29), (31, 12)]:
        firsts = [moving_square_frames(velocity, start)[0] for velocity in VELOCITIES.values()]
        assert all(np.array_equal(firsts[0], first) for first in firsts)
        for dy, dx in VELOCITIES.values():
            shifted = ((start[0] + 3 * dy) % 32, (start[1] + 3 * dx) % 32)
            np.testing.assert_array_equal(
                moving_square_frames((dy, dx), start)[3], moving_square_frames((0, 0), shifted)[0]
            )
    seconds = {moving_square_frames(velocity, (10, 10))[1].tobytes() for velocity in VELOCITIES.values()}
    assert len(seconds) == len(CLASSES)  # two frames tell every class apart


def test_training_reaches_90_percent_and_follows_the_recipe_schedule(trained):
    state = json.loads((trained["dir"] / "trainer_state.json").read_text())
    evals = [log for log in state["log_history"] if "eval_top1_acc" in log]
    train_logs = [log for log in state["log_history"] if "loss" in log and "learning_rate" in log]
    # validation every 5 epochs (mmaction2 evaluation.interval=5) and after the last one, not every epoch
    assert [log["epoch"] for log in evals] == [5.0, 10.0, 12.0]
    assert evals[-1]["eval_top1_acc"] >= 0.9, evals
    assert evals[0]["eval_top1_acc"] < 0.9  # it had to learn
    # the default CPU run trains through hf_i3d.cpu_training (--optimize_cpu_training: channels-last 3D, small-map
    # convolutions as matrix products; benchmarks/RESULTS.md)
    assert "CPU run: channels-last 3D, small-map convolutions as matrix products" in trained["stdout"]
    # lr 0.8 per 64 clips scaled to 8 clips = 0.1; x 0.1 after epoch 8 and after epoch 11 (MultiStepLR by epoch)
    lr_by_epoch = {round(log["epoch"]): log["learning_rate"] for log in train_logs}
    assert lr_by_epoch[1] == pytest.approx(0.1) and lr_by_epoch[8] == pytest.approx(0.1)
    assert lr_by_epoch[9] == pytest.approx(0.01) and lr_by_epoch[11] == pytest.approx(0.01)
    assert lr_by_epoch[12] == pytest.approx(0.001)
    # checkpoints every 5 epochs and after the last
    assert sorted(p.name for p in trained["dir"].glob("checkpoint-*")) == [
        f"checkpoint-{STEPS_PER_EPOCH * e}" for e in (10, 12, 5)
    ]
    args = torch.load(trained["dir"] / "training_args.bin", weights_only=False)
    assert (args.weight_decay, args.max_grad_norm, args.learning_rate) == (1e-4, 40.0, pytest.approx(0.1))


def test_thirty_view_test_reports_metrics_and_result_json(trained):
    result = json.loads((trained["dir"] / "result.json").read_text())
    assert result["format"] == "hf_i3d.test_results/1"
    assert result["protocol"] == {
        "views": 30, "clips": 10, "crops": 3, "clip_len": 8, "frame_interval": 2,
        "crop_size": 32, "short_side": 32, "averaging": "prob",
    }  # fmt: skip
    assert result["label_names"] == list(CLASSES)
    assert result["num_videos"] == len(result["videos"]) == 48
    scores = np.array([video["scores"] for video in result["videos"]])
    labels = np.array([video["label"] for video in result["videos"]])
    assert scores.shape == (48, 8)
    np.testing.assert_allclose(scores.sum(axis=1), 1.0, atol=1e-5)  # 'prob': averaged softmax
    assert labels.tolist() == [i % 8 for i in range(48)]
    assert result["videos"][0]["video"].endswith("videos/validation_000.mp4")
    assert result["metrics"] == pytest.approx(compute_video_metrics(scores, labels))
    assert result["metrics"]["top1_acc"] >= 0.9
    logged = json.loads((trained["dir"] / "test_results.json").read_text())
    assert logged == pytest.approx({f"test_{k}": v for k, v in result["metrics"].items()})
    assert logged_metrics(trained["stdout"], "test") == {0: pytest.approx(logged)}


def test_thirty_view_scores_are_the_processor_and_model_views(trained):
    """The saved folder (weights + processor) reproduces result.json: the processor's 30 views of a video through
    the model, averaged by hf_i3d.multiview, give the same scores the test wrote."""
    from hf_i3d import I3DVideoProcessor
    from hf_i3d.multiview import predict_views

    model = AutoModelForVideoClassification.from_pretrained(trained["dir"]).eval()
    processor = I3DVideoProcessor.from_pretrained(trained["dir"])
    assert (processor.num_frames, processor.frame_interval, processor.size["shortest_edge"]) == (8, 2, 32)
    result = json.loads((trained["dir"] / "result.json").read_text())
    for video in result["videos"][:2]:
        views = processor(video["video"], views="multi", return_tensors="pt")["pixel_values"]
        assert views.shape == (1, 30, 8, 3, 32, 32)
        scores = predict_views(model, views, average="prob")[0]
        np.testing.assert_allclose(scores.numpy(), video["scores"], atol=1e-5)
    assert model.config.id2label == dict(enumerate(CLASSES))


def test_a_single_frame_model_cannot_learn_it(synthetic, tmp_path):
    """The same recipe with 1-frame clips stays near chance (1/8): the label is only in the motion."""
    output = tmp_path / "one_frame"
    run_example(
        script_args(
            synthetic, output, "--do_train", "--do_eval",
            "--num_train_epochs", "6", "--lr_milestones", "5", "--learning_rate", "0.8",
            "--eval_every_epochs", "100", "--save_every_epochs", "100", "--dataloader_num_workers", "0",
        )
        + ["--clip_len", "1"],
        tmp_path,
    )  # fmt: skip
    metrics = json.loads((output / "eval_results.json").read_text())
    assert metrics["eval_top1_acc"] <= 0.35, metrics


# ---------------------------------------------------------------------------------------------------------------
# Resume, distributed, Hub
# ---------------------------------------------------------------------------------------------------------------
def test_killed_and_resumed_run_ends_like_an_uninterrupted_one(synthetic, tmp_path):
    """SIGKILL after the first checkpoint, then the same command: it resumes from the newest complete checkpoint
    (model, optimiser, scheduler, RNG states, epoch of the seeded augmentation) and ends with the same weights
    and validation metrics as a run that was never interrupted (2 DataLoader workers, seeded transforms)."""
    train_list = tmp_path / "train_32.txt"  # 4 videos per class, 4 steps per epoch
    train_list.write_text("".join(synthetic.ann_files["train"].read_text().splitlines(keepends=True)[:32]))
    steps_per_epoch, epochs = 4, 3
    extra = (
        "--do_train", "--do_eval", "--num_train_epochs", str(epochs), "--lr_milestones", "2",
        "--learning_rate", "0.8", "--eval_every_epochs", "100", "--save_every_epochs", "1",
        "--dataloader_num_workers", "2",
    )  # fmt: skip
    straight = tmp_path / "straight"
    # the uninterrupted run leaves the allocator alone, the resumed one keeps freed memory (the default on CPU):
    # the setting must not change the numbers
    result = run_example(
        script_args(synthetic, straight, *extra, "--keep_freed_memory", "False", train_list=train_list), tmp_path
    )
    assert "freed memory is kept" not in result.stdout + result.stderr

    resumed = tmp_path / "resumed"
    arguments = script_args(synthetic, resumed, *extra, train_list=train_list)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf_home")}
    process = subprocess.Popen(
        [sys.executable, str(EXAMPLE), *arguments],
        cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    first = resumed / f"checkpoint-{steps_per_epoch}" / "trainer_state.json"
    deadline = time.monotonic() + 300
    while not first.is_file() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert first.is_file(), "the run to be killed wrote no checkpoint"
    killed_at = last_checkpoint(resumed)
    assert killed_at is not None and not killed_at.endswith(f"checkpoint-{epochs * steps_per_epoch}"), (
        killed_at
    )
    assert not (resumed / "model.safetensors").exists()

    result = run_example(arguments, tmp_path)
    assert f"resuming from {killed_at}" in result.stdout + result.stderr
    assert "CPU run: freed memory is kept in the process for reuse" in result.stdout + result.stderr
    weights_straight = load_file(straight / "model.safetensors")
    weights_resumed = load_file(resumed / "model.safetensors")
    assert weights_straight.keys() == weights_resumed.keys()
    for key, tensor in weights_straight.items():
        torch.testing.assert_close(weights_resumed[key], tensor, rtol=0, atol=1e-6, msg=key)
    metrics_straight = json.loads((straight / "eval_results.json").read_text())
    metrics_resumed = json.loads((resumed / "eval_results.json").read_text())
    assert accuracy_keys(metrics_resumed) == pytest.approx(accuracy_keys(metrics_straight), abs=1e-6)


def test_two_process_training_with_accelerate_launch(synthetic, tmp_path):
    """``accelerate launch --multi_gpu --num_processes 2`` on a CPU gives two gloo ranks (DDP): each trains on half
    of every batch (here in bfloat16 autocast with activation checkpointing), and both report the same gathered
    validation and multi-view test metrics."""
    output = tmp_path / "ddp"
    launcher = [
        sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
        "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
        "--main_process_port", str(free_port()),
    ]  # fmt: skip
    result = run_example(
        script_args(
            synthetic, output, "--do_train", "--do_eval", "--do_predict",
            "--num_train_epochs", "2", "--lr_milestones", "1", "--learning_rate", "0.8",
            "--per_device_train_batch_size", "4", "--eval_every_epochs", "100", "--save_every_epochs", "100",
            "--num_clips", "2", "--num_crops", "1", "--average_clips", "score", "--dataloader_num_workers", "0",
            "--bf16", "--activation_checkpointing",
            "--log_level", "info", "--log_level_replica", "info", "--logging_steps", str(STEPS_PER_EPOCH),
        ),
        tmp_path,
        launcher=launcher,
    )  # fmt: skip
    output_text = result.stdout + result.stderr
    evals, tests = logged_metrics(output_text, "eval"), logged_metrics(output_text, "test")
    assert sorted(evals) == sorted(tests) == [0, 1], output_text[-3000:]
    assert "[rank 1/2]" in output_text
    assert accuracy_keys(evals[0]) == accuracy_keys(evals[1])
    assert tests[0] == tests[1]
    # 2 ranks x 4 clips: the global batch of 8 gives 12 steps per epoch and lr 0.8 * 8 / 64
    state = json.loads((output / "trainer_state.json").read_text())
    args = torch.load(output / "training_args.bin", weights_only=False)
    assert (args.world_size, args.bf16, args.activation_checkpointing) == (2, True, True)
    assert state["global_step"] == 2 * STEPS_PER_EPOCH
    lrs = [log["learning_rate"] for log in state["log_history"] if "learning_rate" in log]
    assert lrs == pytest.approx([0.1, 0.01])  # x 0.1 after epoch 1
    # every validation video was tested once: the ranks' halves were gathered
    result_json = json.loads((output / "result.json").read_text())
    assert result_json["num_videos"] == 48
    assert (result_json["protocol"]["views"], result_json["protocol"]["averaging"]) == (2, "score")
    assert [Path(v["video"]).name for v in result_json["videos"]] == [
        f"validation_{i:03d}.mp4" for i in range(48)
    ]
    scores = np.array([v["scores"] for v in result_json["videos"]])
    labels = np.array([v["label"] for v in result_json["videos"]])
    assert not np.allclose(scores.sum(axis=1), 1.0)  # 'score': mean logits, not probabilities
    assert {f"test_{k}": v for k, v in compute_video_metrics(scores, labels).items()} == pytest.approx(
        tests[0]
    )


def test_push_to_hub_uploads_weights_processor_code_and_a_card_with_measured_results(
    synthetic, trained, tmp_path
):
    """``--push_to_hub`` against a local server speaking the Hub API, with the real huggingface_hub client: the
    30-view test of the trained checkpoint, then the folder with its code and a card whose model-index holds the
    measured top-1 / top-5."""
    from _fake_hub import FakeHub

    hub = FakeHub()
    try:
        output = tmp_path / "publish"
        run_example(
            [
                "--model_name_or_path", str(trained["dir"]),
                "--data_root", str(synthetic.root),
                "--validation_ann_file", str(synthetic.ann_files["validation"]),
                "--label_file", str(synthetic.label_file),
                "--dataset_name", "moving-squares", "--modality", "video",
                "--clip_len", "8", "--frame_interval", "2", "--short_side", "32", "--crop_size", "32",
                "--test_crop_size", "32", "--use_cpu", "--do_predict", "--dataloader_num_workers", "0",
                "--output_dir", str(output), "--push_to_hub", "--hub_model_id", "tester/i3d-moving-squares",
            ],
            tmp_path,
            env={"HF_HUB_OFFLINE": "0", "HF_ENDPOINT": hub.url, "HF_TOKEN": "hf_fake_token"},
        )  # fmt: skip
    finally:
        hub.close()
    files = hub.repos["tester/i3d-moving-squares"]
    for name in (
        "config.json", "model.safetensors", "video_preprocessor_config.json", "README.md", "result.json",
        "configuration_i3d.py", "modeling_i3d.py", "video_processing_i3d.py",
    ):  # fmt: skip
        assert name in files, sorted(files)
    assert not any(name.startswith("checkpoint-") for name in files)
    assert hub.commits["tester/i3d-moving-squares"][-1] == "End of training"
    config = json.loads(files["config.json"])
    assert config["auto_map"]["AutoModelForVideoClassification"] == "modeling_i3d.I3DForVideoClassification"
    assert json.loads(files["video_preprocessor_config.json"])["auto_map"]["AutoVideoProcessor"].endswith(
        "I3DVideoProcessor"
    )
    pushed = {k: v for k, v in load_file(trained["dir"] / "model.safetensors").items()}
    (tmp_path / "pushed.safetensors").write_bytes(files["model.safetensors"])
    for key, tensor in load_file(tmp_path / "pushed.safetensors").items():
        torch.testing.assert_close(tensor, pushed[key], rtol=0, atol=0)

    result = json.loads(files["result.json"])
    card_path = tmp_path / "README.md"
    card_path.write_bytes(files["README.md"])
    card = ModelCard.load(card_path, ignore_metadata_errors=False)
    model_name, eval_results = model_index_to_eval_results(card.data.to_dict()["model-index"])
    assert model_name == "tester/i3d-moving-squares"
    measured = {(r.dataset_split, r.metric_config): r for r in eval_results}
    assert measured[("test", "top1")].metric_value == pytest.approx(
        100 * result["metrics"]["top1_acc"], abs=1e-3
    )
    assert measured[("test", "top5")].metric_value == pytest.approx(
        100 * result["metrics"]["top5_acc"], abs=1e-3
    )
    assert measured[("test", "top1")].metric_value >= 90
    assert measured[("test", "top1")].dataset_name == "moving-squares"
    assert measured[("test", "top1")].metric_args["views"] == 30
    assert card.data.pipeline_tag == "video-classification" and card.data.library_name == "transformers"


# ---------------------------------------------------------------------------------------------------------------
# Units: arguments, recipe pieces, checkpoints, models, cards
# ---------------------------------------------------------------------------------------------------------------
def _parser() -> HfArgumentParser:
    sys.path.insert(0, str(EXAMPLE.parent))
    try:
        import run_video_classification as example
    finally:
        sys.path.remove(str(EXAMPLE.parent))
    return HfArgumentParser(
        (example.ModelArguments, example.DataArguments, example.RecipeArguments, TrainingArguments)
    )


def test_arguments_default_to_the_mmaction2_recipe_from_the_command_line_and_json(tmp_path):
    _, _, recipe, args = parse_arguments(_parser(), ["--output_dir", str(tmp_path)])
    assert (args.learning_rate, args.weight_decay, args.max_grad_norm, args.num_train_epochs) == (
        0.01,
        1e-4,
        40.0,
        100,
    )
    assert (args.per_device_train_batch_size, args.eval_strategy, args.save_strategy) == (8, "epoch", "epoch")
    assert args.remove_unused_columns is False
    assert (recipe.lr_milestones, recipe.lr_gamma, recipe.momentum, recipe.base_batch_size) == (
        [40, 80],
        0.1,
        0.9,
        64,
    )
    assert (recipe.eval_every_epochs, recipe.save_every_epochs) == (5, 5)

    path = tmp_path / "args.json"
    path.write_text(
        json.dumps(
            {
                "output_dir": str(tmp_path),
                "learning_rate": 0.02,
                "lr_milestones": [3],
                "preset": "i3d-r50-heavy",
            }
        )
    )
    model, _, recipe, args = parse_arguments(_parser(), [str(path)])
    assert (model.preset, args.learning_rate, recipe.lr_milestones, args.weight_decay) == (
        "i3d-r50-heavy",
        0.02,
        [3],
        1e-4,
    )
    path.write_text(json.dumps({"output_dir": str(tmp_path), "learning_rat": 0.02}))
    with pytest.raises(ValueError, match="learning_rat"):
        parse_arguments(_parser(), [str(path)])
    path.write_text("[1, 2]")
    with pytest.raises(ValueError, match="expected a JSON object"):
        parse_arguments(_parser(), [str(path)])


def test_linear_lr_scaling(tmp_path):
    args = TrainingArguments(output_dir=str(tmp_path), learning_rate=0.01, per_device_train_batch_size=2,
                             gradient_accumulation_steps=2, use_cpu=True)  # fmt: skip
    assert scale_learning_rate(args, 64) == pytest.approx(0.01 * 4 / 64) == args.learning_rate
    args.learning_rate = 0.01
    assert scale_learning_rate(args, 0) == 0.01  # 0 = no scaling


def test_recipe_rejects_bad_milestones():
    with pytest.raises(ValueError, match="increasing positive epochs"):
        Recipe(lr_milestones=(80, 40))
    with pytest.raises(ValueError, match="eval_every_epochs"):
        Recipe(eval_every_epochs=0)


def test_sgd_decays_every_parameter_and_steps_by_epoch(tmp_path):
    """mmaction2's optimiser: one SGD group with weight decay on BN and biases too; MultiStepLR at epoch
    milestones counted in optimiser steps."""
    model = I3DForVideoClassification(
        I3DConfig(depth=18, base_channels=4, num_stages=1, inflate=1, num_labels=3)
    )
    args = TrainingArguments(output_dir=str(tmp_path), learning_rate=0.1, weight_decay=1e-4, use_cpu=True,
                             report_to="none", remove_unused_columns=False)  # fmt: skip
    trainer = VideoClassificationTrainer(
        model=model, args=args, recipe=Recipe(lr_milestones=(2, 3), momentum=0.9)
    )
    trainer.steps_per_epoch = 5
    optimizer = trainer.create_optimizer()
    assert isinstance(optimizer, torch.optim.SGD) and len(optimizer.param_groups) == 1
    group = optimizer.param_groups[0]
    assert (group["momentum"], group["weight_decay"], group["lr"]) == (0.9, 1e-4, 0.1)
    assert len(group["params"]) == len(list(model.parameters()))
    assert group["fused"]  # torch's fused kernel: the for-loop SGD's update up to FMA rounding (below)
    reference = torch.optim.SGD(
        [p.detach().clone().requires_grad_() for p in group["params"]], lr=0.1, momentum=0.9, weight_decay=1e-4
    )
    for step in range(3):
        for fused_param, plain_param in zip(group["params"], reference.param_groups[0]["params"]):
            grad = torch.randn(fused_param.shape, generator=torch.Generator().manual_seed(step))
            fused_param.grad, plain_param.grad = grad.clone(), grad.clone()
        optimizer.step()
        reference.step()
    for fused_param, plain_param in zip(group["params"], reference.param_groups[0]["params"]):
        torch.testing.assert_close(fused_param.detach(), plain_param.detach(), rtol=1e-6, atol=1e-7)
    scheduler = trainer.create_scheduler(num_training_steps=20)
    lrs = []
    for _ in range(20):
        lrs.append(scheduler.get_last_lr()[0])
        optimizer.step()
        scheduler.step()
    assert lrs == pytest.approx([0.1] * 10 + [0.01] * 5 + [0.001] * 5)


def test_epoch_interval_callback():
    from transformers import TrainerState

    callback = EpochIntervalCallback(eval_every=5, save_every=2)
    decisions = []
    for epoch in range(1, 8):
        state = TrainerState(epoch=float(epoch), global_step=10 * epoch, max_steps=70)
        control = TrainerControl(should_evaluate=True, should_save=True)
        callback.on_epoch_end(None, state, control)
        decisions.append((control.should_evaluate, control.should_save))
    assert decisions == [(False, False), (False, True), (False, False), (False, True), (True, False),
                         (False, True), (True, True)]  # fmt: skip


def test_last_checkpoint_skips_half_written_folders(tmp_path):
    assert last_checkpoint(tmp_path / "missing") is None
    assert last_checkpoint(tmp_path) is None
    for step, complete in ((5, True), (10, True), (15, False)):
        folder = tmp_path / f"checkpoint-{step}"
        folder.mkdir()
        if complete:
            (folder / "trainer_state.json").write_text("{}")
    (tmp_path / "checkpoint-x").mkdir()
    assert last_checkpoint(tmp_path) == str(tmp_path / "checkpoint-10")


def test_build_model_from_preset_inflated_2d_weights_and_fine_tuning(tmp_path):
    from torchvision.models import resnet18

    entry = get_entry("i3d-r34-kinetics400")
    overrides = {"depth": 18, "base_channels": 64, "num_stages": 2}
    model, how = build_model(entry, ["a", "b", "c"], config_overrides=overrides)
    assert model.config.num_labels == 3 and model.config.id2label == {0: "a", 1: "b", 2: "c"}
    assert (model.config.num_frames, model.config.zoo_name) == (32, "i3d-r34-kinetics400")
    assert "random initialisation" in how

    torch.manual_seed(0)
    resnet = resnet18()
    torch.save(resnet.state_dict(), tmp_path / "resnet18.pth")
    inflated, how = build_model(
        entry, ["a", "b", "c"], config_overrides=overrides, pretrained_2d=tmp_path / "resnet18.pth"
    )
    assert "inflated" in how
    stem = inflated.i3d.stem.conv.conv.weight  # (64, 3, kT, 7, 7): the 2D kernel / kT in every time slice
    kernel_t = stem.shape[2]
    for t in range(kernel_t):
        torch.testing.assert_close(stem[:, :, t], resnet.conv1.weight / kernel_t)

    inflated.save_pretrained(tmp_path / "folder")  # with its code: build_model registered the classes
    saved = json.loads((tmp_path / "folder" / "config.json").read_text())
    assert saved["auto_map"]["AutoModelForVideoClassification"] == "modeling_i3d.I3DForVideoClassification"
    assert (tmp_path / "folder" / "modeling_i3d.py").is_file()
    tuned, how = build_model(entry, [str(i) for i in range(5)], model_name_or_path=str(tmp_path / "folder"))
    assert tuned.config.num_labels == 5 and tuned.classifier.out_features == 5
    torch.testing.assert_close(tuned.i3d.stem.conv.conv.weight, stem)
    assert how.startswith("fine-tuned from")
    with pytest.raises(ValueError, match="cannot be combined"):
        build_model(
            entry, ["a"], model_name_or_path=str(tmp_path / "folder"), pretrained_2d=tmp_path / "resnet18.pth"
        )
    with pytest.raises(ValueError, match="not a ResNet3d model"):
        build_model(get_entry("i3d-inception-kinetics400"), ["a"], pretrained_2d=tmp_path / "resnet18.pth")


def test_trained_model_card_parses_strictly_with_every_measured_metric(tmp_path):
    entry = get_entry("i3d-r50-kinetics400")
    model = I3DForVideoClassification(
        I3DConfig(depth=18, base_channels=4, num_stages=1, inflate=1, num_labels=2)
    )
    info = CardInfo(entry=entry, dataset_name="My Clips", finetuned_from="org/base-i3d")
    info.results = {"validation": {"top1_acc": 0.5, "top5_acc": 1.0, "loss": 3.0},
                    "test": {"top1_acc": 0.625, "top5_acc": 1.0, "mean_class_accuracy": 0.6}}  # fmt: skip
    info.protocols = {"test": {"views": 30, "clips": 10, "crops": 3, "crop_size": 256, "averaging": "prob"}}
    card = build_model_card(info, model=model, repo_id="me/my-i3d")
    card.save(tmp_path / "README.md")
    loaded = ModelCard.load(tmp_path / "README.md", ignore_metadata_errors=False)
    name, results = model_index_to_eval_results(loaded.data.to_dict()["model-index"])
    assert name == "me/my-i3d"
    assert [(r.dataset_split, r.metric_config, r.metric_value) for r in results] == [
        ("test", "top1", 62.5), ("test", "top5", 100.0), ("test", "mean_class", 60.0),
        ("validation", "top1", 50.0), ("validation", "top5", 100.0),
    ]  # fmt: skip
    assert {r.dataset_type for r in results} == {"my-clips"}
    assert results[0].metric_args["views"] == 30
    assert loaded.data.base_model == "org/base-i3d"
    assert (
        "| test (multi-view test) | 62.50 | 100.00 | 60.00 | 10 clips x 3 crops of 256, 'prob' averaging |"
        in loaded.text
    )
    # one builder: the metadata, usage and citation of a zoo card, the numbers and body of a trained checkpoint
    zoo_card = build_model_card(entry)
    assert (loaded.data.tags, loaded.data.license, loaded.data.library_name) == (
        zoo_card.data.tags, zoo_card.data.license, zoo_card.data.library_name,
    )  # fmt: skip
    assert 'pipeline("video-classification", model="me/my-i3d")' in loaded.text
    assert "## Citation" in loaded.text and "carreira2017quo" in loaded.text
    assert "not trained here (evaluated only)" in loaded.text
    with pytest.raises(TypeError, match="the card of a trained checkpoint needs its model"):
        build_model_card(info, repo_id="me/my-i3d")


def test_write_results_json_checks_lengths(tmp_path):
    result = MultiViewResult(np.array([[0.2, 0.8]]), np.array([1]), {"top1_acc": 1.0}, {"views": 1})
    path = write_results_json(tmp_path / "r" / "result.json", result, ["a.mp4"], ["x", "y"])
    assert json.loads(path.read_text())["videos"] == [{"video": "a.mp4", "label": 1, "scores": [0.2, 0.8]}]
    with pytest.raises(ValueError, match="2 video names for 1 results"):
        write_results_json(path, result, ["a.mp4", "b.mp4"], ["x", "y"])
