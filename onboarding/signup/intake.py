"""The signup web hook's domain: validate the browser's Embedded Signup hand-off and record it.

The body is ``{"code": "...", "session": <the WA_EMBEDDED_SIGNUP message event's data>}``
(docs/meta.md#12-the-wa_embedded_signup-event). ``FINISH`` and
``FINISH_WHATSAPP_BUSINESS_APP_ONBOARDING`` start an onboarding; ``CANCEL`` (and ``ERROR``) are
kept as abandoned signups for support and start nothing. The same code twice is the same
onboarding.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal

import structlog
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
)
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from config import Settings
from config.logging import register_secret
from models import (
    AbandonedSignup,
    Onboarding,
    OnboardingState,
    SyncRequest,
    SyncType,
    Transition,
    utcnow,
)
from models.crypto import TokenCipher

log = structlog.get_logger(__name__)

FINISH_EVENTS = ("FINISH", "FINISH_WHATSAPP_BUSINESS_APP_ONBOARDING")
ABANDON_EVENTS = ("CANCEL", "ERROR")


def _graph_id(value: Any) -> Any:
    """Meta's ids are digit strings; browsers sometimes hand them over as numbers."""
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return str(value)
    return value


GraphId = Annotated[
    str,
    BeforeValidator(_graph_id),
    StringConstraints(strict=True, pattern=r"^[0-9]{1,32}$"),
]
ShortText = Annotated[str, StringConstraints(max_length=2048)]
ShortCode = Annotated[str, BeforeValidator(_graph_id), StringConstraints(max_length=64)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="allow", str_strip_whitespace=True, frozen=True)


class FinishData(_Strict):
    waba_id: GraphId
    phone_number_id: GraphId | None = None
    business_id: GraphId | None = None


class CancelData(_Strict):
    current_step: Annotated[str, StringConstraints(max_length=128)] | None = None
    error_message: ShortText | None = None
    error_code: (
        Annotated[str, BeforeValidator(_graph_id), StringConstraints(max_length=64)] | None
    ) = None
    session_id: Annotated[str, StringConstraints(max_length=128)] | None = None
    timestamp: (
        Annotated[str, BeforeValidator(_graph_id), StringConstraints(max_length=32)] | None
    ) = None


class FinishSession(_Strict):
    type: Literal["WA_EMBEDDED_SIGNUP"]
    event: Literal["FINISH", "FINISH_WHATSAPP_BUSINESS_APP_ONBOARDING"]
    version: int | Annotated[str, StringConstraints(max_length=16)] | None = None
    data: FinishData


class CancelSession(_Strict):
    type: Literal["WA_EMBEDDED_SIGNUP"]
    event: Literal["CANCEL", "ERROR"]
    version: int | Annotated[str, StringConstraints(max_length=16)] | None = None
    data: CancelData = Field(default_factory=CancelData)


class SignupBody(BaseModel):
    """``POST /signup``. ``session`` is validated first so ``code`` can depend on its event."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, frozen=True)

    session: Annotated[FinishSession | CancelSession, Field(discriminator="event")]
    code: Annotated[str, StringConstraints(min_length=1, max_length=4096)] | None = Field(
        default=None, validate_default=True
    )

    @field_validator("code")
    @classmethod
    def _code_needed_to_finish(cls, value: str | None, info: ValidationInfo) -> str | None:
        session = info.data.get("session")
        if isinstance(session, FinishSession) and not value:
            raise ValueError("code is required when the signup finished")
        return value

    @field_validator("code", mode="after")
    @classmethod
    def _register(cls, value: str | None) -> str | None:
        register_secret(value)
        return value


def unstorable(value: Any, path: str = "") -> tuple[str, str] | None:
    """The first string in a parsed body that the database cannot store, as (field, reason).

    PostgreSQL text and JSON hold neither NUL (``\\u0000``) nor a lone UTF-16 surrogate (a
    ``\\ud800`` escape without its pair, which has no UTF-8 encoding). The whole session is kept
    as JSON, its unknown keys included, so every key and string is checked, not only the fields
    coexist reads. A signup is the browser's word for what happened; it is refused (``422``
    naming the field) rather than stored altered.
    """
    if isinstance(value, str):
        problem = _string_problem(value)
        return (path or "body", problem) if problem else None
    if isinstance(value, dict):
        for key, item in value.items():
            where = f"{path}.{key}" if path else str(key)
            problem = _string_problem(str(key))
            if problem:
                return where, f"key {problem}"
            found = unstorable(item, where)
            if found:
                return found
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found = unstorable(item, f"{path}.{index}" if path else str(index))
            if found:
                return found
    return None


def _string_problem(text: str) -> str | None:
    if "\x00" in text:
        return "contains a NUL character"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "contains a lone surrogate"
    return None


@dataclass(frozen=True)
class SignupOutcome:
    """What ``POST /signup`` answers."""

    onboarding_id: int | None = None
    abandoned_signup_id: int | None = None
    created: bool = False
    state: str | None = None


def code_digest(code: str) -> str:
    return hashlib.sha256(code.encode()).hexdigest()


def accept_signup(
    session: Session,
    body: SignupBody,
    *,
    settings: Settings,
    cipher: TokenCipher,
    now: datetime | None = None,
) -> SignupOutcome:
    """Record a finished signup (once per code) or an abandoned one. Commits."""
    now = now or utcnow()
    message = body.session
    if isinstance(message, CancelSession):
        return _record_abandoned(session, message, now)
    assert body.code is not None  # enforced by SignupBody
    digest = code_digest(body.code)
    existing = session.scalar(select(Onboarding).where(Onboarding.code_sha256 == digest))
    if existing is not None:
        log.info("signup_duplicate", onboarding_id=existing.id)
        return SignupOutcome(onboarding_id=existing.id, created=False, state=existing.state)
    data = message.data
    onboarding = Onboarding(
        code_sha256=digest,
        code_ciphertext=cipher.encrypt(body.code),
        signup_event=message.event,
        session_data=message.model_dump(mode="json"),
        waba_id=data.waba_id,
        phone_number_id=data.phone_number_id,
        business_id=data.business_id,
        signup_completed_at=now,
        sync_deadline_at=now + settings.sync_window,
        state=OnboardingState.RECEIVED.value,
        state_changed_at=now,
        syncs=[SyncRequest(sync_type=t.value) for t in SyncType],
        transitions=[
            Transition(
                at=now,
                from_state=None,
                to_state=OnboardingState.RECEIVED.value,
                cause=f"Embedded Signup finished ({message.event})",
            )
        ],
    )
    session.add(onboarding)
    try:
        session.commit()
    except IntegrityError:
        session.rollback()  # the same code, posted twice at once
        winner = session.scalar(select(Onboarding).where(Onboarding.code_sha256 == digest))
        if winner is None:
            raise
        return SignupOutcome(onboarding_id=winner.id, created=False, state=winner.state)
    log.info(
        "signup_received",
        onboarding_id=onboarding.id,
        waba_id=onboarding.waba_id,
        phone_number_id=onboarding.phone_number_id,
        signup_event=message.event,
    )
    return SignupOutcome(onboarding_id=onboarding.id, created=True, state=onboarding.state)


def _record_abandoned(session: Session, message: CancelSession, now: datetime) -> SignupOutcome:
    data = message.data
    reported_at = None
    if data.timestamp and data.timestamp.isdigit():
        try:
            reported_at = datetime.fromtimestamp(int(data.timestamp), tz=now.tzinfo)
        except (OverflowError, OSError, ValueError):
            reported_at = None
    row = AbandonedSignup(
        received_at=now,
        event=message.event,
        current_step=data.current_step,
        error_code=data.error_code,
        error_message=data.error_message,
        session_id=data.session_id,
        reported_at=reported_at,
        session_data=message.model_dump(mode="json"),
    )
    session.add(row)
    session.commit()
    log.info(
        "signup_abandoned",
        abandoned_signup_id=row.id,
        signup_event=message.event,
        current_step=data.current_step,
        error_code=data.error_code,
        session_id=data.session_id,
    )
    return SignupOutcome(abandoned_signup_id=row.id)
