"""Sends addressed by business-scoped user id, recorded in PostgreSQL through the real stack."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select

from benchmarks._harness import CoexistApi, StackConfig
from models import Database, Message
from models.crypto import TokenCipher
from onboarding.meta.graph import GraphClient
from onboarding.outbound import send as sending
from onboarding.outbound.ledger import LocalSendLedger
from onboarding.outbound.send import SendOutcome, SendStatus
from onboarding.outbound.throttle import LocalTokenBucket
from onboarding.sandbox import Sandbox, SandboxServer
from tests.integration._flow import finished_signup, start_onboarding

pytestmark = pytest.mark.integration

BSUID = "US.13491208655302741918"
TEXT = {"type": "text", "text": {"body": "Does it come in another color? Yes, in blue."}}


@pytest.fixture
def onboarding_id(api: CoexistApi, sandbox: Sandbox) -> int:
    """An onboarding through Embedded Signup, its number on the Cloud API."""
    onboarding_id = start_onboarding(api, finished_signup(sandbox))
    api.wait_for_onboarding(onboarding_id)
    return onboarding_id


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


def send(
    db: Database, graph: GraphClient, stack_config: StackConfig, onboarding_id: int, payload: Any
) -> SendOutcome:
    with db.session() as session:
        return sending.send(
            session,
            graph,
            LocalTokenBucket(),
            ledger=LocalSendLedger(),
            cipher=TokenCipher(stack_config.token_keys),
            onboarding_id=onboarding_id,
            payload=payload,
        )


def stored(db: Database, wamid: str | None) -> Message:
    with db.sessionmaker() as session:
        return session.scalars(select(Message).where(Message.wamid == wamid)).one()


@pytest.mark.parametrize("recipient", [BSUID, "US.ENT.11815799212886844830", "US." + "7" * 128])
def test_a_send_to_a_bsuid_is_recorded_under_it(
    db: Database,
    graph: GraphClient,
    stack_config: StackConfig,
    sandbox: Sandbox,
    onboarding_id: int,
    recipient: str,
) -> None:
    """A send by BSUID (even the longest) goes out with recipient and is stored in PostgreSQL,
    the whole id kept in raw.recipient."""
    outcome = send(db, graph, stack_config, onboarding_id, {**TEXT, "recipient": recipient})

    assert outcome.status is SendStatus.SENT
    assert sandbox.sent_messages()[-1].to == recipient
    row = stored(db, outcome.wamid)
    assert (row.source, row.raw) == ("api", {"recipient": recipient})
    assert recipient.startswith(row.thread)


def test_an_authentication_template_to_a_bsuid_is_refused_with_131062(
    db: Database, graph: GraphClient, stack_config: StackConfig, onboarding_id: int
) -> None:
    """Meta's 131062 is a permanent refusal saying to send by phone number; nothing stored."""
    payload = {
        "recipient": BSUID,
        "type": "template",
        "template": {"name": "auth_code", "language": {"code": "en_US"}},
    }

    outcome = send(db, graph, stack_config, onboarding_id, payload)

    assert (outcome.status, outcome.code) == (SendStatus.REFUSED, 131062)
    assert "phone number" in (outcome.reason or "")
