"""Chaos: ingest workers killed in the middle of a history chunk, and several ingest workers
working on one onboarding at the same time.

Each test starts its own ``ingest`` workers (real prefork Celery processes, each with its own
log), while any other worker consuming ``ingest`` in this session is paused, so that the test
knows which process did what. Counts are checked against the oracle of
:mod:`tests.integration._flow` (what the sandbox's generator produced, under Meta's and
coexist's rules) and against the database itself: every expected wamid stored exactly once,
nothing else stored, and the chunk ledger holding each chunk once with its full figures.

How a killed worker's delivery comes back: a task is acknowledged late, so the Redis broker
keeps the killed worker's message in its unacked set, but hands it out again only after the
broker's visibility timeout (2 h, and never under 15 min: it must exceed every task countdown).
What recovers the delivery in practice is beat's ``coexist.ingest.redispatch``, which every
minute dispatches inbox rows still ``pending`` ``COEX_INBOX_REDISPATCH_AFTER_SECONDS`` after
they were received and last dispatched. No beat runs here: the test sends that task itself.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import json
import os
import random
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from benchmarks._harness import (
    BrokerClient,
    CoexistApi,
    ManagedProcess,
    StackConfig,
    WebServer,
    poll_until,
    start_worker,
)
from models import Database, InboxDelivery, InboxStatus
from onboarding.sandbox import (
    HistoryProfile,
    ReceivedWebhook,
    Sandbox,
    SandboxServer,
)
from tests.integration._flow import (
    collect_deliveries,
    post_all,
    settled,
    signed_up_at,
)
from tests.integration.chaos._checks import (
    assert_everything_once,
    blocked_by,
    distinct,
    holding_message,
    inbox_rows,
    inbox_status,
    kept_in_order,
    message_count,
    stored_ledger,
    unacked_messages,
)

pytestmark = [pytest.mark.integration, pytest.mark.chaos]


T = TypeVar("T")

#: Messages per transaction while a chunk is written: small, so one chunk is many commits.
PAGE_SIZE = 200
#: The smallest ``COEX_INBOX_REDISPATCH_AFTER_SECONDS`` allowed (the default is 300).
REDISPATCH_AFTER = 10
#: Settings of every ingest worker a test starts (by :class:`~config.Settings` field name).
WORKER_SETTINGS = {
    "ingest_page_size": str(PAGE_SIZE),
    "inbox_redispatch_after_seconds": str(REDISPATCH_AFTER),
}
#: How often a test sends beat's redispatch while it waits for a recovery (beat: every 60 s).
REDISPATCH_EVERY = 1.0
#: One history chunk of 6,000 messages in phase 2 (about 27 pages kept), some of them older
#: than 180 days and some in group chats, plus a few contacts; no media and no echoes, so every
#: stored message comes from that one chunk.
BIG_CHUNK = HistoryProfile(
    seed=31,
    contacts=8,
    threads=40,
    total_messages=6000,
    days=200.0,
    beyond_window_share=0.05,
    phase_weights=(0.0, 0.0, 1.0),
    media_share=0.0,
    other_types_share=0.05,
    group_thread_share=0.05,
    chunk_size=6000,
    duplicate_share=0.0,
    shuffle=False,
    contact_edit_share=0.0,
    contact_remove_share=0.0,
)
#: Pages of the big chunk the worker commits before it is killed inside the next one.
PAGES_BEFORE_KILL = 2
#: One onboarding whose deliveries overlap everywhere: 5,040 messages in 102 chunks over
#: phases 0, 1 and 2, all of them on the same 12 threads; media of every age with late media,
#: a quarter of the deliveries repeated by Meta, all shuffled; 40 contacts with edits and
#: removals; echoes (below), half of them repeating a history message; one thread in ten a
#: group chat, whose messages are dropped (the sandbox also announces late-media webhooks for
#: them, which coexist must not keep, whichever of chunk and late media lands first).
BUSY = HistoryProfile(
    seed=37,
    contacts=40,
    threads=12,
    messages_per_thread=420,
    days=200.0,
    group_thread_share=0.1,
    media_share=0.2,
    chunk_size=50,
    duplicate_share=0.25,
    shuffle=True,
    contact_edit_share=0.15,
    contact_remove_share=0.1,
)
BUSY_ECHOES = 10
#: Two ingest worker processes, each a prefork pool of this many children.
CONCURRENCY = 3
#: Client threads posting deliveries at the same time, as Meta's many senders do.
POSTERS = 8
SETTLE_TIMEOUT = 60.0


# -- our own ingest workers ----------------------------------------------------------------


@dataclasses.dataclass
class IngestWorkers:
    """Ingest workers started by one test, stopped (with their process groups) at its end."""

    config: StackConfig
    graph_url: str
    broker: BrokerClient
    db: Database
    log_root: Path
    stack: contextlib.ExitStack
    started: list[ManagedProcess] = dataclasses.field(default_factory=list)

    def start(self, name: str, *, concurrency: int = 2) -> ManagedProcess:
        """A prefork worker on ``-Q ingest`` with :data:`WORKER_SETTINGS`, once it answers."""
        return self._register(self._launch(name, concurrency))

    def start_many(self, names: Sequence[str], *, concurrency: int) -> list[ManagedProcess]:
        """Several workers, started side by side (each takes a few seconds to answer a ping)."""
        with concurrent.futures.ThreadPoolExecutor(len(names)) as pool:
            futures = [pool.submit(self._launch, name, concurrency) for name in names]
        concurrent.futures.wait(futures)
        for future in futures:  # every worker that started is stopped, even if another failed
            if future.exception() is None:
                self._register(future.result())
        return [future.result() for future in futures]

    def _launch(self, name: str, concurrency: int) -> ManagedProcess:
        config = dataclasses.replace(
            self.config,
            overrides={
                **self.config.overrides,
                **WORKER_SETTINGS,
                "media_store": str(self.log_root / "media"),
            },
        )
        return start_worker(
            config,
            self.graph_url,
            self.log_root / name,
            broker=self.broker,
            queues=("ingest",),
            concurrency=concurrency,
        )

    def _register(self, process: ManagedProcess) -> ManagedProcess:
        self.stack.enter_context(process)
        self.started.append(process)
        return process

    @contextlib.contextmanager
    def diagnosed(self) -> Iterator[None]:
        """On a failure, add the inbox and every worker's log tail to the error."""
        try:
            yield
        except Exception as exc:
            rows = inbox_rows(self.db)
            errors = sorted({r.last_error for r in rows if r.last_error})
            exc.add_note(f"--- inbox: {dict(Counter(r.status for r in rows))}; errors: {errors}")
            for process in self.started:
                state = "running" if process.running else f"exited ({process.returncode})"
                exc.add_note(
                    f"--- {process.name}, {state}, last log lines ({process.log_path}):\n"
                    f"{process.log_tail(40)}"
                )
            raise


def ingest_consumers(broker: BrokerClient) -> list[str]:
    """The workers consuming the ``ingest`` queue now."""
    replies = broker.app.control.inspect(timeout=1.0).active_queues() or {}
    return sorted(
        node for node, queues in replies.items() if any(q["name"] == "ingest" for q in queues)
    )


@pytest.fixture
def ingest_workers(
    stack_config: StackConfig,
    sandbox_server: SandboxServer,
    broker: BrokerClient,
    db: Database,
    tmp_path: Path,
) -> Iterator[IngestWorkers]:
    """This test's ingest workers; any other worker on ``ingest`` is paused meanwhile."""
    others = ingest_consumers(broker)
    if others:
        broker.app.control.cancel_consumer("ingest", destination=others, reply=True)
    try:
        with contextlib.ExitStack() as stack:
            yield IngestWorkers(stack_config, sandbox_server.url, broker, db, tmp_path, stack)
    finally:
        if others:
            broker.app.control.add_consumer("ingest", destination=others, reply=True)


def kill_group(process: ManagedProcess) -> list[int]:
    """SIGKILL the worker's whole process group (prefork parent and children) at once; the
    pids that were in it, once none of them runs any more."""
    pgid = process.pid
    assert pgid is not None
    assert process.running
    members = group_members(pgid)
    os.killpg(pgid, signal.SIGKILL)
    poll_until(
        lambda: group_members(pgid),
        lambda alive: not alive,
        what=f"every process of group {pgid} gone",
        timeout=10.0,
        interval=0.05,
    )
    assert not process.running
    return members


def group_members(pgid: int) -> list[int]:
    """Live (not zombie) processes in process group ``pgid``, from ``/proc``."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        state, _ppid, group = stat.rsplit(")", 1)[1].split()[:3]
        if int(group) == pgid and state not in ("Z", "X"):
            members.append(int(entry.name))
    return sorted(members)


def log_problems(process: ManagedProcess) -> list[str]:
    """Lines of the worker's log reporting an error or carrying a traceback."""
    lines = process.log_path.read_text(errors="replace").splitlines()
    return [
        line
        for line in lines
        if "Traceback" in line
        or '"level": "error"' in line
        or '"level": "critical"' in line
        or "WorkerLostError" in line
    ]


def processed_by(process: ManagedProcess) -> int:
    """How many deliveries this worker finished processing, from its log."""
    return process.log_path.read_text(errors="replace").count('"webhook_processed"')


# -- posting as Meta does ------------------------------------------------------------------


@pytest.fixture
def meta(web: WebServer) -> Iterator[httpx.Client]:
    """An HTTP client posting to the web app as Meta does."""
    with httpx.Client(base_url=web.url, timeout=10.0, trust_env=False) as client:
        yield client


def post_concurrently(web: WebServer, deliveries: Sequence[ReceivedWebhook], clients: int) -> None:
    """POST the deliveries from ``clients`` threads released together, each its own share."""
    start = threading.Barrier(clients)

    def post_share(share: Sequence[ReceivedWebhook]) -> None:
        with httpx.Client(base_url=web.url, timeout=30.0, trust_env=False) as client:
            start.wait(timeout=10.0)
            post_all(client, share)

    with concurrent.futures.ThreadPoolExecutor(clients) as pool:
        shares = [deliveries[n::clients] for n in range(clients)]
        for future in [pool.submit(post_share, share) for share in shares]:
            future.result()


# -- waiting and reporting -----------------------------------------------------------------


def steady(fetch: Callable[[], T], *, what: str, timeout: float = 10.0, interval: float = 0.3) -> T:
    """``fetch()`` once two readings ``interval`` s apart agree."""
    readings: list[T] = []

    def read() -> list[T]:
        readings.append(fetch())
        return readings

    poll_until(
        read,
        lambda seen: len(seen) >= 2 and seen[-1] == seen[-2],
        what=f"{what} to stand still",
        timeout=timeout,
        interval=interval,
    )
    return readings[-1]


def report(**figures: Any) -> None:
    """The test's measured figures, one JSON line in its captured output (``pytest -rP``)."""
    rounded = {k: round(v, 2) if isinstance(v, float) else v for k, v in figures.items()}
    print("figures:", json.dumps(rounded, sort_keys=True))


# -- the tests -----------------------------------------------------------------------------


def test_worker_killed_mid_chunk_is_redispatched_and_stores_the_chunk_once(
    api: CoexistApi,
    sandbox: Sandbox,
    db: Database,
    meta: httpx.Client,
    broker: BrokerClient,
    ingest_workers: IngestWorkers,
) -> None:
    """A worker SIGKILLed mid-chunk leaves its delivery pending; beat's redispatch gives it to a
    fresh worker, and the chunk ends stored once, its ledger row written once, in full.

    The whole chunk takes a fraction of a second. So that the kill lands inside it every time,
    the test holds a lock the worker's third page needs (a message row with one of that page's
    wamids, inserted and not committed): the worker commits two pages, waits inside the third
    and dies there; the lock is released only after the kill.
    """
    onboarding_id, deliveries = collect_deliveries(sandbox, api, BIG_CHUNK, echoes=0)
    [chunk_delivery] = [d for d in deliveries if d.field == "history"]
    kept = kept_in_order(chunk_delivery, signed_up_at(api.onboarding(onboarding_id)))
    first = ingest_workers.start("first")
    with ingest_workers.diagnosed():
        blocking = kept[PAGES_BEFORE_KILL * PAGE_SIZE + PAGE_SIZE // 2]
        with holding_message(db, onboarding_id, blocking) as holder:
            posted = time.monotonic()
            post_all(meta, deliveries)
            poll_until(
                lambda: (message_count(db, onboarding_id), blocked_by(db, holder)),
                lambda seen: seen == (PAGES_BEFORE_KILL * PAGE_SIZE, 1),
                what=f"{PAGES_BEFORE_KILL} pages committed and the worker waiting in the next",
                timeout=30.0,
                interval=0.05,
            )
            killed = kill_group(first)
            killed_at = time.monotonic()
        # The dead worker's open transaction (half a page) is rolled back, never committed.
        committed = steady(
            lambda: message_count(db, onboarding_id), what="the killed worker's messages"
        )

        assert len(killed) == 3  # the prefork parent and its two children
        assert len(kept) > 10 * PAGE_SIZE
        assert committed == PAGES_BEFORE_KILL * PAGE_SIZE
        assert stored_ledger(db, onboarding_id) == {}  # the ledger row comes last
        [row] = [r for r in inbox_rows(db) if r.body == chunk_delivery.body]
        assert (row.status, row.attempts) == (InboxStatus.PENDING.value, 1)
        assert unacked_messages(broker) >= 1  # the broker still holds the worker's message

        second = ingest_workers.start("second")
        sends = 0

        def redispatched() -> str:
            nonlocal sends
            broker.send("coexist.ingest.redispatch")  # what beat does every minute
            sends += 1
            return inbox_status(db, row.id)

        poll_until(
            redispatched,
            lambda status: status == InboxStatus.PROCESSED.value,
            what="the killed worker's delivery processed again",
            timeout=REDISPATCH_AFTER + 30.0,
            interval=REDISPATCH_EVERY,
        )
        recovered_at = time.monotonic()
        detail = settled(api, db, onboarding_id, timeout=SETTLE_TIMEOUT)

        assert_everything_once(db, sandbox, detail, BIG_CHUNK, echoes=0)
        assert detail["counts"]["history_chunks"] == 1
        rows = inbox_rows(db)
        assert {(r.status, r.last_error) for r in rows} == {(InboxStatus.PROCESSED.value, None)}
        [row] = [r for r in rows if r.body == chunk_delivery.body]
        assert row.attempts >= 2  # the killed attempt, then the redispatched one
        # Redis never handed the killed worker's message out again (it would only after the
        # visibility timeout): the redispatch is what recovered the delivery.
        assert unacked_messages(broker) >= 1
        assert log_problems(second) == []

    report(
        deliveries=len(deliveries),
        chunk_messages=BIG_CHUNK.message_count,
        chunk_messages_kept=len(kept),
        page_size=PAGE_SIZE,
        committed_before_kill=committed,
        killed_after_post_s=killed_at - posted,
        redispatch_after_s=REDISPATCH_AFTER,
        redispatch_sends=sends,
        processing_attempts=row.attempts,
        recovered_after_kill_s=recovered_at - killed_at,
    )


@dataclasses.dataclass(frozen=True)
class TwoWorkerRun:
    detail: dict[str, Any]
    rows: list[InboxDelivery]
    shares: list[int]
    post_s: float
    settle_s: float


def ingest_with_two_workers(
    api: CoexistApi,
    sandbox: Sandbox,
    db: Database,
    web: WebServer,
    ingest_workers: IngestWorkers,
    onboarding_id: int,
    deliveries: Sequence[ReceivedWebhook],
    posted: Sequence[ReceivedWebhook],
    check: Callable[[list[InboxDelivery]], None] = lambda rows: None,
) -> TwoWorkerRun:
    """Post ``posted`` from several clients at once while two workers process them; every
    message stored once, one processed row per distinct delivery, both workers busy and
    neither logging an error. ``check`` adds assertions on the rows, under the diagnostics."""
    workers = ingest_workers.start_many(("one", "two"), concurrency=CONCURRENCY)
    with ingest_workers.diagnosed():
        started = time.monotonic()
        post_concurrently(web, posted, POSTERS)
        posted_at = time.monotonic()
        detail = settled(api, db, onboarding_id, timeout=SETTLE_TIMEOUT)
        done = time.monotonic()

        assert_everything_once(db, sandbox, detail, BUSY, echoes=BUSY_ECHOES)
        rows = inbox_rows(db)
        assert len(rows) == len(distinct(deliveries))
        assert {(r.status, r.last_error) for r in rows} == {(InboxStatus.PROCESSED.value, None)}
        check(rows)
        shares = [processed_by(worker) for worker in workers]
        assert all(shares), f"deliveries processed per worker: {shares}"
        for worker in workers:
            assert log_problems(worker) == [], worker.name
    return TwoWorkerRun(detail, rows, shares, posted_at - started, done - started)


def test_two_workers_on_one_onboarding_at_once_store_everything_once(
    api: CoexistApi,
    sandbox: Sandbox,
    db: Database,
    web: WebServer,
    ingest_workers: IngestWorkers,
) -> None:
    """Two prefork workers processing all of one onboarding's deliveries at once (chunks on the
    same threads, media, contacts, echoes) store every message once, without an error."""
    onboarding_id, deliveries = collect_deliveries(sandbox, api, BUSY, echoes=BUSY_ECHOES)
    run = ingest_with_two_workers(
        api, sandbox, db, web, ingest_workers, onboarding_id, deliveries, deliveries
    )
    report(
        deliveries=dict(Counter(d.field for d in deliveries)),
        distinct_deliveries=len(run.rows),
        messages=run.detail["counts"]["messages"],
        history_chunks=run.detail["counts"]["history_chunks"],
        processed_per_worker=run.shares,
        attempts=dict(Counter(r.attempts for r in run.rows)),
        post_s=run.post_s,
        settle_s=run.settle_s,
    )


def test_every_delivery_three_times_shuffled_from_many_clients_with_two_workers(
    api: CoexistApi,
    sandbox: Sandbox,
    db: Database,
    web: WebServer,
    ingest_workers: IngestWorkers,
) -> None:
    """Each delivery posted three times, shuffled, from several clients at once while two
    workers process them, is ingested exactly once."""
    onboarding_id, deliveries = collect_deliveries(sandbox, api, BUSY, echoes=BUSY_ECHOES)
    resent = deliveries * 3
    random.Random(41).shuffle(resent)

    def duplicates_add_up(rows: list[InboxDelivery]) -> None:
        assert sum(r.duplicates for r in rows) == len(resent) - len(rows)

    run = ingest_with_two_workers(
        api, sandbox, db, web, ingest_workers, onboarding_id, deliveries, resent, duplicates_add_up
    )
    report(
        deliveries_posted=len(resent),
        distinct_deliveries=len(run.rows),
        messages=run.detail["counts"]["messages"],
        processed_per_worker=run.shares,
        attempts=dict(Counter(r.attempts for r in run.rows)),
        post_s=run.post_s,
        settle_s=run.settle_s,
    )
