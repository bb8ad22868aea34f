"""The ``/_sandbox/`` control API, driven in-process through MockTransport."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from onboarding.sandbox import Sandbox


@pytest.fixture
def control(sandbox: Sandbox) -> Iterator[httpx.Client]:
    """A client for the control API."""
    with httpx.Client(
        transport=sandbox.mock_transport(), base_url="http://sandbox.local/_sandbox"
    ) as client:
        yield client


@pytest.fixture
def seeded(control: httpx.Client) -> dict[str, Any]:
    """A business created through the control API with two numbers."""
    response = control.post("/businesses", json={"name": "Remote Shop", "numbers": 2})
    assert response.status_code == 201
    body: dict[str, Any] = response.json()
    return body


def test_create_business_returns_ids(seeded: dict[str, Any]) -> None:
    """POST /businesses answers the business, WABA and number ids."""
    assert seeded["name"] == "Remote Shop"
    assert seeded["business_id"].isdigit()
    assert seeded["waba_id"].isdigit()
    assert len(seeded["phone_numbers"]) == 2
    assert all(number["is_on_biz_app"] for number in seeded["phone_numbers"])


def test_create_business_with_listed_numbers(control: httpx.Client) -> None:
    """Numbers may be given as display numbers or objects with their state."""
    response = control.post(
        "/businesses",
        json={
            "name": "Listed",
            "numbers": [
                "+1 555 010 0001",
                {"display_phone_number": "15550100002", "is_on_biz_app": False},
            ],
        },
    )

    numbers = response.json()["phone_numbers"]
    assert [n["display_phone_number"] for n in numbers] == ["15550100001", "15550100002"]
    assert [n["is_on_biz_app"] for n in numbers] == [True, False]


def test_signup_returns_code_and_session(control: httpx.Client, seeded: dict[str, Any]) -> None:
    """POST /signups answers a code and the browser's session message."""
    response = control.post(
        "/signups", json={"waba_id": seeded["waba_id"], "include_phone_number_id": True}
    )

    assert response.status_code == 201
    body = response.json()
    assert body["code"].startswith("AQ")
    assert body["session"]["event"] == "FINISH_WHATSAPP_BUSINESS_APP_ONBOARDING"
    assert body["session"]["data"]["phone_number_id"] == seeded["phone_numbers"][0]["id"]


def test_signup_in_v3_form_on_request(control: httpx.Client, seeded: dict[str, Any]) -> None:
    """POST /signups with session_version 3 answers v3's message; without it, v4's (no version)."""
    v3 = control.post("/signups", json={"waba_id": seeded["waba_id"], "session_version": 3})
    v4 = control.post("/signups", json={"waba_id": seeded["waba_id"]})

    assert v3.json()["session"]["version"] == 3
    assert "version" not in v4.json()["session"]


def test_signup_with_another_session_version_is_400(
    control: httpx.Client, seeded: dict[str, Any]
) -> None:
    """A session_version other than 3 is a 400 naming it."""
    response = control.post("/signups", json={"waba_id": seeded["waba_id"], "session_version": 2})

    assert response.status_code == 400
    assert "session_version" in response.json()["error"]["message"]


def test_signup_for_unknown_waba_is_404(control: httpx.Client) -> None:
    """A signup for a WABA the sandbox does not know is a 404."""
    response = control.post("/signups", json={"waba_id": "1"})

    assert response.status_code == 404
    assert response.json()["error"]["type"] == "SandboxControlError"


def test_cancellation_returns_cancel_session(control: httpx.Client) -> None:
    """POST /cancellations answers a CANCEL session message."""
    response = control.post("/cancellations", json={"current_step": "WABA_SELECTION"})

    assert response.json()["session"]["data"] == {"current_step": "WABA_SELECTION"}


def test_faults_can_be_put_and_read_back(control: httpx.Client) -> None:
    """PUT /faults installs a config that GET /faults returns."""
    config = {"seed": 4, "rules": {"smb_app_data": {"drop_after_apply": 1.0}}}

    assert control.put("/faults", json=config).status_code == 200

    read = control.get("/faults").json()
    assert read["seed"] == 4
    assert read["rules"]["smb_app_data"]["drop_after_apply"] == 1.0
    assert read["rules"]["smb_app_data"]["error_5xx"] == 0.0


def test_invalid_faults_are_400(control: httpx.Client) -> None:
    """A fault config with a rate above 1 is refused with 400."""
    response = control.put("/faults", json={"rules": {"*": {"error_5xx": 2}}})

    assert response.status_code == 400


def test_syncs_and_stats_report_graph_activity(
    sandbox: Sandbox, control: httpx.Client, seeded: dict[str, Any]
) -> None:
    """GET /syncs lists accepted syncs and GET /stats counts the calls."""
    number_id = seeded["phone_numbers"][0]["id"]
    sandbox.complete_signup(seeded["waba_id"], number_id)
    token = sandbox.issue_token(seeded["business_id"])
    control.post(
        f"https://graph.facebook.com/v25.0/{number_id}/smb_app_data",
        json={"messaging_product": "whatsapp", "sync_type": "history"},
        headers={"Authorization": f"Bearer {token}"},
    )

    syncs = control.get("/syncs", params={"phone_number_id": number_id}).json()["data"]
    stats = control.get("/stats").json()

    assert [(s["phone_number_id"], s["sync_type"]) for s in syncs] == [(number_id, "history")]
    assert stats["calls"]["smb_app_data"] == 1
    assert stats["calls"]["register"] == 0
    assert stats["accepted_syncs"] == 1


def test_clock_advance_closes_the_sync_window(
    sandbox: Sandbox, control: httpx.Client, seeded: dict[str, Any]
) -> None:
    """POST /clock moves sandbox time, so an out-of-process test can pass the 24 h window."""
    number_id = seeded["phone_numbers"][0]["id"]
    sandbox.complete_signup(seeded["waba_id"], number_id)
    before = sandbox.now()

    body = control.post("/clock", json={"advance_seconds": 25 * 3600}).json()

    assert body["offset"] == 25 * 3600
    assert body["now"] == pytest.approx(before + 25 * 3600)
    response = control.post(
        f"https://graph.facebook.com/v25.0/{number_id}/smb_app_data",
        json={"messaging_product": "whatsapp", "sync_type": "history"},
        headers={"Authorization": f"Bearer {sandbox.issue_token(seeded['business_id'])}"},
    )
    assert response.json()["error"]["code"] == 2593108


def test_revocation_kills_tokens(
    sandbox: Sandbox, control: httpx.Client, seeded: dict[str, Any]
) -> None:
    """POST /revocations revokes a business's tokens, which then fail with 190."""
    token = sandbox.issue_token(seeded["business_id"])

    assert control.post("/revocations", json={"business_id": seeded["business_id"]}).json() == {
        "revoked": 1
    }
    response = control.get(
        f"https://graph.facebook.com/v25.0/{seeded['waba_id']}",
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.json()["error"]["code"] == 190


def test_reset_forgets_everything(
    sandbox: Sandbox, control: httpx.Client, seeded: dict[str, Any]
) -> None:
    """POST /reset forgets businesses, counters and the clock offset."""
    control.post("/clock", json={"advance_seconds": 10})

    assert control.post("/reset").json() == {"success": True}

    assert control.post("/signups", json={"waba_id": seeded["waba_id"]}).status_code == 404
    assert sandbox.clock_offset == 0
    assert sum(control.get("/stats").json()["calls"].values()) == 0


def test_unknown_route_is_404_and_wrong_method_405(control: httpx.Client) -> None:
    """An unknown control route is a 404 and a wrong method a 405."""
    assert control.get("/nothing-here").status_code == 404
    assert control.delete("/stats").status_code == 405


def test_non_json_control_body_is_400(control: httpx.Client) -> None:
    """A control call with a body that is not a JSON object is a 400."""
    response = control.post("/businesses", content=b"[1, 2]")

    assert response.status_code == 400


def test_index_lists_the_routes(control: httpx.Client) -> None:
    """GET /_sandbox lists the control routes and their methods."""
    routes = control.get("").json()["routes"]

    assert routes["/_sandbox/faults"] == ["GET", "PUT"]
    assert "/_sandbox/signups" in routes


def test_app_setting_requires_appsecret_proof(control: httpx.Client, sandbox: Sandbox) -> None:
    """PUT /app turns "Require App Secret" on; GET reads it back."""
    assert control.get("/app").json() == {"require_appsecret_proof": False}

    response = control.put("/app", json={"require_appsecret_proof": True})

    assert response.json() == {"require_appsecret_proof": True}
    assert sandbox.require_appsecret_proof is True
    assert control.put("/app", json={}).status_code == 400


def test_numbers_route_makes_a_number_leave_the_app(
    control: httpx.Client, sandbox: Sandbox, seeded: dict[str, Any]
) -> None:
    """PUT /numbers changes what the number node answers for is_on_biz_app and platform_type."""
    number_id = seeded["phone_numbers"][0]["id"]
    token = sandbox.issue_token(seeded["business_id"])

    response = control.put(
        "/numbers",
        json={"phone_number_id": number_id, "is_on_biz_app": False, "platform_type": "CLOUD_API"},
    )

    assert response.json() == {"success": True}
    node = sandbox.handle(
        httpx.Request(
            "GET",
            f"https://graph.facebook.com/v25.0/{number_id}?fields=is_on_biz_app,platform_type",
            headers={"Authorization": f"Bearer {token}"},
        )
    ).json()
    assert (node["is_on_biz_app"], node["platform_type"]) == (False, "CLOUD_API")
    assert control.put("/numbers", json={"phone_number_id": "1"}).status_code == 404


def test_subscriptions_route_sets_an_override_and_unsubscribes(
    control: httpx.Client, sandbox: Sandbox, seeded: dict[str, Any]
) -> None:
    """PUT /subscriptions sets a WABA override; DELETE removes the app's subscription."""
    waba_id = seeded["waba_id"]
    override = {"override_callback_uri": "https://provider.example/wa", "verify_token": "pv"}

    assert control.put("/subscriptions", json={"waba_id": waba_id, **override}).status_code == 200
    assert sandbox.webhook_override(waba_id) == ("https://provider.example/wa", "pv")

    assert control.request("DELETE", "/subscriptions", json={"waba_id": waba_id}).status_code == 200
    assert not sandbox.is_subscribed(waba_id)
    bad = control.put(
        "/subscriptions", json={"waba_id": waba_id, **override, "override_callback_uri": "http://x"}
    )
    assert bad.status_code == 400
