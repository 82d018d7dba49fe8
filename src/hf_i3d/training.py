"""Training and evaluation the mmaction2 way, on ``transformers.Trainer``: what ``examples/run_video_classification.py``
runs, kept here so a user can reuse it.

* The I3D recipe (mmaction2 ``configs/recognition/i3d/*.py``, identical from v0.5.0 to HEAD): SGD with momentum 0.9
  and weight decay 1e-4 on every parameter, lr 0.01 for a global batch of 64 clips (scaled linearly to the actual
  batch), gradient clipping at norm 40, lr x 0.1 at epochs 40 and 80 of 100 (``lr_config = dict(policy='step',
  step=[40, 80])``), validation and a checkpoint every 5 epochs. :data:`SEED_RECIPE` holds the ``TrainingArguments``
  part, :class:`VideoClassificationTrainer` the optimiser and the step schedule, :class:`EpochIntervalCallback`
  the 5-epoch interval.
* Models: a zoo preset from scratch, optionally initialised from 2D ImageNet ResNet weights (mmaction2
  ``pretrained2d=True``), or a converted checkpoint / Hub id fine-tuned with a new head (:func:`build_model`).
* The multi-view test of mmaction2 ``tools/test.py`` (10 clips x 3 crops, 'prob' or 'score' averaging), spread
  over the processes of a distributed launch and gathered, with mmaction2's metrics and a ``result.json`` of
  per-video scores (:func:`evaluate_multiview`).
* A model card whose ``model-index`` carries the measured top-1 / top-5 (:func:`build_trained_model_card`), which
  the Trainer's automatic card cannot express; :class:`VideoClassificationTrainer` writes it when it pushes.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from huggingface_hub import EvalResult, ModelCard, ModelCardData
from transformers import Trainer, TrainerCallback, TrainingArguments

from .data import ClipEpochCallback
from .metrics import compute_video_metrics
from .zoo import DataSettings, ZooEntry, canonical_name, get_entry

logger = logging.getLogger(__name__)

# TrainingArguments of the mmaction2 I3D recipe (configs/recognition/i3d, v0.5.0 .. HEAD): 8 clips per GPU on 8 GPUs,
# SGD lr 0.01 (for those 64 clips), weight decay 1e-4, grad clip 40, 100 epochs, validation every 5 epochs.
SEED_RECIPE: dict[str, Any] = {
    "learning_rate": 0.01,
    "weight_decay": 1e-4,
    "max_grad_norm": 40.0,
    "num_train_epochs": 100,
    "per_device_train_batch_size": 8,
    "per_device_eval_batch_size": 8,
    "eval_strategy": "epoch",
    "save_strategy": "epoch",
    "logging_steps": 20,
    "dataloader_num_workers": 2,
    "remove_unused_columns": False,
    "metric_for_best_model": "top1_acc",
}
BASE_BATCH_SIZE = 64  # the batch the recipe's lr is written for (8 GPUs x 8 clips)
CHECKPOINT_PATTERN = re.compile(r"^checkpoint-(\d+)$")
RESULT_FORMAT = "hf_i3d.test_results/1"


# ---------------------------------------------------------------------------------------------------------------
# The recipe
# ---------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Recipe:
    """The parts of the mmaction2 schedule that ``TrainingArguments`` cannot express.

    ``lr_milestones`` are epochs (``lr_config.step``) at which the lr is multiplied by ``lr_gamma``; ``momentum`` is
    SGD's; ``base_batch_size`` is the global batch ``learning_rate`` is meant for (linear scaling rule; 0 = use
    ``learning_rate`` unscaled); ``eval_every_epochs`` / ``save_every_epochs`` thin out the per-epoch evaluation and
    checkpoints (mmaction2 ``evaluation.interval`` / ``checkpoint_config.interval``).
    """

    lr_milestones: tuple[int, ...] = (40, 80)
    lr_gamma: float = 0.1
    momentum: float = 0.9
    base_batch_size: int = BASE_BATCH_SIZE
    eval_every_epochs: int = 5
    save_every_epochs: int = 5

    def __post_init__(self) -> None:
        milestones = tuple(int(m) for m in self.lr_milestones)
        if any(m < 1 for m in milestones) or list(milestones) != sorted(set(milestones)):
            raise ValueError(
                f"lr_milestones must be increasing positive epochs, got {list(self.lr_milestones)}"
            )
        object.__setattr__(self, "lr_milestones", milestones)
        if self.base_batch_size < 0:
            raise ValueError(
                f"base_batch_size must be >= 0 (0 disables lr scaling), got {self.base_batch_size}"
            )
        for name in ("eval_every_epochs", "save_every_epochs"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be a positive number of epochs, got {getattr(self, name)}")


def parse_arguments(
    parser, argv: Sequence[str] | None = None, defaults: dict[str, Any] | None = None
) -> tuple:
    """Parse an ``HfArgumentParser``'s dataclasses from ``argv`` (default ``sys.argv[1:]``), or from one ``.json``
    file, with ``defaults`` (e.g. :data:`SEED_RECIPE`) replacing the dataclass defaults in both cases."""
    import sys

    argv = sys.argv[1:] if argv is None else [str(a) for a in argv]
    defaults = dict(SEED_RECIPE if defaults is None else defaults)
    if len(argv) == 1 and argv[0].endswith(".json"):
        path = Path(argv[0])
        try:
            values = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as error:
            raise ValueError(f"{path}: not valid JSON ({error})") from None
        if not isinstance(values, dict):
            raise ValueError(f"{path}: expected a JSON object of argument names and values")
        return tuple(parser.parse_dict({**defaults, **values}))
    parser.set_defaults(**defaults)
    return tuple(parser.parse_args_into_dataclasses(args=argv))


def global_batch_size(args: TrainingArguments) -> int:
    """Clips per optimiser step over all processes: per-device batch x processes x gradient accumulation."""
    return args.per_device_train_batch_size * args.world_size * args.gradient_accumulation_steps


def scale_learning_rate(args: TrainingArguments, base_batch_size: int = BASE_BATCH_SIZE) -> float:
    """Apply the linear scaling rule in place: ``args.learning_rate`` (given for ``base_batch_size`` clips) becomes
    ``learning_rate * global_batch / base_batch_size`` (mmaction2 README: "lr=0.01 for 4 GPUs x 2 video/gpu and
    lr=0.08 for 16 GPUs x 4 video/gpu"). ``base_batch_size=0`` leaves it alone. Returns the lr in effect."""
    if base_batch_size:
        batch = global_batch_size(args)
        scaled = args.learning_rate * batch / base_batch_size
        logger.info(
            "linear lr scaling: %g for %d clips per step -> %g for %d",
            args.learning_rate,
            base_batch_size,
            scaled,
            batch,
        )
        args.learning_rate = scaled
    return args.learning_rate


class EpochIntervalCallback(TrainerCallback):
    """Evaluate every ``eval_every`` and checkpoint every ``save_every`` epochs, and both after the last epoch
    (mmaction2 ``EvalHook(interval=5)`` / ``CheckpointHook(interval=5)``) on top of the ``"epoch"`` strategies.

    The decision depends on the epoch number only, so a resumed run evaluates and saves at the same epochs.
    """

    def __init__(self, eval_every: int = 5, save_every: int = 5) -> None:
        self.eval_every, self.save_every = eval_every, save_every

    def on_epoch_end(self, args, state, control, **kwargs):
        epoch = round(state.epoch or 0)
        last = state.global_step >= state.max_steps
        if control.should_evaluate:
            control.should_evaluate = last or epoch % self.eval_every == 0
        if control.should_save:
            control.should_save = last or epoch % self.save_every == 0
        return control


@dataclass
class CardInfo:
    """What the model card of a trained checkpoint says beyond the model itself (see :func:`build_trained_model_card`).

    ``results`` maps a split name to its metrics (``top1_acc``, ``top5_acc``, ``mean_class_accuracy`` as fractions);
    ``protocols`` maps it to the evaluation protocol (views, crops, averaging).
    """

    entry: ZooEntry
    dataset_name: str
    finetuned_from: str | None = None
    initialisation: str = "random (from scratch)"
    results: dict[str, dict[str, float]] = field(default_factory=dict)
    protocols: dict[str, dict[str, Any]] = field(default_factory=dict)


class VideoClassificationTrainer(Trainer):
    """``Trainer`` with the mmaction2 optimiser and schedule, and a model card that carries measured results.

    * Optimiser: ``torch.optim.SGD(lr, momentum, weight_decay)`` over every trainable parameter (mmaction2 decays
      BatchNorm and bias too; the default Trainer optimiser would exempt them), with torch's fused kernel where the
      parameters allow it (CPU or CUDA floating-point tensors): the same update, one pass over each parameter.
    * Schedule: ``MultiStepLR`` with the epoch milestones of ``recipe`` turned into optimiser steps (mmaction2
      ``lr_config = dict(policy='step', step=[40, 80])``, changed by epoch); no warmup.
    * Gradient clipping comes from ``args.max_grad_norm`` (40 in :data:`SEED_RECIPE`).
    * The train split's seeded clip transform learns the epoch (``hf_i3d.data.ClipEpochCallback``), so every epoch
      draws new, reproducible crops.
    * ``create_model_card`` (called by ``push_to_hub``) writes :func:`build_trained_model_card` when ``card`` is
      given, so the pushed README holds the measured top-1 / top-5 in its ``model-index``.
    """

    def __init__(self, *args: Any, recipe: Recipe | None = None, card: CardInfo | None = None, **kwargs: Any):
        self.recipe = recipe or Recipe()
        self.card = card
        self.steps_per_epoch: int | None = None
        super().__init__(*args, **kwargs)
        self.add_callback(ClipEpochCallback())
        self.add_callback(EpochIntervalCallback(self.recipe.eval_every_epochs, self.recipe.save_every_epochs))

    def set_initial_training_values(self, args, dataloader):
        values = super().set_initial_training_values(args, dataloader)
        self.steps_per_epoch = values[1]  # num_update_steps_per_epoch, as the Trainer counts them
        return values

    def create_optimizer(self, model=None) -> torch.optim.Optimizer:
        if self.optimizer is None:
            model = self.model if model is None else model
            params = [p for p in model.parameters() if p.requires_grad]
            fused = bool(params) and all(
                p.device.type in ("cpu", "cuda") and p.is_floating_point() for p in params
            )
            self.optimizer = torch.optim.SGD(
                params,
                lr=self.args.learning_rate,
                momentum=self.recipe.momentum,
                weight_decay=self.args.weight_decay,
                fused=fused or None,
            )
        return self.optimizer

    def create_scheduler(self, num_training_steps: int, optimizer=None):
        if self.lr_scheduler is None:
            if self.steps_per_epoch is None:
                raise RuntimeError(
                    "the epoch-based lr schedule needs the number of steps per epoch (train first)"
                )
            milestones = [m * self.steps_per_epoch for m in self.recipe.lr_milestones]
            self.lr_scheduler = torch.optim.lr_scheduler.MultiStepLR(
                optimizer or self.optimizer, milestones=milestones, gamma=self.recipe.lr_gamma
            )
            self._created_lr_scheduler = True
        return self.lr_scheduler

    def create_model_card(self, *args: Any, model_name: str | None = None, **kwargs: Any) -> None:
        if self.card is None:
            return super().create_model_card(*args, model_name=model_name, **kwargs)
        if not self.is_world_process_zero():
            return None
        repo_id = self.args.hub_model_id or model_name or Path(self.args.output_dir).name
        card = build_trained_model_card(
            self.card, model=self.model, args=self.args, recipe=self.recipe, repo_id=repo_id
        )
        card.save(Path(self.args.output_dir) / "README.md")
        return None


def last_checkpoint(output_dir: str | os.PathLike) -> str | None:
    """The newest complete ``checkpoint-N`` folder in ``output_dir`` (one holding ``trainer_state.json``, which the
    Trainer writes after the weights, optimiser and RNG states), or None. A folder left half-written by a killed
    run is skipped, unlike ``transformers.trainer_utils.get_last_checkpoint``."""
    folder = Path(output_dir)
    if not folder.is_dir():
        return None
    steps = []
    for child in folder.iterdir():
        match = CHECKPOINT_PATTERN.match(child.name)
        if match and (child / "trainer_state.json").is_file():
            steps.append((int(match.group(1)), child))
    return str(max(steps)[1]) if steps else None


# ---------------------------------------------------------------------------------------------------------------
# Models and data settings
# ---------------------------------------------------------------------------------------------------------------
def data_settings(entry: ZooEntry, **overrides: Any) -> DataSettings:
    """The data settings of ``entry`` with ``overrides`` (``DataSettings`` fields; ``None`` values are ignored)."""
    overrides = {k: v for k, v in overrides.items() if v is not None}
    known = {f.name for f in dataclasses.fields(DataSettings)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ValueError(f"unknown data setting(s) {unknown}; known: {sorted(known)}")
    return dataclasses.replace(entry.data, **overrides)


def build_model(
    entry: ZooEntry,
    label_names: Sequence[str],
    *,
    model_name_or_path: str | None = None,
    pretrained_2d: str | os.PathLike | None = None,
    config_overrides: dict[str, Any] | None = None,
    settings: DataSettings | None = None,
) -> tuple[torch.nn.Module, str]:
    """The model to train, and a sentence saying how it was initialised (for the model card).

    * ``model_name_or_path`` given (a converted folder, a Hub id or a zoo name): its weights, with a new classifier
      for ``label_names`` when the class count differs (``ignore_mismatched_sizes``), as in fine-tuning.
    * otherwise the architecture of zoo ``entry`` (+ ``config_overrides``) from scratch with mmaction2's
      initialisation, optionally with the backbone inflated from a 2D ImageNet ResNet ``pretrained_2d`` (a
      torchvision or transformers ResNet state dict file; mmaction2 ``pretrained2d=True``).

    ``num_frames`` / ``image_size`` of the config follow ``settings`` (what the video-classification pipeline
    reads). The model's classes are registered so ``save_pretrained`` writes their code next to the weights.
    """
    from transformers import AutoModelForVideoClassification

    from .configuration_i3d import I3DConfig
    from .configuration_inception_i3d import InceptionI3DConfig
    from .convert import prepare_for_remote_code
    from .hub import resolve_model

    settings = settings or entry.data
    labels = {
        "num_labels": len(label_names),
        "id2label": dict(enumerate(label_names)),
        "label2id": {name: i for i, name in enumerate(label_names)},
    }
    shape = {"num_frames": settings.clip_len, "image_size": settings.crop_size}
    overrides = dict(config_overrides or {})
    if model_name_or_path is not None:
        if pretrained_2d is not None:
            raise ValueError(
                "pretrained_2d initialises a model from scratch; it cannot be combined with model_name_or_path"
            )
        model = AutoModelForVideoClassification.from_pretrained(
            resolve_model(model_name_or_path), ignore_mismatched_sizes=True, **labels, **overrides
        )
        for key, value in shape.items():
            setattr(model.config, key, value)
        how = f"fine-tuned from `{model_name_or_path}`"
    else:
        config_class = I3DConfig if entry.model_type == "i3d" else InceptionI3DConfig
        config = config_class(**{**entry.config, **shape, **overrides, **labels, "zoo_name": entry.name})
        model = AutoModelForVideoClassification.from_config(config)
        how = f"random initialisation of the `{entry.name}` architecture (mmaction2 init)"
        if pretrained_2d is not None:
            if entry.model_type != "i3d":
                raise ValueError(
                    f"pretrained_2d inflates ResNet weights; {entry.name} is not a ResNet3d model"
                )
            from .convert.inflate import inflate_2d_weights

            report = inflate_2d_weights(model, pretrained_2d)
            if not report.inflated:
                raise ValueError(
                    f"{pretrained_2d}: no 2D ResNet weight fits this model (skipped: {report.skipped[:5]})"
                )
            logger.info("inflated %d tensors from %s", len(report.inflated), pretrained_2d)
            how = f"backbone inflated from the 2D ResNet weights `{Path(pretrained_2d).name}` (mmaction2 `pretrained2d`)"
    prepare_for_remote_code(model)
    return model, how


def build_processor(entry: ZooEntry, settings: DataSettings):
    """The ``I3DVideoProcessor`` that feeds the trained model as it was trained and tested (saved and pushed with
    it); its class is registered so the saved config names its code."""
    from .video_processing_i3d import I3DVideoProcessor

    processor = I3DVideoProcessor.from_zoo_entry(dataclasses.replace(entry, data=settings))
    I3DVideoProcessor.register_for_auto_class()
    return processor


def resolve_entry(preset: str | None, model_name_or_path: str | None) -> ZooEntry:
    """The zoo entry whose architecture and data settings apply: ``preset``, else the zoo name ``model_name_or_path``
    is or names in its config (``zoo_name``), else ``i3d-r50-kinetics400``."""
    if preset:
        return get_entry(preset)
    if model_name_or_path:
        if canonical_name(model_name_or_path):
            return get_entry(model_name_or_path)
        config_file = Path(model_name_or_path) / "config.json"
        if config_file.is_file():
            zoo_name = json.loads(config_file.read_text(encoding="utf-8")).get("zoo_name")
            if zoo_name and canonical_name(zoo_name):
                return get_entry(zoo_name)
    return get_entry("i3d-r50-kinetics400")


SPLIT_MODES = {"train": "train", "validation": "val", "test": "test"}


@dataclass
class ClipDatasets:
    """The splits with their clip transforms, the class names, and each split's video paths (in list order)."""

    splits: dict[str, Any]
    label_names: list[str]
    videos: dict[str, list[str]]


def load_clip_datasets(
    data_root: str | os.PathLike,
    ann_files: dict[str, str | os.PathLike],
    settings: DataSettings,
    *,
    label_file: str | os.PathLike | None = None,
    seed: int | None = None,
    backend: str | None = None,
    train_overrides: dict[str, Any] | None = None,
    **load_kwargs: Any,
) -> ClipDatasets:
    """Read the annotation lists (``hf_i3d.data.load_video_dataset``; split names ``train``, ``validation``,
    ``test``) and give each split the clip pipeline of its mode under ``settings`` (train: random crops seeded by
    ``seed``, epoch and list line; validation: one centred clip; test: the multi-view protocol).
    ``train_overrides`` (e.g. ``flip_ratio``) apply to the train pipeline only; ``load_kwargs`` go to
    ``load_video_dataset`` (``filename_tmpl``, ``start_index``, ``with_offset``, ...)."""
    from . import data as video_data

    unknown = sorted(set(ann_files) - set(SPLIT_MODES))
    if unknown:
        raise ValueError(f"unknown split(s) {unknown}; use {sorted(SPLIT_MODES)}")
    raw = video_data.load_video_dataset(
        data_root, dict(ann_files), modality=settings.modality, label_names=label_file, **load_kwargs
    )
    label_names = (
        video_data.read_label_names(label_file)
        if label_file
        else list(next(iter(raw.values())).features["label"].names)
    )
    splits, videos = {}, {}
    for split, dataset in raw.items():
        videos[split] = list(dataset["path"])
        splits[split] = video_data.set_clip_transform(
            dataset,
            settings,
            SPLIT_MODES[split],
            seed=seed,
            backend=backend,
            **((train_overrides or {}) if split == "train" else {}),
        )
    return ClipDatasets(splits=splits, label_names=label_names, videos=videos)


# ---------------------------------------------------------------------------------------------------------------
# The multi-view test
# ---------------------------------------------------------------------------------------------------------------
@dataclass
class MultiViewResult:
    """Per-video scores ``(N, K)`` (averaged as ``protocol['averaging']``), labels ``(N,)`` and the metrics."""

    scores: np.ndarray
    labels: np.ndarray
    metrics: dict[str, float]
    protocol: dict[str, Any]


def evaluate_multiview(
    model: torch.nn.Module,
    dataset,
    *,
    average: str = "prob",
    batch_size: int = 1,
    max_views_per_batch: int | None = None,
    topk: Sequence[int] = (1, 5),
    num_workers: int = 0,
    protocol: dict[str, Any] | None = None,
) -> MultiViewResult:
    """Score every video of ``dataset`` (items ``{"pixel_values": (V, T, C, H, W), "labels": int}``, e.g. a
    ``hf_i3d.data`` test split) with :func:`hf_i3d.multiview.predict_views` and compute mmaction2's metrics.

    Under a distributed launch each process scores a contiguous share of the videos and the scores are gathered,
    so every process returns the same full result, in dataset order (mmaction2 ``multi_gpu_test`` +
    ``collect_results``). ``average`` is 'prob' (mean softmax) or 'score' (mean logits).
    """
    from accelerate import PartialState
    from accelerate.utils import gather_object
    from torch.utils.data import DataLoader, Subset

    from .data import collate_clips
    from .multiview import predict_views

    state = PartialState()
    indices = list(range(len(dataset)))
    with state.split_between_processes(indices) as share:
        loader = DataLoader(
            Subset(dataset, share), batch_size=batch_size, num_workers=num_workers, collate_fn=collate_clips
        )
        rows: list[tuple[int, list[float], int]] = []
        position = 0
        for batch in loader:
            scores = predict_views(
                model, batch["pixel_values"], max_views_per_batch=max_views_per_batch, average=average
            )
            for score, label in zip(scores.float().cpu().numpy(), batch["labels"].tolist()):
                rows.append((share[position], score.tolist(), int(label)))
                position += 1
    if state.num_processes > 1:
        rows = gather_object(rows)
    rows = sorted({row[0]: row for row in rows}.values())
    if [row[0] for row in rows] != indices:
        raise RuntimeError(f"multi-view test: gathered {len(rows)} of {len(indices)} videos")
    scores = np.asarray([row[1] for row in rows], dtype=np.float64)
    labels = np.asarray([row[2] for row in rows], dtype=np.int64)
    topk = [k for k in topk if k <= scores.shape[1]]
    metrics = compute_video_metrics(scores, labels, topk=topk)
    return MultiViewResult(
        scores=scores, labels=labels, metrics=metrics, protocol=protocol or {"averaging": average}
    )


def write_results_json(
    path: str | os.PathLike, result: MultiViewResult, videos: Sequence[str], label_names: Sequence[str]
) -> Path:
    """Write ``result`` as JSON: format tag, metrics, protocol, label names, and per video its path, label and
    scores (what mmaction2 ``tools/test.py --out`` dumps, with the names attached)."""
    if len(videos) != len(result.scores):
        raise ValueError(f"{len(videos)} video names for {len(result.scores)} results")
    payload = {
        "format": RESULT_FORMAT,
        "metrics": result.metrics,
        "protocol": result.protocol,
        "label_names": list(label_names),
        "num_videos": len(videos),
        "videos": [
            {"video": str(video), "label": int(label), "scores": [float(s) for s in scores]}
            for video, label, scores in zip(videos, result.labels, result.scores)
        ],
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(payload, indent=1) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path


# ---------------------------------------------------------------------------------------------------------------
# Model card of a trained checkpoint
# ---------------------------------------------------------------------------------------------------------------
_METRIC_NAMES = {
    "top1_acc": "Top-1 Accuracy",
    "top5_acc": "Top-5 Accuracy",
    "mean_class_accuracy": "Mean Class Accuracy",
}
_METRIC_CONFIGS = {"top1_acc": "top1", "top5_acc": "top5", "mean_class_accuracy": "mean_class"}
_SPLIT_TITLES = {"test": "multi-view test", "validation": "single-view validation"}


def _dataset_id(name: str) -> str:
    return re.sub(r"[^a-z0-9._-]+", "-", name.lower()).strip("-") or "custom"


def build_trained_model_card(
    card: CardInfo,
    *,
    model: Any,
    args: TrainingArguments | None = None,
    recipe: Recipe | None = None,
    repo_id: str,
) -> ModelCard:
    """A model card for a checkpoint trained or evaluated by :class:`VideoClassificationTrainer`.

    Its ``model-index`` carries every measured metric of ``card.results`` in % (top-1, top-5, mean class accuracy;
    the multi-view test first, as mmaction2 reports it) with the dataset, split and evaluation protocol, parsed
    strictly by ``huggingface_hub``. The body states the architecture, the initialisation, the recipe in effect and
    the results, and how to load the model.
    """
    dataset_id = _dataset_id(card.dataset_name)
    eval_results = []
    ordered = sorted(card.results, key=lambda split: (split != "test", split))
    for split in ordered:
        for key, value in card.results[split].items():
            if key not in _METRIC_NAMES:
                continue
            eval_results.append(
                EvalResult(
                    task_type="video-classification",
                    task_name="Video Classification",
                    dataset_type=dataset_id,
                    dataset_name=card.dataset_name,
                    dataset_split=split,
                    metric_type="accuracy",
                    metric_name=_METRIC_NAMES[key],
                    metric_config=_METRIC_CONFIGS[key],
                    metric_value=round(100.0 * float(value), 4),
                    metric_args=card.protocols.get(split) or None,
                )
            )
    base_model = (
        card.finetuned_from if card.finetuned_from and _looks_like_hub_id(card.finetuned_from) else None
    )
    data = ModelCardData(
        license="apache-2.0",
        library_name="transformers",
        pipeline_tag="video-classification",
        tags=["video-classification", "action-recognition", "i3d", "hf_i3d", "custom_code"],
        datasets=[dataset_id],
        metrics=["accuracy"],
        base_model=base_model,
        model_name=repo_id,
        eval_results=eval_results or None,
    )
    config = model.config
    results_rows = "\n".join(
        f"| {split} ({_SPLIT_TITLES.get(split, split)}) | "
        + " | ".join(f"{100 * metrics[k]:.2f}" if k in metrics else "n/a" for k in _METRIC_NAMES)
        + f" | {_protocol_text(card.protocols.get(split))} |"
        for split, metrics in ((s, card.results[s]) for s in ordered)
    )
    recipe_text = "not trained here (evaluated only)"
    if args is not None and recipe is not None:
        recipe_text = (
            f"SGD (momentum {recipe.momentum}, weight decay {args.weight_decay} on every parameter), lr "
            f"{args.learning_rate:g} for {global_batch_size(args)} clips per step, lr x {recipe.lr_gamma} at epochs "
            f"{', '.join(map(str, recipe.lr_milestones))}, {args.num_train_epochs:g} epochs, gradient clipping at "
            f"{args.max_grad_norm:g}, seed {args.seed} (mmaction2 I3D recipe, linear lr scaling from 0.01 per 64 clips)."
        )
    labels = [config.id2label[i] for i in range(config.num_labels)]
    shown = ", ".join(f"`{name}`" for name in labels[:20]) + (" ..." if len(labels) > 20 else "")
    body = f"""
# {repo_id}

An I3D video classifier ({type(model).__name__}, zoo architecture `{card.entry.name}`) trained with `hf_i3d` on
{card.dataset_name}: {config.num_labels} classes ({shown}).

## Results

| split | top-1 (%) | top-5 (%) | mean class accuracy (%) | protocol |
|---|---|---|---|---|
{results_rows or "| n/a | | | | |"}

## Training

- Initialisation: {card.initialisation}.
- Recipe: {recipe_text}
- Clips: {card.entry.data.clip_len} frames every {card.entry.data.frame_interval}, short side {card.entry.data.short_side},
  training crop {card.entry.data.crop_size}, test crop {card.entry.data.test_crop_size}.

## Usage

```python
import hf_i3d  # registers the model; without it use trust_remote_code=True
from transformers import pipeline

classifier = pipeline("video-classification", model="{repo_id}")
print(classifier("video.mp4", top_k=5))
```

The folder carries its model and processor code, so `AutoModelForVideoClassification.from_pretrained("{repo_id}",
trust_remote_code=True)` works where `hf_i3d` is not installed.
"""
    return ModelCard.from_template(data, template_str="---\n{{ card_data }}\n---\n" + body)


def _protocol_text(protocol: dict[str, Any] | None) -> str:
    if not protocol:
        return "n/a"
    if "clips" in protocol and "averaging" in protocol:
        return (
            f"{protocol['clips']} clips x {protocol['crops']} crops of {protocol['crop_size']}, "
            f"'{protocol['averaging']}' averaging"
        )
    return ", ".join(f"{k}={v}" for k, v in protocol.items())


def _looks_like_hub_id(name: str) -> bool:
    return not os.path.exists(name) and re.fullmatch(r"[\w.-]+/[\w.-]+", name) is not None


__all__ = [
    "BASE_BATCH_SIZE",
    "SEED_RECIPE",
    "CardInfo",
    "ClipDatasets",
    "EpochIntervalCallback",
    "MultiViewResult",
    "Recipe",
    "VideoClassificationTrainer",
    "build_model",
    "build_processor",
    "build_trained_model_card",
    "data_settings",
    "evaluate_multiview",
    "global_batch_size",
    "last_checkpoint",
    "load_clip_datasets",
    "parse_arguments",
    "resolve_entry",
    "scale_learning_rate",
    "write_results_json",
]
