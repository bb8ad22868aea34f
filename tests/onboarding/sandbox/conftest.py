"""Fixtures for the sandbox tests: a manual clock, a seeded sandbox, clients and webhook sinks."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from onboarding.sandbox import Business, CollectingSink, Sandbox, WebhookDispatcher

APP_ID = "1234567890123"
APP_SECRET = "sandbox-app-secret"
GRAPH = "https://graph.facebook.com/v25.0"
START = 1_780_000_000.0


class ManualClock:
    """A clock that only moves when a test says so."""

    def __init__(self, start: float = START) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> ManualClock:
    """A manual clock starting at a fixed instant."""
    return ManualClock()


@pytest.fixture
def sandbox(clock: ManualClock) -> Sandbox:
    """A seeded sandbox on the manual clock."""
    return Sandbox(APP_ID, APP_SECRET, clock=clock, seed=7)


@pytest.fixture
def business(sandbox: Sandbox) -> Business:
    """A business with two coexistence numbers."""
    return sandbox.add_business("Lucky Shrub", ["15550783881", "15550783882"])


@pytest.fixture
def graph(sandbox: Sandbox) -> Iterator[httpx.Client]:
    """An httpx client talking to the sandbox in-process, as unit tests of the client will."""
    with httpx.Client(transport=sandbox.mock_transport(), base_url=GRAPH) as client:
        yield client


@pytest.fixture
def token(sandbox: Sandbox, business: Business) -> str:
    """A business token for ``business``."""
    return sandbox.issue_token(business.id)


@pytest.fixture
def auth(token: str) -> dict[str, str]:
    """The bearer header for ``token``."""
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def exchange(graph: httpx.Client) -> Callable[..., httpx.Response]:
    """Exchange a code with the right app credentials unless overridden."""

    def run(code: str, **overrides: Any) -> httpx.Response:
        params = {"client_id": APP_ID, "client_secret": APP_SECRET, "code": code, **overrides}
        return graph.get("/oauth/access_token", params=params)

    return run


@pytest.fixture
def sync(graph: httpx.Client, auth: dict[str, str]) -> Callable[[str, str], httpx.Response]:
    """Call ``smb_app_data`` for a number and a sync type."""

    def run(phone_number_id: str, sync_type: str) -> httpx.Response:
        return graph.post(
            f"/{phone_number_id}/smb_app_data",
            json={"messaging_product": "whatsapp", "sync_type": sync_type},
            headers=auth,
        )

    return run


@pytest.fixture
def sink() -> CollectingSink:
    """An in-process webhook sink answering 200."""
    return CollectingSink()


@pytest.fixture
def subscribed_number(sandbox: Sandbox, business: Business) -> str:
    """A coexistence number whose signup just finished, its WABA subscribed to webhooks."""
    number_id = sandbox.complete_signup(business.waba_id, business.phone_number_ids[0])
    token = sandbox.issue_token(business.id)
    with httpx.Client(transport=sandbox.mock_transport(), base_url=GRAPH) as client:
        response = client.post(
            f"/{business.waba_id}/subscribed_apps", headers={"Authorization": f"Bearer {token}"}
        )
    assert response.json() == {"success": True}
    return number_id.phone_number_id


@pytest.fixture
def configure(sandbox: Sandbox) -> Iterator[Callable[..., WebhookDispatcher]]:
    """Configure the sandbox's webhooks; the dispatcher is closed after the test."""

    def run(**kwargs: Any) -> WebhookDispatcher:
        return sandbox.configure_webhooks(**kwargs)

    yield run
    sandbox.disable_webhooks()
