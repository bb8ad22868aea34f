"""Generated contacts of one number: who they are, the initial sync, and later edits and removes.

A :class:`ContactGenerator` derives every contact from ``(profile.seed, phone_number_id)``:
contact ``i`` has stable digits (also the ids of 1:1 history threads) and names, the initial
``smb_app_state_sync`` carries them in chunks, and a :class:`ContactsPlan` says how many are
edited (``add`` with a new name and a later timestamp) or removed afterwards, and how many of
those changes are delivered ahead of the initial contacts they supersede.

Every contact carries the user's business-scoped ``user_id`` (and ``parent_user_id``,
``username`` when they have one, :mod:`.identities`). Contacts saved by username only carry no
``phone_number``; each later gets a *join*: an ``add`` naming both the number and the user id.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import Any, Final

from onboarding.sandbox.identities import Directory
from onboarding.sandbox.payloads import contact_add_item, contact_remove_item
from onboarding.sandbox.profile import SECONDS_PER_DAY, HistoryProfile, NumberContext

_FIRST_NAMES: Final = (
    "Pablo", "Aisha", "Wei", "María", "John", "Fatima", "Luca", "Priya", "Kenji", "Amara",
    "Sofia", "Omar", "Chloé", "Mateo", "Ananya", "Yusuf", "Elena", "Tomás", "Zanele", "Ivan",
)  # fmt: skip
_LAST_NAMES: Final = (
    "Morales", "Khan", "Chen", "García", "Smith", "Haddad", "Rossi", "Patel", "Sato", "Okafor",
    "Novak", "Fischer", "Dubois", "Silva", "Iyer", "Yilmaz", "Petrova", "Müller", "Dlamini",
)  # fmt: skip
_CONTACT_PREFIXES: Final = (("1650", 7), ("447700", 6), ("55119", 8), ("9198", 8))
"""Country-plus-area prefixes of generated contacts, with the digits each leaves free."""
_FALLBACK_PREFIX: Final = "1408"


@dataclass(frozen=True, slots=True)
class ContactsPlan:
    """How the contacts sync is cut into deliveries."""

    contacts: int
    chunk_size: int
    edits: int
    removes: int
    early_changes: int
    """Changes delivered before the initial contacts (out of order)."""
    joins: int = 0
    """Contacts saved by username only that later get their phone number (after the others)."""

    @property
    def initial_chunks(self) -> int:
        """Deliveries carrying the initial ``add`` of every contact."""
        return -(-self.contacts // self.chunk_size)

    @property
    def changes(self) -> int:
        """Edits, removes and joins, one delivery each."""
        return self.edits + self.removes + self.joins


class ContactGenerator:
    """Generates one number's contacts and their changes from a profile."""

    def __init__(
        self,
        profile: HistoryProfile,
        context: NumberContext,
        key: str,
        tag: str,
        permutation: tuple[int, int],
    ) -> None:
        """Contacts of ``context``'s number; ``key`` and ``tag`` seed them, ``permutation``
        (multiplier, offset) picks which contacts the changes touch."""
        self.profile = profile
        self.context = context
        self._key = key
        self._tag = tag
        self._contact_mult, self._contact_add = permutation
        self.directory = Directory(profile, context.waba_id, self.contact_digits, self.names)

    def contact_digits(self, index: int) -> str:
        """E.164 digits of generated contact ``index`` (also used for non-contact threads)."""
        prefix, free = _CONTACT_PREFIXES[index % len(_CONTACT_PREFIXES)]
        inner = index // len(_CONTACT_PREFIXES)
        salt = int(self._tag, 16) + 104_729 * (index % len(_CONTACT_PREFIXES))
        digits = f"{prefix}{(inner * 7_654_321 + salt) % 10**free:0{free}d}"
        if digits == self.context.display_phone_number:
            digits = f"{_FALLBACK_PREFIX}{digits[-7:]}"
        return digits

    def contact(self, index: int) -> dict[str, str]:
        """Generated contact ``index`` as ``{full_name, first_name, phone_number}``."""
        first, last = self._names(index, 0)
        return {
            "full_name": f"{first} {last}",
            "first_name": first,
            "phone_number": self.contact_digits(index),
        }

    def names(self, index: int) -> tuple[str, str]:
        """First and last name of generated person ``index``."""
        return self._names(index, 0)

    def _names(self, index: int, revision: int) -> tuple[str, str]:
        mix = int(
            hashlib.sha256(f"{self._key}:name:{index}:{revision}".encode()).hexdigest()[:8], 16
        )
        return _FIRST_NAMES[mix % len(_FIRST_NAMES)], _LAST_NAMES[(mix >> 8) % len(_LAST_NAMES)]

    def contacts_plan(self) -> ContactsPlan:
        """How many contacts, edits and removes, and how many changes come early."""
        profile = self.profile
        edits = round(profile.contacts * profile.contact_edit_share)
        removes = min(
            round(profile.contacts * profile.contact_remove_share), profile.contacts - edits
        )
        joins = len(self.directory.joined_contacts())
        early = round((edits + removes + joins) * profile.contact_out_of_order_share)
        return ContactsPlan(profile.contacts, profile.chunk_size, edits, removes, early, joins)

    def contact_items(self, chunk_index: int) -> list[dict[str, Any]]:
        """The ``add`` items of initial contacts chunk ``chunk_index`` (0-based)."""
        size = self.profile.chunk_size
        start = chunk_index * size
        end = min(start + size, self.profile.contacts)
        items = []
        for index in range(start, end):
            contact = self.contact(index)
            mix = int(
                hashlib.sha256(f"{self._key}:contact-age:{index}".encode()).hexdigest()[:8], 16
            )
            age = (mix / 0xFFFFFFFF) * self.profile.days * SECONDS_PER_DAY
            timestamp = math.floor(self.context.onboarded_at - max(age, 1.0))
            person = self.directory.identity(index)
            phone = None if person.saved_by_username else contact["phone_number"]
            items.append(
                contact_add_item(
                    phone,
                    contact["full_name"],
                    contact["first_name"],
                    timestamp,
                    person.contact_ids(),
                )
            )
        return items

    def contact_change(self, change: int, base_time: float) -> dict[str, Any]:
        """Change ``change`` (0-based): edits (new name, later timestamp), removes, then joins
        (a contact saved by username only, now with its phone number)."""
        plan = self.contacts_plan()
        if not 0 <= change < plan.changes:
            raise ValueError(f"no contact change {change}")
        timestamp = math.floor(base_time) + 60 * (change + 1)
        if change >= plan.edits + plan.removes:
            index = self.directory.joined_contacts()[change - plan.edits - plan.removes]
            person = self.directory.identity(index)
            contact = self.contact(index)
            return contact_add_item(
                person.digits,
                contact["full_name"],
                contact["first_name"],
                timestamp,
                person.contact_ids(),
            )
        index = (self._contact_mult * change + self._contact_add) % max(plan.contacts, 1)
        person = self.directory.identity(index)
        phone = None if person.saved_by_username else person.digits
        if change < plan.edits:
            edited = self.edited_contact(index, revision=change + 1)
            return contact_add_item(
                phone, edited["full_name"], edited["first_name"], timestamp, person.contact_ids()
            )
        return contact_remove_item(phone, timestamp, person.ids())

    def edited_contact(self, index: int, revision: int) -> dict[str, str]:
        """Contact ``index`` renamed: same phone and last name, another first name."""
        original = self.contact(index)
        first, _ = self._names(index, revision)
        if first == original["first_name"]:
            first = _FIRST_NAMES[(_FIRST_NAMES.index(first) + 1) % len(_FIRST_NAMES)]
        last = original["full_name"].split(" ", 1)[1]
        return {
            "full_name": f"{first} {last}",
            "first_name": first,
            "phone_number": original["phone_number"],
        }
