"""Dispatch of inbox rows: route every change by ``field`` to its handler.

A delivery is matched to its onboarding by ``value.metadata.phone_number_id``, falling back to
the entry's WABA id (an ``account_update`` by the WABA it is about,
:func:`~onboarding.ingest.lifecycle.event_waba_id`). A delivery whose onboarding is not known
yet waits as ``waiting_for_onboarding`` and is dispatched again when one appears
(:func:`waiting_for`); after Meta's own redelivery horizon (7 days) it is ``orphaned``. An
``account_update`` is different: Meta sends it for every WABA shared with the partner, so one
for a WABA coexist has no onboarding of waits only ``account_update_signup_grace_seconds`` (a
signup's hand-off can reach coexist after Meta's event) and is then processed as recorded, not
applied, with the reason in its summary (``coexist inbox list --not-applied``). A delivery for an
erased onboarding is recorded as not applied too ("onboarding N was erased") and its raw body is
dropped once processed (:mod:`onboarding.rights.erase`). Unknown fields
are kept and marked ignored. Every handler is idempotent, so processing a row twice is
harmless; rows go back to ``pending`` when stale (:func:`stale_pending`) or an operator replays
them (:func:`replay`).
A delivery that cannot be parsed, or keeps failing, is ``quarantined`` for an operator.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import or_, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from config import Settings
from config.logging import bind
from models import InboxDelivery, InboxStatus, MediaState, Message, Onboarding, utcnow
from onboarding import metrics
from onboarding.ingest import contacts, history, lifecycle, messages, user_ids
from onboarding.ingest.retention import BodyDroppedError, kept
from onboarding.ingest.rows import Context, Tally
from onboarding.meta.payloads import Change, PayloadError, parse_delivery

log = structlog.get_logger(__name__)

Handler = Callable[[Session, Onboarding, Change, Settings], Tally]
Finder = Callable[[Session, Change], Onboarding | None]


def _with_context(
    handle: Callable[[Session, Context, dict[str, Any], Settings], Tally],
) -> Handler:
    """A handler of a message-level value, given the onboarding and business number."""

    def run(session: Session, onboarding: Onboarding, change: Change, settings: Settings) -> Tally:
        return handle(
            session,
            Context.of(onboarding, change.business_number, settings),
            change.value,
            settings,
        )

    return run


#: What each ``field`` is routed to; fields not listed are kept and marked ignored.
HANDLERS: dict[str, Handler] = {
    "history": _with_context(lambda s, c, v, cfg: history.ingest_history(s, c, v, settings=cfg)),
    "smb_app_state_sync": _with_context(lambda s, c, v, cfg: contacts.ingest_contacts(s, c, v)),
    "smb_message_echoes": _with_context(lambda s, c, v, cfg: messages.ingest_echoes(s, c, v)),
    "messages": _with_context(lambda s, c, v, cfg: messages.apply_message_events(s, c, v)),
    "account_update": lambda s, o, change, cfg: lifecycle.apply_account_update(s, o, change),
    # Like account_update, sent to the app's default callback (docs/meta.md#113-where-webhooks-go).
    "user_id_update": _with_context(lambda s, c, v, cfg: user_ids.ingest_user_id_update(s, c, v)),
}
#: Processing attempts before a delivery that keeps failing is quarantined for an operator
#: (``coexist inbox replay`` after a fix); every retry is bounded.
MAX_ATTEMPTS = 10


@dataclass
class DeliveryOutcome:
    """Where one inbox row ended: its status, its onboarding, the media messages to download."""

    status: str
    onboarding_id: int | None = None
    media_message_ids: list[int] = field(default_factory=list)


def find_onboarding(session: Session, change: Change) -> Onboarding | None:
    """The newest onboarding of the change's number, else of its WABA."""
    pnid = change.phone_number_id
    if pnid is not None:
        found = session.scalar(
            select(Onboarding)
            .where(Onboarding.phone_number_id == pnid)
            .order_by(Onboarding.id.desc())
            .limit(1)
        )
        if found is not None:
            return found
    if change.waba_id is not None:
        return session.scalar(
            select(Onboarding)
            .where(Onboarding.waba_id == change.waba_id)
            .order_by(Onboarding.id.desc())
            .limit(1)
        )
    return None


#: How a change finds its onboarding, where not by number then WABA (:func:`find_onboarding`).
FINDERS: dict[str, Finder] = {"account_update": lifecycle.find_for_event}
#: Fields whose unmatched changes are settled (recorded, not applied) once the signup grace
#: has passed, with the note saying why; other fields wait for their onboarding.
UNMATCHED_NOTES: dict[str, Callable[[Change], str]] = {"account_update": lifecycle.unmatched_note}


def _waba_of(change: Change) -> str | None:
    """The WABA a change files its inbox row under."""
    if change.field == "account_update":
        return lifecycle.event_waba_id(change)
    return change.waba_id


def _settles_unmatched(
    row: InboxDelivery, change: Change, *, settings: Settings, now: datetime
) -> bool:
    """Whether a change without an onboarding is settled now instead of waiting for one."""
    grace = timedelta(seconds=settings.account_update_signup_grace_seconds)
    return change.field in UNMATCHED_NOTES and now - row.received_at >= grace


def process_delivery(
    session: Session, delivery_id: int, *, settings: Settings, now: datetime | None = None
) -> DeliveryOutcome:
    """Process one inbox row (idempotent). Commits as it goes.

    An unexpected error is recorded on the row (``last_error``) and raised; after
    :data:`MAX_ATTEMPTS` the row is quarantined instead of being tried forever.
    """
    try:
        return _process(session, delivery_id, settings=settings, now=now)
    except Exception as exc:
        session.rollback()
        with contextlib.suppress(SQLAlchemyError):  # the database may be what failed
            session.execute(
                update(InboxDelivery)
                .where(InboxDelivery.id == delivery_id)
                .values(last_error=f"{type(exc).__name__}: {exc}"[:2000])
            )
            session.commit()
        raise


def _process(
    session: Session, delivery_id: int, *, settings: Settings, now: datetime | None
) -> DeliveryOutcome:
    now = now or utcnow()
    row = session.get(InboxDelivery, delivery_id)
    if row is None:
        log.warning("inbox_row_missing", delivery_id=delivery_id)
        return DeliveryOutcome("missing")
    bind(delivery_id=row.id)
    if row.status in (InboxStatus.PROCESSED, InboxStatus.QUARANTINED, InboxStatus.ORPHANED):
        return DeliveryOutcome(row.status, row.onboarding_id)
    if row.attempts >= MAX_ATTEMPTS:
        return _quarantine(
            session, row, f"gave up after {row.attempts} attempts: {row.last_error or 'unknown'}"
        )
    row.attempts += 1
    row.dispatched_at = now
    session.commit()
    try:
        changes = parse_delivery(row.body)
    except PayloadError as exc:
        return _quarantine(session, row, str(exc))
    if row.fields is None:  # the receiver stores raw bytes; routing columns are filled here
        row.fields = ",".join(sorted({c.field for c in changes}))[:256]
        row.waba_id = row.waba_id or _waba_of(changes[0])
        row.phone_number_id = row.phone_number_id or changes[0].phone_number_id

    resolved: list[tuple[Change, Onboarding | None]] = []
    for change in changes:
        onboarding = FINDERS.get(change.field, find_onboarding)(session, change)
        if (
            onboarding is None
            and change.field in HANDLERS
            and not _settles_unmatched(row, change, settings=settings, now=now)
        ):
            return _park(session, row, change, settings=settings, now=now)
        resolved.append((change, onboarding))
    summary, media_wamids = _run_handlers(session, row, resolved, settings)

    row = session.get_one(InboxDelivery, delivery_id)
    row.status = InboxStatus.PROCESSED.value
    row.processed_at = utcnow()
    row.summary = summary
    row.last_error = None
    if any(o is not None and o.erased_at is not None for _, o in resolved):
        row.body = b""  # an erased onboarding's delivery keeps no raw body
        row.body_dropped_at = row.processed_at
    session.commit()
    metrics.DELIVERIES.labels("processed").inc()
    log.info("webhook_processed", fields=row.fields, summary=summary)
    return DeliveryOutcome(row.status, row.onboarding_id, downloadable(session, media_wamids))


def _park(
    session: Session, row: InboxDelivery, change: Change, *, settings: Settings, now: datetime
) -> DeliveryOutcome:
    """No onboarding for this change yet: the row waits for one, or is orphaned past Meta's
    redelivery horizon. Commits."""
    if now - row.received_at > timedelta(days=settings.inbox_orphan_after_days):
        row.status = InboxStatus.ORPHANED.value
        row.last_error = "no onboarding matched within Meta's redelivery horizon"
        session.commit()
        log.warning("webhook_orphaned", fields=row.fields)
        return DeliveryOutcome(row.status)
    row.status = InboxStatus.WAITING.value
    row.waba_id = row.waba_id or _waba_of(change)
    row.phone_number_id = row.phone_number_id or change.phone_number_id
    row.last_error = (
        f"no onboarding yet for number {change.phone_number_id} / WABA {change.waba_id}"
    )
    session.commit()
    log.info(
        "webhook_waiting_for_onboarding",
        waba_id=change.waba_id,
        phone_number_id=change.phone_number_id,
    )
    return DeliveryOutcome(row.status)


def _run_handlers(
    session: Session,
    row: InboxDelivery,
    resolved: list[tuple[Change, Onboarding | None]],
    settings: Settings,
) -> tuple[dict[str, Any], dict[int, list[str]]]:
    """Each change through its handler: the summary per field, media wamids per onboarding."""
    summary: dict[str, Any] = {}
    media_wamids: dict[int, list[str]] = {}
    for change, onboarding in resolved:
        entry = summary.setdefault(change.field, {})
        if onboarding is None and change.field in UNMATCHED_NOTES:
            entry["not_applied"] = entry.get("not_applied", 0) + 1
            entry.setdefault("notes", []).append(UNMATCHED_NOTES[change.field](change))
            log.info("webhook_not_applied", field=change.field, waba_id=_waba_of(change))
            continue
        if onboarding is None or change.field not in HANDLERS:
            entry["ignored"] = entry.get("ignored", 0) + 1
            continue
        row.onboarding_id = onboarding.id
        if onboarding.erased_at is not None:
            # Erased (onboarding/rights/erase.py): nothing of it is stored any more.
            entry["not_applied"] = entry.get("not_applied", 0) + 1
            note = f"onboarding {onboarding.id} was erased"
            if note not in entry.setdefault("notes", []):
                entry["notes"].append(note)
            log.info("webhook_not_applied", field=change.field, reason="erased")
            continue
        tally = HANDLERS[change.field](session, onboarding, change, settings)
        for key, value in tally.as_dict().items():
            if isinstance(value, int):
                entry[key] = entry.get(key, 0) + value
            else:
                entry.setdefault(key, []).extend(value)
        if tally.media_wamids:
            media_wamids.setdefault(onboarding.id, []).extend(tally.media_wamids)
    return summary, media_wamids


def downloadable(session: Session, wamids: dict[int, list[str]]) -> list[int]:
    """The messages named by ``wamids`` (per onboarding) whose media is still to download."""
    ids: list[int] = []
    for onboarding_id, batch in wamids.items():
        for start in range(0, len(batch), 500):
            ids += session.scalars(
                select(Message.id).where(
                    Message.onboarding_id == onboarding_id,
                    Message.wamid.in_(batch[start : start + 500]),
                    Message.media_state == MediaState.AWAITING.value,
                    Message.media_id.is_not(None),
                )
            ).all()
    return ids


def _quarantine(session: Session, row: InboxDelivery, reason: str) -> DeliveryOutcome:
    row.status = InboxStatus.QUARANTINED.value
    row.last_error = reason
    session.commit()
    metrics.DELIVERIES.labels("quarantined").inc()
    log.warning("webhook_quarantined", delivery_id=row.id, reason=reason)
    return DeliveryOutcome(row.status)


def waiting_for(session: Session, onboarding: Onboarding) -> list[int]:
    """Inbox rows waiting for this onboarding's number or WABA, put back to pending."""
    conditions = [InboxDelivery.waba_id == onboarding.waba_id]
    if onboarding.phone_number_id:
        conditions.append(InboxDelivery.phone_number_id == onboarding.phone_number_id)
    ids = list(
        session.scalars(
            select(InboxDelivery.id).where(
                InboxDelivery.status == InboxStatus.WAITING.value, or_(*conditions)
            )
        )
    )
    if ids:
        session.execute(
            update(InboxDelivery)
            .where(InboxDelivery.id.in_(ids))
            .values(status=InboxStatus.PENDING.value)
        )
        session.commit()
    return ids


def stale_pending(
    session: Session, *, settings: Settings, now: datetime | None = None
) -> list[int]:
    """Pending rows nobody processed in time (broker outage, lost message): dispatch again.

    Also wakes waiting rows whose onboarding has appeared since, and ``account_update`` rows
    past the signup grace (dispatch settles them), and orphans the rest past Meta's 7-day
    horizon. Commits.
    """
    now = now or utcnow()
    cutoff = now - timedelta(seconds=settings.inbox_redispatch_after_seconds)
    stale = (
        InboxDelivery.status == InboxStatus.PENDING.value,
        InboxDelivery.received_at < cutoff,
        or_(InboxDelivery.dispatched_at.is_(None), InboxDelivery.dispatched_at < cutoff),
    )
    # Claimed by one UPDATE that re-checks the conditions: of two runs at the same moment,
    # the second waits for the first's row locks, then finds the rows dispatched already.
    batch = select(InboxDelivery.id).where(*stale).order_by(InboxDelivery.id).limit(5000)
    pending = sorted(
        session.scalars(
            update(InboxDelivery)
            .where(InboxDelivery.id.in_(batch.scalar_subquery()), *stale)
            .values(dispatched_at=now)
            .returning(InboxDelivery.id)
            .execution_options(synchronize_session=False)
        )
    )
    waiting = session.scalars(
        select(InboxDelivery).where(InboxDelivery.status == InboxStatus.WAITING.value).limit(5000)
    ).all()
    woken: list[int] = []
    orphan_before = now - timedelta(days=settings.inbox_orphan_after_days)
    grace_before = now - timedelta(seconds=settings.account_update_signup_grace_seconds)
    for row in waiting:
        change = Change(
            row.waba_id, "", {"metadata": {"phone_number_id": row.phone_number_id}}, None
        )
        settles = row.fields in UNMATCHED_NOTES and row.received_at <= grace_before
        if settles or find_onboarding(session, change) is not None:
            row.status = InboxStatus.PENDING.value
            woken.append(row.id)
        elif row.received_at < orphan_before:
            row.status = InboxStatus.ORPHANED.value
            row.last_error = "no onboarding matched within Meta's redelivery horizon"
    session.commit()
    return pending + woken


def replay(
    session: Session, *, delivery_id: int | None = None, status: str | None = None
) -> list[int]:
    """Inbox rows to process again, put back to ``pending`` (quarantined ones too: a fixed
    parser may now read them). Commits; the caller enqueues.

    Rows whose raw body retention dropped are left alone: one asked for by id raises
    :class:`~onboarding.ingest.retention.BodyDroppedError`, and a replay by status skips them.
    """
    query = select(InboxDelivery.id)
    if delivery_id is not None:
        row = session.get(InboxDelivery, delivery_id)
        if row is not None and row.body_dropped_at is not None:
            session.rollback()
            raise BodyDroppedError(row.id, row.body_dropped_at)
        query = query.where(InboxDelivery.id == delivery_id)
    else:
        query = query.where(InboxDelivery.status == status, kept())
    ids = list(session.scalars(query.order_by(InboxDelivery.id).limit(100_000)))
    if ids:
        # Rechecked as it writes: a body dropped meanwhile is not replayed.
        ids = sorted(
            session.scalars(
                update(InboxDelivery)
                .where(InboxDelivery.id.in_(ids), kept())
                .values(status=InboxStatus.PENDING.value, last_error=None)
                .returning(InboxDelivery.id)
            )
        )
    session.commit()
    return ids
