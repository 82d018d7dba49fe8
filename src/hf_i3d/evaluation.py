"""The multi-view test of mmaction2 ``tools/test.py`` and its ``result.json``: what
``examples/run_video_classification.py --do_predict`` runs, kept here so a user can reuse it.

* :func:`evaluate_multiview` scores every video of a test split (10 clips x 3 crops for the zoo presets, 'prob' or
  'score' averaging: docs/mmaction2-port.md §7), spread over the processes of a distributed launch and gathered,
  and computes mmaction2's metrics (:mod:`hf_i3d.metrics`).
* :func:`write_results_json` writes the per-video scores with the metrics and the protocol.

It sits beside :mod:`hf_i3d.training` (neither imports the other) and above the data and multi-view code it uses.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from accelerate import PartialState
from accelerate.utils import gather_object
from torch.utils.data import DataLoader, Subset

from .data import collate_clips
from .metrics import compute_video_metrics
from .multiview import predict_views

RESULT_FORMAT = "hf_i3d.test_results/1"


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


__all__ = ["RESULT_FORMAT", "MultiViewResult", "evaluate_multiview", "write_results_json"]
