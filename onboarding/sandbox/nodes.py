"""The phone number and WABA nodes as Graph renders them, and the ``fields`` they accept.

``GET /{phone_number_id}`` and ``GET /{waba_id}`` answer their default fields, or those named
in ``fields`` (sub-selections like ``throughput{level}`` are ignored); a field the node type
does not have is Graph's "nonexisting field" error.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Final

from onboarding.sandbox.errors import nonexisting_field
from onboarding.sandbox.numbers import format_display_number
from onboarding.sandbox.world import PhoneNumber, Waba

NUMBER_NODE: Final = "WhatsAppBusinessPhoneNumber"
WABA_NODE: Final = "WhatsAppBusinessAccount"

PHONE_FIELDS: Final = (
    "id",
    "display_phone_number",
    "verified_name",
    "quality_rating",
    "code_verification_status",
    "status",
    "name_status",
    "platform_type",
    "throughput",
    "is_on_biz_app",
    "account_mode",
    "is_official_business_account",
    "whatsapp_business_manager_messaging_limit",
    "last_onboarded_time",
)
"""Fields a phone number node answers; any other requested field is a Graph error."""

NODE_DEFAULT_FIELDS: Final = ("id", "display_phone_number", "verified_name")
WABA_FIELDS: Final = ("id", "name", "currency", "timezone_id", "account_review_status")
WABA_DEFAULT_FIELDS: Final = ("id", "name")


def parse_fields(raw: str | None) -> list[str] | None:
    """Split a Graph ``fields`` value, dropping sub-selections like ``throughput{level}``."""
    if raw is None:
        return None
    names: list[str] = []
    depth = 0
    current = ""
    for char in raw:
        if char == "{":
            depth += 1
        elif char == "}":
            depth = max(depth - 1, 0)
        elif char == "," and depth == 0:
            names.append(current.strip())
            current = ""
        elif depth == 0:
            current += char
    names.append(current.strip())
    unique: list[str] = []
    for name in names:
        if name and name not in unique:
            unique.append(name)
    return unique


def select(requested: Iterable[str], known: Sequence[str], node_type: str) -> list[str]:
    """The requested field names plus ``id``; an unknown one is Graph's error."""
    names = list(requested)
    for name in names:
        if name not in known:
            raise nonexisting_field(name, node_type)
    if "id" not in names:
        names.append("id")
    return names


def number_values(number: PhoneNumber) -> dict[str, Any]:
    """Every field of a number node, in Graph's formats (``None`` = absent)."""
    onboarded = None
    if number.onboarded_at is not None:
        moment = datetime.fromtimestamp(number.onboarded_at, tz=UTC)
        onboarded = moment.strftime("%Y-%m-%dT%H:%M:%S+0000")
    return {
        "id": number.id,
        "display_phone_number": format_display_number(number.digits),
        "verified_name": number.verified_name,
        "quality_rating": number.quality_rating,
        "code_verification_status": "VERIFIED",
        "status": number.status,
        "name_status": "APPROVED",
        "platform_type": number.platform_type,
        "throughput": {"level": "STANDARD"},
        "is_on_biz_app": number.is_on_biz_app,
        "account_mode": "LIVE",
        "is_official_business_account": False,
        "whatsapp_business_manager_messaging_limit": "TIER_2K",
        "last_onboarded_time": onboarded,
    }


def render_number(number: PhoneNumber, names: Iterable[str]) -> dict[str, Any]:
    """The named fields of a number node, those without a value left out."""
    values = number_values(number)
    return {name: values[name] for name in names if values[name] is not None}


def number_node(number: PhoneNumber, params: Mapping[str, Any]) -> dict[str, Any]:
    """``GET /{phone_number_id}``."""
    requested = parse_fields(params.get("fields"))
    names = select(requested or NODE_DEFAULT_FIELDS, PHONE_FIELDS, NUMBER_NODE)
    return render_number(number, names)


def waba_node(waba: Waba, params: Mapping[str, Any]) -> dict[str, Any]:
    """``GET /{waba_id}``."""
    requested = parse_fields(params.get("fields"))
    names = select(requested or WABA_DEFAULT_FIELDS, WABA_FIELDS, WABA_NODE)
    values: dict[str, Any] = {
        "id": waba.id,
        "name": waba.name,
        "currency": "USD",
        "timezone_id": "1",
        "account_review_status": "APPROVED",
    }
    return {name: values[name] for name in names}
