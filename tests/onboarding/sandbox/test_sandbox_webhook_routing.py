"""The sandbox routes each delivery by the overrides it holds, as Meta does."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from onboarding.sandbox import Business, CollectingSink, Sandbox, WebhookDispatcher
from onboarding.sandbox.webhook_routing import follows_override
from tests.onboarding.relay.provider import ProviderReceiver

Configure = Callable[..., WebhookDispatcher]
WABA_OVERRIDE = "https://coexist.example/webhooks/meta"
NUMBER_OVERRIDE = "https://numbers.example/webhooks"
ACCOUNT_UPDATE = {"event": "ACCOUNT_OFFBOARDED", "phone_number": "15550783881"}


@pytest.fixture
def override_receiver() -> Iterator[ProviderReceiver]:
    with ProviderReceiver() as receiver:
        yield receiver


@pytest.fixture
def number_receiver() -> Iterator[ProviderReceiver]:
    with ProviderReceiver() as receiver:
        yield receiver


def fields(received: list[Any]) -> list[str]:
    return [str(item.json()["entry"][0]["changes"][0]["field"]) for item in received]


def configured(
    configure: Configure, sink: CollectingSink, *receivers: tuple[str, ProviderReceiver]
) -> WebhookDispatcher:
    return configure(sink=sink, override_targets={url: r.url for url, r in receivers})


def test_fields_that_follow_an_override_are_metas_list() -> None:
    """messages, history and the smb fields follow; account_update and templates do not."""
    assert all(
        map(
            follows_override,
            [
                "messages",
                "history",
                "smb_app_state_sync",
                "smb_message_echoes",
                "group_lifecycle_update",
            ],
        )
    )
    assert not any(
        map(
            follows_override, ["account_update", "user_id_update", "message_template_status_update"]
        )
    )


def test_a_waba_override_gets_history_and_messages_and_the_app_gets_account_update(
    sandbox: Sandbox,
    configure: Configure,
    sink: CollectingSink,
    subscribed_number: str,
    business: Business,
    override_receiver: ProviderReceiver,
) -> None:
    """With a WABA override, ``messages`` go there and ``account_update`` to the app's callback."""
    sandbox.set_webhook_override(business.waba_id, WABA_OVERRIDE, "vt")
    dispatcher = configured(configure, sink, (WABA_OVERRIDE, override_receiver))
    sent = dispatcher.emit_change(subscribed_number, "messages", {"messages": []})
    dispatcher.emit_change(subscribed_number, "account_update", ACCOUNT_UPDATE)
    dispatcher.emit_change(subscribed_number, "user_id_update", {"user_id": {}})
    assert dispatcher.wait_idle(5)
    assert [g.body for g in override_receiver.requests] == [sent]
    assert fields(sink.received) == ["account_update", "user_id_update"]


def test_a_numbers_override_comes_before_its_wabas(
    sandbox: Sandbox,
    configure: Configure,
    sink: CollectingSink,
    subscribed_number: str,
    business: Business,
    override_receiver: ProviderReceiver,
    number_receiver: ProviderReceiver,
) -> None:
    """The number's own override wins over the WABA's, for the fields that follow overrides."""
    sandbox.set_webhook_override(business.waba_id, WABA_OVERRIDE, "vt")
    sandbox.set_number_webhook_override(subscribed_number, NUMBER_OVERRIDE)
    dispatcher = configured(
        configure, sink, (WABA_OVERRIDE, override_receiver), (NUMBER_OVERRIDE, number_receiver)
    )
    dispatcher.emit_echoes(subscribed_number, 1)
    assert dispatcher.wait_idle(5)
    assert len(number_receiver.requests) == 1
    assert override_receiver.requests == []
    assert sink.received == []


def test_without_an_override_everything_goes_to_the_app_callback(
    configure: Configure, sink: CollectingSink, subscribed_number: str
) -> None:
    """No override held: every field goes to the configured callback."""
    dispatcher = configure(sink=sink)
    dispatcher.emit_change(subscribed_number, "messages", {"messages": []})
    dispatcher.emit_change(subscribed_number, "account_update", ACCOUNT_UPDATE)
    assert dispatcher.wait_idle(5)
    assert fields(sink.received) == ["messages", "account_update"]


def test_removing_the_override_sends_the_wabas_webhooks_back_to_the_app(
    sandbox: Sandbox,
    configure: Configure,
    sink: CollectingSink,
    subscribed_number: str,
    business: Business,
    override_receiver: ProviderReceiver,
    graph: httpx.Client,
    auth: dict[str, str],
) -> None:
    """After an empty-body ``subscribed_apps`` POST, history goes to the app's callback again."""
    sandbox.set_webhook_override(business.waba_id, WABA_OVERRIDE, "vt")
    assert graph.post(f"/{business.waba_id}/subscribed_apps", headers=auth).is_success
    dispatcher = configured(configure, sink, (WABA_OVERRIDE, override_receiver))
    dispatcher.emit_change(subscribed_number, "history", {"history": []})
    assert dispatcher.wait_idle(5)
    assert override_receiver.requests == []
    assert fields(sink.received) == ["history"]


def test_override_targets_must_be_urls(configure: Configure) -> None:
    """The control API's ``override_targets`` map refuses a target that is no http(s) URL."""
    with pytest.raises(ValueError, match="override_targets"):
        configure(callback_url="http://127.0.0.1:9/x", override_targets={WABA_OVERRIDE: "ftp://x"})
