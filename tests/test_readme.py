"""The README's commands are the ones CI and users run."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    ci_lines = [line for line in (ROOT / ".ci" / "run").read_text().splitlines() if line and not line.startswith("#")]
    command = ci_lines[-1]
    assert command in readme, "README.md and .ci/run disagree on the test command"
    assert "pip install -q -e \".[test]\"" in command and "python -m pytest" in command


def test_readme_main_job_installs_from_the_project_and_predicts():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```bash\n(.*?)\n```", readme, re.S)
    main_job = blocks[0]
    assert 'pip install -e ".[video]"' in main_job and "hf-i3d predict" in main_job
