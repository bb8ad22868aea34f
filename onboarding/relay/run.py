"""Forwarding the inbox: the cursor, retries with backoff, the failing state and its alert.

The relay's place is the ``feed_cursors`` row named ``relay``: ``(tx, event_id)`` is the last
inbox row handled (forwarded, or passed over by the field filter), committed after each step,
so a restart of any process resumes from it and at most the deliveries of one step go out a
second time (at-least-once). Deliveries go one at a time in inbox order: the first that the
receiver does not take stops the run, and every later one waits behind it.

A failed attempt counts in ``attempts`` and the next one waits 1, 2, 4 … seconds (capped at
``COEX_RELAY_RETRY_MAX_SECONDS``) after it. After ``COEX_RELAY_MAX_ATTEMPTS`` failures in a row
the relay is *failing* (``failing_since``): an operator alert ``relay_failing`` is raised and
one attempt is made every ``COEX_RELAY_FAILING_RETRY_SECONDS``, from the cursor, until the
receiver takes it again; then the alert is closed. Nothing is ever skipped to get past a
receiver that refuses a delivery.

One run at a time: on PostgreSQL a run holds a session advisory lock (a lock, not a
transaction: it holds back no reader of the feed or the inbox) and another run that finds it
taken returns at once.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
import structlog
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from config import Settings
from models import Alert, FeedCursor, utcnow
from onboarding.meta.payloads import PayloadError, parse_delivery
from onboarding.relay import log as inbox_log
from onboarding.relay.log import Entry, Position
from onboarding.relay.receiver import Receiver, RelayError
from onboarding.states import raise_alert

log = structlog.get_logger(__name__)

CURSOR = "relay"
ALERT = "relay_failing"
#: The advisory lock key of the relay ("coexrela").
LOCK_KEY = 0x636F657872656C61


@dataclass
class Report:
    """What one run did."""

    forwarded: int = 0
    passed_over: int = 0
    unsigned: int = 0
    #: ``"caught_up"``, ``"waiting"`` (a retry is not due), ``"failed"``, ``"busy"`` (another
    #: run holds the lock) or ``"budget"`` (more to do next run).
    outcome: str = "caught_up"
    error: str | None = None


def run(
    session: Session,
    receiver: Receiver,
    settings: Settings,
    *,
    max_deliveries: int = 100_000,
    budget_seconds: float | None = None,
    now: datetime | None = None,
) -> Report:
    """Forward what is due, in order, up to ``max_deliveries`` rows handled or
    ``budget_seconds`` spent (checked between steps); commits after each step."""
    with _exclusive(session) as held:
        if not held:
            return Report(outcome="busy")
        stop_at = None if budget_seconds is None else time.monotonic() + budget_seconds
        return _run(
            session, receiver, settings, max_deliveries=max_deliveries, stop_at=stop_at, now=now
        )


def _run(
    session: Session,
    receiver: Receiver,
    settings: Settings,
    *,
    max_deliveries: int,
    stop_at: float | None,
    now: datetime | None,
) -> Report:
    report = Report()
    cursor = cursor_row(session, settings)
    due = next_attempt_at(cursor, settings)
    if due is not None and (now or utcnow()) < due:
        report.outcome = "waiting"
        session.commit()
        return report
    wanted = settings.relay_field_set
    position = Position(cursor.tx, cursor.event_id)
    while report.forwarded + report.passed_over + report.unsigned < max_deliveries and (
        stop_at is None or time.monotonic() < stop_at
    ):
        entries = inbox_log.after(session, position, settings.relay_batch_size)
        if not entries:
            session.commit()
            return report
        # One step holds a few MiB of bodies at most, and reads only those it may send (a
        # history chunk passed over by the field filter is not read).
        entries = inbox_log.within_bytes(entries)
        raw = inbox_log.bodies(session, [e for e in entries if _may_send(e, wanted)])
        for entry in entries:
            if entry.signature is None:
                # Stored before coexist kept signatures: the receiver could not verify it.
                report.unsigned += 1
            elif entry.id not in raw or not _chosen(entry, raw[entry.id], wanted):
                report.passed_over += 1
            else:
                try:
                    receiver.send(
                        entry.id,
                        raw[entry.id],
                        signature=entry.signature,
                        content_type=entry.content_type,
                    )
                except RelayError as exc:
                    _advance(cursor, position)
                    _failed(session, cursor, settings, entry, str(exc))
                    session.commit()
                    report.outcome, report.error = "failed", str(exc)
                    return report
                report.forwarded += 1
                _succeeded(session, cursor)
            position = entry.position
        _advance(cursor, position)
        cursor.updated_at = utcnow()
        session.commit()
        log.info("relay_step", forwarded=report.forwarded, passed_over=report.passed_over)
    report.outcome = "budget"
    return report


def cursor_row(session: Session, settings: Settings) -> FeedCursor:
    """The relay's cursor, created where ``COEX_RELAY_START`` says on first use (flushed)."""
    cursor = session.get(FeedCursor, CURSOR)
    if cursor is None:
        start = inbox_log.latest(session) if settings.relay_start == "latest" else Position()
        cursor = FeedCursor(
            name=CURSOR, tx=start.tx, event_id=start.id, attempts=0, updated_at=utcnow()
        )
        session.add(cursor)
        session.flush()
    return cursor


def handled_through(session: Session, settings: Settings) -> Position | None:
    """The relay has handled (forwarded or passed over) every inbox row up to this position
    and owes none of them; None when the relay is off and owes nothing. A relay that has not
    run yet has handled nothing (``Position()``). The cursor only moves forward."""
    if not settings.relay_url:
        return None
    cursor = session.get(FeedCursor, CURSOR)
    return Position(cursor.tx, cursor.event_id) if cursor is not None else Position()


def status(session: Session, settings: Settings) -> dict[str, Any]:
    """The relay's state for operators: target (no credentials), place, backlog, failures."""
    cursor = session.get(FeedCursor, CURSOR)
    position = Position(cursor.tx, cursor.event_id) if cursor is not None else Position()
    due = next_attempt_at(cursor, settings) if cursor is not None else None
    target = httpx.URL(settings.relay_url) if settings.relay_url else None
    return {
        "enabled": target is not None,
        "target": f"{target.scheme}://{target.host}{target.path}" if target else None,
        "fields": sorted(settings.relay_field_set or []) or "every field",
        "cursor": {"tx": position.tx, "inbox_id": position.id},
        "backlog": inbox_log.backlog(session, position),
        "attempts": cursor.attempts if cursor is not None else 0,
        "failing_since": _iso(cursor.failing_since) if cursor is not None else None,
        "next_attempt_at": _iso(due),
        "last_error": cursor.last_error if cursor is not None else None,
        "delivered_at": _iso(cursor.delivered_at) if cursor is not None else None,
    }


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def next_attempt_at(cursor: FeedCursor, settings: Settings) -> datetime | None:
    """When the next attempt after a failure is due (None: no failure pending)."""
    if cursor.attempts == 0:
        return None
    if cursor.failing_since is not None:
        wait = settings.relay_failing_retry_seconds
    else:
        wait = min(2.0 ** (cursor.attempts - 1), settings.relay_retry_max_seconds)
    return cursor.updated_at + timedelta(seconds=wait)


def _may_send(entry: Entry, wanted: frozenset[str] | None) -> bool:
    """Signed, and chosen by its fields, or with fields the ingest worker has not read yet."""
    if entry.signature is None:
        return False
    return wanted is None or entry.fields is None or bool(set(entry.fields.split(",")) & wanted)


def _chosen(entry: Entry, body: bytes, wanted: frozenset[str] | None) -> bool:
    """Whether the delivery carries a chosen field (the ingest worker may not have read it yet)."""
    if wanted is None:
        return True
    if entry.fields is not None:
        fields = set(entry.fields.split(","))
    else:
        try:
            fields = {c.field for c in parse_delivery(body)}
        except PayloadError:
            return False  # no Meta delivery, so no field to choose it by
    return bool(fields & wanted)


def _advance(cursor: FeedCursor, position: Position) -> None:
    cursor.tx, cursor.event_id = position.tx, position.id


def _failed(
    session: Session, cursor: FeedCursor, settings: Settings, entry: Entry, error: str
) -> None:
    now = utcnow()
    cursor.attempts += 1
    cursor.last_error = f"inbox {entry.id}: {error}"[:2000]
    cursor.updated_at = now
    log.warning("relay_attempt_failed", delivery_id=entry.id, attempts=cursor.attempts, error=error)
    if cursor.failing_since is None and cursor.attempts >= settings.relay_max_attempts:
        cursor.failing_since = now
        message = (
            f"the relay to the provider's receiver is failing: {cursor.attempts} attempts in a "
            f"row refused inbox delivery {entry.id} ({error}); it is retried every "
            f"{settings.relay_failing_retry_seconds:g} s, later deliveries wait behind it"
        )
        raise_alert(session, None, ALERT, message, severity="error", reopen=True)
        log.error("relay_failing", delivery_id=entry.id, attempts=cursor.attempts, error=error)


def _succeeded(session: Session, cursor: FeedCursor) -> None:
    now = utcnow()
    cursor.delivered_at = now
    if cursor.attempts == 0:
        return
    if cursor.failing_since is not None:
        alert = session.scalar(
            select(Alert).where(
                Alert.onboarding_id.is_(None), Alert.kind == ALERT, Alert.acknowledged_at.is_(None)
            )
        )
        if alert is not None:
            alert.acknowledged_at = now
        log.info("relay_recovered", failing_since=cursor.failing_since.isoformat())
    cursor.attempts, cursor.failing_since, cursor.last_error = 0, None, None


@contextlib.contextmanager
def _exclusive(session: Session) -> Iterator[bool]:
    """Hold the relay's advisory lock on PostgreSQL while the block runs (True if taken)."""
    engine = session.get_bind().engine
    if engine.dialect.name != "postgresql":
        yield True
        return
    with engine.connect() as connection:
        held = bool(
            connection.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": LOCK_KEY}).scalar()
        )
        connection.commit()  # a session lock outlives the transaction that took it
        try:
            yield held
        finally:
            if held:
                connection.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": LOCK_KEY})
                connection.commit()
