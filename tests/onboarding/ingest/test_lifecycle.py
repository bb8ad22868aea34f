"""Lifecycle from account_update: disconnects, offboard/reconnect, pauses, fencing by time."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select

from models import Alert, InboxDelivery, InboxStatus, Onboarding, OnboardingState
from onboarding.runtime import Runtime
from onboarding.sandbox import Sandbox
from onboarding.views import onboarding_detail
from tests.conftest import SIGNUP_TOKEN
from tests.onboarding.deliveries import Business, signed

S = OnboardingState


def account_update(business: Business, value: dict[str, Any], time: int) -> dict[str, Any]:
    return {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": business.waba_id,
                "time": time,
                "changes": [{"field": "account_update", "value": value}],
            }
        ],
    }


def post(web: TestClient, payload: dict[str, Any]) -> None:
    raw, headers = signed(payload)
    assert web.post("/webhooks/meta", content=raw, headers=headers).status_code == 200


def detail(rt: Runtime, business: Business) -> dict[str, Any]:
    with rt.db.sessionmaker() as session:
        return onboarding_detail(session, session.get_one(Onboarding, business.onboarding_id))


def removed(reason: str = "PRIMARY_INACTIVITY", who: str = "SYSTEM") -> dict[str, Any]:
    return {
        "phone_number": "16505551234",
        "event": "PARTNER_REMOVED",
        "disconnection_info": {"reason": reason, "initiated_by": who},
    }


def test_partner_removed_disconnects_and_keeps_the_reason(
    web: TestClient, rt: Runtime, business: Business
) -> None:
    """PARTNER_REMOVED moves the onboarding to disconnected with Meta's reason and initiator."""
    post(web, account_update(business, removed(), 1_800_000_000))
    shown = detail(rt, business)
    assert shown["state"] == S.DISCONNECTED
    assert shown["lifecycle"]["reason"] == "PRIMARY_INACTIVITY"
    assert shown["lifecycle"]["initiated_by"] == "SYSTEM"
    assert shown["timeline"][-1]["to"] == "disconnected"
    assert "PRIMARY_INACTIVITY" in shown["timeline"][-1]["cause"]
    assert "disconnected" in {a["kind"] for a in shown["alerts"]}


def test_offboarded_then_reconnected_returns_to_the_previous_state(
    web: TestClient, rt: Runtime, business: Business
) -> None:
    """ACCOUNT_OFFBOARDED pauses as reconnecting; ACCOUNT_RECONNECTED restores the state."""
    before = detail(rt, business)["state"]
    post(web, account_update(business, {"event": "ACCOUNT_OFFBOARDED"}, 1_800_000_000))
    assert detail(rt, business)["state"] == S.RECONNECTING
    post(web, account_update(business, {"event": "ACCOUNT_RECONNECTED"}, 1_800_000_300))
    shown = detail(rt, business)
    assert shown["state"] == before
    assert [t["to"] for t in shown["timeline"][-2:]] == ["reconnecting", before]


def test_stale_events_never_overwrite_newer_state(
    web: TestClient, rt: Runtime, business: Business
) -> None:
    """A reconnect older than the disconnect that followed it changes nothing."""
    post(web, account_update(business, {"event": "ACCOUNT_OFFBOARDED"}, 1_800_000_000))
    post(web, account_update(business, removed("CHANGE_NUMBER", "USER"), 1_800_000_500))
    post(web, account_update(business, {"event": "ACCOUNT_RECONNECTED"}, 1_800_000_200))
    shown = detail(rt, business)
    assert shown["state"] == S.DISCONNECTED
    assert shown["lifecycle"]["reason"] == "CHANGE_NUMBER"
    with rt.db.sessionmaker() as session:
        summaries = [r.summary for r in session.scalars(select(InboxDelivery))]
    assert {"account_update": {"stale_events": 1}} in summaries


def test_restrictions_pause_sends_with_the_reason(
    web: TestClient, rt: Runtime, business: Business
) -> None:
    """ACCOUNT_RESTRICTION pauses API sends, says why, and raises an alert."""
    post(
        web,
        account_update(
            business,
            {
                "event": "ACCOUNT_RESTRICTION",
                "restriction_info": {"restriction_type": "RESTRICTED_ADD_PHONE_NUMBER_ACTION"},
            },
            1_800_000_000,
        ),
    )
    shown = detail(rt, business)
    assert shown["lifecycle"]["paused_reason"].startswith("ACCOUNT_RESTRICTION")
    assert shown["state"] == S.SYNCING  # the onboarding itself goes on
    with rt.db.sessionmaker() as session:
        kinds = set(session.scalars(select(Alert.kind)))
    assert "paused_account_restriction" in kinds


def test_events_are_matched_by_nested_waba_info(
    web: TestClient, rt: Runtime, business: Business
) -> None:
    """An event whose entry id is not the WABA finds the onboarding through waba_info."""
    payload = {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": "999999999999999",
                "time": 1_800_000_000,
                "changes": [
                    {
                        "field": "account_update",
                        "value": {
                            "event": "PARTNER_APP_INSTALLED",
                            "waba_info": {"waba_id": business.waba_id, "owner_business_id": "1"},
                        },
                    }
                ],
            }
        ],
    }
    post(web, payload)
    shown = detail(rt, business)
    assert shown["timeline"][-1]["cause"].startswith("PARTNER_APP_INSTALLED")
    assert shown["lifecycle"]["event"] == "PARTNER_APP_INSTALLED"


def test_unknown_account_events_are_kept_on_the_timeline(
    web: TestClient, rt: Runtime, business: Business
) -> None:
    """An event coexist does not know is noted, not fatal."""
    post(web, account_update(business, {"event": "SOMETHING_NEW"}, 1_800_000_000))
    with rt.db.sessionmaker() as session:
        row = session.scalars(select(InboxDelivery)).one()
    assert row.status == InboxStatus.PROCESSED
    assert detail(rt, business)["timeline"][-1]["cause"].startswith("account_update SOMETHING_NEW")


def test_disconnected_onboarding_requests_nothing_and_a_new_signup_starts_fresh(
    web: TestClient, rt: Runtime, business: Business, sandbox: Sandbox
) -> None:
    """After a disconnect, a new Embedded Signup for the number is a new onboarding with a new
    24 h window, and webhooks go to it."""
    post(web, account_update(business, removed(), 1_800_000_000))
    signup = sandbox.complete_signup(business.waba_id)
    response = web.post(
        "/signup",
        json={"code": signup.code, "session": dict(signup.session)},
        headers={"Authorization": f"Bearer {SIGNUP_TOKEN}"},
    )
    new_id = response.json()["onboarding_id"]
    assert new_id != business.onboarding_id
    with rt.db.sessionmaker() as session:
        old = session.get_one(Onboarding, business.onboarding_id)
        new = session.get_one(Onboarding, new_id)
        assert old.state == S.DISCONNECTED
        assert new.state == S.SYNCING
        assert new.sync_deadline_at > old.sync_deadline_at
