"""What the worker chaos tests check in the database: wamids once, the chunk ledger, the inbox."""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
import redis
from sqlalchemy import func, insert, select, text

from benchmarks._harness import (
    BrokerClient,
    describe,
)
from models import Database, HistoryChunk, InboxDelivery, Message, utcnow
from onboarding.sandbox import (
    HistoryGenerator,
    HistoryProfile,
    ReceivedWebhook,
    Sandbox,
)
from tests.integration._flow import (
    DAY,
    HISTORY_WINDOW_DAYS,
    generator_for,
    is_one_to_one,
    oracle_for,
    signed_up_at,
)

pytestmark = [pytest.mark.integration, pytest.mark.chaos]


def expected_wamids(generator: HistoryGenerator, signup: float, *, echoes: int) -> set[str]:
    """Every wamid the onboarding must end with: 1:1 history in the window, and the echoes."""
    window_start = signup - HISTORY_WINDOW_DAYS * DAY
    wamids = {
        message["id"]
        for thread, message in generator.messages()
        if is_one_to_one(thread) and int(message["timestamp"]) >= window_start
    }
    reused = generator.history_echoes(round(echoes * generator.profile.echo_reuse_share))
    fresh = [generator.echo(sequence, 0) for sequence in range(echoes - len(reused))]
    return wamids | {echo["id"] for echo in (*reused, *fresh)}


def kept_in_order(chunk: ReceivedWebhook, signup: float) -> list[str]:
    """The wamids of a history delivery coexist keeps, in the order it writes them."""
    window_start = signup - HISTORY_WINDOW_DAYS * DAY
    return [
        message["id"]
        for item in chunk.value["history"]
        for thread in item["threads"]
        if is_one_to_one(thread.get("id", ""))
        for message in thread["messages"]
        if int(message["timestamp"]) >= window_start
    ]


@contextlib.contextmanager
def holding_message(db: Database, onboarding_id: int, wamid: str) -> Iterator[int]:
    """A message row with ``wamid``, inserted and not committed until the block ends (then
    rolled back): whoever inserts the same wamid meanwhile waits. Yields the backend's pid."""
    with db.engine.connect() as connection:
        transaction = connection.begin()
        try:
            connection.execute(
                insert(Message).values(
                    onboarding_id=onboarding_id,
                    wamid=wamid,
                    thread="",
                    direction="inbound",
                    source="history",
                    sent_at=utcnow(),
                    type="text",
                )
            )
            yield int(connection.scalar(text("SELECT pg_backend_pid()")))
        finally:
            transaction.rollback()


def blocked_by(db: Database, pid: int) -> int:
    """How many PostgreSQL backends wait for a lock that backend ``pid`` holds."""
    with db.engine.connect() as connection:
        count = connection.scalar(
            text("SELECT count(*) FROM pg_stat_activity WHERE :pid = ANY(pg_blocking_pids(pid))"),
            {"pid": pid},
        )
    return int(count or 0)


def expected_ledger(
    generator: HistoryGenerator, signup: float
) -> dict[tuple[int, int], tuple[int, int, int, int]]:
    """(phase, chunk_order) -> (progress, messages, dropped_out_of_window, dropped_group)."""
    window_start = signup - HISTORY_WINDOW_DAYS * DAY
    ledger = {}
    for chunk in generator.chunks():
        stored = out_of_window = group = 0
        for thread in chunk.threads:
            if not is_one_to_one(thread.get("id", "")):
                group += len(thread["messages"])
                continue
            for message in thread["messages"]:
                if int(message["timestamp"]) < window_start:
                    out_of_window += 1
                else:
                    stored += 1
        ledger[(chunk.phase, chunk.chunk_order)] = (chunk.progress, stored, out_of_window, group)
    return ledger


def stored_ledger(db: Database, onboarding_id: int) -> dict[tuple[int, int], tuple[int, ...]]:
    with db.sessionmaker() as session:
        rows = session.execute(
            select(
                HistoryChunk.phase,
                HistoryChunk.chunk_order,
                HistoryChunk.progress,
                HistoryChunk.messages,
                HistoryChunk.dropped_out_of_window,
                HistoryChunk.dropped_group,
            ).where(HistoryChunk.onboarding_id == onboarding_id)
        ).all()
    return {(phase, order): tuple(rest) for phase, order, *rest in rows}


def stored_wamids(db: Database, onboarding_id: int) -> Counter[str]:
    """Stored rows per wamid (the unique index allows one; this checks it holds)."""
    with db.sessionmaker() as session:
        return Counter(
            session.scalars(select(Message.wamid).where(Message.onboarding_id == onboarding_id))
        )


def message_count(db: Database, onboarding_id: int) -> int:
    with db.sessionmaker() as session:
        count = session.scalar(
            select(func.count()).select_from(Message).where(Message.onboarding_id == onboarding_id)
        )
    return int(count or 0)


def inbox_status(db: Database, delivery_id: int) -> str:
    with db.sessionmaker() as session:
        return session.get_one(InboxDelivery, delivery_id).status


def distinct(deliveries: Sequence[ReceivedWebhook]) -> set[bytes]:
    """The distinct bodies: Meta's repeats of the same bytes are one inbox row."""
    return {delivery.body for delivery in deliveries}


def inbox_rows(db: Database) -> list[InboxDelivery]:
    with db.sessionmaker() as session:
        return list(session.scalars(select(InboxDelivery).order_by(InboxDelivery.id)))


def unacked_messages(broker: BrokerClient) -> int:
    """Messages Redis delivered to a worker that never acknowledged them (kombu's ack emulation)."""
    client = redis.Redis.from_url(broker.url)
    try:
        return int(client.hlen("unacked"))
    finally:
        client.close()


def assert_everything_once(
    db: Database,
    sandbox: Sandbox,
    detail: dict[str, Any],
    profile: HistoryProfile,
    *,
    echoes: int,
) -> None:
    """The oracle's counts, every expected wamid stored once and nothing else, and each chunk
    once in the ledger with its whole figures; history complete without gaps."""
    assert detail["counts"] == oracle_for(sandbox, detail, profile, echoes=echoes)
    generator = generator_for(sandbox, detail, profile)
    signup = signed_up_at(detail)
    stored = stored_wamids(db, detail["id"])
    assert [wamid for wamid, rows in stored.items() if rows > 1] == []
    expected = expected_wamids(generator, signup, echoes=echoes)
    assert set(stored) == expected, (
        f"{len(expected - set(stored))} missing, {len(set(stored) - expected)} unexpected"
    )
    assert stored_ledger(db, detail["id"]) == expected_ledger(generator, signup)
    history = detail["sync"]["history"]
    assert (history["state"], history["progress"]) == ("completed", 100), describe(detail)
    assert all(not phase["missing"] for phase in history["phases"].values()), history["phases"]
    assert detail["state"] == "synced", describe(detail)
