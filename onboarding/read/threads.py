"""Threads: one per peer with messages, the most recently active first.

How the order is found without an aggregate over the onboarding's messages: each peer's last
message time and id come from backward probes of ``ix_messages_peer_time`` (``onboarding_id,
peer_id, sent_at, id``), correlated ``LIMIT 1`` subqueries answered from the index alone; the
page is the top ``limit`` of those by ``(last sent_at, peer id)``, and only those ``limit``
messages are then read from the table. A page therefore costs index probes per peer of the
onboarding (thousands, not the million messages they hold), and no writer pays for it: there is
no summary table to keep right through history chunks, echoes, sends, merges and revokes. The
counts are then read for the page's threads only, from the same index (``direction`` is
included in it on PostgreSQL, so they are index-only scans).

A thread that gets a new message while a client walks the list moves to the front: a walk
already past that point does not see it again, a new walk does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Row, Select, case, func, select, tuple_
from sqlalchemy.orm import Session

from models import Direction, Message, Peer
from onboarding.read.pages import Page, decode, encode, micros, moment, page
from onboarding.views import iso

LISTING = "threads"
#: How much of the last message's text a thread shows.
EXCERPT = 200

M = Message
P = Peer


@dataclass(frozen=True)
class Position:
    """A place in the list: after the thread whose last message is at ``last_at`` and whose
    peer is ``peer_id`` (the list goes from the most recent back)."""

    last_at: datetime
    peer_id: int


def after_position(cursor: str) -> Position:
    at, peer_id = decode(cursor, LISTING, 2)
    return Position(moment(at), peer_id)


def threads_query(
    onboarding_id: int, *, after: Position | None, limit: int
) -> Select[*tuple[Any, ...]]:
    """The keyset query of one page of threads (``limit + 1`` rows: the last only says more
    follow). Each peer's last message time and id come from index-only probes; only the page's
    last messages are then read from the table."""

    def last(column: Any) -> Any:
        return (
            select(column)
            .where(M.onboarding_id == onboarding_id, M.peer_id == P.id)
            .order_by(M.sent_at.desc(), M.id.desc())
            .limit(1)
            .correlate(P)
            .scalar_subquery()
        )

    heads = (
        select(
            P.id,
            P.phone,
            P.user_id,
            P.username,
            P.name,
            last(M.sent_at).label("last_at"),
            last(M.id).label("last_id"),
        )
        .where(P.onboarding_id == onboarding_id)
        .subquery("heads")
    )
    # Peers without messages have no last time: they sort last and the join below drops them.
    top = select(heads).order_by(heads.c.last_at.desc().nulls_last(), heads.c.id.desc())
    if after is not None:
        top = top.where(tuple_(heads.c.last_at, heads.c.id) < tuple_(after.last_at, after.peer_id))
    page_heads = top.limit(limit + 1).subquery("page_heads")
    return (
        select(
            page_heads.c.id,
            page_heads.c.phone,
            page_heads.c.user_id,
            page_heads.c.username,
            page_heads.c.name,
            M.wamid,
            M.sent_at,
            M.direction,
            M.type,
            M.text_body,
            M.revoked_at,
        )
        .join(M, M.id == page_heads.c.last_id)
        .order_by(M.sent_at.desc(), page_heads.c.id.desc())
    )


def counts_query(onboarding_id: int, peer_ids: Sequence[int]) -> Select[*tuple[Any, ...]]:
    """Messages, inbound and outbound of each of these peers."""

    def n(direction: Direction) -> Any:
        return func.coalesce(func.sum(case((M.direction == direction.value, 1), else_=0)), 0)

    return (
        select(M.peer_id, func.count(), n(Direction.INBOUND), n(Direction.OUTBOUND))
        .where(M.onboarding_id == onboarding_id, M.peer_id.in_(peer_ids))
        .group_by(M.peer_id)
    )


def read_threads(
    session: Session, onboarding_id: int, *, after: Position | None = None, limit: int
) -> Page:
    """A page of the onboarding's threads (:func:`thread_json`), most recent first."""
    rows = list(session.execute(threads_query(onboarding_id, after=after, limit=limit)))
    peer_ids = [row.id for row in rows[:limit]]
    tallies = {
        peer: (int(total), int(inbound), int(outbound))
        for peer, total, inbound, outbound in (
            session.execute(counts_query(onboarding_id, peer_ids)) if peer_ids else ()
        )
    }
    return page(
        rows,
        limit,
        lambda row: thread_json(row, tallies.get(row.id, (0, 0, 0))),
        lambda row: encode(LISTING, micros(row.sent_at), row.id),
    )


def thread_json(row: Row[Any], tally: tuple[int, int, int]) -> dict[str, Any]:
    """One thread as the read API gives it (documented in the README)."""
    text = None if row.revoked_at is not None else row.text_body
    return {
        "peer": {
            "id": row.id,
            "phone": row.phone,
            "user_id": row.user_id,
            "username": row.username,
            "name": row.name,
        },
        "last_message": {
            "wamid": row.wamid,
            "sent_at": iso(row.sent_at),
            "direction": row.direction,
            "type": row.type,
            "text": text[:EXCERPT] if text is not None else None,
        },
        "counts": {"messages": tally[0], "inbound": tally[1], "outbound": tally[2]},
    }
