"""The signup web hook's domain: validate the browser's Embedded Signup hand-off and record it.

The body is ``{"code": "...", "session": <the WA_EMBEDDED_SIGNUP message event's data>}``
(docs/meta.md#12-the-wa_embedded_signup-event, docs/meta.md#embedded-signup-v4-session-events),
in v3's form (``version: 3``) or v4's (no ``version``). ``FINISH`` and
``FINISH_WHATSAPP_BUSINESS_APP_ONBOARDING`` start an onboarding (the same code twice is the same
onboarding); the other finishes, ``CANCEL`` and ``ERROR`` are recorded for operators
(:mod:`.records`) and start nothing. Known fields are checked (``422`` naming the field); keys
Meta adds later are kept, and the session is stored as posted.
"""

from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal

import structlog
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ModelWrapValidatorHandler,
    PrivateAttr,
    StringConstraints,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from config import Settings
from config.logging import register_secret
from models import (
    Onboarding,
    OnboardingState,
    SyncRequest,
    SyncType,
    Transition,
    utcnow,
)
from models.crypto import TokenCipher
from onboarding.feed.events import EventType, emit
from onboarding.signup.records import Recorded, record_abandoned, record_finish

log = structlog.get_logger(__name__)

#: Finishes that start an onboarding here: Cloud API (``FINISH``) and coexistence.
ONBOARD_EVENTS = ("FINISH", "FINISH_WHATSAPP_BUSINESS_APP_ONBOARDING")
#: Finishes of flows coexist does not onboard: recorded and answered ``202``.
RECORD_EVENTS = ("FINISH_ONLY_WABA", "FINISH_OBO_MIGRATION", "FINISH_GRANT_ONLY_API_ACCESS")
#: The customer left or hit an error: kept as an abandoned signup.
ABANDON_EVENTS = ("CANCEL", "ERROR")
#: Every session-info event Meta documents (docs/meta.md#embedded-signup-v4-session-events).
SESSION_EVENTS = ONBOARD_EVENTS + RECORD_EVENTS + ABANDON_EVENTS


def _graph_id(value: Any) -> Any:
    """Meta's ids are digit strings; browsers sometimes hand them over as numbers."""
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return str(value)
    return value


#: A positive integer is read as its digits (:func:`_graph_id`), as the schema says.
_DIGITS = {"type": "string", "pattern": r"^[0-9]{1,32}$"}
_POSITIVE = {"type": "integer", "minimum": 1}
GraphId = Annotated[
    str,
    BeforeValidator(_graph_id),
    StringConstraints(strict=True, pattern=r"^[0-9]{1,32}$"),
    WithJsonSchema({"anyOf": [_DIGITS, {**_POSITIVE, "maximum": 10**32 - 1}]}),
]
GraphIds = Annotated[list[GraphId], Field(max_length=1000)]
ShortText = Annotated[str, StringConstraints(max_length=2048)]
ShortCode = Annotated[
    str,
    BeforeValidator(_graph_id),
    StringConstraints(max_length=64),
    WithJsonSchema({"anyOf": [{"type": "string", "maxLength": 64}, _POSITIVE]}),
]


class _Open(BaseModel):
    """Known fields are checked; keys Meta adds later are kept (the raw session is stored)."""

    model_config = ConfigDict(extra="allow", str_strip_whitespace=True, frozen=True)


class SessionData(_Open):
    """The session's ``data``: every field Meta documents, each optional."""

    waba_id: GraphId | None = None
    phone_number_id: GraphId | None = None
    business_id: GraphId | None = None
    waba_ids: GraphIds | None = None
    ad_account_ids: GraphIds | None = None
    page_ids: GraphIds | None = None
    dataset_ids: GraphIds | None = None
    catalog_ids: GraphIds | None = None
    instagram_account_ids: GraphIds | None = None
    current_step: Annotated[str, StringConstraints(max_length=128)] | None = None
    error_message: ShortText | None = None
    error_code: ShortCode | None = None
    session_id: Annotated[str, StringConstraints(max_length=128)] | None = None
    timestamp: (
        Annotated[
            str,
            BeforeValidator(_graph_id),
            StringConstraints(max_length=32),
            WithJsonSchema({"anyOf": [{"type": "string", "maxLength": 32}, _POSITIVE]}),
        ]
        | None
    ) = None


class FinishData(SessionData):
    """An onboarding finish names the WABA to onboard."""

    waba_id: GraphId


Version = int | Annotated[str, StringConstraints(max_length=16)] | None


class FinishSession(_Open):
    """A finish coexist onboards; ``version`` is ``3`` in v3's form and absent in v4's."""

    type: Literal["WA_EMBEDDED_SIGNUP"]
    event: Literal["FINISH", "FINISH_WHATSAPP_BUSINESS_APP_ONBOARDING"]
    version: Version = None
    data: FinishData


class RecordSession(_Open):
    """A finish of a flow coexist does not onboard: recorded with the ids it names."""

    type: Literal["WA_EMBEDDED_SIGNUP"]
    event: Literal["FINISH_ONLY_WABA", "FINISH_OBO_MIGRATION", "FINISH_GRANT_ONLY_API_ACCESS"]
    version: Version = None
    data: SessionData


class CancelSession(_Open):
    """The customer abandoned the flow or reported an error."""

    type: Literal["WA_EMBEDDED_SIGNUP"]
    event: Literal["CANCEL", "ERROR"]
    version: Version = None
    data: SessionData = Field(default_factory=SessionData)


class SignupBody(BaseModel):
    """``POST /signup``. ``session`` is validated first so ``code`` can depend on its event.

    The body's own two keys are coexist's contract, so an unknown one there is refused; inside
    ``session`` Meta's unknown keys are kept. :attr:`raw_session` is the session as posted.
    """

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, frozen=True)

    session: Annotated[FinishSession | RecordSession | CancelSession, Field(discriminator="event")]
    code: Annotated[str, StringConstraints(min_length=1, max_length=4096)] | None = Field(
        default=None, validate_default=True
    )
    _raw_session: dict[str, Any] = PrivateAttr(default_factory=dict)

    @model_validator(mode="wrap")
    @classmethod
    def _keep_raw(cls, value: Any, handler: ModelWrapValidatorHandler[SignupBody]) -> SignupBody:
        body = handler(value)
        if isinstance(value, dict) and isinstance(value.get("session"), dict):
            body._raw_session = copy.deepcopy(value["session"])
        else:
            body._raw_session = body.session.model_dump(mode="json")
        return body

    @property
    def raw_session(self) -> dict[str, Any]:
        """The session-info message as the browser handed it over, unknown keys included."""
        return self._raw_session

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

    def digest(self) -> str:
        """SHA-256 of the body (code and raw session): the same body twice is one record."""
        canonical = json.dumps(
            {"code": self.code, "session": self.raw_session},
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=False,
        )
        return hashlib.sha256(canonical.encode()).hexdigest()


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
    """What ``POST /signup`` answers: an onboarding, or a signup recorded without one."""

    event: str
    onboarding_id: int | None = None
    recorded: Recorded | None = None
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
    connect_ref: str | None = None,
) -> SignupOutcome:
    """Start an onboarding (once per code) or record a signup coexist does not onboard. Commits.

    ``connect_ref`` is the customer reference of the invitation link of a signup made on the
    hosted page (:mod:`onboarding.connect`); it is kept on the onboarding or abandoned signup.
    """
    now = now or utcnow()
    message = body.session
    if not isinstance(message, FinishSession):
        return _record(session, body, message, now, connect_ref)
    assert body.code is not None  # enforced by SignupBody
    digest = code_digest(body.code)
    existing = session.scalar(select(Onboarding).where(Onboarding.code_sha256 == digest))
    if existing is not None:
        log.info("signup_duplicate", onboarding_id=existing.id)
        return SignupOutcome(
            message.event, onboarding_id=existing.id, created=False, state=existing.state
        )
    data = message.data
    onboarding = Onboarding(
        code_sha256=digest,
        code_ciphertext=cipher.encrypt(body.code),
        signup_event=message.event,
        session_data=body.raw_session,
        waba_id=data.waba_id,
        phone_number_id=data.phone_number_id,
        business_id=data.business_id,
        connect_ref=connect_ref,
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
        session.flush()
        emit(
            session,
            EventType.ONBOARDING_STATE_CHANGED,
            onboarding,
            {"from": None, "to": onboarding.state, "cause": onboarding.transitions[0].cause},
            occurred_at=now,
        )
        session.commit()
    except IntegrityError:
        session.rollback()  # the same code, posted twice at once
        winner = session.scalar(select(Onboarding).where(Onboarding.code_sha256 == digest))
        if winner is None:
            raise
        return SignupOutcome(
            message.event, onboarding_id=winner.id, created=False, state=winner.state
        )
    log.info(
        "signup_received",
        onboarding_id=onboarding.id,
        waba_id=onboarding.waba_id,
        phone_number_id=onboarding.phone_number_id,
        signup_event=message.event,
    )
    others = other_waba_ids(onboarding)
    if others:
        log.info("signup_other_wabas_not_onboarded", onboarding_id=onboarding.id, waba_ids=others)
    return SignupOutcome(
        message.event, onboarding_id=onboarding.id, created=True, state=onboarding.state
    )


def other_waba_ids(onboarding: Onboarding) -> list[str]:
    """WABAs a multi-WABA finish shared besides the one onboarded (kept in its session).

    A finish names one ``waba_id`` and, in multi-WABA flows, every shared WABA in ``waba_ids``;
    coexist onboards the one ``waba_id`` and keeps the rest on the record
    (docs/meta.md#embedded-signup-v4-session-events).
    """
    data = onboarding.session_data.get("data") if onboarding.session_data else None
    listed = data.get("waba_ids") if isinstance(data, dict) else None
    if not isinstance(listed, list):
        return []
    others = [str(w) for w in listed if str(w) != onboarding.waba_id]
    return list(dict.fromkeys(others))


def _record(
    session: Session,
    body: SignupBody,
    message: RecordSession | CancelSession,
    now: datetime,
    connect_ref: str | None,
) -> SignupOutcome:
    data = message.data.model_dump(mode="json")
    if isinstance(message, RecordSession):
        recorded = record_finish(
            session,
            event=message.event,
            data=data,
            raw_session=body.raw_session,
            body_sha256=body.digest(),
            now=now,
        )
    else:
        telling = body.code is not None or message.data.session_id is not None
        recorded = record_abandoned(
            session,
            event=message.event,
            data=data,
            raw_session=body.raw_session,
            body_sha256=body.digest() if telling else None,
            now=now,
            connect_ref=connect_ref,
        )
    return SignupOutcome(message.event, recorded=recorded, created=recorded.created)
