"""Event bodies built from what the writer already holds: message rows, media, contacts.

The history ingest calls :func:`messages_stored` once per page it writes, so building a page's
body costs one small dict per message and nothing read back; the page's event and the events
of the media it settled at once (``media.skipped``) go in one INSERT
(:func:`onboarding.feed.events.emit_many`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.orm import Session

from models import MediaState, Onboarding
from onboarding.feed.events import EventType, emit_many, enabled, iso

_NONE = MediaState.NONE.value
_SKIPPED = MediaState.SKIPPED_TOO_OLD.value


def message(row: dict[str, Any]) -> dict[str, Any]:
    """One stored message as ``messages.stored`` lists it (from a ``messages`` row dict)."""
    state = row["media_state"]
    return {
        "wamid": row["wamid"],
        "thread": row["thread"],
        "peer_id": row.get("peer_id"),
        "direction": row["direction"],
        "sent_at": iso(row["sent_at"]),
        "type": row["type"],
        "text": row.get("text_body"),
        "media": None
        if state == _NONE
        else {"state": state, "mime": row.get("media_mime"), "sha256": row.get("media_sha256")},
    }


def messages_stored(
    session: Session,
    onboarding: Onboarding,
    source: str,
    rows: Sequence[dict[str, Any]],
    **extra: Any,
) -> None:
    """``messages.stored`` for the messages a page stored for the first time (none: no event),
    and ``media.skipped`` for each of them whose media will never be fetched. ``extra``
    (a history page's ``phase`` and ``chunk_order``) goes into the body as is. Not committed."""
    if not rows or not enabled(session):
        return
    items = [message(row) for row in rows]
    events: list[tuple[EventType, dict[str, Any]]] = [
        (
            EventType.MESSAGES_STORED,
            {"source": source, "count": len(items), **extra, "messages": items},
        )
    ]
    events += [
        (EventType.MEDIA_SKIPPED, {"wamid": row["wamid"], "reason": row.get("media_error")})
        for row in rows
        if row["media_state"] == _SKIPPED
    ]
    emit_many(session, onboarding, events)
