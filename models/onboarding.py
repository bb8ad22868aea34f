"""Onboardings, their timeline, signups not onboarded, sync requests and operator alerts."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any
from uuid import uuid4

from sqlalchemy import (
    BigInteger,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from models.base import Base, JSONType, NullableJSONType, utcnow

# BIGINT on PostgreSQL, INTEGER on SQLite (where only INTEGER PRIMARY KEY autoincrements).
BigId = BigInteger().with_variant(Integer(), "sqlite")


class OnboardingState(enum.StrEnum):
    RECEIVED = "received"
    TOKEN_EXCHANGED = "token_exchanged"
    SUBSCRIBED = "subscribed"
    SYNCING = "syncing"
    SYNCED = "synced"
    CODE_EXPIRED = "code_expired"
    INELIGIBLE = "ineligible"
    HISTORY_DECLINED = "history_declined"
    SYNC_WINDOW_MISSED = "sync_window_missed"
    FAILED = "failed"
    DISCONNECTED = "disconnected"
    RECONNECTING = "reconnecting"


S = OnboardingState

#: Allowed transitions. ``failed`` can be left by an operator's retry (back to the step that
#: failed); the lifecycle states are entered from any connected state.
TRANSITIONS: dict[OnboardingState, frozenset[OnboardingState]] = {
    S.RECEIVED: frozenset({S.TOKEN_EXCHANGED, S.CODE_EXPIRED, S.FAILED}),
    S.TOKEN_EXCHANGED: frozenset(
        {S.SUBSCRIBED, S.INELIGIBLE, S.FAILED, S.SYNC_WINDOW_MISSED, S.DISCONNECTED}
    ),
    S.SUBSCRIBED: frozenset(
        {
            S.SYNCING,
            S.SYNC_WINDOW_MISSED,
            S.FAILED,
            S.HISTORY_DECLINED,
            S.DISCONNECTED,
            S.RECONNECTING,
        }
    ),
    S.SYNCING: frozenset({S.SYNCED, S.HISTORY_DECLINED, S.FAILED, S.DISCONNECTED, S.RECONNECTING}),
    S.SYNCED: frozenset({S.DISCONNECTED, S.RECONNECTING}),
    S.CODE_EXPIRED: frozenset(),
    S.INELIGIBLE: frozenset(),
    S.HISTORY_DECLINED: frozenset({S.DISCONNECTED, S.RECONNECTING}),
    S.SYNC_WINDOW_MISSED: frozenset({S.DISCONNECTED}),
    S.FAILED: frozenset(
        {
            S.RECEIVED,
            S.TOKEN_EXCHANGED,
            S.SUBSCRIBED,
            S.SYNCING,
            S.SYNC_WINDOW_MISSED,
            S.DISCONNECTED,
        }
    ),
    S.DISCONNECTED: frozenset(),
    S.RECONNECTING: frozenset(
        {S.SUBSCRIBED, S.SYNCING, S.SYNCED, S.HISTORY_DECLINED, S.DISCONNECTED}
    ),
}


class SyncType(enum.StrEnum):
    """``sync_type`` values of ``POST /{phone-number-id}/smb_app_data``, in calling order."""

    CONTACTS = "smb_app_state_sync"
    HISTORY = "history"

    @property
    def label(self) -> str:
        return "contacts" if self is SyncType.CONTACTS else "history"


class SyncState(enum.StrEnum):
    PENDING = "pending"  # nothing sent yet
    INTENT = "intent"  # a call is (or was, if its worker died) in flight
    REQUESTED = "requested"  # Meta accepted it
    UNKNOWN = "unknown"  # the call's outcome was lost
    DECLINED = "declined"
    WINDOW_MISSED = "window_missed"
    FAILED = "failed"
    # History only, once Meta's webhooks flow:
    COMPLETED = "completed"  # progress reached 100 and no chunk is missing
    COMPLETED_WITH_GAPS = "completed_with_gaps"  # progress 100, some chunk_orders missing
    STALLED = "stalled"  # requested, but no history webhook came in time


SYNC_DONE = frozenset(
    {
        SyncState.REQUESTED,
        SyncState.DECLINED,
        SyncState.WINDOW_MISSED,
        SyncState.FAILED,
        SyncState.COMPLETED,
        SyncState.COMPLETED_WITH_GAPS,
        SyncState.STALLED,
    }
)
#: Sync states in which Meta accepted the request (webhooks may flow).
SYNC_ACCEPTED = frozenset(
    {SyncState.REQUESTED, SyncState.COMPLETED, SyncState.COMPLETED_WITH_GAPS, SyncState.STALLED}
)


class Onboarding(Base):
    """One finished Embedded Signup of a Business app number ("connect my existing app")."""

    __tablename__ = "onboardings"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    #: sha256 of the signup code: the same code twice is the same onboarding.
    code_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    #: The signup code, encrypted; wiped once exchanged or expired.
    code_ciphertext: Mapped[bytes | None] = mapped_column(LargeBinary)
    signup_event: Mapped[str] = mapped_column(String(64))
    session_data: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)

    waba_id: Mapped[str] = mapped_column(String(32), index=True)
    phone_number_id: Mapped[str | None] = mapped_column(String(32), index=True)
    business_id: Mapped[str | None] = mapped_column(String(32))
    display_phone_number: Mapped[str | None] = mapped_column(String(32))
    verified_name: Mapped[str | None] = mapped_column(String(256))
    region: Mapped[str | None] = mapped_column(String(2))
    is_on_biz_app: Mapped[bool | None]
    platform_type: Mapped[str | None] = mapped_column(String(32))

    signup_completed_at: Mapped[datetime]
    sync_deadline_at: Mapped[datetime]
    state: Mapped[str] = mapped_column(String(32), index=True, default=S.RECEIVED.value)
    state_changed_at: Mapped[datetime]
    last_error: Mapped[str | None] = mapped_column(Text)
    #: The step an operator's retry resumes (set when the onboarding fails).
    failed_step: Mapped[str | None] = mapped_column(String(32))
    token_ciphertext: Mapped[bytes | None] = mapped_column(LargeBinary)
    last_app_activity_at: Mapped[datetime | None]
    # Lifecycle, from ``account_update`` webhooks (docs/meta.md#49-account_update and
    # #5-account-lifecycle).
    lifecycle_event: Mapped[str | None] = mapped_column(String(64))
    #: ``time`` of the webhook entry that set the lifecycle: older events never overwrite it.
    lifecycle_event_at: Mapped[datetime | None]
    lifecycle_reason: Mapped[str | None] = mapped_column(String(64))
    lifecycle_initiated_by: Mapped[str | None] = mapped_column(String(16))
    lifecycle_since: Mapped[datetime | None]
    #: The state to return to when Meta reconnects an offboarded account.
    resume_state: Mapped[str | None] = mapped_column(String(32))
    #: Why all API sends are paused (ban, violation, deletion), None when they are not;
    #: written only by :mod:`onboarding.pauses`.
    paused_reason: Mapped[str | None] = mapped_column(Text)
    paused_at: Mapped[datetime | None]
    #: The ``account_update`` events holding the pause, comma separated (each is lifted by its
    #: own counterpart, e.g. a ban by ``REINSTATE``).
    paused_by: Mapped[str | None] = mapped_column(String(64))
    #: ``ACCOUNT_RESTRICTION``'s current restrictions: ``[{"type", "expires_at"}]`` with
    #: ``expires_at`` in Unix seconds or None; which sends each stops is
    #: :data:`onboarding.pauses.RESTRICTED_SENDS`.
    restrictions: Mapped[list[dict[str, Any]] | None] = mapped_column(NullableJSONType)
    #: A worker holds the current step until this time (crash-safe mutual exclusion).
    lease_until: Mapped[datetime | None]
    #: When Meta was last re-read for drift (onboarding/reconcile); None: never.
    reconciled_at: Mapped[datetime | None]
    #: The WABA webhook override coexist set when it subscribed (None: it set none, or it has
    #: been removed again): only this one is removed when the onboarding ends.
    webhook_override_set: Mapped[str | None] = mapped_column(String(200))
    #: Changed whenever peers are merged or take a new BSUID: a worker may reuse the peers it
    #: resolved while this is unchanged (:mod:`onboarding.ingest.peers`).
    peers_epoch: Mapped[str | None] = mapped_column(String(32), default=lambda: uuid4().hex)
    #: The provider's customer reference of the invitation link the signup came through.
    connect_ref: Mapped[str | None] = mapped_column(String(64), index=True)
    #: When erasure of its data began (:mod:`onboarding.rights.erase`): from then on its
    #: deliveries are not stored, and nothing is sent or followed up for it.
    erased_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    transitions: Mapped[list[Transition]] = relationship(
        back_populates="onboarding", order_by="Transition.id", cascade="all, delete-orphan"
    )
    syncs: Mapped[list[SyncRequest]] = relationship(
        back_populates="onboarding", order_by="SyncRequest.id", cascade="all, delete-orphan"
    )

    def sync(self, sync_type: SyncType) -> SyncRequest:
        for row in self.syncs:
            if row.sync_type == sync_type.value:
                return row
        raise LookupError(f"onboarding {self.id} has no {sync_type.value} sync row")


class Transition(Base):
    """One state change of an onboarding: the timeline an operator reads."""

    __tablename__ = "onboarding_transitions"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    onboarding_id: Mapped[int] = mapped_column(
        ForeignKey("onboardings.id", ondelete="CASCADE"), index=True
    )
    at: Mapped[datetime]
    from_state: Mapped[str | None] = mapped_column(String(32))
    to_state: Mapped[str] = mapped_column(String(32))
    cause: Mapped[str] = mapped_column(Text)

    onboarding: Mapped[Onboarding] = relationship(back_populates="transitions")


class AbandonedSignup(Base):
    """A ``CANCEL`` (or ``ERROR``) session event: what support needs to help the business."""

    __tablename__ = "abandoned_signups"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    received_at: Mapped[datetime]
    event: Mapped[str] = mapped_column(String(64))
    current_step: Mapped[str | None] = mapped_column(String(128))
    error_code: Mapped[str | None] = mapped_column(String(64))
    error_message: Mapped[str | None] = mapped_column(Text)
    session_id: Mapped[str | None] = mapped_column(String(128), index=True)
    reported_at: Mapped[datetime | None]
    session_data: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    #: SHA-256 of the ``POST /signup`` body when it can tell one signup from another (it has a
    #: ``session_id`` or a code); the same body twice is one row. ``NULL`` for a bare ``CANCEL``.
    body_sha256: Mapped[str | None] = mapped_column(String(64), unique=True)
    #: The invitation link's customer reference, when the signup came through the hosted page.
    connect_ref: Mapped[str | None] = mapped_column(String(64), index=True)


class RecordedFinish(Base):
    """A finished Embedded Signup in a flow coexist does not onboard (``FINISH_ONLY_WABA``…).

    Kept with every id the session named so an operator can follow up
    (docs/meta.md#embedded-signup-v4-session-events).
    """

    __tablename__ = "recorded_finishes"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    received_at: Mapped[datetime]
    event: Mapped[str] = mapped_column(String(64))
    waba_id: Mapped[str | None] = mapped_column(String(32), index=True)
    phone_number_id: Mapped[str | None] = mapped_column(String(32))
    business_id: Mapped[str | None] = mapped_column(String(32))
    #: The session's id lists (``waba_ids``, ``ad_account_ids``…), each as given.
    asset_ids: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    #: The session-info message as the browser handed it over, unknown keys included.
    session_data: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    #: SHA-256 of the ``POST /signup`` body: the same body twice is one row.
    body_sha256: Mapped[str] = mapped_column(String(64), unique=True)


class SyncRequest(Base):
    """One ``smb_app_data`` call per (onboarding, sync type), intent recorded before the call."""

    __tablename__ = "sync_requests"
    __table_args__ = (UniqueConstraint("onboarding_id", "sync_type"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    onboarding_id: Mapped[int] = mapped_column(ForeignKey("onboardings.id", ondelete="CASCADE"))
    sync_type: Mapped[str] = mapped_column(String(32))
    state: Mapped[str] = mapped_column(String(32), default=SyncState.PENDING.value)
    request_id: Mapped[str | None] = mapped_column(String(64))
    attempts: Mapped[int] = mapped_column(default=0)
    #: Attempts whose outcome was lost (dropped response, 5xx, worker died mid-call).
    ambiguous_attempts: Mapped[int] = mapped_column(default=0)
    lease_until: Mapped[datetime | None]
    intent_at: Mapped[datetime | None]
    requested_at: Mapped[datetime | None]
    #: Earliest time the next attempt may be sent (backoff after throttling or a lost answer).
    next_attempt_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    progress: Mapped[int] = mapped_column(default=0)
    first_webhook_at: Mapped[datetime | None]
    last_webhook_at: Mapped[datetime | None]
    completed_at: Mapped[datetime | None]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    onboarding: Mapped[Onboarding] = relationship(back_populates="syncs")

    @property
    def type(self) -> SyncType:
        return SyncType(self.sync_type)


class Alert(Base):
    """Something an operator must look at, raised once per (onboarding, kind)."""

    __tablename__ = "alerts"
    __table_args__ = (
        UniqueConstraint("onboarding_id", "kind"),
        Index("ix_alerts_open", "acknowledged_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    onboarding_id: Mapped[int | None] = mapped_column(
        ForeignKey("onboardings.id", ondelete="CASCADE")
    )
    kind: Mapped[str] = mapped_column(String(64))
    severity: Mapped[str] = mapped_column(String(16), default="warning")
    message: Mapped[str] = mapped_column(Text)
    raised_at: Mapped[datetime]
    acknowledged_at: Mapped[datetime | None]
