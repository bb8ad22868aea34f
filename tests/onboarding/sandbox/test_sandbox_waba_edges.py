"""WABA subscriptions and the register/deregister calls coexist must never make."""

from __future__ import annotations

import httpx

from onboarding.sandbox import Business, Sandbox


def test_subscriptions_are_empty_before_subscribing(
    graph: httpx.Client, business: Business, auth: dict[str, str]
) -> None:
    """A WABA nobody subscribed to lists no subscribed apps."""
    response = graph.get(f"/{business.waba_id}/subscribed_apps", headers=auth)

    assert response.json() == {"data": []}


def test_subscribe_succeeds_and_is_recorded(
    sandbox: Sandbox, graph: httpx.Client, business: Business, auth: dict[str, str]
) -> None:
    """POST subscribed_apps without a body answers success and records the subscription."""
    response = graph.post(f"/{business.waba_id}/subscribed_apps", headers=auth)

    assert response.json() == {"success": True}
    assert sandbox.is_subscribed(business.waba_id)


def test_subscribe_is_idempotent(
    sandbox: Sandbox, graph: httpx.Client, business: Business, auth: dict[str, str]
) -> None:
    """Subscribing twice succeeds twice and lists the app once."""
    for _ in range(2):
        assert graph.post(f"/{business.waba_id}/subscribed_apps", headers=auth).json() == {
            "success": True
        }

    listed = graph.get(f"/{business.waba_id}/subscribed_apps", headers=auth).json()
    assert listed == {
        "data": [
            {
                "whatsapp_business_api_data": {
                    "id": sandbox.app_id,
                    "link": f"https://www.facebook.com/games/?app_id={sandbox.app_id}",
                    "name": "coexist sandbox",
                }
            }
        ]
    }


def test_subscribe_with_override_lists_the_callback(
    graph: httpx.Client, business: Business, auth: dict[str, str]
) -> None:
    """A subscription with an override callback lists it next to the app."""
    graph.post(
        f"/{business.waba_id}/subscribed_apps",
        json={"override_callback_uri": "https://hooks.example/wa", "verify_token": "v"},
        headers=auth,
    )

    item = graph.get(f"/{business.waba_id}/subscribed_apps", headers=auth).json()["data"][0]
    assert item["override_callback_uri"] == "https://hooks.example/wa"


def test_unsubscribe_removes_the_subscription(
    sandbox: Sandbox, graph: httpx.Client, business: Business, auth: dict[str, str]
) -> None:
    """DELETE subscribed_apps ends the subscription."""
    graph.post(f"/{business.waba_id}/subscribed_apps", headers=auth)

    assert graph.delete(f"/{business.waba_id}/subscribed_apps", headers=auth).json() == {
        "success": True
    }
    assert not sandbox.is_subscribed(business.waba_id)


def test_register_on_coexistence_number_is_refused_and_counted(
    sandbox: Sandbox, graph: httpx.Client, business: Business, auth: dict[str, str]
) -> None:
    """Registering a Business app number is refused with code 100 and counted."""
    response = graph.post(
        f"/{business.phone_number_ids[0]}/register",
        json={"messaging_product": "whatsapp", "pin": "123456"},
        headers=auth,
    )

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == 100
    assert "WhatsApp Business app" in error["message"]
    assert "must not be registered" in error["message"]
    assert sandbox.call_counts()["register"] == 1


def test_deregister_on_coexistence_number_is_refused_and_counted(
    sandbox: Sandbox, graph: httpx.Client, business: Business, auth: dict[str, str]
) -> None:
    """Deregistering a Business app number is refused with code 100 and counted."""
    response = graph.post(f"/{business.phone_number_ids[0]}/deregister", headers=auth)

    assert response.json()["error"]["code"] == 100
    assert sandbox.call_counts()["deregister"] == 1


def test_register_counter_starts_at_zero(sandbox: Sandbox, business: Business) -> None:
    """A fresh sandbox has counted no register or deregister calls."""
    counts = sandbox.call_counts()

    assert (counts["register"], counts["deregister"]) == (0, 0)


def test_register_on_cloud_api_number_succeeds(sandbox: Sandbox, graph: httpx.Client) -> None:
    """A number not on the Business app may be registered and then reports CLOUD_API."""
    cloud = sandbox.add_business("Cloud Only", 1, coexistence=False)
    headers = {"Authorization": f"Bearer {sandbox.issue_token(cloud.id)}"}
    number_id = cloud.phone_number_ids[0]

    response = graph.post(
        f"/{number_id}/register",
        json={"messaging_product": "whatsapp", "pin": "123456"},
        headers=headers,
    )

    assert response.json() == {"success": True}
    node = graph.get(f"/{number_id}", params={"fields": "platform_type"}, headers=headers)
    assert node.json()["platform_type"] == "CLOUD_API"


def test_post_without_body_removes_an_override(
    graph: httpx.Client, sandbox: Sandbox, business: Business, auth: dict[str, str]
) -> None:
    """As on Meta, POST subscribed_apps with an empty body removes the WABA's override."""
    sandbox.set_webhook_override(business.waba_id, "https://provider.example/wa", "pv-token")

    graph.post(f"/{business.waba_id}/subscribed_apps", headers=auth)

    item = graph.get(f"/{business.waba_id}/subscribed_apps", headers=auth).json()["data"][0]
    assert "override_callback_uri" not in item
    assert sandbox.webhook_override(business.waba_id) is None


def test_override_keeps_its_verify_token(sandbox: Sandbox, business: Business) -> None:
    """The sandbox remembers an override's verify token, as Meta does for its verification."""
    sandbox.set_webhook_override(business.waba_id, "https://provider.example/wa", "pv-token")

    assert sandbox.webhook_override(business.waba_id) == ("https://provider.example/wa", "pv-token")
    assert sandbox.is_subscribed(business.waba_id)
