"""Notifier.from_settings: the channels COEX_NOTIFY_CHANNELS names, refused when unset."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import SecretStr

from config import Settings
from onboarding.followups.notifier import Notifier
from onboarding.meta.graph import GraphClient
from tests.conftest import make_settings
from tests.onboarding.followups.helpers import PROVIDER_NUMBER_ID, PROVIDER_TOKEN, SECRET


def notify_settings(**values: Any) -> Settings:
    return make_settings(**values)


def test_from_settings_defaults_to_the_log_channel() -> None:
    """Without notify settings the notifier logs."""
    notifier = Notifier.from_settings(notify_settings())
    assert [c.name for c in notifier.channels] == ["log"]


def test_from_settings_builds_the_chosen_channels(graph: GraphClient) -> None:
    """Each chosen channel is built from its settings, in the order named."""
    settings = notify_settings(
        notify_channels="webhook, whatsapp_template,log",
        notify_webhook_url="https://provider.example/coexist",
        notify_webhook_secret=SecretStr(SECRET),
        notify_whatsapp_phone_number_id=PROVIDER_NUMBER_ID,
        notify_whatsapp_token=SecretStr(PROVIDER_TOKEN),
        notify_whatsapp_template="coexist_reminder",
    )
    with Notifier.from_settings(settings, graph) as notifier:
        assert [c.name for c in notifier.channels] == ["webhook", "whatsapp_template", "log"]


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"notify_channels": "webhook"}, "COEX_NOTIFY_WEBHOOK_URL, COEX_NOTIFY_WEBHOOK_SECRET"),
        (
            {"notify_channels": "webhook", "notify_webhook_url": "https://p.example/x"},
            "COEX_NOTIFY_WEBHOOK_SECRET is not set",
        ),
        (
            {
                "notify_channels": "whatsapp_template",
                "notify_whatsapp_phone_number_id": PROVIDER_NUMBER_ID,
                "notify_whatsapp_token": SecretStr(PROVIDER_TOKEN),
            },
            "COEX_NOTIFY_WHATSAPP_TEMPLATE is not set",
        ),
        ({"notify_channels": "log,sms"}, "unknown notify channel(s) sms"),
        ({"notify_channels": " , "}, "COEX_NOTIFY_CHANNELS is empty"),
    ],
    ids=["webhook-nothing", "webhook-no-secret", "whatsapp-no-template", "unknown", "empty"],
)
def test_from_settings_refuses_a_channel_without_its_settings(
    values: dict[str, Any], message: str, graph: GraphClient
) -> None:
    """A chosen channel whose settings are missing is refused with their names."""
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        Notifier.from_settings(notify_settings(**values), graph)


def test_from_settings_refuses_whatsapp_without_a_graph_client() -> None:
    """The WhatsApp channel needs the Graph client it sends through."""
    settings = notify_settings(
        notify_channels="whatsapp_template",
        notify_whatsapp_phone_number_id=PROVIDER_NUMBER_ID,
        notify_whatsapp_token=SecretStr(PROVIDER_TOKEN),
        notify_whatsapp_template="coexist_reminder",
    )
    with pytest.raises(ValueError, match="needs the Graph client"):
        Notifier.from_settings(settings)
