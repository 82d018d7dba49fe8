"""Video-classification metrics with mmaction2's exact semantics, as plain numpy and as offline `evaluate` modules.

Each metric lives in ONE self-contained file next to this one (``top_k_accuracy.py``, ``mean_class_accuracy.py``)
that is both imported here and loadable with ``evaluate.load(path)``, which needs no network because the path is
local. :func:`compute_video_metrics` gives the mmaction 0.x result dict; :func:`build_compute_metrics` wraps it for
``transformers.Trainer``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import evaluate
import numpy as np

from .mean_class_accuracy import confusion_matrix, mean_class_accuracy
from .top_k_accuracy import top_k_accuracy

METRICS_DIR = Path(__file__).resolve().parent
METRIC_NAMES = ("top_k_accuracy", "mean_class_accuracy")
# Metrics of video generation: their files import hf_i3d's network (``fvd.py`` -> ``hf_i3d.fvd``), so this package
# never imports them; only their paths are handed to ``evaluate.load``.
GENERATION_METRIC_NAMES = ("fvd",)


def metric_path(name: str) -> Path:
    """Absolute path of the shipped `evaluate` module file for ``name`` (one of :data:`METRIC_NAMES` or
    :data:`GENERATION_METRIC_NAMES`)."""
    known = METRIC_NAMES + GENERATION_METRIC_NAMES
    if name not in known:
        raise ValueError(f"unknown metric {name!r}; known metrics: {', '.join(known)}")
    return METRICS_DIR / f"{name}.py"


def load_metric(name: str, **load_kwargs) -> evaluate.EvaluationModule:
    """Load a shipped metric with ``evaluate.load`` from its local file (works offline; no Hub lookup).

    ``load_kwargs`` go to ``evaluate.load`` (e.g. ``num_process``/``process_id`` for distributed evaluation).
    """
    return evaluate.load(str(metric_path(name)), **load_kwargs)


def compute_video_metrics(scores, labels, topk: Sequence[int] = (1, 5)) -> dict[str, float]:
    """``top{k}_acc`` for each k and ``mean_class_accuracy`` (mmaction 0.x keys), each a fraction in [0, 1].

    ``scores`` is (N, K) per-video scores (averaged probabilities or logits), ``labels`` is (N,) int. Follows
    mmaction2 0.x ``BaseDataset.evaluate`` with ``metrics=['top_k_accuracy', 'mean_class_accuracy']``.
    """
    topk = [topk] if isinstance(topk, (int, np.integer)) else list(topk)
    results = {f"top{int(k)}_acc": value for k, value in zip(topk, top_k_accuracy(scores, labels, topk))}
    results["mean_class_accuracy"] = mean_class_accuracy(scores, labels)
    return results


def build_compute_metrics(topk: Sequence[int] = (1, 5)) -> Callable[..., dict[str, float]]:
    """Return a ``Trainer`` ``compute_metrics(eval_pred)`` giving :func:`compute_video_metrics` on the eval set.

    ``eval_pred.predictions`` are the model's logits (N, K) (or a tuple whose first item they are, as when the model
    also returns hidden states); ``eval_pred.label_ids`` are (N,) ints. Trainer prefixes the keys with ``eval_``, so
    use ``metric_for_best_model="top1_acc"``. Note the scores are single-view logits: top-k and mean class
    accuracy are unchanged by a softmax, so this matches 'prob' and 'score' averaging alike for one view.
    """
    topk = tuple(topk) if not isinstance(topk, (int, np.integer)) else (topk,)

    def compute_metrics(eval_pred) -> dict[str, float]:
        predictions, labels = eval_pred.predictions, eval_pred.label_ids
        if isinstance(predictions, tuple):
            predictions = predictions[0]
        if labels is None:
            raise ValueError("eval_pred.label_ids is None: the eval dataset must provide 'labels'")
        return compute_video_metrics(predictions, labels, topk=topk)

    return compute_metrics


__all__ = [
    "GENERATION_METRIC_NAMES",
    "METRIC_NAMES",
    "build_compute_metrics",
    "compute_video_metrics",
    "confusion_matrix",
    "load_metric",
    "mean_class_accuracy",
    "metric_path",
    "top_k_accuracy",
]
