"""Top-k accuracy for single-label video classification, with mmaction2's exact semantics.

This file is a self-contained `evaluate` module: ``evaluate.load("/abs/path/to/top_k_accuracy.py")`` copies it alone
into the evaluate cache, so it imports nothing from ``hf_i3d``. ``hf_i3d.metrics`` re-exports :func:`top_k_accuracy`.
"""

from __future__ import annotations

from collections.abc import Sequence

import datasets
import evaluate
import numpy as np

_DESCRIPTION = """
Top-k accuracy as mmaction2 computes it (`mmaction/core/evaluation/accuracy.py::top_k_accuracy`, v0.5.0 to v0.24.1):
a sample is a hit for k when its label is among the k classes with the highest scores, taken from
`np.argsort(scores, axis=1)[:, -k:]` (numpy's default sort, so ties resolve the same way). The result is the fraction
of hits, in [0, 1] (mmaction's README multiplies it by 100). Scores are per-video averaged outputs: probabilities
for 'prob' averaging, logits for 'score' averaging.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `list` of `float`): scores of shape (N, K), one row per video.
    references (`list` of `int`): ground-truth class index of each video, in [0, K).
    topk (`int` or `tuple` of `int`, defaults to (1, 5)): the k values to report; each must be <= K.
Returns:
    `dict` with one entry `top{k}_acc` (a float in [0, 1]) per k.
Examples:
    >>> metric = evaluate.load("/abs/path/to/top_k_accuracy.py")
    >>> metric.compute(predictions=[[0.1, 0.7, 0.2], [0.5, 0.2, 0.3]], references=[2, 0], topk=(1, 2))
    {'top1_acc': 0.5, 'top2_acc': 1.0}
"""

_CITATION = """
@misc{2020mmaction2,
    title={OpenMMLab's Next Generation Video Understanding Toolbox and Benchmark},
    author={MMAction2 Contributors},
    howpublished={\\url{https://github.com/open-mmlab/mmaction2}},
    year={2020}
}
"""


def _check_scores(scores, name: str = "scores") -> np.ndarray:
    """Return ``scores`` as a numeric array of shape (N, K), or raise naming the argument."""
    try:
        scores = np.asarray(scores)
    except ValueError as err:  # numpy >= 1.24 refuses ragged nested lists
        raise ValueError(f"{name} must be a rectangular (N, K) array: {err}") from None
    if scores.ndim != 2:
        raise ValueError(f"{name} must be 2-D (N, K), got shape {scores.shape}")
    if not (np.issubdtype(scores.dtype, np.floating) or np.issubdtype(scores.dtype, np.integer)):
        raise ValueError(f"{name} must be numeric, got dtype {scores.dtype}")
    if scores.shape[0] == 0 or scores.shape[1] == 0:
        raise ValueError(f"{name} must hold at least one sample and one class, got shape {scores.shape}")
    nan_rows = np.flatnonzero(np.isnan(scores).any(axis=1))
    if nan_rows.size:
        raise ValueError(f"{name} contain NaN in rows {nan_rows[:10].tolist()}")
    return scores


def _check_labels(
    labels, num_samples: int | None = None, num_classes: int | None = None, name: str = "labels"
) -> np.ndarray:
    """Return ``labels`` as an int64 vector, or raise naming the argument (multi-label input is rejected)."""
    labels = np.asarray(labels)
    if labels.ndim == 2:
        raise ValueError(
            f"{name} must be a 1-D vector of class indices, got shape {labels.shape}; multi-label (N, K) "
            "label matrices are not supported by top_k_accuracy / mean_class_accuracy"
        )
    if labels.ndim != 1:
        raise ValueError(f"{name} must be a 1-D vector of class indices, got shape {labels.shape}")
    if labels.size and not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(
            f"{name} must be integer class indices, got dtype {labels.dtype}; float 0/1 multi-label targets "
            "are not supported by top_k_accuracy / mean_class_accuracy"
        )
    labels = labels.astype(np.int64)
    if num_samples is not None and labels.shape[0] != num_samples:
        raise ValueError(f"{name} has {labels.shape[0]} entries but the scores have {num_samples} rows")
    bad = (labels < 0) if num_classes is None else ((labels < 0) | (labels >= num_classes))
    if bad.any():
        bound = ">= 0" if num_classes is None else f"in [0, {num_classes}) (the number of score columns)"
        raise ValueError(
            f"{name} must be {bound}; got {labels[bad][:10].tolist()} at positions {np.flatnonzero(bad)[:10].tolist()}"
        )
    return labels


def top_k_accuracy(scores, labels, topk: int | Sequence[int] = (1,)) -> float | list[float]:
    """Fraction of samples whose label is among the ``k`` top-scoring classes, for each ``k`` in ``topk``.

    Follows ``mmaction/core/evaluation/accuracy.py::top_k_accuracy``: the top k come from
    ``np.argsort(scores, axis=1)[:, -k:]``. ``scores`` is (N, K), ``labels`` is (N,) int. Returns a float in [0, 1]
    for an int ``topk`` and a list of floats (mmaction's return type) for a sequence.
    """
    scores = _check_scores(scores)
    labels = _check_labels(labels, num_samples=scores.shape[0], num_classes=scores.shape[1])
    ks = [topk] if isinstance(topk, (int, np.integer)) else list(topk)
    if not ks:
        raise ValueError("topk must name at least one k")
    for k in ks:
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= scores.shape[1]:
            raise ValueError(
                f"topk values must be integers in [1, {scores.shape[1]}] (the number of classes), got {k!r}"
            )
    order = np.argsort(scores, axis=1)
    results = []
    for k in ks:
        hits = (order[:, -int(k) :] == labels[:, None]).any(axis=1)
        results.append(float(hits.mean()))
    return results[0] if isinstance(topk, (int, np.integer)) else results


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class TopKAccuracy(evaluate.Metric):
    """`evaluate` wrapper around :func:`top_k_accuracy`; results are keyed ``top{k}_acc`` (mmaction 0.x names)."""

    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {
                    "predictions": datasets.Sequence(datasets.Value("float64")),
                    "references": datasets.Value("int64"),
                }
            ),
            reference_urls=[
                "https://github.com/open-mmlab/mmaction2/blob/v0.24.1/mmaction/core/evaluation/accuracy.py"
            ],
        )

    def add_batch(self, *, predictions=None, references=None, **kwargs) -> None:
        """Reject multi-label or misshapen batches with our message before `evaluate` tries to encode them."""
        if references is not None:
            _check_labels(references, name="references")
        if predictions is not None:
            _check_scores(predictions, name="predictions")
        super().add_batch(predictions=predictions, references=references, **kwargs)

    def add(self, *, prediction=None, reference=None, **kwargs) -> None:
        """Single-example form of :meth:`add_batch`, with the same checks."""
        if reference is not None:
            _check_labels([reference], name="reference")
        if prediction is not None:
            _check_scores([prediction], name="prediction")
        super().add(prediction=prediction, reference=reference, **kwargs)

    def _compute(self, predictions, references, topk: int | Sequence[int] = (1, 5)) -> dict[str, float]:
        scores = _check_scores(predictions, name="predictions")
        labels = _check_labels(references, scores.shape[0], scores.shape[1], name="references")
        ks = [topk] if isinstance(topk, (int, np.integer)) else list(topk)
        values = top_k_accuracy(scores, labels, ks)
        return {f"top{int(k)}_acc": value for k, value in zip(ks, values)}
