"""Live traffic through the real stack: a send, its statuses and the user's reply join the
history of the same thread, on PostgreSQL.

The send goes through ``send_message`` to the served sandbox; Meta's ``messages`` webhooks (the
send's statuses out of order, then the user's reply) are posted signed to the web app and
processed by the real ``ingest`` worker.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from benchmarks._harness import CoexistApi, ManagedProcess, StackConfig, WebServer, poll_until
from models import Database, FeedEvent, InboxDelivery, InboxStatus, Message
from models.crypto import TokenCipher
from onboarding.meta.graph import GraphClient
from onboarding.meta.signatures import sign
from onboarding.outbound import send as sending
from onboarding.outbound.ledger import LocalSendLedger
from onboarding.outbound.send import SendStatus
from onboarding.outbound.throttle import LocalTokenBucket
from onboarding.sandbox import Sandbox, SandboxServer
from tests.integration._flow import onboarded_business
from tests.onboarding.deliveries import Business, body_of, chunk, text
from tests.onboarding.ingest.live_payloads import USER, incoming, live_text, status, statuses

pytestmark = pytest.mark.integration

#: A processed delivery takes well under a second; one that fails is retried for minutes.
PROCESSED_WITHIN = 20.0


@pytest.fixture
def meta(web: WebServer, ingest_worker: ManagedProcess, sandbox: Sandbox) -> Iterator[httpx.Client]:
    """An HTTP client posting to the web app as Meta does; the ingest worker runs."""
    if not ingest_worker.running:
        pytest.fail(f"{ingest_worker.name} exited:\n{ingest_worker.log_tail()}", pytrace=False)
    sandbox.disable_webhooks()
    with httpx.Client(base_url=web.url, timeout=10.0, trust_env=False) as client:
        yield client


@pytest.fixture
def business(api: CoexistApi, sandbox: Sandbox) -> Business:
    return onboarded_business(api, sandbox)


@pytest.fixture
def graph(sandbox_server: SandboxServer, stack_config: StackConfig) -> Iterator[GraphClient]:
    client = GraphClient(
        app_id=stack_config.app_id,
        app_secret=stack_config.app_secret,
        base_url=sandbox_server.url,
        max_wait=0.01,
    )
    yield client
    client.close()


def deliver(
    meta: httpx.Client, db: Database, stack_config: StackConfig, payload: dict[str, Any]
) -> None:
    """Post ``payload`` signed as Meta does; return once the worker has processed it."""
    raw = body_of(payload)
    headers = {
        "X-Hub-Signature-256": sign(raw, stack_config.app_secret),
        "Content-Type": "application/json",
    }
    assert meta.post("/webhooks/meta", content=raw, headers=headers).status_code == 200
    digest = hashlib.sha256(raw).hexdigest()

    def row() -> InboxDelivery | None:
        with db.sessionmaker() as session:
            query = select(InboxDelivery).where(InboxDelivery.sha256 == digest)
            return session.scalars(query).one_or_none()

    settled = poll_until(
        row,
        lambda r: r is not None and r.status != InboxStatus.PENDING,
        what="the delivery processed",
        timeout=PROCESSED_WITHIN,
    )
    assert settled is not None
    assert settled.status == InboxStatus.PROCESSED, settled.last_error


def thread_of(db: Database, onboarding_id: int) -> list[Message]:
    """The onboarding's messages in time order."""
    with db.sessionmaker() as session:
        return list(
            session.scalars(
                select(Message)
                .where(Message.onboarding_id == onboarding_id)
                .order_by(Message.sent_at, Message.id)
            )
        )


def status_moves(db: Database, wamid: str) -> list[tuple[str, str | None]]:
    """The ``message.status`` events of one message, as (status, previous), in feed order."""
    deadline = time.monotonic() + PROCESSED_WITHIN
    while True:  # an event is written with its change; poll in case a reader lags behind
        with db.sessionmaker() as session:
            bodies = session.scalars(
                select(FeedEvent.body)
                .where(FeedEvent.type == "message.status")
                .order_by(FeedEvent.tx, FeedEvent.id)
            ).all()
        moves = [(b["status"], b["previous"]) for b in bodies if b["wamid"] == wamid]
        if len(moves) >= 2 or time.monotonic() > deadline:
            return moves
        time.sleep(0.1)


def test_a_send_its_statuses_and_a_live_reply_join_the_history_thread_in_time_order(
    meta: httpx.Client,
    db: Database,
    graph: GraphClient,
    stack_config: StackConfig,
    business: Business,
) -> None:
    """History with a user, then a send to them, its statuses arriving out of order, and
    their live reply: one peer, four messages in time order, the send read, the reply live."""
    now = int(time.time())
    history = chunk(
        business,
        0,
        1,
        100,
        {
            USER: [
                text("wamid.H1", USER, now - 7200, "Is the blue one in stock?"),
                text("wamid.H2", business.number, now - 7100, "Tomorrow", to=USER),
            ]
        },
    )
    deliver(meta, db, stack_config, history)

    with db.session() as session:
        outcome = sending.send(
            session,
            graph,
            LocalTokenBucket(),
            ledger=LocalSendLedger(),
            cipher=TokenCipher(stack_config.token_keys),
            onboarding_id=business.onboarding_id,
            payload={"to": USER, "type": "text", "text": {"body": "It is in stock now"}},
        )
    assert outcome.status is SendStatus.SENT
    assert outcome.wamid is not None
    wamid = outcome.wamid
    sent = int(time.time())
    for state, at in (("sent", sent), ("read", sent + 2), ("delivered", sent + 1)):
        deliver(meta, db, stack_config, statuses(business, status(wamid, state, at)))
    time.sleep(1.1)  # the reply's whole-second timestamp comes after the send
    reply = live_text("wamid.LIVE1", int(time.time()), "Great, I'll come by")
    deliver(meta, db, stack_config, incoming(business, reply))

    thread = thread_of(db, business.onboarding_id)
    assert [(m.wamid, m.source, m.direction) for m in thread] == [
        ("wamid.H1", "history", "inbound"),
        ("wamid.H2", "history", "outbound"),
        (wamid, "api", "outbound"),
        ("wamid.LIVE1", "live", "inbound"),
    ]
    assert len({m.peer_id for m in thread}) == 1
    assert thread[0].peer_id is not None
    assert {m.thread for m in thread} == {USER}
    assert (thread[2].status, int(thread[2].status_at.timestamp())) == ("read", sent + 2)
    assert thread[3].text_body == "Great, I'll come by"
    assert status_moves(db, wamid) == [("sent", "accepted"), ("read", "sent")]
