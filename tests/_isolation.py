"""Run Python in a fresh process where ``hf_i3d`` cannot be imported (to test ``trust_remote_code`` loading)."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

_PRELUDE = textwrap.dedent(
    """
    import os, sys
    sys.path[:] = [p for p in sys.path if not os.path.isdir(os.path.join(p or ".", "hf_i3d"))]
    import importlib.util
    assert importlib.util.find_spec("hf_i3d") is None, "hf_i3d must not be importable here"
    """
)


def run_without_hf_i3d(code: str, cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    """Run ``code`` with this interpreter, offline, with a private HF_HOME and every path holding hf_i3d removed."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(HF_HUB_OFFLINE="1", HF_HOME=str(Path(cwd) / "hf_home"))
    return subprocess.run(
        [sys.executable, "-c", _PRELUDE + textwrap.dedent(code)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
