"""What may be sent: a send payload checked, and the Cloud API ``/messages`` body built.

:func:`validate_payload` owns the payload's shape (``to`` as digits, ``type`` ``text`` with a
``body`` or ``template`` with a ``name`` and ``language.code``, an optional
``idempotency_key``) and raises :class:`InvalidMessageError` naming what is wrong.
:func:`messages_body` is the one place the ``POST /{phone-number-id}/messages`` envelope is
built: the send step and the notifier's WhatsApp template channel both use it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

MESSAGE_TYPES: Final = ("text", "template")
MAX_TEXT_BODY: Final = 4096
MAX_KEY_LENGTH: Final = 128
PAYLOAD_KEYS: Final = frozenset({"to", "type", "text", "template", "idempotency_key"})


class InvalidMessageError(ValueError):
    """The payload is not a message coexist can send; the message says why."""


def messages_body(to: str, type_: str, content: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON body of ``POST /{phone-number-id}/messages``: one message to one person."""
    return {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": to,
        "type": type_,
        type_: dict(content),
    }


@dataclass(frozen=True, slots=True)
class OutboundMessage:
    """A validated payload: the Graph body to send and what to record."""

    to: str
    type: str
    content: dict[str, Any]
    idempotency_key: str | None = None

    @property
    def text_body(self) -> str | None:
        """The text of a text message (None for a template)."""
        body = self.content.get("body") if self.type == "text" else None
        return body if isinstance(body, str) else None

    def graph_body(self) -> dict[str, Any]:
        """The JSON body of ``POST /{phone-number-id}/messages``."""
        return messages_body(self.to, self.type, self.content)


def validate_payload(payload: Mapping[str, Any]) -> OutboundMessage:
    """Check a send payload and return it as an :class:`OutboundMessage`.

    ``{"to": "16505551234", "type": "text", "text": {"body": "...", "preview_url"?: bool},
    "idempotency_key"?: "..."}`` or ``{"to": ..., "type": "template", "template": {"name": ...,
    "language": {"code": "en_US"}, "components"?: [...]}}``. Raises
    :class:`InvalidMessageError`.
    """
    if not isinstance(payload, Mapping):
        raise InvalidMessageError("payload must be an object")
    unknown = set(payload) - PAYLOAD_KEYS
    if unknown:
        raise InvalidMessageError(f"unknown payload keys: {sorted(unknown)}")
    to = payload.get("to")
    if not isinstance(to, str) or not to.isdigit() or not 6 <= len(to) <= 15:
        raise InvalidMessageError("to must be the recipient's number as 6 to 15 digits, no +")
    kind = payload.get("type", "text")
    if kind not in MESSAGE_TYPES:
        raise InvalidMessageError(f"type must be one of {list(MESSAGE_TYPES)}, got {kind!r}")
    content = payload.get(kind)
    if not isinstance(content, Mapping):
        raise InvalidMessageError(f"a {kind} message needs a {kind!r} object")
    content = dict(content)
    if kind == "text":
        _check_text(content)
    else:
        _check_template(content)
    key = payload.get("idempotency_key")
    if key is not None and (not isinstance(key, str) or not 1 <= len(key) <= MAX_KEY_LENGTH):
        raise InvalidMessageError(
            f"idempotency_key must be a string of 1 to {MAX_KEY_LENGTH} characters"
        )
    return OutboundMessage(to=to, type=kind, content=content, idempotency_key=key)


def _check_text(content: dict[str, Any]) -> None:
    unknown = set(content) - {"body", "preview_url"}
    if unknown:
        raise InvalidMessageError(f"unknown text keys: {sorted(unknown)}")
    body = content.get("body")
    if not isinstance(body, str) or not body.strip():
        raise InvalidMessageError("text.body must be a non-empty string")
    if len(body) > MAX_TEXT_BODY:
        raise InvalidMessageError(f"text.body is over {MAX_TEXT_BODY} characters")
    if not isinstance(content.get("preview_url", False), bool):
        raise InvalidMessageError("text.preview_url must be true or false")


def _check_template(content: dict[str, Any]) -> None:
    unknown = set(content) - {"name", "language", "components"}
    if unknown:
        raise InvalidMessageError(f"unknown template keys: {sorted(unknown)}")
    name = content.get("name")
    if not isinstance(name, str) or not name or len(name) > 512:
        raise InvalidMessageError("template.name must be a non-empty string")
    language = content.get("language")
    code = language.get("code") if isinstance(language, Mapping) else None
    if not isinstance(code, str) or not code:
        raise InvalidMessageError("template.language.code is required (e.g. en_US)")
    if not isinstance(content.get("components", []), list):
        raise InvalidMessageError("template.components must be a list")
