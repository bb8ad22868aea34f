"""The feed on PostgreSQL: a cursor never passes over an event, whatever order the writing
transactions commit in."""

from __future__ import annotations

import random
import threading
import time

import pytest
from sqlalchemy import func, select

from models import Database
from onboarding.feed.events import EVENTS, EventType, emit_for
from onboarding.feed.log import Cursor, read

pytestmark = pytest.mark.integration


def write(db: Database, label: str) -> None:
    with db.session() as session:
        emit_for(session, EventType.SYNC_PROGRESS, None, {"label": label})


def follow(db: Database, cursor: Cursor) -> tuple[list[str], Cursor]:
    """Every event readable after ``cursor``, page by page, and where the reading ended."""
    labels: list[str] = []
    with db.sessionmaker() as session:
        while True:
            page = read(session, cursor, 2)
            if not page.events:
                return labels, cursor
            labels += [e["data"]["label"] for e in page.events]
            cursor = page.next_cursor


def follow_until(db: Database, cursor: Cursor, count: int) -> tuple[list[str], Cursor]:
    """:func:`follow` until ``count`` events came: a write transaction running anywhere in
    the cluster (another database's too) holds back what is readable for as long as it runs."""
    seen: list[str] = []
    deadline = time.monotonic() + 30
    while len(seen) < count and time.monotonic() < deadline:
        labels, cursor = follow(db, cursor)
        seen += labels
        time.sleep(0.01)
    return seen, cursor


def test_an_event_of_a_transaction_still_open_is_not_passed_over(db: Database) -> None:
    """A transaction writes first (the smaller id) and stays open while two later ones commit:
    a reader gets nothing past the open one until it commits, then all three, the open one's
    first. Reading by id alone would have handed out a cursor past the late event."""
    write(db, "before")
    seen, cursor = follow_until(db, Cursor(), 1)
    assert seen == ["before"]
    late = db.sessionmaker()
    emit_for(late, EventType.SYNC_PROGRESS, None, {"label": "late"})
    write(db, "second")
    write(db, "third")
    with db.sessionmaker() as session:  # by id alone, a reader would take the later two now
        assert session.scalar(select(func.count()).select_from(EVENTS)) == 3
    seen, cursor = follow(db, cursor)
    assert seen == []
    late.commit()
    late.close()
    seen, cursor = follow_until(db, cursor, 3)
    assert seen == ["late", "second", "third"]
    assert follow(db, cursor) == ([], cursor)


def test_a_reader_following_writers_that_commit_in_any_order_gets_each_event_once(
    db: Database,
) -> None:
    """Writers hold their transactions open for random spells while a reader follows the
    cursor: the reader ends with every committed event exactly once, and in feed order."""
    stop = threading.Event()
    rng = random.Random(7)
    plans = [[rng.random() * 0.05 for _ in range(15)] for _ in range(4)]

    def writer(n: int, spells: list[float]) -> None:
        for i, spell in enumerate(spells):
            with db.session() as session:
                emit_for(session, EventType.SYNC_PROGRESS, None, {"label": f"{n}.{i}"})
                if i % 5 == 4:  # now and then a transaction that rolls back
                    session.rollback()
                    continue
                time.sleep(spell)

    got: list[str] = []

    def reader() -> None:
        cursor = Cursor()
        while not stop.is_set():
            labels, cursor = follow(db, cursor)
            got.extend(labels)
            time.sleep(0.005)
        labels, _ = follow_until(db, cursor, len(committed) - len(got))
        got.extend(labels)

    committed = {f"{n}.{i}" for n in range(4) for i in range(15) if i % 5 != 4}
    threads = [threading.Thread(target=writer, args=(n, p)) for n, p in enumerate(plans)]
    follower = threading.Thread(target=reader)
    follower.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    stop.set()
    follower.join(60)
    assert len(got) == len(set(got))
    assert set(got) == committed
    assert follow(db, Cursor())[0] == got  # the order followed is the feed's order
