"""The event feed: the transactional outbox a provider's product reads (``onboarding.feed``).

Every change a provider cares about is a :class:`FeedEvent` written in the transaction that
makes the change. A reader follows a cursor over ``(tx, id)``: ``tx`` is the writing
transaction's id (PostgreSQL's ``pg_current_xact_id()``; 0 on SQLite, which has one writer at a
time), so a transaction that took its ids early and commits late is never passed over
(:mod:`onboarding.feed.log`). :class:`FeedCursor` keeps a consumer's place, such as the push
delivery's.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Index, Integer, SmallInteger, String, Text
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.expression import ColumnElement

from models.base import Base
from models.onboarding import BigId


class CurrentTx(ColumnElement[int]):
    """The id of the transaction that evaluates it (``feed_events.tx``'s default)."""

    type = BigInteger()
    inherit_cache = True


@compiles(CurrentTx)
def _current_tx(element: CurrentTx, compiler: SQLCompiler, **kw: Any) -> str:
    return "0"  # SQLite: one writer at a time, so ids commit in order


@compiles(CurrentTx, "postgresql")
def _current_tx_postgresql(element: CurrentTx, compiler: SQLCompiler, **kw: Any) -> str:
    return "(pg_current_xact_id()::text::bigint)"


class FeedEvent(Base):
    """One event of the feed; never updated. An onboarding's erasure deletes its events that
    carry personal data (:mod:`onboarding.rights.erase`)."""

    __tablename__ = "feed_events"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    #: The writing transaction's id, set by the database (see the module's docstring).
    tx: Mapped[int] = mapped_column(BigInteger, server_default=CurrentTx())
    type: Mapped[str] = mapped_column(String(64))
    #: The version of ``body``'s shape for this ``type``.
    version: Mapped[int] = mapped_column(SmallInteger, default=1)
    #: No foreign key: the feed outlives what it tells of (an erased onboarding's events say
    #: it was erased).
    onboarding_id: Mapped[int | None] = mapped_column(BigInteger)
    waba_id: Mapped[str | None] = mapped_column(String(32))
    phone_number_id: Mapped[str | None] = mapped_column(String(32))
    occurred_at: Mapped[datetime]
    body: Mapped[dict[str, Any]] = mapped_column(JSON)

    __table_args__ = (
        Index("ix_feed_events_position", "tx", "id"),
        Index("ix_feed_events_onboarding_position", "onboarding_id", "tx", "id"),
    )


class FeedCursor(Base):
    """Where one consumer of the feed stands: the last event it has, and how delivery goes."""

    __tablename__ = "feed_cursors"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    #: The position of the last event delivered (``(0, 0)``: none yet).
    tx: Mapped[int] = mapped_column(BigInteger, default=0)
    event_id: Mapped[int] = mapped_column(BigInteger, default=0)
    #: A batch sent but not yet acknowledged: its last event, so a retry sends the same batch.
    pending_tx: Mapped[int | None] = mapped_column(BigInteger)
    pending_event_id: Mapped[int | None] = mapped_column(BigInteger)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    failing_since: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    delivered_at: Mapped[datetime | None]
    updated_at: Mapped[datetime]
