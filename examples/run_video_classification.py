#!/usr/bin/env python
"""Train, evaluate, test (30 views) and publish I3D video classifiers: mmaction2's ``tools/train.py`` and
``tools/test.py``, the transformers way.

    # one process (CPU or one GPU)
    python examples/run_video_classification.py --preset i3d-r50-kinetics400 --pretrained_2d resnet50.pth \\
        --data_root data/kinetics400 --train_ann_file train_list.txt --validation_ann_file val_list.txt \\
        --label_file labels.txt --output_dir work_dirs/i3d_r50 --do_train --do_eval --do_predict
    # several GPUs / machines: the same command under `accelerate launch --multi_gpu --num_processes N ...`
    # arguments from a JSON file
    python examples/run_video_classification.py args.json

A mistake (a missing list or label file, a label out of range, an unknown preset or argument, a batch size of 0)
prints one line ``run_video_classification.py: error: ...`` and exits with 1 (2 for the command line); ``--debug``
shows the traceback. ``--on_bad_video skip`` replaces videos that cannot be read by others of the list instead of
stopping (mmaction2 stops), and says at the end how many.

Defaults follow the mmaction2 I3D recipe (``hf_i3d.training.SEED_RECIPE``): SGD, lr 0.01 per 64 clips scaled
linearly to the global batch, momentum 0.9, weight decay 1e-4, gradient clipping at 40, lr x 0.1 at epochs 40 and
80 of 100, validation and a checkpoint every 5 epochs. ``--do_predict`` runs the multi-view test of the preset
(10 clips x 3 crops for the mmaction2 models; ``hf_i3d.evaluation``) and writes per-video scores to ``--out``
(``result.json``).
Training resumes from the newest complete checkpoint in ``--output_dir`` unless ``--resume_from_checkpoint``
names one.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path

import transformers
from transformers import HfArgumentParser, TrainingArguments, enable_full_determinism, set_seed
from transformers.trainer_utils import IntervalStrategy

from hf_i3d.convert import parse_overrides
from hf_i3d.cpu_training import optimize_for_cpu_training
from hf_i3d.data import collate_clips, load_clip_datasets, skip_stats
from hf_i3d.decoding import DEFAULT_VIDEO_BACKEND, VIDEO_BACKENDS
from hf_i3d.evaluation import evaluate_multiview, write_results_json
from hf_i3d.inference import keep_freed_memory
from hf_i3d.metrics import build_compute_metrics
from hf_i3d.modelcard import CardInfo, evaluation_protocol
from hf_i3d.training import (
    SEED_RECIPE,
    Recipe,
    VideoClassificationTrainer,
    build_model,
    build_processor,
    data_settings,
    last_checkpoint,
    parse_arguments,
    resolve_entry,
    scale_learning_rate,
)

logger = logging.getLogger("run_video_classification")


@dataclass
class ModelArguments:
    preset: str | None = field(
        default=None,
        metadata={
            "help": "Zoo name giving the architecture and data settings (default: the zoo name of "
            "--model_name_or_path, else i3d-r50-kinetics400). Alone, it trains that architecture from scratch."
        },
    )
    model_name_or_path: str | None = field(
        default=None,
        metadata={
            "help": "Converted folder, Hub id or zoo name to fine-tune (a new head if the classes differ)."
        },
    )
    pretrained_2d: str | None = field(
        default=None,
        metadata={
            "help": "2D ImageNet ResNet weights (torchvision/transformers state dict) to inflate (pretrained2d)."
        },
    )
    config_overrides: list[str] = field(
        default_factory=list, metadata={"help": "Config fields as key=value, e.g. depth=18 base_channels=32."}
    )
    average_clips: str | None = field(
        default=None,
        metadata={
            "help": "Multi-view averaging of --do_predict: 'prob' or 'score' (default: the model config's)."
        },
    )
    max_views_per_batch: int | None = field(
        default=None,
        metadata={"help": "Views per forward pass in --do_predict (bounds memory; same result)."},
    )


@dataclass
class DataArguments:
    data_root: str = field(
        default=".", metadata={"help": "Folder the paths of the annotation lists are relative to."}
    )
    train_ann_file: str | None = field(
        default=None, metadata={"help": "mmaction2 annotation list of training videos."}
    )
    validation_ann_file: str | None = field(
        default=None, metadata={"help": "Annotation list of validation videos."}
    )
    test_ann_file: str | None = field(
        default=None,
        metadata={"help": "Annotation list for --do_predict (default: the validation list, as mmaction2)."},
    )
    label_file: str | None = field(
        default=None, metadata={"help": "Class names, one per line, in label order."}
    )
    dataset_name: str | None = field(
        default=None,
        metadata={
            "help": "Without annotation lists: a Hub dataset id or 'videofolder' (see DatasetsArguments); with "
            "them: the dataset name for the model card."
        },
    )
    modality: str | None = field(
        default=None, metadata={"help": "'video' or 'rawframes' (default: the preset's)."}
    )
    filename_tmpl: str = field(
        default="img_{:05}.jpg", metadata={"help": "Frame file names of rawframe folders."}
    )
    start_index: int | None = field(
        default=None, metadata={"help": "First frame index (default 1 rawframes, 0 video)."}
    )
    with_offset: bool = field(default=False, metadata={"help": "Rawframe lists carry an offset column."})
    video_backend: str | None = field(
        default=None,
        metadata={
            "help": f"Video decoder, one of {', '.join(VIDEO_BACKENDS)} (default {DEFAULT_VIDEO_BACKEND})."
        },
    )
    clip_len: int | None = field(default=None, metadata={"help": "Frames per clip (default: the preset's)."})
    frame_interval: int | None = field(default=None, metadata={"help": "Distance between sampled frames."})
    num_clips: int | None = field(default=None, metadata={"help": "Test clips per video (10 in the zoo)."})
    num_crops: int | None = field(default=None, metadata={"help": "Test crops per clip: 3 (ThreeCrop) or 1."})
    short_side: int | None = field(default=None, metadata={"help": "Frames are resized to this short side."})
    crop_size: int | None = field(default=None, metadata={"help": "Training / validation crop."})
    test_crop_size: int | None = field(default=None, metadata={"help": "Test crop (256 in the zoo)."})
    flip_ratio: float | None = field(
        default=None,
        metadata={"help": "Horizontal flip probability in training (0.5; 0 for direction classes)."},
    )
    out: str | None = field(
        default=None, metadata={"help": "result.json of --do_predict (default: OUTPUT_DIR/result.json)."}
    )
    on_bad_video: str = field(
        default="raise",
        metadata={
            "help": "A video that cannot be read (missing, corrupt) or a line whose label is out of range: 'raise' "
            "stops with the list line named; 'skip' drops bad labels and replaces unreadable videos by others of "
            "the list, and the run ends by saying how many.",
            "choices": ["raise", "skip"],
        },
    )


@dataclass
class RecipeArguments:
    lr_milestones: list[int] = field(
        default_factory=lambda: [40, 80],
        metadata={"help": "Epochs at which the lr is multiplied by --lr_gamma."},
    )
    lr_gamma: float = field(default=0.1, metadata={"help": "lr decay factor at each milestone."})
    momentum: float = field(default=0.9, metadata={"help": "SGD momentum."})
    base_batch_size: int = field(
        default=64,
        metadata={"help": "Global batch --learning_rate is given for (linear scaling); 0: no scaling."},
    )
    eval_every_epochs: int = field(
        default=5, metadata={"help": "Validate every N epochs (and after the last)."}
    )
    save_every_epochs: int = field(
        default=5, metadata={"help": "Checkpoint every N epochs (and after the last)."}
    )
    keep_freed_memory: bool = field(
        default=True,
        metadata={
            "help": "On CPU, keep freed memory in the process for reuse (hf_i3d.inference.keep_freed_memory, a "
            "glibc setting): no fresh page faults for the activations of every step, about 10%% faster steps "
            "(benchmarks/RESULTS.md), the same numbers. --keep_freed_memory False leaves the allocator alone."
        },
    )
    optimize_cpu_training: bool = field(
        default=True,
        metadata={
            "help": "On CPU, run hf_i3d.cpu_training.optimize_for_cpu_training on the model: weights and activations "
            "in channels-last 3D (oneDNN's own layout), the last stages' small-map convolutions as matrix "
            "products, the RGB stem's forward in the default layout and the 3x1x1 convolutions' weight gradients as "
            "matrix products: the step 1.32-1.35x mmaction2's, against 1.14-1.19x with channels-last alone "
            "(benchmarks/RESULTS.md); the same arithmetic up to float rounding and the same state dict. --optimize_cpu_training False trains the plain model."
        },
    )


# --- datasets: a Hub dataset id or a local videofolder instead of annotation lists ------------------------------
@dataclass
class DatasetsArguments:
    dataset_config_name: str | None = field(
        default=None, metadata={"help": "The configuration of --dataset_name (datasets' `name`)."}
    )
    train_dir: str | None = field(
        default=None, metadata={"help": "videofolder of training videos: one sub-folder of videos per class."}
    )
    validation_dir: str | None = field(default=None, metadata={"help": "videofolder of validation videos."})
    test_dir: str | None = field(
        default=None, metadata={"help": "videofolder for --do_predict (default: the validation split)."}
    )
    video_column_name: str = field(
        default="video", metadata={"help": "Column of video file paths or datasets.Video() values."}
    )
    label_column_name: str = field(
        default="label",
        metadata={"help": "Column of labels: a ClassLabel (its names become id2label) or ints."},
    )
    streaming: bool = field(
        default=False,
        metadata={
            "help": "Stream the dataset (IterableDataset: nothing downloaded ahead, one video on disk at a time); "
            "training then needs --max_steps."
        },
    )
    dataset_revision: str | None = field(default=None, metadata={"help": "Revision of the Hub dataset."})

    def wanted(self, data_args: DataArguments) -> bool:
        """The datasets route: no annotation list given, and a dataset name or a videofolder instead."""
        lists = (data_args.train_ann_file, data_args.validation_ann_file, data_args.test_ann_file)
        sources = (data_args.dataset_name, self.train_dir, self.validation_dir, self.test_dir)
        return not any(lists) and any(sources)


def _hf_clip_datasets(data_args, hub_args: DatasetsArguments, training_args, settings):
    """The splits of a Hub dataset or a videofolder, with the clip pipelines of the annotation-list route."""
    from hf_i3d.hf_datasets import DatasetFormatError, clip_datasets_from_hf, load_hf_video_dataset

    if hub_args.streaming and training_args.do_train and training_args.max_steps <= 0:
        raise SystemExit("--streaming --do_train needs --max_steps (a stream has no length)")
    if hub_args.streaming and training_args.do_predict:
        raise SystemExit(
            "--do_predict needs a map-style dataset (result.json lists the videos): drop --streaming"
        )
    raw = load_hf_video_dataset(
        data_args.dataset_name,
        hub_args.dataset_config_name,
        train_dir=hub_args.train_dir,
        validation_dir=hub_args.validation_dir,
        test_dir=hub_args.test_dir,
        streaming=hub_args.streaming,
        revision=hub_args.dataset_revision,
        token=training_args.hub_token,
    )
    wanted = {"train": training_args.do_train, "validation": training_args.do_train or training_args.do_eval}
    wanted["test"] = training_args.do_predict
    splits = {
        split: raw[split] for split in ("train", "validation", "test") if split in raw and wanted[split]
    }
    if training_args.do_predict and "test" not in splits:
        if "validation" not in raw:
            raise SystemExit("--do_predict needs a test or validation split")
        splits["test"] = raw["validation"]
    for split, flag, needed in (
        ("train", "--do_train", training_args.do_train),
        ("validation", "--do_eval", training_args.do_eval),
    ):
        if needed and split not in splits:
            raise SystemExit(f"{flag} needs a {split} split (the dataset has {sorted(raw)})")
    if not splits:
        raise SystemExit("nothing to do: pass --do_train, --do_eval and/or --do_predict")
    label_names = None
    if data_args.label_file:
        from hf_i3d.annotations import read_label_names

        label_names = read_label_names(data_args.label_file)
    if not data_args.dataset_name or data_args.dataset_name == "videofolder":
        folder = hub_args.train_dir or hub_args.validation_dir or hub_args.test_dir
        data_args.dataset_name = Path(folder).resolve().parent.name
    try:
        return clip_datasets_from_hf(
            splits,
            settings,
            video_column=hub_args.video_column_name,
            label_column=hub_args.label_column_name,
            label_names=label_names,
            seed=training_args.data_seed if training_args.data_seed is not None else training_args.seed,
            backend=data_args.video_backend,
            train_overrides={} if data_args.flip_ratio is None else {"flip_ratio": data_args.flip_ratio},
        )
    except DatasetFormatError as error:
        raise SystemExit(str(error)) from None


# ---------------------------------------------------------------------------------------------------------------
PROG = "run_video_classification.py"


class UsageError(ValueError):
    """A command-line mistake (unknown argument, missing list for a mode, a batch size of 0): exit code 2."""


class _ArgumentParser(HfArgumentParser):
    """HfArgumentParser whose argparse errors (a value of the wrong type, a missing value) are a
    :class:`UsageError`, one line, instead of the whole usage text before the message."""

    def error(self, message: str):
        raise UsageError(f"{message} (see --help)")


def _check_argument_names(parser: HfArgumentParser, argv: list[str]) -> None:
    """An unknown ``--name`` (a misspelling) is a :class:`UsageError` with the nearest known names, instead of
    HfArgumentParser's "Some specified arguments are not used" traceback."""
    known = {option for action in parser._actions for option in action.option_strings}
    for token in argv:
        name = token.split("=", 1)[0]
        if name.startswith("--") and name not in known:
            spellings = sorted(option for option in known if "-" not in option[2:])  # not the --a-b aliases
            close = difflib.get_close_matches(name, spellings, n=3, cutoff=0.7)
            hint = f"; did you mean {' or '.join(close)}?" if close else " (see --help)"
            raise UsageError(f"unknown argument {name}{hint}")


def main(argv: list[str] | None = None) -> dict:
    parser = _ArgumentParser(
        (ModelArguments, DataArguments, RecipeArguments, TrainingArguments, DatasetsArguments)
    )
    argv = list(sys.argv[1:] if argv is None else argv)
    if not (len(argv) == 1 and argv[0].endswith(".json")):
        _check_argument_names(parser, argv)
    model_args, data_args, recipe_args, training_args, hub_args = parse_arguments(parser, argv, SEED_RECIPE)
    eval_asked = "--do_eval" in argv or (len(argv) == 1 and '"do_eval"' in Path(argv[0]).read_text())
    for name in ("per_device_train_batch_size", "per_device_eval_batch_size"):
        if getattr(training_args, name) < 1:
            raise UsageError(f"--{name} must be at least 1, got {getattr(training_args, name)}")

    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stdout)
    log_level = training_args.get_process_log_level()
    logger.setLevel(logging.INFO if log_level == logging.WARNING and training_args.should_log else log_level)
    logging.getLogger("hf_i3d").setLevel(logger.level)
    transformers.utils.logging.set_verbosity(log_level)
    rank, world = training_args.process_index, training_args.world_size
    if recipe_args.keep_freed_memory and training_args.device.type == "cpu" and keep_freed_memory():
        logger.info(
            "CPU run: freed memory is kept in the process for reuse (--keep_freed_memory False to not)"
        )

    entry = resolve_entry(model_args.preset, model_args.model_name_or_path)
    settings = data_settings(
        entry,
        **{
            name: getattr(data_args, name)
            for name in (
                "modality",
                "clip_len",
                "frame_interval",
                "num_clips",
                "num_crops",
                "short_side",
                "crop_size",
                "test_crop_size",
            )
        },
    )
    entry = dataclasses.replace(entry, data=settings)

    if hub_args.wanted(data_args):
        settings = dataclasses.replace(settings, modality="video")  # datasets hold videos, not frame folders
        entry = dataclasses.replace(entry, data=settings)
        with training_args.main_process_first(desc="loading the dataset"):
            data = _hf_clip_datasets(data_args, hub_args, training_args, settings)
    else:
        ann_files = {}
        if training_args.do_train:
            ann_files["train"] = _required(data_args.train_ann_file, "--train_ann_file", "--do_train")
        if data_args.validation_ann_file and (training_args.do_train or training_args.do_eval):
            ann_files["validation"] = data_args.validation_ann_file
        if training_args.do_eval and "validation" not in ann_files:
            if eval_asked:
                raise UsageError("--do_eval needs --validation_ann_file")
            training_args.do_eval = (
                False  # set by the recipe's evaluation strategy, not asked: no validation list
            )
        if training_args.do_predict:
            ann_files["test"] = _required(
                data_args.test_ann_file or data_args.validation_ann_file, "--test_ann_file", "--do_predict"
            )
        if not ann_files:
            raise UsageError(
                "nothing to do: pass --do_train, --do_eval and/or --do_predict with annotation lists"
            )
        with training_args.main_process_first(desc="reading annotation lists"):
            data = load_clip_datasets(
                data_args.data_root,
                ann_files,
                settings,
                label_file=data_args.label_file,
                seed=training_args.data_seed if training_args.data_seed is not None else training_args.seed,
                backend=data_args.video_backend,
                train_overrides={} if data_args.flip_ratio is None else {"flip_ratio": data_args.flip_ratio},
                filename_tmpl=data_args.filename_tmpl,
                start_index=data_args.start_index,
                with_offset=data_args.with_offset,
                on_error=data_args.on_bad_video,
            )
    splits, label_names = data.splits, data.label_names

    # seed before the model is built: its random initialisation is part of the run
    if training_args.full_determinism:
        enable_full_determinism(training_args.seed)
    else:
        set_seed(training_args.seed)
    model, initialisation = build_model(
        entry,
        label_names,
        model_name_or_path=model_args.model_name_or_path,
        pretrained_2d=model_args.pretrained_2d,
        config_overrides=parse_overrides(model_args.config_overrides),
        settings=settings,
    )
    if recipe_args.optimize_cpu_training and training_args.device.type == "cpu":
        optimize_for_cpu_training(model)
        logger.info(
            "CPU run: channels-last 3D, small-map convolutions as matrix products, the stem's forward in the "
            "default layout (hf_i3d.cpu_training; --optimize_cpu_training False to not)"
        )
    processor = build_processor(entry, settings)
    recipe = Recipe(
        lr_milestones=tuple(recipe_args.lr_milestones),
        lr_gamma=recipe_args.lr_gamma,
        momentum=recipe_args.momentum,
        base_batch_size=recipe_args.base_batch_size,
        eval_every_epochs=recipe_args.eval_every_epochs,
        save_every_epochs=recipe_args.save_every_epochs,
    )
    if training_args.do_train:
        scale_learning_rate(training_args, recipe.base_batch_size)
    if "validation" not in splits and training_args.eval_strategy != IntervalStrategy.NO:
        logger.info("no validation list: evaluation during training is off")
        training_args.eval_strategy = IntervalStrategy.NO
        training_args.load_best_model_at_end = False
    card = CardInfo(
        entry=entry,
        dataset_name=data_args.dataset_name or Path(data_args.data_root).resolve().name,
        finetuned_from=model_args.model_name_or_path,
        initialisation=initialisation,
    )
    trainer = VideoClassificationTrainer(
        model=model,
        args=training_args,
        train_dataset=splits.get("train"),
        eval_dataset=splits.get("validation"),
        data_collator=collate_clips,
        compute_metrics=build_compute_metrics(topk=tuple(k for k in (1, 5) if k <= len(label_names))),
        processing_class=processor,
        recipe=recipe,
        card=card,
    )

    results: dict = {}
    if training_args.do_train:
        checkpoint = training_args.resume_from_checkpoint or last_checkpoint(training_args.output_dir)
        if checkpoint:
            logger.info("resuming from %s", checkpoint)
        train_result = trainer.train(resume_from_checkpoint=checkpoint)
        trainer.save_model()
        trainer.log_metrics("train", train_result.metrics)
        trainer.save_metrics("train", train_result.metrics)
        trainer.save_state()
        results.update(train_result.metrics)

    if training_args.do_eval:
        metrics = trainer.evaluate()
        trainer.log_metrics("eval", metrics)
        trainer.save_metrics("eval", metrics)
        logger.info("[rank %d/%d] eval metrics: %s", rank, world, json.dumps(metrics, sort_keys=True))
        card.results["validation"] = {k.removeprefix("eval_"): v for k, v in metrics.items()}
        card.protocols["validation"] = {"views": 1, "clips": 1, "crops": 1, "crop_size": settings.crop_size}
        results.update(metrics)

    if training_args.do_predict:
        average = model_args.average_clips or model.config.average_clips
        protocol = {**evaluation_protocol(entry), "averaging": average}
        result = evaluate_multiview(
            trainer.model,
            splits["test"],
            average=average,
            max_views_per_batch=model_args.max_views_per_batch,
            num_workers=training_args.dataloader_num_workers,
            protocol=protocol,
        )
        metrics = {f"test_{k}": v for k, v in result.metrics.items()}
        out = Path(data_args.out or Path(training_args.output_dir) / "result.json")
        if trainer.is_world_process_zero():
            write_results_json(out, result, data.videos["test"], label_names)
        trainer.log_metrics("test", metrics)
        trainer.save_metrics("test", metrics)
        logger.info("[rank %d/%d] test metrics: %s", rank, world, json.dumps(metrics, sort_keys=True))
        card.results["test"] = result.metrics
        card.protocols["test"] = protocol
        results.update(metrics)

    if data_args.on_bad_video == "skip" and not hub_args.wanted(data_args):
        replaced = {split: skip_stats(dataset)["skipped"] for split, dataset in splits.items()}
        logger.warning(
            "--on_bad_video skip: %d unreadable video(s) replaced by others of their list (%s); the lines are "
            "named in the warnings above",
            sum(replaced.values()),
            ", ".join(f"{split} {count}" for split, count in replaced.items()),
        )
        results["bad_videos_replaced"] = sum(replaced.values())

    if training_args.push_to_hub:
        trainer.push_to_hub(commit_message="End of training")
    elif training_args.do_train:
        trainer.create_model_card()
    trainer.accelerator.end_training()
    return results


def _required(value: str | None, flag: str, mode: str) -> str:
    if not value:
        raise UsageError(f"{mode} needs {flag}")
    return value


def run(argv: list[str] | None = None) -> int:
    """:func:`main` as a command: a user's mistake prints one line ``run_video_classification.py: error: ...``
    (exit 2 for the command line, 1 otherwise); ``--debug`` anywhere shows the traceback instead."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    argv = [a for a in argv if a != "--debug"]
    if debug:
        main(argv)
        return 0
    try:
        main(argv)
    except UsageError as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return 2
    except (ValueError, KeyError, OSError, ImportError) as error:
        print(f"{PROG}: error: {_error_line(error)}", file=sys.stderr)
        return 1
    return 0


def _error_line(error: BaseException) -> str:
    """The message of ``error`` on one line; for an error re-raised from a DataLoader worker (whose message is the
    worker's whole traceback) the original error's message."""
    text = str(error.args[0] if isinstance(error, KeyError) and error.args else error)
    if "Original Traceback" in text:
        last = [line for line in text.splitlines() if line.strip()][-1]
        text = last.split(": ", 1)[1] if ": " in last else last
    return " ".join(text.split()) or type(error).__name__


if __name__ == "__main__":
    sys.exit(run())
