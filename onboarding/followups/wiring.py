"""The channels ``COEX_NOTIFY_CHANNELS`` names, built from the typed settings.

:func:`channels_from_settings` refuses (``ValueError``, naming the ``COEX_*`` variables) an
empty or unknown channel name and a chosen channel whose settings are not set, so a worker with
a half-configured channel fails at its first follow-up rather than sending half of them.
"""

from __future__ import annotations

from typing import Final

import httpx

from config import Settings
from onboarding.followups.channels import (
    Channel,
    LogChannel,
    WebhookChannel,
    WhatsAppTemplateChannel,
)
from onboarding.meta.graph import GraphClient

CHANNEL_NAMES: Final = ("log", "webhook", "whatsapp_template")


def channels_from_settings(
    settings: Settings, graph: GraphClient | None = None, *, http: httpx.Client | None = None
) -> list[Channel]:
    """The chosen channels, in the order named; ``graph`` is needed by ``whatsapp_template``."""
    channels: list[Channel] = []
    for name in channel_names(settings.notify_channels):
        if name == "log":
            channels.append(LogChannel())
        elif name == "webhook":
            channels.append(_webhook(settings, http))
        else:
            channels.append(_whatsapp(settings, graph))
    return channels


def channel_names(raw: str) -> list[str]:
    """The distinct channel names of a comma list, lowercased; ValueError if none or unknown."""
    names = list(dict.fromkeys(n.strip().lower() for n in raw.split(",") if n.strip()))
    if not names:
        raise ValueError("COEX_NOTIFY_CHANNELS is empty; name at least one channel (log)")
    unknown = [n for n in names if n not in CHANNEL_NAMES]
    if unknown:
        raise ValueError(
            f"unknown notify channel(s) {', '.join(unknown)} in COEX_NOTIFY_CHANNELS; "
            f"known: {', '.join(CHANNEL_NAMES)}"
        )
    return names


def _refuse_missing(channel: str, values: dict[str, str]) -> None:
    missing = [name for name, value in values.items() if not value]
    if missing:
        names = ", ".join(f"COEX_{m.upper()}" for m in missing)
        raise ValueError(f"notify channel {channel!r} is chosen but {names} is not set")


def _webhook(settings: Settings, http: httpx.Client | None) -> WebhookChannel:
    url = settings.notify_webhook_url
    secret = settings.notify_webhook_secret.get_secret_value()
    _refuse_missing("webhook", {"notify_webhook_url": url, "notify_webhook_secret": secret})
    return WebhookChannel(
        url,
        secret,
        timeout=settings.notify_webhook_timeout,
        max_attempts=settings.notify_webhook_max_attempts,
        http=http,
    )


def _whatsapp(settings: Settings, graph: GraphClient | None) -> WhatsAppTemplateChannel:
    token = settings.notify_whatsapp_token.get_secret_value()
    _refuse_missing(
        "whatsapp_template",
        {
            "notify_whatsapp_phone_number_id": settings.notify_whatsapp_phone_number_id,
            "notify_whatsapp_token": token,
            "notify_whatsapp_template": settings.notify_whatsapp_template,
            "notify_whatsapp_language": settings.notify_whatsapp_language,
        },
    )
    if graph is None:
        raise ValueError("notify channel 'whatsapp_template' needs the Graph client")
    parameters = settings.notify_whatsapp_parameters.split(",")
    return WhatsAppTemplateChannel(
        graph,
        phone_number_id=settings.notify_whatsapp_phone_number_id,
        token=token,
        template_name=settings.notify_whatsapp_template,
        language=settings.notify_whatsapp_language,
        parameters=[p.strip() for p in parameters if p.strip()],
    )
