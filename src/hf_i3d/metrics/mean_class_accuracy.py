"""Mean class accuracy for single-label video classification, with mmaction2's exact semantics.

This file is a self-contained `evaluate` module: ``evaluate.load("/abs/path/to/mean_class_accuracy.py")`` copies it
alone into the evaluate cache, so it imports nothing from ``hf_i3d`` (its input checks repeat those of
``top_k_accuracy.py`` for that reason). ``hf_i3d.metrics`` re-exports :func:`mean_class_accuracy`.
"""

from __future__ import annotations

import datasets
import evaluate
import numpy as np

_DESCRIPTION = """
Mean class accuracy as mmaction2 computes it (`mmaction/core/evaluation/accuracy.py::mean_class_accuracy`, v0.5.0 to
v0.24.1, unchanged in substance at HEAD): the prediction is `argmax(scores)`, the confusion matrix is built over
`np.unique(concat(pred, labels))` (every class that is predicted OR in the ground truth), each class scores hit/count,
and a class that is only predicted (count 0) scores 0.0. The result is the mean over that union, in [0, 1].
This is NOT sklearn's balanced accuracy: classes predicted but absent from the ground truth pull the mean down.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `list` of `float`): scores of shape (N, K), one row per video.
    references (`list` of `int`): ground-truth class index of each video, in [0, K).
Returns:
    `dict` with `mean_class_accuracy` (a float in [0, 1]).
Examples:
    >>> metric = evaluate.load("/abs/path/to/mean_class_accuracy.py")
    >>> metric.compute(predictions=[[0.1, 0.7, 0.2], [0.5, 0.2, 0.3]], references=[1, 1])
    {'mean_class_accuracy': 0.25}
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


def confusion_matrix(y_pred, y_real) -> np.ndarray:
    """Confusion matrix (rows: true class, columns: predicted class) over ``np.unique(concat(y_pred, y_real))``.

    Follows ``mmaction/core/evaluation/accuracy.py::confusion_matrix``: row/column ``i`` is the ``i``-th smallest
    class index that occurs in either vector, so classes that never occur get no row.
    """
    y_pred = _check_labels(y_pred, name="y_pred")
    y_real = _check_labels(y_real, num_samples=y_pred.shape[0], name="y_real")
    classes = np.unique(np.concatenate([y_pred, y_real]))
    n = classes.size
    cell = np.searchsorted(classes, y_real) * n + np.searchsorted(classes, y_pred)
    return np.bincount(cell, minlength=n * n).reshape(n, n)


def mean_class_accuracy(scores, labels) -> float:
    """Mean over classes of per-class top-1 accuracy, over every class that is predicted or true.

    Follows ``mmaction/core/evaluation/accuracy.py::mean_class_accuracy``: ``pred = argmax(scores, axis=1)``; a
    class that is only predicted counts 0.0. ``scores`` is (N, K), ``labels`` is (N,) int; returns a float in [0, 1].
    """
    scores = _check_scores(scores)
    labels = _check_labels(labels, num_samples=scores.shape[0], num_classes=scores.shape[1])
    matrix = confusion_matrix(np.argmax(scores, axis=1), labels)
    count = matrix.sum(axis=1)
    per_class = np.divide(
        np.diag(matrix), count, out=np.zeros(count.shape, dtype=np.float64), where=count > 0
    )
    return float(per_class.mean())


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class MeanClassAccuracy(evaluate.Metric):
    """`evaluate` wrapper around :func:`mean_class_accuracy`; the result is keyed ``mean_class_accuracy``."""

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

    def _compute(self, predictions, references) -> dict[str, float]:
        scores = _check_scores(predictions, name="predictions")
        labels = _check_labels(references, scores.shape[0], scores.shape[1], name="references")
        return {"mean_class_accuracy": mean_class_accuracy(scores, labels)}
