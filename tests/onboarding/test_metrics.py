"""``/metrics``: scraped after a whole onboarding, its values are what happened."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr
from sqlalchemy import func, select

from models import InboxDelivery, MediaState, Message, Onboarding, utcnow
from onboarding.feed.events import EventType, emit_for
from onboarding.ingest.inbox import receive
from onboarding.runtime import Runtime
from onboarding.sandbox import DeliveryOptions, HistoryProfile, Sandbox
from onboarding.web import create_app
from tests.conftest import SIGNUP_TOKEN

PROFILE = HistoryProfile(seed=5, threads=10, messages_per_thread=12, contacts=15, chunk_size=20)
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@pytest.fixture
def client(rt: Runtime, tmp_path: Path) -> Iterator[TestClient]:
    rt.settings.media_dir = tmp_path / "media"
    with TestClient(create_app(rt)) as test_client:
        yield test_client


def scrape(client: TestClient, headers: dict[str, str] | None = None) -> Samples:
    answer = client.get("/metrics", headers=headers or {})
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(answer.text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def grown(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


def graph_calls(sandbox: Sandbox) -> int:
    """Graph API calls the sandbox answered (media bytes are fetched from a download URL, not
    the Graph API, and counted as downloads)."""
    return sum(n for key, n in sandbox.call_counts().items() if key != "media_download")


def test_a_scrape_after_an_onboarding_counts_what_happened(
    client: TestClient, rt: Runtime, sandbox: Sandbox
) -> None:
    """Deliveries stored and processed, messages by source, the code exchange, Graph calls,
    media, and the onboardings and inbox gauges all match the database and the sandbox."""
    before = scrape(client)
    calls_before = graph_calls(sandbox)
    dispatcher = sandbox.configure_webhooks(
        sink=lambda body, headers: (
            client.post("/webhooks/meta", content=body, headers=headers).status_code
        ),
        profile=PROFILE,
        echoes=3,
        delivery=DeliveryOptions(background=False),
    )
    business = sandbox.add_business("Lucky Shrub", ["+1 555 078 3881"])
    signup = sandbox.complete_signup(business.waba_id)
    answer = client.post(
        "/signup",
        json={"code": signup.code, "session": dict(signup.session)},
        headers={"Authorization": f"Bearer {SIGNUP_TOKEN}"},
    )
    assert answer.status_code == 202
    dispatcher.drain(30)
    after = scrape(client)

    with rt.db.sessionmaker() as session:
        rows = session.scalar(select(func.count()).select_from(InboxDelivery))
        repeats = session.scalar(select(func.sum(InboxDelivery.duplicates))) or 0
        by_source = dict(
            session.execute(select(Message.source, func.count()).group_by(Message.source)).all()
        )
        media = session.scalar(
            select(func.count()).where(Message.media_state == MediaState.STORED.value)
        )
        state = session.get_one(Onboarding, answer.json()["onboarding_id"]).state
    deliveries = "coexist_webhook_deliveries_total"
    assert grown(before, after, deliveries, outcome="stored") == rows
    assert grown(before, after, deliveries, outcome="duplicate") == repeats
    assert grown(before, after, deliveries, outcome="processed") == rows
    assert (
        grown(before, after, "coexist_messages_ingested_total", source="history")
        >= (by_source["history"])
    )
    assert grown(before, after, "coexist_messages_ingested_total", source="app_echo") >= 3
    assert grown(before, after, "coexist_code_exchange_seconds_count") == 1
    graph = {
        k: v - before.get(k, 0.0) for k, v in after.items() if k[0] == "coexist_graph_calls_total"
    }
    assert sum(graph.values()) == graph_calls(sandbox) - calls_before
    smb = ("coexist_graph_calls_total", (("endpoint", "{id}/smb_app_data"), ("outcome", "ok")))
    assert graph[smb] == 2
    assert grown(before, after, "coexist_media_downloads_total", outcome="stored") == media
    assert value(after, "coexist_onboardings", state=state) == 1
    assert value(after, "coexist_inbox", status="processed") == rows
    assert value(after, "coexist_inbox_oldest_pending_seconds") == 0


def test_a_refused_delivery_is_counted_by_reason(client: TestClient) -> None:
    before = scrape(client)
    client.post("/webhooks/meta", content=b"{}", headers={"X-Hub-Signature-256": "sha256=0"})
    after = scrape(client)
    assert (
        grown(before, after, "coexist_webhook_deliveries_total", outcome="refused_signature") == 1
    )


def test_onboardings_near_their_sync_deadline_are_counted(
    client: TestClient, rt: Runtime, sandbox: Sandbox
) -> None:
    """An onboarding whose syncs are not requested 6 h or less before its deadline is at
    risk; one further from it, or syncing already, is not."""
    business = sandbox.add_business("Lucky Shrub", ["+1 555 078 3881"])
    signup = sandbox.complete_signup(business.waba_id)
    client.post(
        "/signup",
        json={"code": signup.code, "session": dict(signup.session)},
        headers={"Authorization": f"Bearer {SIGNUP_TOKEN}"},
    )
    metric = "coexist_onboardings_near_sync_deadline"
    assert value(scrape(client), metric) == 0  # syncing
    with rt.db.session() as session:
        onboarding = session.scalars(select(Onboarding)).one()
        onboarding.state = "subscribed"
        onboarding.sync_deadline_at = utcnow() + timedelta(hours=5)
    assert value(scrape(client), metric) == 1
    with rt.db.session() as session:
        session.scalars(select(Onboarding)).one().sync_deadline_at = utcnow() + timedelta(hours=7)
    assert value(scrape(client), metric) == 0


def test_a_metrics_token_closes_the_endpoint(rt: Runtime) -> None:
    closed = Runtime(
        settings=rt.settings.model_copy(update={"metrics_token": SecretStr("scraper-token-0123")}),
        db=rt.db,
        cipher=rt.cipher,
        graph=rt.graph,
    )
    with TestClient(create_app(closed)) as client:
        assert client.get("/metrics").status_code == 401
        scrape(client, {"Authorization": "Bearer scraper-token-0123"})


def test_push_and_relay_lag_are_scraped_when_they_are_on(rt: Runtime) -> None:
    """With push and the relay on and nothing delivered yet, their lag is the whole feed and
    every stored delivery."""
    secret = "whsec_" + base64.b64encode(b"k" * 32).decode()
    on = Runtime(
        settings=rt.settings.model_copy(
            update={
                "feed_webhook_url": "http://127.0.0.1:9/feed",
                "feed_webhook_secret": SecretStr(secret),
                "relay_url": "http://127.0.0.1:9/meta",
            }
        ),
        db=rt.db,
        cipher=rt.cipher,
        graph=rt.graph,
    )
    with rt.db.session() as session:
        for n in range(3):
            emit_for(session, EventType.SYNC_PROGRESS, None, {"n": n})
        receive(session, b'{"object":"whatsapp_business_account","entry":[]}')
    with TestClient(create_app(on)) as client:
        samples = scrape(client)
    assert value(samples, "coexist_feed_push_lag_events") == 3
    assert value(samples, "coexist_feed_push_failing") == 0
    assert value(samples, "coexist_relay_backlog") == 1
    with TestClient(create_app(rt)) as client:  # both off: no lag to tell
        assert ("coexist_relay_backlog", ()) not in scrape(client)
