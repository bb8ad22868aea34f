"""The receiver's PostgreSQL inbox writer: one statement per batch, dedupe, raw bytes, errors."""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import timedelta

import pytest
from sqlalchemy import select, update
from sqlalchemy.exc import OperationalError

from benchmarks._harness import StackConfig
from models import Database, InboxDelivery, InboxStatus, utcnow
from onboarding.ingest import dispatch as ingest
from onboarding.ingest.dispatch import process_delivery
from onboarding.ingest.inbox import AsyncInboxWriter, Intake

SETTINGS = StackConfig().settings("http://127.0.0.1:9")

pytestmark = pytest.mark.integration


def delivery(n: int) -> bytes:
    return (
        b'{"object":"whatsapp_business_account","entry":[{"id":"102290129340398","time":1,'
        b'"changes":[{"field":"smb_message_echoes","value":{"messaging_product":"whatsapp",'
        b'"metadata":{"display_phone_number":"15550783881","phone_number_id":"106540352242922"},'
        b'"message_echoes":[{"from":"15550783881","to":"16505551234","id":"wamid.E'
        + str(n).encode()
        + b'","timestamp":"1790000000","type":"text","text":{"body":"hi"}}]}}]}]}'
    )


def write(db: Database, bodies: list[bytes]) -> list[Intake]:
    async def run() -> list[Intake]:
        writer = AsyncInboxWriter(db.url)
        try:
            return await writer.write(bodies)
        finally:
            await writer.close()

    return asyncio.run(run())


def rows(db: Database) -> list[InboxDelivery]:
    with db.sessionmaker() as session:
        return list(session.scalars(select(InboxDelivery).order_by(InboxDelivery.id)))


def test_a_batch_is_stored_once_per_distinct_body(db: Database) -> None:
    """New bodies are inserted raw; the same bytes twice in one batch is one row counted twice.
    The ingest worker, not the receiver, parses them and fills the routing columns."""
    intakes = write(db, [delivery(1), delivery(2), delivery(1)])
    stored = rows(db)
    assert len(stored) == 2
    assert [i.delivery_id for i in intakes] == [stored[0].id, stored[1].id, stored[0].id]
    assert [i.duplicate for i in intakes] == [False, False, True]
    assert {r.status for r in stored} == {InboxStatus.PENDING}
    assert stored[0].duplicates == 1
    assert stored[1].duplicates == 0
    assert bytes(stored[0].body) == delivery(1)
    assert stored[0].fields is None
    with db.sessionmaker() as session:
        outcome = process_delivery(session, stored[0].id, settings=SETTINGS)
    assert outcome.status == InboxStatus.WAITING  # no onboarding for this number yet
    (routed, _) = rows(db)
    assert routed.phone_number_id == "106540352242922"
    assert routed.waba_id == "102290129340398"
    assert routed.fields == "smb_message_echoes"


def test_redelivered_bodies_are_counted_on_the_stored_row(db: Database) -> None:
    """Meta sending the same bytes again (a later batch) adds to ``duplicates``, no new row."""
    first = write(db, [delivery(1)])
    again = write(db, [delivery(1), delivery(3), delivery(1)])
    stored = rows(db)
    assert len(stored) == 2
    assert again[0] == Intake(first[0].delivery_id, "pending", duplicate=True)
    assert again[2] == again[0]
    assert not again[1].duplicate
    assert stored[0].duplicates == 2


def test_a_malformed_body_is_stored_then_quarantined_with_its_reason(db: Database) -> None:
    """A signed body that is not a Meta delivery is kept; the worker quarantines it, saying why."""
    (intake,) = write(db, [b'{"object":"page","entry":[]}'])
    assert intake.status == InboxStatus.PENDING
    with db.sessionmaker() as session:
        outcome = process_delivery(session, intake.delivery_id, settings=SETTINGS)
    (stored,) = rows(db)
    assert outcome.status == InboxStatus.QUARANTINED
    assert stored.status == InboxStatus.QUARANTINED
    assert "whatsapp_business_account" in (stored.last_error or "")


def test_an_unreachable_database_is_an_operational_error_and_nothing_is_written(
    db: Database,
) -> None:
    """A connection refused surfaces as SQLAlchemy's OperationalError (the web app's 503)."""
    writer = AsyncInboxWriter("postgresql+psycopg://postgres@127.0.0.1:9/test")
    with pytest.raises(OperationalError):
        asyncio.run(writer.write([delivery(1)]))
    asyncio.run(writer.close())
    assert rows(db) == []


def test_two_redispatch_runs_at_once_dispatch_a_stale_row_once(db: Database) -> None:
    """Beat's re-dispatch claims stale rows with one UPDATE that re-checks them: a run that
    waited for another's row lock finds the row dispatched already and leaves it alone."""
    (intake,) = write(db, [delivery(7)])
    old = utcnow() - timedelta(hours=1)
    with db.sessionmaker() as session:
        session.execute(
            update(InboxDelivery)
            .where(InboxDelivery.id == intake.delivery_id)
            .values(received_at=old)
        )
        session.commit()
    claimed: list[list[int]] = []
    with db.sessionmaker() as first:
        # The first run holds the row (as its UPDATE does) while the second one starts.
        first.execute(
            update(InboxDelivery)
            .where(InboxDelivery.id == intake.delivery_id)
            .values(dispatched_at=utcnow())
        )

        def second() -> None:
            with db.sessionmaker() as session:
                claimed.append(ingest.stale_pending(session, settings=SETTINGS))

        runner = threading.Thread(target=second)
        runner.start()
        time.sleep(1.0)  # the second run is now waiting for the row lock
        assert runner.is_alive()
        first.commit()
        runner.join(timeout=30)
    assert claimed == [[]]
