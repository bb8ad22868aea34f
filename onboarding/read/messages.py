"""A thread's messages, a page at a time, in time order either way.

The key is ``(sent_at, id)`` within ``(onboarding_id, peer_id)``: exactly the index
``ix_messages_peer_time``, so a page is one index range read of ``limit + 1`` entries whatever
the size of the thread or the onboarding (checked with ``EXPLAIN`` on PostgreSQL in
``tests/integration/test_read_plans.py``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Row, Select, select, tuple_
from sqlalchemy.orm import Session

from models import MediaState, Message, Peer
from onboarding.read.pages import Order, Page, decode, encode, micros, moment, page
from onboarding.views import iso

#: How a stored file is named: the lowercase hex sha256 of its bytes.
SHA256_HEX = re.compile(r"[0-9a-f]{64}")

M = Message
COLUMNS = (
    M.id,
    M.wamid,
    M.peer_id,
    M.source,
    M.direction,
    M.status,
    M.sent_at,
    M.type,
    M.text_body,
    M.edited_at,
    M.revoked_at,
    M.media_state,
    M.media_mime,
    M.media_sha256,
    M.media_size,
    M.media_error,
)


@dataclass(frozen=True)
class Position:
    """A place in a thread: after (or before, descending) the message at ``(sent_at, id)``."""

    sent_at: datetime
    id: int


def listing(order: Order) -> str:
    return f"messages.{order}"


def after_position(cursor: str, order: Order) -> Position:
    """The position a cursor of this order points after (:class:`~.pages.CursorError`)."""
    at, message_id = decode(cursor, listing(order), 2)
    return Position(moment(at), message_id)


def thread_exists(session: Session, onboarding_id: int, peer_id: int) -> bool:
    """Whether ``peer_id`` is a peer of the onboarding (a merge removes the peer it folds in)."""
    peer = session.get(Peer, peer_id)
    return peer is not None and peer.onboarding_id == onboarding_id


def page_query(
    onboarding_id: int, peer_id: int, *, order: Order, after: Position | None, limit: int
) -> Select[*tuple[Any, ...]]:
    """The keyset query of one page (``limit + 1`` rows: the last only says more follow)."""
    key = tuple_(M.sent_at, M.id)
    query = select(*COLUMNS).where(M.onboarding_id == onboarding_id, M.peer_id == peer_id)
    if order == "asc":
        if after is not None:
            query = query.where(key > tuple_(after.sent_at, after.id))
        query = query.order_by(M.sent_at, M.id)
    else:
        if after is not None:
            query = query.where(key < tuple_(after.sent_at, after.id))
        query = query.order_by(M.sent_at.desc(), M.id.desc())
    return query.limit(limit + 1)


def read_messages(
    session: Session,
    onboarding_id: int,
    peer_id: int,
    *,
    order: Order = "desc",
    after: Position | None = None,
    limit: int,
    media_url: Callable[[str], str],
) -> Page:
    """A page of the thread's messages (:func:`message_json`) after ``after``."""
    query = page_query(onboarding_id, peer_id, order=order, after=after, limit=limit)
    rows = list(session.execute(query))
    return page(
        rows,
        limit,
        lambda row: message_json(row, media_url),
        lambda row: encode(listing(order), micros(row.sent_at), row.id),
    )


def message_json(row: Row[Any], media_url: Callable[[str], str]) -> dict[str, Any]:
    """One message as the read API gives it (documented in the README)."""
    return {
        "id": row.id,
        "wamid": row.wamid,
        "peer_id": row.peer_id,
        "source": row.source,
        "direction": row.direction,
        "status": row.status,
        "sent_at": iso(row.sent_at),
        "type": row.type,
        # A revoke removes the content for good; the newest edit gave the text.
        "text": None if row.revoked_at is not None else row.text_body,
        "edited": row.edited_at is not None,
        "edited_at": iso(row.edited_at),
        "revoked": row.revoked_at is not None,
        "revoked_at": iso(row.revoked_at),
        "media": media_json(row, media_url),
    }


def media_json(row: Row[Any], media_url: Callable[[str], str]) -> dict[str, Any] | None:
    """A message's media state; ``url`` where the bytes are stored (None: no media)."""
    if row.media_state == MediaState.NONE.value and row.media_sha256 is None:
        return None
    stored = row.media_state == MediaState.STORED.value
    sha = row.media_sha256
    return {
        "state": row.media_state,
        "mime": row.media_mime,
        "sha256": sha,
        "size": row.media_size,
        "error": row.media_error,
        "url": media_url(sha) if stored and sha and SHA256_HEX.fullmatch(sha) else None,
    }
