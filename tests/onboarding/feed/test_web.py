"""``GET /v1/events``: the feed over HTTP, its token and its answers to bad queries."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from models import Database
from onboarding.feed.events import EventType, emit_for
from onboarding.runtime import Runtime
from onboarding.web import create_app
from tests.conftest import ADMIN_TOKEN, FEED_TOKEN

FEED = {"Authorization": f"Bearer {FEED_TOKEN}"}


@pytest.fixture
def client(rt: Runtime) -> Iterator[TestClient]:
    with TestClient(create_app(rt)) as test_client:
        yield test_client


def emit_many(db: Database, n: int, type: EventType = EventType.SYNC_PROGRESS) -> None:
    with db.session() as session:
        for i in range(n):
            emit_for(session, type, None, {"n": i})


def test_pages_follow_the_next_cursor_to_the_end(client: TestClient, rt: Runtime) -> None:
    emit_many(rt.db, 7)
    seen, cursor = [], None
    for _ in range(5):
        params = {"limit": "3"} | ({"after": cursor} if cursor else {})
        answer = client.get("/v1/events", params=params, headers=FEED)
        assert answer.status_code == 200
        page = answer.json()
        seen += [e["data"]["n"] for e in page["events"]]
        cursor = page["next_cursor"]
    assert seen == list(range(7))
    last = client.get("/v1/events", params={"after": cursor}, headers=FEED).json()
    assert last == {"events": [], "next_cursor": cursor}


def test_type_filter(client: TestClient, rt: Runtime) -> None:
    emit_many(rt.db, 2)
    emit_many(rt.db, 1, EventType.ALERT_RAISED)
    answer = client.get("/v1/events", params={"type": "alert.raised"}, headers=FEED).json()
    assert [e["type"] for e in answer["events"]] == ["alert.raised"]


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": f"Bearer {ADMIN_TOKEN}"}, {"Authorization": "Bearer nope"}],
    ids=["missing", "admin-token", "wrong"],
)
def test_only_the_feed_token_reads_the_feed(client: TestClient, headers: dict[str, str]) -> None:
    answer = client.get("/v1/events", headers=headers)
    assert answer.status_code == 401
    assert answer.json()["error"] == "unauthorized"


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"after": "yesterday"}, "after"),
        ({"limit": "1001"}, "limit"),
        ({"limit": "0"}, "limit"),
        ({"limit": "-5"}, "limit"),
        ({"onboarding_id": "abc"}, "onboarding_id"),
        ({"type": "message.sent_by_pigeon"}, "type"),
        ({"onboarding": "1"}, "onboarding"),
    ],
)
def test_a_bad_query_is_a_clear_400(client: TestClient, params: dict[str, str], field: str) -> None:
    answer = client.get("/v1/events", params=params, headers=FEED)
    assert answer.status_code == 400
    body = answer.json()
    assert body["error"] == "invalid_query"
    assert [e["field"] for e in body["errors"]] == [field]


def test_an_empty_feed_token_setting_refuses_every_reader(rt: Runtime) -> None:
    closed = replace(rt, settings=rt.settings.model_copy(update={"feed_token": SecretStr("")}))
    with TestClient(create_app(closed)) as client:
        assert client.get("/v1/events", headers={"Authorization": "Bearer "}).status_code == 401
