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

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

DEFAULT_MODEL = "i3d-inception-kinetics400"
PROCESSOR_CONFIG = "video_preprocessor_config.json"


class ModelLoadError(ValueError):
    """What ``--model`` names is not a model this package can run as saved (the message names the path and file)."""


@dataclass
class Classifier:
    """A loaded model and its video processor."""

    model: Any
    processor: Any  # None only for a folder loaded with require_processor=False
    name: str
    optimized: bool = False


@dataclass
class Prediction:
    """The top-k labels of one video, or the error that stopped it."""

    video: str
    labels: list[tuple[str, float]]
    num_views: int = 0
    error: str | None = None
    total_frames: int | None = None
    looped: bool = False  # the video is shorter than a clip: its frames were repeated (looped) to fill it
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        if self.error is not None:
            return {"video": self.video, "error": self.error}
        return {
            "video": self.video,
            "num_views": self.num_views,
            "total_frames": self.total_frames,
            "looped": self.looped,
            "warnings": list(self.warnings),
            "predictions": [{"label": label, "score": score} for label, score in self.labels],
        }


def display_path(path: str | os.PathLike) -> str:
    """A path as printable text: bytes of a name that are not UTF-8 shown as ``\\xNN``."""
    return os.fspath(path).encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def check_model_location(name_or_path: str) -> None:
    """:class:`ModelLoadError` for a local path that cannot be a model: a file, a folder without ``config.json``
    (an empty one too), or a path (``./x``, ``/x``, ``~/x``, ``a/b/c``) that does not exist. Zoo names and Hub ids
    (``owner/name``) pass."""
    path = Path(name_or_path).expanduser()
    if path.is_file():
        raise ModelLoadError(
            f"{name_or_path} is a file; a model is a folder holding config.json, a zoo name or a Hub id"
        )
    if path.is_dir():
        if not (path / "config.json").is_file():
            what = "it is empty" if not any(path.iterdir()) else "it has no config.json"
            raise ModelLoadError(f"{name_or_path} is not a model folder: {what}")
        return
    text = os.fspath(name_or_path)
    if text.startswith((".", "/", "~")) or text.count("/") > 1 or os.sep != "/" and os.sep in text:
        raise ModelLoadError(f"{name_or_path}: no such model folder")


def load_processor(folder: str, **processor_kwargs: Any) -> Any:
    """The video processor saved with a model (``video_preprocessor_config.json``). A missing or unreadable file is
    a :class:`ModelLoadError`: guessing the frame count, crop and normalisation would give other scores silently."""
    from .video_processing_i3d import I3DVideoProcessor

    local = Path(folder)
    if local.is_dir():
        config_file = local / PROCESSOR_CONFIG
        if not config_file.is_file():
            raise ModelLoadError(
                f"{folder} has no {PROCESSOR_CONFIG}: the model's frame count, crop and normalisation are unknown "
                "(save the processor beside the model with I3DVideoProcessor.save_pretrained, or convert it again)"
            )
        try:
            settings = json.loads(config_file.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise ModelLoadError(f"{config_file} is not valid JSON ({error})") from error
        if not isinstance(settings, dict):
            raise ModelLoadError(f"{config_file} holds a {type(settings).__name__}, expected a JSON object")
    try:
        return I3DVideoProcessor.from_pretrained(folder, **processor_kwargs)
    except OSError as error:
        raise ModelLoadError(
            f"{folder}: no readable {PROCESSOR_CONFIG} ({' '.join(str(error).split()[:30])})"
        ) from error
    except (TypeError, ValueError, KeyError) as error:
        raise ModelLoadError(f"{folder}/{PROCESSOR_CONFIG}: invalid processor settings ({error})") from error


def load_classifier(
    name_or_path: str = DEFAULT_MODEL,
    *,
    optimize: bool = True,
    require_processor: bool = True,
    **processor_kwargs: Any,
) -> Classifier:
    """Load a zoo name, a local folder or a Hub id (see ``hf_i3d.resolve_model``) with its video processor.

    A folder without a readable processor config is a :class:`ModelLoadError` (see :func:`load_processor`), as is
    a path that is not a model folder (:func:`check_model_location`); with ``require_processor=False`` a local folder
    without ``video_preprocessor_config.json`` (a Trainer checkpoint) loads with ``processor=None``. ``optimize=True`` runs the model through
    ``hf_i3d.inference.optimize_for_inference`` (an eval-only CPU copy with BatchNorm folded; the same logits up to
    float rounding) when oneDNN is available.
    """
    from transformers import AutoModelForVideoClassification

    from .hub import resolve_model

    check_model_location(os.fspath(name_or_path))
    folder = resolve_model(name_or_path)
    model = AutoModelForVideoClassification.from_pretrained(folder).eval()
    saved_processor = not os.path.isdir(folder) or (Path(folder) / PROCESSOR_CONFIG).is_file()
    processor = load_processor(folder, **processor_kwargs) if saved_processor or require_processor else None
    optimized = bool(optimize and torch.backends.mkldnn.is_available())
    if optimized:
        from .inference import optimize_for_inference

        model = optimize_for_inference(model)
    return Classifier(model=model, processor=processor, name=str(name_or_path), optimized=optimized)


def looped_clips(processor: Any, total_frames: int, **settings: Any) -> bool:
    """Whether the processor's clips of a ``total_frames``-frame video repeat frames to fill a clip (mmaction2's
    ``out_of_bound_opt='loop'``): some clip's frame indices do not strictly increase."""
    clip_len = settings.get("num_frames") or processor.num_frames
    indices = processor.sample_indices(total_frames, **settings).reshape(-1, clip_len)
    return bool((indices[:, 1:] <= indices[:, :-1]).any())


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
    """Top-k (label, score) of one video (see :func:`video_scores`), with a warning when the video is shorter than
    a clip and its frames were looped to fill it."""
    from .decoding import count_video_frames

    if top_k < 1:
        raise ValueError(f"top_k must be a positive int, got {top_k}")
    processor = classifier.processor
    settings = {"views": views}
    total = count_video_frames(os.fspath(video), backend=processor.video_backend)
    scores, num_views = video_scores(
        classifier, video, views=views, average=average, max_views_per_batch=max_views_per_batch
    )
    top = torch.topk(scores.float(), k=min(top_k, scores.shape[-1]))
    id2label = classifier.model.config.id2label
    labels = [(id2label[int(i)], float(s)) for s, i in zip(top.values, top.indices)]
    prediction = Prediction(video=os.fspath(video), labels=labels, num_views=num_views, total_frames=total)
    if looped_clips(processor, total, **settings):
        prediction.looped = True
        span = (processor.num_frames - 1) * processor.frame_interval + 1
        prediction.warnings.append(
            f"{display_path(video)} has {total} frame{'s' if total != 1 else ''}, fewer than a clip spans "
            f"({processor.num_frames} frames {processor.frame_interval} apart: {span}); its frames were repeated "
            "(looped) to fill the clip, so the scores are less reliable"
        )
    return prediction


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
            results.append(Prediction(video=os.fspath(video), labels=[], error=display_path(message)))
    return results


def format_table(predictions: list[Prediction], model_name: str) -> str:
    """A readable table: one block per video with rank, label and score."""
    lines = []
    for prediction in predictions:
        if prediction.error is not None:
            continue
        views = f"{prediction.num_views} view{'s' if prediction.num_views != 1 else ''}"
        looped = ", frames looped" if prediction.looped else ""
        lines.append(f"{display_path(prediction.video)}  ({model_name}, {views}{looped})")
        for rank, (label, score) in enumerate(prediction.labels, 1):
            lines.append(f"  {rank:>2}. {label:<40} {score:8.4f}")
    return "\n".join(lines)


__all__ = [
    "DEFAULT_MODEL",
    "Classifier",
    "ModelLoadError",
    "check_model_location",
    "load_processor",
    "Prediction",
    "classify_video",
    "classify_videos",
    "load_classifier",
    "video_scores",
]
