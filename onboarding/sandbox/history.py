"""Generated business data behind the sandbox's webhooks: chat history, media, echoes, contacts.

A :class:`HistoryGenerator` turns a :class:`HistoryProfile` (the knobs) and a
:class:`NumberContext` (the onboarded number) into the payloads Meta pushes after
``smb_app_data`` is accepted (docs/meta.md#4-webhook-payloads). Everything is a pure function of
``(profile.seed, phone_number_id)`` and of the number's ``onboarded_at``: the same inputs give
byte-identical payloads, in any order, on any machine.

Nothing is built ahead of time. :class:`HistoryPlan` is arithmetic (message and chunk counts
per phase), and :meth:`HistoryGenerator.chunk` builds one chunk from its own RNG, so a
1,000,000-message history is planned in microseconds and generated one chunk at a time, in
order or at random (the delivery plan shuffles chunks without generating the others).

How the history is laid out:

* Messages have a global index ``g`` in ``[0, total_messages)``, newest first. Phase 0 takes
  the first ``phase_messages[0]`` indices (days 0-1 before onboarding), phase 1 the next
  (days 1-90), phase 2 the rest (days 90-180, then the ``beyond_window`` messages older than
  180 days that Meta would never send; coexist must drop them). ``phase_weights`` shares the
  in-window messages between the phases; empty phases (``days`` < 90, say) send nothing.
* Each phase is cut into chunks of ``chunk_size`` messages, ``chunk_order`` counting from 1
  per phase; ``progress`` is ``100 * k // total_chunks`` for the k-th chunk in
  ``(phase, chunk_order)`` order, so it reaches 100 exactly once, on the last chunk.
* Messages come in bursts of :data:`BURST` per thread; threads are visited in a seeded
  permutation, so each thread gets about ``messages_per_thread`` messages spread over the
  whole period, and direction alternates inside each thread (business, user, business...).
  A ``dormant_thread_share`` of the threads (the last in that order) have no message in the
  30 days before onboarding: their bursts there go to the other threads.
  A ``group_thread_share`` of threads have a group id (``120363...@g.us``) instead of a phone
  number: Meta syncs no groups, so coexist must drop them.
* Every 1:1 thread names its user in ``context`` (``wa_id``?, ``user_id``,
  ``parent_user_id``?, ``username``?, :mod:`.identities`). A username adopter's number is
  omitted (no ``threads[].id``, no ``wa_id``, no ``from`` on their messages, no ``to`` on the
  business's, only ``from_user_id``) unless they are in the contact book by number or the
  thread has a message within 30 days before onboarding: Meta applies that rule when the sync
  is requested (docs/meta.md#111-business-scoped-user-ids-and-usernames).
* Media is always a ``media_placeholder`` in the history. For media sent within 14 days of
  onboarding, :meth:`HistoryGenerator.chunk` with ``with_media=True`` also returns the typed
  late-media message (same wamid: ``value.messages[]`` for what users sent,
  ``value.message_echoes[]`` for what the business sent, the users in ``value.contacts[]``)
  and a :class:`MediaItem` whose bytes
  the sandbox serves (:meth:`MediaItem.content`, regenerated on demand, never stored).
  ``sha256`` is lowercase hex of those bytes, as Meta's example suggests
  (docs/meta.md#44-history-media-placeholders-and-late-media);
  payloads forwarded from real webhooks often carry base64 instead
  (``sha256_encoding="base64"``).

The knobs, the number and the plan are in :mod:`.profile`, the arithmetic of the layout in
:mod:`.layout`, who the users are (BSUIDs, usernames, visible numbers) in :mod:`.identities`,
the contacts in :mod:`.contacts`, media bytes in :mod:`.media_items` and the shapes of the
webhook values in :mod:`.payloads`.
"""

from __future__ import annotations

import base64
import hashlib
import random
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final

from onboarding.sandbox.contacts import ContactGenerator, ContactsPlan
from onboarding.sandbox.identities import Directory, Identity
from onboarding.sandbox.layout import (
    MEDIA_FOLLOWUP_DAYS,
    HistoryLayout,
    affine,
)
from onboarding.sandbox.media_items import (
    MEDIA_FORMATS,
    MEDIA_KINDS,
    MediaItem,
    media_bytes,
    media_digest,
)
from onboarding.sandbox.payloads import (
    declined_value,
    echoes_value,
    followup_value,
    history_value,
    state_sync_value,
)
from onboarding.sandbox.profile import SECONDS_PER_DAY, HistoryProfile, NumberContext

HISTORY_STATUSES: Final = ("DELIVERED", "ERROR", "PENDING", "PLAYED", "READ", "SENT")
OTHER_TYPES: Final = ("reaction", "location")
GROUP_SUFFIX: Final = "@g.us"
_PEOPLE_CACHE: Final = 4096
"""Identities kept between chunks (each costs a few hashes to derive)."""

_MEDIA_WEIGHTS: Final = (0.55, 0.2, 0.15, 0.1)
_OUTGOING_STATUSES: Final = ("READ", "DELIVERED", "SENT", "PLAYED", "ERROR", "PENDING")
_OUTGOING_WEIGHTS: Final = (0.55, 0.25, 0.1, 0.04, 0.03, 0.03)
_INCOMING_STATUSES: Final = ("READ", "DELIVERED", "PLAYED")
_INCOMING_WEIGHTS: Final = (0.85, 0.1, 0.05)
_BUSINESS_TEXTS: Final = (
    "Your order #{n} ships tomorrow",
    "Thanks for your order #{n}!",
    "We open at 9am, see you then",
    "Your appointment is confirmed for {day} at {hour}:00",
    "Here is the quote you asked for",
    "Can I help with anything else?",
    "Yes, we have it in stock 👍",
    "Delivery is free above $50",
)
_USER_TEXTS: Final = (
    "Great, thanks",
    "Is this still available?",
    "What time do you close today?",
    "Can I change order #{n}?",
    "Perfect 🙏",
    "Do you deliver on {day}?",
    "How much is shipping?",
    "Ok, see you at {hour}",
)
_DAYS_OF_WEEK: Final = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday")
_CAPTIONS: Final = ("Invoice", "Here it is", "New arrivals", "Receipt", "Menu", "")
_EMOJIS: Final = ("👍", "❤️", "😂", "🙏", "😮", "🎉")
_PLACES: Final = (
    (37.483872, -122.148358, "Lucky Shrub", "1 Hacker Way, Menlo Park, CA 94025"),
    (51.507351, -0.127758, "Covent Garden Market", "41 The Market, London WC2E 8RF"),
    (-23.561684, -46.655981, "Avenida Paulista", "Av. Paulista, 1578, São Paulo"),
    (19.076090, 72.877426, "Crawford Market", "Lokmanya Tilak Marg, Mumbai 400001"),
)


@dataclass(frozen=True, slots=True)
class GeneratedChunk:
    """One ``history`` webhook's worth of messages, grouped by thread."""

    phase: int
    chunk_order: int
    progress: int
    threads: tuple[dict[str, Any], ...]
    message_count: int
    media: tuple[MediaItem, ...] = ()
    """Media within 14 days of onboarding (only with ``with_media=True``)."""
    media_messages: tuple[dict[str, Any], ...] = ()
    """The typed late media users sent (``value.messages[]``)."""
    media_echoes: tuple[dict[str, Any], ...] = ()
    """The typed late media the business sent (``value.message_echoes[]``)."""
    media_contacts: tuple[dict[str, Any], ...] = ()
    """The users of :attr:`media_messages` and :attr:`media_echoes` (``value.contacts[]``)."""
    slots: tuple[int, ...] = ()
    """The thread slot of each of :attr:`threads`, in the same order."""

    def messages(self) -> Iterator[dict[str, Any]]:
        """Yield every message of the chunk, thread by thread."""
        for thread in self.threads:
            yield from thread["messages"]


class HistoryGenerator:
    """Generates one number's history, media, contacts and echoes from a profile."""

    def __init__(self, profile: HistoryProfile, context: NumberContext) -> None:
        """Plan the history of ``context``'s number; nothing is generated yet."""
        self.profile = profile
        self.context = context
        self._key = f"{profile.seed}:{context.phone_number_id}"
        self._tag = hashlib.sha256(self._key.encode()).hexdigest()[:8].upper()
        setup = random.Random(f"{self._key}:setup")
        self.layout = HistoryLayout(profile, setup)
        self.plan = self.layout.plan
        self._contacts = ContactGenerator(
            profile, context, self._key, self._tag, affine(max(profile.contacts, 1), setup)
        )
        self.directory: Directory = self._contacts.directory
        self._people: dict[int, tuple[Identity, bool]] = {}
        self._echo_contacts: dict[str, dict[str, Any]] = {}

    # ------------------------------------------------------------------ identities

    def contact_digits(self, index: int) -> str:
        """E.164 digits of generated contact ``index`` (also used for non-contact threads)."""
        return self._contacts.contact_digits(index)

    def contact(self, index: int) -> dict[str, str]:
        """Generated contact ``index`` as ``{full_name, first_name, phone_number}``."""
        return self._contacts.contact(index)

    def _group_id(self, slot: int) -> str:
        mix = int(hashlib.sha256(f"{self._key}:group:{slot}".encode()).hexdigest()[:12], 16)
        return f"120363{mix % 10**12:012d}{GROUP_SUFFIX}"

    def thread_id(self, slot: int) -> str:
        """The ``threads[].id`` of thread slot ``slot``: a user's digits or a group id."""
        if self.layout.is_group(slot):
            return self._group_id(slot)
        return self.contact_digits(slot)

    def person(self, slot: int) -> tuple[Identity, bool] | None:
        """The user of 1:1 thread ``slot`` and whether Meta shows their number (None: a group)."""
        if self.layout.is_group(slot):
            return None
        found = self._people.get(slot)
        if found is None:
            identity = self.directory.identity(slot)
            visible = (
                not identity.adopter
                or self.directory.in_contact_book(slot)
                or self.layout.recent(slot)
            )
            if len(self._people) >= _PEOPLE_CACHE:
                self._people.clear()
            found = self._people[slot] = (identity, visible)
        return found

    def _chat(self, slot: int) -> str:
        """What a wamid names as the chat: the group, the user's number, or (hidden) BSUID."""
        person = self.person(slot)
        if person is None:
            return self.thread_id(slot).removesuffix(GROUP_SUFFIX)
        identity, visible = person
        return identity.digits if visible else identity.user_id

    def wamid(self, index: int, chat: str, outgoing: bool) -> str:
        """A wamid shaped like Meta's: base64 of a record naming the chat and a unique id."""
        chat_bytes = chat.encode()
        direction = b"\x11" if outgoing else b"\x12"
        raw = b"".join(
            (
                b"\x1c\x18",
                bytes([len(chat_bytes)]),
                chat_bytes,
                b"\x15\x02\x00",
                direction,
                b"\x18\x14",
                f"{self._tag}{index:012X}".encode(),
                b"\x00",
            )
        )
        return "wamid." + base64.b64encode(raw).decode()

    def _wamid_of(self, index: int) -> str:
        return self.wamid(index, self._chat(self.layout.slot(index)), self.layout.outgoing(index))

    def media_id(self, index: int) -> str:
        """A 16-digit media id for message ``index``."""
        mix = int(hashlib.sha256(f"{self._key}:media-id:{index}".encode()).hexdigest()[:15], 16)
        return str(10**15 + mix % (9 * 10**15))

    # ------------------------------------------------------------------ history

    def chunk(self, phase: int, chunk_order: int, *, with_media: bool = False) -> GeneratedChunk:
        """Build chunk ``chunk_order`` of ``phase`` (messages oldest first in each thread).

        ``with_media`` also builds the 14-day late-media webhooks (hashing their bytes).
        """
        plan = self.plan
        progress = plan.progress(phase, chunk_order)
        start = (chunk_order - 1) * plan.chunk_size
        end = min(start + plan.chunk_size, plan.phase_messages[phase])
        rng = random.Random(f"{self._key}:chunk:{phase}:{chunk_order}")
        threads: dict[int, list[dict[str, Any]]] = {}
        media: list[MediaItem] = []
        typed: dict[str, list[dict[str, Any]]] = {"messages": [], "echoes": []}
        contacts: dict[int, dict[str, Any]] = {}
        followup_after = self.context.onboarded_at - MEDIA_FOLLOWUP_DAYS * SECONDS_PER_DAY
        for position in range(start, end):
            index = self.layout.offsets[phase] + position
            timestamp = self.layout.timestamp(phase, position, self.context.onboarded_at, rng)
            slot = self.layout.slot(index)
            message, medium = self._message(index, slot, timestamp, rng)
            threads.setdefault(slot, []).append(message)
            if medium is not None and with_media and timestamp >= followup_after:
                item, kind, late = self._followup(index, slot, message, medium)
                media.append(item)
                typed[kind].append(late)
                person = self.person(slot)
                if person is not None and slot not in contacts:
                    contacts[slot] = person[0].contact(person[1])
        return GeneratedChunk(
            phase=phase,
            chunk_order=chunk_order,
            progress=progress,
            threads=tuple(self._thread(slot, messages) for slot, messages in threads.items()),
            message_count=end - start,
            media=tuple(media),
            media_messages=tuple(typed["messages"]),
            media_echoes=tuple(typed["echoes"]),
            media_contacts=tuple(contacts.values()),
            slots=tuple(threads),
        )

    def _thread(self, slot: int, messages: list[dict[str, Any]]) -> dict[str, Any]:
        """A ``threads[]`` entry: ``id`` (when the number shows), ``context``, newest first."""
        person = self.person(slot)
        if person is None:
            return {"id": self.thread_id(slot), "messages": messages[::-1]}
        identity, visible = person
        thread: dict[str, Any] = {"id": identity.digits} if visible else {}
        thread["context"] = identity.thread_context(visible)
        thread["messages"] = messages[::-1]
        return thread

    def chunks(self, *, with_media: bool = False) -> Iterator[GeneratedChunk]:
        """Yield every chunk in ``(phase, chunk_order)`` order, one at a time."""
        for phase, chunk_order in self.plan.chunk_keys():
            yield self.chunk(phase, chunk_order, with_media=with_media)

    def messages(self) -> Iterator[tuple[str, dict[str, Any]]]:
        """Yield ``(thread, message)`` for the whole history, chunk by chunk; ``thread`` is
        ``threads[].id``, or the user's BSUID when Meta omits their number."""
        for chunk in self.chunks():
            for thread in chunk.threads:
                name = thread.get("id") or thread["context"]["user_id"]
                for message in thread["messages"]:
                    yield name, message

    def may_have_followups(self, phase: int, chunk_order: int) -> bool:
        """Whether the chunk reaches into the 14-day media window (decided without building)."""
        return self.layout.may_have_followups(phase, chunk_order)

    def _message(
        self, index: int, slot: int, timestamp: int, rng: random.Random
    ) -> tuple[dict[str, Any], str | None]:
        """One history message and, for media, its kind."""
        profile = self.profile
        business = self.context.display_phone_number
        outgoing = self.layout.outgoing(index)
        person = self.person(slot)
        message: dict[str, Any] = {}
        if person is None:  # a group: Meta syncs none, coexist must drop it
            participant = self.contact_digits((slot * 31 + index) % max(profile.contacts, 1))
            message["from"] = business if outgoing else participant
            if outgoing:
                message["to"] = self.thread_id(slot)
        elif outgoing:
            message["from"] = business
            if person[1]:
                message["to"] = person[0].digits
        else:
            if person[1]:
                message["from"] = person[0].digits
            message.update(person[0].ids("from_"))
        message["id"] = self.wamid(index, self._chat(slot), outgoing)
        message["timestamp"] = str(timestamp)
        draw = rng.random()
        medium: str | None = None
        if draw < profile.media_share:
            message["type"] = "media_placeholder"
            medium = rng.choices(MEDIA_KINDS, _MEDIA_WEIGHTS)[0]
        elif draw < profile.media_share + profile.other_types_share:
            other = OTHER_TYPES[rng.randrange(len(OTHER_TYPES))]
            target = self.layout.previous_in_thread(index)
            if other == "reaction" and target is not None:
                message["type"] = "reaction"
                message["reaction"] = {
                    "message_id": self._wamid_of(target),
                    "emoji": _EMOJIS[rng.randrange(len(_EMOJIS))],
                }
            else:
                latitude, longitude, name, address = _PLACES[rng.randrange(len(_PLACES))]
                message["type"] = "location"
                message["location"] = {
                    "latitude": latitude,
                    "longitude": longitude,
                    "name": name,
                    "address": address,
                }
        else:
            message["type"] = "text"
            message["text"] = {"body": self._text(outgoing, rng)}
        if outgoing:
            status = rng.choices(_OUTGOING_STATUSES, _OUTGOING_WEIGHTS)[0]
        else:
            status = rng.choices(_INCOMING_STATUSES, _INCOMING_WEIGHTS)[0]
        if status == "PLAYED" and medium is None:
            status = "READ"
        message["history_context"] = {"status": status}
        return message, medium

    @staticmethod
    def _text(outgoing: bool, rng: random.Random) -> str:
        template = rng.choice(_BUSINESS_TEXTS if outgoing else _USER_TEXTS)
        return template.format(
            n=rng.randrange(1000, 10000),
            day=rng.choice(_DAYS_OF_WEEK),
            hour=rng.randrange(8, 19),
        )

    def _followup(
        self, index: int, slot: int, placeholder: Mapping[str, Any], kind: str
    ) -> tuple[MediaItem, str, dict[str, Any]]:
        """The media item and typed late media of a recent media placeholder, and where the
        typed message goes: ``messages`` (sent by a user) or ``echoes`` (by the business)."""
        rng = random.Random(f"{self._key}:medium:{index}")
        mime_type = MEDIA_FORMATS[kind][0]
        size = rng.randrange(1024, 8193)
        content_key = f"{self._key}:media-bytes:{index}"
        digest = media_digest(
            media_bytes(content_key, size, mime_type), self.profile.sha256_encoding
        )
        item = MediaItem(
            media_id=self.media_id(index),
            wamid=str(placeholder["id"]),
            kind=kind,
            mime_type=mime_type,
            sha256=digest,
            file_size=size,
            content_key=content_key,
        )
        body: dict[str, Any] = {}
        caption = rng.choice(_CAPTIONS)
        if kind == "document":
            body["filename"] = f"invoice-{rng.randrange(1000, 10000)}.pdf"
        if caption and kind in ("image", "video", "document"):
            body["caption"] = caption
        body.update({"mime_type": mime_type, "sha256": digest, "id": item.media_id})
        person = self.person(slot)
        typed = self._addressing(placeholder, person)
        typed.update(
            {
                "id": placeholder["id"],
                "timestamp": placeholder["timestamp"],
                "type": kind,
                kind: body,
            }
        )
        where = "echoes" if person is not None and self.layout.outgoing(index) else "messages"
        return item, where, typed

    def _addressing(
        self, message: Mapping[str, Any], person: tuple[Identity, bool] | None
    ) -> dict[str, Any]:
        """The sender and recipient fields of a late medium or an echo of ``message``.

        A user's message keeps ``from``? and ``from_user_id``; the business's becomes an echo
        with ``from``, ``to``? and ``to_user_id`` (a group's keeps what it had).
        """
        fields = {key: message[key] for key in ("from", "to") if key in message}
        if person is None:
            return fields
        identity, _ = person
        if message.get("from") == self.context.display_phone_number:
            fields.update(identity.ids("to_"))
        else:
            fields.pop("to", None)
            fields.update(identity.ids("from_"))
        return fields

    # ------------------------------------------------------------------ payload values

    def history_value(self, chunk: GeneratedChunk) -> dict[str, Any]:
        """The ``value`` of a ``history`` webhook carrying ``chunk``'s threads."""
        return history_value(
            self.context.metadata(), chunk.phase, chunk.chunk_order, chunk.progress, chunk.threads
        )

    def followup_value(
        self,
        messages: Iterable[dict[str, Any]],
        echoes: Iterable[dict[str, Any]] = (),
        contacts: Iterable[dict[str, Any]] = (),
    ) -> dict[str, Any]:
        """The ``value`` of a ``history`` late media: ``contacts[]``, the users' media in
        ``messages[]``, the business's in ``message_echoes[]``."""
        return followup_value(self.context.metadata(), messages, echoes, contacts)

    def media_value(self, chunk: GeneratedChunk) -> dict[str, Any]:
        """The ``value`` of the late-media webhook of ``chunk`` (built ``with_media``)."""
        return self.followup_value(chunk.media_messages, chunk.media_echoes, chunk.media_contacts)

    def declined_value(self) -> dict[str, Any]:
        """The ``value`` of the ``history`` webhook telling that sharing was declined."""
        return declined_value(self.context.metadata())

    def state_sync_value(self, items: list[dict[str, Any]]) -> dict[str, Any]:
        """The ``value`` of an ``smb_app_state_sync`` webhook."""
        return state_sync_value(self.context.metadata(), items)

    def echoes_value(self, items: list[dict[str, Any]]) -> dict[str, Any]:
        """The ``value`` of an ``smb_message_echoes`` webhook, with the users it writes to in
        ``contacts[]`` (those of echoes this generator made)."""
        contacts: dict[str, dict[str, Any]] = {}
        for item in items:
            contact = self._echo_contacts.get(str(item.get("id")))
            if contact is not None:
                contacts.setdefault(contact["user_id"], contact)
        return echoes_value(self.context.metadata(), items, contacts.values())

    # ------------------------------------------------------------------ contacts

    def contacts_plan(self) -> ContactsPlan:
        """How many contacts, edits and removes, and how many changes come early."""
        return self._contacts.contacts_plan()

    def contact_items(self, chunk_index: int) -> list[dict[str, Any]]:
        """The ``add`` items of initial contacts chunk ``chunk_index`` (0-based)."""
        return self._contacts.contact_items(chunk_index)

    def contact_change(self, change: int, base_time: float) -> dict[str, Any]:
        """Change ``change`` (0-based): an edit (new name, later timestamp), then removes."""
        return self._contacts.contact_change(change, base_time)

    def edited_contact(self, index: int, revision: int) -> dict[str, str]:
        """Contact ``index`` renamed: same phone and last name, another first name."""
        return self._contacts.edited_contact(index, revision)

    # ------------------------------------------------------------------ echoes

    def echo(self, sequence: int, timestamp: int) -> dict[str, Any]:
        """A new echo ``sequence`` (0-based): a text the business sent from the app."""
        rng = random.Random(f"{self._key}:echo:{sequence}")
        one_to_one = self.layout.threads - self.layout.group_threads
        slot = rng.randrange(one_to_one) if one_to_one > 0 else 0
        index = self.plan.total_messages + sequence
        person = self.person(slot)
        item = self._addressing(self._echo_target(slot), person)
        item.update(
            {
                "id": self.wamid(index, self._chat(slot), outgoing=True),
                "timestamp": str(timestamp),
                "type": "text",
                "text": {"body": self._text(True, rng)},
            }
        )
        self._remember_echo(item, person)
        return item

    def _echo_target(self, slot: int) -> dict[str, str]:
        """``from`` the business ``to`` the user of ``slot`` (when their number shows)."""
        person = self.person(slot)
        target = {"from": self.context.display_phone_number}
        if person is None:
            target["to"] = self.contact_digits(slot)
        elif person[1]:
            target["to"] = person[0].digits
        return target

    def _remember_echo(self, item: dict[str, Any], person: tuple[Identity, bool] | None) -> None:
        if person is not None:
            self._echo_contacts[str(item["id"])] = person[0].contact(person[1])

    def history_echoes(self, count: int) -> list[dict[str, Any]]:
        """Up to ``count`` echoes repeating business-sent 1:1 history texts (same wamids).

        Scans the newest chunks first and stops as soon as it has ``count``.
        """
        found: list[dict[str, Any]] = []
        if count <= 0:
            return found
        business = self.context.display_phone_number
        for chunk in self.chunks():
            for slot, thread in zip(chunk.slots, chunk.threads, strict=True):
                person = self.person(slot)
                if person is None:
                    continue
                for message in reversed(thread["messages"]):
                    if message.get("from") != business or message["type"] != "text":
                        continue
                    item = self._addressing(message, person)
                    item.update(
                        {
                            "id": message["id"],
                            "timestamp": message["timestamp"],
                            "type": "text",
                            "text": dict(message["text"]),
                        }
                    )
                    self._remember_echo(item, person)
                    found.append(item)
                    if len(found) == count:
                        return found
        return found
