"""The part of Embedded Signup that happens in the customer's browser, simulated.

:func:`complete_signup` mints the 30-second code and returns the session-info message the
browser hands coexist; :func:`cancel_signup` and :func:`fail_signup` return the messages of a
customer abandoning signup or reporting an error.

Messages are in Embedded Signup v4's form by default (no ``version`` key); a finish can also be
had in v3's (``version: 3``, as Meta's coexistence page still shows it). Meta:
https://developers.facebook.com/documentation/business-messaging/whatsapp/embedded-signup/implementation
"""

from __future__ import annotations

import secrets
from typing import Any

from onboarding.sandbox.records import SignupResult
from onboarding.sandbox.world import PhoneNumber, SignupCode, Waba, World

#: ``None``: v4's message, without ``version``; ``3``: v3's, with ``version: 3``.
SESSION_VERSIONS = (None, 3)
#: Finish events of flows other than Cloud API and coexistence onboarding.
OTHER_FINISHES = ("FINISH_ONLY_WABA", "FINISH_OBO_MIGRATION", "FINISH_GRANT_ONLY_API_ACCESS")


def complete_signup(
    world: World,
    waba_id: str,
    phone_number_id: str | None,
    *,
    coexistence: bool,
    include_phone_number_id: bool,
    session_version: int | None = None,
) -> SignupResult:
    """Simulate the customer finishing Embedded Signup for one number of a WABA.

    Mints a single-use code valid for ``code_ttl`` seconds and starts the number's
    ``smb_app_data`` window (a new onboarding: the once-per-type record is cleared).
    ``session_version`` ``None`` is v4's message (no ``version``); ``3`` adds ``version: 3``.
    """
    if session_version not in SESSION_VERSIONS:
        raise ValueError(f"session_version must be one of {SESSION_VERSIONS}")
    with world.lock:
        waba = world.wabas.get(waba_id)
        if waba is None:
            raise KeyError(f"unknown WABA {waba_id}")
        number = _signup_number(world, waba, phone_number_id, coexistence=coexistence)
        now = world.now()
        code = "AQ" + secrets.token_urlsafe(96)
        world.codes[code] = SignupCode(business_id=waba.business_id, issued_at=now)
        number.onboarded_at = now
        number.synced_types.clear()
        if coexistence:
            number.platform_type = "CLOUD_API"
        return SignupResult(
            code=code,
            session=_session(waba, number, coexistence, include_phone_number_id, session_version),
            business_id=waba.business_id,
            waba_id=waba.id,
            phone_number_id=number.id,
        )


def _session(
    waba: Waba,
    number: PhoneNumber,
    coexistence: bool,
    include_phone_number_id: bool,
    session_version: int | None,
) -> dict[str, Any]:
    """The session-info message: ``FINISH_WHATSAPP_BUSINESS_APP_ONBOARDING`` or ``FINISH``."""
    all_ids = {
        "phone_number_id": number.id,
        "waba_id": waba.id,
        "business_id": waba.business_id,
    }
    message: dict[str, Any] = {"type": "WA_EMBEDDED_SIGNUP"}
    if not coexistence:
        message.update(event="FINISH", data=all_ids)
    else:
        data: dict[str, Any] = all_ids if include_phone_number_id else {"waba_id": waba.id}
        message.update(event="FINISH_WHATSAPP_BUSINESS_APP_ONBOARDING", data=data)
    if session_version is not None:
        message["version"] = session_version
    return message


def finish_other_flow(world: World, waba_id: str, event: str) -> dict[str, Any]:
    """The v4 message of a finish coexist does not onboard (``FINISH_ONLY_WABA``…).

    Names the WABA and its business, and (except ``FINISH_ONLY_WABA``, which has no number) the
    WABA's first number; starts nothing in the world.
    """
    if event not in OTHER_FINISHES:
        raise ValueError(f"event must be one of {OTHER_FINISHES}")
    with world.lock:
        waba = world.wabas.get(waba_id)
        if waba is None:
            raise KeyError(f"unknown WABA {waba_id}")
        data: dict[str, Any] = {"waba_id": waba.id, "business_id": waba.business_id}
        if event != "FINISH_ONLY_WABA" and waba.number_ids:
            data["phone_number_id"] = waba.number_ids[0]
    return {"type": "WA_EMBEDDED_SIGNUP", "event": event, "data": data}


def _signup_number(
    world: World, waba: Waba, phone_number_id: str | None, *, coexistence: bool
) -> PhoneNumber:
    if phone_number_id is None:
        for candidate_id in waba.number_ids:
            candidate = world.numbers[candidate_id]
            if candidate.is_on_biz_app or not coexistence:
                return candidate
        raise ValueError(f"WABA {waba.id} has no number eligible for this signup")
    number = world.numbers.get(phone_number_id)
    if number is None or number.waba_id != waba.id:
        raise KeyError(f"phone number {phone_number_id} is not in WABA {waba.id}")
    if coexistence and not number.is_on_biz_app:
        raise ValueError(f"phone number {number.id} is not on the WhatsApp Business app")
    if not coexistence and number.is_on_biz_app:
        raise ValueError(
            f"phone number {number.id} is on the WhatsApp Business app; use coexistence"
        )
    return number


def cancel_signup(current_step: str) -> dict[str, Any]:
    """The session-info message of a customer abandoning Embedded Signup."""
    return {
        "type": "WA_EMBEDDED_SIGNUP",
        "event": "CANCEL",
        "data": {"current_step": current_step},
    }


def fail_signup(
    world: World, error_message: str, error_code: str, session_id: str | None
) -> dict[str, Any]:
    """The session-info message of a customer reporting an error (also ``CANCEL``)."""
    with world.lock:
        session = session_id or f"{world.rng.getrandbits(60):015x}"
        timestamp = str(int(world.now()))
    return {
        "type": "WA_EMBEDDED_SIGNUP",
        "event": "CANCEL",
        "data": {
            "error_message": error_message,
            "error_code": error_code,
            "session_id": session,
            "timestamp": timestamp,
        },
    }
