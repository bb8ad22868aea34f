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
    [stale] = [s["account_update"] for s in summaries if "stale_events" in s["account_update"]]
    assert stale["stale_events"] == 1
    assert "older than PARTNER_REMOVED" in stale["notes"][0]


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


# -- DISABLED_UPDATE: ban states (docs/meta.md#116-acting-on-account_update) -------------------


def ban(state: str, date: str = "April 17, 2025") -> dict[str, Any]:
    """Meta's documented DISABLED_UPDATE value."""
    return {
        "event": "DISABLED_UPDATE",
        "ban_info": {"waba_ban_state": state, "waba_ban_date": date},
    }


def open_alerts(rt: Runtime, business: Business) -> set[str]:
    with rt.db.sessionmaker() as session:
        return set(
            session.scalars(
                select(Alert.kind).where(
                    Alert.onboarding_id == business.onboarding_id, Alert.acknowledged_at.is_(None)
                )
            )
        )


def test_ban_disable_pauses_sends_with_an_error_alert(
    web: TestClient, rt: Runtime, business: Business
) -> None:
    """DISABLED_UPDATE with waba_ban_state DISABLE pauses every send and raises an error alert."""
    post(web, account_update(business, ban("DISABLE"), 1_800_000_000))
    shown = detail(rt, business)
    assert shown["lifecycle"]["paused_reason"].startswith("DISABLED_UPDATE")
    assert shown["lifecycle"]["paused_by"] == "DISABLED_UPDATE"
    assert "paused_disabled_update" in open_alerts(rt, business)


def test_ban_reinstate_lifts_the_pause_and_resolves_its_alert(
    web: TestClient, rt: Runtime, business: Business
) -> None:
    """REINSTATE after DISABLE lifts the pause, says so on the timeline and closes the alert."""
    post(web, account_update(business, ban("DISABLE"), 1_800_000_000))
    post(web, account_update(business, ban("REINSTATE"), 1_800_000_600))
    shown = detail(rt, business)
    assert shown["lifecycle"]["paused_reason"] is None
    assert shown["timeline"][-1]["cause"].startswith("API sends resumed: DISABLED_UPDATE")
    assert "paused_disabled_update" not in open_alerts(rt, business)


def test_ban_reinstate_alone_pauses_nothing(
    web: TestClient, rt: Runtime, business: Business
) -> None:
    """A REINSTATE with no ban before it is noted; it neither pauses nor alerts."""
    post(web, account_update(business, ban("REINSTATE"), 1_800_000_000))
    shown = detail(rt, business)
    assert shown["lifecycle"]["paused_reason"] is None
    assert "reinstated" in shown["timeline"][-1]["cause"]
    assert open_alerts(rt, business) == set()


def test_ban_scheduled_warns_with_the_date_and_keeps_sending(
    web: TestClient, rt: Runtime, business: Business
) -> None:
    """SCHEDULE_FOR_DISABLE raises a warning naming waba_ban_date and pauses nothing."""
    post(web, account_update(business, ban("SCHEDULE_FOR_DISABLE"), 1_800_000_000))
    shown = detail(rt, business)
    assert shown["lifecycle"]["paused_reason"] is None
    [alert] = [a for a in shown["alerts"] if a["kind"] == "disable_scheduled"]
    assert "April 17, 2025" in alert["message"]
    assert alert["severity"] == "warning"


def test_ban_disabled_again_after_reinstatement_alerts_again(
    web: TestClient, rt: Runtime, business: Business
) -> None:
    """A second DISABLE after a REINSTATE pauses again and reopens the alert."""
    for state, at in (("DISABLE", 0), ("REINSTATE", 100), ("DISABLE", 200)):
        post(web, account_update(business, ban(state, f"day {at}"), 1_800_000_000 + at))
    assert detail(rt, business)["lifecycle"]["paused_by"] == "DISABLED_UPDATE"
    assert "paused_disabled_update" in open_alerts(rt, business)


# -- ACCOUNT_RESTRICTION ------------------------------------------------------------------------


def restriction(*items: tuple[str, int]) -> dict[str, Any]:
    """Meta's documented ACCOUNT_RESTRICTION value: restriction_info[] with Unix expirations."""
    return {
        "event": "ACCOUNT_RESTRICTION",
        "restriction_info": [{"restriction_type": t, "expiration": e} for t, e in items],
    }


def test_restriction_is_stored_with_its_expiry_and_alerts(
    web: TestClient, rt: Runtime, business: Business
) -> None:
    """ACCOUNT_RESTRICTION keeps each restriction and its expiry, pauses nothing else, and
    raises one alert naming what stops."""
    value = restriction(
        ("RESTRICTED_BIZ_INITIATED_MESSAGING", 1_800_086_400),
        ("RESTRICTED_ADD_PHONE_NUMBER_ACTION", 1_800_086_400),
    )
    post(web, account_update(business, value, 1_800_000_000))
    shown = detail(rt, business)
    assert shown["state"] == S.SYNCING  # the onboarding itself goes on
    assert shown["lifecycle"]["paused_reason"] is None
    assert shown["lifecycle"]["restrictions"] == [
        {"type": "RESTRICTED_BIZ_INITIATED_MESSAGING", "expires_at": 1_800_086_400},
        {"type": "RESTRICTED_ADD_PHONE_NUMBER_ACTION", "expires_at": 1_800_086_400},
    ]
    [alert] = [a for a in shown["alerts"] if a["kind"] == "restricted_sends"]
    assert "stops template" in alert["message"]


def test_unknown_restriction_type_restricts_everything_and_says_so(
    web: TestClient, rt: Runtime, business: Business
) -> None:
    """A restriction type coexist does not know stops every send, and the timeline says why."""
    value = restriction(("RESTRICTED_SOMETHING_NEW", 1_800_086_400))
    post(web, account_update(business, value, 1_800_000_000))
    cause = detail(rt, business)["timeline"][-1]["cause"]
    assert "stops template, text" in cause
    assert "unknown type" in cause


def test_restriction_events_add_up_and_renew_expiries(
    web: TestClient, rt: Runtime, business: Business
) -> None:
    """A later ACCOUNT_RESTRICTION adds its restrictions to those held; a type held already
    takes the new expiry, and none is dropped before it expires."""
    first = restriction(
        ("RESTRICTED_UTILITY_TEMPLATES", 1_800_086_400),
        ("RESTRICTED_BIZ_INITIATED_MESSAGING", 1_800_086_400),
    )
    post(web, account_update(business, first, 1_800_000_000))
    later = restriction(("RESTRICTED_UTILITY_TEMPLATES", 1_800_172_800))
    post(web, account_update(business, later, 1_800_000_100))
    assert detail(rt, business)["lifecycle"]["restrictions"] == [
        {"type": "RESTRICTED_UTILITY_TEMPLATES", "expires_at": 1_800_172_800},
        {"type": "RESTRICTED_BIZ_INITIATED_MESSAGING", "expires_at": 1_800_086_400},
    ]


def test_unreadable_restriction_stops_everything_until_a_readable_one(
    web: TestClient, rt: Runtime, business: Business
) -> None:
    """An ACCOUNT_RESTRICTION without restriction_info stops every send with no expiry; the next
    readable one replaces it."""
    post(web, account_update(business, {"event": "ACCOUNT_RESTRICTION"}, 1_800_000_000))
    assert detail(rt, business)["lifecycle"]["restrictions"] == [
        {"type": "UNSPECIFIED", "expires_at": None}
    ]
    value = restriction(("RESTRICTED_CUSTOMER_INITIATED_MESSAGING", 1_800_086_400))
    post(web, account_update(business, value, 1_800_000_100))
    assert detail(rt, business)["lifecycle"]["restrictions"] == [
        {"type": "RESTRICTED_CUSTOMER_INITIATED_MESSAGING", "expires_at": 1_800_086_400}
    ]


# -- keys, dates, staleness ----------------------------------------------------------------------


def test_partner_event_is_keyed_on_waba_info_not_the_entry_id(
    web: TestClient, rt: Runtime, business: Business
) -> None:
    """A PARTNER_ADDED whose entry id is another WABA coexist onboards is applied to the WABA
    named in waba_info, never to the entry's."""
    payload = account_update(
        business,
        {
            "event": "PARTNER_ADDED",
            "waba_info": {"waba_id": "495812763310291", "owner_business_id": "1"},
        },
        1_800_000_000,
    )
    post(web, payload)
    shown = detail(rt, business)
    assert shown["lifecycle"]["event"] is None
    with rt.db.sessionmaker() as session:
        row = session.scalars(select(InboxDelivery)).one()
    assert row.waba_id == "495812763310291"


def test_event_dated_before_the_signup_changes_nothing(
    web: TestClient, rt: Runtime, business: Business
) -> None:
    """A PARTNER_REMOVED dated before this onboarding's signup (Meta's 2025 example, about an
    earlier onboarding of the WABA) is recorded as stale and leaves state and timeline alone."""
    before = detail(rt, business)
    post(web, account_update(business, removed(), 1_739_212_624))
    shown = detail(rt, business)
    assert shown["state"] == before["state"]
    assert shown["timeline"] == before["timeline"]
    assert shown["lifecycle"]["event"] is None
    with rt.db.sessionmaker() as session:
        row = session.scalars(select(InboxDelivery)).one()
    assert row.summary is not None
    assert row.summary["account_update"]["stale_events"] == 1
    assert "before this onboarding's signup" in row.summary["account_update"]["notes"][0]


def test_quoted_entry_time_still_fences_stale_events(
    web: TestClient, rt: Runtime, business: Business
) -> None:
    """An entry time sent as a digit string dates the event: an older reconnect stays stale."""
    post(web, account_update(business, removed(), 1_800_000_500))
    payload = account_update(business, {"event": "ACCOUNT_RECONNECTED"}, 0)
    payload["entry"][0]["time"] = "1800000200"
    post(web, payload)
    shown = detail(rt, business)
    assert shown["state"] == S.DISCONNECTED
    assert shown["lifecycle"]["event"] == "PARTNER_REMOVED"
