"""The ``smb_app_state_sync`` field: the business's contacts, added, edited and removed.

Each contact change carries its own time; the newest change wins, whatever order Meta delivers
them in (:func:`onboarding.store.upsert_contacts`). A contact belongs to a peer: its
``phone_number`` may be omitted since April 2026, its ``user_id`` (BSUID) is always there, and a
contact naming both joins them (:mod:`.peers`). Contact webhooks also prove that the contacts
sync was accepted, confirming a request whose answer was lost. Items that are not contacts are
counted and ignored; unusable ones are rejected in the :class:`.Tally`, never raised.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from models import SyncType
from onboarding.feed.events import EventType, emit, iso
from onboarding.ingest import identity, peers
from onboarding.ingest.identity import Identity
from onboarding.ingest.rows import Context, Tally
from onboarding.meta.payloads import clean_text, unix_time
from onboarding.store import upsert_contacts
from onboarding.sync import states as sync_states


def ingest_contacts(session: Session, ctx: Context, value: dict[str, Any]) -> Tally:
    """An ``smb_app_state_sync`` value: contact adds, edits and removals, last write wins.

    Commits."""
    tally = Tally()
    items = value.get("state_sync")
    if not isinstance(items, list):
        tally.reject("'state_sync' is not a list")
        return tally
    changes = [change for item in items if (change := _contact_row(ctx, item, tally)) is not None]
    peer_ids = peers.resolve(session, ctx.onboarding.id, [user for user, _ in changes])
    rows = [
        {**row, "peer_id": peer_id} for (_, row), peer_id in zip(changes, peer_ids, strict=True)
    ]
    upsert_contacts(session, rows)
    _tell(session, ctx, [user for user, _ in changes], rows)
    sync_states.confirm_accepted(
        ctx.onboarding.sync(SyncType.CONTACTS), "accepted: confirmed by contact webhooks"
    )
    session.commit()
    return tally


def _tell(
    session: Session, ctx: Context, users: list[Identity], rows: list[dict[str, Any]]
) -> None:
    """``contacts.upserted`` and ``contacts.removed`` for the page's changes (not committed).

    Every change is told with its ``changed_at``: applied in that order, newest winning, they
    end where coexist's contacts do, whatever order they came in."""
    upserted: list[dict[str, Any]] = []
    removed: list[dict[str, Any]] = []
    for user, row in zip(users, rows, strict=True):
        (removed if row["removed_at"] is not None else upserted).append(
            {
                "peer_id": row["peer_id"],
                "phone": row["phone"],
                "user_id": user.user_id,
                "full_name": row["full_name"],
                "first_name": row["first_name"],
                "changed_at": iso(row["changed_at"]),
            }
        )
    if upserted:
        emit(session, EventType.CONTACTS_UPSERTED, ctx.onboarding, {"contacts": upserted})
    if removed:
        emit(session, EventType.CONTACTS_REMOVED, ctx.onboarding, {"contacts": removed})


def _contact_row(ctx: Context, item: Any, tally: Tally) -> tuple[Identity, dict[str, Any]] | None:
    """The user and ``contacts`` row (without its peer) of one state item, or None (counted)
    if it is not a usable contact."""
    if not isinstance(item, dict) or item.get("type") != "contact":
        tally.counts["ignored_state_items"] += 1
        return None
    contact = item.get("contact")
    meta = item.get("metadata")
    action = item.get("action")
    user = identity.of_state_contact(contact) if isinstance(contact, dict) else Identity()
    changed = unix_time(meta.get("timestamp"), now=ctx.now) if isinstance(meta, dict) else None
    if not user.known or changed is None or action not in ("add", "remove"):
        tally.reject("contact change without phone or user_id, timestamp or a known action")
        return None
    assert isinstance(contact, dict)
    removed = action == "remove"
    tally.counts["contacts_removed" if removed else "contacts_added"] += 1
    if removed:
        user = identity.without_names(user)
    return user, {
        "onboarding_id": ctx.onboarding.id,
        "phone": user.phone,
        "full_name": None if removed else clean_text(contact.get("full_name"), 512),
        "first_name": None if removed else clean_text(contact.get("first_name"), 256),
        "removed_at": changed if removed else None,
        "changed_at": changed,
        "names_changed_at": None if removed else changed,
    }
