"""Late media: Meta's later ``history`` webhook that carries a media message's id.

History chunks give newer media as placeholders (``awaiting_media``); Meta then sends each
message again, in the ``messages`` list of a ``history`` value, with its type, media id, mime
type and sha256. The update may come before its placeholder too: the row is upserted either way
and the two merge (:func:`onboarding.store.upsert_messages`). Business-sent media come in a
``message_echoes`` array beside ``messages``; both name the user by number and/or BSUID, with a
``contacts[]`` array joining the two (:mod:`.attach`). An update for a message coexist does not
keep (a group chat's, or one older than the history window: :mod:`.dropped`) is not stored,
whichever worker sees which first; the windows apply to the update's own timestamp
(:mod:`.windows`). Edits and revokes that came before the message are applied once it is stored
(:mod:`.changes`). Unusable items are rejected in the :class:`.Tally`, never raised.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from config import Settings
from models import MessageSource
from onboarding.feed.bodies import messages_stored
from onboarding.ingest import statuses
from onboarding.ingest.attach import attach_peers
from onboarding.ingest.changes import apply_pending
from onboarding.ingest.dropped import dropped_wamids, remove_history_messages
from onboarding.ingest.peers import hold
from onboarding.ingest.rows import Context, Tally, message_row
from onboarding.ingest.windows import within_windows
from onboarding.store import upsert_messages


def store_late_media(
    session: Session,
    ctx: Context,
    media_updates: Any,
    tally: Tally,
    settings: Settings,
    now: datetime,
    *,
    value: dict[str, Any] | None = None,
) -> None:
    """Upsert the media updates page by page (committed), leaving out dropped messages."""
    if not isinstance(media_updates, list):
        tally.reject("'messages' is not a list")
        return
    rows = []
    named = []
    for msg in media_updates:
        row = message_row(ctx, msg, source=MessageSource.HISTORY, thread=None, tally=tally, now=now)
        if row is not None:
            rows.append(row)
            named.append(msg)
    kept = within_windows(session, ctx, rows, tally)
    kept_rows = {id(row) for row in kept}
    named = [msg for row, msg in zip(rows, named, strict=True) if id(row) in kept_rows]
    rows = kept
    held = attach_peers(session, ctx, rows, named, value or {})
    dropped = dropped_wamids(session, ctx.onboarding.id, [r["wamid"] for r in rows])
    rows = [r for r in rows if r["wamid"] not in dropped]
    for number, page in enumerate(_pages(rows, settings.ingest_page_size)):
        if number:  # the peers resolved were held until the first page's commit
            hold(session, ctx.onboarding.id, page, held)
        new = upsert_messages(session, page)
        # Late media that comes before its chunk stores the message first: told here, once.
        messages_stored(session, ctx.onboarding, MessageSource.HISTORY.value, new)
        session.commit()
    # A group chunk dropped by another worker meanwhile could not remove rows not committed
    # yet, but committed its record before removing (drop_messages): look again.
    late = dropped_wamids(session, ctx.onboarding.id, [r["wamid"] for r in rows])
    if late:
        remove_history_messages(session, ctx.onboarding.id, sorted(late))
        session.commit()
        dropped |= late
    # The summary's keys name media updates "followups", as they always have.
    if dropped:
        tally.counts["followups_of_dropped_messages"] += len(dropped)
        tally.media_wamids = [w for w in tally.media_wamids if w not in dropped]
    tally.counts["media_followups"] += len(rows) - len(late)
    stored = [r["wamid"] for r in rows if r["wamid"] not in late]
    apply_pending(session, ctx.onboarding.id, stored, tally)
    statuses.apply_pending(session, ctx.onboarding, stored, tally)


def _pages(rows: list[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    for start in range(0, len(rows), size):
        yield rows[start : start + size]
