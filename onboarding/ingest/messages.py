"""What happens to conversations after signup: the business's app echoes, users' edits, revokes.

* ``smb_message_echoes`` — messages the business sent from the WhatsApp Business app, stored as
  outbound ``app_echo`` messages of the peer named by ``to``/``to_user_id`` and ``contacts[]``
  (:mod:`.attach`); the business's edits and revokes in the app come here too and are applied
  to their message (:mod:`.changes`); the latest moves the onboarding's last app activity.
* ``messages`` — users' messages to an onboarded number are stored as inbound ``live``
  messages (:mod:`.live`, which says what "onboarded" means; others are counted as
  ``messages_not_stored``); the statuses of the business's messages move their status forward
  (:mod:`.statuses`, kept until the message comes if it is not stored yet); a user's edit or
  revoke is applied to a message coexist holds (or kept until that message comes,
  :mod:`.changes`); a ``user_changed_user_id`` system message is followed (:mod:`.user_ids`);
  error 131060 is counted (a user's first message after onboarding, which the Cloud API may
  not show).

Unusable items are rejected or counted in the :class:`.Tally`, never raised.
"""

from __future__ import annotations

from typing import Any

import structlog
from sqlalchemy.orm import Session

from models import Direction, MessageSource, utcnow
from onboarding.feed.bodies import messages_stored
from onboarding.ingest import live, statuses, user_ids
from onboarding.ingest.attach import attach_peers
from onboarding.ingest.changes import Change, apply_changes, apply_pending, is_change, parse_change
from onboarding.ingest.rows import Context, Tally, message_row
from onboarding.store import upsert_messages

log = structlog.get_logger(__name__)

#: "Message type unknown": what the Cloud API says of a user's first message after onboarding.
UNSUPPORTED_MESSAGE = 131060


def ingest_echoes(session: Session, ctx: Context, value: dict[str, Any]) -> Tally:
    """``smb_message_echoes``: messages the business sent from the app, stored as outbound.

    Commits."""
    tally = Tally()
    echoes = value.get("message_echoes")
    if not isinstance(echoes, list):
        tally.reject("'message_echoes' is not a list")
        return tally
    now = utcnow()
    rows = []
    changes: list[Change] = []
    named = []
    for msg in echoes:
        if is_change(msg):
            change = parse_change(ctx, msg, tally)
            if change is not None:
                changes.append(change)
            continue
        row = message_row(
            ctx, msg, source=MessageSource.APP_ECHO, thread=None, tally=tally, now=now
        )
        if row is None:
            continue
        row["direction"] = Direction.OUTBOUND.value
        rows.append(row)
        named.append({**msg, "from": ctx.business_number})  # echoes are the business's
    attach_peers(session, ctx, rows, named, value)
    new = upsert_messages(session, rows)
    messages_stored(session, ctx.onboarding, MessageSource.APP_ECHO.value, new)
    times = [r["sent_at"] for r in rows] + [c.changed_at for c in changes]
    if times:
        latest = max(times)
        onboarding = ctx.onboarding
        if onboarding.last_app_activity_at is None or latest > onboarding.last_app_activity_at:
            onboarding.last_app_activity_at = latest
    tally.counts["app_echoes"] += len(rows)
    session.commit()
    stored = [r["wamid"] for r in rows]
    apply_pending(session, ctx.onboarding.id, stored, tally)
    statuses.apply_pending(session, ctx.onboarding, stored, tally)
    apply_changes(session, ctx, changes, tally, now)
    return tally


def apply_message_events(session: Session, ctx: Context, value: dict[str, Any]) -> Tally:
    """``messages``: store users' live messages for an onboarded number, apply their edits
    and revokes, follow system messages, apply statuses; note expected errors.

    Commits."""
    tally = Tally()
    errors = value.get("errors")
    for error in errors if isinstance(errors, list) else []:
        if isinstance(error, dict) and error.get("code") == UNSUPPORTED_MESSAGE:
            tally.counts["unsupported_message_131060"] += 1
            log.info(
                "unsupported_message_expected",
                onboarding_id=ctx.onboarding.id,
                hint="a user's first message after onboarding; check the Business app",
            )
    now = utcnow()
    why_not = live.not_live(ctx, value)
    messages = value.get("messages")
    changes: list[Change] = []
    users: list[dict[str, Any]] = []
    for msg in messages if isinstance(messages, list) else []:
        if not isinstance(msg, dict):
            continue
        _count_unsupported(msg, tally)
        if is_change(msg):
            change = parse_change(ctx, msg, tally)
            if change is not None:
                changes.append(change)
        elif msg.get("type") == "system":
            user_ids.apply_system_messages(session, ctx, [msg], tally)
        elif why_not is None and msg.get("type") in live.STORED_TYPES:
            users.append(msg)
        else:
            tally.counts["messages_not_stored"] += 1
            note = why_not or f"message type {str(msg.get('type'))[:32]!r} is not stored"
            if note not in tally.notes:
                tally.notes.append(note)
    stored = live.store_live(session, ctx, users, value, tally, now)
    session.commit()
    if "statuses" in value:
        found = statuses.parse_statuses(ctx, value["statuses"], tally)
        # A status of a number coexist does not onboard can concern no message still to come.
        statuses.apply_statuses(session, ctx, found, tally, now, keep=why_not is None)
    apply_pending(session, ctx.onboarding.id, stored, tally)
    # A user's change of a message coexist may still store (history, or live traffic for an
    # onboarded number) is kept until it comes.
    apply_changes(session, ctx, changes, tally, now, by_users=why_not is not None)
    return tally


def _count_unsupported(msg: dict[str, Any], tally: Tally) -> None:
    """A message carrying error 131060 is counted (it is expected, not a failure)."""
    msg_errors = msg.get("errors")
    for error in msg_errors if isinstance(msg_errors, list) else []:
        if isinstance(error, dict) and error.get("code") == UNSUPPORTED_MESSAGE:
            tally.counts["unsupported_message_131060"] += 1
