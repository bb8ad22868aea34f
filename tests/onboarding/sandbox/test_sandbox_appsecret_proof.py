"""The app setting "Require App Secret": calls carrying a token must carry appsecret_proof."""

from __future__ import annotations

import hashlib
import hmac

import httpx

from onboarding.sandbox import Business, Sandbox
from tests.onboarding.sandbox.conftest import APP_SECRET


def proof(token: str, secret: str = APP_SECRET) -> str:
    return hmac.new(secret.encode(), token.encode(), hashlib.sha256).hexdigest()


def test_without_the_setting_a_call_without_proof_is_answered(
    graph: httpx.Client, business: Business, auth: dict[str, str]
) -> None:
    """By default the sandbox, like a Meta app, answers calls that carry no proof."""
    response = graph.get(f"/{business.waba_id}/subscribed_apps", headers=auth)

    assert response.status_code == 200


def test_missing_proof_is_refused_with_metas_error(
    graph: httpx.Client, sandbox: Sandbox, business: Business, auth: dict[str, str]
) -> None:
    """With the setting on, a call without appsecret_proof gets Meta's code 100 error body."""
    sandbox.set_require_appsecret_proof(True)

    response = graph.get(f"/{business.waba_id}/subscribed_apps", headers=auth)

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == 100
    assert error["type"] == "GraphMethodException"
    assert error["message"] == "API calls from the server require an appsecret_proof argument"
    assert error["fbtrace_id"]


def test_wrong_proof_is_refused(
    graph: httpx.Client, sandbox: Sandbox, business: Business, token: str, auth: dict[str, str]
) -> None:
    """A proof keyed by another secret is refused as invalid, code 100."""
    sandbox.set_require_appsecret_proof(True)

    response = graph.get(
        f"/{business.waba_id}/subscribed_apps",
        params={"appsecret_proof": proof(token, "another-secret")},
        headers=auth,
    )

    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["code"], error["message"]) == (
        100,
        "Invalid appsecret_proof provided in the API argument",
    )


def test_right_proof_is_accepted_in_query_or_body(
    graph: httpx.Client, sandbox: Sandbox, business: Business, token: str, auth: dict[str, str]
) -> None:
    """The HMAC-SHA256 of the token keyed by the app secret passes, in the query or the body."""
    sandbox.set_require_appsecret_proof(True)

    read = graph.get(
        f"/{business.waba_id}/subscribed_apps",
        params={"appsecret_proof": proof(token)},
        headers=auth,
    )
    posted = graph.post(
        f"/{business.waba_id}/subscribed_apps",
        json={"appsecret_proof": proof(token)},
        headers=auth,
    )

    assert read.status_code == 200
    assert posted.json() == {"success": True}


def test_code_exchange_needs_no_proof(
    graph: httpx.Client, sandbox: Sandbox, business: Business
) -> None:
    """The code exchange carries client_secret and no token, so the setting does not apply."""
    sandbox.set_require_appsecret_proof(True)
    signup = sandbox.complete_signup(business.waba_id)

    response = graph.get(
        "/oauth/access_token",
        params={"client_id": sandbox.app_id, "client_secret": APP_SECRET, "code": signup.code},
    )

    assert response.status_code == 200
    assert response.json()["access_token"].startswith("EAAG")


def test_constructor_flag_requires_proof_from_the_start() -> None:
    """``Sandbox(require_appsecret_proof=True)`` starts with the setting on."""
    sandbox = Sandbox("1", "secret", require_appsecret_proof=True)

    assert sandbox.require_appsecret_proof is True
