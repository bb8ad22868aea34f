"""Dispatch: unknown fields, early arrivals, stale and orphaned rows, quarantine."""

from __future__ import annotations

import time
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


# -- account_update for WABAs coexist does not onboard (docs/meta.md#116-acting-on-account_update)

PORTFOLIO = "102290129340398"
OTHER_WABA = "495709166956424"


def partner_added(waba_id: str, at: int | None = None) -> dict[str, Any]:
    """Meta's PARTNER_ADDED example: the entry id is the partner's business portfolio, the
    customer's WABA is in ``waba_info``."""
    return {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": PORTFOLIO,
                "time": at if at is not None else int(time.time()),
                "changes": [
                    {
                        "field": "account_update",
                        "value": {
                            "event": "PARTNER_ADDED",
                            "waba_info": {"waba_id": waba_id, "owner_business_id": "1001002237"},
                        },
                    }
                ],
            }
        ],
    }


def only_row(rt: Runtime) -> InboxDelivery:
    with rt.db.sessionmaker() as session:
        return session.scalars(select(InboxDelivery)).one()


def test_partner_event_for_an_unknown_waba_waits_under_that_waba(
    rt: Runtime, web: TestClient, business: Business
) -> None:
    """A PARTNER_ADDED for a WABA without an onboarding waits for its signup, filed under the
    customer's WABA from waba_info rather than the partner's portfolio id."""
    post(web, partner_added(OTHER_WABA))
    row = only_row(rt)
    assert row.status == InboxStatus.WAITING
    assert row.waba_id == OTHER_WABA


def test_partner_event_nobody_signs_up_for_is_settled_after_the_grace(
    rt: Runtime, web: TestClient, business: Business
) -> None:
    """Once the signup grace has passed with no signup for its WABA, the event is processed as
    not applied, with a note saying what it was and why."""
    post(web, partner_added(OTHER_WABA))
    grace = timedelta(seconds=rt.settings.account_update_signup_grace_seconds + 1)
    with freeze_time(utcnow() + grace), rt.db.session() as session:
        [woken] = ingest.stale_pending(session, settings=rt.settings)
        ingest.process_delivery(session, woken, settings=rt.settings)
    row = only_row(rt)
    assert row.status == InboxStatus.PROCESSED
    assert row.onboarding_id is None
    assert row.summary is not None
    entry = row.summary["account_update"]
    assert entry["not_applied"] == 1
    assert entry["notes"][0].startswith(f"PARTNER_ADDED for WABA {OTHER_WABA}: coexist has no")


def test_settled_partner_events_are_never_orphaned(
    rt: Runtime, web: TestClient, business: Business
) -> None:
    """A week on, a not-applied PARTNER_* event is processed, not orphaned."""
    post(web, partner_added(OTHER_WABA))
    with freeze_time(utcnow() + timedelta(days=8)), rt.db.session() as session:
        for delivery_id in ingest.stale_pending(session, settings=rt.settings):
            ingest.process_delivery(session, delivery_id, settings=rt.settings)
    assert only_row(rt).status == InboxStatus.PROCESSED


def test_partner_event_ahead_of_its_signup_is_applied_once_the_signup_arrives(
    rt: Runtime, web: TestClient, business: Business
) -> None:
    """A PARTNER_ADDED that reached coexist before the browser's signup hand-off waits, and
    goes to the onboarding that hand-off creates."""
    post(web, partner_added(OTHER_WABA))
    with rt.db.session() as session:  # the signup for that WABA arrives
        session.get_one(Onboarding, business.onboarding_id).waba_id = OTHER_WABA
    with rt.db.session() as session:
        [woken] = ingest.stale_pending(session, settings=rt.settings)
        ingest.process_delivery(session, woken, settings=rt.settings)
    row = only_row(rt)
    assert row.onboarding_id == business.onboarding_id
    with rt.db.sessionmaker() as session:
        onboarding = session.get_one(Onboarding, business.onboarding_id)
        assert onboarding.lifecycle_event == "PARTNER_ADDED"
        assert onboarding.transitions[-1].cause.startswith("PARTNER_ADDED")
