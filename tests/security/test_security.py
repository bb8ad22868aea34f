"""Security checks: secrets at rest and in logs, and refusing to start without secrets."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, text

from config.logging import configure_logging
from models import Message, Onboarding
from onboarding.runtime import ConfigurationError, Runtime
from onboarding.sandbox import DeliveryOptions, HistoryProfile, Sandbox
from onboarding.web import create_app
from tests.conftest import ADMIN_TOKEN, APP_SECRET, FEED_TOKEN, SIGNUP_TOKEN, make_settings


@pytest.fixture
def log_stream() -> Iterator[io.StringIO]:
    """Every log line, structlog's and the standard library's, as production writes them."""
    stream = io.StringIO()
    configure_logging("production", "DEBUG", static_secrets=[APP_SECRET], stream=stream)
    yield stream
    configure_logging("development", "WARNING")
    logging.getLogger().setLevel(logging.WARNING)


def onboard(rt: Runtime, sandbox: Sandbox, tmp_path: Path) -> tuple[str, int]:
    """A whole onboarding with history webhooks; returns (signup code, onboarding id)."""
    rt.settings.media_dir = tmp_path / "media"
    with TestClient(create_app(rt)) as client:
        dispatcher = sandbox.configure_webhooks(
            sink=lambda body, headers: (
                client.post("/webhooks/meta", content=body, headers=headers).status_code
            ),
            profile=HistoryProfile(seed=5, threads=4, messages_per_thread=10, contacts=5),
            echoes=2,
            delivery=DeliveryOptions(background=False),
        )
        business = sandbox.add_business("Lucky Shrub", ["+1 555 078 3881"])
        signup = sandbox.complete_signup(business.waba_id)
        response = client.post(
            "/signup",
            json={"code": signup.code, "session": dict(signup.session)},
            headers={"Authorization": f"Bearer {SIGNUP_TOKEN}"},
        )
        dispatcher.drain(30)
    onboarding_id: int = response.json()["onboarding_id"]
    return signup.code, onboarding_id


def business_token(rt: Runtime, onboarding_id: int) -> str:
    with rt.db.sessionmaker() as session:
        onboarding = session.get_one(Onboarding, onboarding_id)
        return rt.cipher.decrypt(onboarding.token_ciphertext or b"")


def test_no_secret_reaches_the_logs_of_a_full_onboarding(
    rt: Runtime, sandbox: Sandbox, tmp_path: Path, log_stream: io.StringIO
) -> None:
    """After signup, sync and history ingestion, no log line carries the signup code, the
    business token or the app secret."""
    code, onboarding_id = onboard(rt, sandbox, tmp_path)
    token = business_token(rt, onboarding_id)
    written = log_stream.getvalue()
    assert "token_exchanged" in written  # the run did log
    for secret in (code, token, APP_SECRET, SIGNUP_TOKEN):
        assert secret not in written


def test_no_plaintext_token_or_code_is_stored(
    rt: Runtime, sandbox: Sandbox, tmp_path: Path
) -> None:
    """A scan of every table's every column finds neither the business token nor the code."""
    code, onboarding_id = onboard(rt, sandbox, tmp_path)
    token = business_token(rt, onboarding_id)
    dump = io.BytesIO()
    with rt.db.engine.connect() as conn:
        tables = [
            r[0] for r in conn.execute(text("SELECT name FROM sqlite_master WHERE type='table'"))
        ]
        for table in tables:
            for row in conn.execute(text(f'SELECT * FROM "{table}"')):  # noqa: S608 - own tables
                for value in row:
                    dump.write(value if isinstance(value, bytes) else str(value).encode())
    content = dump.getvalue()
    assert content  # the scan saw data
    assert token.encode() not in content
    assert code.encode() not in content


@pytest.mark.parametrize(
    ("missing", "name"),
    [
        ({"meta_app_secret": ""}, "COEX_META_APP_SECRET"),
        ({"webhook_verify_token": ""}, "COEX_WEBHOOK_VERIFY_TOKEN"),
        ({"token_keys": ""}, "COEX_TOKEN_KEYS"),
        ({"signup_token": ""}, "COEX_SIGNUP_TOKEN"),
        ({"admin_token": ""}, "COEX_ADMIN_TOKEN"),
    ],
)
def test_the_web_app_refuses_to_start_without_its_secrets(
    rt: Runtime, missing: dict[str, str], name: str
) -> None:
    """Each secret the receiver needs is checked at start, by name."""
    bare = Runtime(settings=make_settings(**missing), db=rt.db, cipher=rt.cipher, graph=rt.graph)
    with pytest.raises(ConfigurationError, match=name), TestClient(create_app(bare)):
        pass


def test_no_answer_of_any_route_carries_a_secret(
    rt: Runtime, sandbox: Sandbox, tmp_path: Path
) -> None:
    """After a whole onboarding, every GET route an operator or the provider's product reads
    (admin API, read API, feed, console, health, metrics, OpenAPI) answers without the signup
    code, the business token, the app secret or any configured token or key."""
    code, onboarding_id = onboard(rt, sandbox, tmp_path)
    secrets = [code, business_token(rt, onboarding_id), *rt.settings.secret_values]
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    feed = {"Authorization": f"Bearer {FEED_TOKEN}"}
    with TestClient(create_app(rt)) as client:
        client.post("/console/login", data={"token": ADMIN_TOKEN})
        with rt.db.sessionmaker() as session:
            peer_id = session.scalars(
                select(Message.peer_id).where(Message.peer_id.is_not(None))
            ).first()
        answers = [
            client.get(path, headers=headers)
            for path, headers in [
                ("/openapi.json", {}),
                ("/livez", {}),
                ("/readyz", {}),
                ("/metrics", {}),
                (f"/onboardings/{onboarding_id}", admin),
                ("/signups", admin),
                ("/v1/admin/onboardings", admin),
                (f"/v1/admin/onboardings/{onboarding_id}", admin),
                ("/v1/admin/alerts", admin),
                ("/v1/admin/inbox", admin),
                ("/v1/admin/follow-ups", admin),
                ("/v1/events?limit=1000", feed),
                ("/v1/onboardings", feed),
                (f"/v1/onboardings/{onboarding_id}", feed),
                (f"/v1/onboardings/{onboarding_id}/threads", feed),
                (f"/v1/onboardings/{onboarding_id}/threads/{peer_id}/messages?limit=1000", feed),
                (f"/v1/onboardings/{onboarding_id}/contacts", feed),
                ("/console/onboardings", {}),
                (f"/console/onboardings/{onboarding_id}", {}),
                ("/console/inbox?status=processed", {}),
                ("/console/feed", {}),
            ]
        ]
    assert all(a.status_code == 200 for a in answers), [
        (str(a.url), a.status_code) for a in answers if a.status_code != 200
    ]
    for answer in answers:
        for secret in secrets:
            assert secret not in answer.text, str(answer.url)
