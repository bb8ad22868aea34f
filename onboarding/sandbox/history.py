"""Generated business data behind the sandbox's webhooks: chat history, media, contacts, echoes.

A :class:`HistoryGenerator` turns a :class:`HistoryProfile` (the knobs) and a
:class:`NumberContext` (the onboarded number) into the payloads Meta pushes after
``smb_app_data`` is accepted (meta-platform.md §4.1-4.3). Everything is a pure function of
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
  A ``group_thread_share`` of threads have a group id (``120363...@g.us``) instead of a phone
  number: Meta syncs no groups, so coexist must drop them.
* Media is always a ``media_placeholder`` in the history. For media sent within 14 days of
  onboarding, :meth:`HistoryGenerator.chunk` with ``with_media=True`` also returns the typed
  follow-up message (``value.messages[]``, same wamid) and a :class:`MediaItem` whose bytes
  the sandbox serves (:meth:`MediaItem.content`, regenerated on demand, never stored).
  ``sha256`` is lowercase hex of those bytes, as meta-platform.md §4.1's example suggests;
  payloads forwarded from real webhooks often carry base64 instead
  (``sha256_encoding="base64"``).
"""

from __future__ import annotations

import base64
import hashlib
import math
import random
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any, Final, Literal

SECONDS_PER_DAY: Final = 86_400
HISTORY_WINDOW_DAYS: Final = 180.0
"""Meta syncs the 180 days before onboarding; older messages are the generator's extras."""
MEDIA_FOLLOWUP_DAYS: Final = 14.0
"""Media sent within this many days of onboarding gets a follow-up with the media id."""
PHASE_DAYS: Final = ((0.0, 1.0), (1.0, 90.0), (90.0, 180.0))
"""Phase 0, 1 and 2 as days before onboarding (meta-platform.md §4.1)."""
HISTORY_STATUSES: Final = ("DELIVERED", "ERROR", "PENDING", "PLAYED", "READ", "SENT")
MEDIA_KINDS: Final = ("image", "document", "audio", "video")
OTHER_TYPES: Final = ("reaction", "location")
BURST: Final = 4
"""Consecutive messages of one thread before the history moves to another thread."""
GROUP_SUFFIX: Final = "@g.us"
MAX_PEOPLE: Final = 1_000_000
"""Most contacts or threads a profile may have (generated phone numbers stay unique)."""
DECLINED_CODE: Final = 2593109
DECLINED_TITLE: Final = "History sync is turned off by the business from the WhatsApp Business App"

Sha256Encoding = Literal["hex", "base64"]

_MEDIA_WEIGHTS: Final = (0.55, 0.2, 0.15, 0.1)
_MEDIA_FORMATS: Final[Mapping[str, tuple[str, bytes]]] = {
    "image": ("image/jpeg", b"\xff\xd8\xff\xe0\x00\x10JFIF\x00"),
    "document": ("application/pdf", b"%PDF-1.7\n"),
    "audio": ("audio/ogg; codecs=opus", b"OggS\x00\x02"),
    "video": ("video/mp4", b"\x00\x00\x00\x18ftypmp42"),
}
_OUTGOING_STATUSES: Final = ("READ", "DELIVERED", "SENT", "PLAYED", "ERROR", "PENDING")
_OUTGOING_WEIGHTS: Final = (0.55, 0.25, 0.1, 0.04, 0.03, 0.03)
_INCOMING_STATUSES: Final = ("READ", "DELIVERED", "PLAYED")
_INCOMING_WEIGHTS: Final = (0.85, 0.1, 0.05)
_FIRST_NAMES: Final = (
    "Pablo", "Aisha", "Wei", "María", "John", "Fatima", "Luca", "Priya", "Kenji", "Amara",
    "Sofia", "Omar", "Chloé", "Mateo", "Ananya", "Yusuf", "Elena", "Tomás", "Zanele", "Ivan",
)  # fmt: skip
_LAST_NAMES: Final = (
    "Morales", "Khan", "Chen", "García", "Smith", "Haddad", "Rossi", "Patel", "Sato", "Okafor",
    "Novak", "Fischer", "Dubois", "Silva", "Iyer", "Yilmaz", "Petrova", "Müller", "Dlamini",
)  # fmt: skip
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
_CONTACT_PREFIXES: Final = (("1650", 7), ("447700", 6), ("55119", 8), ("9198", 8))
"""Country-plus-area prefixes of generated contacts, with the digits each leaves free."""
_FALLBACK_PREFIX: Final = "1408"


@dataclass(frozen=True, slots=True)
class HistoryProfile:
    """Knobs of the generated business data; every share is a fraction in [0, 1].

    ``total_messages`` overrides ``threads * messages_per_thread``. ``days`` is how far back
    the history goes; ``beyond_window_share`` of the messages are older than 180 days (when
    ``days`` > 180) so coexist's window filter is exercised. ``phase_weights`` shares the
    in-window messages between phases 0, 1 and 2. Of the messages, ``media_share`` are media
    and ``other_types_share`` reactions or locations; the rest is text. ``duplicate_share`` of
    the deliveries are re-sent and ``shuffle`` delivers them in a seeded random order.
    Contacts: ``contact_edit_share`` and ``contact_remove_share`` of them are edited or
    removed after the initial sync, and ``contact_out_of_order_share`` of those changes are
    delivered before the initial contact they supersede. ``echo_reuse_share`` of the echoes
    sent after the history repeat a business-sent history message (same wamid).
    ``sha256_encoding`` is how media digests are written (``hex`` or ``base64``). ``seed``,
    with the phone number id, determines everything.
    """

    seed: int = 0
    contacts: int = 40
    threads: int = 25
    messages_per_thread: int = 20
    total_messages: int | None = None
    days: float = 200.0
    beyond_window_share: float = 0.03
    phase_weights: tuple[float, float, float] = (0.2, 0.45, 0.35)
    media_share: float = 0.2
    other_types_share: float = 0.05
    group_thread_share: float = 0.04
    chunk_size: int = 50
    duplicate_share: float = 0.1
    shuffle: bool = True
    contact_edit_share: float = 0.1
    contact_remove_share: float = 0.05
    contact_out_of_order_share: float = 0.3
    echo_reuse_share: float = 0.5
    sha256_encoding: Sha256Encoding = "hex"

    def __post_init__(self) -> None:
        """Reject counts, shares and weights outside their ranges."""
        for name in ("seed", "contacts", "threads", "messages_per_thread", "chunk_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"{name} must be an integer, got {value!r}")
            if name != "seed" and value < 0:
                raise ValueError(f"{name} must be >= 0, got {value!r}")
        if self.chunk_size < 1:
            raise ValueError("chunk_size must be >= 1")
        if max(self.contacts, self.threads) > MAX_PEOPLE:
            raise ValueError(f"contacts and threads must be <= {MAX_PEOPLE}")
        if self.total_messages is not None and (
            isinstance(self.total_messages, bool)
            or not isinstance(self.total_messages, int)
            or self.total_messages < 0
        ):
            raise ValueError(f"total_messages must be an integer >= 0, got {self.total_messages!r}")
        if self.message_count > 0 and self.threads < 1:
            raise ValueError("threads must be >= 1 when there are messages")
        if not _is_number(self.days) or not math.isfinite(self.days) or self.days <= 0:
            raise ValueError(f"days must be a finite number > 0, got {self.days!r}")
        for spec in fields(self):
            if spec.name.endswith("_share"):
                value = getattr(self, spec.name)
                if not _is_number(value) or not 0.0 <= value <= 1.0:
                    raise ValueError(f"{spec.name} must be a number in [0, 1], got {value!r}")
        if self.media_share + self.other_types_share > 1.0:
            raise ValueError("media_share + other_types_share must be <= 1")
        if self.contact_edit_share + self.contact_remove_share > 1.0:
            raise ValueError("contact_edit_share + contact_remove_share must be <= 1")
        weights = self.phase_weights
        if (
            not isinstance(weights, tuple)
            or len(weights) != 3
            or not all(_is_number(w) and math.isfinite(w) and w >= 0 for w in weights)
            or sum(weights) <= 0
        ):
            raise ValueError(
                f"phase_weights must be three numbers >= 0 with a positive sum, got {weights!r}"
            )
        if not isinstance(self.shuffle, bool):
            raise ValueError("shuffle must be true or false")
        if self.sha256_encoding not in ("hex", "base64"):
            raise ValueError("sha256_encoding must be 'hex' or 'base64'")

    @property
    def message_count(self) -> int:
        """Messages in the history: ``total_messages`` or ``threads * messages_per_thread``."""
        if self.total_messages is not None:
            return self.total_messages
        return self.threads * self.messages_per_thread

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON form used by the control API."""
        data = asdict(self)
        data["phase_weights"] = list(self.phase_weights)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> HistoryProfile:
        """Build a profile from its JSON form; unknown keys are an error."""
        known = {spec.name for spec in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown profile keys: {sorted(unknown)}")
        values = dict(data)
        if "phase_weights" in values:
            weights = values["phase_weights"]
            if not isinstance(weights, list | tuple):
                raise ValueError("phase_weights must be a list of three numbers")
            values["phase_weights"] = tuple(weights)
        return cls(**values)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


@dataclass(frozen=True, slots=True)
class NumberContext:
    """The onboarded number the data is generated for (its digits have no ``+``)."""

    waba_id: str
    phone_number_id: str
    display_phone_number: str
    onboarded_at: float

    def metadata(self) -> dict[str, str]:
        """The ``value.metadata`` object of every coexistence webhook."""
        return {
            "display_phone_number": self.display_phone_number,
            "phone_number_id": self.phone_number_id,
        }


@dataclass(frozen=True, slots=True)
class HistoryPlan:
    """Message and chunk counts of a history, computed without generating it."""

    total_messages: int
    beyond_window: int
    phase_messages: tuple[int, int, int]
    """Messages per phase; phase 2 includes the ``beyond_window`` ones."""
    chunk_size: int

    @property
    def phase_chunks(self) -> tuple[int, int, int]:
        """Chunks per phase (an empty phase has none)."""
        size = self.chunk_size
        p0, p1, p2 = (-(-count // size) for count in self.phase_messages)
        return p0, p1, p2

    @property
    def total_chunks(self) -> int:
        """Chunks in the whole history: the number of ``history`` webhooks with threads."""
        return sum(self.phase_chunks)

    def chunk_keys(self) -> Iterator[tuple[int, int]]:
        """Yield ``(phase, chunk_order)`` of every chunk in delivery-metadata order."""
        for phase, count in enumerate(self.phase_chunks):
            for chunk_order in range(1, count + 1):
                yield phase, chunk_order

    def ordinal(self, phase: int, chunk_order: int) -> int:
        """1-based position of a chunk in ``(phase, chunk_order)`` order."""
        chunks = self.phase_chunks
        if phase not in (0, 1, 2) or not 1 <= chunk_order <= chunks[phase]:
            raise ValueError(f"no chunk {chunk_order} in phase {phase}")
        return sum(chunks[:phase]) + chunk_order

    def progress(self, phase: int, chunk_order: int) -> int:
        """The chunk's ``progress`` (0-100); exactly 100 only on the last chunk."""
        return 100 * self.ordinal(phase, chunk_order) // self.total_chunks


@dataclass(frozen=True, slots=True)
class MediaItem:
    """One downloadable medium announced by a history follow-up webhook."""

    media_id: str
    wamid: str
    kind: str
    mime_type: str
    sha256: str
    file_size: int
    content_key: str

    def content(self) -> bytes:
        """The medium's bytes, regenerated from its key (``file_size`` bytes)."""
        return media_bytes(self.content_key, self.file_size, self.mime_type)


@dataclass(frozen=True, slots=True)
class HistoryChunk:
    """One ``history`` webhook's worth of messages, grouped by thread."""

    phase: int
    chunk_order: int
    progress: int
    threads: tuple[dict[str, Any], ...]
    message_count: int
    media: tuple[MediaItem, ...] = ()
    """Media within 14 days of onboarding (only with ``with_media=True``)."""
    media_messages: tuple[dict[str, Any], ...] = ()
    """The typed follow-up messages for :attr:`media`, in the same order."""

    def messages(self) -> Iterator[dict[str, Any]]:
        """Yield every message of the chunk, thread by thread."""
        for thread in self.threads:
            yield from thread["messages"]


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


def media_bytes(content_key: str, size: int, mime_type: str) -> bytes:
    """Deterministic pseudo-random bytes of a medium, starting with its format's magic."""
    magic = next(
        (head for mime, head in _MEDIA_FORMATS.values() if mime == mime_type),
        b"",
    )[:size]
    body = random.Random(content_key).randbytes(size - len(magic))
    return magic + body


def media_digest(content: bytes, encoding: Sha256Encoding = "hex") -> str:
    """The ``sha256`` field of a medium: lowercase hex (default) or base64 of the digest."""
    digest = hashlib.sha256(content)
    if encoding == "base64":
        return base64.b64encode(digest.digest()).decode()
    return digest.hexdigest()


def envelope(waba_id: str, field: str, value: Mapping[str, Any], time: int) -> dict[str, Any]:
    """Wrap a change ``value`` in the ``whatsapp_business_account`` webhook envelope."""
    return {
        "object": "whatsapp_business_account",
        "entry": [{"id": waba_id, "time": time, "changes": [{"field": field, "value": value}]}],
    }


def contact_add_item(
    phone_number: str, full_name: str | None, first_name: str | None, timestamp: int
) -> dict[str, Any]:
    """A ``state_sync`` item adding (or editing) a contact."""
    contact: dict[str, Any] = {}
    if full_name:
        contact["full_name"] = full_name
    if first_name:
        contact["first_name"] = first_name
    contact["phone_number"] = phone_number
    return {
        "type": "contact",
        "contact": contact,
        "action": "add",
        "metadata": {"timestamp": str(timestamp)},
    }


def contact_remove_item(phone_number: str, timestamp: int) -> dict[str, Any]:
    """A ``state_sync`` item removing a contact (names omitted, as Meta does)."""
    return {
        "type": "contact",
        "contact": {"phone_number": phone_number},
        "action": "remove",
        "metadata": {"timestamp": str(timestamp)},
    }


def _affine(count: int, rng: random.Random) -> tuple[int, int]:
    """A multiplier coprime to ``count`` and an offset: ``(a * i + b) % count`` permutes."""
    if count <= 1:
        return 1, 0
    multiplier = rng.randrange(1, count) | 1
    while math.gcd(multiplier, count) != 1:
        multiplier = multiplier % count + 1
    return multiplier, rng.randrange(count)


def _spread(total: int, weights: tuple[float, ...]) -> tuple[int, ...]:
    """Split ``total`` by ``weights`` with the largest-remainder method (ties: first wins)."""
    weight_sum = sum(weights)
    if total == 0 or weight_sum <= 0:
        return tuple(0 for _ in weights)
    raw = [total * weight / weight_sum for weight in weights]
    counts = [math.floor(value) for value in raw]
    order = sorted(range(len(raw)), key=lambda i: (-(raw[i] - counts[i]), i))
    for i in order[: total - sum(counts)]:
        counts[i] += 1
    return tuple(counts)


class HistoryGenerator:
    """Generates one number's history, media, contacts and echoes from a profile."""

    def __init__(self, profile: HistoryProfile, context: NumberContext) -> None:
        """Plan the history of ``context``'s number; nothing is generated yet."""
        self.profile = profile
        self.context = context
        self._key = f"{profile.seed}:{context.phone_number_id}"
        self._tag = hashlib.sha256(self._key.encode()).hexdigest()[:8].upper()
        setup = random.Random(f"{self._key}:setup")
        total = profile.message_count
        self._threads = max(profile.threads, 1)
        groups = round(profile.threads * profile.group_thread_share)
        self._group_threads = min(groups, max(profile.threads - 1, 0)) if total else 0
        self._thread_mult, self._thread_add = _affine(self._threads, setup)
        self._contact_mult, self._contact_add = _affine(max(profile.contacts, 1), setup)
        beyond = 0
        if profile.days > HISTORY_WINDOW_DAYS:
            beyond = min(round(total * profile.beyond_window_share), total)
        span = min(profile.days, HISTORY_WINDOW_DAYS)
        self._ranges = tuple((start, min(end, span)) for start, end in PHASE_DAYS)
        weights = tuple(
            weight if end > start else 0.0
            for weight, (start, end) in zip(profile.phase_weights, self._ranges, strict=True)
        )
        if sum(weights) <= 0:  # only empty-range weights were set: fall back to the ranges
            weights = tuple(max(end - start, 0.0) for start, end in self._ranges)
        p0, p1, p2 = _spread(total - beyond, weights)
        self._in_window = (p0, p1, p2)
        self._offsets = (0, p0, p0 + p1)
        self.plan = HistoryPlan(
            total_messages=total,
            beyond_window=beyond,
            phase_messages=(p0, p1, p2 + beyond),
            chunk_size=profile.chunk_size,
        )

    # ------------------------------------------------------------------ identities

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

    def _group_id(self, slot: int) -> str:
        mix = int(hashlib.sha256(f"{self._key}:group:{slot}".encode()).hexdigest()[:12], 16)
        return f"120363{mix % 10**12:012d}{GROUP_SUFFIX}"

    def thread_id(self, slot: int) -> str:
        """The ``threads[].id`` of thread slot ``slot``: a user's digits or a group id."""
        if slot >= self._threads - self._group_threads:
            return self._group_id(slot)
        return self.contact_digits(slot)

    def _slot(self, index: int) -> int:
        burst = (index // BURST) % self._threads
        return (self._thread_mult * burst + self._thread_add) % self._threads

    def _outgoing(self, index: int) -> bool:
        """Whether message ``index`` is business-sent: direction alternates in each thread."""
        sequence = (index // (BURST * self._threads)) * BURST + index % BURST
        return sequence % 2 == 0

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
        thread = self.thread_id(self._slot(index))
        return self.wamid(index, thread.removesuffix(GROUP_SUFFIX), self._outgoing(index))

    def media_id(self, index: int) -> str:
        """A 16-digit media id for message ``index``."""
        mix = int(hashlib.sha256(f"{self._key}:media-id:{index}".encode()).hexdigest()[:15], 16)
        return str(10**15 + mix % (9 * 10**15))

    # ------------------------------------------------------------------ history

    def chunk(self, phase: int, chunk_order: int, *, with_media: bool = False) -> HistoryChunk:
        """Build chunk ``chunk_order`` of ``phase`` (messages oldest first in each thread).

        ``with_media`` also builds the 14-day media follow-ups (hashing their bytes).
        """
        plan = self.plan
        progress = plan.progress(phase, chunk_order)
        start = (chunk_order - 1) * plan.chunk_size
        end = min(start + plan.chunk_size, plan.phase_messages[phase])
        rng = random.Random(f"{self._key}:chunk:{phase}:{chunk_order}")
        threads: dict[str, list[dict[str, Any]]] = {}
        media: list[MediaItem] = []
        media_messages: list[dict[str, Any]] = []
        followup_after = self.context.onboarded_at - MEDIA_FOLLOWUP_DAYS * SECONDS_PER_DAY
        for position in range(start, end):
            index = self._offsets[phase] + position
            timestamp = self._timestamp(phase, position, rng)
            slot = self._slot(index)
            thread = self.thread_id(slot)
            message, medium = self._message(index, slot, thread, timestamp, rng)
            threads.setdefault(thread, []).append(message)
            if medium is not None and with_media and timestamp >= followup_after:
                item, typed = self._followup(index, message, medium)
                media.append(item)
                media_messages.append(typed)
        return HistoryChunk(
            phase=phase,
            chunk_order=chunk_order,
            progress=progress,
            threads=tuple(
                {"id": thread, "messages": messages[::-1]} for thread, messages in threads.items()
            ),
            message_count=end - start,
            media=tuple(media),
            media_messages=tuple(media_messages),
        )

    def chunks(self, *, with_media: bool = False) -> Iterator[HistoryChunk]:
        """Yield every chunk in ``(phase, chunk_order)`` order, one at a time."""
        for phase, chunk_order in self.plan.chunk_keys():
            yield self.chunk(phase, chunk_order, with_media=with_media)

    def messages(self) -> Iterator[tuple[str, dict[str, Any]]]:
        """Yield ``(thread_id, message)`` for the whole history, chunk by chunk."""
        for chunk in self.chunks():
            for thread in chunk.threads:
                for message in thread["messages"]:
                    yield thread["id"], message

    def may_have_followups(self, phase: int, chunk_order: int) -> bool:
        """Whether the chunk reaches into the 14-day media window (decided without building)."""
        start_position = (chunk_order - 1) * self.plan.chunk_size
        in_window = self._in_window[phase]
        if start_position >= in_window:
            return False
        low, high = self._ranges[phase]
        youngest_age = low + start_position / in_window * (high - low)
        return youngest_age < MEDIA_FOLLOWUP_DAYS

    def _timestamp(self, phase: int, position: int, rng: random.Random) -> int:
        jitter = min(max(rng.random(), 1e-6), 1 - 1e-6)
        in_window = self._in_window[phase]
        if position < in_window:
            low, high = self._ranges[phase]
            age = low + (position + jitter) / in_window * (high - low)
        else:
            beyond = self.plan.beyond_window
            extra = position - in_window
            age = HISTORY_WINDOW_DAYS + (extra + jitter) / beyond * (
                self.profile.days - HISTORY_WINDOW_DAYS
            )
        return math.floor(self.context.onboarded_at - max(age * SECONDS_PER_DAY, 1.0))

    def _message(
        self, index: int, slot: int, thread: str, timestamp: int, rng: random.Random
    ) -> tuple[dict[str, Any], str | None]:
        """One history message and, for media, its kind."""
        profile = self.profile
        business = self.context.display_phone_number
        outgoing = self._outgoing(index)
        is_group = thread.endswith(GROUP_SUFFIX)
        message: dict[str, Any] = {}
        if outgoing:
            message["from"] = business
            message["to"] = thread
        elif is_group:
            message["from"] = self.contact_digits((slot * 31 + index) % max(profile.contacts, 1))
        else:
            message["from"] = thread
        message["id"] = self.wamid(index, thread.removesuffix(GROUP_SUFFIX), outgoing)
        message["timestamp"] = str(timestamp)
        draw = rng.random()
        medium: str | None = None
        if draw < profile.media_share:
            message["type"] = "media_placeholder"
            medium = rng.choices(MEDIA_KINDS, _MEDIA_WEIGHTS)[0]
        elif draw < profile.media_share + profile.other_types_share:
            other = OTHER_TYPES[rng.randrange(len(OTHER_TYPES))]
            target = self._reaction_target(index)
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

    def _reaction_target(self, index: int) -> int | None:
        """The previous (older) message of the same thread, if the history has one."""
        step = 1 if (index + 1) % BURST else 1 + BURST * (self._threads - 1)
        target = index + step
        return target if target < self.plan.total_messages else None

    @staticmethod
    def _text(outgoing: bool, rng: random.Random) -> str:
        template = rng.choice(_BUSINESS_TEXTS if outgoing else _USER_TEXTS)
        return template.format(
            n=rng.randrange(1000, 10000),
            day=rng.choice(_DAYS_OF_WEEK),
            hour=rng.randrange(8, 19),
        )

    def _followup(
        self, index: int, placeholder: Mapping[str, Any], kind: str
    ) -> tuple[MediaItem, dict[str, Any]]:
        """The media item and typed follow-up message of a recent media placeholder."""
        rng = random.Random(f"{self._key}:medium:{index}")
        mime_type = _MEDIA_FORMATS[kind][0]
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
        typed = {
            "from": placeholder["from"],
            "id": placeholder["id"],
            "timestamp": placeholder["timestamp"],
            "type": kind,
            kind: body,
        }
        return item, typed

    # ------------------------------------------------------------------ payload values

    def history_value(self, chunk: HistoryChunk) -> dict[str, Any]:
        """The ``value`` of a ``history`` webhook carrying ``chunk``'s threads."""
        return {
            "messaging_product": "whatsapp",
            "metadata": self.context.metadata(),
            "history": [
                {
                    "metadata": {
                        "phase": chunk.phase,
                        "chunk_order": chunk.chunk_order,
                        "progress": chunk.progress,
                    },
                    "threads": list(chunk.threads),
                }
            ],
        }

    def followup_value(self, messages: Iterable[dict[str, Any]]) -> dict[str, Any]:
        """The ``value`` of a ``history`` media follow-up: typed messages in ``messages[]``."""
        return {
            "messaging_product": "whatsapp",
            "metadata": self.context.metadata(),
            "messages": list(messages),
        }

    def declined_value(self) -> dict[str, Any]:
        """The ``value`` of the ``history`` webhook telling that sharing was declined."""
        return {
            "messaging_product": "whatsapp",
            "metadata": self.context.metadata(),
            "history": [
                {
                    "errors": [
                        {
                            "code": DECLINED_CODE,
                            "title": DECLINED_TITLE,
                            "message": DECLINED_TITLE,
                            "error_data": {
                                "details": "History sharing is turned off by the business"
                            },
                        }
                    ]
                }
            ],
        }

    def state_sync_value(self, items: list[dict[str, Any]]) -> dict[str, Any]:
        """The ``value`` of an ``smb_app_state_sync`` webhook."""
        return {
            "messaging_product": "whatsapp",
            "metadata": self.context.metadata(),
            "state_sync": items,
        }

    def echoes_value(self, items: list[dict[str, Any]]) -> dict[str, Any]:
        """The ``value`` of an ``smb_message_echoes`` webhook."""
        return {
            "messaging_product": "whatsapp",
            "metadata": self.context.metadata(),
            "message_echoes": items,
        }

    # ------------------------------------------------------------------ contacts

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

    # ------------------------------------------------------------------ echoes

    def echo(self, sequence: int, timestamp: int) -> dict[str, Any]:
        """A new echo ``sequence`` (0-based): a text the business sent from the app."""
        rng = random.Random(f"{self._key}:echo:{sequence}")
        one_to_one = self._threads - self._group_threads
        slot = rng.randrange(one_to_one) if one_to_one > 0 else 0
        to = self.contact_digits(slot)
        index = self.plan.total_messages + sequence
        return {
            "from": self.context.display_phone_number,
            "to": to,
            "id": self.wamid(index, to, outgoing=True),
            "timestamp": str(timestamp),
            "type": "text",
            "text": {"body": self._text(True, rng)},
        }

    def history_echoes(self, count: int) -> list[dict[str, Any]]:
        """Up to ``count`` echoes repeating business-sent 1:1 history texts (same wamids).

        Scans the newest chunks first and stops as soon as it has ``count``.
        """
        found: list[dict[str, Any]] = []
        if count <= 0:
            return found
        for chunk in self.chunks():
            for thread in chunk.threads:
                if thread["id"].endswith(GROUP_SUFFIX):
                    continue
                for message in reversed(thread["messages"]):
                    if (
                        message["from"] == self.context.display_phone_number
                        and message["type"] == "text"
                    ):
                        found.append(
                            {
                                "from": message["from"],
                                "to": message["to"],
                                "id": message["id"],
                                "timestamp": message["timestamp"],
                                "type": "text",
                                "text": dict(message["text"]),
                            }
                        )
                        if len(found) == count:
                            return found
        return found
