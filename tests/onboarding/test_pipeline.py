"""The whole second half in-process: the sandbox's generated business, delivered as Meta's
signed webhooks into the receiver, ingested, and its recent media downloaded."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from models import MediaState, Message, Onboarding
from onboarding.feed.events import EventType
from onboarding.feed.log import MAX_LIMIT, Cursor, read
from onboarding.runtime import Runtime
from onboarding.sandbox import DeliveryOptions, HistoryGenerator, HistoryProfile, Sandbox
from onboarding.views import onboarding_detail
from onboarding.web import create_app
from tests.conftest import SIGNUP_TOKEN

DAY = 86_400.0
PROFILE = HistoryProfile(seed=3, threads=12, messages_per_thread=15, contacts=20, chunk_size=20)


def expected(sandbox: Sandbox, phone_number_id: str, onboarded_at: float) -> dict[str, Any]:
    """An independent oracle: apply coexist's rules to the generator's messages."""
    generator = HistoryGenerator(PROFILE, sandbox.number_context(phone_number_id))
    out: dict[str, Any] = {"group": 0, "window": 0, "media_recent": 0, "media_old": 0}
    seen: set[str] = set()
    for thread_id, message in generator.messages():
        if not (thread_id.isdigit() and 6 <= len(thread_id) <= 15):
            out["group"] += 1
            continue
        age = (onboarded_at - int(message["timestamp"])) / DAY
        if age > 180:
            out["window"] += 1
            continue
        if message["id"] in seen:
            continue
        seen.add(message["id"])
        if message["type"] == "media_placeholder":
            out["media_recent" if age <= 14 else "media_old"] += 1
    out["wamids"] = seen
    return out


@pytest.fixture
def flow(
    rt: Runtime, sandbox: Sandbox, tmp_path: Path
) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    rt.settings.media_dir = tmp_path / "media"
    with TestClient(create_app(rt)) as client:

        def sink(body: bytes, headers: dict[str, str]) -> int:
            return client.post("/webhooks/meta", content=body, headers=headers).status_code

        dispatcher = sandbox.configure_webhooks(
            sink=sink,
            profile=PROFILE,
            echoes=4,
            delivery=DeliveryOptions(background=False),
        )
        business = sandbox.add_business("Lucky Shrub", ["+1 555 078 3881"])
        signup = sandbox.complete_signup(business.waba_id)
        onboarded_at = time.time()
        response = client.post(
            "/signup",
            json={"code": signup.code, "session": dict(signup.session)},
            headers={"Authorization": f"Bearer {SIGNUP_TOKEN}"},
        )
        assert response.status_code == 202
        dispatcher.drain(30)
        assert dispatcher.stats()["failed"] == 0
        with rt.db.sessionmaker() as session:
            onboarding = session.get_one(Onboarding, response.json()["onboarding_id"])
            detail = onboarding_detail(session, onboarding)
        yield detail, expected(sandbox, business.phone_number_ids[0], onboarded_at)


def test_every_in_window_message_is_stored_once(
    rt: Runtime, flow: tuple[dict[str, Any], dict[str, Any]]
) -> None:
    """Shuffled, duplicated chunks end in exactly the messages Meta's rules allow."""
    detail, oracle = flow
    counts = detail["counts"]
    with rt.db.sessionmaker() as session:
        stored = {
            row.wamid: row.source for row in session.execute(select(Message.wamid, Message.source))
        }
    assert oracle["wamids"] <= set(stored)
    extra = set(stored) - oracle["wamids"]  # echoes of messages sent after the history
    assert all(stored[w] == "app_echo" for w in extra)
    assert counts["messages"] == len(oracle["wamids"]) + len(extra)
    assert counts["dropped_group"] == oracle["group"]
    assert counts["dropped_out_of_window"] == oracle["window"]


def test_history_completes_and_the_onboarding_is_synced(
    flow: tuple[dict[str, Any], dict[str, Any]],
) -> None:
    """All chunks arrive, progress reaches 100 with no gap, and the onboarding is synced."""
    detail, _ = flow
    history = detail["sync"]["history"]
    assert history["state"] == "completed"
    assert history["progress"] == 100
    assert all(not phase["missing"] for phase in history["phases"].values())
    assert detail["state"] == "synced"


def test_recent_media_is_downloaded_and_old_media_skipped(
    rt: Runtime, flow: tuple[dict[str, Any], dict[str, Any]]
) -> None:
    """Media within 14 days is stored by content hash; older media is skipped with a reason."""
    detail, oracle = flow
    counts = detail["counts"]
    assert counts["media_skipped_too_old"] == oracle["media_old"]
    assert counts["media_stored"] == oracle["media_recent"]
    assert counts["media_awaiting"] == 0
    with rt.db.sessionmaker() as session:
        stored = session.scalars(
            select(Message).where(Message.media_state == MediaState.STORED.value)
        ).all()
    assert stored
    for message in stored:
        content = Path(message.media_path or "").read_bytes()
        assert hashlib.sha256(content).hexdigest() == Path(message.media_path or "").name
        assert len(content) == message.media_size


def test_contacts_and_echoes_arrive(flow: tuple[dict[str, Any], dict[str, Any]]) -> None:
    """The address book lands (removals counted apart) and app echoes are mirrored."""
    detail, _ = flow
    counts = detail["counts"]
    assert counts["contacts"] + counts["contacts_removed"] == PROFILE.contacts
    assert counts["contacts_removed"] >= 1
    assert counts["app_echoes"] == 4
    assert detail["last_app_activity_at"] is not None


def test_the_feed_tells_the_whole_onboarding_in_order(
    rt: Runtime, flow: tuple[dict[str, Any], dict[str, Any]]
) -> None:
    """The feed tells the onboarding's steps in order, every stored message exactly once, each
    media's fate and the history's completion."""
    detail, oracle = flow
    with rt.db.sessionmaker() as session:
        told = read(session, Cursor(), MAX_LIMIT).events
        stored = set(session.scalars(select(Message.wamid)))
    assert len(told) < MAX_LIMIT
    types = [e["type"] for e in told]
    moves = [e["data"]["to"] for e in told if e["type"] == EventType.ONBOARDING_STATE_CHANGED]
    assert moves == ["received", "token_exchanged", "subscribed", "syncing", "synced"]
    milestones = [
        types.index(EventType.ONBOARDING_STATE_CHANGED),
        types.index(EventType.SYNC_REQUESTED),
        types.index(EventType.MESSAGES_STORED),
        types.index(EventType.SYNC_COMPLETED),
    ]
    assert milestones == sorted(milestones)
    listed = [
        m["wamid"]
        for e in told
        if e["type"] == EventType.MESSAGES_STORED
        for m in e["data"]["messages"]
    ]
    assert len(listed) == len(set(listed))
    assert set(listed) == stored
    assert types.count(EventType.MEDIA_STORED) == oracle["media_recent"]
    assert types.count(EventType.MEDIA_SKIPPED) == oracle["media_old"]
    progress = [e["data"]["progress"] for e in told if e["type"] == EventType.SYNC_PROGRESS]
    assert progress == sorted(progress)
    assert progress[-1] == 100
    assert EventType.CONTACTS_UPSERTED in types
    assert {e["onboarding_id"] for e in told} == {detail["id"]}
