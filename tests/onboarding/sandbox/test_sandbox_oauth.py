"""The code exchange: ``GET /{ver}/oauth/access_token``."""

from __future__ import annotations

import re
from collections.abc import Callable

import httpx
from freezegun import freeze_time

from onboarding.sandbox import Business, Sandbox

Exchange = Callable[..., httpx.Response]


def test_exchange_returns_a_bearer_business_token(
    sandbox: Sandbox, business: Business, exchange: Exchange
) -> None:
    """A fresh code is exchanged for an EAAG business token of type bearer."""
    response = exchange(sandbox.complete_signup(business.waba_id).code)

    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "bearer"
    assert re.fullmatch(r"EAAG[A-Za-z0-9_\-]{40}", body["access_token"])


def test_exchange_answers_json_with_graph_content_type(
    sandbox: Sandbox, business: Business, exchange: Exchange
) -> None:
    """The exchange answers with Graph's JSON content type and API version header."""
    response = exchange(sandbox.complete_signup(business.waba_id).code)

    assert response.headers["content-type"] == "application/json; charset=UTF-8"
    assert response.headers["facebook-api-version"] == "v25.0"


def test_token_reads_its_own_business_waba(
    sandbox: Sandbox, business: Business, exchange: Exchange, graph: httpx.Client
) -> None:
    """The exchanged token can read the WABA of the business that signed up."""
    token = exchange(sandbox.complete_signup(business.waba_id).code).json()["access_token"]

    response = graph.get(
        f"/{business.waba_id}/phone_numbers", headers={"Authorization": f"Bearer {token}"}
    )

    assert response.status_code == 200


def test_token_cannot_see_another_business_waba(
    sandbox: Sandbox, business: Business, exchange: Exchange, graph: httpx.Client
) -> None:
    """A token of one business gets code 100 subcode 33 on another business's WABA."""
    other = sandbox.add_business("Other Shop", 1)
    token = exchange(sandbox.complete_signup(business.waba_id).code).json()["access_token"]

    response = graph.get(
        f"/{other.waba_id}/phone_numbers", headers={"Authorization": f"Bearer {token}"}
    )

    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["code"], error["error_subcode"]) == (100, 33)
    assert error["type"] == "GraphMethodException"
    assert f"Object with ID '{other.waba_id}' does not exist" in error["message"]


def test_wrong_client_id_is_code_101(
    sandbox: Sandbox, business: Business, exchange: Exchange
) -> None:
    """An exchange with another app's id is refused with code 101."""
    response = exchange(sandbox.complete_signup(business.waba_id).code, client_id="999")

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == 101
    assert error["message"] == "Error validating application. Invalid application ID."
    assert error["type"] == "OAuthException"


def test_wrong_client_secret_is_code_1(
    sandbox: Sandbox, business: Business, exchange: Exchange
) -> None:
    """An exchange with a wrong app secret is refused with code 1."""
    response = exchange(sandbox.complete_signup(business.waba_id).code, client_secret="nope")

    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["code"], error["message"]) == (1, "Error validating client secret.")


def test_missing_code_parameter_is_code_100(graph: httpx.Client, sandbox: Sandbox) -> None:
    """An exchange without a code is refused with code 100 naming the parameter."""
    response = graph.get(
        "/oauth/access_token",
        params={"client_id": sandbox.app_id, "client_secret": "sandbox-app-secret"},
    )

    error = response.json()["error"]
    assert (error["code"], error["message"]) == (100, "Missing code parameter.")


def test_unknown_code_is_subcode_36008(exchange: Exchange) -> None:
    """A code the sandbox never minted is refused with subcode 36008."""
    error = exchange("AQnot-a-real-code").json()["error"]

    assert (error["code"], error["error_subcode"]) == (100, 36008)
    assert error["message"] == "Invalid verification code format."


def test_code_is_valid_for_exactly_30_seconds(
    sandbox: Sandbox, business: Business, exchange: Exchange
) -> None:
    """A code exchanged 30 s after signup still works."""
    code = sandbox.complete_signup(business.waba_id).code
    sandbox.advance_clock(30)

    assert exchange(code).status_code == 200


def test_code_older_than_30_seconds_is_subcode_36007(
    sandbox: Sandbox, business: Business, exchange: Exchange
) -> None:
    """A code exchanged 31 s after signup is refused with subcode 36007."""
    code = sandbox.complete_signup(business.waba_id).code
    sandbox.advance_clock(31)

    error = exchange(code).json()["error"]
    assert (error["code"], error["error_subcode"]) == (100, 36007)
    assert error["message"] == "This authorization code has expired."


def test_code_expiry_follows_freezegun() -> None:
    """With the default clock, freezegun moves the sandbox's time and expires the code."""
    with freeze_time("2026-06-01 12:00:00") as frozen:
        sandbox = Sandbox("42", "secret")
        business = sandbox.add_business("Frozen Shop", 1)
        code = sandbox.complete_signup(business.waba_id).code
        frozen.tick(31)
        with httpx.Client(transport=sandbox.mock_transport()) as client:
            response = client.get(
                "https://graph.facebook.com/v25.0/oauth/access_token",
                params={"client_id": "42", "client_secret": "secret", "code": code},
            )

    assert response.json()["error"]["error_subcode"] == 36007


def test_code_ttl_is_configurable(clock: Callable[[], float]) -> None:
    """A sandbox built with code_ttl=5 refuses a code after 6 s."""
    sandbox = Sandbox("42", "secret", clock=clock, code_ttl=5)
    business = sandbox.add_business("Quick Shop", 1)
    code = sandbox.complete_signup(business.waba_id).code
    sandbox.advance_clock(6)

    with httpx.Client(transport=sandbox.mock_transport()) as client:
        response = client.get(
            "https://graph.facebook.com/v21.0/oauth/access_token",
            params={"client_id": "42", "client_secret": "secret", "code": code},
        )

    assert response.json()["error"]["error_subcode"] == 36007


def test_code_exchanged_twice_is_subcode_36009(
    sandbox: Sandbox, business: Business, exchange: Exchange
) -> None:
    """A code exchanged twice is refused with subcode 36009."""
    code = sandbox.complete_signup(business.waba_id).code
    assert exchange(code).status_code == 200

    error = exchange(code).json()["error"]
    assert (error["code"], error["error_subcode"]) == (100, 36009)
    assert error["message"] == "This authorization code has been used."
