"""Ingestion end to end: the sandbox's generated business, delivered as Meta's signed webhooks
over HTTP to the web app, processed by a real ``ingest`` worker into PostgreSQL.

Every expected count comes from an oracle that applies Meta's and coexist's rules (1:1 threads
only, 180-day window, late-media webhooks within 14 days, last contact change wins) to what the
sandbox's generator produced, never from what coexist stored.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from benchmarks._harness import (
    BrokerClient,
    CoexistApi,
    ManagedProcess,
    StackConfig,
    WebServer,
    describe,
    poll_until,
)
from config.settings import s3_location
from models import (
    Database,
    InboxDelivery,
    InboxStatus,
    MediaState,
    Message,
    SyncRequest,
    SyncType,
)
from onboarding.media_store import MediaStore
from onboarding.read.media import content_type
from onboarding.sandbox import (
    AcceptedSync,
    CollectingSink,
    DeliveryOptions,
    Faults,
    HistoryGenerator,
    ReceivedWebhook,
    Sandbox,
    SignupResult,
)
from tests.integration._flow import (
    DELIVERY,
    ECHOES,
    PROFILE,
    SETTLE_TIMEOUT,
    callback,
    contacts_accepted_at,
    expected_counts,
    finished_signup,
    inbox,
    post_all,
    settled,
    start_onboarding,
    wait_for_inbox,
)
from tests.s3server import S3Server

pytestmark = pytest.mark.integration

#: How long Meta (the sandbox) takes to exchange a signup code when a test needs coexist to
#: still be exchanging it after every early delivery was ingested.
SLOW_EXCHANGE_MS = 3000


# -- the oracle ----------------------------------------------------------------------------


def oracle(sandbox: Sandbox, detail: Mapping[str, Any], *, contacts_at: float) -> dict[str, int]:
    """The expected counts for ``detail``'s number, against its recorded signup time."""
    generator = HistoryGenerator(PROFILE, sandbox.number_context(detail["phone_number_id"]))
    signed_up_at = datetime.fromisoformat(detail["signup_completed_at"]).timestamp()
    return expected_counts(generator, signed_up_at, echoes=ECHOES, contacts_at=contacts_at)


# -- the stack -----------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _ingest_stack(
    ingest_worker: ManagedProcess, sandbox: Sandbox, s3_server: S3Server, media_bucket: str
) -> Iterator[None]:
    """The ingest worker runs, the media bucket is empty, and no webhooks outlive the test."""
    if not ingest_worker.running:
        pytest.fail(
            f"{ingest_worker.name} exited with status {ingest_worker.returncode}:\n"
            f"{ingest_worker.log_tail()}",
            pytrace=False,
        )
    sandbox.disable_webhooks()
    s3_server.empty(s3_location(media_bucket)[0])
    yield
    sandbox.disable_webhooks()


@pytest.fixture
def meta(web: WebServer) -> Iterator[httpx.Client]:
    """An HTTP client posting to the web app as Meta does."""
    with httpx.Client(base_url=web.url, timeout=10.0, trust_env=False) as client:
        yield client


def collect(sandbox: Sandbox, api: CoexistApi) -> tuple[int, list[ReceivedWebhook]]:
    """Onboard a business whose webhooks the sandbox hands to the test instead of sending them."""
    sink = CollectingSink()
    dispatcher = sandbox.configure_webhooks(
        sink=sink, profile=PROFILE, echoes=ECHOES, delivery=DeliveryOptions(background=False)
    )
    onboarding_id = start_onboarding(api, finished_signup(sandbox))
    api.wait_for_onboarding(onboarding_id)  # both syncs accepted: every delivery is queued
    assert dispatcher.drain(30.0)
    assert dispatcher.stats()["delivered"] == len(sink.received) > 0
    return onboarding_id, list(sink.received)


def deliver_before_signup(
    sandbox: Sandbox, meta: httpx.Client, db: Database
) -> tuple[SignupResult, float]:
    """A number whose contacts, history and echoes reach coexist before its signup does.

    Meta's webhooks for both syncs are generated as if Meta had accepted them, posted shuffled,
    and left waiting for an onboarding. Returns the finished signup (its code must be posted
    within 30 s) and the moment the syncs were accepted.
    """
    sink = CollectingSink()
    dispatcher = sandbox.configure_webhooks(
        sink=sink,
        profile=PROFILE,
        echoes=ECHOES,
        delivery=DeliveryOptions(background=False, require_subscription=False),
    )
    signup = finished_signup(sandbox)  # the number is onboarded at Meta; coexist knows nothing
    accepted_at = sandbox.now()
    for sync_type in ("smb_app_state_sync", "history"):
        dispatcher.on_sync_accepted(
            AcceptedSync(signup.phone_number_id, signup.waba_id, sync_type, "1", accepted_at)
        )
    assert dispatcher.drain(30.0)
    early = list(sink.received)
    random.Random(23).shuffle(early)
    post_all(meta, early)
    wait_for_inbox(db, InboxStatus.WAITING, len({delivery.body for delivery in early}))
    return signup, accepted_at


def history_sync_state(db: Database) -> str | None:
    """The state of the (only) onboarding's history sync, read from the database."""
    with db.sessionmaker() as session:
        return session.scalar(
            select(SyncRequest.state).where(SyncRequest.sync_type == SyncType.HISTORY.value)
        )


def stored_media(db: Database) -> list[Message]:
    with db.sessionmaker() as session:
        return list(
            session.scalars(select(Message).where(Message.media_state == MediaState.STORED.value))
        )


# -- the tests -----------------------------------------------------------------------------


def test_generated_history_over_http_ends_in_exact_counts(
    api: CoexistApi,
    sandbox: Sandbox,
    db: Database,
    web: WebServer,
    stack_config: StackConfig,
    media_store: MediaStore,
) -> None:
    """A business's shuffled, duplicated history, contacts and echoes end in the oracle's counts;
    its media is in the stack's S3 bucket and the read API streams it, typed."""
    dispatcher = sandbox.configure_webhooks(
        callback_url=callback(web), profile=PROFILE, echoes=ECHOES, delivery=DELIVERY
    )
    signup = finished_signup(sandbox)

    onboarding_id = start_onboarding(api, signup)
    detail = settled(api, db, onboarding_id, dispatcher)

    stats = dispatcher.stats()
    assert (stats["failed"], stats["skipped"]) == (0, 0)
    assert detail["counts"] == oracle(
        sandbox, detail, contacts_at=contacts_accepted_at(sandbox, signup.phone_number_id)
    )
    history = detail["sync"]["history"]
    assert (history["state"], history["progress"]) == ("completed", 100), describe(detail)
    assert all(not phase["missing"] for phase in history["phases"].values())
    assert sorted(history["phases"]) == ["0", "1", "2"]
    assert detail["state"] == "synced", describe(detail)
    assert detail["alerts"] == []
    media = stored_media(db)
    assert media
    feed = {"Authorization": f"Bearer {stack_config.feed_token}"}
    for message in media:
        digest = message.media_sha256 or ""
        assert message.media_path == media_store.url(digest)
        served = httpx.get(f"{web.url}/v1/media/{digest}", headers=feed, trust_env=False)
        assert served.status_code == 200
        assert hashlib.sha256(served.content).hexdigest() == digest
        assert int(served.headers["content-length"]) == len(served.content) == message.media_size
        assert served.headers["content-type"] == content_type(message.media_mime)


def test_every_delivery_three_times_shuffled_ends_in_the_same_counts(
    api: CoexistApi, sandbox: Sandbox, db: Database, meta: httpx.Client
) -> None:
    """Each delivery posted three times, all in a shuffled order, is ingested exactly once."""
    onboarding_id, deliveries = collect(sandbox, api)
    resent = deliveries * 3
    random.Random(17).shuffle(resent)

    post_all(meta, resent)
    detail = settled(api, db, onboarding_id)

    assert detail["counts"] == oracle(
        sandbox,
        detail,
        contacts_at=contacts_accepted_at(sandbox, detail["phone_number_id"]),
    )
    assert detail["sync"]["history"]["state"] == "completed", describe(detail)
    assert detail["state"] == "synced", describe(detail)
    with db.sessionmaker() as session:
        duplicates = session.scalars(select(InboxDelivery.duplicates)).all()
    distinct = len({delivery.body for delivery in deliveries})
    assert len(duplicates) == distinct
    assert sum(duplicates) == len(resent) - distinct


def test_deliveries_before_the_onboarding_exists_are_processed_once_it_does(
    api: CoexistApi, sandbox: Sandbox, db: Database, meta: httpx.Client, broker: BrokerClient
) -> None:
    """History and contacts posted before the signup wait for its onboarding, then count exactly."""
    signup, accepted_at = deliver_before_signup(sandbox, meta, db)

    onboarding_id = start_onboarding(api, signup)
    broker.send("coexist.ingest.redispatch")  # what beat does; wake_waiting does it first
    # The watchdog re-sends media downloads tried before the token existed (reported bug).
    detail = settled(api, db, onboarding_id, beat=broker)

    assert detail["counts"] == oracle(sandbox, detail, contacts_at=accepted_at)
    assert detail["sync"]["history"]["state"] == "completed", describe(detail)


def test_media_followups_before_their_placeholders_are_stored_once(
    api: CoexistApi, sandbox: Sandbox, db: Database, meta: httpx.Client
) -> None:
    """Late media processed before the chunks holding their placeholders still ends stored."""
    onboarding_id, deliveries = collect(sandbox, api)
    followups = [d for d in deliveries if d.field == "history" and "history" not in d.value]
    others = [d for d in deliveries if d not in followups]
    assert followups

    post_all(meta, followups)
    wait_for_inbox(db, InboxStatus.PROCESSED, len({d.body for d in followups}))
    post_all(meta, others)
    detail = settled(api, db, onboarding_id)

    expected = oracle(
        sandbox, detail, contacts_at=contacts_accepted_at(sandbox, detail["phone_number_id"])
    )
    assert detail["counts"] == expected
    wamids = {
        m["id"]
        for d in followups
        for m in (*d.value.get("messages", []), *d.value.get("message_echoes", []))
    }
    media = stored_media(db)
    assert {m.wamid for m in media} == wamids
    assert len(media) == expected["media_stored"]
    assert all(m.thread and m.type != "media_placeholder" for m in media)


@pytest.mark.parametrize("envelope_less", [False, True], ids=["enveloped", "envelope_less"])
def test_declined_history_ends_the_onboarding_as_history_declined(
    api: CoexistApi, sandbox: Sandbox, db: Database, web: WebServer, envelope_less: bool
) -> None:
    """Meta's 2593109 decline, with or without the envelope, marks the history sync declined."""
    dispatcher = sandbox.configure_webhooks(
        callback_url=callback(web),
        profile=PROFILE,
        mode="declined",
        envelope_less_decline=envelope_less,
        delivery=DELIVERY,
    )

    onboarding_id = start_onboarding(api, finished_signup(sandbox))
    api.wait_for_onboarding(
        onboarding_id, lambda d: d["state"] == "history_declined", what="history declined"
    )
    assert dispatcher.wait_idle(SETTLE_TIMEOUT)
    poll_until(
        lambda: inbox(db),
        lambda statuses: set(statuses) == {InboxStatus.PROCESSED.value},
        what="every delivery processed",
        timeout=SETTLE_TIMEOUT,
    )

    detail = api.onboarding(onboarding_id)
    assert detail["state"] == "history_declined", describe(detail)
    assert detail["sync"]["history"]["state"] == "declined", describe(detail)
    assert "history_declined" in [alert["kind"] for alert in detail["alerts"]]
    assert detail["counts"]["messages"] == detail["counts"]["history_chunks"] == 0


def test_history_sync_without_history_webhooks_is_stalled_with_an_alert(
    api: CoexistApi, sandbox: Sandbox, broker: BrokerClient
) -> None:
    """A requested history sync that hears nothing is stalled by the watchdog, with an alert."""
    onboarding_id = start_onboarding(api, finished_signup(sandbox))  # no webhooks configured
    api.wait_for_onboarding(onboarding_id)

    def watched() -> dict[str, Any]:
        broker.send("coexist.ingest.watchdog")  # what beat does every 5 minutes
        return api.onboarding(onboarding_id)

    detail = poll_until(
        watched,
        lambda d: d["sync"]["history"]["state"] == "stalled" and bool(d["alerts"]),
        what="history sync stalled",
        timeout=30.0,
        interval=1.0,
        describe=describe,
    )

    assert [alert["kind"] for alert in detail["alerts"]] == ["history_stalled"]
    assert detail["state"] == "syncing"
    assert detail["counts"]["messages"] == 0


# -- product bugs, reproduced (strict: these fail until the bug is fixed) -------------------


def test_decline_ingested_before_meta_answers_the_history_call_stays_declined(
    api: CoexistApi, sandbox: Sandbox, db: Database, web: WebServer
) -> None:
    """A decline ingested while coexist still awaits Meta's answer to the history call stays."""
    sandbox.configure_webhooks(
        callback_url=callback(web), profile=PROFILE, mode="declined", delivery=DELIVERY
    )

    def answer_after_the_decline(sync: AcceptedSync) -> None:
        if sync.sync_type == "history":  # Meta's answer is slower than its webhook
            poll_until(
                lambda: history_sync_state(db),
                lambda state: state == "declined",
                what="the decline ingested",
                timeout=5.0,
            )

    sandbox.add_sync_listener(answer_after_the_decline)
    try:
        onboarding_id = start_onboarding(api, finished_signup(sandbox))
        detail = poll_until(
            lambda: api.onboarding(onboarding_id),
            lambda d: d["sync"]["history"]["request_id"] is not None,
            what="Meta's answer to the history call recorded",
            timeout=10.0,
            describe=describe,
        )
    finally:
        sandbox.remove_sync_listener(answer_after_the_decline)

    assert detail["sync"]["history"]["state"] == "declined", describe(detail)
    assert detail["state"] == "history_declined", describe(detail)


def test_history_completed_during_the_code_exchange_ends_synced(
    api: CoexistApi, sandbox: Sandbox, db: Database, meta: httpx.Client, broker: BrokerClient
) -> None:
    """Early history fully ingested while the code is still being exchanged ends synced."""
    signup, _ = deliver_before_signup(sandbox, meta, db)
    sandbox.set_faults(Faults.only("oauth", latency_ms=SLOW_EXCHANGE_MS))

    onboarding_id = start_onboarding(api, signup)
    early = api.wait_for_onboarding(
        onboarding_id,
        lambda d: d["sync"]["history"]["state"] == "completed",
        what="history completed",
    )
    assert early["state"] == "received", describe(early)  # the code is still being exchanged
    api.wait_for_onboarding(
        onboarding_id, lambda d: d["state"] != "received", what="code exchanged", timeout=15.0
    )
    broker.send("coexist.sync.sweep")  # what beat does every minute

    api.wait_for_onboarding(
        onboarding_id, lambda d: d["state"] == "synced", what="synced", timeout=5.0
    )


def test_media_announced_during_the_code_exchange_is_stored_without_the_watchdog(
    api: CoexistApi, sandbox: Sandbox, db: Database, meta: httpx.Client
) -> None:
    """Late media ingested before the code exchange is downloaded after it."""
    signup, _ = deliver_before_signup(sandbox, meta, db)
    sandbox.set_faults(Faults.only("oauth", latency_ms=SLOW_EXCHANGE_MS))

    onboarding_id = start_onboarding(api, signup)
    early = api.wait_for_onboarding(
        onboarding_id,
        lambda d: d["sync"]["history"]["state"] == "completed",
        what="history completed",
    )
    assert early["state"] == "received", describe(early)  # the code is still being exchanged
    api.wait_for_onboarding(
        onboarding_id, lambda d: d["state"] != "received", what="code exchanged", timeout=15.0
    )

    api.wait_for_onboarding(
        onboarding_id,
        lambda d: d["counts"]["media_awaiting"] == 0 and d["counts"]["media_stored"] > 0,
        what="media stored",
        timeout=5.0,
    )
