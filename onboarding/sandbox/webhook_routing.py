"""Where Meta sends a webhook: the overrides the sandbox holds, as Meta applies them.

A Meta app has one callback URL; an override moves some of a number's or a WABA's webhooks
elsewhere (https://developers.facebook.com/documentation/business-messaging/whatsapp/webhooks/override):
the phone number's override first (``webhook_configuration.override_callback_uri``), then the
WABA's (``POST /{waba}/subscribed_apps`` with ``override_callback_uri``), then the app's
callback. Only the fields in :data:`OVERRIDE_FIELDS` (and ``group_*``) follow an override;
``account_update``, the template fields and ``user_id_update`` always go to the app's callback.
"""

from __future__ import annotations

from typing import Final

from onboarding.sandbox.world import World

OVERRIDE_FIELDS: Final = frozenset(
    {
        "messages",
        "message_echoes",
        "calls",
        "consumer_profile",
        "messaging_handovers",
        "smb_message_echoes",
        "smb_app_state_sync",
        "history",
        "account_settings_update",
    }
)


def follows_override(field: str) -> bool:
    """Whether a change of ``field`` goes to an override when one is set."""
    return field in OVERRIDE_FIELDS or field.startswith("group_")


def override_for(world: World, waba_id: str, phone_number_id: str | None, field: str) -> str | None:
    """The override URL a change of ``field`` goes to, or None for the app's callback."""
    if not follows_override(field):
        return None
    number = world.numbers.get(phone_number_id) if phone_number_id else None
    if number is not None and number.override_callback_uri:
        return number.override_callback_uri
    waba = world.wabas.get(waba_id)
    if waba is not None and waba.override_callback_uri:
        return waba.override_callback_uri
    return None
