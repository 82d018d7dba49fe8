"""Timing several calls against each other in one process, the way the per-layer benchmarks compare kernels."""

from __future__ import annotations

import time
from collections.abc import Callable


def time_alternately(
    calls: dict[str, Callable[[], object]], repeats: int, warmup_rounds: int = 0
) -> dict[str, list[float]]:
    """Wall seconds of ``repeats`` calls of each entry of ``calls``, interleaved round by round, the order rotated
    every round, so that machine load and drift hit every entry alike; ``warmup_rounds`` rounds go first, untimed.
    Each list is in round order, so that ``zip`` pairs the calls of one round."""
    names = list(calls)
    times: dict[str, list[float]] = {name: [] for name in names}
    for round_index in range(warmup_rounds + repeats):
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:
            start = time.perf_counter()
            calls[name]()
            if round_index >= warmup_rounds:
                times[name].append(time.perf_counter() - start)
    return times
