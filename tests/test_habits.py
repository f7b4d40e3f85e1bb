"""The house habits hold: ruff is clean over the repository, mypy over pyproject's checked list,
and .ci/run runs both (slow: each tool reads every file)."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_ci_runs_ruff_mypy_and_the_table_check_before_the_tests():
    script = (ROOT / ".ci" / "run").read_text()
    steps = ["ruff check .", "mypy", "python -m scripts.results_tables --check", "python -m pytest"]
    positions = [script.index(f"\n{step}\n") for step in steps]
    assert positions == sorted(positions)
    requirements = (ROOT / "requirements-test.txt").read_text()
    assert "ruff" in requirements
    assert "mypy" in requirements


@pytest.mark.slow
@pytest.mark.parametrize("command", [["ruff", "check", "."], [sys.executable, "-m", "mypy"]],
                         ids=["ruff", "mypy"])
def test_the_linters_are_clean(command):
    if command[0] == "ruff" and shutil.which("ruff") is None:
        pytest.skip("ruff is not installed (pip install -r requirements-test.txt)")
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=280)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-1000:]
