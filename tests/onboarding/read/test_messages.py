"""``GET /v1/onboardings/{id}/threads/{peer_id}/messages``: a thread's messages in time order,
either way, with edit, revoke and media state."""

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
class Thread:
    onboarding_id: int
    peer_id: int
    #: Wamids in time order (ties by id).
    wamids: list[str]

    @property
    def url(self) -> str:
        return f"/v1/onboardings/{self.onboarding_id}/threads/{self.peer_id}/messages"


@pytest.fixture
def thread(db: Database, sandbox: Sandbox, settings: Settings, cipher: TokenCipher) -> Thread:
    """Eleven messages, three of them at the same minute, inserted out of time order; another
    peer's messages next to them."""
    minutes = [5, 1, 9, 3, 3, 3, 7, 2, 8, 6, 4]
    with db.session() as session:
        oid = onboarding(session, sandbox, settings, cipher)
        pid = peer(session, oid, phone="16505550001")
        other = peer(session, oid, phone="16505550002")
        ids = {}
        for i, minute in enumerate(minutes):
            ids[f"m{i}"] = (minute, message(session, oid, pid, f"m{i}", minute))
            message(session, oid, other, f"o{i}", minute)
    return Thread(oid, pid, sorted(ids, key=lambda w: ids[w]))


def test_ascending_walk_gives_every_message_once_in_time_order(
    client: TestClient, thread: Thread
) -> None:
    """Pages of three, oldest first: each message exactly once, ties in time by id."""
    seen, pages = walk(client, thread.url, "messages", limit="3", order="asc")
    assert [m["wamid"] for m in seen] == thread.wamids
    assert pages == 4


def test_descending_walk_gives_every_message_once_newest_first(
    client: TestClient, thread: Thread
) -> None:
    """The default order is newest first; the walk is the ascending one reversed."""
    seen, _ = walk(client, thread.url, "messages", limit="3")
    assert [m["wamid"] for m in seen] == thread.wamids[::-1]


def test_one_row_pages_walk_the_whole_thread(client: TestClient, thread: Thread) -> None:
    """``limit=1`` steps through every message, whatever the ties."""
    seen, pages = walk(client, thread.url, "messages", limit="1", order="asc")
    assert [m["wamid"] for m in seen] == thread.wamids
    assert pages == len(thread.wamids)


def test_a_message_says_where_it_came_from_and_what_became_of_it(
    client: TestClient, db: Database, thread: Thread
) -> None:
    """Source, direction, status, time, type and text; edited and revoked state with times;
    a revoked message shows no text."""
    with db.session() as session:
        message(
            session,
            thread.onboarding_id,
            thread.peer_id,
            "edited",
            60,
            source="app_echo",
            direction="outbound",
            status="read",
            text_body="new text",
            edited_at=T0,
        )
        message(session, thread.onboarding_id, thread.peer_id, "revoked", 61, revoked_at=T0)
    revoked, edited = client.get(thread.url, params={"limit": "2"}, headers=FEED).json()["messages"]
    assert edited | {"id": 0} == {
        "id": 0,
        "wamid": "edited",
        "peer_id": thread.peer_id,
        "source": "app_echo",
        "direction": "outbound",
        "status": "read",
        "sent_at": "2026-11-01T13:00:00Z",
        "type": "text",
        "text": "new text",
        "edited": True,
        "edited_at": "2026-11-01T12:00:00Z",
        "revoked": False,
        "revoked_at": None,
        "media": None,
    }
    assert revoked["revoked"] is True
    assert revoked["revoked_at"] == "2026-11-01T12:00:00Z"
    assert revoked["text"] is None


def test_media_state_and_a_url_once_stored(
    client: TestClient, db: Database, thread: Thread
) -> None:
    """Stored media links to ``/v1/media/{sha256}``; media still awaited has no link."""
    digest = "ab" * 32
    with db.session() as session:
        for wamid, minute, state in (
            ("img.stored", 70, "stored"),
            ("img.wait", 71, "awaiting_media"),
        ):
            message(
                session,
                thread.onboarding_id,
                thread.peer_id,
                wamid,
                minute,
                type="image",
                text_body=None,
                media_state=state,
                media_mime="image/jpeg",
                media_sha256=digest if state == "stored" else None,
                media_size=1234 if state == "stored" else None,
            )
    waiting, stored = client.get(thread.url, params={"limit": "2"}, headers=FEED).json()["messages"]
    assert stored["media"] == {
        "state": "stored",
        "mime": "image/jpeg",
        "sha256": digest,
        "size": 1234,
        "error": None,
        "url": f"/v1/media/{digest}",
    }
    assert waiting["media"]["state"] == "awaiting_media"
    assert waiting["media"]["url"] is None


@pytest.mark.parametrize("which", ["unknown-peer", "other-onboardings-peer", "unknown-onboarding"])
def test_a_thread_that_is_not_there_is_404(
    client: TestClient,
    db: Database,
    sandbox: Sandbox,
    settings: Settings,
    cipher: TokenCipher,
    thread: Thread,
    which: str,
) -> None:
    """A peer id nothing has, another onboarding's peer (with messages of its own), or an
    unknown onboarding: ``404``."""
    with db.session() as session:
        other = onboarding(session, sandbox, settings, cipher)
        foreign = peer(session, other, phone="16505550001")
        message(session, other, foreign, "foreign", 1)
    oid, pid = {
        "unknown-peer": (thread.onboarding_id, 987654),
        "other-onboardings-peer": (thread.onboarding_id, foreign),
        "unknown-onboarding": (987654, thread.peer_id),
    }[which]
    path = f"/v1/onboardings/{oid}/threads/{pid}/messages"
    assert client.get(path, headers=FEED).status_code == 404


def test_a_cursor_of_the_other_order_is_refused(client: TestClient, thread: Thread) -> None:
    """A cursor from a descending walk does not continue an ascending one."""
    desc = client.get(thread.url, params={"limit": "2"}, headers=FEED).json()
    answer = client.get(
        thread.url, params={"after": desc["next_cursor"], "order": "asc"}, headers=FEED
    )
    assert answer.status_code == 400
    assert answer.json()["errors"][0]["field"] == "after"


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"order": "newest"}, "order"),
        ({"limit": "100000"}, "limit"),
        ({"after": "!!!"}, "after"),
        ({"since": "1"}, "since"),
    ],
)
def test_a_bad_query_is_a_clear_400(
    client: TestClient, thread: Thread, params: dict[str, str], field: str
) -> None:
    """A bad order, limit or cursor, or a parameter the route does not take."""
    answer = client.get(thread.url, params=params, headers=FEED)
    assert answer.status_code == 400
    assert [e["field"] for e in answer.json()["errors"]] == [field]


def test_a_peer_without_messages_is_an_empty_thread(
    client: TestClient, db: Database, thread: Thread
) -> None:
    """A peer of the onboarding with no message yet answers an empty page, not ``404``."""
    with db.session() as session:
        quiet = peer(session, thread.onboarding_id, phone="16505550999")
    answer = client.get(
        f"/v1/onboardings/{thread.onboarding_id}/threads/{quiet}/messages", headers=FEED
    )
    assert answer.status_code == 200
    assert answer.json() == {"messages": [], "next_cursor": None}
