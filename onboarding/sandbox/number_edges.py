"""The phone number's edges: the one-shot ``smb_app_data`` sync, (de)registration and sends.

``POST /{phone_number_id}/smb_app_data`` is accepted once per ``sync_type`` within
``sync_window`` (24 hours) of onboarding, only for a number on the WhatsApp Business app;
``register`` and ``deregister`` are refused on such numbers; ``messages`` is :mod:`.messages`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final

import httpx

from onboarding.sandbox.errors import (
    GraphReplyError,
    invalid_parameter,
    nonexisting_field,
    unsupported_request,
)
from onboarding.sandbox.messages import send_message
from onboarding.sandbox.nodes import NUMBER_NODE
from onboarding.sandbox.records import AcceptedSync
from onboarding.sandbox.routes import Route, ok
from onboarding.sandbox.world import PhoneNumber, World

SYNC_TYPES: Final = ("smb_app_state_sync", "history")
POST_ONLY_EDGES: Final = frozenset({"smb_app_data", "register", "deregister", "messages"})


def number_edge(
    world: World,
    request: httpx.Request,
    route: Route,
    number: PhoneNumber,
    params: Mapping[str, Any],
) -> tuple[httpx.Response, AcceptedSync | None]:
    """Answer a call on one of the number's edges, with the sync it accepted, if any."""
    method = request.method.upper()
    edge = route.edge or ""
    if method == "POST" and edge == "smb_app_data":
        accepted = accept_sync(world, number, params)
        payload = {"messaging_product": "whatsapp", "request_id": accepted.request_id}
        return ok(payload, route), accepted
    if method == "POST" and edge in {"register", "deregister"}:
        _registration(number, edge, params)
        return ok({"success": True}, route), None
    if method == "POST" and edge == "messages":
        return ok(send_message(world, number, params), route), None
    if method == "GET" and edge not in POST_ONLY_EDGES:
        raise nonexisting_field(edge, NUMBER_NODE)
    raise unsupported_request(method, number.id)


def accept_sync(world: World, number: PhoneNumber, params: Mapping[str, Any]) -> AcceptedSync:
    """``POST /{phone_number_id}/smb_app_data``: check, accept and record one sync."""
    _check_sync_params(number, params)
    sync_type = str(params["sync_type"])
    now = world.now()
    if number.onboarded_at is None or now - number.onboarded_at > world.rules.sync_window:
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
        request_id=str(world.rng.randrange(10**15, 10**16)),
        accepted_at=now,
    )
    world.syncs.append(accepted)
    return accepted


def _check_sync_params(number: PhoneNumber, params: Mapping[str, Any]) -> None:
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


def _registration(number: PhoneNumber, edge: str, params: Mapping[str, Any]) -> None:
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
