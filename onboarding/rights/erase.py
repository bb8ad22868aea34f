"""Data erasure: everything coexist holds of one onboarding's conversations goes, in steps.

:func:`request_erasure` records the request (an :class:`~models.Erasure` row, one per
onboarding), stamps ``Onboarding.erased_at`` and wipes the onboarding's secrets at once (the
encrypted business token unless a webhook override is still to be taken back (below), any
signup code left, the signup's session data): from then on
nothing is sent or followed up for it, and its deliveries are recorded as not applied
(:mod:`onboarding.ingest.dispatch`). :func:`advance` then does the work in bounded steps, each
a batch of at most ``COEX_ERASE_BATCH_SIZE`` rows in its own transaction, and returns after
``COEX_ERASE_BATCHES_PER_RUN`` of them so that a worker is never held for long; the task runs
it again until the erasure is done.

The steps, in order (:data:`STEPS`); each deletes the onboarding's rows of one kind:

=====================  ========================================================================
``media``              messages with stored media: first their objects in the media store
                       (one another onboarding's message still holds stays:
                       :func:`onboarding.media_store.erasure.erase_media`), then the rows
``messages``           the other messages
``message_changes``    edits (their texts) and revokes
``pending_statuses``   statuses waiting for their message
``dropped_messages``   records of messages that could not be stored
``history_chunks``     the history ledger
``contacts``           the address book
``user_id_changes``    the peers' BSUID history
``peers``              the people the business exchanged with
``notifications``      follow-ups' notifications, then
``follow_ups``         the follow-ups
``feed_events``        the onboarding's feed events that carry personal data (:data:`PERSONAL`)
``inbox``              the raw bodies of its inbox rows (emptied, ``body_dropped_at`` set, as
                       retention does); the relay passes over a row without its body, so
                       erasure forwards nothing more of the onboarding
``finish``             checks nothing is left (a delivery processed while the erasure began
                       may have added rows: then the steps run again), emits
                       ``onboarding.erased`` and marks the erasure done, in one transaction
=====================  ========================================================================

Kept: the onboarding row (ids of the WABA and number, state, lifecycle), its timeline, its
sync requests and alerts (no conversation in them), the inbox rows' metadata, the feed events
that carry no personal data (state changes, syncs, account events, follow-ups, alerts) and the
erasure record.

Resumable: every step deletes what is still there, so a crash anywhere leaves a state that
running :func:`advance` again completes, ending in the same state. A media object is deleted
before the rows that name it (a crash between the two deletes it again: deleting an object
that is gone is not an error). A lease on the record keeps two workers from running one
erasure at once.

A WABA webhook override coexist set is taken back, as when the onboarding is disconnected:
the business token is then kept (it is wiped at once otherwise) until the override sweep
(:func:`onboarding.signup.routing.release_overrides`, every minute) has removed the override
or given up with its ``webhook_override_not_removed`` alert, and the sweep wipes it.

Not done: coexist does not unsubscribe the app from the WABA nor disconnect the number at Meta
(the record's ``note`` says so when the onboarding was still connected).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

import structlog
from sqlalchemy import Select, delete, exists, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from config import Settings
from models import (
    Contact,
    DroppedMessage,
    Erasure,
    ErasureState,
    FeedEvent,
    FollowUp,
    HistoryChunk,
    InboxDelivery,
    InboxStatus,
    MediaState,
    Message,
    MessageChange,
    Notification,
    Onboarding,
    OnboardingState,
    Peer,
    PendingStatus,
    UserIdChange,
    utcnow,
)
from onboarding.feed.events import EventType, emit, iso
from onboarding.media_store import MediaStore
from onboarding.media_store.erasure import erase_media
from onboarding.rights.export import OnboardingNotFoundError

log = structlog.get_logger(__name__)

#: Who asked: an operator (CLI, admin API), or one of the automatic rules.
BY_OPERATOR: Final = "operator"
BY_DISCONNECT_RULE: Final = "retention:disconnected"
BY_FAILURE_RULE: Final = "retention:failed"
#: How long one run holds the erasure (longer than the task's time limit).
LEASE: Final = timedelta(minutes=15)
#: Feed events of these types carry message texts, names, numbers or BSUIDs: deleted.
PERSONAL: Final = frozenset(
    {
        EventType.MESSAGES_STORED,
        EventType.MESSAGE_STATUS,
        EventType.MESSAGE_EDITED,
        EventType.MESSAGE_REVOKED,
        EventType.CONTACTS_UPSERTED,
        EventType.CONTACTS_REMOVED,
        EventType.PEER_USER_ID_CHANGED,
        EventType.MEDIA_STORED,
        EventType.MEDIA_SKIPPED,
        EventType.MEDIA_EXPIRED,
        EventType.MEDIA_FAILED,
    }
)
#: States in which the number is no longer connected to coexist at Meta.
NOT_CONNECTED: Final = frozenset(
    {
        OnboardingState.DISCONNECTED.value,
        OnboardingState.FAILED.value,
        OnboardingState.CODE_EXPIRED.value,
        OnboardingState.INELIGIBLE.value,
    }
)
#: Failed signups the failure rule erases.
SIGNUP_FAILED: Final = (
    OnboardingState.FAILED.value,
    OnboardingState.CODE_EXPIRED.value,
    OnboardingState.INELIGIBLE.value,
)
STILL_CONNECTED_NOTE: Final = (
    "the number was still connected when erasure began; coexist did not unsubscribe the app "
    "from the WABA nor disconnect the number at Meta: the business disconnects it in the "
    "WhatsApp Business app, or the partner removes it in Meta's Business Manager"
)


@dataclass(frozen=True)
class Step:
    """One kind of row to delete: a batch's ids, and how to delete them."""

    name: str
    #: The ids of at most ``limit`` rows still to go, for one onboarding.
    ids: Callable[[int, int], Select[int]]
    table: Any


def _by_onboarding(model: Any) -> Callable[[int, int], Select[int]]:
    def ids(onboarding_id: int, limit: int) -> Select[int]:
        return (
            select(model.id)
            .where(model.onboarding_id == onboarding_id)
            .order_by(model.id)
            .limit(limit)
        )

    return ids


def _stored_media(onboarding_id: int, limit: int) -> Select[int]:
    return (
        select(Message.id)
        .where(
            Message.onboarding_id == onboarding_id,
            Message.media_state == MediaState.STORED.value,
        )
        .order_by(Message.id)
        .limit(limit)
    )


def _notifications(onboarding_id: int, limit: int) -> Select[int]:
    return (
        select(Notification.id)
        .where(
            Notification.follow_up_id.in_(
                select(FollowUp.id).where(FollowUp.onboarding_id == onboarding_id)
            )
        )
        .order_by(Notification.id)
        .limit(limit)
    )


def _personal_events(onboarding_id: int, limit: int) -> Select[int]:
    return (
        select(FeedEvent.id)
        .where(
            FeedEvent.onboarding_id == onboarding_id,
            FeedEvent.type.in_(sorted(t.value for t in PERSONAL)),
        )
        .order_by(FeedEvent.id)
        .limit(limit)
    )


def _inbox_bodies(onboarding_id: int, limit: int) -> Select[int]:
    return (
        select(InboxDelivery.id)
        .where(
            InboxDelivery.onboarding_id == onboarding_id,
            InboxDelivery.body_dropped_at.is_(None),
            # A pending row is being processed: dispatch drops its body once done.
            InboxDelivery.status != InboxStatus.PENDING.value,
        )
        .order_by(InboxDelivery.id)
        .limit(limit)
    )


#: The steps in the order they run (the module's docstring says why this order).
STEPS: Final[tuple[Step, ...]] = (
    Step("media", _stored_media, Message),
    Step("messages", _by_onboarding(Message), Message),
    Step("message_changes", _by_onboarding(MessageChange), MessageChange),
    Step("pending_statuses", _by_onboarding(PendingStatus), PendingStatus),
    Step("dropped_messages", _by_onboarding(DroppedMessage), DroppedMessage),
    Step("history_chunks", _by_onboarding(HistoryChunk), HistoryChunk),
    Step("contacts", _by_onboarding(Contact), Contact),
    Step("user_id_changes", _by_onboarding(UserIdChange), UserIdChange),
    Step("peers", _by_onboarding(Peer), Peer),
    Step("notifications", _notifications, Notification),
    Step("follow_ups", _by_onboarding(FollowUp), FollowUp),
    Step("feed_events", _personal_events, FeedEvent),
    Step("inbox", _inbox_bodies, InboxDelivery),
)
FINISH: Final = "finish"
DONE: Final = "done"
STEP_NAMES: Final = (*(s.name for s in STEPS), FINISH)
_BY_NAME: Final = {s.name: s for s in STEPS}


def request_erasure(
    session: Session,
    onboarding_id: int,
    *,
    requested_by: str = BY_OPERATOR,
    reason: str | None = None,
    now: datetime | None = None,
) -> Erasure:
    """Record the erasure of ``onboarding_id`` and stop everything for it (committed); the
    erasure already recorded if there is one (running or done). Raises
    :class:`OnboardingNotFoundError`."""
    existing = _erasure_of(session, onboarding_id)
    if existing is not None:
        return existing
    onboarding = session.get(Onboarding, onboarding_id, with_for_update=True)
    if onboarding is None:
        raise OnboardingNotFoundError(onboarding_id)
    now = now or utcnow()
    erasure = Erasure(
        onboarding_id=onboarding_id,
        requested_at=now,
        requested_by=requested_by,
        reason=reason,
        state=ErasureState.RUNNING.value,
        step=STEP_NAMES[0],
        counts={},
        note=None if onboarding.state in NOT_CONNECTED else STILL_CONNECTED_NOTE,
    )
    session.add(erasure)
    onboarding.erased_at = now
    if onboarding.webhook_override_set is None:
        onboarding.token_ciphertext = None
    # else the token stays until the override sweep has taken coexist's override back
    # (onboarding.signup.routing.release_overrides), which then wipes it.
    onboarding.code_ciphertext = None
    onboarding.session_data = {}
    try:
        session.commit()
    except IntegrityError:  # another request recorded it first
        session.rollback()
        return session.scalars(select(Erasure).where(Erasure.onboarding_id == onboarding_id)).one()
    log.info(
        "erasure_requested",
        onboarding_id=onboarding_id,
        requested_by=requested_by,
        still_connected=erasure.note is not None,
    )
    return erasure


def _erasure_of(session: Session, onboarding_id: int) -> Erasure | None:
    return session.scalars(select(Erasure).where(Erasure.onboarding_id == onboarding_id)).first()


def advance(
    session: Session,
    onboarding_id: int,
    *,
    store: MediaStore,
    settings: Settings,
    now: datetime | None = None,
) -> Erasure | None:
    """Run up to ``COEX_ERASE_BATCHES_PER_RUN`` batches of the onboarding's erasure, each
    committed; the erasure as it then stands (``state`` says whether it is done), or None if
    there is none. An erasure another worker holds is left alone."""
    erasure = _erasure_of(session, onboarding_id)
    if erasure is None or erasure.state == ErasureState.DONE.value:
        return erasure
    if not _claim(session, erasure.id, now or utcnow()):
        log.info("erasure_held_elsewhere", onboarding_id=onboarding_id)
        return erasure
    try:
        for _ in range(settings.erase_batches_per_run):
            if not _one_batch(session, erasure, store, settings.erase_batch_size):
                break
    finally:
        session.rollback()
        session.execute(update(Erasure).where(Erasure.id == erasure.id).values(lease_until=None))
        session.commit()
    session.refresh(erasure)
    return erasure


def _claim(session: Session, erasure_id: int, now: datetime) -> bool:
    result = session.execute(
        update(Erasure)
        .where(
            Erasure.id == erasure_id,
            Erasure.state == ErasureState.RUNNING.value,
            or_(Erasure.lease_until.is_(None), Erasure.lease_until < now),
        )
        .values(lease_until=now + LEASE)
        .execution_options(synchronize_session=False)
    )
    session.commit()
    return bool(result.rowcount)  # type: ignore[attr-defined]


def _one_batch(session: Session, erasure: Erasure, store: MediaStore, limit: int) -> bool:
    """Do one batch of the current step and commit; whether there is more to do."""
    if erasure.step == FINISH:
        _finish(session, erasure)
        return False
    step = _BY_NAME[erasure.step]
    ids = list(session.scalars(step.ids(erasure.onboarding_id, limit)))
    counts = dict(erasure.counts)
    if ids:
        done = _apply(session, step, ids, store, counts)
        counts[step.name] = counts.get(step.name, 0) + done
    if len(ids) < limit:
        erasure.step = STEP_NAMES[STEP_NAMES.index(step.name) + 1]
    erasure.counts = counts
    session.commit()
    log.info("erasure_step", onboarding_id=erasure.onboarding_id, step=step.name, rows=len(ids))
    return True


def _apply(
    session: Session, step: Step, ids: list[int], store: MediaStore, counts: dict[str, Any]
) -> int:
    """Delete (or, for the inbox, empty) the rows ``ids``; how many were."""
    if step.name == "media":
        erased = erase_media(session, store, ids)
        counts["media_objects"] = counts.get("media_objects", 0) + len(erased.deleted)
        counts["media_shared"] = counts.get("media_shared", 0) + len(erased.shared)
    if step.name == "inbox":
        result = session.execute(
            update(InboxDelivery)
            .where(InboxDelivery.id.in_(ids), InboxDelivery.body_dropped_at.is_(None))
            .values(body=b"", body_dropped_at=utcnow())
            .execution_options(synchronize_session=False)
        )
    else:
        result = session.execute(
            delete(step.table)
            .where(step.table.id.in_(ids))
            .execution_options(synchronize_session=False)
        )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def _left(session: Session, onboarding_id: int) -> str | None:
    """The first step that still has rows of the onboarding (None: nothing is left)."""
    for step in STEPS:
        if session.scalar(select(exists(step.ids(onboarding_id, 1).subquery()))):
            return step.name
    return None


def _finish(session: Session, erasure: Erasure) -> None:
    left = _left(session, erasure.onboarding_id)
    if left is not None:
        # Rows written by work that started before the erasure: go through the steps again.
        log.info("erasure_rows_left", onboarding_id=erasure.onboarding_id, step=left)
        erasure.step = left
        session.commit()
        return
    now = utcnow()
    erasure.state = ErasureState.DONE.value
    erasure.step = DONE
    erasure.completed_at = now
    onboarding = session.get_one(Onboarding, erasure.onboarding_id)
    emit(
        session,
        EventType.ONBOARDING_ERASED,
        onboarding,
        erased_body(erasure),
        occurred_at=now,
    )
    session.commit()
    log.info("erasure_done", onboarding_id=erasure.onboarding_id, counts=erasure.counts)


def erased_body(erasure: Erasure) -> dict[str, Any]:
    """The ``onboarding.erased`` event's body."""
    return {
        "requested_by": erasure.requested_by,
        "reason": erasure.reason,
        "requested_at": iso(erasure.requested_at),
        "erased_at": iso(erasure.completed_at),
        "counts": dict(sorted(erasure.counts.items())),
        "note": erasure.note,
    }


def erasure_json(erasure: Erasure) -> dict[str, Any]:
    """The erasure record as the CLI and the admin API show it."""
    return {
        "onboarding_id": erasure.onboarding_id,
        "state": erasure.state,
        "step": erasure.step,
        "requested_at": iso(erasure.requested_at),
        "requested_by": erasure.requested_by,
        "reason": erasure.reason,
        "counts": dict(sorted(erasure.counts.items())),
        "note": erasure.note,
        "completed_at": iso(erasure.completed_at),
    }


# -- the automatic rules and the sweep -----------------------------------------------------


def due_automatic(session: Session, *, settings: Settings, now: datetime, limit: int) -> list[int]:
    """Onboardings an automatic rule makes due for erasure and not yet erased, oldest first."""
    rules = []
    if settings.erase_after_disconnect_days is not None:
        rules.append(
            (Onboarding.state == OnboardingState.DISCONNECTED.value)
            & (Onboarding.lifecycle_event == "PARTNER_REMOVED")
            & (
                Onboarding.state_changed_at
                <= now - timedelta(days=settings.erase_after_disconnect_days)
            )
        )
    if settings.erase_after_failure_days is not None:
        rules.append(
            Onboarding.state.in_(SIGNUP_FAILED)
            & (
                Onboarding.state_changed_at
                <= now - timedelta(days=settings.erase_after_failure_days)
            )
        )
    if not rules:
        return []
    return list(
        session.scalars(
            select(Onboarding.id)
            .where(Onboarding.erased_at.is_(None), or_(*rules))
            .order_by(Onboarding.state_changed_at, Onboarding.id)
            .limit(limit)
        )
    )


def rule_of(onboarding: Onboarding) -> str:
    """Which automatic rule an onboarding is due by."""
    if onboarding.state == OnboardingState.DISCONNECTED.value:
        return BY_DISCONNECT_RULE
    return BY_FAILURE_RULE


def sweep(session: Session, *, settings: Settings, now: datetime | None = None) -> list[int]:
    """Start the erasures the automatic rules make due and list the running ones, at most
    ``COEX_ERASE_SWEEP_LIMIT`` of each; the onboardings whose erasure is to run now."""
    now = now or utcnow()
    limit = settings.erase_sweep_limit
    for onboarding_id in due_automatic(session, settings=settings, now=now, limit=limit):
        onboarding = session.get_one(Onboarding, onboarding_id)
        rule = rule_of(onboarding)
        days = (
            settings.erase_after_disconnect_days
            if rule == BY_DISCONNECT_RULE
            else settings.erase_after_failure_days
        )
        request_erasure(
            session,
            onboarding_id,
            requested_by=rule,
            reason=f"{onboarding.state} for more than {days:g} days",
            now=now,
        )
    session.commit()
    return list(
        session.scalars(
            select(Erasure.onboarding_id)
            .where(
                Erasure.state == ErasureState.RUNNING.value,
                or_(Erasure.lease_until.is_(None), Erasure.lease_until < now),
            )
            .order_by(Erasure.id)
            .limit(limit)
        )
    )
