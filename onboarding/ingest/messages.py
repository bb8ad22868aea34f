"""What happens to conversations after signup: the business's app echoes, users' edits, revokes.

* ``smb_message_echoes`` — messages the business sent from the WhatsApp Business app, stored as
  outbound ``app_echo`` messages of the peer named by ``to``/``to_user_id`` and ``contacts[]``
  (:mod:`.attach`); the business's edits and revokes in the app come here too and are applied
  to their message (:mod:`.changes`); the latest moves the onboarding's last app activity.
* ``messages`` — coexist stores no new user messages (the business reads them in the app), but
  applies a user's edit or revoke to a message it holds (or keeps it until that message comes,
  :mod:`.changes`), follows a ``user_changed_user_id`` system message (:mod:`.user_ids`), and
  counts error 131060 (a user's first message after onboarding, which the Cloud API cannot
  show).

Unusable items are rejected or counted in the :class:`.Tally`, never raised.
"""

from __future__ import annotations

from typing import Any

import structlog
from sqlalchemy.orm import Session

from models import Direction, MessageSource, utcnow
from onboarding.feed.bodies import messages_stored
from onboarding.ingest import user_ids
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
    apply_pending(session, ctx.onboarding.id, [r["wamid"] for r in rows], tally)
    apply_changes(session, ctx, changes, tally, now)
    return tally


def apply_message_events(session: Session, ctx: Context, value: dict[str, Any]) -> Tally:
    """``messages``: apply user edits and revokes to stored messages; note expected errors.

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
    messages = value.get("messages")
    if not isinstance(messages, list):
        session.commit()
        return tally
    changes: list[Change] = []
    for msg in messages:
        if not isinstance(msg, dict):
            continue
        _count_unsupported(msg, tally)
        if is_change(msg):
            change = parse_change(ctx, msg, tally)
            if change is not None:
                changes.append(change)
        elif msg.get("type") == "system":
            user_ids.apply_system_messages(session, ctx, [msg], tally)
        else:
            tally.counts["messages_not_stored"] += 1
    session.commit()
    apply_changes(session, ctx, changes, tally, utcnow(), by_users=True)
    return tally


def _count_unsupported(msg: dict[str, Any], tally: Tally) -> None:
    """A message carrying error 131060 is counted (it is expected, not a failure)."""
    msg_errors = msg.get("errors")
    for error in msg_errors if isinstance(msg_errors, list) else []:
        if isinstance(error, dict) and error.get("code") == UNSUPPORTED_MESSAGE:
            tally.counts["unsupported_message_131060"] += 1
