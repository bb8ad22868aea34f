"""An onboarding with a relink reminder, the provider's webhook endpoint, Meta's /messages."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from config import Settings
from models import Database, Onboarding, OnboardingState, utcnow
from models.crypto import TokenCipher
from onboarding.followups.channels import WebhookChannel, WhatsAppTemplateChannel
from onboarding.meta.graph import GraphClient
from onboarding.signup.intake import SignupBody, accept_signup
from tests.onboarding.followups.helpers import (
    PROVIDER_NUMBER_ID,
    PROVIDER_TOKEN,
    SECRET,
    FakeMessages,
    K,
    Received,
    Receiver,
    add_follow_up,
)


@pytest.fixture
def onboarding_id(db: Database, settings: Settings, cipher: TokenCipher) -> int:
    """A synced onboarding of +1 650-555-1234 whose app was last opened 11 days ago."""
    with db.session() as session:
        body = SignupBody.model_validate(
            {
                "code": "AQc",
                "session": {
                    "type": "WA_EMBEDDED_SIGNUP",
                    "event": "FINISH_WHATSAPP_BUSINESS_APP_ONBOARDING",
                    "data": {"waba_id": "1"},
                },
            }
        )
        outcome = accept_signup(session, body, settings=settings, cipher=cipher)
        onboarding = session.get_one(Onboarding, outcome.onboarding_id)
        onboarding.phone_number_id = "106540352242922"
        onboarding.display_phone_number = "+1 650-555-1234"
        onboarding.verified_name = "Lucky Shrub"
        onboarding.state = OnboardingState.SYNCED.value
        onboarding.last_app_activity_at = utcnow() - timedelta(days=11, hours=2)
        return onboarding.id


@pytest.fixture
def relink(db: Database, onboarding_id: int) -> int:
    return add_follow_up(db, onboarding_id, K.COMPANION_RELINK, reason="onboarding")


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver()

    class Endpoint(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            state.requests.append(Received({k.lower(): v for k, v in self.headers.items()}, body))
            reply = b'{"ok":true}'
            self.send_response(state.answer())
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(reply)))
            for name, value in state.headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Endpoint)
    thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/coexist/notifications"
    yield state
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


@pytest.fixture
def webhook(receiver: Receiver) -> Iterator[WebhookChannel]:
    channel = WebhookChannel(receiver.url, SECRET, max_attempts=3, backoff=0.001, max_wait=0.01)
    yield channel
    channel.close()


@pytest.fixture
def meta() -> FakeMessages:
    return FakeMessages()


@pytest.fixture
def whatsapp(meta: FakeMessages) -> Iterator[WhatsAppTemplateChannel]:
    graph = GraphClient(
        app_id="1", app_secret="s", transport=httpx.MockTransport(meta), max_wait=0.001
    )
    yield WhatsAppTemplateChannel(
        graph,
        phone_number_id=PROVIDER_NUMBER_ID,
        token=PROVIDER_TOKEN,
        template_name="coexist_reminder",
        language="en_US",
    )
    graph.close()
