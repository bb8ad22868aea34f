"""The one Graph API client coexist uses.

Every HTTP call goes through :meth:`GraphClient._request`; Meta's error envelope becomes one of
the typed errors of :mod:`onboarding.meta.errors`. Each method's docstring names the endpoint
it calls.

Quick retries (tenacity, bounded by ``max_attempts``) happen here for idempotent calls and
transient errors only; rate limits and long waits are left to Celery's retry.

Every call that carries an access token (the business token, or the app token on
``debug_token``) also carries ``appsecret_proof``, unless turned off
(docs/meta.md#118-appsecret_proof). The code exchange has no token to hash: it sends
``client_secret``. Media downloads go to Meta's CDN, not to Graph, and carry the bearer only.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import structlog
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_random_exponential,
)

from config.logging import register_secret
from onboarding import metrics
from onboarding.meta.errors import (
    BadRequestError,
    GraphError,
    GraphTransportError,
    MalformedResponseError,
    MediaTooLargeError,
    RateLimitedError,
    TransientGraphError,
    classify,
)
from onboarding.meta.signatures import appsecret_proof

log = structlog.get_logger(__name__)

USAGE_HEADERS = ("x-business-use-case-usage", "x-app-usage", "x-ad-account-usage")


def _retry_after(headers: httpx.Headers) -> float | None:
    """Seconds until access returns, from ``X-Business-Use-Case-Usage`` (minutes) if given."""
    raw = headers.get("x-business-use-case-usage")
    if raw:
        try:
            usage = json.loads(raw)
            minutes = [
                float(item.get("estimated_time_to_regain_access") or 0)
                for items in usage.values()
                if isinstance(items, list)
                for item in items
                if isinstance(item, dict)
            ]
        except (ValueError, AttributeError, TypeError):
            minutes = []
        if minutes and max(minutes) > 0:
            return max(minutes) * 60.0
    retry_after = headers.get("retry-after")
    if retry_after:
        try:
            return max(0.0, float(retry_after))
        except ValueError:
            return None
    return None


def _endpoint_of(path: str) -> str:
    """A stable, id-free name for the endpoint (``{id}/smb_app_data``), for logs and errors."""
    parts = [p for p in path.strip("/").split("/") if p]
    if parts and parts[0].startswith("v") and parts[0][1:].replace(".", "").isdigit():
        parts = parts[1:]
    return "/".join("{id}" if p.isdigit() else p for p in parts)


def _log_before_sleep(state: RetryCallState) -> None:
    exc = state.outcome.exception() if state.outcome else None
    fields = exc.log_fields() if isinstance(exc, GraphError) else {"error": repr(exc)}
    log.warning(
        "graph_retrying",
        attempt=state.attempt_number,
        sleep_seconds=round(state.upcoming_sleep, 3),
        **fields,
    )


def _is_quick_retryable(exc: BaseException) -> bool:
    return isinstance(exc, TransientGraphError) and not isinstance(exc, RateLimitedError)


class GraphClient:
    """Meta Graph API client: one long-lived ``httpx.Client``, one choke point."""

    def __init__(
        self,
        *,
        app_id: str,
        app_secret: str,
        base_url: str = "https://graph.facebook.com",
        api_version: str = "v25.0",
        http: httpx.Client | None = None,
        transport: httpx.BaseTransport | None = None,
        timeout: float = 10.0,
        max_attempts: int = 3,
        max_wait: float = 2.0,
        send_appsecret_proof: bool = True,
    ) -> None:
        self.app_id = app_id
        self._app_secret = app_secret
        self.send_appsecret_proof = send_appsecret_proof
        self.api_version = api_version
        self.max_attempts = max_attempts
        self.max_wait = max_wait
        self._http = http or httpx.Client(
            base_url=f"{base_url.rstrip('/')}/{api_version}/",
            timeout=timeout,
            transport=transport,
            headers={"User-Agent": "coexist/0.1"},
        )
        register_secret(app_secret)

    @classmethod
    def from_settings(cls, settings: Any, **kw: Any) -> GraphClient:
        return cls(
            app_id=settings.meta_app_id,
            app_secret=settings.meta_app_secret.get_secret_value(),
            base_url=settings.meta_graph_url,
            api_version=settings.meta_api_version,
            timeout=settings.graph_timeout,
            max_attempts=settings.graph_max_attempts,
            send_appsecret_proof=settings.graph_appsecret_proof,
            **kw,
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> GraphClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the choke point -----------------------------------------------------------------

    def _request(
        self,
        method: str,
        path: str,
        *,
        token: str | None = None,
        params: dict[str, Any] | None = None,
        json_body: dict[str, Any] | None = None,
        retry: bool = True,
    ) -> dict[str, Any]:
        """Send one Graph call; return its JSON object or raise a :class:`GraphError`.

        ``retry`` allows quick bounded retries of transient failures; callers pass False for
        calls that must never be repeated blindly (``smb_app_data``).
        """
        if not retry or self.max_attempts <= 1:
            return self._send(method, path, token=token, params=params, json_body=json_body)
        result: dict[str, Any] = self._retrying()(
            self._send, method, path, token=token, params=params, json_body=json_body
        )
        return result

    def _retrying(self) -> Retrying:
        """Quick bounded retries of transient failures (not throttling: that waits longer)."""
        return Retrying(
            stop=stop_after_attempt(self.max_attempts),
            wait=wait_random_exponential(multiplier=0.2, max=self.max_wait),
            retry=retry_if_exception(_is_quick_retryable),
            before_sleep=_log_before_sleep,
            reraise=True,
        )

    def _send(
        self,
        method: str,
        path: str,
        *,
        token: str | None,
        params: dict[str, Any] | None,
        json_body: dict[str, Any] | None,
    ) -> dict[str, Any]:
        endpoint = _endpoint_of(httpx.URL(path).path)
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        if token and self.send_appsecret_proof:
            proof = appsecret_proof(token, self._app_secret)
            register_secret(proof)
            # httpx replaces a URL's query with ``params``: keep a paging URL's own query.
            params = {**dict(httpx.URL(path).params), **(params or {}), "appsecret_proof": proof}
        try:
            response = self._http.request(
                method, path, params=params, json=json_body, headers=headers
            )
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            metrics.GRAPH_CALLS.labels(endpoint, "transport").inc()
            raise GraphTransportError(
                f"could not reach Graph API: {type(exc).__name__}",
                maybe_applied=False,
                endpoint=endpoint,
            ) from None
        except httpx.TransportError as exc:
            # The request may have been sent and applied; the answer was lost.
            metrics.GRAPH_CALLS.labels(endpoint, "transport").inc()
            raise GraphTransportError(
                f"no answer from Graph API: {type(exc).__name__}",
                maybe_applied=True,
                endpoint=endpoint,
            ) from None
        self._note_usage(response, endpoint)
        try:
            body = self._parse(response, endpoint)
        except GraphError as exc:
            metrics.GRAPH_CALLS.labels(endpoint, str(exc.code or f"http_{exc.http_status}")).inc()
            raise
        metrics.GRAPH_CALLS.labels(endpoint, "ok").inc()
        return body

    def _note_usage(self, response: httpx.Response, endpoint: str) -> None:
        for name in USAGE_HEADERS:
            raw = response.headers.get(name)
            if not raw:
                continue
            try:
                usage = json.loads(raw)
            except ValueError:
                continue
            peak = _peak_usage(usage)
            if peak >= 75:
                log.warning("graph_usage_high", header=name, peak_percent=peak, endpoint=endpoint)

    def _parse(self, response: httpx.Response, endpoint: str) -> dict[str, Any]:
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.is_success:
            if not isinstance(body, dict):
                raise MalformedResponseError(
                    "Graph API answered with a body that is not a JSON object",
                    endpoint=endpoint,
                    http_status=response.status_code,
                )
            return body
        error = body.get("error") if isinstance(body, dict) else None
        if not isinstance(error, dict):
            cls = classify(None, response.status_code, endpoint)
            raise cls(
                f"HTTP {response.status_code} without a Graph error envelope",
                endpoint=endpoint,
                http_status=response.status_code,
            )
        code = _int_or_none(error.get("code"))
        error_data = error.get("error_data")
        details = error_data.get("details") if isinstance(error_data, dict) else None
        fields: dict[str, Any] = {
            "code": code,
            "subcode": _int_or_none(error.get("error_subcode")),
            "error_type": _str_or_none(error.get("type")),
            "details": _str_or_none(details),
            "fbtrace_id": _str_or_none(error.get("fbtrace_id")),
            "endpoint": endpoint,
            "http_status": response.status_code,
        }
        message = _str_or_none(error.get("message")) or "Graph API error"
        cls = classify(code, response.status_code, endpoint)
        exc: GraphError
        if cls is RateLimitedError:
            exc = RateLimitedError(message, retry_after=_retry_after(response.headers), **fields)
        else:
            exc = cls(message, **fields)
        if isinstance(exc, TransientGraphError) and response.request.method == "GET":
            exc.maybe_applied = False
        log.info("graph_error", **exc.log_fields())
        raise exc

    # -- endpoints -----------------------------------------------------------------------

    def exchange_code(self, code: str) -> str:
        """``GET /oauth/access_token``: trade a signup code for the business token."""
        register_secret(code)
        body = self._request(
            "GET",
            "oauth/access_token",
            params={"client_id": self.app_id, "client_secret": self._app_secret, "code": code},
        )
        token = body.get("access_token")
        if not isinstance(token, str) or not token:
            raise MalformedResponseError(
                "code exchange answered without access_token", endpoint="oauth/access_token"
            )
        register_secret(token)
        return token

    def list_phone_numbers(
        self, waba_id: str, token: str, *, fields: str, limit: int = 100, max_pages: int = 100
    ) -> Iterator[dict[str, Any]]:
        """``GET /{waba-id}/phone_numbers``, following ``paging.next`` to the end."""
        path: str = f"{_id(waba_id)}/phone_numbers"
        params: dict[str, Any] | None = {"fields": fields, "limit": limit}
        for _ in range(max_pages):
            body = self._request("GET", path, token=token, params=params)
            data = body.get("data")
            if not isinstance(data, list):
                raise MalformedResponseError(
                    "phone_numbers answered without a data list", endpoint="{id}/phone_numbers"
                )
            yield from (item for item in data if isinstance(item, dict))
            paging = body.get("paging")
            next_url = paging.get("next") if isinstance(paging, dict) else None
            if not isinstance(next_url, str) or not next_url:
                return
            if httpx.URL(next_url).host != self._http.base_url.host:
                # Following it would hand the business token to another host.
                raise MalformedResponseError(
                    "phone_numbers paging.next points at another host",
                    endpoint="{id}/phone_numbers",
                )
            path, params = next_url, None
        raise MalformedResponseError(
            f"phone_numbers paging did not end after {max_pages} pages",
            endpoint="{id}/phone_numbers",
        )

    def get_phone_number(self, phone_number_id: str, token: str, *, fields: str) -> dict[str, Any]:
        """``GET /{phone-number-id}?fields=…``: the number's fields."""
        return self._request("GET", _id(phone_number_id), token=token, params={"fields": fields})

    def subscribed_apps(self, waba_id: str, token: str) -> list[dict[str, Any]]:
        """``GET /{waba-id}/subscribed_apps``: the apps subscribed to the WABA's webhooks.

        Each item is ``{"whatsapp_business_api_data": {id, link, name}}`` plus
        ``override_callback_uri`` when that app set a WABA override
        (docs/meta.md#117-subscribing-without-losing-an-override).
        """
        body = self._request("GET", f"{_id(waba_id)}/subscribed_apps", token=token)
        data = body.get("data")
        if not isinstance(data, list):
            raise MalformedResponseError(
                "subscribed_apps answered without a data list", endpoint="{id}/subscribed_apps"
            )
        return [item for item in data if isinstance(item, dict)]

    def subscribe_app(
        self, waba_id: str, token: str, *, override: tuple[str, str] | None = None
    ) -> None:
        """``POST /{waba-id}/subscribed_apps``: deliver this WABA's webhooks to our app.

        With ``override`` (``(override_callback_uri, verify_token)``) the WABA's webhooks go to
        that URL instead of the app's; **without it, an override set earlier is removed**
        (docs/meta.md#117-subscribing-without-losing-an-override), so callers decide with
        :meth:`subscribed_apps` first.
        """
        json_body = None
        if override is not None:
            uri, verify_token = override
            register_secret(verify_token)
            json_body = {"override_callback_uri": uri, "verify_token": verify_token}
        body = self._request(
            "POST", f"{_id(waba_id)}/subscribed_apps", token=token, json_body=json_body
        )
        if body.get("success") is not True:
            raise MalformedResponseError(
                "subscribed_apps did not answer success", endpoint="{id}/subscribed_apps"
            )

    def debug_token(self, input_token: str) -> dict[str, Any]:
        """``GET /debug_token?input_token=…`` with the app token: what Meta knows of a token.

        Answers ``data`` (``is_valid``, ``expires_at``, ``scopes``, ``error`` for a dead token…;
        docs/meta.md#119-debug_token). The app token is ``{app-id}|{app-secret}``.
        """
        register_secret(input_token)
        body = self._request(
            "GET",
            "debug_token",
            token=f"{self.app_id}|{self._app_secret}",
            params={"input_token": input_token},
        )
        data = body.get("data")
        if not isinstance(data, dict):
            raise MalformedResponseError(
                "debug_token answered without a data object", endpoint="debug_token"
            )
        return data

    def request_sync(self, phone_number_id: str, token: str, sync_type: str) -> str | None:
        """``POST /{phone-number-id}/smb_app_data``: start a one-shot contacts or history sync.

        Never retried here: a lost answer may mean Meta accepted the call, and a second call
        would be refused with 2593107. Returns Meta's ``request_id`` (None if a 2xx lacked it).
        """
        body = self._request(
            "POST",
            f"{_id(phone_number_id)}/smb_app_data",
            token=token,
            json_body={"messaging_product": "whatsapp", "sync_type": sync_type},
            retry=False,
        )
        request_id = body.get("request_id")
        if request_id is None:
            log.warning("graph_response_without_request_id", endpoint="{id}/smb_app_data")
            return None
        return str(request_id)

    def send_message(self, phone_number_id: str, token: str, body: dict[str, Any]) -> str:
        """``POST /{phone-number-id}/messages``: send one message; return Meta's ``wamid``.

        Never retried here: a lost answer may mean Meta delivered it.
        """
        answer = self._request(
            "POST", f"{_id(phone_number_id)}/messages", token=token, json_body=body, retry=False
        )
        return _message_id(answer)

    def get_media(self, media_id: str, token: str) -> dict[str, Any]:
        """``GET /{media-id}``: a short-lived download URL with mime type, sha256 and size."""
        body = self._request("GET", _id(media_id), token=token)
        if not isinstance(body.get("url"), str):
            raise MalformedResponseError("media node answered without url", endpoint="{id}")
        return body

    def download(
        self, url: str, token: str, *, max_bytes: int, allowed_hosts: frozenset[str]
    ) -> bytes:
        """``GET <media url>`` with the business token, streamed and size-limited.

        The token is only ever sent to the Graph host or one of ``allowed_hosts`` (Meta's
        media CDN), never wherever a response points. A download is idempotent: transient
        failures get the same quick bounded retries as other reads.
        """
        content: bytes = self._retrying()(
            self._download, url, token, max_bytes=max_bytes, allowed_hosts=allowed_hosts
        )
        return content

    def _media_target(self, url: str, allowed_hosts: frozenset[str]) -> httpx.URL:
        """The media URL, if the business token may be sent there; else a permanent error.

        Allowed: ``https`` on the default port of the Graph host or an ``allowed_hosts`` host;
        and the Graph URL the operator configured, with its own scheme and port (the sandbox
        serves media over plain HTTP on a loopback port). Anything else, and a URL that does
        not parse (control characters, a bad port), never gets the token.
        """
        try:
            target = httpx.URL(url)
        except (httpx.InvalidURL, TypeError, ValueError) as exc:
            raise MalformedResponseError(
                f"media url is not a valid URL: {exc}", endpoint="media_download"
            ) from None
        graph = self._http.base_url
        if (target.scheme, target.host, target.port) == (graph.scheme, graph.host, graph.port):
            return target
        if target.host != graph.host and target.host not in allowed_hosts:
            raise MalformedResponseError(
                f"media url points at {target.host!r}, not an allowed media host",
                endpoint="media_download",
            )
        if target.scheme != "https" or target.port is not None:
            raise MalformedResponseError(
                f"media url must be https on the default port, not {target.scheme}"
                f"{f' port {target.port}' if target.port is not None else ''}",
                endpoint="media_download",
            )
        return target

    def _download(
        self, url: str, token: str, *, max_bytes: int, allowed_hosts: frozenset[str]
    ) -> bytes:
        target = self._media_target(url, allowed_hosts)
        headers = {"Authorization": f"Bearer {token}"}
        try:
            with self._http.stream("GET", target, headers=headers) as response:
                if not response.is_success:
                    response.read()
                    self._parse(response, "media_download")
                declared = response.headers.get("content-length")
                if declared and declared.isdigit() and int(declared) > max_bytes:
                    raise MediaTooLargeError(f"media is {declared} bytes, over {max_bytes}")
                chunks: list[bytes] = []
                size = 0
                for chunk in response.iter_bytes():
                    size += len(chunk)
                    if size > max_bytes:
                        raise MediaTooLargeError(f"media is over {max_bytes} bytes")
                    chunks.append(chunk)
                return b"".join(chunks)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            raise GraphTransportError(
                f"could not reach media host: {type(exc).__name__}",
                maybe_applied=False,
                endpoint="media_download",
            ) from None
        except (httpx.InvalidURL, httpx.UnsupportedProtocol) as exc:
            raise MalformedResponseError(
                f"media url cannot be fetched: {exc}", endpoint="media_download"
            ) from None
        except httpx.TransportError as exc:
            raise GraphTransportError(
                f"media download interrupted: {type(exc).__name__}",
                maybe_applied=False,
                endpoint="media_download",
            ) from None


def _message_id(answer: dict[str, Any]) -> str:
    """Meta's message id from a ``POST /{phone-number-id}/messages`` answer."""
    messages = answer.get("messages")
    first = messages[0] if isinstance(messages, list) and messages else None
    wamid = first.get("id") if isinstance(first, dict) else None
    if not isinstance(wamid, str) or not wamid or len(wamid) > 191:
        error = MalformedResponseError(
            "messages answered without a message id", endpoint="{id}/messages"
        )
        error.maybe_applied = True  # a 2xx: Meta took the message
        raise error
    return wamid


def _id(value: str) -> str:
    """A Graph object id, refusing anything that could escape the path."""
    if not value or not (value.isascii() and value.isdigit()):
        raise BadRequestError(f"not a Graph object id: {value[:32]!r}")
    return value


def _int_or_none(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    return None


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _peak_usage(usage: Any) -> float:
    values: list[float] = []
    items: list[Any] = []
    if isinstance(usage, dict):
        if any(k in usage for k in ("call_count", "total_time", "total_cputime")):
            items = [usage]
        else:
            for v in usage.values():
                if isinstance(v, list):
                    items.extend(v)
    for item in items:
        if isinstance(item, dict):
            for key in ("call_count", "total_cputime", "total_time"):
                v = item.get(key)
                if isinstance(v, int | float) and not isinstance(v, bool):
                    values.append(float(v))
    return max(values, default=0.0)
