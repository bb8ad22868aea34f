"""What the feed says: the event types, and :func:`emit`, which writes one in the caller's
transaction.

An event is written by the code that makes the change it tells of, in the same transaction
(a transactional outbox): if the change rolls back, so does its event, and a change that
commits is never without its event. The body of each type is documented in the README
("The event feed"); ``version`` changes when a body's shape changes in a way a consumer must
know of (fields are only ever added within a version).
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Table, insert
from sqlalchemy.orm import Session

from models import FeedEvent, Onboarding, utcnow

EVENTS: Table = FeedEvent.__table__  # type: ignore[assignment]
#: ``session.info`` key: False turns the feed off for that session's database (``COEX_FEED``).
ENABLED = "feed"


class EventType(enum.StrEnum):
    """Every event the feed carries; each type's body is documented in the README."""

    ONBOARDING_STATE_CHANGED = "onboarding.state_changed"
    SYNC_REQUESTED = "sync.requested"
    SYNC_PROGRESS = "sync.progress"
    SYNC_COMPLETED = "sync.completed"
    SYNC_COMPLETED_WITH_GAPS = "sync.completed_with_gaps"
    SYNC_DECLINED = "sync.declined"
    SYNC_STALLED = "sync.stalled"
    SYNC_WINDOW_MISSED = "sync.window_missed"
    #: A page of messages stored: history, app echoes, API sends or live traffic (``source``).
    MESSAGES_STORED = "messages.stored"
    MESSAGE_STATUS = "message.status"
    MESSAGE_EDITED = "message.edited"
    MESSAGE_REVOKED = "message.revoked"
    CONTACTS_UPSERTED = "contacts.upserted"
    CONTACTS_REMOVED = "contacts.removed"
    PEER_USER_ID_CHANGED = "peer.user_id_changed"
    MEDIA_STORED = "media.stored"
    MEDIA_SKIPPED = "media.skipped"
    MEDIA_EXPIRED = "media.expired"
    MEDIA_FAILED = "media.failed"
    ACCOUNT_DISCONNECTED = "account.disconnected"
    ACCOUNT_RECONNECTING = "account.reconnecting"
    ACCOUNT_RECONNECTED = "account.reconnected"
    ACCOUNT_PAUSED = "account.paused"
    ACCOUNT_RESUMED = "account.resumed"
    FOLLOW_UP_SCHEDULED = "follow_up.scheduled"
    FOLLOW_UP_SENT = "follow_up.sent"
    FOLLOW_UP_ACKNOWLEDGED = "follow_up.acknowledged"
    ALERT_RAISED = "alert.raised"
    ALERT_RESOLVED = "alert.resolved"
    #: The onboarding's data was erased (:mod:`onboarding.rights.erase`).
    ONBOARDING_ERASED = "onboarding.erased"


#: The body version of each type (1 for all, so far).
VERSIONS: dict[EventType, int] = dict.fromkeys(EventType, 1)


def enabled(session: Session) -> bool:
    """Whether this session's database keeps the feed."""
    return bool(session.info.get(ENABLED, True))


def emit(
    session: Session,
    type: EventType,
    onboarding: Onboarding | None,
    body: dict[str, Any],
    *,
    occurred_at: datetime | None = None,
) -> None:
    """Write one event in the session's transaction (not committed; nothing if the feed is
    off). ``body`` must be JSON: times as :func:`iso` strings."""
    if not enabled(session):
        return
    session.execute(
        insert(EVENTS).values(
            type=type.value,
            version=VERSIONS[type],
            onboarding_id=onboarding.id if onboarding is not None else None,
            waba_id=onboarding.waba_id if onboarding is not None else None,
            phone_number_id=onboarding.phone_number_id if onboarding is not None else None,
            occurred_at=occurred_at or utcnow(),
            body=body,
        )
    )


def emit_many(
    session: Session,
    onboarding: Onboarding | None,
    events: Sequence[tuple[EventType, dict[str, Any]]],
    *,
    occurred_at: datetime | None = None,
) -> None:
    """:func:`emit` for several events of one onboarding, in one INSERT (a stored page and the
    media it settled)."""
    if not events or not enabled(session):
        return
    at = occurred_at or utcnow()
    ids = (
        (onboarding.id, onboarding.waba_id, onboarding.phone_number_id)
        if onboarding is not None
        else (None, None, None)
    )
    session.execute(
        insert(EVENTS).values(
            [
                {
                    "type": type.value,
                    "version": VERSIONS[type],
                    "onboarding_id": ids[0],
                    "waba_id": ids[1],
                    "phone_number_id": ids[2],
                    "occurred_at": at,
                    "body": body,
                }
                for type, body in events
            ]
        )
    )


def emit_for(
    session: Session,
    type: EventType,
    onboarding_id: int | None,
    body: dict[str, Any],
    *,
    occurred_at: datetime | None = None,
) -> None:
    """:func:`emit` where only the onboarding's id is at hand."""
    if not enabled(session):
        return
    onboarding = session.get(Onboarding, onboarding_id) if onboarding_id is not None else None
    emit(session, type, onboarding, body, occurred_at=occurred_at)


def iso(at: datetime | None) -> str | None:
    """A time as the feed writes it: ISO 8601 in UTC, with its offset."""
    if at is None:
        return None
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return at.astimezone(UTC).isoformat()
