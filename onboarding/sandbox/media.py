"""Media announced by late-media webhooks: registration, the Graph media node, the download.

Media announced by a late-media webhook can be fetched for ``media_ttl`` (7 days, sandbox
clock): ``GET /{media_id}`` answers a download URL on the host the request came to, valid
``media_url_ttl`` (5 minutes) and only with the business's bearer token (else 401); an expired
or tampered URL is a 404. An expired media id is Graph's "unsupported get request" (code 100,
subcode 33), as for any object that no longer exists. The download URL
(``GET /_media/{opaque}?mid=&ext=&hash=``) stands in for Meta's media CDN: plain-text errors,
no Graph envelope.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import secrets
from collections.abc import Iterable, Mapping
from typing import Any, Final
from urllib.parse import urlencode

import httpx

from onboarding.sandbox.errors import invalid_parameter, unsupported_request
from onboarding.sandbox.media_items import MediaItem
from onboarding.sandbox.routes import MEDIA_PREFIX, Route, ok, origin
from onboarding.sandbox.world import BusinessToken, StoredMedia, World

MEDIA_TTL: Final = 7 * 24 * 3600.0
MEDIA_URL_TTL: Final = 300.0


def register_media(world: World, phone_number_id: str, items: Iterable[MediaItem]) -> None:
    """Make media downloadable for ``media_ttl`` from now, as a late-media webhook does.

    A medium registered again while still alive keeps its first registration time (a
    re-sent webhook does not extend it).
    """
    with world.lock:
        number = world.numbers.get(phone_number_id)
        if number is None:
            raise KeyError(f"unknown phone number {phone_number_id}")
        business_id = world.owner_of(number.waba_id)
        now = world.now()
        for item in items:
            known = world.media.get(item.media_id)
            if known is not None and not world.media_expired(known, now):
                continue
            world.media[item.media_id] = StoredMedia(item, business_id, number.id, now)


def media_item(world: World, media_id: str) -> MediaItem | None:
    """The registered medium ``media_id`` if it has not expired."""
    with world.lock:
        media = world.media.get(media_id)
        if media is None or world.media_expired(media, world.now()):
            return None
        return media.item


def media_node(
    world: World,
    request: httpx.Request,
    route: Route,
    token: BusinessToken,
    params: Mapping[str, Any],
) -> httpx.Response:
    """``GET /{media_id}``: metadata and a short-lived download URL on the caller's host."""
    method = request.method.upper()
    media = world.media.get(route.object_id)
    now = world.now()
    if (
        method != "GET"
        or media is None
        or media.business_id != token.business_id
        or world.media_expired(media, now)
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
        "url": _media_url(world, request, item.media_id, now),
        "mime_type": item.mime_type,
        "sha256": item.sha256,
        "file_size": item.file_size,
        "id": item.media_id,
    }
    return ok(payload, route)


def _media_url(world: World, request: httpx.Request, media_id: str, now: float) -> str:
    opaque = secrets.token_urlsafe(16)
    expires = str(math.floor(now + world.rules.media_url_ttl))
    query = urlencode(
        {
            "mid": media_id,
            "ext": expires,
            "hash": _media_url_hash(world, opaque, media_id, expires),
        }
    )
    return f"{origin(request)}/{MEDIA_PREFIX}/{opaque}?{query}"


def _media_url_hash(world: World, opaque: str, media_id: str, expires: str) -> str:
    message = f"{opaque}:{media_id}:{expires}".encode()
    return hmac.new(world.media_url_key, message, hashlib.sha256).hexdigest()[:32]


def _cdn_response(
    status: int, content: bytes, headers: Mapping[str, str] | None = None
) -> httpx.Response:
    """A plain-text answer of the media CDN (it is not Graph: no error envelope)."""
    return httpx.Response(
        status, content=content, headers={"content-type": "text/plain", **(headers or {})}
    )


def download_media(
    world: World, request: httpx.Request, route: Route, params: Mapping[str, Any]
) -> httpx.Response:
    """``GET /_media/{opaque}``: the bytes, for the owning business's bearer token only."""
    if request.method.upper() != "GET":
        return _cdn_response(405, b"Method Not Allowed")
    header = request.headers.get("authorization", "")
    scheme, _, raw = header.strip().partition(" ")
    token = world.tokens.get(raw.strip()) if scheme.lower() == "bearer" else None
    if token is None or token.revoked:
        return _cdn_response(401, b"Unauthorized", {"www-authenticate": "Bearer"})
    media_id = str(params.get("mid", ""))
    expires = str(params.get("ext", ""))
    expected = _media_url_hash(world, route.object_id, media_id, expires)
    if not hmac.compare_digest(str(params.get("hash", "")).encode(), expected.encode()):
        return _cdn_response(404, b"Not Found")
    now = world.now()
    media = world.media.get(media_id)
    if (
        not expires.isdigit()
        or now > int(expires)
        or media is None
        or media.business_id != token.business_id
        or world.media_expired(media, now)
    ):
        return _cdn_response(404, b"Not Found")
    item = media.item
    return httpx.Response(
        200,
        content=item.content(),
        headers={"content-type": item.mime_type, "cache-control": "private, max-age=300"},
    )
