"""Push delivery: the feed POSTed to the provider in batches, signed per Standard Webhooks.

:func:`deliver` sends what is pending, bounded by a time budget. Its place is the
``feed_cursors`` row ``push``; a batch is the events after that cursor (at most
``COEX_FEED_WEBHOOK_BATCH_SIZE``), POSTed to ``COEX_FEED_WEBHOOK_URL`` as
``{"events": [envelope, ...]}`` (:func:`onboarding.feed.log.envelope`)::

    cursor ──read──▶ pending batch (its last event kept in pending_tx/pending_event_id)
                        │ POST ── 2xx ──▶ cursor = the batch's last event; pending cleared
                        └────── non-2xx, timeout, refused ──▶ attempts + 1; wait, then the
                               same batch again: same events, same bytes, same webhook-id
    attempts reach COEX_FEED_WEBHOOK_MAX_ATTEMPTS ──▶ failing (failing_since, alert
        ``feed_push_failing``); still retried on later runs, the wait capped
    a 2xx while failing ──▶ failing cleared, alert resolved

So delivery is at least once, in feed order, with no gaps: the cursor moves only past a batch
the receiver acknowledged, and a batch is fixed (its end written) before it is first sent, so
a worker that dies mid-request leaves the same batch to be sent again. ``webhook-id`` is
``feed_<first cursor>_<last cursor>``: a receiver deduplicates on it.

The wait after the n-th failed attempt is ``backoff * 2^(n-1)``, capped, times a jitter between
½ and 1 drawn from the batch's id and n (so every run agrees on it); it is counted from the
row's ``updated_at``, the time of that failure.

**One deliverer at a time.** On PostgreSQL :func:`exclusive` takes a session-level advisory
lock on a connection of its own, idle between statements; another run finds it taken and
returns at once (:attr:`Report.busy`). A row lock (``FOR UPDATE``) would do the same but keep
a transaction with an id open across each HTTP request, and the feed shows events only below
the oldest running transaction (:mod:`onboarding.feed.log`): every reader would lag behind the
deliverer's requests. The lock dies with its connection, so a killed worker never holds it.
Every write to the row is a compare-and-set on the cursor and the pending batch, so an
operator's :func:`rewind` during a run is never overwritten. On SQLite (one process, the
embedded mode) the lock is a lock of the process.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any, Final, Protocol

import httpx
import structlog
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from config import Settings
from models import Database, FeedCursor, utcnow
from onboarding.feed.events import EVENTS, iso
from onboarding.feed.log import MAX_LIMIT, Cursor, backlog, latest, read, read_text, visible
from onboarding.states import raise_alert, resolve_alert
from onboarding.webhook_signing import Signer

log = structlog.get_logger(__name__)

CURSOR_NAME: Final = "push"
ALERT_KIND: Final = "feed_push_failing"
#: The advisory lock key of the one deliverer ("coexfeed").
LOCK_KEY: Final = 0x636F657866656564
#: How much of a receiver's answer is kept as the error.
ERROR_CHARS: Final = 300


class PushError(Exception):
    """The receiver did not acknowledge a batch (non-2xx, timeout, connection refused)."""


class Receiver(Protocol):
    """Where batches go: :class:`FeedWebhook`, or a test's stand-in."""

    def post(self, message_id: str, body: str) -> None:
        """Send one batch; raise :class:`PushError` unless it was acknowledged (2xx)."""
        ...


@dataclass(frozen=True)
class Policy:
    """How :func:`deliver` batches, retries and stops (``COEX_FEED_WEBHOOK_*``)."""

    batch_size: int = 100
    max_attempts: int = 8
    backoff: float = 1.0
    backoff_max: float = 300.0
    budget: float = 20.0

    @classmethod
    def from_settings(cls, settings: Settings) -> Policy:
        return cls(
            batch_size=settings.feed_webhook_batch_size,
            max_attempts=settings.feed_webhook_max_attempts,
            backoff=settings.feed_webhook_backoff_seconds,
            backoff_max=settings.feed_webhook_backoff_max_seconds,
            budget=settings.feed_push_budget_seconds,
        )

    def wait(self, webhook_id: str, attempts: int) -> float:
        """Seconds to wait after the ``attempts``-th failure of batch ``webhook_id``."""
        if attempts < 1:
            return 0.0
        base = min(self.backoff_max, self.backoff * 2.0 ** min(attempts - 1, 32))
        jitter: float = random.Random(f"{webhook_id}:{attempts}").uniform(0.5, 1.0)
        return base * jitter


@dataclass(frozen=True)
class Batch:
    """The events after ``after`` up to ``last``, as one request."""

    after: Cursor
    first: Cursor
    last: Cursor
    #: Each event's envelope as JSON text (:func:`onboarding.feed.log.read_text`).
    events: list[str]
    #: Which attempt at this batch sending it now is (1 for the first).
    attempt: int

    @property
    def webhook_id(self) -> str:
        return batch_id(self.first, self.last)

    def body(self) -> str:
        """The request body: the same string on every attempt."""
        return '{"events":[' + ",".join(self.events) + "]}"


def batch_id(first: Cursor, last: Cursor) -> str:
    """The ``webhook-id`` of the batch from ``first`` to ``last``."""
    return f"feed_{first.encode()}_{last.encode()}"


@dataclass
class Report:
    """What one :func:`deliver` run did."""

    batches: int = 0
    events: int = 0
    #: Another deliverer holds the lock: this run did nothing.
    busy: bool = False
    #: The failure that ended the run, if one did.
    error: str | None = None
    #: Seconds until the pending batch may be sent again, when a wait ended the run.
    waiting: float | None = None
    #: The budget ran out after a delivered batch: there may be more to send now.
    more: bool = False
    cursor: str = field(default_factory=lambda: Cursor().encode())


class FeedWebhook:
    """The provider's receiver over HTTP: ``POST`` of a batch with the signing headers."""

    def __init__(
        self, url: str, secret: str, *, timeout: float = 10.0, http: httpx.Client | None = None
    ) -> None:
        parsed = httpx.URL(url) if url else None
        if parsed is None or parsed.scheme not in ("http", "https") or not parsed.host:
            raise ValueError("the feed webhook URL must be an http(s) URL")
        self.url = url
        self._signer = Signer(secret)
        self._owns_http = http is None
        self._http = http or httpx.Client(
            timeout=timeout, follow_redirects=False, headers={"User-Agent": "coexist/0.1"}
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> FeedWebhook:
        return cls(
            settings.feed_webhook_url,
            settings.feed_webhook_secret.get_secret_value(),
            timeout=settings.feed_webhook_timeout,
        )

    def post(self, message_id: str, body: str) -> None:
        """POST ``body`` signed as ``message_id``; :class:`PushError` unless answered 2xx."""
        headers = {"Content-Type": "application/json", **self._signer.headers(message_id, body)}
        try:
            response = self._http.post(self.url, content=body.encode(), headers=headers)
        except httpx.TimeoutException as exc:
            raise PushError(f"no answer in time: {type(exc).__name__}") from None
        except httpx.TransportError as exc:
            raise PushError(f"could not reach the receiver: {type(exc).__name__}") from None
        if not response.is_success:
            text = " ".join(response.text[:ERROR_CHARS].split())
            raise PushError(f"HTTP {response.status_code}: {text!r}")

    def close(self) -> None:
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> FeedWebhook:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


# -- the one deliverer ---------------------------------------------------------------------

_local_locks: dict[str, threading.Lock] = {}
_local_guard = threading.Lock()


@contextmanager
def exclusive(db: Database) -> Iterator[bool]:
    """Hold the deliverer's lock for the block if nobody else does; yields whether it is held."""
    if db.dialect != "postgresql":
        with _local_guard:
            lock = _local_locks.setdefault(db.url, threading.Lock())
        held = lock.acquire(blocking=False)
        try:
            yield held
        finally:
            if held:
                lock.release()
        return
    with db.engine.connect() as connection:
        held = bool(connection.scalar(select(func.pg_try_advisory_lock(LOCK_KEY))))
        connection.commit()  # idle from here on: no snapshot, no transaction id
        try:
            yield held
        finally:
            if held:
                try:
                    connection.scalar(select(func.pg_advisory_unlock(LOCK_KEY)))
                    connection.commit()
                except Exception:
                    connection.invalidate()  # closing the connection frees the lock
                    raise


def deliver(
    db: Database,
    receiver: Receiver,
    policy: Policy,
    *,
    clock: Callable[[], float] = time.monotonic,
) -> Report:
    """Send the pending batches in order until none is left, one fails, a wait is due, or
    ``policy.budget`` seconds have passed. Commits as it goes."""
    report = Report()
    with exclusive(db) as held:
        if not held:
            report.busy = True
            log.info("feed_push_busy")
            return report
        deadline = clock() + policy.budget
        while True:
            with db.session() as session:
                taken = _take(session, policy)
            if taken is None:
                break
            if isinstance(taken, float):
                report.waiting = taken
                break
            if not _send(db, receiver, taken, policy, report):
                break
            if clock() >= deadline:
                report.more = True
                break
    return report


def _send(db: Database, receiver: Receiver, batch: Batch, policy: Policy, report: Report) -> bool:
    """Send one batch and record the outcome; whether the run may go on."""
    try:
        receiver.post(batch.webhook_id, batch.body())
    except PushError as exc:
        with db.session() as session:
            _failed(session, batch, str(exc), policy)
        report.error = str(exc)
        return False
    with db.session() as session:
        moved = _delivered(session, batch)
    if not moved:
        log.warning("feed_push_cursor_moved", batch=batch.webhook_id)
        return False
    report.batches += 1
    report.events += len(batch.events)
    report.cursor = batch.last.encode()
    log.info(
        "feed_push_delivered",
        batch=batch.webhook_id,
        events=len(batch.events),
        attempt=batch.attempt,
    )
    return True


def cursor_row(session: Session) -> FeedCursor:
    """The push cursor's row, locked for the transaction (short: never across a request),
    created at the start of the feed if missing (flushed)."""
    row = session.get(FeedCursor, CURSOR_NAME, with_for_update=True)
    if row is not None:
        return row
    try:
        with session.begin_nested():
            session.add(FeedCursor(name=CURSOR_NAME, tx=0, event_id=0, updated_at=utcnow()))
    except IntegrityError:
        pass  # created meanwhile by a rewind
    return session.get_one(FeedCursor, CURSOR_NAME, with_for_update=True)


def _take(session: Session, policy: Policy) -> Batch | float | None:
    """The batch to send now (its end written), seconds to wait first, or None if none."""
    row = cursor_row(session)
    after = Cursor(row.tx, row.event_id)
    if row.pending_tx is not None and row.pending_event_id is not None:
        until = Cursor(row.pending_tx, row.pending_event_id)
        due = row.updated_at + timedelta(
            seconds=policy.wait(_pending_id(session, after, until), row.attempts)
        )
        now = utcnow()
        if now < due:
            return (due - now).total_seconds()
        events = read_text(session, after, MAX_LIMIT, until=until)
        if events:
            last = events[-1][0]
            if last != until:  # more than one request's worth: send what was read
                row.pending_tx, row.pending_event_id = last.tx, last.id
            return _batch(after, events, row.attempts + 1)
        # Nothing left of the batch (an operator deleted events): start a fresh one.
        log.warning("feed_push_pending_batch_gone", pending=until.encode())
        row.pending_tx = row.pending_event_id = None
        row.attempts = 0
    events = read_text(session, after, policy.batch_size)
    if not events:
        return None
    last = events[-1][0]
    row.pending_tx, row.pending_event_id = last.tx, last.id
    row.updated_at = utcnow()
    return _batch(after, events, row.attempts + 1)


def _pending_id(session: Session, after: Cursor, until: Cursor) -> str:
    first = read_text(session, after, 1, until=until)
    return batch_id(first[0][0] if first else until, until)


def _batch(after: Cursor, events: list[tuple[Cursor, str]], attempt: int) -> Batch:
    return Batch(
        after=after,
        first=events[0][0],
        last=events[-1][0],
        events=[text for _, text in events],
        attempt=attempt,
    )


def _same_batch(batch: Batch) -> Any:
    return (
        FeedCursor.name == CURSOR_NAME,
        FeedCursor.tx == batch.after.tx,
        FeedCursor.event_id == batch.after.id,
        FeedCursor.pending_tx == batch.last.tx,
        FeedCursor.pending_event_id == batch.last.id,
    )


def _delivered(session: Session, batch: Batch) -> bool:
    """Move the cursor past an acknowledged batch; False if the row moved meanwhile."""
    row = session.get_one(FeedCursor, CURSOR_NAME, with_for_update=True)
    was_failing = row.failing_since is not None
    now = utcnow()
    result = session.execute(
        update(FeedCursor)
        .where(*_same_batch(batch))
        .values(
            tx=batch.last.tx,
            event_id=batch.last.id,
            pending_tx=None,
            pending_event_id=None,
            attempts=0,
            failing_since=None,
            last_error=None,
            delivered_at=now,
            updated_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        return False
    if was_failing:
        resolve_alert(session, None, ALERT_KIND, at=now)
        log.info("feed_push_recovered", batch=batch.webhook_id, attempts=batch.attempt)
    return True


def _failed(session: Session, batch: Batch, error: str, policy: Policy) -> None:
    """Count a failed attempt; past the bound, mark push failing and raise the alert."""
    row = session.get_one(FeedCursor, CURSOR_NAME, with_for_update=True)
    now = utcnow()
    failing_since = row.failing_since
    newly_failing = failing_since is None and batch.attempt >= policy.max_attempts
    if newly_failing:
        failing_since = now
    result = session.execute(
        update(FeedCursor)
        .where(*_same_batch(batch))
        .values(
            attempts=batch.attempt,
            last_error=error,
            failing_since=failing_since,
            updated_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        return  # rewound meanwhile: this failure is about a batch no longer pending
    wait = policy.wait(batch.webhook_id, batch.attempt)
    log.warning(
        "feed_push_failed",
        batch=batch.webhook_id,
        attempt=batch.attempt,
        error=error,
        retry_in=round(wait, 3),
    )
    if newly_failing:
        raise_alert(
            session,
            None,
            ALERT_KIND,
            f"feed push failing after {batch.attempt} attempts at batch {batch.webhook_id}: "
            f"{error}",
            severity="error",
            reopen=True,
        )


# -- operators -----------------------------------------------------------------------------


class RewindError(ValueError):
    """A place the push cursor cannot be moved to."""


@dataclass(frozen=True)
class Rewound:
    previous: Cursor
    cursor: Cursor
    #: Events that will be (re-)delivered from the new place.
    ahead: int


def rewind(session: Session, to: Cursor) -> Rewound:
    """Move the push cursor to ``to`` (the start, or an event's own cursor: delivery resumes
    with the event after it), dropping the pending batch and the failing state. Not committed.
    """
    if to != Cursor() and not _readable(session, to):
        raise RewindError(f"no event of the feed is at {to.encode()}")
    row = cursor_row(session)
    previous = Cursor(row.tx, row.event_id)
    was_failing = row.failing_since is not None
    row.tx, row.event_id = to.tx, to.id
    row.pending_tx = row.pending_event_id = None
    row.attempts = 0
    row.failing_since = None
    row.last_error = None
    row.updated_at = utcnow()
    if was_failing:
        resolve_alert(session, None, ALERT_KIND)
    session.flush()
    log.info("feed_push_rewound", previous=previous.encode(), cursor=to.encode())
    return Rewound(previous, to, backlog(session, to))


def _readable(session: Session, at: Cursor) -> bool:
    return (
        session.scalar(
            select(EVENTS.c.id).where(EVENTS.c.tx == at.tx, EVENTS.c.id == at.id, visible(session))
        )
        is not None
    )


def place(session: Session, value: str) -> Cursor:
    """A rewind target as an operator writes it: ``start``, ``latest`` or a cursor."""
    word = value.strip().lower()
    if word == "start":
        return Cursor()
    if word == "latest":
        return latest(session)
    return Cursor.decode(value)


def status(session: Session, settings: Settings) -> dict[str, Any]:
    """The push delivery's state and lag, as ``coexist feed status --json`` prints it."""
    row = session.get(FeedCursor, CURSOR_NAME)
    after = Cursor(row.tx, row.event_id) if row is not None else Cursor()
    oldest = read(session, after, 1).events
    lag_seconds = 0.0
    if oldest:
        occurred = datetime.fromisoformat(oldest[0]["occurred_at"])
        lag_seconds = max(0.0, (utcnow() - occurred).total_seconds())
    pending = None
    if row is not None and row.pending_tx is not None and row.pending_event_id is not None:
        until = Cursor(row.pending_tx, row.pending_event_id)
        pending = {
            "webhook_id": _pending_id(session, after, until),
            "until": until.encode(),
            "attempts": row.attempts,
        }
    return {
        "enabled": bool(settings.feed_webhook_url),
        "url": _shown_url(settings.feed_webhook_url),
        "cursor": after.encode(),
        "pending": pending,
        "lag_events": backlog(session, after),
        "lag_seconds": round(lag_seconds, 3),
        "failing": row is not None and row.failing_since is not None,
        "failing_since": iso(row.failing_since) if row is not None else None,
        "last_error": row.last_error if row is not None else None,
        "delivered_at": iso(row.delivered_at) if row is not None else None,
    }


def _shown_url(url: str) -> str | None:
    """The receiver's URL without credentials or query (either may carry a secret)."""
    if not url:
        return None
    parsed = httpx.URL(url)
    port = f":{parsed.port}" if parsed.port else ""
    return f"{parsed.scheme}://{parsed.host}{port}{parsed.path}"
