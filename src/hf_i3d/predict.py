"""Classify videos with a model of the zoo or a saved folder: what ``hf-i3d predict`` runs.

Single view (``views="single"``: one centred clip, centre crop) or the model's multi-view test protocol
(``views="multi"``: 10 clips x 3 crops for the mmaction2 models), with views averaged by ``hf_i3d.multiview`` as mmaction2 does ('prob' by default).

By default the model runs through ``hf_i3d.inference.optimize_for_inference`` on CPU (BatchNorm folded, oneDNN
kernels; float32 logits within 1e-4 of the plain model, ``tests/test_inference.py``) and the views of a video are
made a few clips at a time from the decoded frames (``I3DVideoProcessor.iter_view_batches``), so the 30 float32
views never sit in memory at once; ``benchmarks/run.py`` case ``r50_test_30view`` times this path against mmaction2's
``inference_recognizer``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch

DEFAULT_MODEL = "i3d-inception-kinetics400"


@dataclass
class Classifier:
    """A loaded model and its video processor."""

    model: Any
    processor: Any
    name: str
    optimized: bool = False


@dataclass
class Prediction:
    """The top-k labels of one video, or the error that stopped it."""

    video: str
    labels: list[tuple[str, float]]
    num_views: int = 0
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        if self.error is not None:
            return {"video": self.video, "error": self.error}
        return {
            "video": self.video,
            "num_views": self.num_views,
            "predictions": [{"label": label, "score": score} for label, score in self.labels],
        }


def load_classifier(
    name_or_path: str = DEFAULT_MODEL, *, optimize: bool = True, **processor_kwargs: Any
) -> Classifier:
    """Load a zoo name, a local folder or a Hub id (see ``hf_i3d.resolve_model``) with its video processor.

    A folder without a processor config gets the processor of the zoo entry its config names, else the defaults.
    ``optimize=True`` runs the model through ``hf_i3d.inference.optimize_for_inference`` (an eval-only CPU copy
    with BatchNorm folded; the same logits up to float rounding) when oneDNN is available.
    """
    from transformers import AutoModelForVideoClassification

    from .hub import resolve_model
    from .video_processing_i3d import I3DVideoProcessor
    from .zoo import get_entry

    folder = resolve_model(name_or_path)
    model = AutoModelForVideoClassification.from_pretrained(folder).eval()
    try:
        processor = I3DVideoProcessor.from_pretrained(folder, **processor_kwargs)
    except OSError:
        zoo_name = getattr(model.config, "zoo_name", None)
        processor = (
            I3DVideoProcessor.from_zoo_entry(get_entry(zoo_name), **processor_kwargs)
            if zoo_name
            else I3DVideoProcessor(num_frames=model.config.num_frames, **processor_kwargs)
        )
    optimized = bool(optimize and torch.backends.mkldnn.is_available())
    if optimized:
        from .inference import optimize_for_inference

        model = optimize_for_inference(model)
    return Classifier(model=model, processor=processor, name=str(name_or_path), optimized=optimized)


def video_scores(
    classifier: Classifier,
    video: str | os.PathLike,
    *,
    views: str = "single",
    average: str = "prob",
    max_views_per_batch: int | None = 6,
) -> tuple[torch.Tensor, int]:
    """Per-class scores ``(K,)`` of one video and its number of views (``views``: 'single', one centred clip, or
    'multi', the processor's test protocol, 10 clips x 3 crops for the mmaction2 models): 'prob' averages the softmax
    of every view (mmaction2's ``average_clips='prob'``), 'score' the logits.

    The frames are decoded once and the views made and classified ``max_views_per_batch`` at a time (rounded to
    whole clips; None: all at once).
    """
    from .decoding import read_video_sampled
    from .multiview import predict_view_batches

    processor, model = classifier.processor, classifier.model
    num_views = processor.num_views(views=views)

    def sample(total_frames: int) -> Any:
        return processor.sample_indices(total_frames, views=views)

    # each sampled frame decoded once (hf_i3d's decoders, the model's thread count), then handed to the processor
    frames, indices = read_video_sampled(
        os.fspath(video), sample, processor.video_backend, torch.get_num_threads(), expand=False
    )
    batches = processor.iter_view_batches(frames, max_views_per_batch, frame_indices=indices, views=views)
    scores = predict_view_batches(
        model,
        batches,
        num_views,
        num_views=num_views,
        average=average,
        multi_label=model.config.problem_type == "multi_label_classification",
    )
    return scores[0], num_views


def classify_video(
    classifier: Classifier,
    video: str | os.PathLike,
    *,
    views: str = "single",
    top_k: int = 5,
    average: str = "prob",
    max_views_per_batch: int | None = 6,
) -> Prediction:
    """Top-k (label, score) of one video (see :func:`video_scores`)."""
    scores, num_views = video_scores(
        classifier, video, views=views, average=average, max_views_per_batch=max_views_per_batch
    )
    top = torch.topk(scores.float(), k=min(top_k, scores.shape[-1]))
    id2label = classifier.model.config.id2label
    labels = [(id2label[int(i)], float(s)) for s, i in zip(top.values, top.indices)]
    return Prediction(video=os.fspath(video), labels=labels, num_views=num_views)


def classify_videos(
    classifier: Classifier, videos: list[str], progress: bool = True, **kwargs: Any
) -> list[Prediction]:
    """:func:`classify_video` over many videos; a video that fails becomes a :class:`Prediction` with ``error``."""
    from tqdm.auto import tqdm

    from .decoding import DecodeError

    results = []
    for video in tqdm(videos, desc="videos", unit="video", disable=not progress or len(videos) < 2):
        try:
            results.append(classify_video(classifier, video, **kwargs))
        except (DecodeError, ValueError, OSError) as error:
            message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            if os.fspath(video) not in message:
                message = f"{video}: {message}"
            results.append(Prediction(video=os.fspath(video), labels=[], error=message))
    return results


def format_table(predictions: list[Prediction], model_name: str) -> str:
    """A readable table: one block per video with rank, label and score."""
    lines = []
    for prediction in predictions:
        if prediction.error is not None:
            continue
        views = f"{prediction.num_views} view{'s' if prediction.num_views != 1 else ''}"
        lines.append(f"{prediction.video}  ({model_name}, {views})")
        for rank, (label, score) in enumerate(prediction.labels, 1):
            lines.append(f"  {rank:>2}. {label:<40} {score:8.4f}")
    return "\n".join(lines)


__all__ = [
    "DEFAULT_MODEL",
    "Classifier",
    "Prediction",
    "classify_video",
    "classify_videos",
    "load_classifier",
    "video_scores",
]
