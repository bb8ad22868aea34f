"""account_update on PostgreSQL: ban states, restrictions in JSONB, events for other WABAs and
events dated before the signup, each posted as Meta does and processed as the worker does."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import pytest
from freezegun import freeze_time
from sqlalchemy import select

from benchmarks._harness import CoexistApi, StackConfig
from models import Alert, Database, InboxDelivery, InboxStatus, Onboarding
from onboarding import pauses
from onboarding.ingest.dispatch import process_delivery
from onboarding.ingest.inbox import receive
from onboarding.meta.payloads import digits
from onboarding.sandbox import Sandbox
from tests.integration._flow import finished_signup, start_onboarding
from tests.onboarding.deliveries import Business, meta_json

pytestmark = pytest.mark.integration

SETTINGS = StackConfig().settings("http://127.0.0.1:9")


@pytest.fixture
def business(api: CoexistApi, sandbox: Sandbox) -> Business:
    """An onboarding through Embedded Signup (no webhooks sent)."""
    sandbox.disable_webhooks()
    signup = finished_signup(sandbox)
    onboarding_id = start_onboarding(api, signup)
    detail = api.wait_for_onboarding(onboarding_id)
    number = digits(detail["display_phone_number"])
    assert number is not None
    return Business(onboarding_id, signup.waba_id, signup.phone_number_id, number)


def account_update(entry_id: str, value: dict[str, Any], at: int | str) -> dict[str, Any]:
    change = {"field": "account_update", "value": value}
    entry = {"id": entry_id, "time": at, "changes": [change]}
    return {"object": "whatsapp_business_account", "entry": [entry]}


def process(db: Database, payload: dict[str, Any], **overrides: Any) -> InboxDelivery:
    """Store ``payload`` as the receiver does and process it as the ingest task does."""
    settings = SETTINGS.model_copy(update=overrides)
    with db.sessionmaker() as session:
        delivery_id = receive(session, meta_json(payload)).delivery_id
    with db.sessionmaker() as session:
        process_delivery(session, delivery_id, settings=settings)
        return session.get_one(InboxDelivery, delivery_id)


def onboarding(db: Database, business: Business) -> Onboarding:
    with db.sessionmaker() as session:
        found = session.get_one(Onboarding, business.onboarding_id)
        _ = list(found.transitions)
        return found


def open_alerts(db: Database, business: Business) -> set[str]:
    with db.sessionmaker() as session:
        return set(
            session.scalars(
                select(Alert.kind).where(
                    Alert.onboarding_id == business.onboarding_id, Alert.acknowledged_at.is_(None)
                )
            )
        )


def test_ban_then_reinstatement_pauses_then_lifts(db: Database, business: Business) -> None:
    """DISABLE pauses every send with an alert; REINSTATE lifts it and closes the alert."""
    now = int(time.time())
    ban = {"event": "DISABLED_UPDATE", "ban_info": {"waba_ban_date": "April 17, 2025"}}
    disabled = {**ban, "ban_info": {**ban["ban_info"], "waba_ban_state": "DISABLE"}}
    reinstated = {**ban, "ban_info": {**ban["ban_info"], "waba_ban_state": "REINSTATE"}}
    process(db, account_update(business.waba_id, disabled, now + 10))
    assert onboarding(db, business).paused_by == "DISABLED_UPDATE"
    assert "paused_disabled_update" in open_alerts(db, business)
    process(db, account_update(business.waba_id, reinstated, str(now + 20)))
    lifted = onboarding(db, business)
    assert (lifted.paused_reason, lifted.paused_by) == (None, None)
    assert lifted.transitions[-1].cause.startswith("API sends resumed")
    assert "paused_disabled_update" not in open_alerts(db, business)


def test_restrictions_are_kept_in_jsonb_and_lift_at_their_expiry(
    db: Database, business: Business
) -> None:
    """Restrictions round-trip through JSONB; the beat job finds them and notes their lift."""
    now = int(time.time())
    value = {
        "event": "ACCOUNT_RESTRICTION",
        "restriction_info": [
            {"restriction_type": "RESTRICTED_BIZ_INITIATED_MESSAGING", "expiration": now + 600}
        ],
    }
    process(db, account_update(business.waba_id, value, now + 10))
    held = onboarding(db, business)
    assert held.restrictions == [
        {"type": "RESTRICTED_BIZ_INITIATED_MESSAGING", "expires_at": now + 600}
    ]
    assert pauses.stopped(held, "template") is not None
    assert pauses.stopped(held, "text") is None
    with freeze_time(datetime.fromtimestamp(now + 601, tz=UTC)), db.sessionmaker() as session:
        assert pauses.lift_expired(session) == [business.onboarding_id]
        assert pauses.lift_expired(session) == []  # SQL NULL once none is left
    lifted = onboarding(db, business)
    assert lifted.restrictions is None
    assert lifted.transitions[-1].cause.endswith("RESTRICTED_BIZ_INITIATED_MESSAGING expired")
    assert "restricted_sends" not in open_alerts(db, business)


def test_partner_event_for_another_waba_is_recorded_not_applied(
    db: Database, business: Business
) -> None:
    """A PARTNER_ADDED for a WABA coexist does not onboard is filed under that WABA and, past
    the signup grace, processed as not applied; the onboarding is untouched."""
    value = {
        "event": "PARTNER_ADDED",
        "waba_info": {"waba_id": "495709166956424", "owner_business_id": "1001002237"},
    }
    payload = account_update(business.waba_id, value, int(time.time()))
    row = process(db, payload, account_update_signup_grace_seconds=0)
    assert (row.status, row.waba_id, row.onboarding_id) == (
        InboxStatus.PROCESSED,
        "495709166956424",
        None,
    )
    assert row.summary is not None
    assert row.summary["account_update"]["not_applied"] == 1
    assert onboarding(db, business).lifecycle_event is None


def test_event_dated_before_the_signup_changes_nothing(db: Database, business: Business) -> None:
    """Meta's 2025 PARTNER_REMOVED example, older than this onboarding's signup, is stale."""
    before = onboarding(db, business)
    value = {
        "phone_number": business.number,
        "event": "PARTNER_REMOVED",
        "disconnection_info": {"reason": "PRIMARY_INACTIVITY", "initiated_by": "SYSTEM"},
    }
    row = process(db, account_update(business.waba_id, value, 1_739_212_624))
    after = onboarding(db, business)
    assert row.summary is not None
    assert row.summary["account_update"]["stale_events"] == 1
    assert after.state == before.state
    assert len(after.transitions) == len(before.transitions)
