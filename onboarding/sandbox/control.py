"""The sandbox's control API under ``/_sandbox/``: seed, drive and observe it over HTTP.

It is not Meta's API (no version, no token, plain JSON errors) and exists so out-of-process
users (the demo, integration tests, benchmarks) can do what in-process tests do through
:class:`~onboarding.sandbox.Sandbox`'s methods. Faults never apply to it. It is
unauthenticated: the server binds 127.0.0.1 by default.

==========================  =====================================================================
``GET  /_sandbox``          route index
``POST /_sandbox/businesses``  ``{"name"?, "numbers"?: N | [digits | {display_phone_number?,
                            verified_name?, is_on_biz_app?, platform_type?, status?,
                            quality_rating?}], "coexistence"?: bool}`` → 201 ``{business_id,
                            name, waba_id, phone_numbers: [{id, display_phone_number,
                            is_on_biz_app}]}``
``POST /_sandbox/signups``  ``{"waba_id", "phone_number_id"?, "include_phone_number_id"?,
                            "coexistence"?, "session_version"?: 3}`` → 201 ``{"code", "session"}``
                            (v4's message without ``version`` unless ``session_version`` is 3)
``POST /_sandbox/cancellations``  ``{"current_step"}`` or ``{"error_message", "error_code",
                            "session_id"?}`` → ``{"session"}``
``GET|PUT /_sandbox/faults``  fault config (:class:`~onboarding.sandbox.faults.Faults` JSON form)
``GET  /_sandbox/syncs``    ``?phone_number_id=`` → ``{"data": [{phone_number_id, waba_id,
                            sync_type, request_id, accepted_at}]}``
``GET  /_sandbox/messages``  ``?phone_number_id=`` → ``{"data": [{phone_number_id, to, wamid,
                            type, accepted_at}], "throughput_rejections": n}``: accepted sends,
                            oldest first, and sends refused with 130429
``GET  /_sandbox/stats``    ``{"calls": {endpoint: n}, "faults": {endpoint: {kind: n}},
                            "accepted_syncs": n, "media": n, "messages_sent": n,
                            "throughput_rejections": n}``
``GET|POST /_sandbox/clock``  POST ``{"advance_seconds": N}`` → ``{"now", "offset"}``
``POST /_sandbox/revocations``  ``{"business_id"}`` → ``{"revoked": n}`` (tokens now fail, 190)
``POST /_sandbox/reset``    forget everything → ``{"success": true}``
``GET|PUT /_sandbox/app``   PUT ``{"require_appsecret_proof": bool}`` ("Require App Secret")
                            → ``{"require_appsecret_proof"}``
``PUT  /_sandbox/numbers``  ``{"phone_number_id", "is_on_biz_app"?, "platform_type"?}``: what
                            the number node answers from now on → ``{"success": true}``
``PUT|DELETE /_sandbox/subscriptions``  PUT ``{"waba_id", "override_callback_uri",
                            "verify_token"}`` sets an override as the provider would; DELETE
                            ``{"waba_id"}`` unsubscribes the app → ``{"success": true}``
``GET  /_sandbox/webhooks``  ``?limit=N`` → ``{"config": {...} | null, "stats": {queued,
                            delivered, failed, skipped, attempts, in_flight, retrying,
                            pending_sources, idle} | null, "deliveries": [last N outcomes]}``
``PUT  /_sandbox/webhooks``  ``{"callback_url"?, "mode"?: "normal"|"declined", "echoes"?,
                            "envelope_less_decline"?, "profile"?: {HistoryProfile fields},
                            "delivery"?: {DeliveryOptions fields}}`` (profile and delivery
                            fields may also be given flat) → ``{"config", "stats"}``;
                            replaces the whole config (an in-process sink is dropped)
``DELETE /_sandbox/webhooks``  stop delivering, drop pending deliveries → ``{"success": true}``
``POST /_sandbox/echoes``   ``{"phone_number_id", "count"?: 1}`` → 202 ``{"message_echoes":
                            [...]}`` (one ``smb_message_echoes`` webhook per echo)
``POST /_sandbox/contacts``  ``{"phone_number_id", "action": "add"|"edit"|"remove",
                            "phone_number"?, "full_name"?, "first_name"?}`` → 202
                            ``{"state_sync": [item]}`` (``edit`` is sent as Meta's ``add``)
==========================  =====================================================================

Webhook routes answer 409 when no webhook target is configured (``echoes``, ``contacts``) and
404 for an unknown or never-onboarded number.

Errors are ``{"error": {"message": ..., "type": "SandboxControlError"}}`` with 400 (bad input),
404 (unknown route or object) or 405 (wrong method).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any, Final, Protocol, cast

import httpx

from onboarding.sandbox.errors import GraphReplyError, json_response
from onboarding.sandbox.faults import Faults
from onboarding.sandbox.records import (
    AcceptedSync,
    Business,
    NumberSpec,
    SentMessage,
    SignupResult,
)
from onboarding.sandbox.webhook_config import WebhookConfig
from onboarding.sandbox.webhooks import CONTACT_ACTIONS, ContactAction, WebhookDispatcher

PREFIX: Final = "/_sandbox"
_NUMBER_SPEC_KEYS: Final = frozenset(
    {
        "display_phone_number",
        "verified_name",
        "is_on_biz_app",
        "platform_type",
        "status",
        "quality_rating",
    }
)


class ControlledSandbox(Protocol):
    """What the control API drives: the sandbox's public methods it calls."""

    @property
    def faults(self) -> Faults:
        """The fault configuration in force."""
        ...

    @property
    def clock_offset(self) -> float:
        """Seconds the clock was advanced."""
        ...

    @property
    def webhooks(self) -> WebhookDispatcher | None:
        """The webhook dispatcher, if configured."""
        ...

    def add_business(
        self, name: str, numbers: int | list[NumberSpec | str], *, coexistence: bool
    ) -> Business:
        """Seed a business."""
        ...

    def complete_signup(
        self,
        waba_id: str,
        phone_number_id: str | None,
        *,
        coexistence: bool,
        include_phone_number_id: bool,
        session_version: int | None,
    ) -> SignupResult:
        """Finish Embedded Signup for a number."""
        ...

    def cancel_signup(self, current_step: str) -> dict[str, Any]:
        """The session-info message of an abandoned signup."""
        ...

    def fail_signup(
        self, error_message: str, error_code: str, *, session_id: str | None
    ) -> dict[str, Any]:
        """The session-info message of a signup error."""
        ...

    def set_faults(self, faults: Faults | None) -> None:
        """Replace the fault configuration."""
        ...

    def accepted_syncs(self, phone_number_id: str | None) -> list[AcceptedSync]:
        """The accepted ``smb_app_data`` calls."""
        ...

    def sent_messages(self, phone_number_id: str | None) -> list[SentMessage]:
        """The accepted sends."""
        ...

    def throughput_rejections(self, phone_number_id: str | None) -> int:
        """Sends refused with ``130429``."""
        ...

    def stats(self) -> dict[str, Any]:
        """Calls, faults, syncs, media and sends."""
        ...

    def now(self) -> float:
        """The sandbox's current Unix time."""
        ...

    def advance_clock(self, seconds: float) -> float:
        """Move the clock forward."""
        ...

    def revoke_tokens(self, business_id: str) -> int:
        """Revoke a business's tokens."""
        ...

    def reset(self) -> None:
        """Forget everything."""
        ...

    def set_webhook_config(self, config: WebhookConfig) -> WebhookDispatcher:
        """Apply a webhook configuration."""
        ...

    @property
    def require_appsecret_proof(self) -> bool:
        """Whether calls with a token need ``appsecret_proof``."""
        ...

    def set_require_appsecret_proof(self, required: bool) -> None:
        """Turn "Require App Secret" on or off."""
        ...

    def set_number_platform(
        self,
        phone_number_id: str,
        *,
        is_on_biz_app: bool | None = None,
        platform_type: str | None = None,
    ) -> None:
        """Change a number's ``is_on_biz_app`` and ``platform_type``."""
        ...

    def set_webhook_override(self, waba_id: str, uri: str, verify_token: str) -> None:
        """Subscribe the app with a WABA override."""
        ...

    def unsubscribe(self, waba_id: str) -> None:
        """Remove the app's subscription."""
        ...

    def disable_webhooks(self) -> None:
        """Stop delivering webhooks."""
        ...


class ControlError(Exception):
    """A control API request the sandbox cannot honour."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


Handler = Callable[[ControlledSandbox, httpx.Request], httpx.Response]


def handle_control(sandbox: ControlledSandbox, request: httpx.Request) -> httpx.Response:
    """Answer one ``/_sandbox/...`` request."""
    route = request.url.path[len(PREFIX) :].strip("/")
    method = request.method.upper()
    try:
        routes = _ROUTES.get(route)
        if routes is None:
            raise ControlError(404, f"unknown sandbox control route /_sandbox/{route}")
        handler = routes.get(method)
        if handler is None:
            raise ControlError(405, f"{method} is not supported on /_sandbox/{route}")
        return handler(sandbox, request)
    except ControlError as error:
        return json_response(
            error.status, {"error": {"message": error.message, "type": "SandboxControlError"}}
        )


def _body(request: httpx.Request) -> dict[str, Any]:
    if not request.content.strip():
        return {}
    try:
        decoded = json.loads(request.content)
    except (UnicodeDecodeError, ValueError):
        raise ControlError(400, "request body must be a JSON object") from None
    if not isinstance(decoded, dict):
        raise ControlError(400, "request body must be a JSON object")
    return decoded


def _string(body: Mapping[str, Any], key: str, *, required: bool = False) -> str | None:
    value = body.get(key)
    if value is None:
        if required:
            raise ControlError(400, f"{key} is required")
        return None
    if not isinstance(value, str) or not value:
        raise ControlError(400, f"{key} must be a non-empty string")
    return value


def _session_version(body: Mapping[str, Any]) -> int | None:
    value = body.get("session_version")
    if value is not None and (isinstance(value, bool) or value != 3):
        raise ControlError(400, "session_version must be 3 or absent (v4)")
    return None if value is None else 3


def _flag(body: Mapping[str, Any], key: str, default: bool) -> bool:
    value = body.get(key, default)
    if not isinstance(value, bool):
        raise ControlError(400, f"{key} must be true or false")
    return value


def _number_spec(raw: Any, coexistence: bool) -> NumberSpec | str:
    if isinstance(raw, str):
        return raw
    if not isinstance(raw, Mapping):
        raise ControlError(400, "each number must be a display number string or an object")
    unknown = set(raw) - _NUMBER_SPEC_KEYS
    if unknown:
        raise ControlError(400, f"unknown number keys: {sorted(unknown)}")
    strings = {key: _string(raw, key) for key in _NUMBER_SPEC_KEYS - {"is_on_biz_app"}}
    return NumberSpec(
        display_phone_number=strings["display_phone_number"],
        verified_name=strings["verified_name"],
        is_on_biz_app=_flag(raw, "is_on_biz_app", coexistence),
        platform_type=strings["platform_type"],
        status=strings["status"] or "CONNECTED",
        quality_rating=strings["quality_rating"] or "GREEN",
    )


def _index(sandbox: ControlledSandbox, request: httpx.Request) -> httpx.Response:
    routes = {f"{PREFIX}/{path}".rstrip("/"): sorted(methods) for path, methods in _ROUTES.items()}
    return json_response(200, {"routes": routes})


def _create_business(sandbox: ControlledSandbox, request: httpx.Request) -> httpx.Response:
    body = _body(request)
    name = _string(body, "name") or "Sandbox Business"
    coexistence = _flag(body, "coexistence", True)
    raw_numbers = body.get("numbers", 1)
    numbers: int | list[NumberSpec | str]
    if isinstance(raw_numbers, bool):
        raise ControlError(400, "numbers must be a count or a list")
    if isinstance(raw_numbers, int):
        if not 0 <= raw_numbers <= 10_000:
            raise ControlError(400, "numbers must be between 0 and 10000")
        numbers = raw_numbers
    elif isinstance(raw_numbers, list):
        numbers = [_number_spec(raw, coexistence) for raw in raw_numbers]
    else:
        raise ControlError(400, "numbers must be a count or a list")
    try:
        business = sandbox.add_business(name, numbers, coexistence=coexistence)
    except ValueError as error:
        raise ControlError(400, str(error)) from None
    return json_response(201, business.to_dict())


def _create_signup(sandbox: ControlledSandbox, request: httpx.Request) -> httpx.Response:
    body = _body(request)
    waba_id = _string(body, "waba_id", required=True)
    assert waba_id is not None
    try:
        result = sandbox.complete_signup(
            waba_id,
            _string(body, "phone_number_id"),
            coexistence=_flag(body, "coexistence", True),
            include_phone_number_id=_flag(body, "include_phone_number_id", False),
            session_version=_session_version(body),
        )
    except KeyError as error:
        raise ControlError(404, str(error.args[0])) from None
    except ValueError as error:
        raise ControlError(400, str(error)) from None
    return json_response(201, result.to_dict())


def _create_cancellation(sandbox: ControlledSandbox, request: httpx.Request) -> httpx.Response:
    body = _body(request)
    error_message = _string(body, "error_message")
    if error_message is None:
        session = sandbox.cancel_signup(_string(body, "current_step") or "PHONE_NUMBER_SETUP")
    else:
        session = sandbox.fail_signup(
            error_message,
            _string(body, "error_code") or "524126",
            session_id=_string(body, "session_id"),
        )
    return json_response(200, {"session": session})


def _get_faults(sandbox: ControlledSandbox, request: httpx.Request) -> httpx.Response:
    return json_response(200, sandbox.faults.to_dict())


def _put_faults(sandbox: ControlledSandbox, request: httpx.Request) -> httpx.Response:
    try:
        faults = Faults.from_dict(_body(request))
    except (TypeError, ValueError) as error:
        raise ControlError(400, str(error)) from None
    sandbox.set_faults(faults)
    return json_response(200, faults.to_dict())


def _get_syncs(sandbox: ControlledSandbox, request: httpx.Request) -> httpx.Response:
    phone_number_id = request.url.params.get("phone_number_id") or None
    syncs = sandbox.accepted_syncs(phone_number_id)
    return json_response(200, {"data": [sync.to_dict() for sync in syncs]})


def _get_messages(sandbox: ControlledSandbox, request: httpx.Request) -> httpx.Response:
    phone_number_id = request.url.params.get("phone_number_id") or None
    sent = sandbox.sent_messages(phone_number_id)
    return json_response(
        200,
        {
            "data": [message.to_dict() for message in sent],
            "throughput_rejections": sandbox.throughput_rejections(phone_number_id),
        },
    )


def _get_stats(sandbox: ControlledSandbox, request: httpx.Request) -> httpx.Response:
    return json_response(200, sandbox.stats())


def _clock_payload(sandbox: ControlledSandbox) -> dict[str, float]:
    now = sandbox.now()
    return {"now": now, "offset": sandbox.clock_offset}


def _get_clock(sandbox: ControlledSandbox, request: httpx.Request) -> httpx.Response:
    return json_response(200, _clock_payload(sandbox))


def _advance_clock(sandbox: ControlledSandbox, request: httpx.Request) -> httpx.Response:
    seconds = _body(request).get("advance_seconds")
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds < 0:
        raise ControlError(400, "advance_seconds must be a number >= 0")
    sandbox.advance_clock(float(seconds))
    return json_response(200, _clock_payload(sandbox))


def _revoke(sandbox: ControlledSandbox, request: httpx.Request) -> httpx.Response:
    business_id = _string(_body(request), "business_id", required=True)
    assert business_id is not None
    return json_response(200, {"revoked": sandbox.revoke_tokens(business_id)})


def _app(sandbox: ControlledSandbox, request: httpx.Request) -> httpx.Response:
    if request.method.upper() == "PUT":
        body = _body(request)
        if "require_appsecret_proof" not in body:
            raise ControlError(400, "require_appsecret_proof is required")
        sandbox.set_require_appsecret_proof(_flag(body, "require_appsecret_proof", False))
    return json_response(200, {"require_appsecret_proof": sandbox.require_appsecret_proof})


def _put_number(sandbox: ControlledSandbox, request: httpx.Request) -> httpx.Response:
    body = _body(request)
    number_id = _string(body, "phone_number_id", required=True)
    assert number_id is not None
    on_app = body.get("is_on_biz_app")
    if on_app is not None and not isinstance(on_app, bool):
        raise ControlError(400, "is_on_biz_app must be true or false")
    try:
        sandbox.set_number_platform(
            number_id, is_on_biz_app=on_app, platform_type=_string(body, "platform_type")
        )
    except KeyError:
        raise ControlError(404, f"unknown phone number {number_id}") from None
    return json_response(200, {"success": True})


def _subscription(sandbox: ControlledSandbox, request: httpx.Request) -> httpx.Response:
    body = _body(request)
    waba_id = _string(body, "waba_id", required=True)
    assert waba_id is not None
    try:
        if request.method.upper() == "DELETE":
            sandbox.unsubscribe(waba_id)
        else:
            uri = _string(body, "override_callback_uri", required=True)
            verify_token = _string(body, "verify_token", required=True)
            assert uri is not None
            assert verify_token is not None
            sandbox.set_webhook_override(waba_id, uri, verify_token)
    except KeyError:
        raise ControlError(404, f"unknown WABA {waba_id}") from None
    except GraphReplyError as error:
        raise ControlError(400, error.message) from None
    return json_response(200, {"success": True})


def _reset(sandbox: ControlledSandbox, request: httpx.Request) -> httpx.Response:
    sandbox.reset()
    return json_response(200, {"success": True})


def _webhooks_payload(sandbox: ControlledSandbox, limit: int) -> dict[str, Any]:
    dispatcher = sandbox.webhooks
    if dispatcher is None:
        return {"config": None, "stats": None, "deliveries": []}
    return {
        "config": dispatcher.config.to_dict(),
        "stats": dispatcher.stats(),
        "deliveries": [record.to_dict() for record in dispatcher.records(limit)],
    }


def _get_webhooks(sandbox: ControlledSandbox, request: httpx.Request) -> httpx.Response:
    raw_limit = request.url.params.get("limit", "20")
    if not raw_limit.isdigit():
        raise ControlError(400, "limit must be a non-negative integer")
    return json_response(200, _webhooks_payload(sandbox, int(raw_limit)))


def _put_webhooks(sandbox: ControlledSandbox, request: httpx.Request) -> httpx.Response:
    try:
        config = WebhookConfig.from_dict(_body(request))
    except (TypeError, ValueError) as error:
        raise ControlError(400, str(error)) from None
    sandbox.set_webhook_config(config)
    payload = _webhooks_payload(sandbox, 0)
    del payload["deliveries"]
    return json_response(200, payload)


def _delete_webhooks(sandbox: ControlledSandbox, request: httpx.Request) -> httpx.Response:
    sandbox.disable_webhooks()
    return json_response(200, {"success": True})


def _emitter(sandbox: ControlledSandbox) -> WebhookDispatcher:
    dispatcher = sandbox.webhooks
    if dispatcher is None or not dispatcher.config.has_target:
        raise ControlError(409, "no webhook target configured; PUT /_sandbox/webhooks first")
    return dispatcher


def _post_echoes(sandbox: ControlledSandbox, request: httpx.Request) -> httpx.Response:
    body = _body(request)
    phone_number_id = _string(body, "phone_number_id", required=True)
    assert phone_number_id is not None
    count = body.get("count", 1)
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= 10_000:
        raise ControlError(400, "count must be an integer between 1 and 10000")
    dispatcher = _emitter(sandbox)
    try:
        items = dispatcher.emit_echoes(phone_number_id, count)
    except (KeyError, ValueError) as error:
        raise ControlError(404, str(error.args[0])) from None
    return json_response(202, {"message_echoes": items})


def _post_contacts(sandbox: ControlledSandbox, request: httpx.Request) -> httpx.Response:
    body = _body(request)
    unknown = set(body) - {"phone_number_id", "action", "phone_number", "full_name", "first_name"}
    if unknown:
        raise ControlError(400, f"unknown contact keys: {sorted(unknown)}")
    phone_number_id = _string(body, "phone_number_id", required=True)
    assert phone_number_id is not None
    action = _string(body, "action", required=True)
    if action not in CONTACT_ACTIONS:
        raise ControlError(400, f"action must be one of {list(CONTACT_ACTIONS)}")
    phone_number = _string(body, "phone_number")
    if phone_number is not None and not phone_number.isdigit():
        raise ControlError(400, "phone_number must be digits only, without +")
    dispatcher = _emitter(sandbox)
    try:
        item = dispatcher.emit_contact(
            phone_number_id,
            cast(ContactAction, action),
            phone_number=phone_number,
            full_name=_string(body, "full_name"),
            first_name=_string(body, "first_name"),
        )
    except (KeyError, ValueError) as error:
        raise ControlError(404, str(error.args[0])) from None
    return json_response(202, {"state_sync": [item]})


_ROUTES: Final[dict[str, dict[str, Handler]]] = {
    "": {"GET": _index},
    "businesses": {"POST": _create_business},
    "signups": {"POST": _create_signup},
    "cancellations": {"POST": _create_cancellation},
    "faults": {"GET": _get_faults, "PUT": _put_faults},
    "syncs": {"GET": _get_syncs},
    "messages": {"GET": _get_messages},
    "stats": {"GET": _get_stats},
    "clock": {"GET": _get_clock, "POST": _advance_clock},
    "revocations": {"POST": _revoke},
    "reset": {"POST": _reset},
    "app": {"GET": _app, "PUT": _app},
    "numbers": {"PUT": _put_number},
    "subscriptions": {"PUT": _subscription, "DELETE": _subscription},
    "webhooks": {"GET": _get_webhooks, "PUT": _put_webhooks, "DELETE": _delete_webhooks},
    "echoes": {"POST": _post_echoes},
    "contacts": {"POST": _post_contacts},
}
