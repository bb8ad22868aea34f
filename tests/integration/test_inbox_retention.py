"""Raw-body retention on PostgreSQL: which inbox rows lose their body, when, and what replay says.

The tests' rows are received in 2020 and the clock is frozen a few weeks later, so rows other
tests of the session store (received now) are never old enough to be touched.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from freezegun import freeze_time
from sqlalchemy import delete, update

from config import Settings
from models import Database, FeedCursor, InboxDelivery, InboxStatus, utcnow
from onboarding import operations
from onboarding.ingest.inbox import receive
from onboarding.ingest.retention import drop_bodies
from onboarding.relay.run import CURSOR
from tests.conftest import make_settings

pytestmark = pytest.mark.integration

RECEIVED = datetime(2020, 3, 1, 12, tzinfo=UTC)
LATER = RECEIVED + timedelta(days=31)
"""The frozen clock: 31 days after the rows were received."""


def retention(**overrides: object) -> Settings:
    """Bodies kept 30 days, no relay, unless overridden."""
    values: dict[str, object] = {"inbox_body_retention_days": 30}
    values.update(overrides)
    return make_settings(**values)


@pytest.fixture
def made(db: Database) -> Iterator[list[int]]:
    """The ids of the rows a test stores; deleted afterwards, with the relay's cursor restored."""
    ids: list[int] = []
    with db.sessionmaker() as session:
        saved = session.get(FeedCursor, CURSOR)
        cursor = (saved.tx, saved.event_id) if saved is not None else None
    yield ids
    with db.sessionmaker() as session:
        session.execute(delete(InboxDelivery).where(InboxDelivery.id.in_(ids)))
        if cursor is None:
            session.execute(delete(FeedCursor).where(FeedCursor.name == CURSOR))
        else:
            session.execute(
                update(FeedCursor)
                .where(FeedCursor.name == CURSOR)
                .values(tx=cursor[0], event_id=cursor[1])
            )
        session.commit()


def store(
    db: Database,
    made: list[int],
    status: InboxStatus = InboxStatus.PROCESSED,
    *,
    received_at: datetime = RECEIVED,
) -> int:
    """One delivery received at ``received_at``, then put in ``status``; its id."""
    body = json.dumps({"object": "whatsapp_business_account", "n": uuid.uuid4().hex}).encode()
    with db.sessionmaker() as session:
        delivery_id = receive(session, body, now=received_at).delivery_id
        session.execute(
            update(InboxDelivery)
            .where(InboxDelivery.id == delivery_id)
            .values(
                status=status.value,
                fields="smb_message_echoes",
                processed_at=received_at if status is InboxStatus.PROCESSED else None,
                summary={"smb_message_echoes": {"stored": 1}},
            )
        )
        session.commit()
    made.append(delivery_id)
    return delivery_id


def row(db: Database, delivery_id: int) -> InboxDelivery:
    with db.sessionmaker(expire_on_commit=False) as session:
        return session.get_one(InboxDelivery, delivery_id)


def tick(db: Database, settings: Settings) -> int:
    with db.sessionmaker() as session, freeze_time(LATER):
        return drop_bodies(session, settings=settings)


def set_relay_cursor(db: Database, delivery_id: int | None) -> None:
    """Put the relay's cursor on ``delivery_id``'s row (None: the relay has no cursor yet)."""
    with db.sessionmaker() as session:
        session.execute(delete(FeedCursor).where(FeedCursor.name == CURSOR))
        if delivery_id is not None:
            target = session.get_one(InboxDelivery, delivery_id)
            session.add(
                FeedCursor(
                    name=CURSOR, tx=target.tx, event_id=target.id, attempts=0, updated_at=utcnow()
                )
            )
        session.commit()


def test_an_old_processed_row_loses_its_body_and_keeps_its_metadata(
    db: Database, made: list[int]
) -> None:
    """A processed row received more than the retention's days ago has its body emptied and
    ``body_dropped_at`` set; its hash, size, fields, status and summary stay."""
    delivery_id = store(db, made)
    before = row(db, delivery_id)
    assert tick(db, retention()) >= 1
    after = row(db, delivery_id)
    assert after.body == b""
    assert after.body_dropped_at == LATER
    assert (after.sha256, after.size, after.fields, after.status, after.summary) == (
        before.sha256,
        before.size,
        "smb_message_echoes",
        "processed",
        {"smb_message_echoes": {"stored": 1}},
    )


@pytest.mark.parametrize(
    "status",
    [
        InboxStatus.PENDING,
        InboxStatus.WAITING,
        InboxStatus.QUARANTINED,
        InboxStatus.ORPHANED,
    ],
)
def test_a_row_not_processed_keeps_its_body_however_old(
    db: Database, made: list[int], status: InboxStatus
) -> None:
    """Pending, waiting, quarantined and orphaned rows keep their bytes: replay may need them."""
    delivery_id = store(db, made, status)
    tick(db, retention())
    kept = row(db, delivery_id)
    assert kept.body != b""
    assert kept.body_dropped_at is None


def test_a_processed_row_younger_than_the_retention_keeps_its_body(
    db: Database, made: list[int]
) -> None:
    """A row received 29 days before the tick, with 30 days of retention, is not touched."""
    delivery_id = store(db, made, received_at=LATER - timedelta(days=29))
    tick(db, retention())
    assert row(db, delivery_id).body_dropped_at is None


def test_without_a_retention_no_body_is_dropped(db: Database, made: list[int]) -> None:
    """``COEX_INBOX_BODY_RETENTION_DAYS`` unset (the default) keeps every body."""
    delivery_id = store(db, made)
    assert tick(db, make_settings()) == 0
    assert row(db, delivery_id).body_dropped_at is None


def test_one_tick_drops_at_most_one_batch_oldest_first(db: Database, made: list[int]) -> None:
    """With a batch of 2, three due rows take two ticks, the oldest received going first."""
    ids = [store(db, made, received_at=RECEIVED + timedelta(minutes=n)) for n in (2, 0, 1)]
    settings = retention(inbox_body_retention_batch=2)
    assert tick(db, settings) == 2
    assert [row(db, i).body_dropped_at is not None for i in ids] == [False, True, True]
    assert tick(db, settings) == 1
    assert all(row(db, i).body_dropped_at is not None for i in ids)


def test_rows_the_relay_has_not_forwarded_keep_their_body(db: Database, made: list[int]) -> None:
    """With the relay on, rows after its cursor keep their bytes; those at or before it do not."""
    first, second, third = (store(db, made) for _ in range(3))
    set_relay_cursor(db, second)
    tick(db, retention(relay_url="http://127.0.0.1:9/hook"))
    assert [row(db, i).body_dropped_at is not None for i in (first, second, third)] == [
        True,
        True,
        False,
    ]


def test_a_relay_that_never_ran_keeps_every_body(db: Database, made: list[int]) -> None:
    """With the relay on and no cursor yet, it owes every row: nothing is dropped."""
    delivery_id = store(db, made)
    set_relay_cursor(db, None)
    tick(db, retention(relay_url="http://127.0.0.1:9/hook"))
    assert row(db, delivery_id).body_dropped_at is None


def test_replaying_a_row_whose_body_was_dropped_is_refused_with_the_reason(
    db: Database, made: list[int]
) -> None:
    """Replay by id answers that the body was dropped by retention, and the row stays as is."""
    delivery_id = store(db, made)
    tick(db, retention())
    with db.sessionmaker() as session, pytest.raises(operations.RefusedError) as refused:
        operations.plan_replay(session, delivery_id=delivery_id)
    assert str(refused.value) == (
        f"delivery {delivery_id}'s raw body was dropped by retention on "
        f"{LATER.isoformat()}: it cannot be processed again"
    )
    assert row(db, delivery_id).status == InboxStatus.PROCESSED


def test_replaying_a_status_skips_rows_whose_body_was_dropped(
    db: Database, made: list[int]
) -> None:
    """A replay of every processed row puts back to pending those that kept their body only."""
    dropped = store(db, made)
    tick(db, retention())
    kept = store(db, made)
    with db.sessionmaker() as session:
        ids = operations.plan_replay(session, status="processed")
    assert kept in ids
    assert dropped not in ids
    assert (row(db, kept).status, row(db, dropped).status) == ("pending", "processed")


def test_a_redelivery_of_dropped_bytes_is_still_a_duplicate(db: Database, made: list[int]) -> None:
    """The row keeps the body's sha256: Meta sending the same bytes again stores nothing new."""
    delivery_id = store(db, made)
    with db.sessionmaker() as session:
        body = bytes(session.get_one(InboxDelivery, delivery_id).body)
    tick(db, retention())
    with db.sessionmaker() as session:
        again = receive(session, body)
    assert (again.delivery_id, again.duplicate) == (delivery_id, True)
    assert row(db, delivery_id).body == b""
