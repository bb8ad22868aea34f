"""Live traffic: users' messages to an onboarded number, from the ``messages`` webhook.

After signup Meta sends every message a user writes to the number in ``value.messages[]``
(docs/meta.md#1114-live-messages-and-statuses). coexist stores them beside the history it
synced, so a thread reads in time order whatever each message came through:

* a message is stored only when the change is for an **onboarded** number: the onboarding the
  delivery was matched to has that very ``metadata.phone_number_id`` (a WABA's other numbers
  are not coexist's) and is in one of :data:`LIVE_STATES`, the states in which the number is
  on the Cloud API with coexist's subscription (sends go out, or wait for a reconnection).
  Anything else is counted as ``messages_not_stored`` with the reason in the summary's notes;
* only the user message types Meta documents are stored (:data:`STORED_TYPES`); edits,
  revokes and system messages are changes, handled by their own modules;
* each becomes an inbound message with source ``live`` through the row builder every source
  uses, its peer resolved from ``from``/``from_user_id`` and ``contacts[]`` (a user known only
  by a BSUID too), its media ``awaiting_media`` for the media task to download;
* stored once per wamid (a redelivery merges into the same row), and only a newly stored
  message is told in the feed (``messages.stored`` with source ``live``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Final

from sqlalchemy.orm import Session

from models import Direction, MessageSource, OnboardingState
from onboarding.feed.bodies import messages_stored
from onboarding.ingest.attach import attach_peers
from onboarding.ingest.rows import Context, Tally, message_row
from onboarding.store import upsert_messages

S = OnboardingState
#: States whose number is on the Cloud API under coexist's subscription: its live messages
#: are stored. ``reconnecting`` is Meta switching the API side back on; the messages that
#: still come belong to the same conversations.
LIVE_STATES: Final = frozenset(
    {S.SUBSCRIBED, S.SYNCING, S.SYNCED, S.HISTORY_DECLINED, S.SYNC_WINDOW_MISSED, S.RECONNECTING}
)
#: The user message types of Meta's ``messages`` webhook reference that carry a message.
STORED_TYPES: Final = frozenset(
    {
        "text",
        "image",
        "video",
        "audio",
        "document",
        "sticker",
        "location",
        "contacts",
        "interactive",
        "button",
        "order",
        "reaction",
        "unsupported",
    }
)


def not_live(ctx: Context, value: dict[str, Any]) -> str | None:
    """Why this change's user messages are not stored, or None if its number is onboarded."""
    onboarding = ctx.onboarding
    metadata = value.get("metadata")
    number = metadata.get("phone_number_id") if isinstance(metadata, dict) else None
    if isinstance(number, int) and not isinstance(number, bool):
        number = str(number)
    if not isinstance(number, str) or number != onboarding.phone_number_id:
        return (
            f"number {str(number)[:32]} is not onboarding {onboarding.id}'s "
            f"({onboarding.phone_number_id}): its live messages are not stored"
        )
    if OnboardingState(onboarding.state) not in LIVE_STATES:
        return (
            f"onboarding {onboarding.id} is {onboarding.state}: "
            "its number's live messages are not stored"
        )
    return None


def store_live(
    session: Session,
    ctx: Context,
    messages: Sequence[dict[str, Any]],
    value: dict[str, Any],
    tally: Tally,
    now: datetime,
) -> list[str]:
    """Store users' messages as inbound ``live`` messages with their peers; write the feed
    event of those new. Not committed. The wamids stored (new or merged)."""
    rows, named = [], []
    for msg in messages:
        row = message_row(ctx, msg, source=MessageSource.LIVE, thread=None, tally=tally, now=now)
        if row is None:
            continue
        row["direction"] = Direction.INBOUND.value  # ``messages[]`` are the users'
        rows.append(row)
        named.append(msg)
    if not rows:
        return []
    attach_peers(session, ctx, rows, named, value)
    new = upsert_messages(session, rows)
    messages_stored(session, ctx.onboarding, MessageSource.LIVE.value, new)
    if new:
        tally.counts["live_messages"] += len(new)
    repeated = len({r["wamid"] for r in rows}) - len(new)
    if repeated:
        tally.counts["live_messages_repeated"] += repeated
    return [r["wamid"] for r in rows]
