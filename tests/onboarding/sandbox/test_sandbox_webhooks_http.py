"""Webhook deliveries over real HTTP to a callback on 127.0.0.1, and the control API for them."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from onboarding.sandbox import (
    DeliveryOptions,
    HistoryGenerator,
    HistoryProfile,
    Sandbox,
    SandboxServer,
    WebhookDispatcher,
    verify_signature,
)

APP_SECRET = "sandbox-app-secret"
Configure = Callable[..., WebhookDispatcher]
SMALL = {"threads": 4, "messages_per_thread": 8, "contacts": 6, "duplicate_share": 0.0}


class Receiver:
    """A tiny webhook receiver on 127.0.0.1 answering scripted statuses, then 200."""

    def __init__(self, statuses: list[int] | None = None) -> None:
        self.statuses = list(statuses or [])
        self.requests: list[tuple[str, bytes, dict[str, str]]] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with receiver._lock:
                    receiver.requests.append((self.path, body, dict(self.headers.items())))
                    status = receiver.statuses.pop(0) if receiver.statuses else 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()

    @property
    def url(self) -> str:
        """The callback URL."""
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/webhooks/meta"

    def bodies(self) -> list[bytes]:
        """Bodies received so far."""
        with self._lock:
            return [body for _, body, _ in self.requests]

    def close(self) -> None:
        """Stop serving and release the socket."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A receiver accepting every delivery."""
    running = Receiver()
    yield running
    running.close()


@pytest.fixture
def flaky_receiver() -> Iterator[Receiver]:
    """A receiver failing the first delivery with a 500."""
    running = Receiver([500])
    yield running
    running.close()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def test_http_delivery_posts_signed_json(
    configure: Configure, receiver: Receiver, subscribed_number: str
) -> None:
    """The callback gets a POST with JSON content, Meta's user agent and a valid signature."""
    dispatcher = configure(callback_url=receiver.url)

    dispatcher.emit_echoes(subscribed_number, 2)
    assert dispatcher.wait_idle(5)

    assert len(receiver.requests) == 2
    for path, body, headers in receiver.requests:
        assert path == "/webhooks/meta"
        assert headers["Content-Type"] == "application/json"
        assert headers["User-Agent"] == "facebookexternalua"
        assert verify_signature(body, headers["X-Hub-Signature-256"], APP_SECRET)


def test_http_delivery_retries_after_a_500(
    configure: Configure, flaky_receiver: Receiver, subscribed_number: str
) -> None:
    """A 500 from the callback is retried with the same bytes and then delivered."""
    dispatcher = configure(callback_url=flaky_receiver.url)

    dispatcher.emit_echoes(subscribed_number, 1)
    assert dispatcher.wait_idle(5)

    first, second = flaky_receiver.bodies()
    assert first == second
    (record,) = dispatcher.records()
    assert (record.attempts, record.delivered, record.last_status) == (2, True, 200)
    assert dispatcher.stats()["attempts"] == 2


def test_unreachable_callback_fails_after_max_attempts(
    configure: Configure, subscribed_number: str
) -> None:
    """Connection errors are retried with backoff, then the delivery is given up."""
    options = DeliveryOptions(max_attempts=3, retry_delay=0.01, timeout=1.0)
    dispatcher = configure(callback_url=f"http://127.0.0.1:{_free_port()}/hook", delivery=options)

    dispatcher.emit_echoes(subscribed_number, 1)
    assert dispatcher.wait_idle(5)

    (record,) = dispatcher.records()
    assert (record.attempts, record.failed, record.delivered) == (3, True, False)
    assert record.last_status is None
    assert record.last_error is not None
    assert record.last_error.startswith("ConnectError")


def test_delivery_delay_paces_deliveries(
    configure: Configure, receiver: Receiver, subscribed_number: str
) -> None:
    """delivery_delay spaces consecutive deliveries."""
    dispatcher = configure(callback_url=receiver.url, delivery=DeliveryOptions(delivery_delay=0.05))
    started = time.monotonic()

    dispatcher.emit_echoes(subscribed_number, 3)
    assert dispatcher.wait_idle(5)

    assert time.monotonic() - started >= 0.1
    assert len(receiver.requests) == 3


def test_whole_flow_over_http_with_the_control_api(sandbox: Sandbox, receiver: Receiver) -> None:
    """Configured through PUT /_sandbox/webhooks, syncs over HTTP push webhooks to the callback."""
    with SandboxServer(sandbox) as server, httpx.Client(base_url=server.url, timeout=5) as http:
        config = {"callback_url": receiver.url, "profile": SMALL, "echoes": 1}
        assert http.put("/_sandbox/webhooks", json=config).status_code == 200
        business = http.post("/_sandbox/businesses", json={"name": "Wire Shop"}).json()
        signup = http.post("/_sandbox/signups", json={"waba_id": business["waba_id"]}).json()
        token = sandbox.issue_token(business["business_id"])
        auth = {"Authorization": f"Bearer {token}"}
        number_id = business["phone_numbers"][0]["id"]
        assert signup["session"]["data"]["waba_id"] == business["waba_id"]
        http.post(f"/v25.0/{business['waba_id']}/subscribed_apps", headers=auth)
        for sync_type in ("smb_app_state_sync", "history"):
            http.post(
                f"/v25.0/{number_id}/smb_app_data",
                json={"messaging_product": "whatsapp", "sync_type": sync_type},
                headers=auth,
            )
        assert sandbox.webhooks is not None
        assert sandbox.webhooks.wait_idle(5)
        state = http.get("/_sandbox/webhooks", params={"limit": 3}).json()

    assert state["stats"]["delivered"] == len(receiver.requests) > 3
    assert state["stats"]["idle"] is True
    assert len(state["deliveries"]) == 3
    assert state["config"]["callback_url"] == receiver.url
    fields = {record.field for record in sandbox.webhooks.records()}
    assert fields == {"smb_app_state_sync", "history", "smb_message_echoes"}
    sandbox.disable_webhooks()


def test_profile_fields_set_through_the_control_api_shape_the_history(
    sandbox: Sandbox, receiver: Receiver, subscribed_number: str, sync: Callable[..., Any]
) -> None:
    """Profile fields given to PUT /_sandbox/webhooks size the delivered history."""
    profile = {**SMALL, "shuffle": False, "chunk_size": 8, "media_share": 0.0}
    with httpx.Client(transport=sandbox.mock_transport(), base_url="http://sb/_sandbox") as control:
        control.put("/webhooks", json={"callback_url": receiver.url, "profile": profile})

    sync(subscribed_number, "history")
    assert sandbox.webhooks is not None
    assert sandbox.webhooks.wait_idle(5)

    history = [body for body in receiver.bodies() if b'"threads"' in body]
    plan = HistoryGenerator(
        HistoryProfile.from_dict(profile), sandbox.number_context(subscribed_number)
    ).plan
    assert plan.total_messages == 32
    assert len(history) == plan.total_chunks
    sandbox.disable_webhooks()
