"""Multi-view inference: run every view (clip x crop) of a video through a classifier and average the scores.

This is the one place views are batched and averaged; the pipeline, the CLI and the evaluation script call it.
Averaging follows mmaction2 ``BaseHead.average_clip`` (``mmaction/models/heads/base.py``, v0.24.1 and HEAD, per
video since PR #184): 'prob' = softmax over classes, then mean over views (the upstream default since Oct 2020);
'score' = mean of the logits (what ``tools/test.py`` used for the Jun-Aug 2020 zoo numbers); None = no averaging.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch
from torch import nn

from ._validation import check_positive_int

# One merge of per-view logits into per-video logits: the model file's (it keeps no imports beyond torch,
# transformers and its config), re-exported here next to the score averaging it matches.
from .modeling_i3d import merge_view_logits as merge_view_logits

AVERAGE_MODES = ("prob", "score", None)


def average_view_scores(
    logits: torch.Tensor,
    num_views: int | None = None,
    mode: str | None = "prob",
    *,
    multi_label: bool = False,
) -> torch.Tensor:
    """Average per-view logits into per-video scores, as mmaction2 ``BaseHead.average_clip`` does.

    ``logits`` is ``[B*V, K]`` (views of one video contiguous, as ``[B, V, ...]`` reshaped; ``num_views`` required)
    or ``[B, V, K]`` (``num_views`` optional, checked if given). ``mode='prob'`` returns the mean over views of the
    softmax over K; ``'score'`` the mean of the logits; ``None`` the unaveraged ``[B, V, K]``. With
    ``multi_label=True`` 'prob' applies a sigmoid instead of the softmax (independent per-class probabilities;
    mmaction2 has no such branch). Half/bfloat16 logits are averaged in float32.
    """
    if not isinstance(logits, torch.Tensor):
        raise TypeError(f"logits must be a torch.Tensor, got {type(logits).__name__}")
    if not logits.is_floating_point():
        raise TypeError(f"logits must be a floating-point tensor, got dtype {logits.dtype}")
    if mode not in AVERAGE_MODES:
        raise ValueError(f"mode must be one of 'prob', 'score' or None, got {mode!r}")
    check_positive_int("num_views", num_views, optional=True)
    if logits.dim() == 2:
        if num_views is None:
            raise ValueError(
                f"num_views is required for 2-D logits [B*V, K] (got shape {tuple(logits.shape)}); "
                "pass it, or give logits as [B, V, K]"
            )
        if logits.shape[0] % num_views:
            raise ValueError(
                f"logits has {logits.shape[0]} rows, which is not a multiple of num_views={num_views}"
            )
        logits = logits.reshape(logits.shape[0] // num_views, num_views, logits.shape[1])
    elif logits.dim() == 3:
        if num_views is not None and logits.shape[1] != num_views:
            raise ValueError(
                f"logits has shape {tuple(logits.shape)} = [B, V, K] with V={logits.shape[1]}, "
                f"but num_views={num_views}"
            )
    else:
        raise ValueError(f"logits must be [B*V, K] or [B, V, K], got shape {tuple(logits.shape)}")
    if mode is None:
        return logits
    if logits.dtype in (torch.float16, torch.bfloat16):
        logits = logits.float()
    if mode == "prob":
        logits = torch.sigmoid(logits) if multi_label else torch.softmax(logits, dim=2)
    return logits.mean(dim=1)


def _device_and_dtype(model: nn.Module) -> tuple[torch.device | None, torch.dtype | None]:
    """Where the model's weights live and their float dtype (None, None for a parameter-less module)."""
    for param in model.parameters():
        if param.is_floating_point():
            return param.device, param.dtype
    return None, None


def predict_views(
    model: nn.Module,
    pixel_values: torch.Tensor,
    *,
    max_views_per_batch: int | None = None,
    average: str | None = "prob",
    multi_label: bool | None = None,
) -> torch.Tensor:
    """Classify every view of every video and return per-video scores ``(B, K)`` (``(B, V, K)`` for ``average=None``).

    ``pixel_values`` is ``(B, V, T, C, H, W)``, or ``(B, T, C, H, W)`` for one view per video. The ``B*V`` views go
    through ``model(pixel_values=...)`` (any classifier whose output has ``.logits``) in chunks of at most
    ``max_views_per_batch`` (None: all at once), which bounds memory without changing the result - mmaction2's
    ``max_testing_views``, but for any batch size. Runs under ``torch.inference_mode()`` with the model in eval
    mode (its previous mode is restored); each chunk is moved to the model's device and float dtype, so the
    views may stay on the CPU. ``multi_label=None`` reads ``model.config.problem_type``; see
    :func:`average_view_scores` for ``average``.
    """
    if not isinstance(pixel_values, torch.Tensor):
        raise TypeError(f"pixel_values must be a torch.Tensor, got {type(pixel_values).__name__}")
    if pixel_values.dim() == 5:
        pixel_values = pixel_values.unsqueeze(1)
    elif pixel_values.dim() != 6:
        raise ValueError(
            "pixel_values must be (B, V, T, C, H, W) or (B, T, C, H, W) for one view, "
            f"got shape {tuple(pixel_values.shape)}"
        )
    check_max_views_per_batch(max_views_per_batch)
    batch_size, num_views = pixel_values.shape[:2]
    views = pixel_values.reshape(batch_size * num_views, *pixel_values.shape[2:])
    chunk = max_views_per_batch or views.shape[0]
    batches = (
        (torch.arange(start, min(start + chunk, len(views))), views[start : start + chunk])
        for start in range(0, len(views), chunk)
    )
    return predict_view_batches(
        model, batches, batch_size * num_views, num_views=num_views, average=average, multi_label=multi_label
    )


def predict_view_batches(
    model: nn.Module,
    batches: Iterable[tuple[Sequence[int] | torch.Tensor, torch.Tensor]],
    total_views: int,
    *,
    num_views: int,
    average: str | None = "prob",
    multi_label: bool | None = None,
) -> torch.Tensor:
    """:func:`predict_views` for views that arrive in batches, e.g. made one batch at a time from decoded frames
    (``I3DVideoProcessor.iter_view_batches``) so that all of them never sit in memory at once.

    ``batches`` yields ``(view_indices, pixel_values)``: the positions, in ``0 .. total_views - 1`` and in the
    ``[B*V]`` order of :func:`average_view_scores`, of the ``(n, T, C, H, W)`` views it carries. Every position must
    come exactly once; the logits are put back in order before averaging, so the scores do not depend on how the
    views were batched (beyond the model's own float rounding per batch size).
    """
    if average not in AVERAGE_MODES:
        raise ValueError(f"average must be one of 'prob', 'score' or None, got {average!r}")
    if multi_label is None:
        problem_type = getattr(getattr(model, "config", None), "problem_type", None)
        multi_label = problem_type == "multi_label_classification"
    device, dtype = _device_and_dtype(model)
    was_training = model.training
    model.eval()
    logits = None
    seen = torch.zeros(total_views, dtype=torch.bool)
    try:
        with torch.inference_mode():
            for indices, inputs in batches:
                indices = torch.as_tensor(indices, dtype=torch.long)
                if device is not None:
                    inputs = inputs.to(device=device, dtype=dtype if inputs.is_floating_point() else None)
                outputs = model(pixel_values=inputs)
                chunk_logits = getattr(outputs, "logits", None)
                if not isinstance(chunk_logits, torch.Tensor):
                    raise TypeError(
                        f"model output {type(outputs).__name__} has no tensor .logits; predict_views needs a "
                        "classifier returning a ModelOutput with logits (return_dict=True)"
                    )
                if chunk_logits.dim() != 2 or chunk_logits.shape[0] != inputs.shape[0]:
                    raise ValueError(
                        f"model returned logits of shape {tuple(chunk_logits.shape)} for {inputs.shape[0]} views; "
                        "expected (views, num_classes)"
                    )
                if len(indices) != inputs.shape[0] or bool(((indices < 0) | (indices >= total_views)).any()):
                    raise ValueError(
                        f"a batch of {inputs.shape[0]} views came with view indices {indices.tolist()} "
                        f"(expected {inputs.shape[0]} indices in 0..{total_views - 1})"
                    )
                if bool(seen[indices].any()):
                    raise ValueError(f"views {indices[seen[indices]].tolist()} came twice")
                seen[indices] = True
                if logits is None:
                    logits = chunk_logits.new_empty(total_views, chunk_logits.shape[1])
                logits[indices.to(chunk_logits.device)] = chunk_logits
    finally:
        model.train(was_training)
    if logits is None or not bool(seen.all()):
        missing = (~seen).nonzero().flatten().tolist()
        raise ValueError(f"views {missing} of {total_views} never came")
    return average_view_scores(logits, num_views=num_views, mode=average, multi_label=multi_label)


def check_max_views_per_batch(max_views_per_batch: int | None) -> None:
    """Raise a ValueError unless ``max_views_per_batch`` is a positive int or None."""
    check_positive_int("max_views_per_batch", max_views_per_batch, optional=True)
