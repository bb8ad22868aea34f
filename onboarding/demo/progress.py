"""The demo's progress bars: one per history phase, contacts, media and deliveries."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Column

from models import SyncState
from onboarding.demo.summary import PHASES
from onboarding.sandbox import HistoryPlan


class ProgressBars:
    """Rich progress bars: contacts, each history phase's chunks, media downloads."""

    def __init__(
        self, console: Console, plan: HistoryPlan, contacts: int, *, declined: bool
    ) -> None:
        self._declined = declined
        self._progress = Progress(
            TextColumn("{task.description}", table_column=Column(width=15, no_wrap=True)),
            BarColumn(bar_width=24),
            MofNCompleteColumn(table_column=Column(width=9, no_wrap=True)),
            TextColumn(
                "{task.fields[note]}",
                table_column=Column(max_width=34, no_wrap=True, overflow="ellipsis"),
            ),
            TimeElapsedColumn(),
            console=console,
        )
        self._contacts = self._progress.add_task("contacts", total=contacts, note="")
        self._phases: dict[int, TaskID] = {}
        if declined:
            self._history = self._progress.add_task("history", total=1, note="waiting")
        else:
            for phase in PHASES:
                self._phases[phase] = self._progress.add_task(
                    f"history phase {phase}", total=plan.phase_chunks[phase], note="chunks"
                )
        self._media = self._progress.add_task("media", total=0, note="downloads")
        self._status = self._progress.add_task("webhooks", total=None, note="")

    def __enter__(self) -> ProgressBars:
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()

    def update(self, detail: Mapping[str, Any], stats: Mapping[str, Any]) -> None:
        """Redraw from the status API's ``detail`` and the dispatcher's ``stats``."""
        counts = detail["counts"]
        history = detail["sync"]["history"]
        progress = self._progress
        progress.update(self._contacts, completed=counts["contacts"] + counts["contacts_removed"])
        if self._declined:
            ended = history["state"] == SyncState.DECLINED
            progress.update(self._history, completed=int(ended), note=history["state"])
        else:
            phases = history.get("phases") or {}
            for phase, task in self._phases.items():
                received = len(phases.get(str(phase), {}).get("received", []))
                progress.update(task, completed=received)
        settled = counts["media_stored"] + counts["media_expired"] + counts["media_failed"]
        progress.update(
            self._media,
            total=settled + counts["media_awaiting"],
            completed=settled,
            note=f"stored, {counts['media_skipped_too_old']} too old",
        )
        progress.update(
            self._status,
            completed=int(stats["delivered"]),
            note=f"{stats['failed']} given up · {detail['state']}",
        )
