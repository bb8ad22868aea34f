"""The Graph client's appsecret_proof, subscription reads and token debugging."""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import logging

import httpx
import pytest
import structlog

from config.logging import configure_logging
from onboarding.meta.errors import BadRequestError
from onboarding.meta.graph import GraphClient
from onboarding.sandbox import Sandbox

SECRET = "app-secret-value"
TOKEN = "EAAGbusinesstoken123"


def proof(token: str) -> str:
    return hmac.new(SECRET.encode(), token.encode(), hashlib.sha256).hexdigest()


def recording(seen: list[httpx.Request], body: object = None) -> httpx.MockTransport:
    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=body if body is not None else {"success": True})

    return httpx.MockTransport(handler)


def client(transport: httpx.BaseTransport, **kw: object) -> GraphClient:
    return GraphClient(
        app_id="1",
        app_secret=SECRET,
        transport=transport,
        max_wait=0.001,
        **kw,  # type: ignore[arg-type]
    )


def test_every_business_token_call_carries_the_proof() -> None:
    """Reads, subscribes, syncs and sends all carry appsecret_proof = HMAC(secret, token)."""
    seen: list[httpx.Request] = []
    graph = client(
        recording(
            seen, {"success": True, "data": [], "request_id": "1", "messages": [{"id": "wamid.1"}]}
        )
    )

    graph.get_phone_number("11", TOKEN, fields="id")
    graph.subscribed_apps("22", TOKEN)
    graph.subscribe_app("22", TOKEN)
    graph.request_sync("11", TOKEN, "history")
    graph.send_message("11", TOKEN, {"messaging_product": "whatsapp"})

    assert len(seen) == 5
    assert {r.url.params.get("appsecret_proof") for r in seen} == {proof(TOKEN)}


def test_paging_keeps_its_cursor_and_adds_the_proof() -> None:
    """Following paging.next keeps the URL's own query and still sends the proof."""
    pages = {
        None: {
            "data": [{"id": "1"}],
            "paging": {"next": "https://graph.facebook.com/v25.0/9/phone_numbers?after=A"},
        },
        "A": {"data": [{"id": "2"}]},
    }
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=pages[request.url.params.get("after")])

    graph = client(httpx.MockTransport(handler))
    assert [n["id"] for n in graph.list_phone_numbers("9", TOKEN, fields="id")] == ["1", "2"]
    assert seen[1].url.params["after"] == "A"
    assert all(r.url.params["appsecret_proof"] == proof(TOKEN) for r in seen)


def test_code_exchange_carries_no_proof() -> None:
    """The code exchange has no token to hash: client_secret only."""
    seen: list[httpx.Request] = []
    graph = client(recording(seen, {"access_token": TOKEN}))

    graph.exchange_code("AQcode123")

    assert "appsecret_proof" not in seen[0].url.params
    assert seen[0].url.params["client_secret"] == SECRET


def test_debug_token_uses_the_app_token_with_its_proof() -> None:
    """debug_token asks with the app token (id|secret) and that token's proof."""
    seen: list[httpx.Request] = []
    graph = client(recording(seen, {"data": {"is_valid": True}}))

    assert graph.debug_token(TOKEN) == {"is_valid": True}

    request = seen[0]
    assert request.url.path == "/v25.0/debug_token"
    assert request.url.params["input_token"] == TOKEN
    assert request.headers["authorization"] == f"Bearer 1|{SECRET}"
    assert request.url.params["appsecret_proof"] == proof(f"1|{SECRET}")


def test_proof_can_be_turned_off() -> None:
    """With send_appsecret_proof off, no call carries the proof."""
    seen: list[httpx.Request] = []
    graph = client(recording(seen), send_appsecret_proof=False)

    graph.subscribe_app("22", TOKEN)

    assert "appsecret_proof" not in seen[0].url.params


def test_subscribe_with_override_posts_uri_and_verify_token() -> None:
    """An override is posted as override_callback_uri and verify_token, never an empty body."""
    seen: list[httpx.Request] = []
    graph = client(recording(seen))

    graph.subscribe_app("22", TOKEN, override=("https://hooks.example/wa", "vt-123456"))

    assert json.loads(seen[0].content) == {
        "override_callback_uri": "https://hooks.example/wa",
        "verify_token": "vt-123456",
    }


def test_sandbox_requiring_proof_answers_the_client() -> None:
    """Against a sandbox requiring the proof, the client's calls succeed; without it, 100."""
    sandbox = Sandbox("1", SECRET, require_appsecret_proof=True, seed=3)
    business = sandbox.add_business("Lucky Shrub", 1)
    token = sandbox.issue_token(business.id)
    with_proof = client(sandbox.mock_transport())
    without = client(sandbox.mock_transport(), send_appsecret_proof=False)

    assert with_proof.subscribed_apps(business.waba_id, token) == []
    assert with_proof.debug_token(token)["is_valid"] is True
    with pytest.raises(BadRequestError) as refused:
        without.subscribed_apps(business.waba_id, token)
    assert refused.value.code == 100
    assert "appsecret_proof" in refused.value.message


def test_proof_and_tokens_never_reach_the_log_lines() -> None:
    """Neither the proof, the token nor the app secret is logged, httpx's request lines included."""
    stream = io.StringIO()
    configure_logging("production", "DEBUG", static_secrets=[SECRET], stream=stream)
    logging.getLogger("httpx").setLevel(logging.INFO)  # its request lines carry the query
    try:
        sandbox = Sandbox("1", SECRET, require_appsecret_proof=True, seed=3)
        business = sandbox.add_business("Lucky Shrub", 1)
        token = sandbox.issue_token(business.id)
        graph = client(sandbox.mock_transport())
        graph.subscribed_apps(business.waba_id, token)
        graph.debug_token(token)
        with pytest.raises(BadRequestError):  # logged as graph_error
            client(sandbox.mock_transport(), send_appsecret_proof=False).debug_token(token)
        structlog.get_logger().info("probe", url=f"https://x/?appsecret_proof={proof(token)}")
    finally:
        configure_logging("development", "WARNING")
    text = stream.getvalue()
    assert "HTTP Request: GET" in text
    assert "graph_error" in text
    for secret in (token, proof(token), proof(f"1|{SECRET}"), SECRET):
        assert secret not in text
