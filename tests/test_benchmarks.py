"""Every benchmark script imports and answers ``--help`` (they are not run in the test suite)."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = sorted(p.stem for p in (ROOT / "benchmarks").glob("*.py") if not p.stem.startswith("_"))


@pytest.mark.parametrize("script", SCRIPTS)
def test_benchmark_script_imports(script: str) -> None:
    """The script's module imports: whatever it takes from the harness still exists."""
    importlib.import_module(f"benchmarks.{script}")


@pytest.mark.parametrize("script", [s for s in SCRIPTS if s != "bare_app"])
def test_benchmark_script_answers_help(script: str) -> None:
    """``python -m benchmarks.<script> --help`` prints its options and exits 0."""
    done = subprocess.run(  # noqa: S603 - this interpreter and a script of this repository
        [sys.executable, "-m", f"benchmarks.{script}", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "usage" in done.stdout


def test_the_harness_starts_processes_at_the_repository_root() -> None:
    """Subprocesses run where ``benchmarks`` and ``onboarding`` import (the bare app needs it)."""
    from benchmarks._harness import ROOT as HARNESS_ROOT  # noqa: PLC0415 - the one test of it

    assert HARNESS_ROOT == ROOT
    assert (HARNESS_ROOT / "benchmarks" / "bare_app.py").exists()
