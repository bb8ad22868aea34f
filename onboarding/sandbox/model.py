"""The sandbox's state and Graph API behaviour: a faithful fake of the Meta endpoints coexist uses.

:class:`Sandbox` holds one Meta app (id and secret), businesses with one WhatsApp Business
Account (WABA) each and their phone numbers, signup codes, business tokens, WABA subscriptions and
accepted ``smb_app_data`` calls, all behind one re-entrant lock. :meth:`Sandbox.handle` answers
an ``httpx.Request`` the way Graph would (meta-platform.md §1-3, §6), error bodies included:

====================================================  ==========================================
``GET  /{ver}/oauth/access_token``                    code exchange (``oauth``)
``GET  /{ver}/{waba_id}/phone_numbers``               paged number list (``phone_numbers``)
``GET  /{ver}/{phone_number_id}``                     number node (``phone_number``)
``GET  /{ver}/{waba_id}``                             WABA node (``waba``)
``GET|POST|DELETE /{ver}/{waba_id}/subscribed_apps``  webhook subscription (``subscribed_apps``)
``POST /{ver}/{phone_number_id}/smb_app_data``        history/contacts sync (``smb_app_data``)
``POST /{ver}/{phone_number_id}/register``            refused on coexistence numbers (``register``)
``POST /{ver}/{phone_number_id}/deregister``          same (``deregister``)
``POST /{ver}/{phone_number_id}/messages``            send a text or template (``messages``)
``GET  /{ver}/{media_id}``                            media metadata and URL (``media``)
``GET  /_media/{opaque}?mid=&ext=&hash=``             media download, bearer (``media_download``)
``/_sandbox/...``                                     control API (:mod:`.control`), not Meta
====================================================  ==========================================

After an accepted ``smb_app_data`` call, the webhooks Meta sends (history, contacts, echoes,
media follow-ups) are generated and delivered by a :class:`~.webhooks.WebhookDispatcher` set
up with :meth:`Sandbox.configure_webhooks`. Media announced by a follow-up webhook can be
fetched for ``media_ttl`` (7 days, sandbox clock): ``GET /{media_id}`` answers a download URL on
the host the request came to, valid ``media_url_ttl`` (5 minutes) and only with the business's
bearer token (else 401); an expired or tampered URL is a 404. An expired media id is Graph's
"unsupported get request" (code 100, subcode 33), as for any object that no longer exists.

``POST /{phone_number_id}/messages`` answers Meta's send shape (``contacts`` and ``messages[].id``,
a ``wamid``) for ``text`` and ``template`` messages, from numbers on the Cloud API (a coexistence
number once signed up; else ``133010``). Each number may have at most ``message_throughput``
(20) sends accepted in any sliding second; one more is Meta's ``130429`` "Rate limit hit" and is
not sent (:meth:`Sandbox.set_message_throughput` changes one number's limit). Accepted sends are
recorded with their time (:meth:`Sandbox.sent_messages`), so per-second rates can be computed.

The part of Embedded Signup that happens in the customer's browser is simulated by
:meth:`Sandbox.complete_signup`, which mints the 30-second code and returns the session-info
message, and by :meth:`Sandbox.cancel_signup` / :meth:`Sandbox.fail_signup`.

Fault injection (:mod:`.faults`) adds latency, 5xx errors, throttling and responses dropped after
the call was applied (:class:`DroppedResponse`). Through :meth:`Sandbox.mock_transport` a dropped
response surfaces as ``httpx.RemoteProtocolError``; the real server (:mod:`.server`) closes the
connection instead of answering.

The clock is ``time.time`` looked up at call time (so freezegun works) plus an offset moved by
:meth:`Sandbox.advance_clock`; tests can inject their own clock instead.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import math
import random
import re
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final
from urllib.parse import parse_qsl, urlencode

import httpx

from onboarding.sandbox import control
from onboarding.sandbox.errors import (
    GraphReplyError,
    invalid_parameter,
    invalid_token,
    json_response,
    missing_token,
    new_fbtrace_id,
    nonexisting_field,
    revoked_token,
    unsupported_request,
)
from onboarding.sandbox.faults import ENDPOINTS, FAULT_KINDS, Faults
from onboarding.sandbox.media_items import MediaItem
from onboarding.sandbox.profile import HistoryProfile, NumberContext
from onboarding.sandbox.records import (
    AcceptedSync,
    Business,
    NumberSpec,
    SeededNumber,
    SignupResult,
    SyncListener,
)
from onboarding.sandbox.signing import sign_body
from onboarding.sandbox.sinks import Sink
from onboarding.sandbox.webhook_config import DeliveryOptions, WebhookConfig, WebhookMode
from onboarding.sandbox.webhooks import WebhookDispatcher

logger = logging.getLogger(__name__)

VERSION_RE: Final = re.compile(r"v\d+\.\d+")
CONTROL_PREFIX: Final = "/_sandbox"
MEDIA_PREFIX: Final = "_media"
MEDIA_TTL: Final = 7 * 24 * 3600.0
MEDIA_URL_TTL: Final = 300.0
UNKNOWN_ENDPOINT: Final = "unknown"
EDGE_ENDPOINTS: Final = frozenset(
    {"phone_numbers", "subscribed_apps", "smb_app_data", "register", "deregister", "messages"}
)
POST_ONLY_EDGES: Final = frozenset({"smb_app_data", "register", "deregister", "messages"})
MESSAGE_THROUGHPUT: Final = 20.0
"""Sends per number accepted in any sliding second: Meta's limit for coexistence numbers."""
THROUGHPUT_WINDOW: Final = 1.0
MESSAGE_TYPES: Final = ("text", "template")
MAX_TEXT_BODY: Final = 4096
MAX_SENT_RECORDS: Final = 200_000
"""Accepted sends remembered for :meth:`Sandbox.sent_messages` (the oldest are forgotten)."""
SYNC_TYPES: Final = ("smb_app_state_sync", "history")
DEFAULT_PAGE_LIMIT: Final = 25
NUMBER_NODE: Final = "WhatsAppBusinessPhoneNumber"
WABA_NODE: Final = "WhatsAppBusinessAccount"

PHONE_FIELDS: Final = (
    "id",
    "display_phone_number",
    "verified_name",
    "quality_rating",
    "code_verification_status",
    "status",
    "name_status",
    "platform_type",
    "throughput",
    "is_on_biz_app",
    "account_mode",
    "is_official_business_account",
    "whatsapp_business_manager_messaging_limit",
    "last_onboarded_time",
)
"""Fields a phone number node answers; any other requested field is a Graph error."""

BIZ_APP_FIELDS: Final = frozenset({"is_on_biz_app", "platform_type"})
"""Fields the list returns only when requested (and only if the sandbox is so configured)."""

NODE_DEFAULT_FIELDS: Final = ("id", "display_phone_number", "verified_name")
LIST_DEFAULT_FIELDS: Final = (
    "id",
    "display_phone_number",
    "verified_name",
    "quality_rating",
    "code_verification_status",
    "status",
    "name_status",
    "throughput",
)
WABA_FIELDS: Final = ("id", "name", "currency", "timezone_id", "account_review_status")
WABA_DEFAULT_FIELDS: Final = ("id", "name")

_TWO_DIGIT_COUNTRY_CODES: Final = frozenset(
    {20, 27, *range(30, 35), 36, 39, 40, 41, *range(43, 50), *range(51, 59), *range(60, 67)}
    | {81, 82, 84, 86, *range(90, 96), 98}
)


class DroppedResponse(Exception):  # noqa: N818 - named after what happens, as the design asks
    """The call was applied, but fault injection says its response must never arrive."""

    def __init__(self, endpoint: str, response: httpx.Response) -> None:
        super().__init__(f"response to {endpoint} dropped after the call was applied")
        self.endpoint = endpoint
        self.response = response


@dataclass(slots=True)
class _Number:
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


@dataclass(slots=True)
class _Waba:
    id: str
    business_id: str
    name: str
    number_ids: list[str] = field(default_factory=list)
    subscribed: bool = False
    override_callback_uri: str | None = None


@dataclass(slots=True)
class _Code:
    business_id: str
    issued_at: float
    used: bool = False


@dataclass(slots=True)
class _Token:
    business_id: str
    revoked: bool = False


@dataclass(slots=True)
class _Media:
    item: MediaItem
    business_id: str
    phone_number_id: str
    registered_at: float


@dataclass(frozen=True, slots=True)
class SentMessage:
    """One send the sandbox accepted: who sent what to whom, and when (sandbox clock)."""

    phone_number_id: str
    to: str
    wamid: str
    type: str
    accepted_at: float

    def to_dict(self) -> dict[str, Any]:
        """Return the control API's JSON form."""
        return {
            "phone_number_id": self.phone_number_id,
            "to": self.to,
            "wamid": self.wamid,
            "type": self.type,
            "accepted_at": self.accepted_at,
        }


@dataclass(frozen=True, slots=True)
class _Route:
    endpoint: str
    version: str
    object_id: str
    edge: str | None


@dataclass(frozen=True, slots=True)
class _FaultPlan:
    delay_seconds: float = 0.0
    error: GraphReplyError | None = None
    drop: bool = False


def _system_time() -> float:
    """``time.time()``, looked up at each call so freezegun's patch is honoured."""
    return time.time()


def _system_sleep(seconds: float) -> None:
    """``time.sleep()``, looked up at each call."""
    time.sleep(seconds)


def normalize_digits(display_phone_number: str) -> str:
    """Return the E.164 digits of a phone number written with ``+``, spaces, dashes or dots."""
    digits = re.sub(r"[\s+\-().]", "", display_phone_number)
    if not digits.isdigit() or not 8 <= len(digits) <= 15:
        raise ValueError(f"not an E.164 phone number: {display_phone_number!r}")
    return digits


def format_display_number(digits: str) -> str:
    """Format E.164 digits the way Graph's ``display_phone_number`` does, e.g. +1 555-078-3881."""
    if digits.startswith("1") and len(digits) == 11:
        return f"+1 {digits[1:4]}-{digits[4:7]}-{digits[7:]}"
    if digits[0] == "7":
        country, rest = digits[:1], digits[1:]
    elif int(digits[:2]) in _TWO_DIGIT_COUNTRY_CODES:
        country, rest = digits[:2], digits[2:]
    else:
        country, rest = digits[:3], digits[3:]
    groups = [rest[:-7], rest[-7:-4], rest[-4:]] if len(rest) > 7 else [rest[:-4], rest[-4:]]
    return f"+{country} " + " ".join(group for group in groups if group)


def _parse_fields(raw: str | None) -> list[str] | None:
    """Split a Graph ``fields`` value, dropping sub-selections like ``throughput{level}``."""
    if raw is None:
        return None
    names: list[str] = []
    depth = 0
    current = ""
    for char in raw:
        if char == "{":
            depth += 1
        elif char == "}":
            depth = max(depth - 1, 0)
        elif char == "," and depth == 0:
            names.append(current.strip())
            current = ""
        elif depth == 0:
            current += char
    names.append(current.strip())
    unique: list[str] = []
    for name in names:
        if name and name not in unique:
            unique.append(name)
    return unique


def _route(path: str) -> tuple[str | None, list[str]]:
    """Split a Graph path into its version (``None`` if absent or malformed) and the rest."""
    segments = [segment for segment in path.split("/") if segment]
    if segments and VERSION_RE.fullmatch(segments[0]):
        return segments[0], segments[1:]
    return None, segments


def _cdn_response(
    status: int, content: bytes, headers: Mapping[str, str] | None = None
) -> httpx.Response:
    """A plain-text answer of the media CDN (it is not Graph: no error envelope)."""
    return httpx.Response(
        status, content=content, headers={"content-type": "text/plain", **(headers or {})}
    )


def _check_throughput(limit: float) -> float:
    """A sends-per-second limit, or ``ValueError`` unless it is a finite number >= 1."""
    if isinstance(limit, bool) or not isinstance(limit, int | float):
        raise ValueError(f"message throughput must be a number, got {limit!r}")
    if not math.isfinite(limit) or limit < 1:
        raise ValueError(f"message throughput must be at least 1 per second, got {limit!r}")
    return float(limit)


def _check_text(text: Any) -> None:
    """Validate a send's ``text`` object as Graph does (code 100)."""
    if not isinstance(text, Mapping) or "body" not in text:
        raise invalid_parameter("The parameter text['body'] is required.")
    body = text["body"]
    if not isinstance(body, str) or not body.strip():
        raise invalid_parameter("Param text['body'] must be a non-empty string.")
    if len(body) > MAX_TEXT_BODY:
        raise invalid_parameter(
            f"Param text['body'] must be at most {MAX_TEXT_BODY} characters long."
        )
    preview = text.get("preview_url", False)
    if not isinstance(preview, bool):
        raise invalid_parameter("Param text['preview_url'] must be a boolean.")


def _check_template(template: Any) -> None:
    """Validate a send's ``template`` object as Graph does (code 100); any name is accepted."""
    if not isinstance(template, Mapping) or "name" not in template:
        raise invalid_parameter("The parameter template['name'] is required.")
    name = template["name"]
    if not isinstance(name, str) or not name:
        raise invalid_parameter("Param template['name'] must be a non-empty string.")
    language = template.get("language")
    if not isinstance(language, Mapping) or "code" not in language:
        raise invalid_parameter("The parameter template['language']['code'] is required.")
    if not isinstance(language["code"], str) or not language["code"]:
        raise invalid_parameter("Param template['language']['code'] must be a non-empty string.")
    components = template.get("components", [])
    if not isinstance(components, list):
        raise invalid_parameter("Param template['components'] must be an array.")


class Sandbox:
    """A fake of the Meta Graph API endpoints coexist uses, for one Meta app."""

    def __init__(
        self,
        app_id: str,
        app_secret: str,
        *,
        app_name: str = "coexist sandbox",
        clock: Callable[[], float] | None = None,
        sleep: Callable[[float], None] | None = None,
        code_ttl: float = 30.0,
        sync_window: float = 24 * 3600.0,
        list_includes_biz_app_fields: bool = True,
        faults: Faults | None = None,
        seed: int | None = None,
        media_ttl: float = MEDIA_TTL,
        media_url_ttl: float = MEDIA_URL_TTL,
        message_throughput: float = MESSAGE_THROUGHPUT,
    ) -> None:
        """Configure the app and the rules.

        ``clock`` returns Unix seconds (default: ``time.time()`` at call time); ``sleep`` is used
        for injected latency. ``code_ttl`` is the signup code's lifetime, ``sync_window`` the
        time after signup during which ``smb_app_data`` is accepted.
        ``list_includes_biz_app_fields=False`` models Meta omitting ``is_on_biz_app`` and
        ``platform_type`` from ``/{waba_id}/phone_numbers`` even when requested. ``seed`` makes
        generated ids reproducible; ``faults.seed`` does the same for fault draws.
        ``media_ttl`` is how long a media id lives after its follow-up webhook (7 days) and
        ``media_url_ttl`` how long a download URL lives (5 minutes). ``message_throughput`` is
        how many sends per number are accepted in any sliding second (20).
        """
        if not app_id or not app_secret:
            raise ValueError("app_id and app_secret are required")
        if code_ttl <= 0 or sync_window <= 0:
            raise ValueError("code_ttl and sync_window must be positive")
        if media_ttl <= 0 or media_url_ttl <= 0:
            raise ValueError("media_ttl and media_url_ttl must be positive")
        _check_throughput(message_throughput)
        self.app_id = app_id
        self._app_secret = app_secret
        self.app_name = app_name
        self.code_ttl = code_ttl
        self.sync_window = sync_window
        self.list_includes_biz_app_fields = list_includes_biz_app_fields
        self.media_ttl = media_ttl
        self.media_url_ttl = media_url_ttl
        self.message_throughput = float(message_throughput)
        self._clock: Callable[[], float] = clock or _system_time
        self._sleep: Callable[[float], None] = sleep or _system_sleep
        self._seed = seed
        self._initial_faults = faults or Faults()
        self._lock = threading.RLock()
        self._listeners: list[SyncListener] = []
        self._webhooks: WebhookDispatcher | None = None
        self._init_state()

    def __repr__(self) -> str:
        """Show the app id only; the secret never appears."""
        return f"Sandbox(app_id={self.app_id!r})"

    def _init_state(self) -> None:
        with self._lock:
            self._rng = random.Random(self._seed)
            self._trace_rng = random.Random()
            self._clock_offset = 0.0
            self._businesses: dict[str, str] = {}
            self._wabas: dict[str, _Waba] = {}
            self._numbers: dict[str, _Number] = {}
            self._ids: set[str] = set()
            self._codes: dict[str, _Code] = {}
            self._tokens: dict[str, _Token] = {}
            self._syncs: list[AcceptedSync] = []
            self._media: dict[str, _Media] = {}
            self._media_url_key = secrets.token_bytes(32)
            self._sent: deque[SentMessage] = deque(maxlen=MAX_SENT_RECORDS)
            self._send_windows: dict[str, deque[float]] = {}
            self._throughput: dict[str, float] = {}
            self._throughput_rejections: dict[str, int] = {}
            self._calls: dict[str, int] = dict.fromkeys((*ENDPOINTS, UNKNOWN_ENDPOINT), 0)
            self._fault_counts: dict[str, dict[str, int]] = {
                endpoint: dict.fromkeys(FAULT_KINDS, 0) for endpoint in ENDPOINTS
            }
            self._apply_faults(self._initial_faults)

    def reset(self) -> None:
        """Forget all businesses, codes, tokens, syncs, media, sends, per-number throughput
        limits and counters; restore the faults.

        Sync listeners and the webhook configuration stay: they are wiring, not state. Pending
        webhook deliveries are dropped and their counters zeroed.
        """
        self._init_state()
        with self._lock:
            dispatcher = self._webhooks
        if dispatcher is not None:
            dispatcher.reset()

    # ----------------------------------------------------------------- clock and faults

    def now(self) -> float:
        """Return the sandbox's current Unix time (clock plus offset)."""
        with self._lock:
            return self._clock() + self._clock_offset

    @property
    def clock_offset(self) -> float:
        """Seconds added to the clock by :meth:`advance_clock` since construction or reset."""
        with self._lock:
            return self._clock_offset

    def advance_clock(self, seconds: float) -> float:
        """Move the sandbox's clock forward by ``seconds`` and return the new time."""
        if seconds < 0:
            raise ValueError("the clock only moves forward")
        with self._lock:
            self._clock_offset += seconds
            return self.now()

    @property
    def faults(self) -> Faults:
        """The fault configuration in force."""
        with self._lock:
            return self._faults

    def set_faults(self, faults: Faults | None) -> None:
        """Replace the fault configuration (``None`` = no faults); a seed re-seeds the RNG."""
        with self._lock:
            self._apply_faults(faults or Faults())

    def _apply_faults(self, faults: Faults) -> None:
        self._faults = faults
        self._fault_rng = random.Random(faults.seed)

    # ----------------------------------------------------------------- seeding

    def _new_id(self) -> str:
        while True:
            candidate = str(self._rng.randrange(10**14, 10**15))
            if candidate not in self._ids:
                self._ids.add(candidate)
                return candidate

    def _new_display_digits(self) -> str:
        taken = {number.digits for number in self._numbers.values()}
        while True:
            candidate = f"1555{self._rng.randrange(10**7):07d}"
            if candidate not in taken:
                return candidate

    def add_business(
        self,
        name: str = "Sandbox Business",
        numbers: int | Sequence[NumberSpec | str] = 1,
        *,
        coexistence: bool = True,
    ) -> Business:
        """Seed a business with one WABA and its numbers.

        ``numbers`` is a count of generated numbers, or one entry per number: a display number
        (E.164 digits, ``+`` and spaces allowed) or a :class:`NumberSpec`. Generated and
        string entries are on the WhatsApp Business app when ``coexistence`` is true.
        """
        if isinstance(numbers, int):
            if numbers < 0:
                raise ValueError("numbers must be >= 0")
            specs: list[NumberSpec] = [
                NumberSpec(is_on_biz_app=coexistence) for _ in range(numbers)
            ]
        else:
            specs = [
                spec
                if isinstance(spec, NumberSpec)
                else NumberSpec(display_phone_number=spec, is_on_biz_app=coexistence)
                for spec in numbers
            ]
        with self._lock:
            digits_taken = {number.digits for number in self._numbers.values()}
            planned: list[str] = []
            for spec in specs:
                if spec.display_phone_number is None:
                    continue
                digits = normalize_digits(spec.display_phone_number)
                if digits in digits_taken or digits in planned:
                    raise ValueError(f"phone number {digits} is already seeded")
                planned.append(digits)
            business_id = self._new_id()
            waba = _Waba(id=self._new_id(), business_id=business_id, name=name)
            self._businesses[business_id] = name
            self._wabas[waba.id] = waba
            seeded: list[SeededNumber] = []
            for spec in specs:
                digits = (
                    normalize_digits(spec.display_phone_number)
                    if spec.display_phone_number is not None
                    else self._new_display_digits()
                )
                number = _Number(
                    id=self._new_id(),
                    waba_id=waba.id,
                    digits=digits,
                    verified_name=spec.verified_name or name,
                    is_on_biz_app=spec.is_on_biz_app,
                    platform_type=spec.platform_type or "NOT_APPLICABLE",
                    status=spec.status,
                    quality_rating=spec.quality_rating,
                )
                self._numbers[number.id] = number
                waba.number_ids.append(number.id)
                seeded.append(SeededNumber(number.id, digits, number.is_on_biz_app))
            return Business(id=business_id, name=name, waba_id=waba.id, numbers=tuple(seeded))

    # ----------------------------------------------------------------- signup simulation

    def complete_signup(
        self,
        waba_id: str,
        phone_number_id: str | None = None,
        *,
        coexistence: bool = True,
        include_phone_number_id: bool = False,
    ) -> SignupResult:
        """Simulate the customer finishing Embedded Signup for one number of a WABA.

        Mints a single-use code valid for ``code_ttl`` seconds and starts the number's
        ``smb_app_data`` window (a new onboarding: the once-per-type record is cleared). With
        ``phone_number_id`` unset, picks the WABA's first number on the Business app
        (coexistence) or its first number. Returns the code and the session-info message: for
        coexistence ``FINISH_WHATSAPP_BUSINESS_APP_ONBOARDING`` with only ``waba_id`` unless
        ``include_phone_number_id``; otherwise ``FINISH`` with all three ids.
        """
        with self._lock:
            waba = self._wabas.get(waba_id)
            if waba is None:
                raise KeyError(f"unknown WABA {waba_id}")
            number = self._signup_number(waba, phone_number_id, coexistence=coexistence)
            now = self.now()
            code = "AQ" + secrets.token_urlsafe(96)
            self._codes[code] = _Code(business_id=waba.business_id, issued_at=now)
            number.onboarded_at = now
            number.synced_types.clear()
            if coexistence:
                number.platform_type = "CLOUD_API"
                event = "FINISH_WHATSAPP_BUSINESS_APP_ONBOARDING"
                data: dict[str, Any] = {"waba_id": waba.id}
                if include_phone_number_id:
                    data = {
                        "phone_number_id": number.id,
                        "waba_id": waba.id,
                        "business_id": waba.business_id,
                    }
                session: dict[str, Any] = {
                    "type": "WA_EMBEDDED_SIGNUP",
                    "event": event,
                    "version": 3,
                    "data": data,
                }
            else:
                session = {
                    "type": "WA_EMBEDDED_SIGNUP",
                    "event": "FINISH",
                    "data": {
                        "phone_number_id": number.id,
                        "waba_id": waba.id,
                        "business_id": waba.business_id,
                    },
                }
            return SignupResult(
                code=code,
                session=session,
                business_id=waba.business_id,
                waba_id=waba.id,
                phone_number_id=number.id,
            )

    def _signup_number(
        self, waba: _Waba, phone_number_id: str | None, *, coexistence: bool
    ) -> _Number:
        if phone_number_id is None:
            for candidate_id in waba.number_ids:
                candidate = self._numbers[candidate_id]
                if candidate.is_on_biz_app or not coexistence:
                    return candidate
            raise ValueError(f"WABA {waba.id} has no number eligible for this signup")
        number = self._numbers.get(phone_number_id)
        if number is None or number.waba_id != waba.id:
            raise KeyError(f"phone number {phone_number_id} is not in WABA {waba.id}")
        if coexistence and not number.is_on_biz_app:
            raise ValueError(f"phone number {number.id} is not on the WhatsApp Business app")
        if not coexistence and number.is_on_biz_app:
            raise ValueError(
                f"phone number {number.id} is on the WhatsApp Business app; use coexistence"
            )
        return number

    @staticmethod
    def cancel_signup(current_step: str = "PHONE_NUMBER_SETUP") -> dict[str, Any]:
        """Return the session-info message of a customer abandoning Embedded Signup."""
        return {
            "type": "WA_EMBEDDED_SIGNUP",
            "event": "CANCEL",
            "data": {"current_step": current_step},
        }

    def fail_signup(
        self,
        error_message: str = "Your verified name violates WhatsApp guidelines.",
        error_code: str = "524126",
        *,
        session_id: str | None = None,
    ) -> dict[str, Any]:
        """Return the session-info message of a customer reporting an error (also ``CANCEL``)."""
        with self._lock:
            session = session_id or f"{self._rng.getrandbits(60):015x}"
            timestamp = str(int(self.now()))
        return {
            "type": "WA_EMBEDDED_SIGNUP",
            "event": "CANCEL",
            "data": {
                "error_message": error_message,
                "error_code": error_code,
                "session_id": session,
                "timestamp": timestamp,
            },
        }

    # ----------------------------------------------------------------- tokens

    def issue_token(self, business_id: str) -> str:
        """Mint a business token directly, skipping the code exchange (for other tests)."""
        with self._lock:
            if business_id not in self._businesses:
                raise KeyError(f"unknown business {business_id}")
            return self._mint_token(business_id)

    def _mint_token(self, business_id: str) -> str:
        token = "EAAG" + secrets.token_urlsafe(30)
        self._tokens[token] = _Token(business_id=business_id)
        return token

    def revoke_tokens(self, business_id: str) -> int:
        """Revoke every token of a business (models a dead token, code 190); return how many."""
        with self._lock:
            revoked = 0
            for token in self._tokens.values():
                if token.business_id == business_id and not token.revoked:
                    token.revoked = True
                    revoked += 1
            return revoked

    # ----------------------------------------------------------------- observations

    def accepted_syncs(self, phone_number_id: str | None = None) -> list[AcceptedSync]:
        """Return the accepted ``smb_app_data`` calls, oldest first, optionally for one number."""
        with self._lock:
            return [
                sync
                for sync in self._syncs
                if phone_number_id is None or sync.phone_number_id == phone_number_id
            ]

    def sent_messages(self, phone_number_id: str | None = None) -> list[SentMessage]:
        """Return the accepted sends, oldest first, optionally for one number."""
        with self._lock:
            return [
                sent
                for sent in self._sent
                if phone_number_id is None or sent.phone_number_id == phone_number_id
            ]

    def throughput_rejections(self, phone_number_id: str | None = None) -> int:
        """Return how many sends were refused with ``130429``, optionally for one number."""
        with self._lock:
            if phone_number_id is not None:
                return self._throughput_rejections.get(phone_number_id, 0)
            return sum(self._throughput_rejections.values())

    def set_message_throughput(self, phone_number_id: str, limit: float | None) -> None:
        """Accept at most ``limit`` sends per sliding second from this number (None: the
        sandbox's ``message_throughput``)."""
        with self._lock:
            if phone_number_id not in self._numbers:
                raise KeyError(f"unknown phone number {phone_number_id}")
            if limit is None:
                self._throughput.pop(phone_number_id, None)
            else:
                self._throughput[phone_number_id] = _check_throughput(limit)

    def message_throughput_for(self, phone_number_id: str) -> float:
        """The number of sends per sliding second the sandbox accepts from this number."""
        with self._lock:
            return self._throughput.get(phone_number_id, self.message_throughput)

    def call_counts(self) -> dict[str, int]:
        """Return the Graph calls received per endpoint key, whatever their outcome."""
        with self._lock:
            return dict(self._calls)

    def fault_counts(self) -> dict[str, dict[str, int]]:
        """Return the injected faults per endpoint key and kind."""
        with self._lock:
            return {endpoint: dict(kinds) for endpoint, kinds in self._fault_counts.items()}

    def stats(self) -> dict[str, Any]:
        """Return calls, injected faults and accepted syncs, as ``GET /_sandbox/stats`` does."""
        with self._lock:
            return {
                "calls": self.call_counts(),
                "faults": self.fault_counts(),
                "accepted_syncs": len(self._syncs),
                "media": len(self._media),
                "messages_sent": len(self._sent),
                "throughput_rejections": sum(self._throughput_rejections.values()),
            }

    def is_subscribed(self, waba_id: str) -> bool:
        """Whether the app is subscribed to the WABA's webhooks."""
        with self._lock:
            waba = self._wabas.get(waba_id)
            return waba is not None and waba.subscribed

    # ----------------------------------------------------------------- webhook hook

    def add_sync_listener(self, listener: SyncListener) -> None:
        """Call ``listener`` for each accepted ``smb_app_data`` call (see on_sync_accepted)."""
        with self._lock:
            self._listeners.append(listener)

    def remove_sync_listener(self, listener: SyncListener) -> None:
        """Stop calling ``listener``."""
        with self._lock:
            self._listeners.remove(listener)

    def on_sync_accepted(self, sync: AcceptedSync) -> None:
        """Hook run once per accepted ``smb_app_data`` call; webhook emission plugs in here.

        Runs outside the state lock, after the call is recorded and before the response is
        returned (or dropped by fault injection). A failing listener is logged and does not
        change the Graph response, as a webhook delivery problem would not.
        """
        with self._lock:
            listeners = list(self._listeners)
        for listener in listeners:
            try:
                listener(sync)
            except Exception:
                logger.exception(
                    "sandbox_sync_listener_failed",
                    extra={"phone_number_id": sync.phone_number_id, "sync_type": sync.sync_type},
                )

    # ----------------------------------------------------------------- webhooks and media

    def configure_webhooks(
        self,
        callback_url: str | None = None,
        sink: Sink | None = None,
        *,
        profile: HistoryProfile | None = None,
        mode: WebhookMode = "normal",
        echoes: int = 0,
        envelope_less_decline: bool = False,
        delivery: DeliveryOptions | None = None,
    ) -> WebhookDispatcher:
        """Deliver Meta's webhooks after accepted syncs to ``callback_url`` or ``sink``.

        See :class:`~.webhooks.WebhookConfig` for the fields. The first call creates the
        dispatcher and registers it as a sync listener; later calls reconfigure it.
        """
        config = WebhookConfig(
            callback_url=callback_url,
            sink=sink,
            profile=profile or HistoryProfile(),
            mode=mode,
            echoes=echoes,
            envelope_less_decline=envelope_less_decline,
            delivery=delivery or DeliveryOptions(),
        )
        return self.set_webhook_config(config)

    def set_webhook_config(self, config: WebhookConfig) -> WebhookDispatcher:
        """Apply a whole :class:`~.webhooks.WebhookConfig`, as ``PUT /_sandbox/webhooks`` does."""
        with self._lock:
            dispatcher = self._webhooks
            if dispatcher is None:
                dispatcher = WebhookDispatcher(self, config)
                self._webhooks = dispatcher
                self._listeners.append(dispatcher.on_sync_accepted)
                return dispatcher
        dispatcher.configure(config)
        return dispatcher

    @property
    def webhooks(self) -> WebhookDispatcher | None:
        """The webhook dispatcher, once :meth:`configure_webhooks` was called."""
        with self._lock:
            return self._webhooks

    def disable_webhooks(self, timeout: float = 5.0) -> None:
        """Stop delivering webhooks: drop pending deliveries and stop the dispatcher's threads."""
        with self._lock:
            dispatcher, self._webhooks = self._webhooks, None
            if dispatcher is not None:
                self._listeners.remove(dispatcher.on_sync_accepted)
        if dispatcher is not None:
            dispatcher.close(timeout)

    def webhook_signature(self, body: bytes) -> str:
        """``X-Hub-Signature-256`` for ``body``, keyed with this app's secret."""
        return sign_body(body, self._app_secret)

    def number_context(self, phone_number_id: str) -> NumberContext:
        """What webhook generation needs to know about an onboarded number.

        Raises ``KeyError`` for an unknown number and ``ValueError`` for one never onboarded.
        """
        with self._lock:
            number = self._numbers.get(phone_number_id)
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

    def register_media(self, phone_number_id: str, items: Iterable[MediaItem]) -> None:
        """Make media downloadable for ``media_ttl`` from now, as a follow-up webhook does.

        A medium registered again while still alive keeps its first registration time (a
        re-sent webhook does not extend it).
        """
        with self._lock:
            number = self._numbers.get(phone_number_id)
            if number is None:
                raise KeyError(f"unknown phone number {phone_number_id}")
            business_id = self._wabas[number.waba_id].business_id
            now = self.now()
            for item in items:
                known = self._media.get(item.media_id)
                if known is not None and not self._media_expired(known, now):
                    continue
                self._media[item.media_id] = _Media(item, business_id, number.id, now)

    def media_item(self, media_id: str) -> MediaItem | None:
        """The registered medium ``media_id`` if it has not expired."""
        with self._lock:
            media = self._media.get(media_id)
            if media is None or self._media_expired(media, self.now()):
                return None
            return media.item

    def _media_expired(self, media: _Media, now: float) -> bool:
        return now - media.registered_at > self.media_ttl

    # ----------------------------------------------------------------- HTTP entry points

    def mock_transport(self) -> httpx.MockTransport:
        """Return a transport serving this sandbox in-process; dropped responses disconnect."""

        def handler(request: httpx.Request) -> httpx.Response:
            try:
                return self.handle(request)
            except DroppedResponse as exc:
                raise httpx.RemoteProtocolError(
                    "Server disconnected without sending a response.", request=request
                ) from exc

        return httpx.MockTransport(handler)

    def handle(self, request: httpx.Request) -> httpx.Response:
        """Answer one request as Graph (or the control API) would.

        Raises :class:`DroppedResponse` when fault injection drops the response of a call that
        was applied. Injected latency sleeps in the calling thread, also under an
        ``httpx.AsyncClient``.
        """
        request.read()
        path = request.url.path
        if path == CONTROL_PREFIX or path.startswith(CONTROL_PREFIX + "/"):
            return control.handle_control(self, request)
        with self._lock:
            route = self._resolve(path)
            self._calls[route.endpoint] += 1
            plan = self._plan_faults(route)
            trace_id = new_fbtrace_id(self._trace_rng)
        if plan.delay_seconds > 0:
            self._sleep(plan.delay_seconds)
        if plan.error is not None:
            return self._render_error(plan.error, trace_id, route)
        accepted: AcceptedSync | None = None
        with self._lock:
            try:
                response, accepted = self._dispatch(request, route)
            except GraphReplyError as error:
                response = self._render_error(error, trace_id, route)
        if accepted is not None:
            self.on_sync_accepted(accepted)
        if plan.drop:
            raise DroppedResponse(route.endpoint, response)
        return response

    def _render_error(self, error: GraphReplyError, trace_id: str, route: _Route) -> httpx.Response:
        response = error.to_response(trace_id)
        if route.version:
            response.headers["facebook-api-version"] = route.version
        return response

    def _resolve(self, path: str) -> _Route:
        version, rest = _route(path)
        if version is None:
            if len(rest) == 2 and rest[0] == MEDIA_PREFIX:
                return _Route("media_download", "", rest[1], None)
            return _Route(UNKNOWN_ENDPOINT, "", rest[0] if rest else "", None)
        if rest == ["oauth", "access_token"]:
            return _Route("oauth", version, "oauth", "access_token")
        if len(rest) == 1:
            if rest[0] in self._wabas:
                endpoint = "waba"
            elif rest[0] in self._media:
                endpoint = "media"
            else:
                endpoint = "phone_number"
            return _Route(endpoint, version, rest[0], None)
        if len(rest) == 2:
            edge = rest[1]
            endpoint = edge if edge in EDGE_ENDPOINTS else UNKNOWN_ENDPOINT
            return _Route(endpoint, version, rest[0], edge)
        if len(rest) > 2:
            return _Route(UNKNOWN_ENDPOINT, version, rest[0], "/".join(rest[1:]))
        return _Route(UNKNOWN_ENDPOINT, version, "", None)

    def _plan_faults(self, route: _Route) -> _FaultPlan:
        if route.endpoint == UNKNOWN_ENDPOINT:
            return _FaultPlan()
        rule = self._faults.rule_for(route.endpoint)
        counts = self._fault_counts[route.endpoint]
        rng = self._fault_rng
        delay = 0.0
        if rule.latency_ms > 0 or rule.latency_jitter_ms > 0:
            jitter = rng.uniform(0.0, rule.latency_jitter_ms) if rule.latency_jitter_ms else 0.0
            delay = (rule.latency_ms + jitter) / 1000.0
            counts["latency"] += 1
        if rule.error_5xx > 0 and rng.random() < rule.error_5xx:
            counts["error_5xx"] += 1
            return _FaultPlan(delay, self._server_error(rng))
        if rule.throttle > 0 and rng.random() < rule.throttle:
            counts["throttle"] += 1
            return _FaultPlan(delay, self._throttle_error(rng, route, rule.throttle_regain_minutes))
        drop = rule.drop_after_apply > 0 and rng.random() < rule.drop_after_apply
        if drop:
            counts["drop_after_apply"] += 1
        return _FaultPlan(delay, None, drop)

    @staticmethod
    def _server_error(rng: random.Random) -> GraphReplyError:
        if rng.random() < 0.25:
            return GraphReplyError(
                "Service temporarily unavailable", 2, status=503, is_transient=True
            )
        return GraphReplyError("An unknown error has occurred.", 1, status=500, is_transient=False)

    def _throttle_error(
        self, rng: random.Random, route: _Route, regain_minutes: float = 1.0
    ) -> GraphReplyError:
        """Code 4 (app-level, ``X-App-Usage``) or 80007 (WABA-level, with
        ``X-Business-Use-Case-Usage`` carrying ``estimated_time_to_regain_access``)."""
        app_usage = json.dumps(
            {"call_count": 100, "total_cputime": 10, "total_time": 20}, separators=(",", ":")
        )
        if rng.random() < 0.5:
            return GraphReplyError(
                "(#4) Application request limit reached",
                4,
                is_transient=True,
                headers={"x-app-usage": app_usage},
            )
        owner = self.app_id
        if route.object_id in self._wabas:
            owner = route.object_id
        elif route.object_id in self._numbers:
            owner = self._numbers[route.object_id].waba_id
        headers: dict[str, str] = {}
        if regain_minutes > 0:
            usage = {
                owner: [
                    {
                        "type": "whatsapp_business_management",
                        "call_count": 100,
                        "total_cputime": 10,
                        "total_time": 20,
                        "estimated_time_to_regain_access": regain_minutes,
                    }
                ]
            }
            headers["x-business-use-case-usage"] = json.dumps(usage, separators=(",", ":"))
        return GraphReplyError(
            "(#80007) There have been too many calls to this WhatsApp Business account. "
            "Wait a bit and try again.",
            80007,
            headers=headers,
        )

    # ----------------------------------------------------------------- Graph dispatch

    def _ok(self, payload: Any, route: _Route) -> httpx.Response:
        return json_response(200, payload, {"facebook-api-version": route.version})

    def _dispatch(
        self, request: httpx.Request, route: _Route
    ) -> tuple[httpx.Response, AcceptedSync | None]:
        method = request.method.upper()
        params = self._params(request)
        if route.endpoint == "media_download":
            return self._download_media(request, route, params), None
        if route.endpoint == "oauth":
            if method not in {"GET", "POST"}:
                raise unsupported_request(method, "oauth")
            return self._exchange_code(params, route), None
        token = self._authenticate(request, params)
        if route.endpoint == "media":
            return self._media_node(request, route, token, params), None
        waba = self._wabas.get(route.object_id)
        number = self._numbers.get(route.object_id)
        if waba is not None and waba.business_id != token.business_id:
            waba = None
        if number is not None and self._wabas[number.waba_id].business_id != token.business_id:
            number = None
        if waba is None and number is None:
            raise unsupported_request(method, route.object_id)
        edge = route.edge
        if edge is not None and "/" in edge:
            raise GraphReplyError(f"Unknown path components: /{edge}", 2500)
        if edge is None:
            if method != "GET":
                raise unsupported_request(method, route.object_id)
            if number is not None:
                return self._ok(self._number_node(number, params), route), None
            assert waba is not None
            return self._ok(self._waba_node(waba, params), route), None
        if waba is not None:
            return self._waba_edge(request, route, waba, params), None
        assert number is not None
        return self._number_edge(request, route, number, params)

    # ----------------------------------------------------------------- media

    def _media_node(
        self, request: httpx.Request, route: _Route, token: _Token, params: Mapping[str, Any]
    ) -> httpx.Response:
        """``GET /{media_id}``: metadata and a short-lived download URL on the caller's host."""
        method = request.method.upper()
        media = self._media.get(route.object_id)
        now = self.now()
        if (
            method != "GET"
            or media is None
            or media.business_id != token.business_id
            or self._media_expired(media, now)
        ):
            raise unsupported_request(method, route.object_id)
        wanted_number = params.get("phone_number_id")
        if wanted_number and str(wanted_number) != media.phone_number_id:
            raise invalid_parameter(
                f"Media {route.object_id} does not belong to phone number {wanted_number}."
            )
        item = media.item
        payload = {
            "messaging_product": "whatsapp",
            "url": self._media_url(request, item.media_id, now),
            "mime_type": item.mime_type,
            "sha256": item.sha256,
            "file_size": item.file_size,
            "id": item.media_id,
        }
        return self._ok(payload, route)

    def _media_url(self, request: httpx.Request, media_id: str, now: float) -> str:
        opaque = secrets.token_urlsafe(16)
        expires = str(math.floor(now + self.media_url_ttl))
        query = urlencode(
            {
                "mid": media_id,
                "ext": expires,
                "hash": self._media_url_hash(opaque, media_id, expires),
            }
        )
        origin = f"{request.url.scheme}://{request.url.netloc.decode('ascii')}"
        return f"{origin}/{MEDIA_PREFIX}/{opaque}?{query}"

    def _media_url_hash(self, opaque: str, media_id: str, expires: str) -> str:
        message = f"{opaque}:{media_id}:{expires}".encode()
        return hmac.new(self._media_url_key, message, hashlib.sha256).hexdigest()[:32]

    def _download_media(
        self, request: httpx.Request, route: _Route, params: Mapping[str, Any]
    ) -> httpx.Response:
        """``GET /_media/{opaque}``: the bytes, for the owning business's bearer token only."""
        if request.method.upper() != "GET":
            return _cdn_response(405, b"Method Not Allowed")
        header = request.headers.get("authorization", "")
        scheme, _, raw = header.strip().partition(" ")
        token = self._tokens.get(raw.strip()) if scheme.lower() == "bearer" else None
        if token is None or token.revoked:
            return _cdn_response(401, b"Unauthorized", {"www-authenticate": "Bearer"})
        media_id = str(params.get("mid", ""))
        expires = str(params.get("ext", ""))
        expected = self._media_url_hash(route.object_id, media_id, expires)
        if not hmac.compare_digest(str(params.get("hash", "")).encode(), expected.encode()):
            return _cdn_response(404, b"Not Found")
        now = self.now()
        media = self._media.get(media_id)
        if (
            not expires.isdigit()
            or now > int(expires)
            or media is None
            or media.business_id != token.business_id
            or self._media_expired(media, now)
        ):
            return _cdn_response(404, b"Not Found")
        item = media.item
        return httpx.Response(
            200,
            content=item.content(),
            headers={"content-type": item.mime_type, "cache-control": "private, max-age=300"},
        )

    def _params(self, request: httpx.Request) -> dict[str, Any]:
        """Merge query parameters and a form or JSON body, as Graph does."""
        params: dict[str, Any] = dict(request.url.params.items())
        body = request.content
        if not body.strip():
            return params
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type == "application/x-www-form-urlencoded":
            params.update(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
            return params
        try:
            decoded = json.loads(body)
        except (UnicodeDecodeError, ValueError):
            raise GraphReplyError(
                "(#100) The request body could not be parsed: expected a JSON object", 100
            ) from None
        if not isinstance(decoded, dict):
            raise GraphReplyError(
                "(#100) The request body could not be parsed: expected a JSON object", 100
            )
        params.update(decoded)
        return params

    def _authenticate(self, request: httpx.Request, params: Mapping[str, Any]) -> _Token:
        header = request.headers.get("authorization")
        raw: Any
        if header is not None:
            scheme, _, raw = header.strip().partition(" ")
            if scheme.lower() not in {"bearer", "oauth"}:
                raise invalid_token()
            raw = raw.strip()
        else:
            raw = params.get("access_token")
        if not raw:
            raise missing_token()
        token = self._tokens.get(raw) if isinstance(raw, str) else None
        if token is None:
            raise invalid_token()
        if token.revoked:
            raise revoked_token(self.app_id)
        return token

    def _exchange_code(self, params: Mapping[str, Any], route: _Route) -> httpx.Response:
        for name in ("client_id", "client_secret", "code"):
            if not params.get(name):
                raise GraphReplyError(f"Missing {name} parameter.", 100)
        if str(params["client_id"]) != self.app_id:
            raise GraphReplyError("Error validating application. Invalid application ID.", 101)
        if not hmac.compare_digest(
            str(params["client_secret"]).encode(), self._app_secret.encode()
        ):
            raise GraphReplyError("Error validating client secret.", 1)
        record = self._codes.get(str(params["code"]))
        if record is None:
            raise GraphReplyError("Invalid verification code format.", 100, subcode=36008)
        if record.used:
            raise GraphReplyError("This authorization code has been used.", 100, subcode=36009)
        if self.now() - record.issued_at > self.code_ttl:
            raise GraphReplyError("This authorization code has expired.", 100, subcode=36007)
        record.used = True
        token = self._mint_token(record.business_id)
        return self._ok({"access_token": token, "token_type": "bearer"}, route)

    # ----------------------------------------------------------------- nodes

    @staticmethod
    def _number_values(number: _Number) -> dict[str, Any]:
        """Every field of a number node, in Graph's formats (``None`` = absent)."""
        onboarded = None
        if number.onboarded_at is not None:
            moment = datetime.fromtimestamp(number.onboarded_at, tz=UTC)
            onboarded = moment.strftime("%Y-%m-%dT%H:%M:%S+0000")
        return {
            "id": number.id,
            "display_phone_number": format_display_number(number.digits),
            "verified_name": number.verified_name,
            "quality_rating": number.quality_rating,
            "code_verification_status": "VERIFIED",
            "status": number.status,
            "name_status": "APPROVED",
            "platform_type": number.platform_type,
            "throughput": {"level": "STANDARD"},
            "is_on_biz_app": number.is_on_biz_app,
            "account_mode": "LIVE",
            "is_official_business_account": False,
            "whatsapp_business_manager_messaging_limit": "TIER_2K",
            "last_onboarded_time": onboarded,
        }

    @staticmethod
    def _select(requested: Iterable[str], known: Sequence[str], node_type: str) -> list[str]:
        names = list(requested)
        for name in names:
            if name not in known:
                raise nonexisting_field(name, node_type)
        if "id" not in names:
            names.append("id")
        return names

    def _render_number(self, number: _Number, names: Iterable[str]) -> dict[str, Any]:
        values = self._number_values(number)
        return {name: values[name] for name in names if values[name] is not None}

    def _number_node(self, number: _Number, params: Mapping[str, Any]) -> dict[str, Any]:
        requested = _parse_fields(params.get("fields"))
        names = self._select(requested or NODE_DEFAULT_FIELDS, PHONE_FIELDS, NUMBER_NODE)
        return self._render_number(number, names)

    def _waba_node(self, waba: _Waba, params: Mapping[str, Any]) -> dict[str, Any]:
        requested = _parse_fields(params.get("fields"))
        names = self._select(requested or WABA_DEFAULT_FIELDS, WABA_FIELDS, WABA_NODE)
        values: dict[str, Any] = {
            "id": waba.id,
            "name": waba.name,
            "currency": "USD",
            "timezone_id": "1",
            "account_review_status": "APPROVED",
        }
        return {name: values[name] for name in names}

    # ----------------------------------------------------------------- WABA edges

    def _waba_edge(
        self, request: httpx.Request, route: _Route, waba: _Waba, params: Mapping[str, Any]
    ) -> httpx.Response:
        method = request.method.upper()
        edge = route.edge or ""
        if edge == "phone_numbers" and method == "GET":
            return self._ok(self._list_numbers(request, route, waba, params), route)
        if edge == "subscribed_apps":
            if method == "GET":
                return self._ok(self._subscriptions(waba), route)
            if method == "POST":
                self._subscribe(waba, params)
                return self._ok({"success": True}, route)
            if method == "DELETE":
                waba.subscribed = False
                waba.override_callback_uri = None
                return self._ok({"success": True}, route)
        if method == "GET":
            raise nonexisting_field(edge, WABA_NODE)
        raise unsupported_request(method, waba.id)

    def _list_numbers(
        self, request: httpx.Request, route: _Route, waba: _Waba, params: Mapping[str, Any]
    ) -> dict[str, Any]:
        requested = _parse_fields(params.get("fields"))
        if requested:
            names = self._select(requested, PHONE_FIELDS, NUMBER_NODE)
            if not self.list_includes_biz_app_fields:
                names = [name for name in names if name not in BIZ_APP_FIELDS]
        else:
            names = list(LIST_DEFAULT_FIELDS)
        limit = self._limit(params.get("limit"))
        ids = waba.number_ids
        if params.get("after"):
            start = self._cursor_index(str(params["after"]), waba) + 1
            end = start + limit
        elif params.get("before"):
            end = self._cursor_index(str(params["before"]), waba)
            start = max(end - limit, 0)
        else:
            start, end = 0, limit
        page_ids = ids[start:end]
        result: dict[str, Any] = {
            "data": [self._render_number(self._numbers[pid], names) for pid in page_ids]
        }
        if not page_ids:
            return result
        before, after = self._cursor(waba, page_ids[0]), self._cursor(waba, page_ids[-1])
        paging: dict[str, Any] = {"cursors": {"before": before, "after": after}}
        if start > 0:
            paging["previous"] = self._page_url(request, route, limit, "before", before)
        if end < len(ids):
            paging["next"] = self._page_url(request, route, limit, "after", after)
        result["paging"] = paging
        return result

    @staticmethod
    def _limit(raw: Any) -> int:
        if raw is None or raw == "":
            return DEFAULT_PAGE_LIMIT
        try:
            limit = int(raw)
        except (TypeError, ValueError):
            raise GraphReplyError("(#100) Param limit must be a positive integer", 100) from None
        if limit <= 0:
            raise GraphReplyError("(#100) Param limit must be a positive integer", 100)
        return limit

    @staticmethod
    def _cursor(waba: _Waba, number_id: str) -> str:
        raw = f"sandbox:{waba.id}:{number_id}".encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    def _cursor_index(self, cursor: str, waba: _Waba) -> int:
        try:
            padded = cursor + "=" * (-len(cursor) % 4)
            prefix, waba_id, number_id = (
                base64.urlsafe_b64decode(padded.encode()).decode().split(":")
            )
        except (ValueError, binascii.Error, UnicodeDecodeError):
            raise GraphReplyError("(#100) Invalid pagination cursor", 100) from None
        if prefix != "sandbox" or waba_id != waba.id or number_id not in waba.number_ids:
            raise GraphReplyError("(#100) Invalid pagination cursor", 100)
        return waba.number_ids.index(number_id)

    @staticmethod
    def _page_url(
        request: httpx.Request, route: _Route, limit: int, direction: str, cursor: str
    ) -> str:
        kept = [
            (key, value)
            for key, value in request.url.params.multi_items()
            if key not in {"after", "before", "limit"}
        ]
        query = urlencode([*kept, ("limit", str(limit)), (direction, cursor)])
        origin = f"{request.url.scheme}://{request.url.netloc.decode('ascii')}"
        return f"{origin}/{route.version}/{route.object_id}/phone_numbers?{query}"

    def _subscriptions(self, waba: _Waba) -> dict[str, Any]:
        if not waba.subscribed:
            return {"data": []}
        item: dict[str, Any] = {
            "whatsapp_business_api_data": {
                "id": self.app_id,
                "link": f"https://www.facebook.com/games/?app_id={self.app_id}",
                "name": self.app_name,
            }
        }
        if waba.override_callback_uri:
            item["override_callback_uri"] = waba.override_callback_uri
        return {"data": [item]}

    @staticmethod
    def _subscribe(waba: _Waba, params: Mapping[str, Any]) -> None:
        uri = params.get("override_callback_uri")
        verify_token = params.get("verify_token")
        if uri is None and verify_token is None:
            waba.subscribed = True
            waba.override_callback_uri = None
            return
        if not isinstance(uri, str) or not uri or not isinstance(verify_token, str):
            raise GraphReplyError(
                "(#100) override_callback_uri and verify_token must be provided together", 100
            )
        if len(uri) > 200 or not uri.startswith("https://"):
            raise GraphReplyError(
                "(#100) Param override_callback_uri must be an https URL of at most 200 characters",
                100,
            )
        waba.subscribed = True
        waba.override_callback_uri = uri

    # ----------------------------------------------------------------- number edges

    def _number_edge(
        self, request: httpx.Request, route: _Route, number: _Number, params: Mapping[str, Any]
    ) -> tuple[httpx.Response, AcceptedSync | None]:
        method = request.method.upper()
        edge = route.edge or ""
        if method == "POST" and edge == "smb_app_data":
            accepted = self._sync(number, params)
            payload = {"messaging_product": "whatsapp", "request_id": accepted.request_id}
            return self._ok(payload, route), accepted
        if method == "POST" and edge in {"register", "deregister"}:
            self._registration(number, edge, params)
            return self._ok({"success": True}, route), None
        if method == "POST" and edge == "messages":
            return self._ok(self._send_message(number, params), route), None
        if method == "GET" and edge not in POST_ONLY_EDGES:
            raise nonexisting_field(edge, NUMBER_NODE)
        raise unsupported_request(method, number.id)

    def _sync(self, number: _Number, params: Mapping[str, Any]) -> AcceptedSync:
        product = params.get("messaging_product")
        if product is None:
            raise invalid_parameter("The parameter messaging_product is required.")
        if product != "whatsapp":
            raise invalid_parameter(f"Param messaging_product must be 'whatsapp', got {product!r}.")
        sync_type = params.get("sync_type")
        if sync_type is None:
            raise invalid_parameter("The parameter sync_type is required.")
        if sync_type not in SYNC_TYPES:
            raise invalid_parameter(
                f"Param sync_type must be one of {{{', '.join(SYNC_TYPES)}}}, got {sync_type!r}."
            )
        if not number.is_on_biz_app:
            raise invalid_parameter(
                f"Phone number {number.id} is not connected to the WhatsApp Business app; "
                "smb_app_data is only available for numbers onboarded from the WhatsApp "
                "Business app (coexistence)."
            )
        now = self.now()
        if number.onboarded_at is None or now - number.onboarded_at > self.sync_window:
            raise GraphReplyError(
                "(#2593108) Synchronization request can only be made within 24 hours of onboarding",
                2593108,
                error_data={
                    "messaging_product": "whatsapp",
                    "details": "You can only initiate contacts and messaging history "
                    "synchronization within 24 hours of onboarding. Offboard and onboard "
                    "again to synchronize.",
                },
            )
        if sync_type in number.synced_types:
            raise GraphReplyError(
                "(#2593107) Too many synchronization requests",
                2593107,
                error_data={
                    "messaging_product": "whatsapp",
                    "details": "Only one synchronization request per sync type is allowed",
                },
            )
        number.synced_types.add(sync_type)
        accepted = AcceptedSync(
            phone_number_id=number.id,
            waba_id=number.waba_id,
            sync_type=sync_type,
            request_id=str(self._rng.randrange(10**15, 10**16)),
            accepted_at=now,
        )
        self._syncs.append(accepted)
        return accepted

    def _send_message(self, number: _Number, params: Mapping[str, Any]) -> dict[str, Any]:
        """``POST /{phone_number_id}/messages``: validate, enforce throughput, accept and record."""
        product = params.get("messaging_product")
        if product is None:
            raise invalid_parameter("The parameter messaging_product is required.")
        if product != "whatsapp":
            raise invalid_parameter(f"Param messaging_product must be 'whatsapp', got {product!r}.")
        recipient_type = params.get("recipient_type", "individual")
        if recipient_type != "individual":
            raise invalid_parameter("Param recipient_type must be 'individual'.")
        to = params.get("to")
        if to is None:
            raise invalid_parameter("The parameter to is required.")
        wa_id = to.removeprefix("+") if isinstance(to, str) else ""
        if not wa_id.isdigit() or not 6 <= len(wa_id) <= 15:
            raise invalid_parameter("Param to must be a phone number: digits, optionally after +.")
        kind = params.get("type", "text")
        if kind not in MESSAGE_TYPES:
            raise invalid_parameter(
                f"Param type must be one of {{{', '.join(MESSAGE_TYPES)}}} in the sandbox, "
                f"got {kind!r}."
            )
        if kind == "text":
            _check_text(params.get("text"))
        else:
            _check_template(params.get("template"))
        if number.platform_type != "CLOUD_API":
            raise GraphReplyError(
                "(#133010) Account not registered",
                133010,
                error_data={
                    "messaging_product": "whatsapp",
                    "details": "Phone number not registered on the Whatsapp Business Platform.",
                },
            )
        now = self.now()
        window = self._send_windows.setdefault(number.id, deque())
        while window and window[0] <= now - THROUGHPUT_WINDOW:
            window.popleft()
        if len(window) >= self._throughput.get(number.id, self.message_throughput):
            self._throughput_rejections[number.id] = (
                self._throughput_rejections.get(number.id, 0) + 1
            )
            raise GraphReplyError(
                "(#130429) Rate limit hit",
                130429,
                error_data={
                    "messaging_product": "whatsapp",
                    "details": "Cloud API message throughput has been reached.",
                },
            )
        window.append(now)
        wamid = self._new_wamid(wa_id)
        self._sent.append(SentMessage(number.id, wa_id, wamid, kind, now))
        message: dict[str, Any] = {"id": wamid}
        if kind == "template":
            message["message_status"] = "accepted"
        return {
            "messaging_product": "whatsapp",
            "contacts": [{"input": to, "wa_id": wa_id}],
            "messages": [message],
        }

    def _new_wamid(self, wa_id: str) -> str:
        """A message id in the shape of Meta's: ``wamid.`` and base64 of the recipient and an id."""
        raw = (
            b"\x1c\x18"
            + bytes([len(wa_id)])
            + wa_id.encode()
            + b"\x15\x02\x00\x11\x18\x12"
            + f"{self._rng.getrandbits(72):018X}".encode()
            + b"\x00"
        )
        return "wamid." + base64.b64encode(raw).decode()

    def _registration(self, number: _Number, edge: str, params: Mapping[str, Any]) -> None:
        if number.is_on_biz_app:
            raise GraphReplyError(
                f"(#100) Phone number {number.id} is on the WhatsApp Business app (coexistence) "
                "and already registered; it must not be registered or deregistered through "
                "the Cloud API",
                100,
                error_data={
                    "messaging_product": "whatsapp",
                    "details": f"{edge} is not allowed on a number onboarded from the "
                    "WhatsApp Business app",
                },
            )
        if params.get("messaging_product") != "whatsapp":
            raise invalid_parameter("The parameter messaging_product is required.")
        if edge == "register":
            pin = params.get("pin")
            if not isinstance(pin, str) or not re.fullmatch(r"\d{6}", pin):
                raise invalid_parameter("Param pin must be a 6-digit string.")
            number.platform_type = "CLOUD_API"
        else:
            number.platform_type = "NOT_APPLICABLE"
