"""A user's new BSUID: the ``user_id_update`` field and the ``user_changed_user_id`` system
message (docs/meta.md#business-scoped-user-ids).

A BSUID changes when its user changes phone number. Meta says so twice: a ``user_id_update``
webhook (to the app's default callback, like ``account_update``) carrying
``user_id.previous``/``user_id.current``, and a ``system`` message of type
``user_changed_user_id`` from the previous BSUID whose ``system.user_id`` is the new one. Either
moves the peer to its new BSUID and keeps its history; if the new BSUID already has a peer, the
two are merged (:func:`onboarding.ingest.peers.merge`). Both may come, in any order: the second
finds nothing left to do. Unusable items are rejected in the :class:`.Tally`, never raised.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import structlog
from sqlalchemy import update
from sqlalchemy.orm import Session

from models import UserIdChange, utcnow
from onboarding.feed.events import EventType, emit_for
from onboarding.ingest import peers
from onboarding.ingest.identity import Identity, bsuid, phone
from onboarding.ingest.rows import Context, Tally
from onboarding.store import insert_for

log = structlog.get_logger(__name__)

CHANGED_USER_ID = "user_changed_user_id"


def ingest_user_id_update(session: Session, ctx: Context, value: dict[str, Any]) -> Tally:
    """A ``user_id_update`` value: each user's peer moves to its current BSUID. Commits."""
    tally = Tally()
    for item in _items(value):
        change = item.get("user_id")
        previous = bsuid(change.get("previous")) if isinstance(change, dict) else None
        current = bsuid(change.get("current")) if isinstance(change, dict) else None
        if previous is None or current is None:
            tally.reject("user_id_update without a usable user_id.previous and .current")
            continue
        number = phone(item.get("wa_id"))
        parent = item.get("parent_user_id")
        if isinstance(parent, dict):
            parent = parent.get("current")
        move(session, ctx, previous, current, Identity(phone=number, parent_user_id=bsuid(parent)))
        tally.counts["user_ids_changed"] += 1
    session.commit()
    return tally


def _items(value: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The update objects of a value: the value itself if it carries ``user_id``, else the
    objects of its lists (Meta's sample nests them; read both)."""
    if "user_id" in value:
        yield value
        return
    for key, items in value.items():
        if key in ("metadata", "contacts") or not isinstance(items, list):
            continue
        yield from (item for item in items if isinstance(item, dict))


def apply_system_messages(
    session: Session, ctx: Context, messages: Sequence[Any], tally: Tally
) -> None:
    """Follow the ``user_changed_user_id`` system messages among ``messages``. Not committed."""
    for msg in messages:
        if not isinstance(msg, dict) or msg.get("type") != "system":
            continue
        system = msg.get("system")
        if not isinstance(system, dict) or system.get("type") != CHANGED_USER_ID:
            continue
        previous = bsuid(msg.get("from_user_id"))
        current = bsuid(system.get("user_id"))
        if previous is None or current is None:
            tally.reject(f"{CHANGED_USER_ID} without a usable from_user_id and system.user_id")
            continue
        # A BSUID changes with the number: whatever ``from`` says is not the new BSUID's.
        move(session, ctx, previous, current, Identity())
        tally.counts["user_ids_changed"] += 1


def move(session: Session, ctx: Context, previous: str, current: str, extra: Identity) -> None:
    """Move the peer of ``previous`` to ``current`` (merging with ``current``'s peer if any);
    ``extra`` fills what the change also says (a number, a parent BSUID). Not committed."""
    moved = move_user_id(session, ctx.onboarding.id, previous, current)
    log.info("peer_user_id_changed", onboarding_id=ctx.onboarding.id, peer_id=moved)
    if extra.phone or extra.parent_user_id:
        peers.resolve(
            session,
            ctx.onboarding.id,
            [Identity(user_id=current, phone=extra.phone, parent_user_id=extra.parent_user_id)],
        )


def move_user_id(session: Session, onboarding_id: int, previous: str, current: str) -> int | None:
    """Give the peer of BSUID ``previous`` the BSUID ``current``, merging it with the peer that
    already has ``current``; the peer's id, or None if neither BSUID is known. The change is
    recorded, so that items naming ``previous`` later reach the same peer
    (:func:`onboarding.ingest.peers.resolve`), and a move writes ``peer.user_id_changed``
    (the peer kept, when two were merged). Not committed."""

    def work() -> int | None:
        _record(session, onboarding_id, previous, current)
        rows = peers.load(session, onboarding_id, set(), {previous, current})
        old = next((r for r in rows if r.user_id == previous), None)
        new = next((r for r in rows if r.user_id == current), None)
        if old is None:
            return new.id if new is not None else None
        if new is None:
            session.execute(
                update(peers.PEERS)
                .where(peers.PEERS.c.id == old.id)
                .values(user_id=current, updated_at=utcnow())
            )
            peers.new_epoch(session, onboarding_id)
            moved = int(old.id)
        else:
            moved = peers.merge(session, onboarding_id, old.id, new.id, user_id=current).id
        emit_for(
            session,
            EventType.PEER_USER_ID_CHANGED,
            onboarding_id,
            {"peer_id": moved, "previous": previous, "current": current},
        )
        return moved

    return peers.retried(session, "move_user_id", work)


def _record(session: Session, onboarding_id: int, previous: str, current: str) -> None:
    """Remember the change; a repeat (or the other of Meta's two signals) keeps the first."""
    stmt = insert_for(session, UserIdChange.__table__).on_conflict_do_nothing(
        index_elements=["onboarding_id", "previous"]
    )
    session.execute(
        stmt,
        [
            {
                "onboarding_id": onboarding_id,
                "previous": previous,
                "current": current,
                "changed_at": utcnow(),
            }
        ],
    )
