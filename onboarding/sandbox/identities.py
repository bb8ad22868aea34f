"""Who the generated users are to Meta: business-scoped user ids, usernames, visible numbers.

Since April 2026 Meta names every WhatsApp user in webhooks by a business-scoped user id
(BSUID, ``user_id``): an ISO 3166 country code, a period and up to 128 alphanumerics
(``US.13491208655302741918``), stable for one user and one business portfolio, new when the user
changes number. A business that opted in also gets a parent BSUID (``US.ENT.…``,
``parent_user_id``). Users who adopt a username (``username``) may have **no phone number** in
webhooks: Meta omits it unless, for that business number, there was a message or call either
way in the last 30 days, or the user is in the business's contact book
(docs/meta.md#111-business-scoped-user-ids-and-usernames).

:class:`Directory` derives every user's :class:`Identity` from ``(profile.seed, waba_id)`` and
the user's number, so the same person has the same BSUID on every number of the business and
in every webhook:

* ``profile.adopter_share`` of the users are username adopters;
* of the adopters in the contact book, ``profile.username_contact_share`` were saved by
  username only: their contact carries no ``phone_number`` (and so does not reveal it), until a
  later contact change names both (:meth:`Directory.joined_contacts`);
* ``profile.parent_user_ids`` gives everyone a parent BSUID.

Whether a number is visible also depends on the history (the 30-day rule), which
:class:`~.history.HistoryGenerator` knows; it passes ``phone_visible`` to the shapes below.
"""

from __future__ import annotations

import hashlib
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from onboarding.sandbox.profile import HistoryProfile

RECENT_CONTACT_DAYS: Final = 30.0
"""An adopter's number shows if a message or call went either way within this many days."""
_COUNTRIES: Final = (("1", "US"), ("44", "GB"), ("55", "BR"), ("91", "IN"))
"""Calling-code prefixes of the generated numbers and their ISO 3166 country codes."""
_FALLBACK_COUNTRY: Final = "US"

Names = Callable[[int], tuple[str, str]]
"""``index -> (first name, last name)`` of a generated person."""
Digits = Callable[[int], str]
"""``index -> E.164 digits`` of a generated person."""


@dataclass(frozen=True, slots=True)
class Identity:
    """One generated person as Meta names them to one business."""

    index: int
    digits: str
    user_id: str
    name: str
    username: str | None = None
    parent_user_id: str | None = None
    saved_by_username: bool = False
    """In the contact book by username only: the contact names no phone number."""

    @property
    def adopter(self) -> bool:
        """Whether the person adopted a username (their number may be omitted)."""
        return self.username is not None

    def ids(self, prefix: str = "") -> dict[str, str]:
        """``{prefix}user_id`` and, if any, ``{prefix}parent_user_id`` (e.g. ``from_``)."""
        ids = {f"{prefix}user_id": self.user_id}
        if self.parent_user_id is not None:
            ids[f"{prefix}parent_user_id"] = self.parent_user_id
        return ids

    def contact_ids(self) -> dict[str, str]:
        """An ``smb_app_state_sync`` contact's ``user_id``, ``parent_user_id``?, ``username``?"""
        ids = self.ids()
        if self.username is not None:
            ids["username"] = self.username
        return ids

    def thread_context(self, phone_visible: bool) -> dict[str, str]:
        """A history thread's ``context``: ``wa_id``?, ``user_id``, ``parent_user_id``?,
        ``username``?"""
        context: dict[str, str] = {"wa_id": self.digits} if phone_visible else {}
        context.update(self.ids())
        if self.username is not None:
            context["username"] = self.username
        return context

    def contact(self, phone_visible: bool) -> dict[str, Any]:
        """A webhook ``contacts[]`` entry: ``profile`` {``name``, ``username``?}, ``wa_id``?,
        ``user_id``, ``parent_user_id``?"""
        profile: dict[str, str] = {"name": self.name}
        if self.username is not None:
            profile["username"] = self.username
        contact: dict[str, Any] = {"profile": profile}
        if phone_visible:
            contact["wa_id"] = self.digits
        contact.update(self.ids())
        return contact


class Directory:
    """Every generated person's identity towards one business, derived on demand."""

    def __init__(self, profile: HistoryProfile, waba_id: str, digits: Digits, names: Names) -> None:
        """Identities for the business owning ``waba_id``; ``digits`` and ``names`` say who
        person ``index`` is."""
        self.profile = profile
        self._key = f"{profile.seed}:{waba_id}"
        self._digits = digits
        self._names = names
        self._joined: tuple[int, ...] | None = None

    def _fraction(self, label: str, index: int) -> float:
        mix = hashlib.sha256(f"{self._key}:{label}:{index}".encode()).hexdigest()[:13]
        return int(mix, 16) / 16**13

    def user_id(self, digits: str, *, parent: bool = False) -> str:
        """The BSUID (or parent BSUID) of the user with number ``digits`` for this business."""
        country = next(
            (code for prefix, code in _COUNTRIES if digits.startswith(prefix)), _FALLBACK_COUNTRY
        )
        label = "parent-user-id" if parent else "user-id"
        mix = int(hashlib.sha256(f"{self._key}:{label}:{digits}".encode()).hexdigest()[:16], 16)
        number = f"{10**19 + mix % (9 * 10**19)}"
        return f"{country}.ENT.{number}" if parent else f"{country}.{number}"

    def is_adopter(self, index: int) -> bool:
        """Whether person ``index`` adopted a username."""
        return self._fraction("adopter", index) < self.profile.adopter_share

    def saved_by_username(self, index: int) -> bool:
        """Whether contact ``index`` is in the contact book by username only (no number)."""
        return (
            index < self.profile.contacts
            and self.is_adopter(index)
            and self._fraction("saved-by-username", index) < self.profile.username_contact_share
        )

    def identity(self, index: int, digits: str | None = None) -> Identity:
        """Person ``index`` (with number ``digits`` if not the generated one)."""
        digits = digits or self._digits(index)
        first, last = self._names(index)
        username = None
        if self.is_adopter(index):
            username = _username(first, last, int(self._fraction("username", index) * 1000))
        return Identity(
            index=index,
            digits=digits,
            user_id=self.user_id(digits),
            name=f"{first} {last}",
            username=username,
            parent_user_id=(
                self.user_id(digits, parent=True) if self.profile.parent_user_ids else None
            ),
            saved_by_username=self.saved_by_username(index),
        )

    def in_contact_book(self, index: int) -> bool:
        """Whether the contact book holds person ``index``'s number (so Meta shows it)."""
        return index < self.profile.contacts and not self.saved_by_username(index)

    def joined_contacts(self) -> tuple[int, ...]:
        """Contacts saved by username only that later get their number, in index order
        (``profile.username_join_share`` of them; the others stay known by BSUID alone)."""
        if self._joined is None:
            self._joined = tuple(
                index
                for index in range(self.profile.contacts)
                if self.saved_by_username(index)
                and self._fraction("joined", index) < self.profile.username_join_share
            )
        return self._joined


def _username(first: str, last: str, number: int) -> str:
    """A WhatsApp-style username: lowercase ASCII letters, digits and periods."""
    ascii_name = unicodedata.normalize("NFKD", f"{first}.{last}").encode("ascii", "ignore")
    return f"{ascii_name.decode().lower()}{number:03d}"
