"""The admin API (``/v1/admin``): every operator action over HTTP, answering as the CLI does,
with a real OpenAPI contract."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from models import Onboarding, SyncType
from onboarding.cli import app as cli
from onboarding.ingest.dispatch import process_delivery
from onboarding.ingest.inbox import receive
from onboarding.runtime import Runtime
from onboarding.sandbox import Sandbox
from onboarding.web import create_app
from tests.conftest import ADMIN_TOKEN, FEED_TOKEN

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
runner = CliRunner()


@pytest.fixture
def client(rt: Runtime) -> Iterator[TestClient]:
    with TestClient(create_app(rt)) as test_client:
        yield test_client


def cli_json(*argv: str) -> Any:
    result = runner.invoke(cli, [*argv, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": f"Bearer {FEED_TOKEN}"}, {"Authorization": "Bearer x"}],
    ids=["missing", "feed-token", "wrong"],
)
def test_only_the_admin_token_is_let_in(client: TestClient, headers: dict[str, str]) -> None:
    answer = client.get("/v1/admin/onboardings", headers=headers)
    assert answer.status_code == 401
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.headers["www-authenticate"] == "Bearer"


def test_listings_answer_what_the_cli_prints(client: TestClient, onboarding_id: int) -> None:
    """Onboardings, alerts, inbox, follow-ups and signups: the HTTP listing is the CLI's."""
    for path, argv in [
        ("/v1/admin/onboardings", ("onboardings", "list")),
        ("/v1/admin/alerts", ("alerts", "list")),
        ("/v1/admin/inbox", ("inbox", "list")),
        ("/v1/admin/follow-ups", ("follow-ups", "list")),
        ("/v1/admin/signups", ("signups", "list")),
    ]:
        answer = client.get(path, headers=ADMIN)
        assert answer.status_code == 200, (path, answer.text)
        assert answer.json() == cli_json(*argv), path
    listed = client.get("/v1/admin/onboardings", params={"state": "syncing"}, headers=ADMIN)
    assert [o["id"] for o in listed.json()] == [onboarding_id]
    other = client.get("/v1/admin/onboardings", params={"state": "failed"}, headers=ADMIN)
    assert other.json() == []


def test_show_is_the_cli_detail(client: TestClient, onboarding_id: int) -> None:
    answer = client.get(f"/v1/admin/onboardings/{onboarding_id}", headers=ADMIN).json()
    shown = cli_json("onboardings", "show", str(onboarding_id))
    for detail in (answer, shown):
        detail.pop("sync_window_seconds_left")
    assert answer == shown
    assert answer["timeline"][0]["from"] is None


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("/v1/admin/onboardings?state=nope", "query.state"),
        ("/v1/admin/onboardings?limit=0", "query.limit"),
        ("/v1/admin/onboardings?waba_id=12ab", "query.waba_id"),
        ("/v1/admin/onboardings/abc", "path.onboarding_id"),
        ("/v1/admin/onboardings/0", "path.onboarding_id"),
        ("/v1/admin/inbox?status=exploded", "query.status"),
    ],
)
def test_bad_parameters_are_problems_naming_the_field(
    client: TestClient, path: str, field: str
) -> None:
    answer = client.get(path, headers=ADMIN)
    assert answer.status_code == 422
    assert [e["field"] for e in answer.json()["errors"]] == [field]


def test_unknown_rows_are_404(client: TestClient) -> None:
    assert client.get("/v1/admin/onboardings/999", headers=ADMIN).json()["error"] == "not_found"
    assert client.post("/v1/admin/onboardings/999/retry", headers=ADMIN).status_code == 404
    assert client.post("/v1/admin/follow-ups/999/ack", headers=ADMIN).status_code == 404
    erase = client.post("/v1/admin/onboardings/999/erase", headers=ADMIN)
    assert (erase.status_code, erase.json()["error"]) == (404, "not_found")
    replay = client.post("/v1/admin/inbox/replay", json={"delivery_id": 999}, headers=ADMIN)
    assert replay.status_code == 404


def test_retry_refused_is_409_and_a_forced_retry_runs(
    client: TestClient, rt: Runtime, sandbox: Sandbox, onboarding_id: int
) -> None:
    """A retry that could double a one-shot call is refused with the reason; ``force``
    probes a sync whose answer was lost, as ``retry --force`` does."""
    refused = client.post(f"/v1/admin/onboardings/{onboarding_id}/retry", headers=ADMIN)
    assert refused.status_code == 409
    assert "nothing to retry" in refused.json()["detail"]
    with rt.db.session() as session:
        onboarding = session.get_one(Onboarding, onboarding_id)
        onboarding.sync(SyncType.HISTORY).state = "unknown"
        onboarding.sync(SyncType.HISTORY).request_id = None
    forced = client.post(
        f"/v1/admin/onboardings/{onboarding_id}/retry", json={"force": True}, headers=ADMIN
    )
    assert forced.status_code == 202, forced.text
    assert forced.json()["onboarding_id"] == onboarding_id
    with rt.db.sessionmaker() as session:
        assert session.get_one(Onboarding, onboarding_id).sync(SyncType.HISTORY).state == (
            "requested"
        )
    assert [s.sync_type for s in sandbox.accepted_syncs()].count("history") == 1


def test_replay_by_status_processes_the_deliveries_again(client: TestClient, rt: Runtime) -> None:
    with rt.db.session() as session:
        intake = receive(session, b"{broken")
        process_delivery(session, intake.delivery_id, settings=rt.settings)
    answer = client.post("/v1/admin/inbox/replay", json={"status": "quarantined"}, headers=ADMIN)
    assert answer.status_code == 202
    assert answer.json() == {"replayed": 1, "delivery_ids": [intake.delivery_id]}
    [row] = client.get("/v1/admin/inbox", headers=ADMIN).json()
    assert row["attempts"] == 2


@pytest.mark.parametrize(
    "body", [{}, {"delivery_id": 1, "status": "pending"}, {"status": "bogus"}, {"delivery_id": 0}]
)
def test_replay_needs_exactly_one_valid_selector(client: TestClient, body: dict[str, Any]) -> None:
    answer = client.post("/v1/admin/inbox/replay", json=body, headers=ADMIN)
    assert answer.status_code == 422
    assert answer.json()["error"] == "invalid_request"


def test_the_openapi_document_describes_every_route(rt: Runtime) -> None:
    """Each route is in ``/openapi.json`` with its methods; every operation declares its
    answer's schema, its path parameters, its bearer token (or is one of the open routes) with
    the ``401`` problem that refuses it, and its body where it takes one; every admin operation
    also its ``422``."""
    app = create_app(rt)
    with TestClient(app) as client:
        document = client.get("/openapi.json").json()
    candidates = [*app.routes, *(r for router in app.state.routers for r in router.routes)]
    routes = [r for r in candidates if isinstance(r, APIRoute) and r.include_in_schema]
    documented = {(path, m.upper()) for path, ops in document["paths"].items() for m in ops}
    served = {(r.path, m) for r in routes for m in r.methods}
    assert documented == served
    schemes = document["components"]["securitySchemes"]
    problem = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
    for route in routes:
        for method in route.methods:
            where = (method, route.path)
            operation = document["paths"][route.path][method.lower()]
            ok = next(v for k, v in operation["responses"].items() if k.startswith("2"))
            assert ok["content"], where
            assert all(media["schema"] for media in ok["content"].values()), where
            in_path = {p["name"] for p in operation.get("parameters", []) if p["in"] == "path"}
            assert in_path == set(re.findall(r"{(\w+)}", route.path)), where
            assert all(p["schema"] for p in operation.get("parameters", [])), where
            tokens = [name for need in operation.get("security", []) for name in need]
            if route.path in OPEN_ROUTES:
                assert tokens == [], where
            else:
                assert tokens, where
                assert set(tokens) <= set(schemes), where
                assert operation["responses"]["401"]["content"] == problem, where
            if route.body_field is not None:
                assert operation["requestBody"]["content"]["application/json"]["schema"], where
            if route.path.startswith("/v1/admin"):
                assert operation["responses"]["422"]["content"] == problem, where
    assert all(scheme["scheme"] == "bearer" for scheme in schemes.values())


#: The routes without a bearer token: Meta's webhooks (signed instead) and the health checks.
OPEN_ROUTES = {"/webhooks/meta", "/livez", "/readyz", "/healthz"}


def test_docs_are_served_unless_turned_off(rt: Runtime) -> None:
    with TestClient(create_app(rt)) as client:
        assert client.get("/docs").status_code == 200
    closed = Runtime(
        settings=rt.settings.model_copy(update={"api_docs": False}),
        db=rt.db,
        cipher=rt.cipher,
        graph=rt.graph,
    )
    with TestClient(create_app(closed)) as client:
        assert client.get("/docs").status_code == 404
        assert client.get("/openapi.json").status_code == 200
