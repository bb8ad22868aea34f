"""Reading the feed in order: cursors that never pass over an event.

The feed is ordered by the writing transaction, then by id, and an event is readable only once
every older transaction has ended (:mod:`onboarding.ordered`, shared with the relay's inbox), so
an event whose transaction took its id early and committed late still comes after a cursor
already handed out, never behind it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Row, Select, Text, cast, select, tuple_
from sqlalchemy.orm import Session

from onboarding import ordered
from onboarding.feed.events import EVENTS, EventType, iso

#: The most events one read returns.
MAX_LIMIT = 1000
_CURSOR = re.compile(r"(\d{1,19})-(\d{1,19})")
_MAX = 2**63 - 1


class CursorError(ValueError):
    """A cursor string this feed did not hand out."""


@dataclass(frozen=True, order=True)
class Cursor:
    """A place in the feed: after the event at ``(tx, id)``; ``Cursor()`` is the start."""

    tx: int = 0
    id: int = 0

    def encode(self) -> str:
        return f"{self.tx}-{self.id}"

    @classmethod
    def decode(cls, value: str) -> Cursor:
        """The cursor a feed page handed out as ``next_cursor`` (or an event's ``cursor``)."""
        match = _CURSOR.fullmatch(value.strip())
        if match is None:
            raise CursorError(f"not a feed cursor: {value[:40]!r}")
        tx, event_id = (int(part) for part in match.groups())
        if tx > _MAX or event_id > _MAX:
            raise CursorError(f"not a feed cursor: {value[:40]!r}")
        return cls(tx, event_id)


@dataclass
class Page:
    """Events after a cursor, in feed order, and the cursor to ask with next."""

    events: list[dict[str, Any]]
    next_cursor: Cursor


def visible(session: Session) -> ColumnElement[bool]:
    """Events every reader can take: their transaction is older than any still running."""
    return ordered.visible(session, EVENTS)


def read(
    session: Session,
    after: Cursor,
    limit: int,
    *,
    onboarding_id: int | None = None,
    types: Sequence[EventType] = (),
    until: Cursor | None = None,
) -> Page:
    """Up to ``limit`` events after ``after`` (and up to ``until``, inclusive, if given), oldest
    first, as :func:`envelope` dicts."""
    query = _page(session, select(EVENTS), after, limit, until)
    if onboarding_id is not None:
        query = query.where(EVENTS.c.onboarding_id == onboarding_id)
    if types:
        query = query.where(EVENTS.c.type.in_([t.value for t in types]))
    rows = session.execute(query).all()
    events = [envelope(row) for row in rows]
    return Page(events, Cursor(rows[-1].tx, rows[-1].id) if rows else after)


def read_text(
    session: Session, after: Cursor, limit: int, *, until: Cursor | None = None
) -> list[tuple[Cursor, str]]:
    """:func:`read` for sending on: each event's position and its envelope as JSON text, the
    body spliced in as stored rather than parsed and serialized again (push's hot path)."""
    columns = [c for c in EVENTS.c if c.name != "body"]
    query = _page(
        session, select(*columns, cast(EVENTS.c.body, Text).label("data")), after, limit, until
    )
    return [(Cursor(row.tx, row.id), envelope_text(row)) for row in session.execute(query)]


def _page(
    session: Session, query: Select[Any], after: Cursor, limit: int, until: Cursor | None
) -> Select[Any]:
    query = (
        query.where(ordered.after(EVENTS, after.tx, after.id), visible(session))
        .order_by(EVENTS.c.tx, EVENTS.c.id)
        .limit(max(1, min(limit, MAX_LIMIT)))
    )
    if until is not None:
        query = query.where(tuple_(EVENTS.c.tx, EVENTS.c.id) <= tuple_(until.tx, until.id))
    return query


def latest(session: Session) -> Cursor:
    """The cursor after the last event readable now (to follow only what comes next)."""
    last = ordered.latest(session, EVENTS)
    return Cursor(*last) if last is not None else Cursor()


def backlog(session: Session, after: Cursor) -> int:
    """How many events are readable after ``after``."""
    return ordered.backlog(session, EVENTS, after.tx, after.id)


def envelope(row: Row[Any]) -> dict[str, Any]:
    """An event as consumers get it, pulled or pushed (documented in the README)."""
    return {**_head(row), "data": row.body}


def envelope_text(row: Row[Any]) -> str:
    """:func:`envelope` as compact JSON, ``data`` being the body's stored JSON text."""
    data: str = row.data
    return json.dumps(_head(row), separators=(",", ":"))[:-1] + ',"data":' + data + "}"


def _head(row: Row[Any]) -> dict[str, Any]:
    return {
        "id": row.id,
        "cursor": Cursor(row.tx, row.id).encode(),
        "type": row.type,
        "version": row.version,
        "onboarding_id": row.onboarding_id,
        "waba_id": row.waba_id,
        "phone_number_id": row.phone_number_id,
        "occurred_at": iso(row.occurred_at),
    }
