"""The relay on the real stack: PostgreSQL, the web app, a Celery worker on ``relay``, the
sandbox, and a provider's receiver on 127.0.0.1.

* the inbox is read below the oldest running transaction: a delivery whose transaction commits
  late is forwarded in its place, never skipped;
* in front: coexist owns the app's callback and the provider's receiver gets every delivery,
  byte for byte, with Meta's signature, in order;
* beside: the provider owns the app's callback and forwards ``account_update`` to coexist;
  coexist gets the WABA's webhooks through its override and relays ``messages`` back.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from benchmarks._harness import (
    BrokerClient,
    ManagedProcess,
    StackConfig,
    WebServer,
    start_worker,
)
from models import Database, InboxDelivery, utcnow
from onboarding.ingest.inbox import Received, receive
from onboarding.meta.signatures import sign
from onboarding.relay.receiver import DELIVERY_HEADER, Receiver
from onboarding.relay.run import run
from onboarding.sandbox import Sandbox, SandboxServer
from tests.conftest import make_settings
from tests.onboarding.relay.provider import Got, ProviderReceiver

pytestmark = pytest.mark.integration

COEXIST_OVERRIDE = "https://coexist.example/webhooks/meta"
LIFECYCLE_FIELDS = {"account_update", "user_id_update"}


def delivery(stack: StackConfig, field: str, n: int) -> tuple[bytes, dict[str, str]]:
    """A signed delivery of ``field`` as Meta would post it."""
    value = {"messaging_product": "whatsapp", "metadata": {"phone_number_id": "1065"}, "n": n}
    payload = {
        "object": "whatsapp_business_account",
        "entry": [
            {"id": "1022", "time": 1_780_000_000 + n, "changes": [{"field": field, "value": value}]}
        ],
    }
    body = json.dumps(payload, separators=(",", ":")).encode()
    return body, {
        "X-Hub-Signature-256": sign(body, stack.app_secret),
        "Content-Type": "application/json",
    }


def fields_of(body: bytes) -> set[str]:
    payload = json.loads(body)
    return {c["field"] for e in payload.get("entry", []) for c in e.get("changes", [])}


def wait_for(
    condition: Callable[[], bool], *, kick: Callable[[], None] | None = None, timeout: float = 30
) -> None:
    """Poll until ``condition`` holds (a write transaction anywhere in the cluster delays what
    the relay may read), calling ``kick`` between polls."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail("condition not met in time", pytrace=False)
        if kick is not None:
            kick()
        time.sleep(0.2)


@pytest.fixture
def relay_worker(
    request: pytest.FixtureRequest,
    stack_config: StackConfig,
    sandbox_server: SandboxServer,
    broker: BrokerClient,
    tmp_path: Path,
) -> Iterator[Callable[[str, str], ManagedProcess]]:
    """Start a worker on ``relay`` forwarding to a URL, with a field filter."""
    started: list[ManagedProcess] = []

    def start(url: str, fields: str) -> ManagedProcess:
        config = dataclasses.replace(
            stack_config,
            overrides={**stack_config.overrides, "relay_url": url, "relay_fields": fields},
        )
        process = start_worker(
            config, sandbox_server.url, tmp_path, broker=broker, queues=("relay",), concurrency=1
        )
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()


def relay_once(db: Database, url: str) -> None:
    """One relay run in this process (the worker's code, run in-line)."""
    receiver = Receiver(url, timeout=5)
    try:
        with db.session() as session:
            run(session, receiver, make_settings(relay_url=url))
    finally:
        receiver.close()


def test_a_delivery_whose_transaction_commits_late_is_forwarded_in_its_place(
    db: Database, stack_config: StackConfig
) -> None:
    """An inbox insert stays uncommitted while two later deliveries commit: the relay forwards
    nothing past it until it commits, then all three, the late one first. A cursor over ids
    alone would have passed it over."""
    with ProviderReceiver() as provider:
        first = delivery(stack_config, "messages", 1)
        with db.session() as session:
            receive(session, Received(first[0], first[1]["X-Hub-Signature-256"]))
        wait_for(lambda: len(provider.accepted()) == 1, kick=lambda: relay_once(db, provider.url))
        late_body, late_headers = delivery(stack_config, "messages", 2)
        late = db.sessionmaker()
        late.add(
            InboxDelivery(
                sha256="late" + "0" * 60,
                body=late_body,
                size=len(late_body),
                received_at=utcnow(),
                status="pending",
                signature=late_headers["X-Hub-Signature-256"],
                content_type="application/json",
                attempts=0,
                duplicates=0,
            )
        )
        late.flush()
        bodies = []
        for n in (3, 4):
            body, headers = delivery(stack_config, "messages", n)
            with db.session() as session:
                receive(session, Received(body, headers["X-Hub-Signature-256"]))
            bodies.append(body)
        with db.sessionmaker() as session:
            ids = sorted(session.scalars(select(InboxDelivery.id)))
        assert len(ids) == 3  # the late row's id is taken but not visible yet
        relay_once(db, provider.url)
        assert len(provider.accepted()) == 1
        late.commit()
        late.close()
        wait_for(lambda: len(provider.accepted()) == 4, kick=lambda: relay_once(db, provider.url))
        assert [g.body for g in provider.accepted()] == [first[0], late_body, *bodies]


def test_in_front_the_providers_receiver_gets_every_delivery_unchanged_and_in_order(
    web: WebServer,
    stack_config: StackConfig,
    broker: BrokerClient,
    relay_worker: Callable[[str, str], ManagedProcess],
) -> None:
    """Deliveries Meta posts to coexist's callback reach the provider's receiver byte for byte,
    with a signature valid under the app secret, in the order coexist received them."""
    with ProviderReceiver() as provider:
        relay_worker(provider.url, "")
        sent = []
        with httpx.Client(base_url=web.url, timeout=10) as meta:
            for n, field in enumerate(
                ["history", "messages", "account_update", "smb_message_echoes", "messages"] * 4
            ):
                body, headers = delivery(stack_config, field, n)
                assert meta.post("/webhooks/meta", content=body, headers=headers).status_code == 200
                sent.append(body)
        wait_for(
            lambda: len(provider.accepted()) >= len(sent),
            kick=lambda: broker.send("coexist.relay.forward"),
        )
        got = provider.accepted()
        assert [g.body for g in got] == sent
        assert all(g.signed_by(stack_config.app_secret) for g in got)
        assert len({g.headers[DELIVERY_HEADER.lower()] for g in got}) == len(sent)


def test_beside_the_provider_forwards_account_update_and_coexist_relays_messages_back(
    web: WebServer,
    db: Database,
    sandbox: Sandbox,
    stack_config: StackConfig,
    broker: BrokerClient,
    relay_worker: Callable[[str, str], ManagedProcess],
) -> None:
    """The provider owns the app's callback, coexist the WABA's override: history and messages
    come to coexist, account_update to the provider, who forwards it to coexist unchanged;
    coexist relays only ``messages`` back, so the provider sees its customers' messages."""
    coexist_url = f"{web.url}/webhooks/meta"

    def forward_lifecycle(got: Got) -> None:  # the README's snippet, in the provider
        if fields_of(got.body) & LIFECYCLE_FIELDS:
            httpx.post(
                coexist_url,
                content=got.body,
                timeout=10,
                headers={
                    "Content-Type": got.headers.get("content-type", "application/json"),
                    "X-Hub-Signature-256": got.headers["x-hub-signature-256"],
                },
            )

    with ProviderReceiver(on_request=forward_lifecycle) as provider:
        relay_worker(provider.url, "messages")
        business = sandbox.add_business("Lucky Shrub", 1)
        number = sandbox.complete_signup(business.waba_id).phone_number_id
        sandbox.set_webhook_override(business.waba_id, COEXIST_OVERRIDE, "coexist-vt")
        dispatcher = sandbox.configure_webhooks(
            callback_url=provider.url, override_targets={COEXIST_OVERRIDE: coexist_url}
        )
        try:
            history = dispatcher.emit_change(number, "history", {"history": []})
            update = dispatcher.emit_change(
                number, "account_update", {"event": "ACCOUNT_OFFBOARDED"}
            )
            message = dispatcher.emit_change(number, "messages", {"messages": []})
            assert dispatcher.wait_idle(10)
        finally:
            sandbox.disable_webhooks()

        def stored() -> list[bytes]:
            with db.sessionmaker() as session:
                return list(session.scalars(select(InboxDelivery.body).order_by(InboxDelivery.id)))

        wait_for(lambda: len(stored()) == 3)
        assert set(stored()) == {history, update, message}
        wait_for(
            lambda: any(DELIVERY_HEADER.lower() in g.headers for g in provider.accepted()),
            kick=lambda: broker.send("coexist.relay.forward"),
        )
        time.sleep(1)  # anything else the relay would send has had its chance
        broker.send("coexist.relay.forward")
        time.sleep(1)
        from_meta = [
            g.body for g in provider.accepted() if DELIVERY_HEADER.lower() not in g.headers
        ]
        relayed = [g for g in provider.accepted() if DELIVERY_HEADER.lower() in g.headers]
        assert from_meta == [update]  # Meta sent the provider only the lifecycle
        assert [g.body for g in relayed] == [message]
        assert relayed[0].signed_by(stack_config.app_secret)
