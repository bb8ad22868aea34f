"""Generated contacts of one number: who they are, the initial sync, and later edits and removes.

A :class:`ContactGenerator` derives every contact from ``(profile.seed, phone_number_id)``:
contact ``i`` has stable digits (also the ids of 1:1 history threads) and names, the initial
``smb_app_state_sync`` carries them in chunks, and a :class:`ContactsPlan` says how many are
edited (``add`` with a new name and a later timestamp) or removed afterwards, and how many of
those changes are delivered ahead of the initial contacts they supersede.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import Any, Final

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

    @property
    def initial_chunks(self) -> int:
        """Deliveries carrying the initial ``add`` of every contact."""
        return -(-self.contacts // self.chunk_size)

    @property
    def changes(self) -> int:
        """Edits plus removes, one delivery each."""
        return self.edits + self.removes


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
        early = round((edits + removes) * profile.contact_out_of_order_share)
        return ContactsPlan(profile.contacts, profile.chunk_size, edits, removes, early)

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
            items.append(
                contact_add_item(
                    contact["phone_number"], contact["full_name"], contact["first_name"], timestamp
                )
            )
        return items

    def contact_change(self, change: int, base_time: float) -> dict[str, Any]:
        """Change ``change`` (0-based): an edit (new name, later timestamp), then removes."""
        plan = self.contacts_plan()
        if not 0 <= change < plan.changes:
            raise ValueError(f"no contact change {change}")
        index = (self._contact_mult * change + self._contact_add) % max(plan.contacts, 1)
        timestamp = math.floor(base_time) + 60 * (change + 1)
        phone = self.contact_digits(index)
        if change < plan.edits:
            edited = self.edited_contact(index, revision=change + 1)
            return contact_add_item(phone, edited["full_name"], edited["first_name"], timestamp)
        return contact_remove_item(phone, timestamp)

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
