"""The webhook control routes, and an in-process sink feeding an ASGI app."""

from __future__ import annotations

import hmac
from collections.abc import Callable, Iterator
from hashlib import sha256
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request, Response
from fastapi.testclient import TestClient

from onboarding.sandbox import CollectingSink, Sandbox, WebhookDispatcher

APP_SECRET = "sandbox-app-secret"
Configure = Callable[..., WebhookDispatcher]


@pytest.fixture
def control(sandbox: Sandbox) -> Iterator[httpx.Client]:
    """A client for the control API; webhooks are disabled after the test."""
    with httpx.Client(
        transport=sandbox.mock_transport(), base_url="http://sandbox.local/_sandbox"
    ) as client:
        yield client
    sandbox.disable_webhooks()


def test_get_webhooks_before_configuration_is_empty(control: httpx.Client) -> None:
    """GET /webhooks answers null config and stats until webhooks are configured."""
    assert control.get("/webhooks").json() == {"config": None, "stats": None, "deliveries": []}


def test_put_webhooks_sets_the_config(control: httpx.Client, sandbox: Sandbox) -> None:
    """PUT /webhooks applies callback, mode, echoes, profile and delivery options."""
    body = {
        "callback_url": "http://127.0.0.1:9/meta",
        "mode": "declined",
        "echoes": 2,
        "envelope_less_decline": True,
        "profile": {"seed": 4, "contacts": 10, "phase_weights": [1, 1, 1]},
        "delivery": {"max_attempts": 2, "retry_delay": 0.01},
    }

    response = control.put("/webhooks", json=body)

    assert response.status_code == 200
    config = response.json()["config"]
    assert (config["callback_url"], config["mode"], config["echoes"]) == (
        "http://127.0.0.1:9/meta",
        "declined",
        2,
    )
    assert config["profile"]["contacts"] == 10
    assert config["profile"]["phase_weights"] == [1, 1, 1]
    assert config["delivery"]["max_attempts"] == 2
    assert response.json()["stats"]["queued"] == 0
    assert sandbox.webhooks is not None
    assert sandbox.webhooks.config.envelope_less_decline


@pytest.mark.parametrize(
    "body",
    [
        {"mode": "sometimes"},
        {"profile": {"chunk_size": 0}},
        {"profile": {"unknown": 1}},
        {"delivery": {"max_in_flight": 0}},
        {"callback_url": "not a url"},
    ],
)
def test_put_webhooks_refuses_bad_config(control: httpx.Client, body: dict[str, Any]) -> None:
    """An invalid webhook config is a 400."""
    response = control.put("/webhooks", json=body)

    assert response.status_code == 400
    assert response.json()["error"]["type"] == "SandboxControlError"


def test_delete_webhooks_disables_delivery(control: httpx.Client, sandbox: Sandbox) -> None:
    """DELETE /webhooks removes the dispatcher."""
    control.put("/webhooks", json={"callback_url": "http://127.0.0.1:9/meta"})

    assert control.delete("/webhooks").json() == {"success": True}
    assert sandbox.webhooks is None
    assert control.get("/webhooks").json()["config"] is None


def test_post_echoes_emits_now(
    control: httpx.Client, configure: Configure, sink: CollectingSink, subscribed_number: str
) -> None:
    """POST /echoes answers 202 with the echoes and delivers them."""
    dispatcher = configure(sink=sink)

    response = control.post("/echoes", json={"phone_number_id": subscribed_number, "count": 2})

    assert response.status_code == 202
    echoes = response.json()["message_echoes"]
    assert dispatcher.wait_idle(5)
    assert [v["message_echoes"][0] for v in sink.values("smb_message_echoes")] == echoes


def test_post_contacts_emits_now(
    control: httpx.Client, configure: Configure, sink: CollectingSink, subscribed_number: str
) -> None:
    """POST /contacts sends the change and answers its state_sync item."""
    dispatcher = configure(sink=sink)

    response = control.post(
        "/contacts",
        json={
            "phone_number_id": subscribed_number,
            "action": "remove",
            "phone_number": "16505551234",
        },
    )

    assert response.status_code == 202
    dispatcher.wait_idle(5)
    assert sink.values("smb_app_state_sync")[0]["state_sync"] == response.json()["state_sync"]


def test_emitting_without_a_target_is_409(control: httpx.Client, subscribed_number: str) -> None:
    """POST /echoes and /contacts need a configured webhook target."""
    echoes = control.post("/echoes", json={"phone_number_id": subscribed_number})
    contacts = control.post(
        "/contacts", json={"phone_number_id": subscribed_number, "action": "add"}
    )

    assert (echoes.status_code, contacts.status_code) == (409, 409)


@pytest.mark.parametrize(
    ("route", "body", "status"),
    [
        ("/echoes", {"phone_number_id": "999", "count": 1}, 404),
        ("/echoes", {"phone_number_id": "999", "count": 0}, 400),
        ("/contacts", {"phone_number_id": "999", "action": "rename"}, 400),
        ("/contacts", {"phone_number_id": "999", "action": "add", "phone_number": "+1 650"}, 400),
        ("/contacts", {"phone_number_id": "999", "action": "add"}, 404),
    ],
)
def test_emit_routes_validate_their_input(
    control: httpx.Client,
    configure: Configure,
    sink: CollectingSink,
    route: str,
    body: dict[str, Any],
    status: int,
) -> None:
    """Unknown numbers are 404; bad counts, actions and phone numbers are 400."""
    configure(sink=sink)

    assert control.post(route, json=body).status_code == status


def test_index_lists_the_webhook_routes(control: httpx.Client) -> None:
    """GET /_sandbox lists the webhook routes next to the existing ones."""
    routes = control.get("").json()["routes"]

    assert routes["/_sandbox/webhooks"] == ["DELETE", "GET", "PUT"]
    assert routes["/_sandbox/echoes"] == ["POST"]
    assert routes["/_sandbox/contacts"] == ["POST"]
    assert routes["/_sandbox/faults"] == ["GET", "PUT"]


def test_sink_can_feed_an_asgi_app(
    configure: Configure, subscribed_number: str, sync: Callable[[str, str], httpx.Response]
) -> None:
    """A sink posting into an ASGI test client delivers verifiable webhooks to the app."""
    received: list[str] = []
    app = FastAPI()

    @app.post("/webhooks/meta")
    async def webhook(request: Request) -> Response:
        body = await request.body()
        expected = "sha256=" + hmac.new(APP_SECRET.encode(), body, sha256).hexdigest()
        if not hmac.compare_digest(request.headers.get("x-hub-signature-256", ""), expected):
            return Response(status_code=401)
        received.append((await request.json())["entry"][0]["changes"][0]["field"])
        return Response(status_code=200)

    with TestClient(app) as client:

        def sink(body: bytes, headers: dict[str, str]) -> int:
            return client.post("/webhooks/meta", content=body, headers=headers).status_code

        dispatcher = configure(sink=sink)
        sync(subscribed_number, "smb_app_state_sync")
        assert dispatcher.wait_idle(10)

    assert received
    assert set(received) == {"smb_app_state_sync"}
    assert dispatcher.stats()["delivered"] == len(received)


def test_put_webhooks_accepts_flat_profile_and_delivery_fields(control: httpx.Client) -> None:
    """Profile and delivery fields may be given at the top level of PUT /webhooks."""
    body = {
        "callback_url": "http://127.0.0.1:9/meta",
        "seed": 9,
        "chunk_size": 10,
        "max_attempts": 2,
    }

    config = control.put("/webhooks", json=body).json()["config"]

    assert (config["profile"]["seed"], config["profile"]["chunk_size"]) == (9, 10)
    assert config["delivery"]["max_attempts"] == 2


def test_put_webhooks_refuses_a_field_given_twice(control: httpx.Client) -> None:
    """The same profile field flat and nested is a 400."""
    response = control.put("/webhooks", json={"seed": 1, "profile": {"seed": 2}})

    assert response.status_code == 400
