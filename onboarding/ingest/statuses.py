"""Statuses of the business's messages: ``value.statuses[]`` of the ``messages`` webhook.

Meta reports each message the business sent through the Cloud API as ``sent``, ``delivered``,
``read`` (``played`` for a voice message) or ``failed`` with ``errors[]``
(docs/meta.md#1114-live-messages-and-statuses). They arrive out of order and repeated, so the
stored status only moves forward, by rank:

    accepted (the send's answer) < sent < failed < delivered < read < played

``failed`` is final against ``accepted`` and ``sent`` (a late ``sent`` does not undo it); only
Meta saying the message reached the user (``delivered``, ``read``, ``played``) replaces it.
A status of the same or a lower rank than the stored one changes nothing. History's statuses
(``SENT``, ``DELIVERED``, ``READ``, ``PLAYED``, ``ERROR`` as failed, ``PENDING`` as accepted)
rank the same way. A ``failed`` status also stores its error (``errors[0]`` code and title),
kept even if a later ``delivered`` overrides it.

A status may come before its message: the send that made it may not have committed yet, or
the echo or history chunk carrying it is still on the way. It is then kept in
``pending_statuses`` and applied by whichever path stores that message later (an API send,
live messages, a history chunk, an echo, late media call :func:`apply_pending` after their
commit). The status is committed before its message is looked for again, so either order
ends with it applied. Each change of status writes a ``message.status`` feed event in its
transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

from sqlalchemy import delete, exists, select, update
from sqlalchemy.orm import Session

from models import Message, Onboarding, PendingStatus, utcnow
from onboarding.feed.events import EventType, emit, iso
from onboarding.ingest.dropped import BATCH
from onboarding.ingest.rows import Context, Tally, usable_wamid
from onboarding.meta.payloads import clean_text, unix_time
from onboarding.store import insert_for

#: Each status's rank: a message's status only moves to a higher one.
RANKS: Final[dict[str, int]] = {
    "accepted": 0,
    "pending": 0,
    "sent": 1,
    "failed": 2,
    "error": 2,
    "delivered": 3,
    "read": 4,
    "played": 5,
}
#: The statuses Meta's status webhook carries.
WEBHOOK_STATUSES: Final = frozenset({"sent", "delivered", "read", "played", "failed"})
FAILED: Final = "failed"
#: An error title is stored at most this long.
MAX_TITLE_LENGTH: Final = 512
#: A status kept this long without its message arriving is forgotten: every path that stores
#: a message the business sent (an API send, an echo, history) delivers it well within this.
PENDING_STATUS_DAYS: Final = 14


@dataclass(frozen=True)
class Status:
    """One status webhook item: the message it is about, the status, its time, its error."""

    wamid: str
    status: str
    at: datetime
    error_code: int | None = None
    error_title: str | None = None


def rank(status: str | None) -> int:
    """A status's rank (-1 for none or one coexist does not know)."""
    return RANKS.get(status.lower(), -1) if isinstance(status, str) else -1


def parse_statuses(ctx: Context, items: Any, tally: Tally) -> list[Status]:
    """The usable items of ``value.statuses``; the others rejected with their reason."""
    if not isinstance(items, list):
        tally.reject("'statuses' is not a list")
        return []
    found = []
    for item in items:
        status = parse_status(ctx, item, tally)
        if status is not None:
            found.append(status)
    return found


def parse_status(ctx: Context, item: Any, tally: Tally) -> Status | None:
    """One ``statuses[]`` item as a :class:`Status`, or None (rejected)."""
    if not isinstance(item, dict):
        tally.reject("status is not an object")
        return None
    wamid = item.get("id")
    if not isinstance(wamid, str) or not usable_wamid(wamid):
        tally.reject("status without a usable message id")
        return None
    status = item.get("status")
    if not isinstance(status, str) or status not in WEBHOOK_STATUSES:
        tally.reject(f"{wamid}: unknown status {str(status)[:32]!r}")
        return None
    at = unix_time(item.get("timestamp"), now=ctx.now)
    if at is None:
        tally.reject(f"{wamid}: status timestamp missing or implausible")
        return None
    code, title = _error(item.get("errors")) if status == FAILED else (None, None)
    return Status(wamid, status, at, code, title)


def _error(errors: Any) -> tuple[int | None, str | None]:
    """The first error's code and title (``message`` when there is no title)."""
    first = errors[0] if isinstance(errors, list) and errors else None
    if not isinstance(first, dict):
        return None, None
    code = first.get("code")
    title = first.get("title") or first.get("message")
    return (
        code
        if isinstance(code, int) and not isinstance(code, bool) and 0 <= code < 2**31
        else None,
        clean_text(title, MAX_TITLE_LENGTH),
    )


def apply_statuses(
    session: Session,
    ctx: Context,
    statuses: Sequence[Status],
    tally: Tally,
    now: datetime,
    *,
    keep: bool = True,
) -> None:
    """Apply statuses to their stored messages; keep the others until they come (with
    ``keep``; else they are counted, as their message can never come). Commits."""
    if not statuses:
        return
    onboarding = ctx.onboarding
    stored = _apply_all(session, onboarding, statuses, tally)
    waiting = [s for s in statuses if s.wamid not in stored]
    if waiting and not keep:
        tally.counts["statuses_for_unknown_messages"] += len(waiting)
        waiting = []
    if waiting:
        tally.counts["statuses_pending"] += len(waiting)
        _keep(session, onboarding.id, waiting, now)
    session.commit()
    # The message may have been stored by another worker meanwhile, before it could see the
    # kept status: look again now that the status is committed.
    apply_pending(session, onboarding, [s.wamid for s in waiting], tally)


def apply_pending(
    session: Session, onboarding: Onboarding, wamids: Sequence[str], tally: Tally
) -> None:
    """Apply and forget the kept statuses of these just-stored messages. Commits if any.

    Call it after the commit that made the messages visible. While no status is kept for the
    onboarding, this is one indexed look."""
    if not wamids or not session.scalar(
        select(exists().where(PendingStatus.onboarding_id == onboarding.id))
    ):
        return
    unique = sorted(set(wamids))
    for start in range(0, len(unique), BATCH):
        kept = session.scalars(
            select(PendingStatus)
            .where(
                PendingStatus.onboarding_id == onboarding.id,
                PendingStatus.wamid.in_(unique[start : start + BATCH]),
            )
            .order_by(PendingStatus.status_at, PendingStatus.id)
            .with_for_update(skip_locked=True)
        ).all()
        stored = _apply_all(
            session,
            onboarding,
            [Status(k.wamid, k.status, k.status_at, k.error_code, k.error_title) for k in kept],
            tally,
        )
        applied = [k for k in kept if k.wamid in stored]
        if applied:
            session.execute(
                delete(PendingStatus)
                .where(PendingStatus.id.in_([k.id for k in applied]))
                .execution_options(synchronize_session=False)
            )
            tally.counts["pending_statuses_applied"] += len(applied)
    session.commit()


def forget_stale(session: Session, *, now: datetime | None = None) -> int:
    """Drop statuses kept longer than :data:`PENDING_STATUS_DAYS` (their message never came:
    one the business sent with another tool, say). Commits; how many went."""
    cutoff = (now or utcnow()) - timedelta(days=PENDING_STATUS_DAYS)
    result = session.execute(
        delete(PendingStatus)
        .where(PendingStatus.received_at < cutoff)
        .execution_options(synchronize_session=False)
    )
    session.commit()
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def _apply_all(
    session: Session, onboarding: Onboarding, statuses: Sequence[Status], tally: Tally
) -> set[str]:
    """Move each stored message's status forward where a status ranks higher (not
    committed); write a feed event per change; return the wamids found stored.

    The messages' rows are locked first, in one statement and in id order, so two workers
    applying statuses to the same messages take turns and neither undoes the other, whatever
    order their statuses come in."""
    wamids = sorted({s.wamid for s in statuses})
    current: dict[str, tuple[int, str | None]] = {}
    for start in range(0, len(wamids), BATCH):
        for row in session.execute(
            select(Message.id, Message.wamid, Message.status)
            .where(
                Message.onboarding_id == onboarding.id,
                Message.wamid.in_(wamids[start : start + BATCH]),
            )
            .order_by(Message.id)
            .with_for_update()
        ):
            current[row.wamid] = (row.id, row.status)
    for status in sorted(statuses, key=lambda s: (s.at, rank(s.status))):
        if status.wamid not in current:
            continue
        message_id, previous = current[status.wamid]
        if rank(status.status) <= rank(previous):
            tally.counts["statuses_not_newer"] += 1
            continue
        _move(session, onboarding, message_id, status, previous)
        current[status.wamid] = (message_id, status.status)
        tally.counts[f"statuses_{status.status}"] += 1
    return set(current)


def _move(
    session: Session, onboarding: Onboarding, message_id: int, status: Status, previous: str | None
) -> None:
    """Write one message's new status (and a failure's error) and its feed event."""
    values: dict[str, Any] = {"status": status.status, "status_at": status.at}
    error = None
    if status.status == FAILED:
        values["status_error_code"] = status.error_code
        values["status_error_title"] = status.error_title
        error = {"code": status.error_code, "title": status.error_title}
    session.execute(
        update(Message)
        .where(Message.id == message_id)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    emit(
        session,
        EventType.MESSAGE_STATUS,
        onboarding,
        {
            "wamid": status.wamid,
            "status": status.status,
            "previous": previous,
            "error": error,
            "at": iso(status.at),
        },
        occurred_at=status.at,
    )


def _keep(session: Session, onboarding_id: int, statuses: list[Status], now: datetime) -> None:
    """Record statuses whose message is not stored yet (a redelivered one is kept once)."""
    stmt = insert_for(session, PendingStatus.__table__).on_conflict_do_nothing(
        index_elements=["onboarding_id", "wamid", "status"]
    )
    session.execute(
        stmt,
        [
            {
                "onboarding_id": onboarding_id,
                "wamid": s.wamid,
                "status": s.status,
                "status_at": s.at,
                "error_code": s.error_code,
                "error_title": s.error_title,
                "received_at": now,
            }
            for s in statuses
        ],
    )
