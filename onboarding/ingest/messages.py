"""What happens to conversations after signup: the business's app echoes, users' edits, revokes.

* ``smb_message_echoes`` — messages the business sent from the WhatsApp Business app, stored as
  outbound ``app_echo`` messages of the peer named by ``to``/``to_user_id`` and ``contacts[]``
  (:mod:`.attach`); the latest moves the onboarding's last app activity.
* ``messages`` — coexist stores no new user messages (the business reads them in the app), but
  applies a user's edit or revoke to a message it holds, follows a ``user_changed_user_id``
  system message (:mod:`.user_ids`), and counts error 131060 (a user's first message after
  onboarding, which the Cloud API cannot show).

Unusable items are rejected or counted in the :class:`.Tally`, never raised.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import structlog
from sqlalchemy import select
from sqlalchemy.orm import Session

from models import Direction, Message, MessageSource, utcnow
from onboarding.ingest import user_ids
from onboarding.ingest.attach import attach_peers
from onboarding.ingest.rows import Context, Tally, message_row
from onboarding.meta.payloads import clean_text
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
    named = []
    for msg in echoes:
        row = message_row(
            ctx, msg, source=MessageSource.APP_ECHO, thread=None, tally=tally, now=now
        )
        if row is None:
            continue
        row["direction"] = Direction.OUTBOUND.value
        rows.append(row)
        named.append({**msg, "from": ctx.business_number})  # echoes are the business's
    attach_peers(session, ctx, rows, named, value)
    upsert_messages(session, rows)
    if rows:
        latest = max(r["sent_at"] for r in rows)
        onboarding = ctx.onboarding
        if onboarding.last_app_activity_at is None or latest > onboarding.last_app_activity_at:
            onboarding.last_app_activity_at = latest
    tally.counts["app_echoes"] += len(rows)
    session.commit()
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
    now = utcnow()
    for msg in messages:
        if isinstance(msg, dict):
            _apply_event(session, ctx, msg, now, tally)
    session.commit()
    return tally


def _apply_event(
    session: Session, ctx: Context, msg: dict[str, Any], now: datetime, tally: Tally
) -> None:
    """One message of a ``messages`` value: an edit, a revoke, or counted as not stored."""
    msg_errors = msg.get("errors")
    for error in msg_errors if isinstance(msg_errors, list) else []:
        if isinstance(error, dict) and error.get("code") == UNSUPPORTED_MESSAGE:
            tally.counts["unsupported_message_131060"] += 1
    kind = msg.get("type")
    if kind == "system":
        user_ids.apply_system_messages(session, ctx, [msg], tally)
    elif kind == "edit" and isinstance(msg.get("edit"), dict):
        _apply_edit(session, ctx, msg["edit"], now, tally)
    elif kind == "revoke" and isinstance(msg.get("revoke"), dict):
        _apply_revoke(session, ctx, msg["revoke"], now, tally)
    else:
        tally.counts["messages_not_stored"] += 1


def _original(session: Session, ctx: Context, wamid: Any) -> Message | None:
    if not isinstance(wamid, str) or not wamid:
        return None
    return session.scalar(
        select(Message).where(Message.onboarding_id == ctx.onboarding.id, Message.wamid == wamid)
    )


def _apply_edit(
    session: Session, ctx: Context, edit: dict[str, Any], now: datetime, tally: Tally
) -> None:
    original = _original(session, ctx, edit.get("original_message_id"))
    if original is None:
        tally.counts["edits_for_unknown_messages"] += 1
        return
    new = edit.get("message")
    if isinstance(new, dict) and new.get("type") == "text" and isinstance(new.get("text"), dict):
        original.text_body = clean_text(new["text"].get("body"))
    original.edited_at = now
    tally.counts["edits"] += 1


def _apply_revoke(
    session: Session, ctx: Context, revoke: dict[str, Any], now: datetime, tally: Tally
) -> None:
    original = _original(session, ctx, revoke.get("original_message_id"))
    if original is None:
        tally.counts["revokes_for_unknown_messages"] += 1
        return
    original.revoked_at = now
    original.text_body = None  # deleted for everyone: the content is not kept
    tally.counts["revokes"] += 1
