"""The HTTP interface: POST /signup, GET /onboardings/{id}, /livez, /readyz, /healthz."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from models import AbandonedSignup, Database, Onboarding, OnboardingState, SyncState
from onboarding.runtime import ConfigurationError, Runtime
from onboarding.sandbox import Sandbox
from onboarding.web import create_app
from onboarding.web.health import broker_health
from tests.conftest import ADMIN_TOKEN, SIGNUP_TOKEN, make_settings

AUTH = {"Authorization": f"Bearer {SIGNUP_TOKEN}"}
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.fixture
def client(rt: Runtime) -> Iterator[TestClient]:
    with TestClient(create_app(rt)) as test_client:
        yield test_client


def finished_signup(sandbox: Sandbox) -> dict[str, Any]:
    business = sandbox.add_business("Lucky Shrub", ["+1 650 555 1234"])
    result = sandbox.complete_signup(business.waba_id)
    return {"code": result.code, "session": dict(result.session)}


def count(rt: Runtime, model: type) -> int:
    with rt.db.sessionmaker() as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


def test_signup_runs_the_whole_handoff(client: TestClient, rt: Runtime, sandbox: Sandbox) -> None:
    """A finished coexistence signup is answered 202 and ends with both syncs requested."""
    response = client.post("/signup", json=finished_signup(sandbox), headers=AUTH)
    assert response.status_code == 202
    onboarding_id = response.json()["onboarding_id"]
    assert response.json()["created"] is True
    detail = client.get(f"/onboardings/{onboarding_id}", headers=ADMIN).json()
    assert detail["state"] == OnboardingState.SYNCING
    assert detail["sync"]["contacts"]["state"] == SyncState.REQUESTED
    assert detail["sync"]["history"]["request_id"]
    assert [t["to"] for t in detail["timeline"]] == [
        "received",
        "token_exchanged",
        "subscribed",
        "syncing",
    ]
    assert detail["region"] == "US"
    assert sorted(s.sync_type for s in sandbox.accepted_syncs()) == [
        "history",
        "smb_app_state_sync",
    ]


def test_same_code_twice_is_the_same_onboarding(
    client: TestClient, rt: Runtime, sandbox: Sandbox
) -> None:
    """Posting the same code again returns the same onboarding and starts nothing new."""
    body = finished_signup(sandbox)
    first = client.post("/signup", json=body, headers=AUTH).json()
    second = client.post("/signup", json=body, headers=AUTH).json()
    assert second["onboarding_id"] == first["onboarding_id"]
    assert second["created"] is False
    assert count(rt, Onboarding) == 1
    assert sandbox.call_counts()["oauth"] == 1


def test_cancel_is_recorded_and_starts_nothing(
    client: TestClient, rt: Runtime, sandbox: Sandbox
) -> None:
    """A CANCEL with an error code is kept for support and no onboarding is created."""
    session = {
        "type": "WA_EMBEDDED_SIGNUP",
        "event": "CANCEL",
        "data": {
            "error_message": "Your verified name violates WhatsApp guidelines",
            "error_code": "524126",
            "session_id": "f34b51dab5e0498",
            "timestamp": "1746041036",
        },
    }
    response = client.post("/signup", json={"session": session}, headers=AUTH)
    assert response.status_code == 202
    assert "abandoned_signup_id" in response.json()
    with rt.db.sessionmaker() as db_session:
        row = db_session.scalars(select(AbandonedSignup)).one()
        assert (row.error_code, row.session_id) == ("524126", "f34b51dab5e0498")
        assert row.reported_at is not None
    assert count(rt, Onboarding) == 0
    assert sum(sandbox.call_counts().values()) == 0


def test_cancel_with_current_step_is_recorded(client: TestClient, rt: Runtime) -> None:
    """A CANCEL naming the last screen keeps that step."""
    session = {
        "type": "WA_EMBEDDED_SIGNUP",
        "event": "CANCEL",
        "data": {"current_step": "PHONE_NUMBER_SETUP"},
    }
    assert client.post("/signup", json={"session": session}, headers=AUTH).status_code == 202
    with rt.db.sessionmaker() as db_session:
        assert db_session.scalars(select(AbandonedSignup.current_step)).one() == (
            "PHONE_NUMBER_SETUP"
        )


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (
            {
                "session": {
                    "type": "WA_EMBEDDED_SIGNUP",
                    "event": "FINISH_WHATSAPP_BUSINESS_APP_ONBOARDING",
                    "data": {"waba_id": "524126980791429"},
                }
            },
            "code",
        ),
        (
            {
                "code": "AQx",
                "session": {"type": "WA_EMBEDDED_SIGNUP", "event": "FINISH", "data": {}},
            },
            "session.data.waba_id",
        ),
        (
            {
                "code": "AQx",
                "session": {
                    "type": "WA_EMBEDDED_SIGNUP",
                    "event": "FINISH",
                    "data": {"waba_id": "12ab"},
                },
            },
            "session.data.waba_id",
        ),
        (
            {
                "code": "AQx",
                "session": {"type": "OTHER", "event": "FINISH", "data": {"waba_id": "1"}},
            },
            "session.type",
        ),
        (
            {
                "code": "AQx",
                "session": {
                    "type": "WA_EMBEDDED_SIGNUP",
                    "event": "FINISH_WITH_SOMETHING_NEW",
                    "data": {"waba_id": "1"},
                },
            },
            "session",
        ),
        (
            {
                "code": 5,
                "session": {
                    "type": "WA_EMBEDDED_SIGNUP",
                    "event": "FINISH",
                    "data": {"waba_id": "1"},
                },
            },
            "code",
        ),
        ({"code": "AQx"}, "session"),
        (
            {
                "code": "AQx",
                "session": {
                    "type": "WA_EMBEDDED_SIGNUP",
                    "event": "FINISH",
                    "data": {"waba_id": "1"},
                },
                "extra": 1,
            },
            "extra",
        ),
    ],
)
def test_bad_bodies_get_422_naming_the_field(
    client: TestClient, rt: Runtime, body: dict[str, Any], field: str
) -> None:
    """Each malformed signup body is refused with 422 naming the field, and nothing is stored."""
    response = client.post("/signup", json=body, headers=AUTH)
    assert response.status_code == 422
    fields = [e["field"] for e in response.json()["errors"]]
    assert field in fields
    assert count(rt, Onboarding) == 0


def test_non_json_body_is_422(client: TestClient) -> None:
    """A body that is not JSON is refused with 422."""
    response = client.post("/signup", content=b"{not json", headers=AUTH)
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "body"


def test_huge_body_is_413(client: TestClient, rt: Runtime) -> None:
    """A body over the limit is refused with 413 before it is parsed."""
    big = {"code": "A" * 10, "session": {"pad": "x" * (rt.settings.signup_max_body_bytes + 1)}}
    assert client.post("/signup", json=big, headers=AUTH).status_code == 413


@pytest.mark.parametrize("header", [None, "Bearer wrong", "Basic abc", f"bearer{SIGNUP_TOKEN}"])
def test_signup_requires_the_signup_token(
    client: TestClient, rt: Runtime, sandbox: Sandbox, header: str | None
) -> None:
    """Without the right bearer token the signup hook answers 401 and stores nothing."""
    headers = {"Authorization": header} if header else {}
    response = client.post("/signup", json=finished_signup(sandbox), headers=headers)
    assert response.status_code == 401
    assert count(rt, Onboarding) == 0


def test_admin_token_is_not_the_signup_token(client: TestClient) -> None:
    """The status API refuses the signup token and unknown ids are 404."""
    assert client.get("/onboardings/1", headers=AUTH).status_code == 401
    assert client.get("/onboardings/999", headers=ADMIN).status_code == 404


def test_healthz(client: TestClient) -> None:
    """Health answers ok while the database is reachable (tasks run in-process here)."""
    assert client.get("/healthz").json() == {"status": "ok", "database": "ok", "broker": "eager"}


@pytest.mark.parametrize(
    ("url", "expected"),
    [("redis://127.0.0.1:9/0", "unreachable"), ("memory://", "unchecked")],
)
def test_broker_health_reports_an_unreachable_redis(url: str, expected: str) -> None:
    """An unreachable Redis broker is reported, not raised; other brokers are not probed."""
    assert broker_health(url) == expected


def test_service_refuses_to_start_without_secrets(rt: Runtime) -> None:
    """The web app will not start without the app secret and its tokens."""
    bare = Runtime(
        settings=make_settings(meta_app_secret="", signup_token=""),
        db=rt.db,
        cipher=rt.cipher,
        graph=rt.graph,
    )
    with (
        pytest.raises(ConfigurationError, match="COEX_META_APP_SECRET"),
        TestClient(create_app(bare)),
    ):
        pass


def test_liveness_holds_and_readiness_fails_while_the_database_is_down(rt: Runtime) -> None:
    """With the database unreachable ``/livez`` still answers 200 (no restart of a healthy
    process), while ``/readyz`` and ``/healthz`` answer 503."""
    broken = Runtime(
        settings=rt.settings,
        db=Database("postgresql+psycopg://postgres@127.0.0.1:9/none", pool_pre_ping=False),
        cipher=rt.cipher,
        graph=rt.graph,
    )
    with TestClient(create_app(broken), raise_server_exceptions=False) as test_client:
        assert test_client.get("/livez").json() == {"status": "ok"}
        for path in ("/readyz", "/healthz"):
            answer = test_client.get(path)
            assert answer.status_code == 503
            assert answer.json()["database"] == "unreachable"


def test_readiness_reports_a_broker_outage_as_degraded_but_ready(rt: Runtime) -> None:
    """Deliveries are still stored while Redis is down: ready, and saying it is degraded."""
    cut_off = Runtime(
        settings=rt.settings.model_copy(
            update={"tasks_eager": False, "broker_url": "redis://127.0.0.1:9/0"}
        ),
        db=rt.db,
        cipher=rt.cipher,
        graph=rt.graph,
    )
    with TestClient(create_app(cut_off)) as test_client:
        answer = test_client.get("/readyz")
    assert answer.status_code == 200
    assert answer.json() == {"status": "degraded", "database": "ok", "broker": "unreachable"}


def test_database_down_answers_503(rt: Runtime, sandbox: Sandbox) -> None:
    """If the database is unreachable the signup hook answers 503 so the browser retries."""
    broken = Runtime(
        settings=rt.settings,
        db=Database("sqlite:////nonexistent/dir/x.db"),
        cipher=rt.cipher,
        graph=rt.graph,
    )
    with TestClient(create_app(broken), raise_server_exceptions=False) as test_client:
        response = test_client.post("/signup", json=finished_signup(sandbox), headers=AUTH)
    assert response.status_code == 503


@pytest.mark.parametrize(
    "event", ["FINISH_ONLY_WABA", "FINISH_OBO_MIGRATION", "FINISH_GRANT_ONLY_API_ACCESS"]
)
def test_other_finish_is_202_saying_it_is_not_onboarded(
    client: TestClient, rt: Runtime, sandbox: Sandbox, event: str
) -> None:
    """A finish of another flow is answered 202 naming its record and saying it is not onboarded."""
    business = sandbox.add_business("Lucky Shrub", ["+1 650 555 1234"])
    session = sandbox.finish_other_flow(business.waba_id, event)

    response = client.post("/signup", json={"code": "AQx", "session": session}, headers=AUTH)

    assert response.status_code == 202
    body = response.json()
    assert body["recorded_finish_id"] > 0
    assert (body["status"], body["event"], body["onboarded"], body["created"]) == (
        "recorded",
        event,
        False,
        True,
    )
    assert "not onboarded" in body["message"]
    assert count(rt, Onboarding) == 0
    assert sum(sandbox.call_counts().values()) == 0


def test_cancel_answer_says_it_was_not_onboarded(client: TestClient) -> None:
    """A CANCEL's 202 keeps abandoned_signup_id and says the event and that nothing onboarded."""
    session = {
        "type": "WA_EMBEDDED_SIGNUP",
        "event": "CANCEL",
        "data": {"current_step": "PHONE_NUMBER_SETUP"},
    }

    body = client.post("/signup", json={"session": session}, headers=AUTH).json()

    assert body["abandoned_signup_id"] > 0
    assert (body["status"], body["event"], body["onboarded"]) == ("recorded", "CANCEL", False)


def test_signups_api_lists_recorded_signups_newest_first(
    client: TestClient, sandbox: Sandbox
) -> None:
    """GET /signups lists abandoned and not-onboarded signups; kind filters them."""
    business = sandbox.add_business("Lucky Shrub", ["+1 650 555 1234"])
    client.post("/signup", json={"session": sandbox.cancel_signup()}, headers=AUTH)
    other = sandbox.finish_other_flow(business.waba_id, "FINISH_ONLY_WABA")
    client.post("/signup", json={"code": "AQx", "session": other}, headers=AUTH)

    listed = client.get("/signups", headers=ADMIN).json()
    only = client.get("/signups", params={"kind": "not_onboarded"}, headers=ADMIN).json()

    assert [(r["kind"], r["event"]) for r in listed] == [
        ("not_onboarded", "FINISH_ONLY_WABA"),
        ("abandoned", "CANCEL"),
    ]
    assert listed[0]["waba_id"] == business.waba_id
    assert listed[1]["current_step"] == "PHONE_NUMBER_SETUP"
    assert [r["event"] for r in only] == ["FINISH_ONLY_WABA"]


@pytest.mark.parametrize(
    ("params", "field"),
    [({"kind": "finished"}, "kind"), ({"limit": "0"}, "limit"), ({"limit": "9" * 50}, "limit")],
)
def test_signups_api_refuses_bad_query_naming_it(
    client: TestClient, params: dict[str, str], field: str
) -> None:
    """An unknown kind or a limit out of range is 422 naming the parameter."""
    response = client.get("/signups", params=params, headers=ADMIN)

    assert response.status_code == 422
    assert [e["field"] for e in response.json()["errors"]] == [field]


def test_signups_api_needs_the_admin_token(client: TestClient) -> None:
    """GET /signups without the admin bearer is 401."""
    assert client.get("/signups", headers=AUTH).status_code == 401
