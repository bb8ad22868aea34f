"""``POST /{phone_number_id}/messages``: the Cloud API send, for texts and templates.

A send is validated as Graph does (code 100), refused from a number not on the Cloud API
(``133010``) or over its throughput (``130429``, :mod:`.throughput`), and otherwise accepted
with Meta's answer (``contacts`` and ``messages[].id``, a ``wamid``) and recorded.

The person is addressed by ``to`` (phone number) or ``recipient`` (a business-scoped user id,
BSUID, or a parent BSUID); when both are given ``to`` wins, as at Meta. Some messages cannot go
to a BSUID (``131062``): Meta names some authentication templates. The sandbox keeps no
template registry, so it treats a template whose name starts with one of
:data:`AUTHENTICATION_PREFIXES` as an authentication template
(docs/meta.md#1112-sending-to-a-business-scoped-user-id).
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Mapping
from typing import Any, Final

from onboarding.sandbox.errors import GraphReplyError, invalid_parameter
from onboarding.sandbox.records import SentMessage
from onboarding.sandbox.world import PhoneNumber, World

MESSAGE_TYPES: Final = ("text", "template")
MAX_TEXT_BODY: Final = 4096
BSUID_PATTERN: Final = re.compile(r"[A-Z]{2}\.(?:ENT\.)?[A-Za-z0-9]{1,128}")
AUTHENTICATION_PREFIXES: Final = ("auth", "otp", "verification")
BSUID_UNSUPPORTED_CODE: Final = 131062


def send_message(world: World, number: PhoneNumber, params: Mapping[str, Any]) -> dict[str, Any]:
    """Validate, enforce throughput, accept and record one send; return Meta's answer."""
    product = params.get("messaging_product")
    if product is None:
        raise invalid_parameter("The parameter messaging_product is required.")
    if product != "whatsapp":
        raise invalid_parameter(f"Param messaging_product must be 'whatsapp', got {product!r}.")
    recipient_type = params.get("recipient_type", "individual")
    if recipient_type != "individual":
        raise invalid_parameter("Param recipient_type must be 'individual'.")
    address, contact = _recipient(params)
    kind = params.get("type", "text")
    if kind not in MESSAGE_TYPES:
        raise invalid_parameter(
            f"Param type must be one of {{{', '.join(MESSAGE_TYPES)}}} in the sandbox, "
            f"got {kind!r}."
        )
    if kind == "text":
        _check_text(params.get("text"))
    else:
        _check_template(params.get("template"))
        if "wa_id" not in contact and _is_authentication(params["template"]):
            raise _bsuid_unsupported()
    if number.platform_type != "CLOUD_API":
        raise GraphReplyError(
            "(#133010) Account not registered",
            133010,
            error_data={
                "messaging_product": "whatsapp",
                "details": "Phone number not registered on the Whatsapp Business Platform.",
            },
        )
    now = world.now()
    if not world.sends.admit(number.id, now):
        raise GraphReplyError(
            "(#130429) Rate limit hit",
            130429,
            error_data={
                "messaging_product": "whatsapp",
                "details": "Cloud API message throughput has been reached.",
            },
        )
    wamid = _new_wamid(world, address)
    world.sends.record(SentMessage(number.id, address, wamid, kind, now))
    message: dict[str, Any] = {"id": wamid}
    if kind == "template":
        message["message_status"] = "accepted"
    return {"messaging_product": "whatsapp", "contacts": [contact], "messages": [message]}


def _recipient(params: Mapping[str, Any]) -> tuple[str, dict[str, str]]:
    """Who the send goes to: ``(address, contacts[0])``; ``to`` wins over ``recipient``."""
    to = params.get("to")
    if to is not None:
        wa_id = to.removeprefix("+") if isinstance(to, str) else ""
        if not wa_id.isdigit() or not 6 <= len(wa_id) <= 15:
            raise invalid_parameter("Param to must be a phone number: digits, optionally after +.")
        return wa_id, {"input": to, "wa_id": wa_id}
    recipient = params.get("recipient")
    if recipient is None:
        raise invalid_parameter("The parameter to or recipient is required.")
    if not isinstance(recipient, str) or not BSUID_PATTERN.fullmatch(recipient):
        raise invalid_parameter(
            "Param recipient must be a business-scoped user ID: a country code, a period and "
            "up to 128 alphanumeric characters."
        )
    return recipient, {"input": recipient, "user_id": recipient}


def _is_authentication(template: Mapping[str, Any]) -> bool:
    """Whether the sandbox treats ``template`` as an authentication template (by its name)."""
    return str(template["name"]).lower().startswith(AUTHENTICATION_PREFIXES)


def _bsuid_unsupported() -> GraphReplyError:
    """``131062``: this message cannot be sent to a business-scoped user ID."""
    return GraphReplyError(
        "(#131062) Business-scoped user ID recipients not supported",
        BSUID_UNSUPPORTED_CODE,
        error_data={
            "messaging_product": "whatsapp",
            "details": (
                "This message cannot be sent to a business-scoped user ID. "
                "Send it to the user's phone number instead."
            ),
        },
    )


def _new_wamid(world: World, address: str) -> str:
    """A message id in the shape of Meta's: ``wamid.`` and base64 of the recipient and an id.

    A BSUID recipient (up to 131 characters) is named by a digest, so the id keeps its length.
    """
    chat = address if address.isdigit() else hashlib.sha256(address.encode()).hexdigest()[:24]
    raw = (
        b"\x1c\x18"
        + bytes([len(chat)])
        + chat.encode()
        + b"\x15\x02\x00\x11\x18\x12"
        + f"{world.rng.getrandbits(72):018X}".encode()
        + b"\x00"
    )
    return "wamid." + base64.b64encode(raw).decode()


def _check_text(text: Any) -> None:
    """Validate a send's ``text`` object as Graph does (code 100)."""
    if not isinstance(text, Mapping) or "body" not in text:
        raise invalid_parameter("The parameter text['body'] is required.")
    body = text["body"]
    if not isinstance(body, str) or not body.strip():
        raise invalid_parameter("Param text['body'] must be a non-empty string.")
    if len(body) > MAX_TEXT_BODY:
        raise invalid_parameter(
            f"Param text['body'] must be at most {MAX_TEXT_BODY} characters long."
        )
    preview = text.get("preview_url", False)
    if not isinstance(preview, bool):
        raise invalid_parameter("Param text['preview_url'] must be a boolean.")


def _check_template(template: Any) -> None:
    """Validate a send's ``template`` object as Graph does (code 100); any name is accepted."""
    if not isinstance(template, Mapping) or "name" not in template:
        raise invalid_parameter("The parameter template['name'] is required.")
    name = template["name"]
    if not isinstance(name, str) or not name:
        raise invalid_parameter("Param template['name'] must be a non-empty string.")
    language = template.get("language")
    if not isinstance(language, Mapping) or "code" not in language:
        raise invalid_parameter("The parameter template['language']['code'] is required.")
    if not isinstance(language["code"], str) or not language["code"]:
        raise invalid_parameter("Param template['language']['code'] must be a non-empty string.")
    components = template.get("components", [])
    if not isinstance(components, list):
        raise invalid_parameter("Param template['components'] must be an array.")
