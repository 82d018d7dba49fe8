"""Argument checks shared by the package: one wording for "not one of the choices" and "not a positive int".

It imports nothing from ``hf_i3d``, so every module (models and processor excepted, which stay self-contained)
can use it without creating an import circle.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import numpy as np


def check_choice(name: str, value: Any, allowed: Collection[Any]) -> None:
    """Raise ``ValueError("<name> must be one of <allowed>, got <value>")`` unless ``value`` is in ``allowed``."""
    if value not in allowed:
        raise ValueError(f"{name} must be one of {allowed}, got {value!r}")


def is_positive_int(value: Any) -> bool:
    """Whether ``value`` is an int (Python or numpy, not a bool) of at least 1."""
    return not isinstance(value, bool) and isinstance(value, int | np.integer) and value >= 1


def check_positive_int(name: str, value: Any, *, optional: bool = False) -> None:
    """Raise ``ValueError("<name> must be a positive int, got <value>")`` unless ``value`` is an int >= 1 (bools
    refused); with ``optional`` ``None`` passes too and the message says "a positive int or None"."""
    if optional and value is None:
        return
    if not is_positive_int(value):
        suffix = " or None" if optional else ""
        raise ValueError(f"{name} must be a positive int{suffix}, got {value!r}")


__all__ = ["check_choice", "check_positive_int", "is_positive_int"]
