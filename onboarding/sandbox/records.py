"""Plain records the sandbox returns to its callers: seeded businesses, signups, accepted syncs
and sends.

They are immutable snapshots; the sandbox's own mutable state lives in :mod:`.world`. Each has a
``to_dict`` giving the JSON form the control API (:mod:`.control`) sends.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class NumberSpec:
    """How to seed one phone number; unset display numbers and names are generated."""

    display_phone_number: str | None = None
    verified_name: str | None = None
    is_on_biz_app: bool = True
    platform_type: str | None = None
    status: str = "CONNECTED"
    quality_rating: str = "GREEN"


@dataclass(frozen=True, slots=True)
class SeededNumber:
    """A seeded phone number: its id and its E.164 digits."""

    id: str
    display_phone_number: str
    is_on_biz_app: bool

    def to_dict(self) -> dict[str, Any]:
        """Return the control API's JSON form."""
        return {
            "id": self.id,
            "display_phone_number": self.display_phone_number,
            "is_on_biz_app": self.is_on_biz_app,
        }


@dataclass(frozen=True, slots=True)
class Business:
    """A seeded business with its single WABA and that WABA's phone numbers."""

    id: str
    name: str
    waba_id: str
    numbers: tuple[SeededNumber, ...]

    @property
    def phone_number_ids(self) -> tuple[str, ...]:
        """Ids of the WABA's numbers, in list order."""
        return tuple(number.id for number in self.numbers)

    def to_dict(self) -> dict[str, Any]:
        """Return the control API's JSON form."""
        return {
            "business_id": self.id,
            "name": self.name,
            "waba_id": self.waba_id,
            "phone_numbers": [number.to_dict() for number in self.numbers],
        }


@dataclass(frozen=True, slots=True)
class SignupResult:
    """What the customer's browser hands coexist after Embedded Signup: a code and a session."""

    code: str
    session: Mapping[str, Any]
    business_id: str
    waba_id: str
    phone_number_id: str

    @property
    def session_json(self) -> str:
        """The session-info message as ``event.data`` carries it: a JSON string."""
        return json.dumps(self.session)

    def to_dict(self) -> dict[str, Any]:
        """Return the control API's JSON form."""
        return {"code": self.code, "session": dict(self.session)}


@dataclass(frozen=True, slots=True)
class AcceptedSync:
    """One ``smb_app_data`` call the sandbox accepted."""

    phone_number_id: str
    waba_id: str
    sync_type: str
    request_id: str
    accepted_at: float

    def to_dict(self) -> dict[str, Any]:
        """Return the control API's JSON form."""
        return {
            "phone_number_id": self.phone_number_id,
            "waba_id": self.waba_id,
            "sync_type": self.sync_type,
            "request_id": self.request_id,
            "accepted_at": self.accepted_at,
        }


@dataclass(frozen=True, slots=True)
class SentMessage:
    """One send the sandbox accepted: who sent what to whom, and when (sandbox clock)."""

    phone_number_id: str
    to: str
    wamid: str
    type: str
    accepted_at: float

    def to_dict(self) -> dict[str, Any]:
        """Return the control API's JSON form."""
        return {
            "phone_number_id": self.phone_number_id,
            "to": self.to,
            "wamid": self.wamid,
            "type": self.type,
            "accepted_at": self.accepted_at,
        }


SyncListener = Callable[[AcceptedSync], None]
"""Called with each accepted ``smb_app_data`` call; see :meth:`Sandbox.on_sync_accepted`."""
