"""Training the mmaction2 way, on ``transformers.Trainer``: what ``examples/run_video_classification.py`` runs,
kept here so a user can reuse it (the multi-view test and ``result.json`` are in :mod:`hf_i3d.evaluation`).

* The I3D recipe (mmaction2 ``configs/recognition/i3d/*.py``, identical from v0.5.0 to HEAD): SGD with momentum 0.9
  and weight decay 1e-4 on every parameter, lr 0.01 for a global batch of 64 clips (scaled linearly to the actual
  batch), gradient clipping at norm 40, lr x 0.1 at epochs 40 and 80 of 100 (``lr_config = dict(policy='step',
  step=[40, 80])``), validation and a checkpoint every 5 epochs. :data:`SEED_RECIPE` holds the ``TrainingArguments``
  part, :class:`VideoClassificationTrainer` the optimiser and the step schedule, :class:`EpochIntervalCallback`
  the 5-epoch interval.
* Models: a zoo preset from scratch, optionally initialised from 2D ImageNet ResNet weights (mmaction2
  ``pretrained2d=True``), or a converted checkpoint / Hub id fine-tuned with a new head (:func:`build_model`).
* :class:`ClipEpochCallback` tells the seeded train transform of the data (``hf_i3d.data.load_clip_datasets``)
  the epoch.
* A model card whose ``model-index`` carries the measured top-1 / top-5 (``hf_i3d.modelcard.build_model_card`` of
  a :class:`~hf_i3d.modelcard.CardInfo`), which the Trainer's automatic card cannot express;
  :class:`VideoClassificationTrainer` writes it when it pushes.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForVideoClassification, Trainer, TrainerCallback, TrainingArguments

from .configuration_i3d import I3DConfig
from .configuration_inception_i3d import InceptionI3DConfig
from .convert.inflate import inflate_2d_weights
from .cpu_training import ChannelsLastSGD
from .data import find_clip_transform
from .hub import resolve_model
from .modelcard import CardInfo, build_model_card
from .video_processing_i3d import I3DVideoProcessor
from .zoo import DataSettings, ZooEntry, canonical_name, get_entry, label_maps

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


class ClipEpochCallback(TrainerCallback):
    """Tells the train dataset's seeded clip transform the epoch at every epoch start (``Trainer`` does not tell
    map-style datasets), so a fixed ``seed`` gives new, reproducible augmentation every epoch."""

    def on_epoch_begin(self, args, state, control, train_dataloader=None, **kwargs):
        transform = find_clip_transform(getattr(train_dataloader, "dataset", None))
        if transform is not None:
            transform.set_epoch(int(math.floor((state.epoch or 0) + 1e-6)))


def recipe_summary(args: TrainingArguments, recipe: Recipe) -> str:
    """One sentence saying how a checkpoint was trained (``args`` and ``recipe`` in effect), for its model card."""
    return (
        f"SGD (momentum {recipe.momentum}, weight decay {args.weight_decay} on every parameter), lr "
        f"{args.learning_rate:g} for {global_batch_size(args)} clips per step, lr x {recipe.lr_gamma} at epochs "
        f"{', '.join(map(str, recipe.lr_milestones))}, {args.num_train_epochs:g} epochs, gradient clipping at "
        f"{args.max_grad_norm:g}, seed {args.seed} (mmaction2 I3D recipe, linear lr scaling from 0.01 per 64 clips)."
    )


class VideoClassificationTrainer(Trainer):
    """``Trainer`` with the mmaction2 optimiser and schedule, and a model card that carries measured results.

    * Optimiser: ``torch.optim.SGD(lr, momentum, weight_decay)`` over every trainable parameter (mmaction2 decays
      BatchNorm and bias too; the default Trainer optimiser would exempt them), with torch's fused kernel where the
      parameters allow it (CPU or CUDA floating-point tensors): the same update, one pass over each parameter;
      :class:`~hf_i3d.cpu_training.ChannelsLastSGD` runs it in place on channels-last parameters too.
    * Schedule: ``MultiStepLR`` with the epoch milestones of ``recipe`` turned into optimiser steps (mmaction2
      ``lr_config = dict(policy='step', step=[40, 80])``, changed by epoch); no warmup.
    * Gradient clipping comes from ``args.max_grad_norm`` (40 in :data:`SEED_RECIPE`).
    * The train split's seeded clip transform learns the epoch (:class:`ClipEpochCallback`), so every epoch
      draws new, reproducible crops.
    * ``create_model_card`` (called by ``push_to_hub``) writes ``hf_i3d.modelcard.build_model_card`` of ``card``
      when it is given, so the pushed README holds the measured top-1 / top-5 in its ``model-index``.
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
            self.optimizer = ChannelsLastSGD(
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
        card = build_model_card(
            self.card, model=self.model, recipe=recipe_summary(self.args, self.recipe), repo_id=repo_id
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
    settings = settings or entry.data
    labels = {"num_labels": len(label_names), **label_maps(label_names)}
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
            report = inflate_2d_weights(model, pretrained_2d)
            if not report.inflated:
                raise ValueError(
                    f"{pretrained_2d}: no 2D ResNet weight fits this model (skipped: {report.skipped[:5]})"
                )
            logger.info("inflated %d tensors from %s", len(report.inflated), pretrained_2d)
            how = f"backbone inflated from the 2D ResNet weights `{Path(pretrained_2d).name}` (mmaction2 `pretrained2d`)"
    return model, how


def build_processor(entry: ZooEntry, settings: DataSettings):
    """The ``I3DVideoProcessor`` that feeds the trained model as it was trained and tested (saved and pushed with
    it; the class registers its code for ``AutoVideoProcessor`` where it is defined)."""
    return I3DVideoProcessor.from_zoo_entry(dataclasses.replace(entry, data=settings))


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


__all__ = [
    "BASE_BATCH_SIZE",
    "SEED_RECIPE",
    "ClipEpochCallback",
    "EpochIntervalCallback",
    "Recipe",
    "VideoClassificationTrainer",
    "build_model",
    "build_processor",
    "data_settings",
    "global_batch_size",
    "last_checkpoint",
    "parse_arguments",
    "recipe_summary",
    "resolve_entry",
    "scale_learning_rate",
]
