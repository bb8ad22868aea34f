"""``GET /debug_token``: the state of a business token, asked with the app token."""

from __future__ import annotations

import httpx

from onboarding.sandbox import Business, Sandbox
from tests.onboarding.sandbox.conftest import APP_ID, APP_SECRET

APP_TOKEN = {"Authorization": f"Bearer {APP_ID}|{APP_SECRET}"}


def test_live_token_is_valid_with_whatsapp_scopes(
    graph: httpx.Client, business: Business, token: str
) -> None:
    """A live business token answers is_valid true, expires_at 0 and the WhatsApp scopes."""
    response = graph.get("/debug_token", params={"input_token": token}, headers=APP_TOKEN)

    assert response.status_code == 200
    data = response.json()["data"]
    assert data["is_valid"] is True
    assert data["app_id"] == APP_ID
    assert data["expires_at"] == 0
    assert "whatsapp_business_messaging" in data["scopes"]


def test_revoked_token_is_answered_invalid_with_error_190(
    graph: httpx.Client, sandbox: Sandbox, business: Business, token: str
) -> None:
    """A revoked token is answered 200 with is_valid false and error code 190."""
    sandbox.revoke_tokens(business.id)

    data = graph.get("/debug_token", params={"input_token": token}, headers=APP_TOKEN).json()[
        "data"
    ]

    assert data["is_valid"] is False
    assert data["error"]["code"] == 190


def test_unknown_token_is_answered_invalid(graph: httpx.Client) -> None:
    """A token Meta never issued is is_valid false, not an HTTP error."""
    data = graph.get("/debug_token", params={"input_token": "EAAGnever"}, headers=APP_TOKEN)

    assert data.json()["data"]["is_valid"] is False


def test_business_token_cannot_debug_tokens(
    graph: httpx.Client, business: Business, token: str, auth: dict[str, str]
) -> None:
    """Asking with a business token instead of the app token is refused with code 100."""
    response = graph.get("/debug_token", params={"input_token": token}, headers=auth)

    assert response.status_code == 400
    assert response.json()["error"]["code"] == 100


def test_app_token_must_carry_proof_when_required(
    graph: httpx.Client, sandbox: Sandbox, business: Business, token: str
) -> None:
    """With "Require App Secret" on, the app token call needs its appsecret_proof too."""
    sandbox.set_require_appsecret_proof(True)

    response = graph.get("/debug_token", params={"input_token": token}, headers=APP_TOKEN)

    assert response.json()["error"]["message"] == (
        "API calls from the server require an appsecret_proof argument"
    )
