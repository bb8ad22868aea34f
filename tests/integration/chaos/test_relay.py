"""Chaos: the web process SIGKILLed during a burst of Meta deliveries, with the relay on.

A delivery answered ``200`` was committed to the inbox before the answer (the receiver's
promise), so it must be there after the kill, and the relay must forward it to the provider's
receiver, byte for byte with Meta's signature, whatever was in flight when the process died.
Deliveries whose request died with the process got no ``200``: Meta sends them again, and a
second web process takes them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import signal
import threading
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from benchmarks._harness import BrokerClient, StackConfig, start_web, start_worker
from models import Database, InboxDelivery
from onboarding.sandbox import SandboxServer
from tests.integration.test_relay import delivery, wait_for
from tests.onboarding.relay.provider import ProviderReceiver

pytestmark = [pytest.mark.integration, pytest.mark.chaos]

#: Deliveries each of the burst's senders posts.
PER_SENDER = 150
SENDERS = 4


def test_a_web_process_killed_mid_burst_loses_no_answered_delivery(
    db: Database,
    broker: BrokerClient,
    stack_config: StackConfig,
    sandbox_server: SandboxServer,
    tmp_path: Path,
) -> None:
    """Four senders post 600 signed deliveries while the web process is SIGKILLed: each one
    answered 200 is in the inbox and reaches the provider's receiver, signed as Meta signed it;
    a second web process then takes what the first never answered."""
    with ProviderReceiver() as provider:
        config = dataclasses.replace(
            stack_config, overrides={**stack_config.overrides, "relay_url": provider.url}
        )
        answered: dict[bytes, int] = {}
        unanswered: list[tuple[bytes, dict[str, str]]] = []
        lock = threading.Lock()
        first = start_web(config, sandbox_server.url, tmp_path / "web1")
        started = threading.Event()

        def send(sender: int) -> None:
            with httpx.Client(base_url=first.url, timeout=5) as meta:
                for n in range(PER_SENDER):
                    body, headers = delivery(stack_config, "messages", sender * 1000 + n)
                    try:
                        status = meta.post("/webhooks/meta", content=body, headers=headers)
                        ok = status.status_code == 200
                    except httpx.HTTPError:
                        ok = False
                    with lock:
                        if ok:
                            answered[body] = sender
                        else:
                            unanswered.append((body, headers))
                    started.set()

        senders = [threading.Thread(target=send, args=(s,)) for s in range(SENDERS)]
        for thread in senders:
            thread.start()
        assert started.wait(30)
        time.sleep(0.3)
        pid = first.process.pid
        assert pid is not None
        os.killpg(os.getpgid(pid), signal.SIGKILL)
        for thread in senders:
            thread.join(60)
        first.process.stop()
        assert answered, "no delivery was answered before the kill"
        assert unanswered, "the kill came after the burst: nothing was in flight"

        stored = _stored(db)
        assert {hashlib.sha256(b).hexdigest() for b in answered} <= stored

        with start_web(config, sandbox_server.url, tmp_path / "web2") as second:
            with httpx.Client(base_url=second.url, timeout=10) as meta:
                for body, headers in unanswered:  # Meta sends what got no 200 again
                    assert meta.post("/webhooks/meta", content=body, headers=headers).is_success
            worker = start_worker(
                config, sandbox_server.url, tmp_path / "relay", broker=broker, queues=("relay",)
            )
            with worker:
                everything = set(answered) | {b for b, _ in unanswered}
                wait_for(
                    lambda: everything <= {g.body for g in provider.accepted()},
                    kick=lambda: broker.send("coexist.relay.forward"),
                    timeout=120,
                )
        got = provider.accepted()
        assert all(g.signed_by(stack_config.app_secret) for g in got)
        first_seen = list(dict.fromkeys(g.body for g in got))
        assert set(first_seen) == everything
        senders_order = [answered.get(b) for b in first_seen if b in answered]
        for sender in range(SENDERS):  # each sender's answered deliveries in its own order
            mine = [b for b in first_seen if answered.get(b) == sender]
            assert mine == sorted(mine, key=lambda b: int(b.split(b'"n":')[1].split(b"}")[0]))
        assert len(senders_order) == len(answered)


def _stored(db: Database) -> set[str]:
    with db.sessionmaker() as session:
        return set(session.scalars(select(InboxDelivery.sha256)))
