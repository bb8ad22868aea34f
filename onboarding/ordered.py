"""Reading a table in commit-safe order: the feed's events and the relay's inbox both.

Ids are taken when a row is inserted, and transactions commit in another order: a row with id
7 from a long transaction may become visible after id 9 was read, and a reader that remembered
"after 9" would never see 7. So such a table carries ``tx``, the writing transaction's id
(:class:`models.feed.CurrentTx`), and is read by ``(tx, id)``, only the rows of transactions
older than every transaction still running (PostgreSQL:
``tx < pg_snapshot_xmin(pg_current_snapshot())``). Any transaction that commits later has a
larger ``tx`` than everything already read, so following ``(tx, id)`` never skips a row; the
price is a lag as long as the longest running transaction in the cluster. SQLite has one writer
at a time, so ids already commit in order there and ``tx`` is 0.
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, Table, func, select, text, tuple_
from sqlalchemy.orm import Session


def visible(session: Session, table: Table) -> ColumnElement[bool]:
    """Rows every reader can take: their transaction is older than any still running."""
    if session.get_bind().dialect.name != "postgresql":
        return table.c.id.isnot(None)
    return table.c.tx < text("pg_snapshot_xmin(pg_current_snapshot())::text::bigint")


def after(table: Table, tx: int, row_id: int) -> ColumnElement[bool]:
    """Rows after the one at ``(tx, row_id)`` in reading order."""
    return tuple_(table.c.tx, table.c.id) > tuple_(tx, row_id)


def latest(session: Session, table: Table) -> tuple[int, int] | None:
    """``(tx, id)`` of the last row readable now (None: no row yet)."""
    row = session.execute(
        select(table.c.tx, table.c.id)
        .where(visible(session, table))
        .order_by(table.c.tx.desc(), table.c.id.desc())
        .limit(1)
    ).first()
    return (row.tx, row.id) if row is not None else None


def backlog(session: Session, table: Table, tx: int, row_id: int) -> int:
    """How many rows are readable after ``(tx, row_id)``."""
    return int(
        session.scalar(
            select(func.count())
            .select_from(table)
            .where(after(table, tx, row_id), visible(session, table))
        )
        or 0
    )
