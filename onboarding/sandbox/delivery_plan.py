"""The deliveries of one accepted sync, in the order Meta would send them, signed and lazy.

A sync's deliveries are keys (kind, phase, index, duplicate bit) packed in one integer:
:func:`arrange` adds the duplicates and, with ``profile.shuffle``, shuffles them in a seeded
order, holding one 8-byte key per delivery (not per message) in memory. A
:class:`DeliveryPlanner` turns the keys into :class:`Job` values one at a time: the generated
payload in its envelope, serialized and signed once, so that retries and duplicates send the
very same bytes.
"""

from __future__ import annotations

import itertools
import random
from array import array
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, Final

from onboarding.sandbox.history import HistoryGenerator
from onboarding.sandbox.media_items import MediaItem
from onboarding.sandbox.payloads import envelope
from onboarding.sandbox.profile import HistoryProfile, NumberContext
from onboarding.sandbox.signing import SIGNATURE_HEADER, serialize
from onboarding.sandbox.sinks import DeliveryRecord
from onboarding.sandbox.webhook_config import WebhookConfig

USER_AGENT: Final = "facebookexternalua"

_KIND_SHIFT: Final = 48
_PHASE_SHIFT: Final = 40
_DUPLICATE_BIT: Final = 1 << 60
_INDEX_MASK: Final = (1 << _PHASE_SHIFT) - 1


class _Kind(IntEnum):
    HISTORY = 1
    FOLLOWUP = 2
    CONTACTS = 3
    CONTACT_CHANGE = 4


def _key(kind: _Kind, phase: int, index: int) -> int:
    return (int(kind) << _KIND_SHIFT) | (phase << _PHASE_SHIFT) | index


def _unpack(key: int) -> tuple[_Kind, int, int, bool]:
    duplicate = bool(key & _DUPLICATE_BIT)
    key &= ~_DUPLICATE_BIT
    return (
        _Kind(key >> _KIND_SHIFT),
        (key >> _PHASE_SHIFT) & 0xFF,
        key & _INDEX_MASK,
        duplicate,
    )


def _history_keys(generator: HistoryGenerator) -> Iterator[int]:
    plan = generator.plan
    for phase, chunk_order in plan.chunk_keys():
        yield _key(_Kind.HISTORY, phase, chunk_order)
    if generator.profile.media_share <= 0:
        return
    for phase, chunk_order in plan.chunk_keys():
        if generator.may_have_followups(phase, chunk_order):
            yield _key(_Kind.FOLLOWUP, phase, chunk_order)


def _contact_keys(generator: HistoryGenerator) -> Iterator[int]:
    plan = generator.contacts_plan()
    for change in range(plan.early_changes):
        yield _key(_Kind.CONTACT_CHANGE, 0, change)
    for chunk in range(plan.initial_chunks):
        yield _key(_Kind.CONTACTS, 0, chunk)
    for change in range(plan.early_changes, plan.changes):
        yield _key(_Kind.CONTACT_CHANGE, 0, change)


def _with_duplicates(keys: Iterator[int], share: float, rng: random.Random) -> Iterator[int]:
    for key in keys:
        yield key
        if share > 0 and rng.random() < share:
            yield key | _DUPLICATE_BIT


def arrange(keys: Iterator[int], profile: HistoryProfile, plan_seed: str) -> Iterator[int]:
    """Add duplicates and, with ``profile.shuffle``, shuffle: lazily when not shuffled.

    Shuffling holds one 8-byte key per delivery (not per message) in memory.
    """
    rng = random.Random(plan_seed)
    keyed = _with_duplicates(keys, profile.duplicate_share, rng)
    if not profile.shuffle:
        yield from keyed
        return
    order = array("q", keyed)
    rng.shuffle(order)
    yield from order


@dataclass(slots=True)
class Job:
    """One signed webhook body to deliver, with the record of its outcome."""

    record: DeliveryRecord
    body: bytes
    headers: dict[str, str]
    waba_id: str
    epoch: int


class DeliveryPlanner:
    """Builds the signed deliveries of syncs and on-demand changes, numbering them."""

    def __init__(
        self,
        sign: Callable[[bytes], str],
        register_media: Callable[[str, Iterable[MediaItem]], None],
    ) -> None:
        """Sign bodies with ``sign``; make late media downloadable with ``register_media``."""
        self._sign = sign
        self._register_media = register_media
        self._sequence = itertools.count(1)

    def job(
        self,
        context: NumberContext,
        field_name: str,
        kind: str,
        payload: Any,
        *,
        duplicate: bool,
    ) -> Job:
        """Serialize and sign ``payload`` once, with the next sequence number."""
        body = serialize(payload)
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: self._sign(body),
            "User-Agent": USER_AGENT,
        }
        record = DeliveryRecord(
            sequence=next(self._sequence),
            field=field_name,
            kind=kind,
            phone_number_id=context.phone_number_id,
            size=len(body),
            duplicate=duplicate,
        )
        return Job(record, body, headers, context.waba_id, epoch=-1)

    def history_jobs(self, generator: HistoryGenerator, base_time: int) -> Iterator[Job]:
        """An accepted history sync: the chunks, then the 14-day late-media webhooks."""
        context = generator.context
        plan_seed = f"{generator.profile.seed}:{context.phone_number_id}:history-plan"
        for key in arrange(_history_keys(generator), generator.profile, plan_seed):
            kind, phase, chunk_order, duplicate = _unpack(key)
            if kind is _Kind.HISTORY:
                value = generator.history_value(generator.chunk(phase, chunk_order))
                label = "history"
            else:
                chunk = generator.chunk(phase, chunk_order, with_media=True)
                if not chunk.media:
                    continue
                self._register_media(context.phone_number_id, chunk.media)
                value = generator.media_value(chunk)
                label = "history_media"
            payload = envelope(context.waba_id, "history", value, base_time)
            yield self.job(context, "history", label, payload, duplicate=duplicate)

    def declined_jobs(
        self, generator: HistoryGenerator, base_time: int, config: WebhookConfig
    ) -> Iterator[Job]:
        """A declined history sync: one ``history`` webhook with error 2593109."""
        context = generator.context
        value = generator.declined_value()
        payload: dict[str, Any] = value
        if not config.envelope_less_decline:
            payload = envelope(context.waba_id, "history", value, base_time)
        yield self.job(context, "history", "history_declined", payload, duplicate=False)

    def contact_jobs(self, generator: HistoryGenerator, base_time: int) -> Iterator[Job]:
        """An accepted contacts sync: the initial chunks, with the changes around them."""
        context = generator.context
        plan_seed = f"{generator.profile.seed}:{context.phone_number_id}:contacts-plan"
        for key in arrange(_contact_keys(generator), generator.profile, plan_seed):
            kind, _, index, duplicate = _unpack(key)
            if kind is _Kind.CONTACTS:
                items = generator.contact_items(index)
            else:
                items = [generator.contact_change(index, base_time)]
            value = generator.state_sync_value(items)
            payload = envelope(context.waba_id, "smb_app_state_sync", value, base_time)
            yield self.job(context, "smb_app_state_sync", "contacts", payload, duplicate=duplicate)

    def history_echo_jobs(
        self, generator: HistoryGenerator, base_time: int, count: int, first: int
    ) -> Iterator[Job]:
        """``count`` echoes after the history, some repeating a history message's wamid."""
        reused = generator.history_echoes(round(count * generator.profile.echo_reuse_share))
        for item in reused:
            yield self.echo_job(generator, item, base_time)
        for offset in range(count - len(reused)):
            timestamp = base_time + 1 + offset
            item = generator.echo(first + offset, timestamp)
            yield self.echo_job(generator, item, timestamp)

    def echo_job(self, generator: HistoryGenerator, item: dict[str, Any], time_: int) -> Job:
        """One ``smb_message_echoes`` webhook carrying ``item``."""
        context = generator.context
        payload = envelope(
            context.waba_id, "smb_message_echoes", generator.echoes_value([item]), time_
        )
        return self.job(context, "smb_message_echoes", "echoes", payload, duplicate=False)
