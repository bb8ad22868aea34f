"""``GET /v1/onboardings`` and ``GET /v1/onboardings/{id}``: filters, both orders, 404s and the
answers to bad queries."""

from __future__ import annotations

from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from freezegun import freeze_time

from config import Settings
from models import Database, Onboarding
from models.crypto import TokenCipher
from onboarding.sandbox import Sandbox
from onboarding.views import onboarding_detail
from tests.conftest import ADMIN_TOKEN
from tests.onboarding.read.helpers import FEED, T0, onboarding, walk


@pytest.fixture
def ids(db: Database, sandbox: Sandbox, settings: Settings, cipher: TokenCipher) -> list[int]:
    """Five onboardings created a day apart; the 2nd and 4th synced, the 4th on number 777."""
    made = []
    with db.session() as session:
        for day in range(5):
            oid = onboarding(session, sandbox, settings, cipher)
            row = session.get_one(Onboarding, oid)
            row.created_at = T0 + timedelta(days=day)
            if day in (1, 3):
                row.state = "synced"
            if day == 3:
                row.phone_number_id = "777"
            made.append(oid)
    return made


def test_newest_first_walk_lists_every_onboarding_once(client: TestClient, ids: list[int]) -> None:
    """Pages of two, newest first by default, give every onboarding exactly once."""
    seen, pages = walk(client, "/v1/onboardings", "onboardings", limit="2")
    assert [o["id"] for o in seen] == ids[::-1]
    assert pages == 3


def test_oldest_first_walk_lists_every_onboarding_once(client: TestClient, ids: list[int]) -> None:
    """``order=asc`` walks by id upwards, each onboarding once."""
    seen, _ = walk(client, "/v1/onboardings", "onboardings", limit="2", order="asc")
    assert [o["id"] for o in seen] == ids


def test_a_page_that_ends_the_listing_has_no_next_cursor(
    client: TestClient, ids: list[int]
) -> None:
    """Exactly ``limit`` rows left: the page holds them and ``next_cursor`` is null."""
    body = client.get("/v1/onboardings", params={"limit": "5"}, headers=FEED).json()
    assert len(body["onboardings"]) == 5
    assert body["next_cursor"] is None


def test_state_filter(client: TestClient, ids: list[int]) -> None:
    """``state`` keeps only onboardings in that state, walked across pages."""
    seen, _ = walk(client, "/v1/onboardings", "onboardings", limit="1", state="synced")
    assert [o["id"] for o in seen] == [ids[3], ids[1]]
    assert {o["state"] for o in seen} == {"synced"}


def test_waba_and_number_filters(client: TestClient, ids: list[int], db: Database) -> None:
    """``waba_id`` and ``phone_number_id`` match exactly."""
    with db.sessionmaker() as session:
        waba = session.get_one(Onboarding, ids[2]).waba_id
    by_waba = client.get("/v1/onboardings", params={"waba_id": waba}, headers=FEED).json()
    assert [o["id"] for o in by_waba["onboardings"]] == [ids[2]]
    by_number = client.get("/v1/onboardings", params={"phone_number_id": "777"}, headers=FEED)
    assert [o["id"] for o in by_number.json()["onboardings"]] == [ids[3]]


def test_created_after_filter(client: TestClient, ids: list[int]) -> None:
    """``created_after`` keeps onboardings created strictly later; no offset means UTC."""
    after = (T0 + timedelta(days=2)).isoformat()
    seen, _ = walk(client, "/v1/onboardings", "onboardings", created_after=after)
    assert [o["id"] for o in seen] == [ids[4], ids[3]]
    naive = (T0 + timedelta(days=2)).replace(tzinfo=None).isoformat()
    same, _ = walk(client, "/v1/onboardings", "onboardings", created_after=naive)
    assert same == seen


def test_each_item_summarises_its_onboarding(client: TestClient, ids: list[int]) -> None:
    """A listed onboarding carries its summary (syncs' states included) and creation time."""
    first = client.get("/v1/onboardings", params={"limit": "1"}, headers=FEED).json()
    item = first["onboardings"][0]
    assert item["id"] == ids[4]
    assert item["created_at"] == "2026-11-05T12:00:00Z"
    assert item["contacts_sync"] == "pending"
    assert item["history_sync"] == "pending"


@freeze_time("2026-11-10T00:00:00Z")
def test_one_onboarding_is_what_show_json_prints(
    client: TestClient, ids: list[int], db: Database
) -> None:
    """``GET /v1/onboardings/{id}`` answers what ``coexist onboardings show --json`` prints."""
    answer = client.get(f"/v1/onboardings/{ids[3]}", headers=FEED)
    assert answer.status_code == 200
    with db.sessionmaker() as session:
        expected = onboarding_detail(session, session.get_one(Onboarding, ids[3]))
    assert answer.json() == expected


@pytest.mark.parametrize("bad_id", ["999999", "0", "abc", str(2**63), "-1"])
def test_an_id_no_onboarding_has_is_404(client: TestClient, ids: list[int], bad_id: str) -> None:
    """Unknown ids, and ids no row can have, are ``404``."""
    answer = client.get(f"/v1/onboardings/{bad_id}", headers=FEED)
    assert answer.status_code == 404
    assert answer.json()["error"] == "not_found"


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"state": "dancing"}, "state"),
        ({"order": "sideways"}, "order"),
        ({"after": "yesterday"}, "after"),
        ({"limit": "0"}, "limit"),
        ({"limit": "1001"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"waba_id": "12ab"}, "waba_id"),
        ({"phone_number_id": "1" * 33}, "phone_number_id"),
        ({"created_after": "last tuesday"}, "created_after"),
        ({"status": "synced"}, "status"),
    ],
)
def test_a_bad_query_is_a_clear_400(client: TestClient, params: dict[str, str], field: str) -> None:
    """Each bad parameter is named in a ``400 invalid_query``."""
    answer = client.get("/v1/onboardings", params=params, headers=FEED)
    assert answer.status_code == 400
    body = answer.json()
    assert body["error"] == "invalid_query"
    assert [e["field"] for e in body["errors"]] == [field]


def test_a_parameter_given_twice_is_refused(client: TestClient) -> None:
    """``limit=1&limit=2`` is ambiguous, so ``400``, not the first one silently."""
    answer = client.get("/v1/onboardings?limit=1&limit=2", headers=FEED)
    assert answer.status_code == 400
    assert [e["field"] for e in answer.json()["errors"]] == ["limit"]


def test_a_cursor_of_the_other_order_is_refused(client: TestClient, ids: list[int]) -> None:
    """A cursor from an ``asc`` walk does not continue a ``desc`` one."""
    asc = client.get("/v1/onboardings", params={"order": "asc", "limit": "1"}, headers=FEED)
    cursor = asc.json()["next_cursor"]
    answer = client.get("/v1/onboardings", params={"after": cursor}, headers=FEED)
    assert answer.status_code == 400
    assert answer.json()["errors"][0]["field"] == "after"


@pytest.mark.parametrize(
    "path",
    [
        "/v1/onboardings",
        "/v1/onboardings/1",
        "/v1/onboardings/1/threads",
        "/v1/onboardings/1/threads/1/messages",
        "/v1/onboardings/1/contacts",
        "/v1/media/" + "ab" * 32,
    ],
)
@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": f"Bearer {ADMIN_TOKEN}"}, {"Authorization": "Bearer nope"}],
    ids=["missing", "admin-token", "wrong"],
)
def test_only_the_feed_token_reads(client: TestClient, path: str, headers: dict[str, str]) -> None:
    """Every read route is ``401`` without the feed's bearer token (the admin's included)."""
    answer = client.get(path, headers=headers)
    assert answer.status_code == 401
    assert answer.json()["error"] == "unauthorized"
