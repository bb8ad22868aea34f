"""Webhook intake: verify, persist raw, then let the ingest queue process.

Meta signs each delivery with ``X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the raw body,
keyed with the app secret>`` (docs/meta.md#62-signatures-x-hub-signature-256). The signature is
checked on the raw bytes before anything is parsed; a delivery that fails it is refused and
leaves no trace. A signed delivery is committed to the inbox (deduplicated by the sha256 of its
bytes) before Meta gets its ``200``, and nothing more: persist first, process after. Parsing is
the ingest worker's (:mod:`onboarding.ingest.dispatch`), which fills the row's routing columns
and keeps a signed body that cannot be a Meta delivery as ``quarantined`` with the reason; it
was answered ``200`` all the same, since retrying cannot fix it. Meta's signature and the
``Content-Type`` are kept with the bytes, as received, for the relay to forward
(:mod:`onboarding.relay`).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
import structlog
from sqlalchemy import select, update
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from models import InboxDelivery, InboxStatus, utcnow
from onboarding import metrics
from onboarding.runtime import Runtime
from onboarding.store import insert_for

log = structlog.get_logger(__name__)


#: The longest header value kept with a delivery (a longer one is not kept).
HEADER_LIMIT = 128


@dataclass(frozen=True)
class Received:
    """A verified delivery as it came: raw bytes, Meta's signature and content type."""

    body: bytes
    signature: str | None = None
    content_type: str | None = None


@dataclass(frozen=True)
class Intake:
    """What happened to a delivery at the door."""

    delivery_id: int
    status: str
    duplicate: bool


def receive(session: Session, body: bytes | Received, *, now: datetime | None = None) -> Intake:
    """Store one signed delivery (once per distinct body) and commit."""
    return receive_many(session, [body], now=now)[0]


def receive_many(
    session: Session, bodies: Sequence[bytes | Received], *, now: datetime | None = None
) -> list[Intake]:
    """Store signed deliveries, each once per distinct body, in one transaction; commit.

    One ``INSERT … ON CONFLICT (sha256) DO NOTHING RETURNING`` for the batch; a conflict is Meta
    redelivering the same bytes, counted on the existing row. Returns one :class:`Intake` per
    body, in order.
    """
    digests, rows = _plan(bodies, now or utcnow())
    inserted = _insert_rows(session, list(rows.values()))
    existing: dict[str, tuple[int, str]] = {}
    missing = [d for d in rows if d not in inserted]
    if missing:
        query = select(InboxDelivery.id, InboxDelivery.sha256, InboxDelivery.status).where(
            InboxDelivery.sha256.in_(missing)
        )
        for id_, sha, status in session.execute(query):
            existing[sha] = (id_, status)
    out, repeats = _outcome(digests, rows, inserted, existing)
    for target, count in repeats.items():
        session.execute(
            update(InboxDelivery)
            .where(InboxDelivery.id == target)
            .values(duplicates=InboxDelivery.duplicates + count)
        )
    session.commit()
    for intake in out:
        metrics.DELIVERIES.labels("duplicate" if intake.duplicate else "stored").inc()
    return out


def _plan(
    bodies: Sequence[bytes | Received], now: datetime
) -> tuple[list[str], dict[str, dict[str, object]]]:
    received = [b if isinstance(b, Received) else Received(b) for b in bodies]
    digests = [hashlib.sha256(r.body).hexdigest() for r in received]
    rows: dict[str, dict[str, object]] = {}
    for digest, delivery in zip(digests, received, strict=True):
        if digest not in rows:  # the same bytes carry the same signature
            rows[digest] = _row(digest, delivery, now)
    return digests, rows


def _outcome(
    digests: list[str],
    rows: dict[str, dict[str, object]],
    inserted: dict[str, int],
    existing: dict[str, tuple[int, str]],
) -> tuple[list[Intake], dict[int, int]]:
    """One Intake per body, and the duplicate counts to add per existing row id."""
    seen: Counter[str] = Counter()
    out: list[Intake] = []
    for digest in digests:
        seen[digest] += 1
        if digest in inserted:
            status = str(rows[digest]["status"])
            out.append(Intake(inserted[digest], status, duplicate=seen[digest] > 1))
        else:
            out.append(Intake(existing[digest][0], existing[digest][1], duplicate=True))
    repeats: dict[int, int] = {}
    for digest, count in seen.items():
        extra = count if digest in existing else count - 1
        if extra:
            target = inserted[digest] if digest in inserted else existing[digest][0]
            repeats[target] = extra
    return out, repeats


class AsyncInboxWriter:
    """The receiver's inbox writes on PostgreSQL, awaited on the event loop.

    Same statements and guarantees as :func:`receive_many` (committed before it returns), on
    one asynchronous connection, so a batch does not hop to a thread and back. A database
    error closes the connection (the next batch reconnects) and is raised as SQLAlchemy's
    ``OperationalError``, which the web app answers with 503.
    """

    def __init__(self, url: str) -> None:
        self._dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
        self._connection: psycopg.AsyncConnection[Any] | None = None

    async def write(self, bodies: Sequence[bytes | Received]) -> list[Intake]:
        digests, rows = _plan(bodies, utcnow())
        try:
            if self._connection is None or self._connection.closed:
                self._connection = await psycopg.AsyncConnection.connect(self._dsn, autocommit=True)
            connection = self._connection
            # One statement for the batch, committed as it returns (autocommit): the usual
            # case, every delivery new, costs a single round trip.
            cursor = await connection.execute(
                _pg_insert(len(rows)),
                [row[c] for row in rows.values() for c in _COLUMNS],
            )
            inserted: dict[str, int] = {sha: id_ for id_, sha in await cursor.fetchall()}
            existing: dict[str, tuple[int, str]] = {}
            missing = [d for d in rows if d not in inserted]
            if missing:  # Meta redelivering bytes stored before
                cursor = await connection.execute(
                    "SELECT id, sha256, status FROM inbox WHERE sha256 = ANY(%s)", (missing,)
                )
                for id_, sha, status in await cursor.fetchall():
                    existing[sha] = (id_, status)
            out, repeats = _outcome(digests, rows, inserted, existing)
            if repeats:  # counted on the stored rows
                async with connection.transaction():
                    for target, count in repeats.items():
                        await connection.execute(
                            "UPDATE inbox SET duplicates = duplicates + %s WHERE id = %s",
                            (count, target),
                        )
        except psycopg.Error as exc:
            await self.close()
            raise OperationalError("inbox write", None, exc) from exc
        return out

    async def close(self) -> None:
        if self._connection is not None:
            with contextlib.suppress(psycopg.Error):
                await self._connection.close()
            self._connection = None


_COLUMNS = (
    "sha256",
    "body",
    "size",
    "received_at",
    "signature",
    "content_type",
    "attempts",
    "duplicates",
    "status",
    "last_error",
    "fields",
    "waba_id",
    "phone_number_id",
)
_ROW_PLACEHOLDERS = "(" + ", ".join(["%s"] * len(_COLUMNS)) + ")"


@functools.lru_cache(maxsize=256)
def _pg_insert(count: int) -> str:
    """``INSERT`` of ``count`` inbox rows in one statement (cached per batch size)."""
    values = ", ".join([_ROW_PLACEHOLDERS] * count)
    return (
        f"INSERT INTO inbox ({', '.join(_COLUMNS)}) VALUES {values} "  # noqa: S608 - constants
        "ON CONFLICT (sha256) DO NOTHING RETURNING id, sha256"
    )


def _insert_rows(session: Session, rows: list[dict[str, object]]) -> dict[str, int]:
    """Insert new inbox rows; ``{sha256: id}`` of those that were not there yet."""
    stmt = (
        insert_for(session, InboxDelivery.__table__)
        .on_conflict_do_nothing(index_elements=["sha256"])
        .returning(InboxDelivery.id, InboxDelivery.sha256)
    )
    return {sha: id_ for id_, sha in session.execute(stmt, rows)}


def _row(digest: str, delivery: Received, now: datetime) -> dict[str, object]:
    """A new inbox row: the raw bytes, ``pending`` until the ingest worker has parsed them."""
    return {
        "sha256": digest,
        "body": delivery.body,
        "size": len(delivery.body),
        "received_at": now,
        "signature": _header(delivery.signature),
        "content_type": _header(delivery.content_type),
        "attempts": 0,
        "duplicates": 0,
        "status": InboxStatus.PENDING.value,
        "last_error": None,
        "fields": None,
        "waba_id": None,
        "phone_number_id": None,
    }


def _header(value: str | None) -> str | None:
    return value if value is not None and len(value) <= HEADER_LIMIT else None


class IntakeBatcher:
    """Group commits for webhook intake: many deliveries, one transaction, one answer each.

    Each verified delivery waits here until the transaction that stores it has committed, so
    ``200`` still means "durably in the inbox"; deliveries arriving together share one
    ``INSERT`` and one commit. Their processing is enqueued after that commit (``enqueue``, a
    list of stored ids at a time, at most every ``enqueue_every`` seconds), so the broker is not
    the bottleneck; a row whose enqueue is lost (crash, broker down) is dispatched by beat's
    redispatch job. If the database is unreachable, every delivery of the batch gets the error
    (Meta a 503).
    """

    def __init__(
        self,
        runtime: Callable[[], Runtime],
        enqueue: Callable[[list[int]], None],
        max_batch: int = 128,
        max_wait: float = 0.0005,
        enqueue_every: float = 0.02,
        writers: int = 1,
    ) -> None:
        self._runtime = runtime
        self._enqueue = enqueue
        self._writers = writers
        self._max_batch = max_batch
        self._max_wait = max_wait
        self._enqueue_every = enqueue_every
        self._queue: asyncio.Queue[tuple[Received, asyncio.Future[Intake]]] | None = None
        self._pending: list[int] = []
        self._writer: AsyncInboxWriter | None = None
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self._queue = asyncio.Queue()
        rt = self._runtime()
        if rt.db.dialect == "postgresql" and not rt.settings.tasks_eager:
            self._writer = AsyncInboxWriter(rt.db.url)
        # Several writers, so one batch's commit overlaps the next batch's insert.
        self._tasks = [
            *(
                asyncio.create_task(self._store_loop(), name=f"coexist-intake-{n}")
                for n in range(self._writers)
            ),
            asyncio.create_task(self._enqueue_loop(), name="coexist-intake-enqueue"),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        while self._queue is not None and not self._queue.empty():
            _, future = self._queue.get_nowait()
            if not future.done():
                future.set_exception(OperationalError("shutdown", None, RuntimeError("stopping")))
        await self._flush()
        if self._writer is not None:
            await self._writer.close()

    async def submit(self, body: bytes | Received) -> Intake:
        if self._queue is None:
            raise RuntimeError("the intake batcher is not running")
        future: asyncio.Future[Intake] = asyncio.get_running_loop().create_future()
        await self._queue.put((body if isinstance(body, Received) else Received(body), future))
        return await future

    async def _store_loop(self) -> None:
        assert self._queue is not None
        queue = self._queue
        while True:
            # Whatever queued up while the previous batch was being committed forms the next
            # one (group commit); a lone delivery waits at most ``max_wait`` for company.
            batch = [await queue.get()]
            if queue.empty() and self._max_wait > 0:
                await asyncio.sleep(self._max_wait)
            while len(batch) < self._max_batch and not queue.empty():
                batch.append(queue.get_nowait())
            bodies = [body for body, _ in batch]
            try:
                if self._writer is not None:
                    intakes = await self._writer.write(bodies)
                else:
                    intakes = await run_in_threadpool(_store_batch, self._runtime(), bodies)
            except Exception as exc:  # every waiting request gets the failure
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            self._pending.extend(i.delivery_id for i in intakes if i.status == "pending")
            if self._runtime().settings.tasks_eager:
                await self._flush()  # in-process: processed before the answer goes out
            for (_, future), intake in zip(batch, intakes, strict=True):
                if not future.done():
                    future.set_result(intake)

    async def _enqueue_loop(self) -> None:
        while True:
            await asyncio.sleep(self._enqueue_every)
            await self._flush()

    async def _flush(self) -> None:
        if not self._pending:
            return
        ids, self._pending = sorted(set(self._pending)), []
        await run_in_threadpool(self._enqueue, ids)


def _store_batch(r: Runtime, bodies: list[Received]) -> list[Intake]:
    with r.db.sessionmaker() as session:
        return receive_many(session, bodies)
