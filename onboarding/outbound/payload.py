"""What may be sent: a send payload checked, and the Cloud API ``/messages`` body built.

:func:`validate_payload` owns the payload's shape (``to`` as digits, ``type`` ``text`` with a
``body`` or ``template`` with a ``name`` and ``language.code``, an optional
``idempotency_key``) and raises :class:`InvalidMessageError` naming what is wrong.
:func:`messages_body` is the one place the ``POST /{phone-number-id}/messages`` envelope is
built: the send step and the notifier's WhatsApp template channel both use it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Final, Literal

from onboarding.meta.payloads import is_bsuid

MESSAGE_TYPES: Final = ("text", "template")
MAX_TEXT_BODY: Final = 4096
MAX_KEY_LENGTH: Final = 128
PAYLOAD_KEYS: Final = frozenset({"to", "recipient", "type", "text", "template", "idempotency_key"})
AddressField = Literal["to", "recipient"]


class InvalidMessageError(ValueError):
    """The payload is not a message coexist can send; the message says why."""


def is_phone_digits(value: object) -> bool:
    """Whether ``value`` is a phone number as Meta writes ``wa_id``: 6 to 15 digits, no ``+``."""
    return isinstance(value, str) and value.isdigit() and 6 <= len(value) <= 15


def messages_body(
    to: str | None, type_: str, content: Mapping[str, Any], *, recipient: str | None = None
) -> dict[str, Any]:
    """The JSON body of ``POST /{phone-number-id}/messages``: one message to one person.

    The person is addressed by ``to`` (phone digits) when known, else by ``recipient`` (BSUID).
    """
    body: dict[str, Any] = {"messaging_product": "whatsapp", "recipient_type": "individual"}
    if to is not None:
        body["to"] = to
    elif recipient is not None:
        body["recipient"] = recipient
    else:
        raise ValueError("a message needs to (phone digits) or recipient (BSUID)")
    body["type"] = type_
    body[type_] = dict(content)
    return body


@dataclass(frozen=True, slots=True)
class OutboundMessage:
    """A validated payload: the Graph body to send and what to record.

    At least one of ``to`` (phone digits) and ``recipient`` (BSUID) is set.
    """

    to: str | None
    type: str
    content: dict[str, Any]
    idempotency_key: str | None = None
    recipient: str | None = None

    @property
    def address_field(self) -> AddressField:
        """Which Graph field addresses the person: ``to`` when the number is known."""
        return "to" if self.to is not None else "recipient"

    @property
    def address(self) -> str:
        """The phone digits or BSUID the message is sent to (what ``address_field`` holds)."""
        address = self.to if self.to is not None else self.recipient
        assert address is not None
        return address

    def with_phone(self, to: str | None) -> OutboundMessage:
        """This message addressed by phone number ``to`` when one is known (else unchanged)."""
        if to is None or self.to is not None:
            return self
        if not is_phone_digits(to):
            raise InvalidMessageError("to must be the recipient's number as 6 to 15 digits, no +")
        return replace(self, to=to)

    @property
    def text_body(self) -> str | None:
        """The text of a text message (None for a template)."""
        body = self.content.get("body") if self.type == "text" else None
        return body if isinstance(body, str) else None

    def graph_body(self) -> dict[str, Any]:
        """The JSON body of ``POST /{phone-number-id}/messages``."""
        return messages_body(self.to, self.type, self.content, recipient=self.recipient)


def validate_payload(payload: Mapping[str, Any]) -> OutboundMessage:
    """Check a send payload and return it as an :class:`OutboundMessage`.

    ``{"to": "16505551234", "type": "text", "text": {"body": "...", "preview_url"?: bool},
    "idempotency_key"?: "..."}`` or ``{"to": ..., "type": "template", "template": {"name": ...,
    "language": {"code": "en_US"}, "components"?: [...]}}``; ``"recipient":
    "US.13491208655302741918"`` may stand beside or instead of ``to``. Raises
    :class:`InvalidMessageError`.
    """
    if not isinstance(payload, Mapping):
        raise InvalidMessageError("payload must be an object")
    unknown = set(payload) - PAYLOAD_KEYS
    if unknown:
        raise InvalidMessageError(f"unknown payload keys: {sorted(unknown)}")
    to, recipient = _addresses(payload)
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
    return OutboundMessage(
        to=to, type=kind, content=content, idempotency_key=key, recipient=recipient
    )


def _addresses(payload: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """``to`` and ``recipient`` checked: each well formed when given, at least one given."""
    to = payload.get("to")
    recipient = payload.get("recipient")
    if to is None and recipient is None:
        raise InvalidMessageError(
            "a message needs to (the phone number as digits) or recipient (a BSUID)"
        )
    if to is not None and not is_phone_digits(to):
        raise InvalidMessageError("to must be the recipient's number as 6 to 15 digits, no +")
    if recipient is not None and not is_bsuid(recipient):
        raise InvalidMessageError(
            "recipient must be a business-scoped user id such as US.13491208655302741918 "
            "(country code, a period, up to 128 letters or digits; parent ids US.ENT.…)"
        )
    return to, recipient


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
