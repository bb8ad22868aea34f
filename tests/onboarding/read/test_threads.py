"""``GET /v1/onboardings/{id}/threads``: one thread per peer with messages, most recently
active first, with its last message and counts."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from fastapi.testclient import TestClient

from config import Settings
from models import Database
from models.crypto import TokenCipher
from onboarding.sandbox import Sandbox
from tests.onboarding.read.helpers import FEED, T0, message, onboarding, peer, walk


@dataclass
class World:
    onboarding_id: int
    #: Peers by name, in the order the threads must come (most recent last message first).
    expected: list[int]
    ana: int
    ben: int
    silent: int


@pytest.fixture
def world(db: Database, sandbox: Sandbox, settings: Settings, cipher: TokenCipher) -> World:
    """Seven threads (two tie on their last message's time), a peer with no message, a message
    with no peer, and another onboarding's thread."""
    with db.session() as session:
        oid = onboarding(session, sandbox, settings, cipher)
        other = onboarding(session, sandbox, settings, cipher)
        ana = peer(session, oid, phone="16505550001", name="Ana", username="ana")
        ben = peer(session, oid, user_id="US.13491208655302741918", name="Ben")
        message(session, oid, ana, "a1", 1, direction="inbound")
        message(session, oid, ana, "a2", 50, direction="outbound", source="app_echo")
        message(session, oid, ana, "a3", 3, direction="inbound")
        message(session, oid, ben, "b1", 10)
        last_minute = {}
        for i in range(5):
            p = peer(session, oid, phone=f"1650555010{i}")
            # Peers 2 and 3 end at the same minute: the higher peer id comes first.
            last_minute[p] = 20 + (2 if i == 3 else i)
            message(session, oid, p, f"p{i}", last_minute[p])
        silent = peer(session, oid, phone="16505550999")
        message(session, oid, None, "nobody", 99)
        message(session, other, peer(session, other, phone="16505550001"), "x1", 100)
    by_time = sorted(last_minute, key=lambda p: (last_minute[p], p), reverse=True)
    return World(oid, [ana, *by_time, ben], ana, ben, silent)


def url(world: World) -> str:
    return f"/v1/onboardings/{world.onboarding_id}/threads"


def test_threads_come_most_recent_first_each_once(client: TestClient, world: World) -> None:
    """Pages of three (the tie falls across a page boundary) give every peer with messages once,
    by last message time, ties by peer id; peers without messages and messages without a peer
    make no thread."""
    seen, pages = walk(client, url(world), "threads", limit="3")
    assert [t["peer"]["id"] for t in seen] == world.expected
    assert world.silent not in [t["peer"]["id"] for t in seen]
    assert pages == 3


def test_a_thread_shows_its_peer_last_message_and_counts(client: TestClient, world: World) -> None:
    """The peer's identifiers, the newest message (not the last inserted) and the counts by
    direction."""
    first = client.get(url(world), params={"limit": "1"}, headers=FEED).json()["threads"][0]
    assert first == {
        "peer": {
            "id": world.ana,
            "phone": "16505550001",
            "user_id": None,
            "username": "ana",
            "name": "Ana",
        },
        "last_message": {
            "wamid": "a2",
            "sent_at": "2026-11-01T12:50:00Z",
            "direction": "outbound",
            "type": "text",
            "text": "text of a2",
        },
        "counts": {"messages": 3, "inbound": 2, "outbound": 1},
    }


def test_the_last_message_text_is_an_excerpt_and_gone_when_revoked(
    client: TestClient, db: Database, world: World
) -> None:
    """A long last message shows its first 200 characters; a revoked one shows none."""
    with db.session() as session:
        message(session, world.onboarding_id, world.ben, "b2", 200, text_body="x" * 500)
        message(session, world.onboarding_id, world.ana, "a9", 199, revoked_at=T0, text_body=None)
    first, second = client.get(url(world), params={"limit": "2"}, headers=FEED).json()["threads"]
    assert first["last_message"]["text"] == "x" * 200
    assert second["last_message"]["wamid"] == "a9"
    assert second["last_message"]["text"] is None


def test_another_onboardings_threads_are_not_listed(client: TestClient, world: World) -> None:
    """Only the onboarding's own peers are its threads."""
    seen, _ = walk(client, url(world), "threads")
    assert "x1" not in {t["last_message"]["wamid"] for t in seen}
    assert len(seen) == len(world.expected)


def test_an_onboarding_without_messages_has_no_threads(
    client: TestClient, db: Database, sandbox: Sandbox, settings: Settings, cipher: TokenCipher
) -> None:
    """No messages: an empty list and no next cursor."""
    with db.session() as session:
        oid = onboarding(session, sandbox, settings, cipher)
    answer = client.get(f"/v1/onboardings/{oid}/threads", headers=FEED)
    assert answer.json() == {"threads": [], "next_cursor": None}


def test_threads_of_an_unknown_onboarding_are_404(client: TestClient, world: World) -> None:
    """An onboarding id nothing has is ``404``, not an empty list."""
    assert client.get("/v1/onboardings/424242/threads", headers=FEED).status_code == 404


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"after": "bm90IGEgY3Vyc29y"}, "after"),
        ({"limit": "-1"}, "limit"),
        ({"order": "asc"}, "order"),
    ],
)
def test_a_bad_query_is_a_clear_400(
    client: TestClient, world: World, params: dict[str, str], field: str
) -> None:
    """A cursor this listing did not make, a bad limit or a parameter it does not take."""
    answer = client.get(url(world), params=params, headers=FEED)
    assert answer.status_code == 400
    assert [e["field"] for e in answer.json()["errors"]] == [field]


def test_a_message_cursor_does_not_page_threads(client: TestClient, world: World) -> None:
    """Cursors name their listing: a messages cursor given to threads is refused."""
    messages = client.get(
        f"{url(world)}/{world.ana}/messages", params={"limit": "1"}, headers=FEED
    ).json()
    answer = client.get(url(world), params={"after": messages["next_cursor"]}, headers=FEED)
    assert answer.status_code == 400
