"""The history window and the media cut-off, applied to late media as they are to chunks.

A chunk keeps only messages from the ``history_window_days`` before signup, and marks media
placeholders older than ``media_cutoff_days`` as ``skipped_too_old``
(:mod:`onboarding.ingest.history`, :func:`onboarding.ingest.rows.message_row`). Meta sends late
media for newer media only, but the rules do not rest on that: a late-media message is judged
by its own timestamp, so either arrival order ends the same
(docs/meta.md#1110-late-media-and-the-history-windows).

* older than the history window: not stored, recorded as dropped (:mod:`.dropped`), so its
  chunk, whenever it comes, finds the record too;
* older than the media cut-off: stored as ``skipped_too_old`` with its reason, never downloaded.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from models import MediaState
from onboarding.ingest.dropped import OUT_OF_WINDOW, drop_messages
from onboarding.ingest.rows import TOO_OLD_FOR_MEDIA, Context, Tally


def within_windows(
    session: Session, ctx: Context, rows: list[dict[str, Any]], tally: Tally
) -> list[dict[str, Any]]:
    """The late-media rows to store: older than the window dropped and recorded (committed),
    older than the media cut-off marked ``skipped_too_old`` and taken out of the downloads."""
    kept: list[dict[str, Any]] = []
    out_of_window: list[str] = []
    too_old: set[str] = set()
    for row in rows:
        if row["sent_at"] < ctx.window_start:
            out_of_window.append(row["wamid"])
            continue
        kept.append(row)
        if row["sent_at"] < ctx.media_cutoff and row["media_state"] == MediaState.AWAITING.value:
            row["media_state"] = MediaState.SKIPPED_TOO_OLD.value
            row["media_error"] = TOO_OLD_FOR_MEDIA
            too_old.add(row["wamid"])
    if out_of_window:
        drop_messages(session, ctx.onboarding.id, out_of_window, OUT_OF_WINDOW)
        tally.counts["followups_out_of_window"] += len(out_of_window)
    if too_old:
        tally.counts["media_skipped_too_old"] += len(too_old)
    not_downloaded = too_old.union(out_of_window)
    if not_downloaded:
        tally.media_wamids = [w for w in tally.media_wamids if w not in not_downloaded]
    return kept
