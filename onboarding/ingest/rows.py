"""One webhook message object turned into a storable ``messages`` row, and the tally of a change.

Every handler of a message-level value shares these: :class:`Context` (the onboarding, its
business number and its windows), :class:`Tally` (what one change did, for the inbox summary)
and :func:`message_row`. A message that cannot be stored is never an error: it is counted in the
tally with its reason (quoted at most :data:`MAX_REASON_LENGTH` characters) and skipped.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from config import Settings
from models import Direction, MediaState, MessageSource, Onboarding
from onboarding.ingest import identity
from onboarding.meta.payloads import clean_text, digits, unix_time
from onboarding.store import PLACEHOLDER

MEDIA_TYPES = frozenset({"image", "video", "audio", "document", "sticker"})
#: Media ids are digit strings stored in a 64-character column; a longer one is no media id.
MAX_MEDIA_ID_LENGTH = 64
#: A rejection reason quotes what was wrong; a huge value is quoted only this far.
MAX_REASON_LENGTH = 300
#: The ``wamid`` column's width; a longer id is no usable id.
MAX_WAMID_LENGTH = 191
#: Why media is ``skipped_too_old`` (docs/meta.md#1110-late-media-and-the-history-windows).
TOO_OLD_FOR_MEDIA = "sent before the media cut-off: Meta sends no media for it"


@dataclass
class Tally:
    """What one change did: counts by key, the first rejection reasons, media to download,
    notes for an operator."""

    counts: Counter[str] = field(default_factory=Counter)
    rejected: list[str] = field(default_factory=list)
    media_wamids: list[str] = field(default_factory=list)
    #: What an operator should read about the change (why it was not applied...).
    notes: list[str] = field(default_factory=list)

    def reject(self, reason: str) -> None:
        """Count one rejected item; the first 20 reasons are kept, each cut short."""
        self.counts["rejected"] += 1
        if len(self.rejected) < 20:
            self.rejected.append(reason[:MAX_REASON_LENGTH])

    def as_dict(self) -> dict[str, Any]:
        """The counts, with ``rejected_reasons`` when there are any (the inbox summary)."""
        out: dict[str, Any] = dict(self.counts)
        if self.rejected:
            out["rejected_reasons"] = self.rejected
        if self.notes:
            out["notes"] = self.notes[:20]
        return out


@dataclass(frozen=True)
class Context:
    """The onboarding a change belongs to, its business number, and its history windows."""

    onboarding: Onboarding
    business_number: str
    window_start: datetime
    media_cutoff: datetime
    now: float

    @classmethod
    def of(cls, onboarding: Onboarding, business_number: str | None, settings: Settings) -> Context:
        """The context of a change; the number falls back to the onboarding's display number."""
        signup = onboarding.signup_completed_at
        return cls(
            onboarding=onboarding,
            business_number=business_number or digits(onboarding.display_phone_number) or "",
            window_start=signup - timedelta(days=settings.history_window_days),
            media_cutoff=signup - timedelta(days=settings.media_cutoff_days),
            now=time.time(),
        )


def is_one_to_one(thread: Any, user: identity.Identity | None = None) -> bool:
    """A 1:1 thread names its user: a phone number ``id``, or a BSUID in ``context.user_id``
    (the id may be omitted since April 2026). A group's id is a group JID (``…@g.us``), and a
    thread naming no user cannot be one person's (docs/meta.md#history-threads-and-groups).
    ``user`` is the thread's identity if the caller has read it already."""
    if not isinstance(thread, dict):
        return False
    thread_id = thread.get("id")
    if isinstance(thread_id, str) and thread_id.endswith("@g.us"):
        return False
    return (user or identity.of_thread(thread)).known


def usable_wamid(value: Any) -> bool:
    """A message id that fits its column."""
    return isinstance(value, str) and 0 < len(value) <= MAX_WAMID_LENGTH


def message_row(
    ctx: Context,
    msg: Any,
    *,
    source: MessageSource,
    thread: str | None,
    tally: Tally,
    now: datetime,
) -> dict[str, Any] | None:
    """A row for one message object, or None (counted) if it is unusable.

    ``msg`` comes from :func:`onboarding.meta.payloads.load`, so its strings and numbers are all
    storable, ``raw`` included. What is checked here is that the key fields (id, timestamp,
    type) are usable after that cleaning, and that ids fit their columns.
    """
    row = _core_row(ctx, msg, source=source, thread=thread, tally=tally)
    if row is not None:
        _add_content(ctx, row, msg, tally, now)
    return row


def _core_row(
    ctx: Context, msg: Any, *, source: MessageSource, thread: str | None, tally: Tally
) -> dict[str, Any] | None:
    """The row's identity, direction, thread, time, type and status, with no content yet."""
    if not isinstance(msg, dict):
        tally.reject("message is not an object")
        return None
    wamid = msg.get("id")
    if not usable_wamid(wamid):
        tally.reject("message without a usable id")
        return None
    sent_at = unix_time(msg.get("timestamp"), now=ctx.now)
    if sent_at is None:
        tally.reject(f"{wamid}: timestamp missing or implausible")
        return None
    sender = digits(msg.get("from"))
    outbound = sender is not None and sender == ctx.business_number
    if thread is None:
        thread = identity.of_message(msg, ctx.business_number).label
    kind = msg.get("type")
    if not isinstance(kind, str) or not kind or len(kind) > 32:
        tally.reject(f"{wamid}: no message type")
        return None
    context = msg.get("history_context")
    status = context.get("status") if isinstance(context, dict) else None
    return {
        "onboarding_id": ctx.onboarding.id,
        "wamid": wamid,
        "thread": thread,
        "direction": (Direction.OUTBOUND if outbound else Direction.INBOUND).value,
        "source": source.value,
        "sent_at": sent_at,
        "type": kind,
        "text_body": None,
        "status": status[:16] if isinstance(status, str) else None,
        "raw": None,
        "media_state": MediaState.NONE.value,
        "media_id": None,
        "media_mime": None,
        "media_sha256": None,
        "media_id_at": None,
        "peer_id": None,
    }


def _add_content(
    ctx: Context, row: dict[str, Any], msg: dict[str, Any], tally: Tally, now: datetime
) -> None:
    """The text body, the placeholder's media state, or the raw object and its media."""
    kind = row["type"]
    if kind == "text":
        text = msg.get("text")
        row["text_body"] = clean_text(text.get("body") if isinstance(text, dict) else None)
    elif kind == PLACEHOLDER:
        too_old = row["sent_at"] < ctx.media_cutoff
        row["media_state"] = (MediaState.SKIPPED_TOO_OLD if too_old else MediaState.AWAITING).value
        if too_old:
            row["media_error"] = TOO_OLD_FOR_MEDIA
    else:
        row["raw"] = msg
        media = msg.get(kind)
        if isinstance(media, dict):
            _add_media(row, kind, media, tally, now)


def _add_media(
    row: dict[str, Any], kind: str, media: dict[str, Any], tally: Tally, now: datetime
) -> None:
    """A media message's id (awaiting download), mime type, sha256 and caption."""
    media_id = _media_id(media.get("id")) if kind in MEDIA_TYPES else None
    if media_id is not None:
        row["media_id"] = media_id
        row["media_id_at"] = now
        row["media_state"] = MediaState.AWAITING.value
        mime, sha = media.get("mime_type"), media.get("sha256")
        row["media_mime"] = mime[:128] if isinstance(mime, str) else None
        row["media_sha256"] = sha[:128] if isinstance(sha, str) else None
        tally.media_wamids.append(row["wamid"])
    if isinstance(media.get("caption"), str):
        row["text_body"] = clean_text(media["caption"])


def _media_id(value: Any) -> str | None:
    """A Graph media id (digits, as a string or a number), or None."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if (
        isinstance(value, str)
        and value.isascii()
        and value.isdigit()
        and len(value) <= MAX_MEDIA_ID_LENGTH
    ):
        return value
    return None
