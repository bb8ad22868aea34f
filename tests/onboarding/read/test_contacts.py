"""``GET /v1/onboardings/{id}/contacts``: the address book by id, each contact with its peer."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from fastapi.testclient import TestClient

from config import Settings
from models import Database
from models.crypto import TokenCipher
from onboarding.sandbox import Sandbox
from tests.onboarding.read.helpers import FEED, T0, contact, onboarding, peer, walk


@dataclass
class Book:
    onboarding_id: int
    ids: list[int]
    removed: int

    @property
    def url(self) -> str:
        return f"/v1/onboardings/{self.onboarding_id}/contacts"


@pytest.fixture
def book(db: Database, sandbox: Sandbox, settings: Settings, cipher: TokenCipher) -> Book:
    """Five contacts (one removed, one saved by username only) and another onboarding's."""
    with db.session() as session:
        oid = onboarding(session, sandbox, settings, cipher)
        other = onboarding(session, sandbox, settings, cipher)
        ids = []
        for i in range(4):
            pid = peer(session, oid, phone=f"1650555000{i}", name=f"Name {i}")
            ids.append(contact(session, oid, pid, phone=f"1650555000{i}", full_name=f"Full {i}"))
        adopter = peer(session, oid, user_id="US.1", username="zed")
        ids.append(contact(session, oid, adopter, full_name="Zed", removed_at=T0))
        contact(session, other, peer(session, other, phone="16505550000"), full_name="Other")
    return Book(oid, ids, ids[-1])


def test_walk_gives_every_contact_once_by_id(client: TestClient, book: Book) -> None:
    """Pages of two give the onboarding's contacts, removed ones included, each once."""
    seen, pages = walk(client, book.url, "contacts", limit="2")
    assert [c["id"] for c in seen] == book.ids
    assert pages == 3


def test_a_contact_carries_its_peer_and_names(client: TestClient, book: Book) -> None:
    """Names as saved, removal state, and the peer's identifiers."""
    seen, _ = walk(client, book.url, "contacts")
    assert seen[0] == {
        "id": book.ids[0],
        "phone": "16505550000",
        "full_name": "Full 0",
        "first_name": None,
        "removed": False,
        "removed_at": None,
        "changed_at": "2026-11-01T12:00:00Z",
        "peer": {
            "id": seen[0]["peer"]["id"],
            "phone": "16505550000",
            "user_id": None,
            "username": None,
            "name": "Name 0",
        },
    }
    assert seen[-1]["phone"] is None
    assert seen[-1]["peer"]["user_id"] == "US.1"
    assert seen[-1]["peer"]["username"] == "zed"


@pytest.mark.parametrize(("removed", "count"), [("true", 1), ("false", 4)])
def test_removed_filter(client: TestClient, book: Book, removed: str, count: int) -> None:
    """``removed=true`` keeps removed contacts only, ``false`` present ones only."""
    seen, _ = walk(client, book.url, "contacts", limit="1", removed=removed)
    assert len(seen) == count
    assert all(c["removed"] is (removed == "true") for c in seen)


def test_contacts_of_an_unknown_onboarding_are_404(client: TestClient, book: Book) -> None:
    """An onboarding id nothing has is ``404``."""
    assert client.get("/v1/onboardings/424242/contacts", headers=FEED).status_code == 404


@pytest.mark.parametrize(
    ("params", "field"),
    [({"removed": "yes"}, "removed"), ({"after": "eyJ4IjoxfQ"}, "after"), ({"limit": ""}, "limit")],
)
def test_a_bad_query_is_a_clear_400(
    client: TestClient, book: Book, params: dict[str, str], field: str
) -> None:
    """A bad flag, cursor or limit is named in the ``400``."""
    answer = client.get(book.url, params=params, headers=FEED)
    assert answer.status_code == 400
    assert [e["field"] for e in answer.json()["errors"]] == [field]
