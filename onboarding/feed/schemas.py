"""The feed's envelope and each event type's body, as models: the OpenAPI schema of
``GET /v1/events`` and of pushed batches, and a check that what coexist writes is what it
documents (tests validate every event a whole onboarding writes against these, extra keys
refused).

Version 1 of every body. Fields are only ever added within a version.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from onboarding.feed.events import EventType


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class StateChanged(Body):
    from_state: str | None = Field(alias="from", description="null for a new onboarding")
    to: str
    cause: str


#: Meta's ``sync_type`` of the sync (``smb_app_state_sync`` is the contacts sync).
SyncType = Literal["smb_app_state_sync", "history"]


class SyncRequested(Body):
    sync_type: SyncType
    request_id: str | None = Field(description="Meta's; null when its answer was lost")


class SyncProgress(Body):
    sync_type: SyncType
    progress: int = Field(ge=0, le=100)


class SyncEnded(Body):
    """``sync.completed``, ``sync.declined``, ``sync.stalled``, ``sync.window_missed``."""

    sync_type: SyncType


class MissingChunks(Body):
    phase: int
    chunk_orders: list[int]


class SyncWithGaps(Body):
    sync_type: SyncType
    missing_chunks: list[MissingChunks]


class MediaRef(Body):
    state: str = Field(description="awaiting_media, stored, skipped_too_old, expired, failed…")
    mime: str | None
    sha256: str | None


class StoredMessage(Body):
    wamid: str
    thread: str
    peer_id: int | None
    direction: Literal["inbound", "outbound"]
    sent_at: str
    type: str
    text: str | None = Field(description="the text, or a media's caption")
    media: MediaRef | None


class MessagesStored(Body):
    source: Literal["history", "app_echo", "api", "live"]
    count: int
    phase: int | None = Field(default=None, description="history only")
    chunk_order: int | None = Field(default=None, description="history only")
    messages: list[StoredMessage] = Field(description="each message is listed exactly once")


class StatusError(Body):
    code: int | None
    title: str | None


class MessageStatus(Body):
    wamid: str
    status: str = Field(description="sent, delivered, read, played or failed")
    previous: str | None
    error: StatusError | None
    at: str | None


class MessageChanged(Body):
    """``message.edited`` and ``message.revoked``."""

    wamid: str
    original_wamid: str
    text: str | None = Field(description="the message's text now; null once revoked")
    changed_at: str


class ContactItem(Body):
    peer_id: int
    phone: str | None
    user_id: str | None
    full_name: str | None
    first_name: str | None
    changed_at: str


class Contacts(Body):
    """``contacts.upserted`` and ``contacts.removed``."""

    contacts: list[ContactItem]


class PeerUserIdChanged(Body):
    peer_id: int | None
    previous: str
    current: str


class MediaStored(Body):
    wamid: str
    sha256: str = Field(description="hex digest of the stored bytes")
    mime: str | None
    size: int | None


class MediaSkipped(Body):
    wamid: str
    reason: str | None


class MediaProblem(Body):
    """``media.expired`` and ``media.failed``."""

    wamid: str
    error: str | None


class AccountDisconnected(Body):
    event: str
    reason: str | None
    initiated_by: str | None


class AccountReconnecting(Body):
    event: str
    resume_state: str | None


class AccountReconnected(Body):
    event: str
    state: str


class Restriction(Body):
    type: str
    expires_at: str | None
    stops: list[str]


class AccountPaused(Body):
    event: str
    reason: str | None
    paused_by: list[str]
    restrictions: list[Restriction]


class AccountResumed(Body):
    cause: str


class FollowUpScheduled(Body):
    follow_up_id: int
    kind: str
    series: int
    step: int
    due_at: str


class FollowUpSent(Body):
    follow_up_id: int
    kind: str
    channels: list[str]
    due_at: str
    sent_at: str | None


class FollowUpAcknowledged(Body):
    follow_up_id: int
    kind: str
    series: int


class AlertBody(Body):
    """``alert.raised`` and ``alert.resolved``."""

    kind: str
    severity: str
    message: str


class OnboardingErased(Body):
    requested_by: str = Field(description="operator, retention:disconnected or retention:failed")
    reason: str | None
    requested_at: str
    erased_at: str
    counts: dict[str, int] = Field(description="rows (and media objects) deleted, per kind")
    note: str | None = Field(description="what coexist did not do, e.g. disconnect at Meta")


E = EventType
#: The body model of every event type.
BODIES: dict[EventType, type[Body]] = {
    E.ONBOARDING_STATE_CHANGED: StateChanged,
    E.SYNC_REQUESTED: SyncRequested,
    E.SYNC_PROGRESS: SyncProgress,
    E.SYNC_COMPLETED: SyncEnded,
    E.SYNC_COMPLETED_WITH_GAPS: SyncWithGaps,
    E.SYNC_DECLINED: SyncEnded,
    E.SYNC_STALLED: SyncEnded,
    E.SYNC_WINDOW_MISSED: SyncEnded,
    E.MESSAGES_STORED: MessagesStored,
    E.MESSAGE_STATUS: MessageStatus,
    E.MESSAGE_EDITED: MessageChanged,
    E.MESSAGE_REVOKED: MessageChanged,
    E.CONTACTS_UPSERTED: Contacts,
    E.CONTACTS_REMOVED: Contacts,
    E.PEER_USER_ID_CHANGED: PeerUserIdChanged,
    E.MEDIA_STORED: MediaStored,
    E.MEDIA_SKIPPED: MediaSkipped,
    E.MEDIA_EXPIRED: MediaProblem,
    E.MEDIA_FAILED: MediaProblem,
    E.ACCOUNT_DISCONNECTED: AccountDisconnected,
    E.ACCOUNT_RECONNECTING: AccountReconnecting,
    E.ACCOUNT_RECONNECTED: AccountReconnected,
    E.ACCOUNT_PAUSED: AccountPaused,
    E.ACCOUNT_RESUMED: AccountResumed,
    E.FOLLOW_UP_SCHEDULED: FollowUpScheduled,
    E.FOLLOW_UP_SENT: FollowUpSent,
    E.FOLLOW_UP_ACKNOWLEDGED: FollowUpAcknowledged,
    E.ALERT_RAISED: AlertBody,
    E.ALERT_RESOLVED: AlertBody,
    E.ONBOARDING_ERASED: OnboardingErased,
}


class Event(BaseModel):
    """One event of the feed, pulled (``GET /v1/events``) or pushed."""

    id: int
    cursor: str = Field(description="its place in the feed: pass it as `after`")
    type: EventType
    version: int
    onboarding_id: int | None
    waba_id: str | None
    phone_number_id: str | None
    occurred_at: str
    data: (
        StateChanged
        | SyncRequested
        | SyncProgress
        | SyncEnded
        | SyncWithGaps
        | MessagesStored
        | MessageStatus
        | MessageChanged
        | Contacts
        | PeerUserIdChanged
        | MediaStored
        | MediaSkipped
        | MediaProblem
        | AccountDisconnected
        | AccountReconnecting
        | AccountReconnected
        | AccountPaused
        | AccountResumed
        | FollowUpScheduled
        | FollowUpSent
        | FollowUpAcknowledged
        | AlertBody
        | dict[str, Any]
    ) = Field(
        description="the body of this `type` ("
        + "; ".join(f"`{t.value}`: {m.__name__}" for t, m in BODIES.items())
        + ")"
    )


class EventPage(BaseModel):
    events: list[Event]
    next_cursor: str = Field(description="ask again with `after` set to this")


class PushedBatch(BaseModel):
    """What push delivery POSTs, signed per Standard Webhooks."""

    events: list[Event]


def check(event: dict[str, Any]) -> Body:
    """``event``'s body validated against its type's model (unknown keys refused)."""
    return BODIES[EventType(event["type"])].model_validate(event["data"])
