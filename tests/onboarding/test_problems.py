"""Every error answer is one shape: RFC 9457 ``application/problem+json``."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from models import Database
from onboarding.runtime import Runtime
from onboarding.web import create_app
from tests.conftest import ADMIN_TOKEN, SIGNUP_TOKEN

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
SIGNUP = {"Authorization": f"Bearer {SIGNUP_TOKEN}"}


@pytest.fixture
def client(rt: Runtime) -> Iterator[TestClient]:
    with TestClient(create_app(rt)) as test_client:
        yield test_client


def assert_problem(answer: Any, status: int, error: str) -> dict[str, Any]:
    assert answer.status_code == status
    assert answer.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = answer.json()
    assert body["type"] == "about:blank"
    assert body["status"] == status
    assert body["error"] == error
    assert body["title"]
    assert body["detail"]
    return body


@pytest.mark.parametrize(
    ("method", "path", "headers", "status", "error"),
    [
        ("GET", "/no/such/route", {}, 404, "not_found"),
        ("POST", "/healthz", {}, 405, "method_not_allowed"),
        ("GET", "/onboardings/1", {}, 401, "unauthorized"),
        ("GET", "/onboardings/999", ADMIN, 404, "not_found"),
        ("GET", "/v1/events?limit=0", {}, 401, "unauthorized"),
        ("GET", "/webhooks/meta?hub.mode=subscribe", {}, 403, "forbidden"),
    ],
)
def test_errors_of_every_kind_are_problems(
    client: TestClient,
    method: str,
    path: str,
    headers: dict[str, str],
    status: int,
    error: str,
) -> None:
    assert_problem(client.request(method, path, headers=headers), status, error)


def test_a_path_value_fastapi_cannot_read_names_its_field(client: TestClient) -> None:
    """``GET /onboardings/abc`` is a problem naming the path field, not FastAPI's ``detail``."""
    body = assert_problem(client.get("/onboardings/abc", headers=ADMIN), 422, "invalid_request")
    assert [e["field"] for e in body["errors"]] == ["path.onboarding_id"]
    assert "detail" in body
    assert not isinstance(body["detail"], list)


def test_an_unauthorized_answer_says_how_to_authenticate(client: TestClient) -> None:
    answer = client.get("/onboardings/1")
    assert_problem(answer, 401, "unauthorized")
    assert answer.headers["www-authenticate"] == "Bearer"


def test_signup_field_errors_keep_their_paths(client: TestClient) -> None:
    session = {
        "type": "WA_EMBEDDED_SIGNUP",
        "event": "FINISH_WHATSAPP_BUSINESS_APP_ONBOARDING",
        "data": {"waba_id": "not-an-id"},
    }
    body = assert_problem(
        client.post("/signup", json={"code": "", "session": session}, headers=SIGNUP),
        422,
        "invalid_body",
    )
    assert {e["field"] for e in body["errors"]} == {"code", "session.data.waba_id"}


def test_a_delivery_whose_signature_does_not_match_is_a_problem(client: TestClient) -> None:
    answer = client.post(
        "/webhooks/meta", content=b"{}", headers={"X-Hub-Signature-256": "sha256=00"}
    )
    assert_problem(answer, 401, "invalid_signature")


def test_a_body_over_the_limit_is_a_problem(rt: Runtime) -> None:
    small = Runtime(
        settings=rt.settings.model_copy(update={"signup_max_body_bytes": 1024}),
        db=rt.db,
        cipher=rt.cipher,
        graph=rt.graph,
    )
    with TestClient(create_app(small)) as client:
        answer = client.post("/signup", content=b"x" * 5000, headers=SIGNUP)
    body = assert_problem(answer, 413, "too_large")
    assert body["limit_bytes"] == 1024


def test_a_database_outage_is_a_problem_saying_when_to_retry(rt: Runtime) -> None:
    down = Runtime(
        settings=rt.settings,
        db=Database("postgresql+psycopg://postgres@127.0.0.1:9/none", pool_pre_ping=False),
        cipher=rt.cipher,
        graph=rt.graph,
    )
    with TestClient(create_app(down), raise_server_exceptions=False) as client:
        answer = client.get("/onboardings/1", headers=ADMIN)
    assert_problem(answer, 503, "unavailable")
    assert answer.headers["retry-after"] == "5"
