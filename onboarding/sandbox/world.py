"""The sandbox's world: one Meta app's businesses, WABAs, numbers, codes, tokens and clock.

A :class:`World` holds everything the fake Graph remembers, behind one re-entrant lock: the
app (id, secret, name) and its rules, businesses with one WhatsApp Business Account (WABA) each
and their phone numbers, signup codes, business tokens, accepted ``smb_app_data`` calls,
registered media and sends. Methods called from outside take the lock; the Graph endpoints run
with it held.

The clock is ``time.time`` looked up at call time (so freezegun works) plus an offset moved by
:meth:`World.advance_clock`; tests can inject their own clock instead.
"""

from __future__ import annotations

import random
import secrets
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from onboarding.sandbox.media_items import MediaItem
from onboarding.sandbox.numbers import normalize_digits
from onboarding.sandbox.profile import NumberContext
from onboarding.sandbox.records import AcceptedSync, Business, NumberSpec, SeededNumber
from onboarding.sandbox.throughput import SendLedger


@dataclass(slots=True)
class PhoneNumber:
    """A phone number of a WABA, as the sandbox keeps it (digits without ``+``)."""

    id: str
    waba_id: str
    digits: str
    verified_name: str
    is_on_biz_app: bool
    platform_type: str
    status: str
    quality_rating: str
    onboarded_at: float | None = None
    synced_types: set[str] = field(default_factory=set)
    #: The number's own webhook override (``webhook_configuration``), ahead of the WABA's.
    override_callback_uri: str | None = None


@dataclass(slots=True)
class Waba:
    """A business's WhatsApp Business Account, its numbers and its webhook subscription."""

    id: str
    business_id: str
    name: str
    number_ids: list[str] = field(default_factory=list)
    subscribed: bool = False
    override_callback_uri: str | None = None
    override_verify_token: str | None = None


@dataclass(slots=True)
class SignupCode:
    """A single-use Embedded Signup code."""

    business_id: str
    issued_at: float
    used: bool = False


@dataclass(slots=True)
class BusinessToken:
    """A business token minted by the code exchange."""

    business_id: str
    revoked: bool = False


@dataclass(slots=True)
class StoredMedia:
    """A medium announced by a late-media webhook, downloadable by its business."""

    item: MediaItem
    business_id: str
    phone_number_id: str
    registered_at: float


@dataclass(frozen=True, slots=True)
class AppRules:
    """The Meta app and the rules the sandbox enforces for it."""

    app_id: str
    app_secret: str
    app_name: str
    code_ttl: float
    sync_window: float
    list_includes_biz_app_fields: bool
    media_ttl: float
    media_url_ttl: float
    message_throughput: float
    require_appsecret_proof: bool = False


def _system_time() -> float:
    """``time.time()``, looked up at each call so freezegun's patch is honoured."""
    return time.time()


class World:
    """Everything the fake Graph remembers for one Meta app."""

    def __init__(
        self, rules: AppRules, *, clock: Callable[[], float] | None, seed: int | None
    ) -> None:
        """An empty world under ``rules``; ``seed`` makes generated ids reproducible."""
        self.rules = rules
        self.lock = threading.RLock()
        self._clock: Callable[[], float] = clock or _system_time
        self._seed = seed
        self.reset()

    def reset(self) -> None:
        """Forget every business, code, token, sync, medium and send; the clock offset too."""
        with self.lock:
            self.rng = random.Random(self._seed)
            self.trace_rng = random.Random()
            self._clock_offset = 0.0
            self.businesses: dict[str, str] = {}
            self.wabas: dict[str, Waba] = {}
            self.numbers: dict[str, PhoneNumber] = {}
            self._ids: set[str] = set()
            self.codes: dict[str, SignupCode] = {}
            self.tokens: dict[str, BusinessToken] = {}
            self.syncs: list[AcceptedSync] = []
            self.media: dict[str, StoredMedia] = {}
            self.media_url_key = secrets.token_bytes(32)
            self.sends = SendLedger(self.rules.message_throughput)

    # ----------------------------------------------------------------- clock

    def now(self) -> float:
        """Return the sandbox's current Unix time (clock plus offset)."""
        with self.lock:
            return self._clock() + self._clock_offset

    @property
    def clock_offset(self) -> float:
        """Seconds added to the clock by :meth:`advance_clock` since construction or reset."""
        with self.lock:
            return self._clock_offset

    def advance_clock(self, seconds: float) -> float:
        """Move the clock forward by ``seconds`` and return the new time."""
        if seconds < 0:
            raise ValueError("the clock only moves forward")
        with self.lock:
            self._clock_offset += seconds
            return self.now()

    # ----------------------------------------------------------------- seeding

    def new_id(self) -> str:
        """A fresh 15-digit Graph id."""
        while True:
            candidate = str(self.rng.randrange(10**14, 10**15))
            if candidate not in self._ids:
                self._ids.add(candidate)
                return candidate

    def _new_display_digits(self) -> str:
        taken = {number.digits for number in self.numbers.values()}
        while True:
            candidate = f"1555{self.rng.randrange(10**7):07d}"
            if candidate not in taken:
                return candidate

    def add_business(self, name: str, specs: Sequence[NumberSpec]) -> Business:
        """Seed a business with one WABA and one number per spec."""
        with self.lock:
            digits_taken = {number.digits for number in self.numbers.values()}
            planned: list[str] = []
            for spec in specs:
                if spec.display_phone_number is None:
                    continue
                digits = normalize_digits(spec.display_phone_number)
                if digits in digits_taken or digits in planned:
                    raise ValueError(f"phone number {digits} is already seeded")
                planned.append(digits)
            business_id = self.new_id()
            waba = Waba(id=self.new_id(), business_id=business_id, name=name)
            self.businesses[business_id] = name
            self.wabas[waba.id] = waba
            seeded = [self._add_number(waba, spec, name) for spec in specs]
            return Business(id=business_id, name=name, waba_id=waba.id, numbers=tuple(seeded))

    def _add_number(self, waba: Waba, spec: NumberSpec, business_name: str) -> SeededNumber:
        digits = (
            normalize_digits(spec.display_phone_number)
            if spec.display_phone_number is not None
            else self._new_display_digits()
        )
        number = PhoneNumber(
            id=self.new_id(),
            waba_id=waba.id,
            digits=digits,
            verified_name=spec.verified_name or business_name,
            is_on_biz_app=spec.is_on_biz_app,
            platform_type=spec.platform_type or "NOT_APPLICABLE",
            status=spec.status,
            quality_rating=spec.quality_rating,
        )
        self.numbers[number.id] = number
        waba.number_ids.append(number.id)
        return SeededNumber(number.id, digits, number.is_on_biz_app)

    # ----------------------------------------------------------------- tokens

    def issue_token(self, business_id: str) -> str:
        """Mint a business token for a known business."""
        with self.lock:
            if business_id not in self.businesses:
                raise KeyError(f"unknown business {business_id}")
            return self.mint_token(business_id)

    def mint_token(self, business_id: str) -> str:
        """Mint a business token (the caller holds the lock)."""
        token = "EAAG" + secrets.token_urlsafe(30)
        self.tokens[token] = BusinessToken(business_id=business_id)
        return token

    def revoke_tokens(self, business_id: str) -> int:
        """Revoke every token of a business; return how many."""
        with self.lock:
            revoked = 0
            for token in self.tokens.values():
                if token.business_id == business_id and not token.revoked:
                    token.revoked = True
                    revoked += 1
            return revoked

    # ----------------------------------------------------------------- lookups

    def owner_of(self, waba_id: str) -> str:
        """The business owning a WABA."""
        return self.wabas[waba_id].business_id

    def usage_owner(self, object_id: str) -> str:
        """Whose rate-limit usage a call on ``object_id`` counts against: its WABA, or the app."""
        if object_id in self.wabas:
            return object_id
        if object_id in self.numbers:
            return self.numbers[object_id].waba_id
        return self.rules.app_id

    def is_subscribed(self, waba_id: str) -> bool:
        """Whether the app is subscribed to the WABA's webhooks."""
        with self.lock:
            waba = self.wabas.get(waba_id)
            return waba is not None and waba.subscribed

    def number_context(self, phone_number_id: str) -> NumberContext:
        """What webhook generation needs to know about an onboarded number.

        Raises ``KeyError`` for an unknown number and ``ValueError`` for one never onboarded.
        """
        with self.lock:
            number = self.numbers.get(phone_number_id)
            if number is None:
                raise KeyError(f"unknown phone number {phone_number_id}")
            if number.onboarded_at is None:
                raise ValueError(f"phone number {phone_number_id} has not been onboarded")
            return NumberContext(
                waba_id=number.waba_id,
                phone_number_id=number.id,
                display_phone_number=number.digits,
                onboarded_at=number.onboarded_at,
            )

    def media_expired(self, media: StoredMedia, now: float) -> bool:
        """Whether a registered medium outlived ``media_ttl``."""
        return now - media.registered_at > self.rules.media_ttl
