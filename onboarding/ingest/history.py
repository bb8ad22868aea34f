"""History, contacts, echoes and edits: turning webhook values into stored rows.

Each handler takes a session, the onboarding and one change's ``value``, writes idempotently
(:mod:`onboarding.store`) and returns a :class:`Tally` of what it did, for the inbox summary
and the operators' counts. History chunks are written in pages of ``ingest_page_size``
messages, each page its own transaction, so memory and transaction size stay flat whatever
Meta sends; the chunk ledger row is written last, so a chunk that was cut short is simply
processed again on redelivery.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from config import Settings
from models import (
    SYNC_ACCEPTED,
    Direction,
    DroppedMessage,
    HistoryChunk,
    MediaState,
    Message,
    MessageSource,
    Onboarding,
    OnboardingState,
    SyncRequest,
    SyncState,
    SyncType,
    utcnow,
)
from onboarding.meta.errors import HISTORY_DECLINED
from onboarding.meta.payloads import clean_text, digits, unix_time
from onboarding.states import note, raise_alert, transition
from onboarding.store import (
    PLACEHOLDER,
    insert_for,
    upsert_chunk,
    upsert_contacts,
    upsert_messages,
)

log = structlog.get_logger(__name__)

S = OnboardingState
MEDIA_TYPES = frozenset({"image", "video", "audio", "document", "sticker"})
MAX_PHASE = 2
MAX_CHUNK_ORDER = 1_000_000
WEBHOOK_SEEN_RESOLUTION = timedelta(seconds=10)
#: Media ids are digit strings stored in a 64-character column; a longer one is no media id.
MAX_MEDIA_ID_LENGTH = 64
#: A rejection reason quotes what was wrong; a huge value is quoted only this far.
MAX_REASON_LENGTH = 300


@dataclass
class Tally:
    """What one change did."""

    counts: Counter[str] = field(default_factory=Counter)
    rejected: list[str] = field(default_factory=list)
    media_wamids: list[str] = field(default_factory=list)

    def reject(self, reason: str) -> None:
        self.counts["rejected"] += 1
        if len(self.rejected) < 20:
            self.rejected.append(reason[:MAX_REASON_LENGTH])

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = dict(self.counts)
        if self.rejected:
            out["rejected_reasons"] = self.rejected
        return out


@dataclass(frozen=True)
class Context:
    onboarding: Onboarding
    business_number: str
    window_start: datetime
    media_cutoff: datetime
    now: float

    @classmethod
    def of(cls, onboarding: Onboarding, business_number: str | None, settings: Settings) -> Context:
        signup = onboarding.signup_completed_at
        return cls(
            onboarding=onboarding,
            business_number=business_number or digits(onboarding.display_phone_number) or "",
            window_start=signup - timedelta(days=settings.history_window_days),
            media_cutoff=signup - timedelta(days=settings.media_cutoff_days),
            now=time.time(),
        )


def is_one_to_one(thread_id: Any) -> bool:
    """A 1:1 thread is a user's phone number; groups have other ids (``…@g.us``)."""
    return (
        isinstance(thread_id, str)
        and thread_id.isascii()
        and thread_id.isdigit()
        and 6 <= len(thread_id) <= 15
    )


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
    if not isinstance(msg, dict):
        tally.reject("message is not an object")
        return None
    wamid = msg.get("id")
    if not isinstance(wamid, str) or not wamid or len(wamid) > 191:
        tally.reject("message without a usable id")
        return None
    sent_at = unix_time(msg.get("timestamp"), now=ctx.now)
    if sent_at is None:
        tally.reject(f"{wamid}: timestamp missing or implausible")
        return None
    sender = digits(msg.get("from"))
    outbound = sender is not None and sender == ctx.business_number
    if thread is None:
        other = digits(msg.get("to")) if outbound else sender
        thread = other or ""
    kind = msg.get("type")
    if not isinstance(kind, str) or not kind or len(kind) > 32:
        tally.reject(f"{wamid}: no message type")
        return None
    context = msg.get("history_context")
    status = context.get("status") if isinstance(context, dict) else None
    row: dict[str, Any] = {
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
    }
    if kind == "text":
        text = msg.get("text")
        row["text_body"] = clean_text(text.get("body") if isinstance(text, dict) else None)
    elif kind == PLACEHOLDER:
        too_old = sent_at < ctx.media_cutoff
        row["media_state"] = (MediaState.SKIPPED_TOO_OLD if too_old else MediaState.AWAITING).value
    else:
        row["raw"] = msg
        media = msg.get(kind)
        if kind in MEDIA_TYPES and isinstance(media, dict):
            media_id = _media_id(media.get("id"))
            if media_id is not None:
                row["media_id"] = media_id
                row["media_id_at"] = now
                row["media_state"] = MediaState.AWAITING.value
                mime, sha = media.get("mime_type"), media.get("sha256")
                row["media_mime"] = mime[:128] if isinstance(mime, str) else None
                row["media_sha256"] = sha[:128] if isinstance(sha, str) else None
                tally.media_wamids.append(wamid)
            if isinstance(media, dict) and isinstance(media.get("caption"), str):
                row["text_body"] = clean_text(media["caption"])
    return row


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


# -- history ------------------------------------------------------------------------------


def ingest_history(
    session: Session, ctx: Context, value: dict[str, Any], *, settings: Settings
) -> Tally:
    """A ``history`` value: chunks of threads, media follow-ups, or the declined error."""
    tally = Tally()
    now = utcnow()
    history = value.get("history")
    followups = value.get("messages")
    if history is None and followups is None:
        tally.reject("history value has neither 'history' nor 'messages'")
        return tally
    if followups is not None:
        _followups(session, ctx, followups, tally, settings, now)
    if history is not None:
        if not isinstance(history, list):
            tally.reject("'history' is not a list")
            return tally
        for item in history:
            if not isinstance(item, dict):
                tally.reject("history item is not an object")
                continue
            if item.get("errors") is not None:
                _history_errors(session, ctx, item["errors"], tally)
                continue
            _chunk(session, ctx, item, tally, settings, now)
    _mark_webhook_seen(session, ctx.onboarding, now)
    session.commit()
    return tally


def _followups(
    session: Session, ctx: Context, followups: Any, tally: Tally, settings: Settings, now: datetime
) -> None:
    if not isinstance(followups, list):
        tally.reject("'messages' is not a list")
        return
    rows = []
    for msg in followups:
        row = message_row(ctx, msg, source=MessageSource.HISTORY, thread=None, tally=tally, now=now)
        if row is not None:
            rows.append(row)
    dropped = dropped_wamids(session, ctx.onboarding.id, [r["wamid"] for r in rows])
    rows = [r for r in rows if r["wamid"] not in dropped]
    for page in _pages(rows, settings.ingest_page_size):
        upsert_messages(session, page)
        session.commit()
    # A group chunk dropped by another worker meanwhile could not remove rows not committed
    # yet, but committed its record before removing (drop_messages): look again.
    late = dropped_wamids(session, ctx.onboarding.id, [r["wamid"] for r in rows])
    if late:
        _remove_history_messages(session, ctx.onboarding.id, sorted(late))
        session.commit()
        dropped |= late
    if dropped:
        tally.counts["followups_of_dropped_messages"] += len(dropped)
        tally.media_wamids = [w for w in tally.media_wamids if w not in dropped]
    tally.counts["media_followups"] += len(rows) - len(late)


def _pages(rows: list[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    for start in range(0, len(rows), size):
        yield rows[start : start + size]


def _int_in(value: Any, low: int, high: int) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 20:
        value = int(value)
    if isinstance(value, int) and low <= value <= high:
        return value
    return None


def _chunk(
    session: Session,
    ctx: Context,
    item: dict[str, Any],
    tally: Tally,
    settings: Settings,
    now: datetime,
) -> None:
    meta = item.get("metadata")
    if not isinstance(meta, dict):
        tally.reject("history chunk without metadata")
        return
    phase = _int_in(meta.get("phase"), 0, MAX_PHASE)
    chunk_order = _int_in(meta.get("chunk_order"), 0, MAX_CHUNK_ORDER)
    progress = _int_in(meta.get("progress"), 0, 100)
    if phase is None or chunk_order is None or progress is None:
        tally.reject(
            "history chunk metadata out of range "
            f"(phase {meta.get('phase')!r}, chunk_order {meta.get('chunk_order')!r}, "
            f"progress {meta.get('progress')!r})"
        )
        return
    threads = item.get("threads")
    if not isinstance(threads, list):
        tally.reject(f"chunk {phase}/{chunk_order}: 'threads' is not a list")
        return
    stored = dropped_window = dropped_group = 0
    group_wamids: list[str] = []
    page: list[dict[str, Any]] = []
    for thread in threads:
        if not isinstance(thread, dict) or not isinstance(thread.get("messages"), list):
            tally.reject(f"chunk {phase}/{chunk_order}: thread without a message list")
            continue
        thread_id = thread.get("id")
        if not is_one_to_one(thread_id):
            dropped_group += len(thread["messages"])
            group_wamids += [
                m["id"]
                for m in thread["messages"]
                if isinstance(m, dict) and isinstance(m.get("id"), str) and 0 < len(m["id"]) <= 191
            ]
            continue
        for msg in thread["messages"]:
            row = message_row(
                ctx, msg, source=MessageSource.HISTORY, thread=thread_id, tally=tally, now=now
            )
            if row is None:
                continue
            if row["sent_at"] < ctx.window_start:
                dropped_window += 1
                continue
            page.append(row)
            if len(page) >= settings.ingest_page_size:
                upsert_messages(session, page)
                session.commit()
                stored += len(page)
                page = []
    if page:
        upsert_messages(session, page)
        stored += len(page)
    if group_wamids:
        drop_messages(session, ctx.onboarding.id, group_wamids, "group")
    _record_chunk(
        session,
        ctx.onboarding,
        phase,
        chunk_order,
        progress,
        stored,
        dropped_window,
        dropped_group,
        now,
    )
    session.commit()
    tally.counts["messages"] += stored
    tally.counts["dropped_out_of_window"] += dropped_window
    tally.counts["dropped_group"] += dropped_group
    tally.counts["chunks"] += 1


def _record_chunk(
    session: Session,
    onboarding: Onboarding,
    phase: int,
    chunk_order: int,
    progress: int,
    stored: int,
    dropped_window: int,
    dropped_group: int,
    now: datetime,
) -> None:
    """Upsert the ledger row (the same chunk again keeps the largest figures)."""
    upsert_chunk(
        session,
        {
            "onboarding_id": onboarding.id,
            "phase": phase,
            "chunk_order": chunk_order,
            "progress": progress,
            "messages": stored,
            "dropped_out_of_window": dropped_window,
            "dropped_group": dropped_group,
            "received_at": now,
        },
    )
    update_progress(session, onboarding, progress)


def drop_messages(session: Session, onboarding_id: int, wamids: list[str], reason: str) -> None:
    """Remember messages that are not kept, and remove any that a follow-up stored first.

    The record is committed before the removal (which is left to the caller's commit): a
    follow-up stored by another worker at the same time is either committed before the
    removal looks, or finds the record when it looks again after its own commit.
    """
    batches = [sorted(set(wamids[start : start + 500])) for start in range(0, len(wamids), 500)]
    for batch in batches:
        stmt = insert_for(session, DroppedMessage.__table__).on_conflict_do_nothing(
            index_elements=["onboarding_id", "wamid"]
        )
        session.execute(
            stmt, [{"onboarding_id": onboarding_id, "wamid": w, "reason": reason} for w in batch]
        )
    session.commit()
    _remove_history_messages(session, onboarding_id, [w for batch in batches for w in batch])


def _remove_history_messages(session: Session, onboarding_id: int, wamids: list[str]) -> None:
    for start in range(0, len(wamids), 500):
        session.execute(
            delete(Message).where(
                Message.onboarding_id == onboarding_id,
                Message.wamid.in_(wamids[start : start + 500]),
                Message.source == MessageSource.HISTORY.value,
            )
        )


def dropped_wamids(session: Session, onboarding_id: int, wamids: list[str]) -> set[str]:
    """Which of ``wamids`` belong to messages coexist does not keep."""
    found: set[str] = set()
    for start in range(0, len(wamids), 500):
        found.update(
            session.scalars(
                select(DroppedMessage.wamid).where(
                    DroppedMessage.onboarding_id == onboarding_id,
                    DroppedMessage.wamid.in_(wamids[start : start + 500]),
                )
            )
        )
    return found


def chunk_phases(session: Session, onboarding_id: int) -> dict[int, dict[str, Any]]:
    """Per phase: the chunk_orders received and those missing below the highest seen."""
    rows = session.execute(
        select(HistoryChunk.phase, HistoryChunk.chunk_order)
        .where(HistoryChunk.onboarding_id == onboarding_id)
        .order_by(HistoryChunk.phase, HistoryChunk.chunk_order)
    ).all()
    phases: dict[int, list[int]] = {}
    for phase, order in rows:
        phases.setdefault(phase, []).append(order)
    out: dict[int, dict[str, Any]] = {}
    for phase, orders in phases.items():
        first = 0 if 0 in orders else 1
        expected = set(range(first, max(orders) + 1))
        out[phase] = {"received": orders, "missing": sorted(expected - set(orders))}
    return out


def update_progress(session: Session, onboarding: Onboarding, progress: int) -> None:
    """Progress is the maximum seen; at 100 the sync is completed, with gaps if any."""
    row = onboarding.sync(SyncType.HISTORY)
    raised = session.execute(
        update(SyncRequest)
        .where(SyncRequest.id == row.id, SyncRequest.progress < progress)
        .values(progress=progress)
        .returning(SyncRequest.progress)
        .execution_options(synchronize_session=False)
    ).scalar()
    if raised is not None:
        set_committed_value(row, "progress", raised)
    else:
        session.refresh(row, ["progress"])  # another worker may have moved it further
    if row.progress >= 100:
        # Workers finishing chunks at the same time must not each judge the gaps without the
        # other's chunk: take the sync row's lock (released at commit), then look again.
        session.refresh(row, with_for_update=True)
    if row.progress < 100:
        if row.state == SyncState.STALLED:
            row.state = SyncState.REQUESTED.value
        return
    gaps = {
        p: v["missing"] for p, v in chunk_phases(session, onboarding.id).items() if v["missing"]
    }
    new_state = SyncState.COMPLETED_WITH_GAPS if gaps else SyncState.COMPLETED
    if row.state != new_state:
        row.state = new_state.value
        row.completed_at = row.completed_at or utcnow()
        row.last_error = f"missing chunk_orders per phase: {gaps}" if gaps else None
        log.info("history_sync_completed", gaps=gaps or None)
        cause = "history sync complete" + (f" with gaps {gaps}" if gaps else "")
        if onboarding.state in (S.SUBSCRIBED, S.SYNCING):
            if onboarding.state == S.SUBSCRIBED:
                transition(session, onboarding, S.SYNCING, "history webhooks arriving")
            transition(session, onboarding, S.SYNCED, cause)
        elif onboarding.state == S.SYNCED and not gaps:
            note(onboarding, "late history chunks filled every gap: " + cause)


def _mark_webhook_seen(session: Session, onboarding: Onboarding, now: datetime) -> None:
    row = onboarding.sync(SyncType.HISTORY)
    row.first_webhook_at = row.first_webhook_at or now
    # The sync row is shared by every worker on this onboarding: touch it only now and then.
    if row.last_webhook_at is None or now - row.last_webhook_at > WEBHOOK_SEEN_RESOLUTION:
        row.last_webhook_at = now
    if row.state in (SyncState.UNKNOWN, SyncState.INTENT, SyncState.PENDING):
        # Meta only sends history for an accepted request: the lost answer was a yes.
        row.state = SyncState.REQUESTED.value
        row.lease_until = None
        row.requested_at = row.requested_at or now
        row.last_error = "accepted: confirmed by history webhooks"
    elif row.state == SyncState.STALLED:
        row.state = SyncState.REQUESTED.value
    if onboarding.state == S.SUBSCRIBED and row.state in SYNC_ACCEPTED:
        transition(session, onboarding, S.SYNCING, "history webhooks arriving")


def _history_errors(session: Session, ctx: Context, errors: Any, tally: Tally) -> None:
    codes = []
    if isinstance(errors, list):
        codes = [e.get("code") for e in errors if isinstance(e, dict)]
    if HISTORY_DECLINED not in codes and str(HISTORY_DECLINED) not in codes:
        tally.reject(f"history errors with codes {codes[:5]!r}")
        return
    onboarding = ctx.onboarding
    row = onboarding.sync(SyncType.HISTORY)
    tally.counts["declined"] += 1
    if row.state == SyncState.DECLINED:
        return
    row.state = SyncState.DECLINED.value
    row.lease_until = None
    row.last_error = "2593109: the business turned history sharing off in the Business app"
    if onboarding.state in (S.SUBSCRIBED, S.SYNCING):
        transition(session, onboarding, S.HISTORY_DECLINED, row.last_error)
    raise_alert(
        session, onboarding.id, "history_declined", f"onboarding {onboarding.id}: {row.last_error}"
    )
    log.warning("history_declined", onboarding_id=onboarding.id)


# -- contacts -----------------------------------------------------------------------------


def ingest_contacts(session: Session, ctx: Context, value: dict[str, Any]) -> Tally:
    """An ``smb_app_state_sync`` value: contact adds/edits and removals, last write wins."""
    tally = Tally()
    items = value.get("state_sync")
    if not isinstance(items, list):
        tally.reject("'state_sync' is not a list")
        return tally
    rows = []
    for item in items:
        if not isinstance(item, dict) or item.get("type") != "contact":
            tally.counts["ignored_state_items"] += 1
            continue
        contact = item.get("contact")
        meta = item.get("metadata")
        action = item.get("action")
        phone = digits(contact.get("phone_number")) if isinstance(contact, dict) else None
        changed = unix_time(meta.get("timestamp"), now=ctx.now) if isinstance(meta, dict) else None
        if phone is None or changed is None or action not in ("add", "remove"):
            tally.reject("contact change without phone, timestamp or a known action")
            continue
        assert isinstance(contact, dict)
        removed = action == "remove"
        rows.append(
            {
                "onboarding_id": ctx.onboarding.id,
                "phone": phone[:64],
                "full_name": None if removed else clean_text(contact.get("full_name"), 512),
                "first_name": None if removed else clean_text(contact.get("first_name"), 256),
                "removed_at": changed if removed else None,
                "changed_at": changed,
                "names_changed_at": None if removed else changed,
            }
        )
        tally.counts["contacts_removed" if removed else "contacts_added"] += 1
    upsert_contacts(session, rows)
    contacts_sync = ctx.onboarding.sync(SyncType.CONTACTS)
    if contacts_sync.state in (SyncState.UNKNOWN, SyncState.INTENT, SyncState.PENDING):
        contacts_sync.state = SyncState.REQUESTED.value
        contacts_sync.lease_until = None
        contacts_sync.last_error = "accepted: confirmed by contact webhooks"
    session.commit()
    return tally


# -- echoes and edits ---------------------------------------------------------------------


def ingest_echoes(session: Session, ctx: Context, value: dict[str, Any]) -> Tally:
    """``smb_message_echoes``: messages the business sent from the app, stored as outbound."""
    tally = Tally()
    echoes = value.get("message_echoes")
    if not isinstance(echoes, list):
        tally.reject("'message_echoes' is not a list")
        return tally
    now = utcnow()
    rows = []
    for msg in echoes:
        row = message_row(
            ctx, msg, source=MessageSource.APP_ECHO, thread=None, tally=tally, now=now
        )
        if row is None:
            continue
        row["direction"] = Direction.OUTBOUND.value
        if isinstance(msg, dict):
            row["thread"] = digits(msg.get("to")) or row["thread"]
        rows.append(row)
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
    """``messages``: apply user edits and revokes to stored messages; note expected errors."""
    tally = Tally()
    errors = value.get("errors")
    for error in errors if isinstance(errors, list) else []:
        if isinstance(error, dict) and error.get("code") == 131060:
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
        if not isinstance(msg, dict):
            continue
        msg_errors = msg.get("errors")
        for error in msg_errors if isinstance(msg_errors, list) else []:
            if isinstance(error, dict) and error.get("code") == 131060:
                tally.counts["unsupported_message_131060"] += 1
        kind = msg.get("type")
        if kind == "edit" and isinstance(msg.get("edit"), dict):
            _apply_edit(session, ctx, msg["edit"], now, tally)
        elif kind == "revoke" and isinstance(msg.get("revoke"), dict):
            _apply_revoke(session, ctx, msg["revoke"], now, tally)
        else:
            tally.counts["messages_not_stored"] += 1
    session.commit()
    return tally


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


def watch_stalled(session: Session, *, settings: Settings, now: datetime | None = None) -> int:
    """History syncs requested long ago with no history webhook become ``stalled``. Commits."""
    now = now or utcnow()
    cutoff = now - timedelta(minutes=settings.history_stall_minutes)
    rows = session.scalars(
        select(SyncRequest).where(
            SyncRequest.sync_type == SyncType.HISTORY.value,
            SyncRequest.state == SyncState.REQUESTED.value,
            SyncRequest.first_webhook_at.is_(None),
            SyncRequest.requested_at < cutoff,
        )
    ).all()
    for row in rows:
        row.state = SyncState.STALLED.value
        row.last_error = (
            f"no history webhook {settings.history_stall_minutes:g} min after the request; "
            "ask the business to open the WhatsApp Business app and keep it open"
        )
        raise_alert(
            session,
            row.onboarding_id,
            "history_stalled",
            f"onboarding {row.onboarding_id}: {row.last_error}",
        )
        log.warning("history_sync_stalled", onboarding_id=row.onboarding_id)
    session.commit()
    return len(rows)
