"""``messages`` webhook values of live traffic, in the shapes of Meta's messages and status
webhook references (docs/meta.md#1114-live-messages-and-statuses)."""

from __future__ import annotations

from typing import Any

from tests.onboarding.deliveries import Business, envelope

#: Meta's example text message ("Does it come in another color?"), from a user whose number
#: differs from the test business's.
USER = "16505550000"
USER_CONTACT = {"profile": {"name": "Sheena Nelson"}, "wa_id": USER}
#: A 1x1 JPEG's digest as Meta's example writes one (base64).
IMAGE_SHA256 = "Dwz0Y+YyS3IpHUm3cZTh1ISpyDqsFzyOmVdmGsV3ev0="
IMAGE_ID = "1003383421387256"


def user_message(
    wamid: str, ts: int, kind: str, content: dict[str, Any], *, phone: str | None = USER
) -> dict[str, Any]:
    """A user's message in ``value.messages[]``: ``from`` when the number is shared."""
    msg: dict[str, Any] = {"id": wamid, "timestamp": str(ts), "type": kind, kind: content}
    if phone is not None:
        msg["from"] = phone
    return msg


def live_text(wamid: str, ts: int, body: str, *, phone: str | None = USER) -> dict[str, Any]:
    return user_message(wamid, ts, "text", {"body": body}, phone=phone)


def live_image(wamid: str, ts: int, caption: str) -> dict[str, Any]:
    """Meta's image message: caption, mime type, sha256, media id (and a URL)."""
    return user_message(
        wamid,
        ts,
        "image",
        {
            "caption": caption,
            "mime_type": "image/jpeg",
            "sha256": IMAGE_SHA256,
            "id": IMAGE_ID,
            "url": f"https://lookaside.fbsbx.com/whatsapp_business/attachments/?mid={IMAGE_ID}",
        },
    )


def incoming(
    business: Business,
    *messages: dict[str, Any],
    contacts: list[dict[str, Any]] | None = None,
    phone_number_id: str | None = None,
) -> dict[str, Any]:
    """A ``messages`` delivery of users' messages with their ``contacts[]``."""
    payload = envelope(
        business,
        "messages",
        {"contacts": [USER_CONTACT] if contacts is None else contacts, "messages": list(messages)},
    )
    if phone_number_id is not None:
        payload["entry"][0]["changes"][0]["value"]["metadata"]["phone_number_id"] = phone_number_id
    return payload


def status(
    wamid: str,
    state: str,
    ts: int,
    *,
    recipient: str = USER,
    errors: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """A ``statuses[]`` item as Meta's status reference shows it."""
    item: dict[str, Any] = {
        "id": wamid,
        "status": state,
        "timestamp": str(ts),
        "recipient_id": recipient,
    }
    if state != "failed":
        item["pricing"] = {"billable": True, "pricing_model": "PMP", "category": "service"}
    if errors is not None:
        item["errors"] = errors
    return item


#: Meta's example error of a failed status (re-engagement: the 24-hour window has closed).
REENGAGEMENT_ERROR = {
    "code": 131047,
    "title": "Re-engagement message",
    "message": "Re-engagement message",
    "error_data": {
        "details": "Message failed to send because more than 24 hours have passed since the "
        "customer last replied to this number."
    },
    "href": "https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes/",
}


def statuses(business: Business, *items: dict[str, Any]) -> dict[str, Any]:
    """A ``messages`` delivery of statuses."""
    return envelope(business, "messages", {"statuses": list(items)})
