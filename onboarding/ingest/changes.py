"""Edits and revokes: users' (in ``messages``) and the business's own (as app echoes).

Both name their original by ``original_message_id``
(docs/meta.md#1111-edits-and-revokes-business-side-and-users).
The rules, whatever the order changes arrive in:

* ``edited_at`` and ``revoked_at`` are the change's own ``timestamp``, not processing time;
* the newest edit (by timestamp) gives the text; an older edit arriving later changes nothing;
* a revoke is final: the content is gone, and no edit, earlier or later, brings it back.

Each rule is one conditional ``UPDATE``, so two workers applying changes to the same message
cannot undo each other.

A change may come before its original (a chunk or an echo still on its way). It is then kept in
``message_changes`` and applied by whichever path stores the original later: a history chunk,
an echo or late media call :func:`apply_pending` with the wamids they stored, after their
commit. The change is recorded and committed before its original is looked for again, so
either order ends with the change applied. While no change is kept for an onboarding, the
storing paths pay one indexed look per call.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import case, delete, exists, func, select, update
from sqlalchemy.orm import Session

from models import ChangeKind, Message, MessageChange
from onboarding.feed.events import EventType, emit_for, iso
from onboarding.ingest.dropped import BATCH
from onboarding.ingest.rows import MEDIA_TYPES, Context, Tally, usable_wamid
from onboarding.meta.payloads import clean_text, unix_time
from onboarding.store import insert_for

KINDS = frozenset(kind.value for kind in ChangeKind)
#: Users edit within 15 minutes and revoke within 2 days of sending
#: (docs/meta.md#48-messages-edits-revokes-and-131060). Where coexist stores no live messages
#: (the change's number is not onboarded, :mod:`.live`), the only user messages it stores come
#: from history, sent before signup: a user's change later than this after signup can have no
#: message still to come (an hour's slack for clocks).
USER_CHANGE_WINDOW = timedelta(days=2, hours=1)


@dataclass(frozen=True)
class Change:
    """One edit or revoke: its own id, the message it changes, the new text, its time."""

    wamid: str
    original_wamid: str
    kind: ChangeKind
    text_body: str | None
    changed_at: datetime


def is_change(msg: Any) -> bool:
    """Whether a message object is an edit or a revoke rather than a message."""
    return isinstance(msg, dict) and msg.get("type") in KINDS


def parse_change(ctx: Context, msg: dict[str, Any], tally: Tally) -> Change | None:
    """The change an ``edit`` or ``revoke`` message object describes, or None (rejected)."""
    kind = ChangeKind(msg["type"])
    wamid = msg.get("id")
    if not isinstance(wamid, str) or not usable_wamid(wamid):
        tally.reject(f"{kind} without a usable id")
        return None
    body = msg.get(kind.value)
    if not isinstance(body, dict):
        body = {}
    original = body.get("original_message_id")
    if not isinstance(original, str) or not usable_wamid(original):
        tally.reject(f"{wamid}: {kind} without a usable original_message_id")
        return None
    changed_at = unix_time(msg.get("timestamp"), now=ctx.now)
    if changed_at is None:
        tally.reject(f"{wamid}: timestamp missing or implausible")
        return None
    text = _new_text(body.get("message")) if kind == ChangeKind.EDIT else None
    return Change(wamid, original, kind, text, changed_at)


def _new_text(message: Any) -> str | None:
    """An edit's new text: a text's body or a media message's caption."""
    if not isinstance(message, dict):
        return None
    kind = message.get("type")
    content = message.get(kind) if isinstance(kind, str) else None
    if not isinstance(content, dict):
        return None
    if kind == "text":
        return clean_text(content.get("body"))
    if kind in MEDIA_TYPES:
        return clean_text(content.get("caption"))
    return None


def apply_changes(
    session: Session,
    ctx: Context,
    changes: list[Change],
    tally: Tally,
    now: datetime,
    *,
    by_users: bool = False,
) -> None:
    """Apply changes to their stored originals; keep the others until they come. Commits.

    ``by_users``: the changes come from users (``messages``) of a number whose live messages
    coexist does not store, so only history messages can be theirs; one too late for a
    history message is counted, not kept."""
    if not changes:
        return
    onboarding_id = ctx.onboarding.id
    latest = ctx.onboarding.signup_completed_at + USER_CHANGE_WINDOW
    stored = _stored(session, onboarding_id, [c.original_wamid for c in changes])
    waiting: list[Change] = []
    for change in changes:
        if change.original_wamid in stored:
            _apply(session, onboarding_id, change)
            tally.counts[f"{change.kind}s"] += 1
        elif by_users and change.changed_at > latest:
            tally.counts[f"{change.kind}s_for_unknown_messages"] += 1
        else:
            waiting.append(change)
            tally.counts[f"{change.kind}s_pending"] += 1
    if waiting:
        _keep(session, onboarding_id, waiting, now)
    session.commit()
    # The original may have been stored by another worker meanwhile, before it could see the
    # kept change: look again now that the change is committed.
    apply_pending(session, onboarding_id, [c.original_wamid for c in waiting], tally)


def apply_pending(session: Session, onboarding_id: int, wamids: list[str], tally: Tally) -> None:
    """Apply and forget the kept changes of these just-stored messages. Commits if any.

    Call it after the commit that made the messages visible."""
    if not wamids or not session.scalar(
        select(exists().where(MessageChange.onboarding_id == onboarding_id))
    ):
        return
    for start in range(0, len(wamids), BATCH):
        kept = session.scalars(
            select(MessageChange)
            .where(
                MessageChange.onboarding_id == onboarding_id,
                MessageChange.original_wamid.in_(wamids[start : start + BATCH]),
            )
            .order_by(MessageChange.changed_at, MessageChange.id)
        ).all()
        stored = _stored(session, onboarding_id, [k.original_wamid for k in kept])
        applied = [k for k in kept if k.original_wamid in stored]
        for row in applied:
            change = Change(
                row.wamid, row.original_wamid, ChangeKind(row.kind), row.text_body, row.changed_at
            )
            _apply(session, onboarding_id, change)
        if applied:
            session.execute(
                delete(MessageChange)
                .where(MessageChange.id.in_([k.id for k in applied]))
                .execution_options(synchronize_session=False)
            )
            tally.counts["pending_changes_applied"] += len(applied)
    session.commit()


def _stored(session: Session, onboarding_id: int, wamids: Iterable[str]) -> set[str]:
    unique = sorted(set(wamids))
    found: set[str] = set()
    for start in range(0, len(unique), BATCH):
        found.update(
            session.scalars(
                select(Message.wamid).where(
                    Message.onboarding_id == onboarding_id,
                    Message.wamid.in_(unique[start : start + BATCH]),
                )
            )
        )
    return found


def _apply(session: Session, onboarding_id: int, change: Change) -> None:
    """The change's rule as one conditional UPDATE of its original, and its feed event if it
    changed the message (``text`` is the message's text after it). Not committed."""
    original = (Message.onboarding_id == onboarding_id) & (Message.wamid == change.original_wamid)
    if change.kind == ChangeKind.REVOKE:
        # The earliest revoke's time; the content goes whatever came before.
        stmt = (
            update(Message)
            .where(
                original, (Message.revoked_at.is_(None)) | (Message.revoked_at > change.changed_at)
            )
            .values(revoked_at=change.changed_at, text_body=None)
        )
    else:
        # The newest edit's time, even on a revoked message (so the order does not matter);
        # its text only while the message is not revoked.
        stmt = (
            update(Message)
            .where(
                original, (Message.edited_at.is_(None)) | (Message.edited_at < change.changed_at)
            )
            .values(
                edited_at=change.changed_at,
                text_body=case(
                    (
                        Message.revoked_at.is_(None),
                        func.coalesce(change.text_body, Message.text_body),
                    ),
                    else_=None,
                ),
            )
        )
    applied = session.execute(
        stmt.returning(Message.text_body).execution_options(synchronize_session=False)
    ).first()
    if applied is None:  # an older edit, or a repeated revoke: nothing changed
        return
    emit_for(
        session,
        EventType.MESSAGE_REVOKED if change.kind == ChangeKind.REVOKE else EventType.MESSAGE_EDITED,
        onboarding_id,
        {
            "wamid": change.wamid,
            "original_wamid": change.original_wamid,
            "text": applied.text_body,
            "changed_at": iso(change.changed_at),
        },
    )


def _keep(session: Session, onboarding_id: int, changes: list[Change], now: datetime) -> None:
    """Record changes whose original is not stored yet (a redelivered one is kept once)."""
    stmt = insert_for(session, MessageChange.__table__).on_conflict_do_nothing(
        index_elements=["onboarding_id", "wamid"]
    )
    session.execute(
        stmt,
        [
            {
                "onboarding_id": onboarding_id,
                "wamid": c.wamid,
                "original_wamid": c.original_wamid,
                "kind": c.kind.value,
                "text_body": c.text_body,
                "changed_at": c.changed_at,
                "received_at": now,
            }
            for c in changes
        ],
    )
