"""The feed on the real stack: a provider following ``GET /v1/events`` with the feed token
through a whole onboarding gets every stored message exactly once, with the steps around it."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from benchmarks._harness import CoexistApi, ManagedProcess, StackConfig, WebServer, describe
from models import Database, Message, MessageSource
from onboarding.feed.events import EventType
from onboarding.sandbox import Sandbox
from tests.integration._flow import (
    DELIVERY,
    ECHOES,
    PROFILE,
    callback,
    finished_signup,
    settled,
    start_onboarding,
)

pytestmark = pytest.mark.integration

#: How long the feed may lag behind the database once everything is stored: a write
#: transaction running anywhere in the cluster holds back what is readable while it runs.
FEED_DEADLINE = 30.0


@pytest.fixture(autouse=True)
def _ingest_stack(ingest_worker: ManagedProcess, sandbox: Sandbox) -> Iterator[None]:
    """The ingest worker runs, and no webhooks outlive the test."""
    if not ingest_worker.running:
        pytest.fail(f"{ingest_worker.name} exited:\n{ingest_worker.log_tail()}", pytrace=False)
    sandbox.disable_webhooks()
    yield
    sandbox.disable_webhooks()


@pytest.fixture
def feed(web: WebServer, stack_config: StackConfig) -> Iterator[httpx.Client]:
    """A provider's client of the feed, with the feed's bearer token."""
    with httpx.Client(
        base_url=web.url,
        timeout=10.0,
        trust_env=False,
        headers={"Authorization": f"Bearer {stack_config.feed_token}"},
    ) as client:
        yield client


def follow(
    feed: httpx.Client, cursor: str | None, onboarding_id: int
) -> tuple[list[dict[str, Any]], str | None]:
    """Every event readable now after ``cursor``, page by page, and where reading ended."""
    got: list[dict[str, Any]] = []
    while True:
        params: dict[str, Any] = {"onboarding_id": onboarding_id, "limit": 200}
        if cursor is not None:
            params["after"] = cursor
        answer = feed.get("/v1/events", params=params)
        assert answer.status_code == 200, answer.text
        page = answer.json()
        got += page["events"]
        cursor = page["next_cursor"]
        if not page["events"]:
            return got, cursor


def listed(events: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """(source, wamid) of every message the messages.stored events list."""
    return [
        (e["data"]["source"], m["wamid"])
        for e in events
        if e["type"] == EventType.MESSAGES_STORED
        for m in e["data"]["messages"]
    ]


def test_following_the_feed_through_an_onboarding_gets_every_message_once(
    api: CoexistApi, sandbox: Sandbox, db: Database, web: WebServer, feed: httpx.Client
) -> None:
    """Shuffled, duplicated history, late media and echoes: the feed lists each stored message
    once (history ones as history), tells the steps in order and ends with the sync
    completed and the onboarding synced."""
    assert feed.get("/v1/events", headers={"Authorization": "Bearer wrong"}).status_code == 401
    dispatcher = sandbox.configure_webhooks(
        callback_url=callback(web), profile=PROFILE, echoes=ECHOES, delivery=DELIVERY
    )
    onboarding_id = start_onboarding(api, finished_signup(sandbox))
    events, cursor = follow(feed, None, onboarding_id)  # while the onboarding runs
    detail = settled(api, db, onboarding_id, dispatcher)
    with db.sessionmaker() as session:
        stored: dict[str, str] = dict(session.execute(select(Message.wamid, Message.source)).all())
    deadline = time.monotonic() + FEED_DEADLINE
    while {w for _, w in listed(events)} != set(stored) and time.monotonic() < deadline:
        more, cursor = follow(feed, cursor, onboarding_id)
        events += more
        time.sleep(0.2)

    messages = listed(events)
    wamids = [w for _, w in messages]
    assert len(wamids) == len(set(wamids)), "a message was told twice"
    assert set(wamids) == set(stored), describe(detail)
    history = {w for w, source in stored.items() if source == MessageSource.HISTORY}
    assert history <= {w for source, w in messages if source == "history"}
    assert len(history) > 100
    ids = [e["id"] for e in events]
    assert len(ids) == len(set(ids))
    assert {(e["onboarding_id"], e["waba_id"]) for e in events} == {
        (onboarding_id, detail["waba_id"])
    }
    moves = [e["data"]["to"] for e in events if e["type"] == EventType.ONBOARDING_STATE_CHANGED]
    assert moves == ["received", "token_exchanged", "subscribed", "syncing", "synced"]
    types = [e["type"] for e in events]
    assert types.index(EventType.SYNC_COMPLETED) > types.index(EventType.MESSAGES_STORED)
    media_told = types.count(EventType.MEDIA_STORED) + types.count(EventType.MEDIA_SKIPPED)
    assert (
        media_told == detail["counts"]["media_stored"] + detail["counts"]["media_skipped_too_old"]
    )
