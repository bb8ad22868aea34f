"""The ``history`` field: chunks of 1:1 threads, their ledger, and what they say about the sync.

A ``history`` value carries chunks (``history``), media updates of earlier chunks' messages
(``messages``, :mod:`.late_media`), or error 2593109: the business declined to share its history.
Chunks are written in pages of ``ingest_page_size`` messages, each page its own transaction, so
memory and transaction size stay flat whatever Meta sends; the chunk's ledger row is written
last, so a chunk that was cut short is simply processed again on redelivery. Each thread's user
becomes a peer (:mod:`.peers`), resolved once per chunk. Group chats and messages older than the
history window are counted, recorded and not kept (:mod:`.dropped`); edits and revokes that came
before a chunk's messages are applied once they are stored (:mod:`.changes`).

The ledger's progress completes the history sync (with gaps if some chunk_order is missing),
and any history webhook confirms a request whose answer was lost; the sync row's state changes
through :mod:`onboarding.sync.states`, the onboarding's through :mod:`onboarding.states`.
Nothing here raises for bad input: an unusable item is rejected in the :class:`.Tally`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from config import Settings
from models import (
    SYNC_ACCEPTED,
    HistoryChunk,
    MessageSource,
    Onboarding,
    OnboardingState,
    SyncRequest,
    SyncState,
    SyncType,
    utcnow,
)
from onboarding.feed.bodies import messages_stored
from onboarding.feed.events import EventType, emit
from onboarding.ingest import identity, peers, statuses, user_ids
from onboarding.ingest.changes import apply_pending
from onboarding.ingest.dropped import GROUP, OUT_OF_WINDOW, drop_messages
from onboarding.ingest.late_media import store_late_media
from onboarding.ingest.rows import Context, Tally, is_one_to_one, message_row, usable_wamid
from onboarding.meta.errors import HISTORY_DECLINED
from onboarding.states import note, raise_alert, transition
from onboarding.store import upsert_chunk, upsert_messages
from onboarding.sync import states as sync_states

log = structlog.get_logger(__name__)

S = OnboardingState
MAX_PHASE = 2
MAX_CHUNK_ORDER = 1_000_000
WEBHOOK_SEEN_RESOLUTION = timedelta(seconds=10)


def ingest_history(
    session: Session, ctx: Context, value: dict[str, Any], *, settings: Settings
) -> Tally:
    """A ``history`` value: chunks of threads, media updates, or the declined error. Commits."""
    tally = Tally()
    now = utcnow()
    history = value.get("history")
    media_updates = value.get("messages")
    # Business-sent media come in their own array since April 2026.
    media_echoes = value.get("message_echoes")
    if history is None and media_updates is None and media_echoes is None:
        tally.reject("history value has neither 'history' nor 'messages'")
        return tally
    for updates in (media_updates, media_echoes):
        if updates is not None:
            store_late_media(session, ctx, updates, tally, settings, now, value=value)
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


def _int_in(value: Any, low: int, high: int) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 20:
        value = int(value)
    if isinstance(value, int) and low <= value <= high:
        return value
    return None


@dataclass(frozen=True)
class ChunkId:
    """Where a chunk sits in the sync: its phase, its order within it, the progress it brings."""

    phase: int
    chunk_order: int
    progress: int

    @classmethod
    def of(cls, item: dict[str, Any], tally: Tally) -> ChunkId | None:
        """The chunk's metadata, or None (rejected) if it is missing or out of range."""
        meta = item.get("metadata")
        if not isinstance(meta, dict):
            tally.reject("history chunk without metadata")
            return None
        phase = _int_in(meta.get("phase"), 0, MAX_PHASE)
        chunk_order = _int_in(meta.get("chunk_order"), 0, MAX_CHUNK_ORDER)
        progress = _int_in(meta.get("progress"), 0, 100)
        if phase is None or chunk_order is None or progress is None:
            tally.reject(
                "history chunk metadata out of range "
                f"(phase {meta.get('phase')!r}, chunk_order {meta.get('chunk_order')!r}, "
                f"progress {meta.get('progress')!r})"
            )
            return None
        return cls(phase, chunk_order, progress)

    def __str__(self) -> str:
        return f"{self.phase}/{self.chunk_order}"


@dataclass
class ChunkCounts:
    """What a chunk's threads gave: stored, dropped by the window, dropped as group chats."""

    stored: int = 0
    dropped_window: int = 0
    dropped_group: int = 0
    group_wamids: list[str] = field(default_factory=list)
    window_wamids: list[str] = field(default_factory=list)
    stored_wamids: list[str] = field(default_factory=list)


def _chunk(
    session: Session,
    ctx: Context,
    item: dict[str, Any],
    tally: Tally,
    settings: Settings,
    now: datetime,
) -> None:
    """Store one chunk's 1:1 messages page by page, drop its group chats, then its ledger row."""
    chunk = ChunkId.of(item, tally)
    if chunk is None:
        return
    threads = item.get("threads")
    if not isinstance(threads, list):
        tally.reject(f"chunk {chunk}: 'threads' is not a list")
        return
    counts = _store_threads(session, ctx, chunk, threads, tally, settings, now)
    if counts.group_wamids:
        drop_messages(session, ctx.onboarding.id, counts.group_wamids, GROUP)
    if counts.window_wamids:
        drop_messages(session, ctx.onboarding.id, counts.window_wamids, OUT_OF_WINDOW)
    _record_chunk(session, ctx.onboarding, chunk, counts, now)
    session.commit()
    apply_pending(session, ctx.onboarding.id, counts.stored_wamids, tally)
    statuses.apply_pending(session, ctx.onboarding, counts.stored_wamids, tally)
    tally.counts["messages"] += counts.stored
    tally.counts["dropped_out_of_window"] += counts.dropped_window
    tally.counts["dropped_group"] += counts.dropped_group
    tally.counts["chunks"] += 1


def _store_threads(
    session: Session,
    ctx: Context,
    chunk: ChunkId,
    threads: list[Any],
    tally: Tally,
    settings: Settings,
    now: datetime,
) -> ChunkCounts:
    """Upsert the 1:1 threads' messages inside the window, a page per transaction; the last
    page is left to the caller's commit."""
    counts = ChunkCounts()
    kept, users = [], []
    for thread in threads:
        if not isinstance(thread, dict) or not isinstance(thread.get("messages"), list):
            tally.reject(f"chunk {chunk}: thread without a message list")
            continue
        user = identity.of_thread(thread)
        if not is_one_to_one(thread, user):
            counts.dropped_group += len(thread["messages"])
            counts.group_wamids += [
                m["id"]
                for m in thread["messages"]
                if isinstance(m, dict) and usable_wamid(m.get("id"))
            ]
            continue
        kept.append(thread)
        users.append(user)
    # One peer per thread, resolved for the whole chunk at once (never per message).
    peer_ids = peers.resolve(session, ctx.onboarding.id, users)
    held = {pid: user for user, pid in zip(users, peer_ids, strict=True) if pid is not None}
    page: list[dict[str, Any]] = []
    committed = False
    for thread, user, peer_id in zip(kept, users, peer_ids, strict=True):
        for msg in thread["messages"]:
            row = message_row(
                ctx, msg, source=MessageSource.HISTORY, thread=user.label, tally=tally, now=now
            )
            if row is None:
                continue
            if row["sent_at"] < ctx.window_start:
                counts.dropped_window += 1
                counts.window_wamids.append(row["wamid"])
                continue
            row["peer_id"] = peer_id
            page.append(row)
            if len(page) >= settings.ingest_page_size:
                _store_page(session, ctx, chunk, page, counts, held, committed=committed)
                session.commit()
                committed = True
                page = []
        user_ids.apply_system_messages(session, ctx, thread["messages"], tally)
    if page:
        _store_page(session, ctx, chunk, page, counts, held, committed=committed)
    return counts


def _store_page(
    session: Session,
    ctx: Context,
    chunk: ChunkId,
    page: list[dict[str, Any]],
    counts: ChunkCounts,
    held: dict[int, identity.Identity],
    *,
    committed: bool,
) -> None:
    """Upsert one page, and its ``messages.stored`` event for the messages new to coexist
    (a redelivered chunk tells of nothing twice). After a commit the page's peers are held
    again first: the commit released what :func:`.peers.resolve` held."""
    if committed:
        peers.hold(session, ctx.onboarding.id, page, held)
    new = upsert_messages(session, page)
    messages_stored(
        session,
        ctx.onboarding,
        MessageSource.HISTORY.value,
        new,
        phase=chunk.phase,
        chunk_order=chunk.chunk_order,
    )
    counts.stored += len(page)
    counts.stored_wamids += [row["wamid"] for row in page]


# -- the chunk ledger and the sync's progress -----------------------------------------------


def _record_chunk(
    session: Session, onboarding: Onboarding, chunk: ChunkId, counts: ChunkCounts, now: datetime
) -> None:
    """Upsert the ledger row (the same chunk again keeps the largest figures)."""
    upsert_chunk(
        session,
        {
            "onboarding_id": onboarding.id,
            "phase": chunk.phase,
            "chunk_order": chunk.chunk_order,
            "progress": chunk.progress,
            "messages": counts.stored,
            "dropped_out_of_window": counts.dropped_window,
            "dropped_group": counts.dropped_group,
            "received_at": now,
        },
    )
    update_progress(session, onboarding, chunk.progress)


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
        emit(
            session,
            EventType.SYNC_PROGRESS,
            onboarding,
            {"sync_type": SyncType.HISTORY.value, "progress": raised},
        )
    else:
        # Another worker may have moved it further, maybe to 100 in a transaction still open
        # that judged the gaps without this chunk: wait for it (the row's lock, released at
        # commit) rather than read the progress it had before, or nobody completes the sync.
        session.refresh(row, ["progress"], with_for_update=True)
    if row.progress >= 100:
        # Workers finishing chunks at the same time must not each judge the gaps without the
        # other's chunk: take the sync row's lock (released at commit), then look again.
        session.refresh(row, with_for_update=True)
    if row.progress < 100:
        sync_states.revive(row)
        return
    _complete(session, onboarding, row)


def _complete(session: Session, onboarding: Onboarding, row: SyncRequest) -> None:
    """Progress reached 100: the sync is completed, with gaps if chunk_orders are missing."""
    gaps = {
        p: v["missing"] for p, v in chunk_phases(session, onboarding.id).items() if v["missing"]
    }
    missing = [{"phase": phase, "chunk_orders": orders} for phase, orders in gaps.items()]
    if not sync_states.move(
        row,
        SyncState.COMPLETED_WITH_GAPS if gaps else SyncState.COMPLETED,
        **({"missing_chunks": missing} if gaps else {}),
    ):
        return
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
    """A history webhook came: the sync was accepted, and it is not stalled."""
    row = onboarding.sync(SyncType.HISTORY)
    row.first_webhook_at = row.first_webhook_at or now
    # The sync row is shared by every worker on this onboarding: touch it only now and then.
    if row.last_webhook_at is None or now - row.last_webhook_at > WEBHOOK_SEEN_RESOLUTION:
        row.last_webhook_at = now
    # Meta only sends history for an accepted request: the lost answer was a yes.
    sync_states.confirm_accepted(row, "accepted: confirmed by history webhooks", requested_at=now)
    sync_states.revive(row)
    if onboarding.state == S.SUBSCRIBED and row.state in SYNC_ACCEPTED:
        transition(session, onboarding, S.SYNCING, "history webhooks arriving")


def _history_errors(session: Session, ctx: Context, errors: Any, tally: Tally) -> None:
    """2593109 declines the history sync (and the onboarding, with an alert); others are
    rejected."""
    codes = []
    if isinstance(errors, list):
        codes = [e.get("code") for e in errors if isinstance(e, dict)]
    if HISTORY_DECLINED not in codes and str(HISTORY_DECLINED) not in codes:
        tally.reject(f"history errors with codes {codes[:5]!r}")
        return
    onboarding = ctx.onboarding
    row = onboarding.sync(SyncType.HISTORY)
    tally.counts["declined"] += 1
    if not sync_states.move(row, SyncState.DECLINED):
        return
    row.lease_until = None
    row.last_error = "2593109: the business turned history sharing off in the Business app"
    if onboarding.state in (S.SUBSCRIBED, S.SYNCING):
        transition(session, onboarding, S.HISTORY_DECLINED, row.last_error)
    raise_alert(
        session, onboarding.id, "history_declined", f"onboarding {onboarding.id}: {row.last_error}"
    )
    log.warning("history_declined", onboarding_id=onboarding.id)
