"""The feed's events and cursors on the embedded database (SQLite)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from config import Settings
from models import Database, Onboarding
from models.crypto import TokenCipher
from onboarding.feed.events import EventType, emit, emit_for, iso
from onboarding.feed.log import Cursor, CursorError, backlog, latest, read
from onboarding.sandbox import Sandbox
from tests.onboarding.helpers import signup


@pytest.fixture
def onboardings(
    db: Database, sandbox: Sandbox, settings: Settings, cipher: TokenCipher
) -> list[int]:
    """Two signed-up onboardings, recorded with the feed off: the feed starts empty."""
    quiet = Database(db.url, feed=False)
    with quiet.session() as session:
        ids = [signup(session, sandbox, settings, cipher).id for _ in range(2)]
    quiet.dispose()
    return ids


def emit_many(db: Database, onboarding_id: int | None, n: int, type: EventType) -> None:
    with db.session() as session:
        for i in range(n):
            emit_for(session, type, onboarding_id, {"n": i})


def test_events_are_read_in_order_page_by_page_without_a_gap(
    db: Database, onboardings: list[int]
) -> None:
    """Following ``next_cursor`` returns every event once, in the order written."""
    emit_many(db, onboardings[0], 25, EventType.SYNC_PROGRESS)
    seen: list[int] = []
    cursor = Cursor()
    with db.sessionmaker() as session:
        while True:
            page = read(session, cursor, 10)
            if not page.events:
                break
            seen += [e["data"]["n"] for e in page.events]
            cursor = page.next_cursor
        assert seen == list(range(25))
        assert read(session, cursor, 10).next_cursor == cursor  # nothing new: same cursor
        assert latest(session) == cursor
        assert backlog(session, Cursor()) == 25


def test_an_event_carries_its_onboarding_and_a_json_body(
    db: Database, onboardings: list[int]
) -> None:
    with db.session() as session:
        onboarding = session.get_one(Onboarding, onboardings[0])
        at = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)
        emit(session, EventType.ALERT_RAISED, onboarding, {"kind": "k"}, occurred_at=at)
        expected = (onboarding.id, onboarding.waba_id, onboarding.phone_number_id)
    with db.sessionmaker() as session:
        [event] = read(session, Cursor(), 10).events
    assert (event["onboarding_id"], event["waba_id"], event["phone_number_id"]) == expected
    assert event["type"] == "alert.raised"
    assert event["version"] == 1
    assert event["occurred_at"] == "2026-12-01T09:30:00+00:00"
    assert event["data"] == {"kind": "k"}
    assert Cursor.decode(event["cursor"]) == Cursor(0, event["id"])


def test_filters_by_onboarding_and_type(db: Database, onboardings: list[int]) -> None:
    ids = onboardings
    emit_many(db, ids[0], 3, EventType.SYNC_PROGRESS)
    emit_many(db, ids[1], 2, EventType.SYNC_PROGRESS)
    emit_many(db, ids[1], 1, EventType.ALERT_RAISED)
    with db.sessionmaker() as session:
        assert len(read(session, Cursor(), 100, onboarding_id=ids[1]).events) == 3
        only = read(session, Cursor(), 100, onboarding_id=ids[1], types=[EventType.ALERT_RAISED])
        assert [e["type"] for e in only.events] == ["alert.raised"]
        assert len(read(session, Cursor(), 100, types=[EventType.SYNC_PROGRESS]).events) == 5


def test_a_rolled_back_change_leaves_no_event(db: Database) -> None:
    with db.sessionmaker() as session:
        emit_for(session, EventType.ALERT_RAISED, None, {"kind": "k"})
        session.rollback()
    with db.sessionmaker() as session:
        assert read(session, Cursor(), 10).events == []


def test_a_database_with_the_feed_off_writes_nothing(db: Database) -> None:
    off = Database(db.url, feed=False)
    with off.session() as session:
        emit_for(session, EventType.ALERT_RAISED, None, {"kind": "k"})
    off.dispose()
    with db.sessionmaker() as session:
        assert read(session, Cursor(), 10).events == []


@pytest.mark.parametrize(
    "text", ["", "12", "1-", "-1", "a-1", "1-2-3", "1.2", " 1 - 2", "99999999999999999999-1"]
)
def test_a_cursor_the_feed_did_not_hand_out_is_refused(text: str) -> None:
    with pytest.raises(CursorError):
        Cursor.decode(text)


def test_cursors_round_trip_and_order_by_transaction_first() -> None:
    assert Cursor.decode(Cursor(812, 7).encode()) == Cursor(812, 7)
    assert Cursor(1, 900) < Cursor(2, 1)


def test_times_are_written_in_utc_with_their_offset() -> None:
    assert iso(datetime(2026, 12, 1, 10, 0)) == "2026-12-01T10:00:00+00:00"
    assert iso(None) is None
