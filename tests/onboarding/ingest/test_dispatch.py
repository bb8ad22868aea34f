"""Dispatch: unknown fields, early arrivals, stale and orphaned rows, quarantine."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from freezegun import freeze_time
from sqlalchemy import select

from models import (
    InboxDelivery,
    InboxStatus,
    Onboarding,
    utcnow,
)
from onboarding.ingest import dispatch as ingest
from onboarding.ingest import inbox as webhooks
from onboarding.runtime import Runtime
from tests.onboarding.deliveries import (
    Business,
    body_of,
    chunk,
    envelope,
    text,
)
from tests.onboarding.ingest.helpers import USER, ago, messages, post


def test_unknown_fields_are_kept_and_ignored(
    web: TestClient, rt: Runtime, business: Business
) -> None:
    """A field coexist does not handle is stored, processed and marked ignored."""
    post(web, envelope(business, "message_template_status_update", {"event": "APPROVED"}))
    with rt.db.sessionmaker() as session:
        [row] = session.scalars(select(InboxDelivery)).all()
    assert row.status == InboxStatus.PROCESSED
    assert row.summary == {"message_template_status_update": {"ignored": 1}}


def test_early_arrivals_wait_for_their_onboarding(
    web: TestClient, rt: Runtime, business: Business
) -> None:
    """A delivery for an unknown number waits, then is processed once its onboarding exists."""
    stranger = Business(0, "999888777666555", "111222333444555", "15550001111")
    post(web, chunk(stranger, 1, 1, 10, {USER: [text("wamid.W", USER, ago(2), "early")]}))
    with rt.db.sessionmaker() as session:
        [row] = session.scalars(select(InboxDelivery)).all()
        assert row.status == InboxStatus.WAITING
    with rt.db.session() as session:
        onboarding = session.get_one(Onboarding, business.onboarding_id)
        onboarding.phone_number_id = stranger.phone_number_id
    with rt.db.session() as session:
        due = ingest.stale_pending(session, settings=rt.settings)
    assert due == [row.id]
    with rt.db.session() as session:
        ingest.process_delivery(session, row.id, settings=rt.settings)
    assert "wamid.W" in messages(rt)


def test_stale_pending_rows_are_dispatched_once_per_period(rt: Runtime, business: Business) -> None:
    """A row whose processing message was lost is dispatched again after the threshold, once:
    a run right after finds it dispatched already, a run a period later dispatches it again."""
    with rt.db.session() as session:
        intake = webhooks.receive(
            session,
            body_of(chunk(business, 1, 1, 10, {USER: [text("wamid.L", USER, ago(2), "lost")]})),
        )
    period = timedelta(seconds=rt.settings.inbox_redispatch_after_seconds + 1)
    with rt.db.session() as session:
        assert ingest.stale_pending(session, settings=rt.settings) == []  # too recent
    with freeze_time(utcnow() + period), rt.db.session() as session:
        assert ingest.stale_pending(session, settings=rt.settings) == [intake.delivery_id]
        assert ingest.stale_pending(session, settings=rt.settings) == []
    with freeze_time(utcnow() + 2 * period + timedelta(seconds=1)), rt.db.session() as session:
        assert ingest.stale_pending(session, settings=rt.settings) == [intake.delivery_id]


def test_waiting_deliveries_are_orphaned_after_seven_days(rt: Runtime, web: TestClient) -> None:
    """A delivery nobody claims for 7 days becomes orphaned."""
    stranger = Business(0, "999888777666555", "111222333444555", "15550001111")
    post(web, chunk(stranger, 1, 1, 10, {USER: [text("wamid.W", USER, ago(2), "early")]}))
    with freeze_time(utcnow() + timedelta(days=8)), rt.db.session() as session:
        ingest.stale_pending(session, settings=rt.settings)
    with rt.db.sessionmaker() as session:
        assert session.scalars(select(InboxDelivery.status)).one() == InboxStatus.ORPHANED


def test_a_delivery_that_keeps_failing_is_quarantined_after_bounded_attempts(
    rt: Runtime, business: Business, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An unexpected error is recorded on the row each time; after the last attempt the row
    is quarantined for an operator instead of being dispatched forever."""

    def broken(*_: Any) -> Any:
        raise RuntimeError("handler bug")

    monkeypatch.setitem(ingest.HANDLERS, "history", broken)
    with rt.db.session() as session:
        intake = webhooks.receive(
            session,
            body_of(chunk(business, 1, 1, 10, {USER: [text("wamid.X", USER, ago(1), "x")]})),
        )
    for _ in range(ingest.MAX_ATTEMPTS):
        with rt.db.session() as session, pytest.raises(RuntimeError):
            ingest.process_delivery(session, intake.delivery_id, settings=rt.settings)
    with rt.db.session() as session:
        outcome = ingest.process_delivery(session, intake.delivery_id, settings=rt.settings)
    assert outcome.status == InboxStatus.QUARANTINED
    with rt.db.sessionmaker() as session:
        row = session.get_one(InboxDelivery, intake.delivery_id)
    assert row.last_error is not None
    assert "handler bug" in row.last_error
