"""How a chaos test reports what it measured, and reads its processes' logs."""

from __future__ import annotations

import json
from typing import Any

from benchmarks._harness import ManagedProcess


def figures(test: str, **values: Any) -> None:
    """Print what a test measured as one JSON line (shown by ``pytest -rP``)."""
    print(f"figures {test}: {json.dumps(values, sort_keys=True)}")


def log_events(process: ManagedProcess, event: str) -> int:
    """How many times ``event`` appears in a process's log."""
    text = process.log_path.read_text(encoding="utf-8", errors="replace")
    return text.count(f'"event": "{event}"')
