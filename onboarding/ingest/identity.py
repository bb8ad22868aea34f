"""Who a webhook item is about: the identifiers Meta sends, read into an :class:`Identity`.

Since April 2026 every coexistence field names users by a business-scoped user id (BSUID) as
well as, or instead of, their phone number (docs/meta.md#business-scoped-user-ids):

* ``history`` threads: ``id`` (the phone number, may be omitted) and ``context``
  {``wa_id``?, ``user_id``, ``parent_user_id``?, ``username``?};
* messages: ``from``/``from_user_id``/``from_parent_user_id``, and on business-sent items
  ``to``/``to_user_id``/``to_parent_user_id``;
* ``contacts[]`` beside echoes and late media: {``wa_id``?, ``user_id``, ``parent_user_id``?,
  ``profile`` {``name``?, ``username``?}};
* ``smb_app_state_sync`` contacts: ``phone_number``?, ``user_id``, ``parent_user_id``?,
  ``username``?.

Nothing here touches the database; :mod:`.peers` turns identities into peers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Any

from onboarding.meta.payloads import clean_text, digits, is_bsuid

#: A phone number as Meta writes it in ``wa_id``, ``from``, ``to`` and thread ids.
_PHONE = re.compile(r"\+?[0-9]{6,15}")


def bsuid(value: Any) -> str | None:
    """A business-scoped user id (or parent id) as Meta formats it, else None."""
    return value if is_bsuid(value) else None


def phone(value: Any) -> str | None:
    """A user's phone number (6 to 15 digits, an optional ``+``), as digits; else None."""
    if isinstance(value, str) and value.isascii() and value.isdigit():
        return value if 6 <= len(value) <= 15 else None  # the usual case, on the hot path
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if isinstance(value, str) and _PHONE.fullmatch(value):
        return digits(value)
    return None


@dataclass(frozen=True)
class Identity:
    """What one item says about a user; any part may be missing."""

    phone: str | None = None
    user_id: str | None = None
    parent_user_id: str | None = None
    username: str | None = None
    name: str | None = None

    @property
    def known(self) -> bool:
        """It names someone: a phone number or a BSUID."""
        return self.phone is not None or self.user_id is not None

    @property
    def label(self) -> str:
        """How a message names its thread: the phone number, else the BSUID."""
        return self.phone or self.user_id or ""

    def fill(self, other: Identity | None) -> Identity:
        """This identity with what ``other`` adds where this one has nothing."""
        if other is None:
            return self
        return Identity(
            phone=self.phone or other.phone,
            user_id=self.user_id or other.user_id,
            parent_user_id=self.parent_user_id or other.parent_user_id,
            username=self.username or other.username,
            name=self.name or other.name,
        )


def _text(value: Any, limit: int) -> str | None:
    return clean_text(value, limit) if isinstance(value, str) else None


def of_thread(thread: dict[str, Any]) -> Identity:
    """A ``history`` thread's user: ``id`` and ``context``."""
    context = thread.get("context")
    if context is None:
        return Identity(phone=phone(thread.get("id")))
    context = context if isinstance(context, dict) else {}
    return Identity(
        phone=phone(thread.get("id")) or phone(context.get("wa_id")),
        user_id=bsuid(context.get("user_id")),
        parent_user_id=bsuid(context.get("parent_user_id")),
        username=_text(context.get("username"), 256),
    )


def of_contact_entry(entry: Any) -> Identity | None:
    """One ``contacts[]`` entry of an echo or late-media value, or None if it names nobody."""
    if not isinstance(entry, dict):
        return None
    profile = entry.get("profile")
    profile = profile if isinstance(profile, dict) else {}
    found = Identity(
        phone=phone(entry.get("wa_id")),
        user_id=bsuid(entry.get("user_id")),
        parent_user_id=bsuid(entry.get("parent_user_id")),
        username=_text(profile.get("username"), 256),
        name=_text(profile.get("name"), 512),
    )
    return found if found.known else None


def contacts_index(value: dict[str, Any]) -> dict[str, Identity]:
    """A value's ``contacts[]`` by each phone number and BSUID they name."""
    index: dict[str, Identity] = {}
    entries = value.get("contacts")
    for entry in entries if isinstance(entries, list) else []:
        found = of_contact_entry(entry)
        if found is None:
            continue
        for key in (found.phone, found.user_id):
            if key is not None:
                index[key] = found
    return index


def of_message(
    msg: dict[str, Any], business_number: str, contacts: dict[str, Identity] | None = None
) -> Identity:
    """The user a message was exchanged with: the recipient of a business-sent message (one
    ``from`` the business number, or carrying only ``to``/``to_user_id``), else the sender;
    completed from the value's ``contacts[]``."""
    sender = digits(msg.get("from"))
    outbound = sender is not None and sender == business_number
    if not outbound and sender is None and msg.get("from_user_id") is None:
        outbound = msg.get("to") is not None or msg.get("to_user_id") is not None
    side = "to" if outbound else "from"
    found = Identity(
        phone=phone(msg.get(side)),
        user_id=bsuid(msg.get(f"{side}_user_id")),
        parent_user_id=bsuid(msg.get(f"{side}_parent_user_id")),
    )
    index = contacts or {}
    for key in (found.user_id, found.phone):
        if key is not None and key in index:
            return found.fill(index[key])
    return found


def of_state_contact(contact: dict[str, Any]) -> Identity:
    """An ``smb_app_state_sync`` contact: ``phone_number``?, ``user_id``, parent, username."""
    return Identity(
        phone=phone(contact.get("phone_number")),
        user_id=bsuid(contact.get("user_id")),
        parent_user_id=bsuid(contact.get("parent_user_id")),
        username=_text(contact.get("username"), 256),
    )


def without_names(identity: Identity) -> Identity:
    """Only the identifiers (a removal's names say nothing)."""
    return replace(identity, username=None, name=None)
