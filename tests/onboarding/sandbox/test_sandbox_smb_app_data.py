"""The sync trigger ``POST /{phone_number_id}/smb_app_data``: once per type, within 24 h."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
from freezegun import freeze_time

from onboarding.sandbox import AcceptedSync, Business, Sandbox

Sync = Callable[[str, str], httpx.Response]


@pytest.fixture
def onboarded(sandbox: Sandbox, business: Business) -> str:
    """The id of a coexistence number whose signup just finished."""
    return sandbox.complete_signup(business.waba_id, business.phone_number_ids[0]).phone_number_id


def test_accepted_sync_returns_a_request_id(onboarded: str, sync: Sync) -> None:
    """An accepted sync answers messaging_product and a numeric request_id."""
    response = sync(onboarded, "smb_app_state_sync")

    assert response.status_code == 200
    body = response.json()
    assert body["messaging_product"] == "whatsapp"
    assert body["request_id"].isdigit()


def test_accepted_sync_is_recorded(
    sandbox: Sandbox, business: Business, onboarded: str, sync: Sync, clock: Callable[[], float]
) -> None:
    """The sandbox records the number, WABA, type, request id and time of an accepted sync."""
    request_id = sync(onboarded, "history").json()["request_id"]

    assert sandbox.accepted_syncs(onboarded) == [
        AcceptedSync(onboarded, business.waba_id, "history", request_id, clock())
    ]
    assert sandbox.accepted_syncs(business.phone_number_ids[1]) == []


def test_each_sync_type_is_accepted_once(onboarded: str, sync: Sync) -> None:
    """Contacts then history are both accepted in the same onboarding."""
    assert sync(onboarded, "smb_app_state_sync").status_code == 200
    assert sync(onboarded, "history").status_code == 200


def test_second_sync_of_a_type_is_code_2593107(onboarded: str, sync: Sync) -> None:
    """A second history sync in one onboarding is refused with code 2593107."""
    sync(onboarded, "history")

    response = sync(onboarded, "history")

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == 2593107
    assert error["message"] == "(#2593107) Too many synchronization requests"
    assert error["error_data"] == {
        "messaging_product": "whatsapp",
        "details": "Only one synchronization request per sync type is allowed",
    }


def test_sync_after_24_hours_is_code_2593108(sandbox: Sandbox, onboarded: str, sync: Sync) -> None:
    """A sync 24 h and one second after signup is refused with code 2593108."""
    sandbox.advance_clock(24 * 3600 + 1)

    error = sync(onboarded, "history").json()["error"]

    assert error["code"] == 2593108
    assert error["message"].startswith("(#2593108) Synchronization request can only be made")
    assert error["error_data"]["messaging_product"] == "whatsapp"
    assert "24 hours" in error["error_data"]["details"]


def test_sync_at_24_hours_is_still_accepted(sandbox: Sandbox, onboarded: str, sync: Sync) -> None:
    """A sync exactly 24 h after signup is accepted."""
    sandbox.advance_clock(24 * 3600)

    assert sync(onboarded, "history").status_code == 200


def test_sync_window_follows_freezegun() -> None:
    """With the default clock, freezegun moving 25 h past signup closes the window."""
    with freeze_time("2026-06-01 12:00:00") as frozen:
        sandbox = Sandbox("42", "secret")
        business = sandbox.add_business("Frozen Shop", 1)
        number_id = sandbox.complete_signup(business.waba_id).phone_number_id
        token = sandbox.issue_token(business.id)
        frozen.tick(25 * 3600)
        with httpx.Client(transport=sandbox.mock_transport()) as client:
            response = client.post(
                f"https://graph.facebook.com/v25.0/{number_id}/smb_app_data",
                json={"messaging_product": "whatsapp", "sync_type": "history"},
                headers={"Authorization": f"Bearer {token}"},
            )

    assert response.json()["error"]["code"] == 2593108


def test_sync_window_is_configurable(clock: Callable[[], float]) -> None:
    """A sandbox with a one-hour window refuses a sync after 61 minutes."""
    sandbox = Sandbox("42", "secret", clock=clock, sync_window=3600)
    business = sandbox.add_business("Hourly", 1)
    number_id = sandbox.complete_signup(business.waba_id).phone_number_id
    sandbox.advance_clock(61 * 60)

    with httpx.Client(transport=sandbox.mock_transport()) as client:
        response = client.post(
            f"https://graph.facebook.com/v25.0/{number_id}/smb_app_data",
            json={"messaging_product": "whatsapp", "sync_type": "history"},
            headers={"Authorization": f"Bearer {sandbox.issue_token(business.id)}"},
        )

    assert response.json()["error"]["code"] == 2593108


def test_new_signup_resets_the_window_and_the_once_per_type_rule(
    sandbox: Sandbox, business: Business, onboarded: str, sync: Sync
) -> None:
    """A new signup after the window closed allows each sync type once more."""
    sync(onboarded, "history")
    sandbox.advance_clock(48 * 3600)
    assert sync(onboarded, "history").json()["error"]["code"] == 2593108

    sandbox.complete_signup(business.waba_id, onboarded)

    assert sync(onboarded, "history").status_code == 200
    assert sync(onboarded, "history").json()["error"]["code"] == 2593107


def test_never_onboarded_number_is_code_2593108(business: Business, sync: Sync) -> None:
    """A Business app number without any signup is outside every sync window."""
    assert sync(business.phone_number_ids[1], "history").json()["error"]["code"] == 2593108


def test_sync_on_a_cloud_api_only_number_is_code_100(sandbox: Sandbox, graph: httpx.Client) -> None:
    """smb_app_data on a number that is not on the Business app is refused with code 100."""
    cloud = sandbox.add_business("Cloud Only", 1, coexistence=False)
    sandbox.complete_signup(cloud.waba_id, coexistence=False)

    response = graph.post(
        f"/{cloud.phone_number_ids[0]}/smb_app_data",
        json={"messaging_product": "whatsapp", "sync_type": "history"},
        headers={"Authorization": f"Bearer {sandbox.issue_token(cloud.id)}"},
    )

    error = response.json()["error"]
    assert error["code"] == 100
    assert "not connected to the WhatsApp Business app" in error["error_data"]["details"]


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        ({"messaging_product": "whatsapp"}, "sync_type is required"),
        ({"messaging_product": "whatsapp", "sync_type": "contacts"}, "sync_type must be one of"),
        ({"sync_type": "history"}, "messaging_product is required"),
        ({"messaging_product": "sms", "sync_type": "history"}, "must be 'whatsapp'"),
    ],
)
def test_bad_parameters_are_invalid_parameter(
    graph: httpx.Client,
    onboarded: str,
    auth: dict[str, str],
    body: dict[str, str],
    detail: str,
) -> None:
    """A missing or wrong sync_type or messaging_product is (#100) Invalid parameter."""
    response = graph.post(f"/{onboarded}/smb_app_data", json=body, headers=auth)

    error = response.json()["error"]
    assert (error["code"], error["message"]) == (100, "(#100) Invalid parameter")
    assert detail in error["error_data"]["details"]


def test_refused_sync_is_not_recorded(sandbox: Sandbox, onboarded: str, sync: Sync) -> None:
    """Only accepted calls are recorded; refused ones are only counted."""
    sync(onboarded, "history")
    sync(onboarded, "history")

    assert len(sandbox.accepted_syncs()) == 1
    assert sandbox.call_counts()["smb_app_data"] == 2


def test_sync_listener_hears_each_accepted_sync(
    sandbox: Sandbox, onboarded: str, sync: Sync
) -> None:
    """A registered sync listener is called once per accepted sync, not for refusals."""
    heard: list[AcceptedSync] = []
    sandbox.add_sync_listener(heard.append)

    sync(onboarded, "smb_app_state_sync")
    sync(onboarded, "smb_app_state_sync")

    assert [item.sync_type for item in heard] == ["smb_app_state_sync"]


def test_failing_listener_does_not_change_the_response(
    sandbox: Sandbox, onboarded: str, sync: Sync
) -> None:
    """A listener that raises is logged and the caller still gets the accepted response."""

    def broken(_: AcceptedSync) -> None:
        raise RuntimeError("webhook target down")

    sandbox.add_sync_listener(broken)

    assert sync(onboarded, "history").status_code == 200
