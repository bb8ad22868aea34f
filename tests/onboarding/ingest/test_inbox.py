"""The webhook receiver: handshake, signatures, persist-first, dedupe, quarantine."""

from __future__ import annotations

import time

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import func, select

from models import Database, InboxDelivery, InboxStatus, Message
from onboarding.meta.signatures import sign, signature_valid
from onboarding.runtime import Runtime
from onboarding.web import create_app
from tests.conftest import APP_SECRET, VERIFY_TOKEN
from tests.onboarding.deliveries import Business, chunk, signed, text

RECENT = int(time.time()) - 3 * 86_400


def inbox(rt: Runtime) -> list[InboxDelivery]:
    with rt.db.sessionmaker() as session:
        return list(session.scalars(select(InboxDelivery).order_by(InboxDelivery.id)))


def test_handshake_echoes_the_challenge(web: TestClient) -> None:
    """With the right verify token the raw challenge comes back with 200."""
    params = {
        "hub.mode": "subscribe",
        "hub.verify_token": VERIFY_TOKEN,
        "hub.challenge": "1158201444",
    }
    response = web.get("/webhooks/meta", params=params)
    assert response.status_code == 200
    assert response.text == "1158201444"


@pytest.mark.parametrize(
    "params",
    [
        {"hub.mode": "subscribe", "hub.verify_token": "wrong", "hub.challenge": "1"},
        {"hub.mode": "unsubscribe", "hub.verify_token": VERIFY_TOKEN, "hub.challenge": "1"},
        {"hub.mode": "subscribe", "hub.challenge": "1"},
        {},
    ],
)
def test_handshake_refuses_anything_else(web: TestClient, params: dict[str, str]) -> None:
    """A wrong token, mode or missing parameter gets 403."""
    assert web.get("/webhooks/meta", params=params).status_code == 403


def test_signature_check_is_hmac_sha256_of_the_raw_body() -> None:
    """Only sha256=<hex HMAC of the exact bytes with the app secret> is valid."""
    body = b'{"object":"whatsapp_business_account"}'
    good = sign(body, APP_SECRET)
    assert signature_valid(body, good, APP_SECRET)
    assert not signature_valid(body + b" ", good, APP_SECRET)
    assert not signature_valid(body, good.upper().replace("SHA256=", "sha1="), APP_SECRET)
    assert not signature_valid(body, "sha256=zz", APP_SECRET)
    assert not signature_valid(body, None, APP_SECRET)
    assert not signature_valid(body, good, "")


@pytest.mark.parametrize(
    "header",
    [None, "", "sha256=" + "0" * 64, "sha1=abcdef", "sha256=", "garbage"],
)
def test_unsigned_or_forged_deliveries_are_401_and_leave_nothing(
    web: TestClient, rt: Runtime, business: Business, header: str | None
) -> None:
    """A missing, malformed, wrong-algorithm or forged signature is 401 and nothing is stored."""
    raw, _ = signed(
        chunk(
            business,
            1,
            1,
            10,
            {"16505550000": [text("wamid.F", "16505550000", 1_700_000_000, "x")]},
        )
    )
    headers = {"X-Hub-Signature-256": header} if header is not None else {}
    response = web.post("/webhooks/meta", content=raw, headers=headers)
    assert response.status_code == 401
    assert inbox(rt) == []


def test_signed_delivery_is_stored_then_processed(
    web: TestClient, rt: Runtime, business: Business
) -> None:
    """A signed delivery is committed raw, answered 200 and processed."""
    raw, headers = signed(
        chunk(
            business,
            1,
            1,
            10,
            {"16505550000": [text("wamid.A", "16505550000", RECENT, "hello")]},
        )
    )
    response = web.post("/webhooks/meta", content=raw, headers=headers)
    assert response.status_code == 200
    [row] = inbox(rt)
    assert row.body == raw
    assert row.status == InboxStatus.PROCESSED
    assert row.onboarding_id == business.onboarding_id
    assert row.fields == "history"


def test_the_same_bytes_twice_are_stored_once(
    web: TestClient, rt: Runtime, business: Business
) -> None:
    """Meta's redelivery of identical bytes is answered 200 and counted, not stored twice."""
    raw, headers = signed(
        chunk(
            business,
            1,
            1,
            10,
            {"16505550000": [text("wamid.A", "16505550000", RECENT, "hello")]},
        )
    )
    for _ in range(3):
        assert web.post("/webhooks/meta", content=raw, headers=headers).status_code == 200
    [row] = inbox(rt)
    assert row.duplicates == 2
    with rt.db.sessionmaker() as session:
        assert session.scalar(select(func.count()).select_from(Message)) == 1


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"{not json", "not JSON"),
        (b"[]", "not an object"),
        (b'{"object":"page","entry":[]}', "'object'"),
        (b'{"object":"whatsapp_business_account","entry":[{"id":"x","changes":[]}]}', "WABA id"),
        (
            b'{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"field":"history","value":[]}]}]}',
            "value",
        ),
        (b"\xff\xfe", "UTF-8"),
    ],
)
def test_signed_malformed_bodies_are_quarantined_with_a_reason(
    web: TestClient, rt: Runtime, raw: bytes, reason: str
) -> None:
    """A signed body that cannot be a Meta delivery is kept as quarantined and answered 200."""
    _, headers = signed(raw)
    assert web.post("/webhooks/meta", content=raw, headers=headers).status_code == 200
    [row] = inbox(rt)
    assert row.status == InboxStatus.QUARANTINED
    assert reason in (row.last_error or "")


def test_oversized_delivery_is_413(web: TestClient, rt: Runtime) -> None:
    """A body above the configured limit is refused before it is read whole."""
    raw = b"x" * (rt.settings.webhook_max_body_bytes + 1)
    _, headers = signed(raw)
    assert web.post("/webhooks/meta", content=raw, headers=headers).status_code == 413
    assert inbox(rt) == []


def test_database_down_is_503_so_meta_redelivers(rt: Runtime) -> None:
    """When the inbox cannot be written the answer is 503: Meta will deliver again."""
    broken = Runtime(
        settings=rt.settings,
        db=Database("sqlite:////nonexistent/dir/x.db"),
        cipher=rt.cipher,
        graph=rt.graph,
    )
    raw, headers = signed(b'{"object":"whatsapp_business_account"}')
    with TestClient(create_app(broken), raise_server_exceptions=False) as client:
        assert client.post("/webhooks/meta", content=raw, headers=headers).status_code == 503


def test_handshake_accepts_the_override_verify_token(web: TestClient, rt: Runtime) -> None:
    """Meta verifies coexist's WABA override with its own token: that token passes too."""
    rt.settings = rt.settings.model_copy(
        update={
            "webhook_override_url": "https://coexist.example/webhooks/meta",
            "webhook_override_verify_token": SecretStr("override-verify-123"),
        }
    )
    params = {
        "hub.mode": "subscribe",
        "hub.verify_token": "override-verify-123",
        "hub.challenge": "42",
    }

    assert web.get("/webhooks/meta", params=params).text == "42"
