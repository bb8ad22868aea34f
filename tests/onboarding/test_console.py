"""The operator console over HTTP: login and its cookie, CSRF, escaping, the pages' content.
(tests/browser/ drives the same pages in headless Chromium.)"""

from __future__ import annotations

import base64
import html
import re
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from models import Message, Onboarding, SyncRequest, SyncType, utcnow
from onboarding.feed.events import EventType, emit_for
from onboarding.ingest.dispatch import process_delivery
from onboarding.ingest.inbox import receive
from onboarding.runtime import Runtime
from onboarding.sandbox import Sandbox
from onboarding.web import console, create_app
from tests.conftest import ADMIN_TOKEN

HOSTILE = '<script>window.__pwned=1</script><img src=x onerror="window.__pwned=2">'


@pytest.fixture
def client(rt: Runtime) -> Iterator[TestClient]:
    with TestClient(create_app(rt), follow_redirects=False) as test_client:
        yield test_client


def log_in(client: TestClient) -> str:
    """Log in; the CSRF token of the session."""
    answer = client.post("/console/login", data={"token": ADMIN_TOKEN})
    assert answer.status_code == 303
    page = client.get("/console/onboardings")
    match = re.search(r'name="csrf" value="([0-9a-f]+)"', page.text)
    assert match is not None
    return match.group(1)


def test_pages_need_a_login(client: TestClient) -> None:
    for path in ("/console/onboardings", "/console/onboardings/1", "/console/inbox"):
        answer = client.get(path)
        assert answer.status_code == 303
        assert answer.headers["location"] == "/console/login"


def test_the_wrong_token_is_refused_and_sets_no_cookie(client: TestClient) -> None:
    answer = client.post("/console/login", data={"token": "not-the-admin-token"})
    assert answer.status_code == 401
    assert "set-cookie" not in answer.headers


def test_the_session_cookie_is_httponly_strict_and_scoped(client: TestClient) -> None:
    answer = client.post("/console/login", data={"token": ADMIN_TOKEN})
    cookie = answer.headers["set-cookie"].lower()
    assert "httponly" in cookie
    assert "samesite=strict" in cookie
    assert "path=/console" in cookie
    assert ADMIN_TOKEN.lower() not in cookie


def test_a_tampered_cookie_is_no_session(client: TestClient) -> None:
    log_in(client)
    value = client.cookies["coexist_console"]
    client.cookies.set("coexist_console", value[:-1] + ("0" if value[-1] != "0" else "1"))
    assert client.get("/console/onboardings").status_code == 303


def test_the_list_shows_the_window_and_the_syncs(client: TestClient, onboarding_id: int) -> None:
    log_in(client)
    page = client.get("/console/onboardings")
    assert page.status_code == 200
    assert f'data-onboarding="{onboarding_id}"' in page.text
    assert "data-deadline=" in page.text
    assert "<progress" in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]


def add_onboardings(rt: Runtime, count: int) -> list[int]:
    """``count`` onboardings with their two sync rows, written directly; their ids."""
    ids = []
    with rt.db.session() as session:
        for n in range(count):
            now = utcnow()
            row = Onboarding(
                code_sha256=f"{n:064x}",
                signup_event="FINISH_WHATSAPP_BUSINESS_APP_ONBOARDING",
                session_data={},
                waba_id=str(102290000000000 + n),
                signup_completed_at=now,
                sync_deadline_at=now,
                state="synced" if n % 2 else "syncing",
                state_changed_at=now,
                syncs=[SyncRequest(sync_type=t.value) for t in SyncType],
            )
            session.add(row)
            session.flush()
            ids.append(row.id)
    return ids


def listed(page: str) -> list[int]:
    return [int(found) for found in re.findall(r'data-onboarding="(\d+)"', page)]


def test_the_list_pages_through_every_onboarding_newest_first(
    client: TestClient, rt: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With more onboardings than a page holds, "Older onboardings" links walk them all once."""
    monkeypatch.setattr(console, "PAGE", 2)
    ids = add_onboardings(rt, 5)
    log_in(client)
    seen: list[int] = []
    url: str | None = "/console/onboardings"
    while url is not None:
        page = client.get(url)
        assert page.status_code == 200
        seen += listed(page.text)
        older = re.search(r'href="\?([^"]+)" rel="next"', page.text)
        url = f"/console/onboardings?{html.unescape(older.group(1))}" if older else None
    assert seen == sorted(ids, reverse=True)


def test_the_list_pages_keep_the_state_filter(
    client: TestClient, rt: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The next page of a filtered list shows only onboardings in that state."""
    monkeypatch.setattr(console, "PAGE", 1)
    ids = add_onboardings(rt, 4)
    log_in(client)
    first = client.get("/console/onboardings", params={"state": "synced"})
    older = re.search(r'href="\?([^"]+)" rel="next"', first.text)
    assert older is not None
    second = client.get(f"/console/onboardings?{html.unescape(older.group(1))}")
    assert listed(first.text) + listed(second.text) == [ids[3], ids[1]]


@pytest.mark.parametrize("before", ["x", "-1", "0", "99999999999999999999"])
def test_an_unusable_page_position_shows_the_first_page(
    client: TestClient, rt: Runtime, before: str
) -> None:
    """A ``before`` that is no row id is ignored rather than refused or passed to SQL."""
    ids = add_onboardings(rt, 2)
    log_in(client)
    page = client.get("/console/onboardings", params={"before": before})
    assert page.status_code == 200
    assert listed(page.text) == sorted(ids, reverse=True)


def test_actions_need_the_csrf_token_and_the_same_origin(
    client: TestClient, onboarding_id: int
) -> None:
    csrf = log_in(client)
    path = f"/console/onboardings/{onboarding_id}/retry"
    assert client.post(path, data={}).status_code == 403
    assert client.post(path, data={"csrf": "0" * 64}).status_code == 403
    foreign = client.post(path, data={"csrf": csrf}, headers={"Origin": "https://evil.example"})
    assert foreign.status_code == 403
    answer = client.post(path, data={"csrf": csrf})
    assert answer.status_code == 303
    assert "notice=Retry+refused" in answer.headers["location"]


def test_a_forced_retry_from_the_console_runs(
    client: TestClient, rt: Runtime, sandbox: Sandbox, onboarding_id: int
) -> None:
    csrf = log_in(client)
    with rt.db.session() as session:
        onboarding = session.get_one(Onboarding, onboarding_id)
        onboarding.sync(SyncType.HISTORY).state = "unknown"
        onboarding.sync(SyncType.HISTORY).request_id = None
    answer = client.post(
        f"/console/onboardings/{onboarding_id}/retry", data={"csrf": csrf, "force": "1"}
    )
    assert "notice=Retrying" in answer.headers["location"]
    assert [s.sync_type for s in sandbox.accepted_syncs()].count("history") == 1


def test_replay_from_the_inbox(client: TestClient, rt: Runtime) -> None:
    csrf = log_in(client)
    with rt.db.session() as session:
        intake = receive(session, b"{broken")
        process_delivery(session, intake.delivery_id, settings=rt.settings)
    page = client.get("/console/inbox", params={"status": "quarantined"})
    assert f'data-delivery="{intake.delivery_id}"' in page.text
    answer = client.post(f"/console/inbox/{intake.delivery_id}/replay", data={"csrf": csrf})
    assert "Replaying+1+deliveries" in answer.headers["location"]


def test_strangers_text_is_escaped(client: TestClient, rt: Runtime, onboarding_id: int) -> None:
    """A message body and a notice carrying markup are shown as text, never as markup."""
    log_in(client)
    with rt.db.session() as session:
        session.add(
            Message(
                onboarding_id=onboarding_id,
                wamid="wamid.hostile",
                thread=HOSTILE,
                direction="inbound",
                source="history",
                sent_at=datetime(2026, 11, 30, tzinfo=UTC),
                type="text",
                text_body=HOSTILE,
                media_state="none",
            )
        )
    page = client.get(f"/console/onboardings/{onboarding_id}", params={"notice": HOSTILE})
    assert page.status_code == 200
    assert "<script>window.__pwned" not in page.text
    assert "<img src=x" not in page.text
    assert "&lt;script&gt;window.__pwned=1&lt;/script&gt;" in page.text


def test_logout_ends_the_session(client: TestClient) -> None:
    csrf = log_in(client)
    answer = client.post("/console/logout", data={"csrf": csrf})
    assert answer.status_code == 303
    assert client.get("/console/onboardings").status_code == 303


def test_the_feed_page_shows_push_lag(client: TestClient, rt: Runtime) -> None:
    """With push off the page says so; the relay's and push's state come from their status."""
    log_in(client)
    page = client.get("/console/feed")
    assert page.status_code == 200
    assert "Push delivery is off" in page.text
    assert "The relay is off" in page.text


def test_the_feed_page_shows_the_lag_of_push_when_it_is_on(rt: Runtime) -> None:
    secret = "whsec_" + base64.b64encode(b"c" * 32).decode()
    on = Runtime(
        settings=rt.settings.model_copy(
            update={
                "feed_webhook_url": "http://127.0.0.1:9/f",
                "feed_webhook_secret": SecretStr(secret),
            }
        ),
        db=rt.db,
        cipher=rt.cipher,
        graph=rt.graph,
    )
    with rt.db.session() as session:
        for n in range(2):
            emit_for(session, EventType.SYNC_PROGRESS, None, {"n": n})
    with TestClient(create_app(on), follow_redirects=False) as client:
        log_in(client)
        page = client.get("/console/feed")
    assert 'id="push"' in page.text
    assert "2 events" in page.text
