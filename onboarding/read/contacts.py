"""The business's address book: contacts by id, each with its peer's identifiers and names.

Paged by contact id within the onboarding (``ix_contacts_onboarding_position``): a merge of two
peers moves a contact to another peer but keeps its id, so a walk neither skips nor repeats it.
Removed contacts are listed too, with ``removed_at``, unless the client asks otherwise.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Row, select
from sqlalchemy.orm import Session

from models import Contact, Peer
from onboarding.read.pages import Page, decode, encode, page
from onboarding.views import iso

LISTING = "contacts"


def after_id(cursor: str) -> int:
    (contact_id,) = decode(cursor, LISTING, 1)
    return contact_id


def read_contacts(
    session: Session,
    onboarding_id: int,
    *,
    removed: bool | None = None,
    after: int | None = None,
    limit: int,
) -> Page:
    """A page of the onboarding's contacts (:func:`contact_json`) by id; ``removed`` True or
    False keeps only removed or only present ones."""
    query = (
        select(
            Contact.id,
            Contact.phone,
            Contact.full_name,
            Contact.first_name,
            Contact.removed_at,
            Contact.changed_at,
            Peer.id.label("peer_id"),
            Peer.phone.label("peer_phone"),
            Peer.user_id,
            Peer.username,
            Peer.name,
        )
        .join(Peer, Peer.id == Contact.peer_id)
        .where(Contact.onboarding_id == onboarding_id)
        .order_by(Contact.id)
        .limit(limit + 1)
    )
    if after is not None:
        query = query.where(Contact.id > after)
    if removed is True:
        query = query.where(Contact.removed_at.is_not(None))
    elif removed is False:
        query = query.where(Contact.removed_at.is_(None))
    rows = list(session.execute(query))
    return page(rows, limit, contact_json, lambda row: encode(LISTING, row.id))


def contact_json(row: Row[Any]) -> dict[str, Any]:
    """One contact as the read API gives it (documented in the README)."""
    return {
        "id": row.id,
        "phone": row.phone,
        "full_name": row.full_name,
        "first_name": row.first_name,
        "removed": row.removed_at is not None,
        "removed_at": iso(row.removed_at),
        "changed_at": iso(row.changed_at),
        "peer": {
            "id": row.peer_id,
            "phone": row.peer_phone,
            "user_id": row.user_id,
            "username": row.username,
            "name": row.name,
        },
    }
