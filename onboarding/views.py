"""The JSON an operator reads: ``coexist onboardings show --json`` and ``GET /onboardings/{id}``,
``coexist signups list --json`` and ``GET /signups``."""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from typing import Any

from sqlalchemy import Select, case, exists, func, select
from sqlalchemy.orm import Session

from models import (
    AbandonedSignup,
    Alert,
    ChangeKind,
    Contact,
    FollowUp,
    HistoryChunk,
    InboxDelivery,
    MediaState,
    Message,
    MessageChange,
    MessageSource,
    Onboarding,
    Peer,
    PendingStatus,
    RecordedFinish,
    SyncType,
    utcnow,
)
from onboarding.ingest.history import chunk_phases
from onboarding.signup.intake import other_waba_ids


def iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


def onboarding_summary(onboarding: Onboarding) -> dict[str, Any]:
    """One line of ``onboardings list``."""
    return {
        "id": onboarding.id,
        "state": onboarding.state,
        "waba_id": onboarding.waba_id,
        "phone_number_id": onboarding.phone_number_id,
        "display_phone_number": onboarding.display_phone_number,
        "region": onboarding.region,
        "signup_completed_at": iso(onboarding.signup_completed_at),
        "sync_deadline_at": iso(onboarding.sync_deadline_at),
        "contacts_sync": onboarding.sync(SyncType.CONTACTS).state,
        "history_sync": onboarding.sync(SyncType.HISTORY).state,
        "last_error": onboarding.last_error,
    }


def onboarding_detail(
    session: Session, onboarding: Onboarding, now: datetime | None = None
) -> dict[str, Any]:
    """Everything an operator needs about one onboarding (no secrets)."""
    now = now or utcnow()
    left = (onboarding.sync_deadline_at - now).total_seconds()
    alerts = session.scalars(
        select(Alert).where(Alert.onboarding_id == onboarding.id).order_by(Alert.id)
    ).all()
    detail: dict[str, Any] = {
        "id": onboarding.id,
        "state": onboarding.state,
        "signup_event": onboarding.signup_event,
        "waba_id": onboarding.waba_id,
        "phone_number_id": onboarding.phone_number_id,
        "business_id": onboarding.business_id,
        "other_waba_ids": other_waba_ids(onboarding),
        "display_phone_number": onboarding.display_phone_number,
        "verified_name": onboarding.verified_name,
        "region": onboarding.region,
        "is_on_biz_app": onboarding.is_on_biz_app,
        "platform_type": onboarding.platform_type,
        "signup_completed_at": iso(onboarding.signup_completed_at),
        "sync_deadline_at": iso(onboarding.sync_deadline_at),
        "sync_window_seconds_left": max(0, int(left)),
        "last_error": onboarding.last_error,
        "failed_step": onboarding.failed_step,
        "has_token": onboarding.token_ciphertext is not None,
        "erased_at": iso(onboarding.erased_at),
        "last_app_activity_at": iso(onboarding.last_app_activity_at),
        "sync": {
            t.label: {
                "sync_type": t.value,
                "state": (row := onboarding.sync(t)).state,
                "request_id": row.request_id,
                "attempts": row.attempts,
                "ambiguous_attempts": row.ambiguous_attempts,
                "requested_at": iso(row.requested_at),
                "next_attempt_at": iso(row.next_attempt_at),
                "last_error": row.last_error,
                "progress": row.progress,
                "completed_at": iso(row.completed_at),
            }
            for t in SyncType
        },
        "lifecycle": {
            "state": onboarding.state,
            "event": onboarding.lifecycle_event,
            "reason": onboarding.lifecycle_reason,
            "initiated_by": onboarding.lifecycle_initiated_by,
            "since": iso(onboarding.lifecycle_since),
            "event_time": iso(onboarding.lifecycle_event_at),
            "paused_reason": onboarding.paused_reason,
            "paused_by": onboarding.paused_by,
            "restrictions": onboarding.restrictions or [],
        },
        "counts": counts(session, onboarding.id),
        "peers": peer_counts(session, onboarding.id),
        "follow_ups": [
            follow_up_json(f)
            for f in session.scalars(
                select(FollowUp)
                .where(FollowUp.onboarding_id == onboarding.id)
                .order_by(FollowUp.due_at, FollowUp.id)
            )
        ],
        "timeline": [
            {"at": iso(t.at), "from": t.from_state, "to": t.to_state, "cause": t.cause}
            for t in onboarding.transitions
        ],
        "alerts": [alert_json(a) for a in alerts],
    }
    detail["sync"]["history"]["phases"] = history_phases(session, onboarding.id)
    return detail


def message_counts_query(onboarding_id: int) -> Select[str, str, str, int]:
    """An onboarding's messages by direction, source and media state (one pass over its
    messages: the one cost of an onboarding's page that grows with its history)."""
    m = Message
    return (
        select(m.direction, m.source, m.media_state, func.count())
        .where(m.onboarding_id == onboarding_id)
        .group_by(m.direction, m.source, m.media_state)
    )


def threads_query(onboarding_id: int) -> Select[int]:
    """An onboarding's threads: its peers with a message (one index probe per peer), plus the
    labels of messages that name no peer yet."""
    m = Message
    with_messages = (
        select(func.count())
        .select_from(Peer)
        .where(
            Peer.onboarding_id == onboarding_id,
            exists().where(m.onboarding_id == onboarding_id, m.peer_id == Peer.id),
        )
        .scalar_subquery()
    )
    unnamed = (
        select(func.count(func.distinct(m.thread)))
        .where(m.onboarding_id == onboarding_id, m.peer_id.is_(None))
        .scalar_subquery()
    )
    return select(with_messages + unnamed)


def counts(session: Session, onboarding_id: int) -> dict[str, int]:
    """What an onboarding's webhooks brought in, for ``show --json``."""

    def n(condition: Any) -> Any:
        return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)

    by = {"direction": Counter[str](), "source": Counter[str](), "media": Counter[str]()}
    total = 0
    for direction, source, media_state, number in session.execute(
        message_counts_query(onboarding_id)
    ):
        total += number
        by["direction"][direction] += number
        by["source"][source] += number
        by["media"][media_state] += number
    out = {
        "messages": total,
        "threads": int(session.scalar(threads_query(onboarding_id)) or 0),
        "messages_inbound": by["direction"]["inbound"],
        "messages_outbound": by["direction"]["outbound"],
        "app_echoes": by["source"][MessageSource.APP_ECHO.value],
        "messages_api": by["source"][MessageSource.API.value],
        "messages_live": by["source"][MessageSource.LIVE.value],
        "media_stored": by["media"][MediaState.STORED.value],
        "media_awaiting": by["media"][MediaState.AWAITING.value],
        "media_skipped_too_old": by["media"][MediaState.SKIPPED_TOO_OLD.value],
        "media_expired": by["media"][MediaState.EXPIRED.value],
        "media_failed": by["media"][MediaState.FAILED.value],
    }
    contacts = session.execute(
        select(
            n(Contact.removed_at.is_(None)),
            n(Contact.removed_at.is_not(None)),
        ).where(Contact.onboarding_id == onboarding_id)
    ).one()
    ledger = session.execute(
        select(
            func.count(HistoryChunk.id),
            func.coalesce(func.sum(HistoryChunk.dropped_out_of_window), 0),
            func.coalesce(func.sum(HistoryChunk.dropped_group), 0),
        ).where(HistoryChunk.onboarding_id == onboarding_id)
    ).one()
    out["contacts"], out["contacts_removed"] = (int(v) for v in contacts)
    out["history_chunks"] = int(ledger[0])
    out["dropped_out_of_window"] = int(ledger[1])
    out["dropped_group"] = int(ledger[2])
    # Edits and revokes still waiting for the message they change (onboarding/ingest/changes.py).
    pending = session.execute(
        select(MessageChange.kind, func.count(MessageChange.id))
        .where(MessageChange.onboarding_id == onboarding_id)
        .group_by(MessageChange.kind)
    ).all()
    waiting = {kind: int(number) for kind, number in pending}
    out["edits_pending"] = waiting.get(ChangeKind.EDIT.value, 0)
    out["revokes_pending"] = waiting.get(ChangeKind.REVOKE.value, 0)
    # Statuses still waiting for their message (onboarding/ingest/statuses.py).
    out["statuses_pending"] = int(
        session.scalar(
            select(func.count(PendingStatus.id)).where(PendingStatus.onboarding_id == onboarding_id)
        )
        or 0
    )
    return out


def peer_counts(session: Session, onboarding_id: int) -> dict[str, int]:
    """The people an onboarding's webhooks named, with and without a phone number (username
    adopters may share none) and with a username (docs/meta.md#business-scoped-user-ids)."""
    total, with_phone, with_username = session.execute(
        select(func.count(Peer.id), func.count(Peer.phone), func.count(Peer.username)).where(
            Peer.onboarding_id == onboarding_id
        )
    ).one()
    return {
        "total": int(total),
        "with_phone": int(with_phone),
        "without_phone": int(total) - int(with_phone),
        "with_username": int(with_username),
    }


def history_phases(session: Session, onboarding_id: int) -> dict[str, dict[str, list[int]]]:
    return {str(p): v for p, v in chunk_phases(session, onboarding_id).items()}


def alert_json(alert: Alert) -> dict[str, Any]:
    return {
        "id": alert.id,
        "onboarding_id": alert.onboarding_id,
        "kind": alert.kind,
        "severity": alert.severity,
        "message": alert.message,
        "raised_at": iso(alert.raised_at),
        "acknowledged_at": iso(alert.acknowledged_at),
    }


def inbox_json(delivery: InboxDelivery) -> dict[str, Any]:
    """One stored delivery for ``inbox list`` (the raw body is not printed)."""
    return {
        "id": delivery.id,
        "status": delivery.status,
        "received_at": iso(delivery.received_at),
        "processed_at": iso(delivery.processed_at),
        "fields": delivery.fields,
        "waba_id": delivery.waba_id,
        "phone_number_id": delivery.phone_number_id,
        "onboarding_id": delivery.onboarding_id,
        "size": delivery.size,
        "sha256": delivery.sha256,
        "attempts": delivery.attempts,
        "duplicates": delivery.duplicates,
        "last_error": delivery.last_error,
        "summary": delivery.summary,
        "body_dropped_at": iso(delivery.body_dropped_at),
    }


def follow_up_json(follow_up: FollowUp) -> dict[str, Any]:
    """One follow-up for ``follow-ups list`` and ``show --json``."""
    return {
        "id": follow_up.id,
        "onboarding_id": follow_up.onboarding_id,
        "kind": follow_up.kind,
        "series": follow_up.series,
        "step": follow_up.step,
        "due_at": iso(follow_up.due_at),
        "status": follow_up.status,
        "sent_count": follow_up.sent_count,
        "sent_at": iso(follow_up.sent_at),
        "acknowledged_at": iso(follow_up.acknowledged_at),
        "last_error": follow_up.last_error,
        "content": follow_up.content,
    }


def signup_record_json(row: AbandonedSignup | RecordedFinish) -> dict[str, Any]:
    """One signup recorded without an onboarding, for ``signups list`` and ``GET /signups``.

    Both kinds share one shape; what a kind does not carry is ``null`` (or ``{}``).
    """
    record: dict[str, Any] = {
        "kind": "not_onboarded",
        "id": row.id,
        "event": row.event,
        "received_at": iso(row.received_at),
        "waba_id": None,
        "phone_number_id": None,
        "business_id": None,
        "asset_ids": {},
        "current_step": None,
        "error_code": None,
        "error_message": None,
        "session_id": None,
        "reported_at": None,
        "session": row.session_data,
    }
    if isinstance(row, RecordedFinish):
        record.update(
            waba_id=row.waba_id,
            phone_number_id=row.phone_number_id,
            business_id=row.business_id,
            asset_ids=row.asset_ids,
        )
    else:
        record.update(
            kind="abandoned",
            current_step=row.current_step,
            error_code=row.error_code,
            error_message=row.error_message,
            session_id=row.session_id,
            reported_at=iso(row.reported_at),
        )
    return record
