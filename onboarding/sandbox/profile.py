"""What the sandbox generates, and for whom: the profile, the onboarded number, the plan.

A :class:`HistoryProfile` holds the knobs of the generated business data, a
:class:`NumberContext` the onboarded number it is generated for, and a :class:`HistoryPlan` the
message and chunk counts of a history, computed without generating it (see :mod:`.history`).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any, Final, Literal

SECONDS_PER_DAY: Final = 86_400
MAX_PEOPLE: Final = 1_000_000
"""Most contacts or threads a profile may have (generated phone numbers stay unique)."""

Sha256Encoding = Literal["hex", "base64"]


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
    ``sha256_encoding`` is how media digests are written (``hex`` or ``base64``). Identities
    (:mod:`.identities`): every user has a business-scoped user id; ``adopter_share`` of them
    adopted a username (Meta may then omit their number), ``username_contact_share`` of the
    adopters in the contact book were saved by username only, ``username_join_share`` of those
    get their number with a later contact change (the rest stay known by BSUID alone), and
    ``parent_user_ids`` gives everyone a parent id too. ``seed``, with the
    phone number id (the WABA id for identities), determines everything.
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
    adopter_share: float = 0.2
    dormant_thread_share: float = 0.3
    username_contact_share: float = 0.5
    username_join_share: float = 0.5
    parent_user_ids: bool = False

    def __post_init__(self) -> None:
        """Reject counts, shares and weights outside their ranges."""
        self._check_counts()
        self._check_shares()
        self._check_weights()

    def _check_counts(self) -> None:
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

    def _check_shares(self) -> None:
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

    def _check_weights(self) -> None:
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
        for name in ("shuffle", "parent_user_ids"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be true or false")
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
