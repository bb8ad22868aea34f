"""The sandbox's facade: :class:`Sandbox`, a faithful fake of the Meta endpoints coexist uses.

:class:`Sandbox` holds one Meta app (id and secret), businesses with one WhatsApp Business
Account (WABA) each and their phone numbers, signup codes, business tokens, WABA subscriptions and
accepted ``smb_app_data`` calls, all behind one re-entrant lock. :meth:`Sandbox.handle` answers
an ``httpx.Request`` the way Graph would (docs/meta.md, sections 1 to 3 and 8), error bodies
included:

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
``GET  /{ver}/debug_token?input_token=``              token state, app token (``debug_token``)
``GET  /_media/{opaque}?mid=&ext=&hash=``             media download, bearer (``media_download``)
``/_sandbox/...``                                     control API (:mod:`.control`), not Meta
====================================================  ==========================================

After an accepted ``smb_app_data`` call, the webhooks Meta sends (history, contacts, echoes,
late-media webhooks) are generated and delivered by a :class:`~.webhooks.WebhookDispatcher` set
up with :meth:`Sandbox.configure_webhooks`; the media they announce are served by
:mod:`.media`. Sends are :mod:`.messages`, with Meta's per-number throughput
(:meth:`Sandbox.set_message_throughput` changes one number's limit, :meth:`Sandbox.sent_messages`
lists the accepted ones).

The part of Embedded Signup that happens in the customer's browser is simulated by
:meth:`Sandbox.complete_signup`, which mints the 30-second code and returns the session-info
message, and by :meth:`Sandbox.cancel_signup` / :meth:`Sandbox.fail_signup`.

Fault injection (:mod:`.faults`) adds latency, 5xx errors, throttling and responses dropped after
the call was applied (:class:`DroppedResponse`). Through :meth:`Sandbox.mock_transport` a dropped
response surfaces as ``httpx.RemoteProtocolError``; the real server (:mod:`.server`) closes the
connection instead of answering.

The state lives in :mod:`.world`; requests are routed by :mod:`.routes` and answered by
:mod:`.graph` and the endpoint modules it dispatches to. The clock is ``time.time`` looked up at
call time (so freezegun works) plus an offset moved by :meth:`Sandbox.advance_clock`; tests can
inject their own clock instead.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any

import httpx

from onboarding.sandbox.control import handle_control
from onboarding.sandbox.errors import GraphReplyError, new_fbtrace_id
from onboarding.sandbox.faults import ENDPOINTS, Faults
from onboarding.sandbox.graph import dispatch
from onboarding.sandbox.hosted import HOSTED_PATHS, SDK_PATH, dialog_page, sdk_script
from onboarding.sandbox.injection import DroppedResponse, FaultInjector, FaultPlan
from onboarding.sandbox.media import MEDIA_TTL, MEDIA_URL_TTL, media_item, register_media
from onboarding.sandbox.media_items import MediaItem
from onboarding.sandbox.profile import HistoryProfile, NumberContext
from onboarding.sandbox.records import (
    AcceptedSync,
    Business,
    NumberSpec,
    SentMessage,
    SignupResult,
    SyncListener,
)
from onboarding.sandbox.routes import (
    UNKNOWN_ENDPOINT,
    Route,
    is_control,
    origin,
    render_error,
    resolve,
)
from onboarding.sandbox.signing import sign_body
from onboarding.sandbox.signups import (
    cancel_signup,
    complete_signup,
    fail_signup,
    finish_other_flow,
)
from onboarding.sandbox.sinks import Sink
from onboarding.sandbox.throughput import MESSAGE_THROUGHPUT, check_throughput
from onboarding.sandbox.waba_edges import subscribe
from onboarding.sandbox.webhook_config import DeliveryOptions, WebhookConfig, WebhookMode
from onboarding.sandbox.webhook_routing import override_for
from onboarding.sandbox.webhooks import WebhookDispatcher
from onboarding.sandbox.world import AppRules, World

logger = logging.getLogger(__name__)


def _system_sleep(seconds: float) -> None:
    """``time.sleep()``, looked up at each call."""
    time.sleep(seconds)


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
        require_appsecret_proof: bool = False,
    ) -> None:
        """Configure the app and the rules.

        ``clock`` returns Unix seconds (default: ``time.time()`` at call time); ``sleep`` is used
        for injected latency. ``code_ttl`` is the signup code's lifetime, ``sync_window`` the
        time after signup during which ``smb_app_data`` is accepted.
        ``list_includes_biz_app_fields=False`` models Meta omitting ``is_on_biz_app`` and
        ``platform_type`` from ``/{waba_id}/phone_numbers`` even when requested. ``seed`` makes
        generated ids reproducible; ``faults.seed`` does the same for fault draws.
        ``media_ttl`` is how long a media id lives after its late-media webhook (7 days) and
        ``media_url_ttl`` how long a download URL lives (5 minutes). ``message_throughput`` is
        how many sends per number are accepted in any sliding second (20).
        ``require_appsecret_proof`` models the app setting "Require App Secret": calls carrying
        a token without a valid ``appsecret_proof`` are refused (code 100).
        """
        if not app_id or not app_secret:
            raise ValueError("app_id and app_secret are required")
        if code_ttl <= 0 or sync_window <= 0:
            raise ValueError("code_ttl and sync_window must be positive")
        if media_ttl <= 0 or media_url_ttl <= 0:
            raise ValueError("media_ttl and media_url_ttl must be positive")
        rules = AppRules(
            app_id=app_id,
            app_secret=app_secret,
            app_name=app_name,
            code_ttl=code_ttl,
            sync_window=sync_window,
            list_includes_biz_app_fields=list_includes_biz_app_fields,
            media_ttl=media_ttl,
            media_url_ttl=media_url_ttl,
            message_throughput=check_throughput(message_throughput),
            require_appsecret_proof=require_appsecret_proof,
        )
        self._world = World(rules, clock=clock, seed=seed)
        self._lock = self._world.lock
        self._sleep: Callable[[float], None] = sleep or _system_sleep
        self._initial_faults = faults or Faults()
        self._listeners: list[SyncListener] = []
        self._webhooks: WebhookDispatcher | None = None
        self._reset_traffic()

    def __repr__(self) -> str:
        """Show the app id only; the secret never appears."""
        return f"Sandbox(app_id={self.app_id!r})"

    def _reset_traffic(self) -> None:
        with self._lock:
            self._calls: dict[str, int] = dict.fromkeys((*ENDPOINTS, UNKNOWN_ENDPOINT), 0)
            self._injector = FaultInjector(self._initial_faults)

    def reset(self) -> None:
        """Forget all businesses, codes, tokens, syncs, media, sends, per-number throughput
        limits and counters; restore the faults.

        Sync listeners and the webhook configuration stay: they are wiring, not state. Pending
        webhook deliveries are dropped and their counters zeroed.
        """
        with self._lock:
            self._world.reset()
            self._reset_traffic()
            dispatcher = self._webhooks
        if dispatcher is not None:
            dispatcher.reset()

    # ----------------------------------------------------------------- the app and its rules

    @property
    def app_id(self) -> str:
        """The Meta app's id."""
        return self._world.rules.app_id

    @property
    def app_name(self) -> str:
        """The Meta app's name, as ``subscribed_apps`` shows it."""
        return self._world.rules.app_name

    @property
    def code_ttl(self) -> float:
        """Seconds a signup code may be exchanged."""
        return self._world.rules.code_ttl

    @property
    def sync_window(self) -> float:
        """Seconds after signup during which ``smb_app_data`` is accepted."""
        return self._world.rules.sync_window

    @property
    def list_includes_biz_app_fields(self) -> bool:
        """Whether ``/{waba_id}/phone_numbers`` answers ``is_on_biz_app`` and
        ``platform_type`` when asked."""
        return self._world.rules.list_includes_biz_app_fields

    @property
    def media_ttl(self) -> float:
        """Seconds a media id lives after its late-media webhook."""
        return self._world.rules.media_ttl

    @property
    def media_url_ttl(self) -> float:
        """Seconds a media download URL lives."""
        return self._world.rules.media_url_ttl

    @property
    def message_throughput(self) -> float:
        """Sends per number accepted in any sliding second, unless the number has its own."""
        return self._world.rules.message_throughput

    @property
    def require_appsecret_proof(self) -> bool:
        """Whether calls carrying a token must carry ``appsecret_proof``."""
        return self._world.rules.require_appsecret_proof

    def set_require_appsecret_proof(self, required: bool) -> None:
        """Turn the app's "Require App Secret" setting on or off."""
        with self._lock:
            self._world.rules = replace(self._world.rules, require_appsecret_proof=required)

    # ----------------------------------------------------------------- clock and faults

    def now(self) -> float:
        """Return the sandbox's current Unix time (clock plus offset)."""
        return self._world.now()

    @property
    def clock_offset(self) -> float:
        """Seconds added to the clock by :meth:`advance_clock` since construction or reset."""
        return self._world.clock_offset

    def advance_clock(self, seconds: float) -> float:
        """Move the sandbox's clock forward by ``seconds`` and return the new time."""
        return self._world.advance_clock(seconds)

    @property
    def faults(self) -> Faults:
        """The fault configuration in force."""
        with self._lock:
            return self._injector.faults

    def set_faults(self, faults: Faults | None) -> None:
        """Replace the fault configuration (``None`` = no faults); a seed re-seeds the RNG."""
        with self._lock:
            self._injector.set(faults or Faults())

    # ----------------------------------------------------------------- seeding and signup

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
            specs = [NumberSpec(is_on_biz_app=coexistence) for _ in range(numbers)]
        else:
            specs = [
                spec
                if isinstance(spec, NumberSpec)
                else NumberSpec(display_phone_number=spec, is_on_biz_app=coexistence)
                for spec in numbers
            ]
        return self._world.add_business(name, specs)

    def complete_signup(
        self,
        waba_id: str,
        phone_number_id: str | None = None,
        *,
        coexistence: bool = True,
        include_phone_number_id: bool = False,
        session_version: int | None = None,
    ) -> SignupResult:
        """Simulate the customer finishing Embedded Signup for one number of a WABA.

        Mints a single-use code valid for ``code_ttl`` seconds and starts the number's
        ``smb_app_data`` window (a new onboarding: the once-per-type record is cleared). With
        ``phone_number_id`` unset, picks the WABA's first number on the Business app
        (coexistence) or its first number. Returns the code and the session-info message: for
        coexistence ``FINISH_WHATSAPP_BUSINESS_APP_ONBOARDING`` with only ``waba_id`` unless
        ``include_phone_number_id``; otherwise ``FINISH`` with all three ids. The message is
        v4's (no ``version``) unless ``session_version=3``.
        """
        return complete_signup(
            self._world,
            waba_id,
            phone_number_id,
            coexistence=coexistence,
            include_phone_number_id=include_phone_number_id,
            session_version=session_version,
        )

    def finish_other_flow(self, waba_id: str, event: str = "FINISH_ONLY_WABA") -> dict[str, Any]:
        """Return the v4 message of a finish coexist does not onboard (``FINISH_ONLY_WABA``…)."""
        return finish_other_flow(self._world, waba_id, event)

    @staticmethod
    def cancel_signup(current_step: str = "PHONE_NUMBER_SETUP") -> dict[str, Any]:
        """Return the session-info message of a customer abandoning Embedded Signup."""
        return cancel_signup(current_step)

    def fail_signup(
        self,
        error_message: str = "Your verified name violates WhatsApp guidelines.",
        error_code: str = "524126",
        *,
        session_id: str | None = None,
    ) -> dict[str, Any]:
        """Return the session-info message of a customer reporting an error (also ``CANCEL``)."""
        return fail_signup(self._world, error_message, error_code, session_id)

    # ----------------------------------------------------------------- tokens

    def issue_token(self, business_id: str) -> str:
        """Mint a business token directly, skipping the code exchange (for other tests)."""
        return self._world.issue_token(business_id)

    def owner_of(self, waba_id: str) -> str:
        """The id of the business owning ``waba_id`` (``KeyError`` if unknown)."""
        with self._lock:
            return self._world.owner_of(waba_id)

    def revoke_tokens(self, business_id: str) -> int:
        """Revoke every token of a business (models a dead token, code 190); return how many."""
        return self._world.revoke_tokens(business_id)

    # ----------------------------------------------------------------- observations

    def accepted_syncs(self, phone_number_id: str | None = None) -> list[AcceptedSync]:
        """Return the accepted ``smb_app_data`` calls, oldest first, optionally for one number."""
        with self._lock:
            return [
                sync
                for sync in self._world.syncs
                if phone_number_id is None or sync.phone_number_id == phone_number_id
            ]

    def sent_messages(self, phone_number_id: str | None = None) -> list[SentMessage]:
        """Return the accepted sends, oldest first, optionally for one number."""
        with self._lock:
            return self._world.sends.sent(phone_number_id)

    def throughput_rejections(self, phone_number_id: str | None = None) -> int:
        """Return how many sends were refused with ``130429``, optionally for one number."""
        with self._lock:
            return self._world.sends.rejections(phone_number_id)

    def set_message_throughput(self, phone_number_id: str, limit: float | None) -> None:
        """Accept at most ``limit`` sends per sliding second from this number (None: the
        sandbox's ``message_throughput``)."""
        with self._lock:
            if phone_number_id not in self._world.numbers:
                raise KeyError(f"unknown phone number {phone_number_id}")
            self._world.sends.set_limit(phone_number_id, limit)

    def message_throughput_for(self, phone_number_id: str) -> float:
        """The number of sends per sliding second the sandbox accepts from this number."""
        with self._lock:
            return self._world.sends.limit_for(phone_number_id)

    def call_counts(self) -> dict[str, int]:
        """Return the Graph calls received per endpoint key, whatever their outcome."""
        with self._lock:
            return dict(self._calls)

    def fault_counts(self) -> dict[str, dict[str, int]]:
        """Return the injected faults per endpoint key and kind."""
        with self._lock:
            return self._injector.counts()

    def stats(self) -> dict[str, Any]:
        """Return calls, injected faults and accepted syncs, as ``GET /_sandbox/stats`` does."""
        with self._lock:
            world = self._world
            return {
                "calls": self.call_counts(),
                "faults": self.fault_counts(),
                "accepted_syncs": len(world.syncs),
                "media": len(world.media),
                "messages_sent": world.sends.sent_count(),
                "throughput_rejections": world.sends.rejections(),
            }

    def is_subscribed(self, waba_id: str) -> bool:
        """Whether the app is subscribed to the WABA's webhooks."""
        return self._world.is_subscribed(waba_id)

    def webhook_override(self, waba_id: str) -> tuple[str, str] | None:
        """The WABA's override as ``(override_callback_uri, verify_token)``, or None."""
        with self._lock:
            waba = self._world.wabas[waba_id]
            if waba.override_callback_uri is None:
                return None
            return waba.override_callback_uri, waba.override_verify_token or ""

    def set_webhook_override(self, waba_id: str, uri: str, verify_token: str) -> None:
        """Subscribe the app with a WABA override, as the provider might have done elsewhere."""
        params = {"override_callback_uri": uri, "verify_token": verify_token}
        with self._lock:
            subscribe(self._world.wabas[waba_id], params)

    def set_number_webhook_override(self, phone_number_id: str, uri: str | None) -> None:
        """Set (or with None clear) a number's own webhook override, ahead of its WABA's."""
        with self._lock:
            self._world.numbers[phone_number_id].override_callback_uri = uri

    def webhook_route(self, waba_id: str, phone_number_id: str | None, field: str) -> str | None:
        """The override a change of ``field`` goes to, or None for the app's callback."""
        with self._lock:
            return override_for(self._world, waba_id, phone_number_id, field)

    def unsubscribe(self, waba_id: str) -> None:
        """Remove the app's subscription (and override), as ``DELETE subscribed_apps`` does."""
        with self._lock:
            waba = self._world.wabas[waba_id]
            waba.subscribed = False
            waba.override_callback_uri = None
            waba.override_verify_token = None

    def set_number_platform(
        self,
        phone_number_id: str,
        *,
        is_on_biz_app: bool | None = None,
        platform_type: str | None = None,
    ) -> None:
        """Change what ``GET /{phone-number-id}`` answers for ``is_on_biz_app`` and
        ``platform_type`` (a number leaving coexistence, say)."""
        with self._lock:
            number = self._world.numbers[phone_number_id]
            if is_on_biz_app is not None:
                number.is_on_biz_app = is_on_biz_app
            if platform_type is not None:
                number.platform_type = platform_type

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
        override_targets: Mapping[str, str] | None = None,
    ) -> WebhookDispatcher:
        """Deliver Meta's webhooks after accepted syncs to ``callback_url`` or ``sink``.

        See :class:`~.webhook_config.WebhookConfig` for the fields. The first call creates the
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
            override_targets=dict(override_targets or {}),
        )
        return self.set_webhook_config(config)

    def set_webhook_config(self, config: WebhookConfig) -> WebhookDispatcher:
        """Apply a whole :class:`~.webhook_config.WebhookConfig`, as ``PUT /_sandbox/webhooks``
        does."""
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
        return sign_body(body, self._world.rules.app_secret)

    def number_context(self, phone_number_id: str) -> NumberContext:
        """What webhook generation needs to know about an onboarded number.

        Raises ``KeyError`` for an unknown number and ``ValueError`` for one never onboarded.
        """
        return self._world.number_context(phone_number_id)

    def register_media(self, phone_number_id: str, items: Iterable[MediaItem]) -> None:
        """Make media downloadable for ``media_ttl`` from now, as a late-media webhook does.

        A medium registered again while still alive keeps its first registration time (a
        re-sent webhook does not extend it).
        """
        register_media(self._world, phone_number_id, items)

    def media_item(self, media_id: str) -> MediaItem | None:
        """The registered medium ``media_id`` if it has not expired."""
        return media_item(self._world, media_id)

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
        if request.url.path in HOSTED_PATHS:
            return self._hosted(request)
        if is_control(request.url.path):
            return handle_control(self, request)
        route, plan, trace_id = self._admit(request.url.path)
        if plan.delay_seconds > 0:
            self._sleep(plan.delay_seconds)
        if plan.error is not None:
            return render_error(plan.error, trace_id, route)
        accepted: AcceptedSync | None = None
        with self._lock:
            try:
                response, accepted = dispatch(self._world, request, route)
            except GraphReplyError as error:
                response = render_error(error, trace_id, route)
        if accepted is not None:
            self.on_sync_accepted(accepted)
        if plan.drop:
            raise DroppedResponse(route.endpoint, response)
        return response

    def _hosted(self, request: httpx.Request) -> httpx.Response:
        """The stand-in SDK and its signup dialog (:mod:`.hosted`)."""
        if request.url.path == SDK_PATH:
            return sdk_script(origin(request))
        with self._lock:
            world = self._world
            numbers = [
                (waba.id, f"{waba.name}: +{number.digits} ({number.verified_name})")
                for waba in world.wabas.values()
                for number in (world.numbers[n] for n in waba.number_ids)
                if number.is_on_biz_app
            ]
        return dialog_page(request.url.params.get("extras", "{}"), numbers)

    def _admit(self, path: str) -> tuple[Route, FaultPlan, str]:
        """Route a Graph call, count it, draw its faults and its trace id."""
        with self._lock:
            world = self._world
            route = resolve(world, path)
            self._calls[route.endpoint] += 1
            plan = FaultPlan()
            if route.endpoint != UNKNOWN_ENDPOINT:
                plan = self._injector.plan(route.endpoint, world.usage_owner(route.object_id))
            return route, plan, new_fbtrace_id(world.trace_rng)
