"""The ``smb_app_state_sync`` field: the business's contacts, added, edited and removed.

Each contact change carries its own time; the newest change wins, whatever order Meta delivers
them in (:func:`onboarding.store.upsert_contacts`). Contact webhooks also prove that the contacts
sync was accepted, confirming a request whose answer was lost. Items that are not contacts are
counted and ignored; unusable ones are rejected in the :class:`.Tally`, never raised.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from models import SyncType
from onboarding.ingest.rows import Context, Tally
from onboarding.meta.payloads import clean_text, digits, unix_time
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
    rows = [row for item in items if (row := _contact_row(ctx, item, tally)) is not None]
    upsert_contacts(session, rows)
    sync_states.confirm_accepted(
        ctx.onboarding.sync(SyncType.CONTACTS), "accepted: confirmed by contact webhooks"
    )
    session.commit()
    return tally


def _contact_row(ctx: Context, item: Any, tally: Tally) -> dict[str, Any] | None:
    """The ``contacts`` row of one state item, or None (counted) if it is not a usable contact."""
    if not isinstance(item, dict) or item.get("type") != "contact":
        tally.counts["ignored_state_items"] += 1
        return None
    contact = item.get("contact")
    meta = item.get("metadata")
    action = item.get("action")
    phone = digits(contact.get("phone_number")) if isinstance(contact, dict) else None
    changed = unix_time(meta.get("timestamp"), now=ctx.now) if isinstance(meta, dict) else None
    if phone is None or changed is None or action not in ("add", "remove"):
        tally.reject("contact change without phone, timestamp or a known action")
        return None
    assert isinstance(contact, dict)
    removed = action == "remove"
    tally.counts["contacts_removed" if removed else "contacts_added"] += 1
    return {
        "onboarding_id": ctx.onboarding.id,
        "phone": phone[:64],
        "full_name": None if removed else clean_text(contact.get("full_name"), 512),
        "first_name": None if removed else clean_text(contact.get("first_name"), 256),
        "removed_at": changed if removed else None,
        "changed_at": changed,
        "names_changed_at": None if removed else changed,
    }
