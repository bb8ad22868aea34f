"""The inbox in the order the relay forwards it, never passing over a late commit.

Inbox ids are taken at insert, and the web intake's batches commit in another order: a batch
holding ids 7 and 8 may commit after the one holding 9. A reader that remembered "after 9"
would never forward 7. So, as for the event feed (:mod:`onboarding.feed.log`), the relay reads
rows by *writing transaction* first, then id, and only the rows of transactions older than every
transaction still running (PostgreSQL: ``tx < pg_snapshot_xmin(pg_current_snapshot())``). A
transaction that commits later has a larger ``tx`` than anything read, so following ``(tx, id)``
skips nothing; the price is a lag as long as the longest running transaction. On SQLite (one
writer at a time) ``tx`` is 0 and ids commit in order.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import ColumnElement, func, select, text, tuple_
from sqlalchemy.orm import Session

from models import InboxDelivery

INBOX = InboxDelivery.__table__


@dataclass(frozen=True, order=True)
class Position:
    """After the inbox row at ``(tx, id)``; ``Position()`` is before every row."""

    tx: int = 0
    id: int = 0


def visible(session: Session) -> ColumnElement[bool]:
    """Rows every reader can take: their transaction is older than any still running."""
    if session.get_bind().dialect.name != "postgresql":
        return INBOX.c.id.isnot(None)
    return INBOX.c.tx < text("pg_snapshot_xmin(pg_current_snapshot())::text::bigint")


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
        .where(tuple_(INBOX.c.tx, INBOX.c.id) > tuple_(position.tx, position.id), visible(session))
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
    """The raw bytes of these rows, by id, in one query."""
    if not entries:
        return {}
    rows = session.execute(
        select(INBOX.c.id, INBOX.c.body).where(INBOX.c.id.in_([e.id for e in entries]))
    )
    return {id_: bytes(raw) for id_, raw in rows}


def latest(session: Session) -> Position:
    """The position after the last row readable now (to relay only what comes next)."""
    row = session.execute(
        select(InboxDelivery.tx, InboxDelivery.id)
        .where(visible(session))
        .order_by(InboxDelivery.tx.desc(), InboxDelivery.id.desc())
        .limit(1)
    ).first()
    return Position(row.tx, row.id) if row is not None else Position()


def backlog(session: Session, position: Position) -> int:
    """How many inbox rows are readable after ``position`` (chosen by the filter or not)."""
    return int(
        session.scalar(
            select(func.count())
            .select_from(INBOX)
            .where(
                tuple_(INBOX.c.tx, INBOX.c.id) > tuple_(position.tx, position.id),
                visible(session),
            )
        )
        or 0
    )
