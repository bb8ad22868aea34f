"""Deliveries processed together: a task's live traffic in one pass per onboarded number.

Under steady live traffic almost every ``messages`` delivery carries one user message or a
status or two. Processed one by one (:func:`.dispatch.process_delivery`), each costs its own
claim, onboarding lookup, peer lookup, upsert, feed event and three commits: about 20 ms, so a
worker settles some 50 a second. The receiver hands the ``ingest`` queue a few dozen stored
deliveries per task; :func:`process_batch` merges those that are *plain live traffic* — every
change a ``messages`` change of a known onboarding, made only of user messages
(:data:`.live.STORED_TYPES`), statuses and errors — per onboarding and number into one
``messages`` value, and hands it to the very handler a single delivery goes through
(:func:`.messages.apply_message_events`): one claim, one peer lookup, one upsert, one
``messages.stored`` event and one update that settles the group.

What is merged does not depend on order: messages are stored by wamid, statuses only move a
message forward and wait for a message not stored yet. Edits, revokes and system messages
(a user's new BSUID) do depend on it, so a delivery holding one goes alone, as does any other
field, a delivery whose onboarding is not known yet or was erased, and one tried before. Those
go through :func:`.dispatch.process_delivery` one by one, in id order.

Every handler is idempotent, so a group that fails is rolled back and its deliveries are
processed again one by one, where each records its own error and is quarantined after
:data:`.dispatch.MAX_ATTEMPTS` as usual. A group's counts are kept on its first delivery's
summary (``deliveries_processed_together``); each other delivery's summary names that first
delivery (``processed_with``), so the summaries still add up to what was done.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

import structlog
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from config import Settings
from models import InboxDelivery, InboxStatus, Onboarding, utcnow
from onboarding import metrics
from onboarding.ingest import live
from onboarding.ingest.changes import is_change
from onboarding.ingest.dispatch import (
    DeliveryOutcome,
    downloadable,
    find_onboarding,
    process_delivery,
)
from onboarding.ingest.messages import apply_message_events
from onboarding.ingest.rows import Context
from onboarding.meta.payloads import Change, PayloadError, parse_delivery

log = structlog.get_logger(__name__)

#: The lists of a ``messages`` value that a merged value concatenates.
LISTS: Final = ("contacts", "messages", "statuses", "errors")
#: The keys a plain live-traffic value may hold.
PLAIN_KEYS: Final = frozenset({"messaging_product", "metadata", *LISTS})

#: (onboarding id, the value's ``metadata.phone_number_id``, the business number).
GroupKey = tuple[int, str | None, str | None]


@dataclass
class BatchOutcome:
    """Where a task's deliveries ended; ``failed`` raised and are for the caller to retry."""

    outcomes: list[DeliveryOutcome] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class _Member:
    """A delivery of a group, as read when the task's deliveries were grouped."""

    id: int
    waba_id: str | None
    phone_number_id: str | None
    values: list[dict[str, Any]]


@dataclass
class _Group:
    onboarding_id: int
    business_number: str | None
    members: list[_Member] = field(default_factory=list)


def process_batch(
    session: Session, delivery_ids: list[int], *, settings: Settings, now: datetime | None = None
) -> BatchOutcome:
    """Process a task's deliveries: plain live traffic merged per onboarded number, the rest
    one by one. Commits as it goes."""
    groups, alone = _plan(session, delivery_ids)
    session.rollback()  # only read so far: end the read transaction before writing
    out = BatchOutcome()
    for group in groups.values():
        ids = [member.id for member in group.members]
        if len(ids) == 1:
            alone += ids
            continue
        try:
            out.outcomes += _process_group(session, group, settings=settings, now=now)
        except Exception as exc:
            session.rollback()
            log.warning("delivery_group_failed", deliveries=len(ids), lead=ids[0], error=repr(exc))
            alone += ids
    for delivery_id in sorted(alone):
        try:
            out.outcomes.append(process_delivery(session, delivery_id, settings=settings, now=now))
        except Exception:  # one bad delivery must not hold up the others of its batch
            log.exception("delivery_failed_in_batch", delivery_id=delivery_id)
            out.failed.append(delivery_id)
    return out


def _plan(session: Session, delivery_ids: list[int]) -> tuple[dict[GroupKey, _Group], list[int]]:
    """The plain live-traffic deliveries grouped by onboarded number, and the others."""
    rows = session.scalars(
        select(InboxDelivery).where(InboxDelivery.id.in_(delivery_ids)).order_by(InboxDelivery.id)
    ).all()
    found = {row.id for row in rows}
    alone = [i for i in delivery_ids if i not in found]  # process_delivery says it is missing
    groups: dict[GroupKey, _Group] = {}
    onboardings: dict[tuple[str | None, str | None], Onboarding | None] = {}
    for row in rows:
        placed = _place(session, row, onboardings)
        if placed is None:
            alone.append(row.id)
            continue
        key, changes = placed
        group = groups.setdefault(key, _Group(key[0], key[2]))
        first = changes[0]
        group.members.append(
            _Member(
                row.id,
                row.waba_id or first.waba_id,
                row.phone_number_id or first.phone_number_id,
                [change.value for change in changes],
            )
        )
    return groups, alone


def _place(
    session: Session,
    row: InboxDelivery,
    onboardings: dict[tuple[str | None, str | None], Onboarding | None],
) -> tuple[GroupKey, list[Change]] | None:
    """The group a delivery joins, or None if it goes alone."""
    if row.status != InboxStatus.PENDING.value or row.attempts > 0:
        return None
    try:
        changes = parse_delivery(row.body)
    except PayloadError:
        return None  # quarantined by process_delivery, with the reason
    keys: set[GroupKey] = set()
    for change in changes:
        if change.field != "messages" or not plain(change.value):
            return None
        where = (change.phone_number_id, change.waba_id)
        if where not in onboardings:
            onboardings[where] = find_onboarding(session, change)
        onboarding = onboardings[where]
        if onboarding is None or onboarding.erased_at is not None:
            return None  # waits for its onboarding, or is recorded as not applied (erased)
        keys.add((onboarding.id, change.phone_number_id, change.business_number))
    if len(keys) != 1:
        return None
    return keys.pop(), changes


def plain(value: dict[str, Any]) -> bool:
    """Whether a ``messages`` value is plain live traffic: user messages, statuses, errors."""
    if not set(value) <= PLAIN_KEYS:
        return False
    if any(name in value and not isinstance(value[name], list) for name in LISTS):
        return False
    return all(
        isinstance(msg, dict) and msg.get("type") in live.STORED_TYPES and not is_change(msg)
        for msg in value.get("messages", [])
    )


def merged(values: list[dict[str, Any]]) -> dict[str, Any]:
    """One ``messages`` value holding every list of ``values``, in order."""
    out: dict[str, Any] = {k: v for k, v in values[0].items() if k not in LISTS}
    for name in LISTS:
        items = [item for value in values for item in value.get(name, [])]
        if items:
            out[name] = items
    return out


def _process_group(
    session: Session, group: _Group, *, settings: Settings, now: datetime | None
) -> list[DeliveryOutcome]:
    """One onboarded number's plain deliveries through one handler call; settles them all.
    Commits."""
    members = group.members
    ids = [member.id for member in members]
    session.execute(
        update(InboxDelivery)
        .where(InboxDelivery.id.in_(ids))
        .values(attempts=InboxDelivery.attempts + 1, dispatched_at=now or utcnow())
    )
    session.commit()
    onboarding = session.get_one(Onboarding, group.onboarding_id)
    ctx = Context.of(onboarding, group.business_number, settings)
    value = merged([value for member in members for value in member.values])
    tally = apply_message_events(session, ctx, value)
    counts = tally.as_dict() | {"deliveries_processed_together": len(ids)}
    processed_at = utcnow()
    session.execute(
        update(InboxDelivery),
        [
            {
                "id": member.id,
                "status": InboxStatus.PROCESSED.value,
                "processed_at": processed_at,
                "summary": {"messages": counts if n == 0 else {"processed_with": ids[0]}},
                "last_error": None,
                "onboarding_id": onboarding.id,
                "fields": "messages",
                "waba_id": member.waba_id,
                "phone_number_id": member.phone_number_id,
            }
            for n, member in enumerate(members)
        ],
    )
    session.commit()
    metrics.DELIVERIES.labels("processed").inc(len(ids))
    log.info("webhooks_processed_together", deliveries=len(ids), lead=ids[0], summary=counts)
    media = downloadable(session, {onboarding.id: tally.media_wamids})
    return [
        DeliveryOutcome(InboxStatus.PROCESSED.value, onboarding.id, media if n == 0 else [])
        for n in range(len(ids))
    ]
