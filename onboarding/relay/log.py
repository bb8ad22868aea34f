"""The inbox in the order the relay forwards it, never passing over a late commit.

Inbox ids are taken at insert, and the web intake's batches commit in another order: a batch
holding ids 7 and 8 may commit after the one holding 9. So, as the event feed is, the inbox is
read by writing transaction, then id, below the oldest running transaction
(:mod:`onboarding.ordered`): following ``(tx, id)`` skips nothing, at the price of a lag as long
as the longest running transaction.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import ColumnElement, Table, select
from sqlalchemy.orm import Session

from models import InboxDelivery
from onboarding import ordered

INBOX: Table = InboxDelivery.__table__  # type: ignore[assignment]


@dataclass(frozen=True, order=True)
class Position:
    """After the inbox row at ``(tx, id)``; ``Position()`` is before every row."""

    tx: int = 0
    id: int = 0


def visible(session: Session) -> ColumnElement[bool]:
    """Rows every reader can take: their transaction is older than any still running."""
    return ordered.visible(session, INBOX)


@dataclass(frozen=True)
class Entry:
    """What the relay needs of an inbox row, its body aside (read one at a time)."""

    tx: int
    id: int
    fields: str | None
    signature: str | None
    content_type: str | None
    size: int

    @property
    def position(self) -> Position:
        return Position(self.tx, self.id)


def after(session: Session, position: Position, limit: int) -> list[Entry]:
    """Up to ``limit`` readable inbox rows after ``position``, in relay order."""
    query = (
        select(
            INBOX.c.tx,
            INBOX.c.id,
            INBOX.c.fields,
            INBOX.c.signature,
            INBOX.c.content_type,
            INBOX.c.size,
        )
        .where(ordered.after(INBOX, position.tx, position.id), visible(session))
        .order_by(INBOX.c.tx, INBOX.c.id)
        .limit(max(1, limit))
    )
    return [Entry(*row) for row in session.execute(query)]


#: The most body bytes one relay step holds (one delivery more if it alone is larger).
BODY_BYTES_PER_STEP = 4 * 1024 * 1024


def within_bytes(entries: list[Entry], limit: int = BODY_BYTES_PER_STEP) -> list[Entry]:
    """The leading entries whose bodies add up to at most ``limit`` bytes (at least one)."""
    kept: list[Entry] = []
    total = 0
    for entry in entries:
        total += entry.size
        if kept and total > limit:
            break
        kept.append(entry)
    return kept


def bodies(session: Session, entries: list[Entry]) -> dict[int, bytes]:
    """The raw bytes of these rows, by id, in one query; none of a row whose body was dropped
    (retention, erasure): the relay passes it over."""
    if not entries:
        return {}
    rows = session.execute(
        select(INBOX.c.id, INBOX.c.body).where(
            INBOX.c.id.in_([e.id for e in entries]), INBOX.c.body_dropped_at.is_(None)
        )
    )
    return {id_: bytes(raw) for id_, raw in rows}


def latest(session: Session) -> Position:
    """The position after the last row readable now (to relay only what comes next)."""
    last = ordered.latest(session, INBOX)
    return Position(*last) if last is not None else Position()


def backlog(session: Session, position: Position) -> int:
    """How many inbox rows are readable after ``position`` (chosen by the filter or not)."""
    return ordered.backlog(session, INBOX, position.tx, position.id)
