"""One ``POST`` of a stored delivery to the provider's webhook receiver, as Meta made it.

The request carries the raw bytes unchanged, Meta's ``X-Hub-Signature-256`` as coexist
received it (the receiver checks it with the app secret, as for Meta's own deliveries), the
``Content-Type`` as received (``application/json`` if none was kept) and
``X-Coexist-Relay-Delivery: <inbox id>``, the same on every attempt, for a receiver that wants
to drop the copies at-least-once delivery may bring. Any ``2xx`` is success; anything else, a
redirect included, or no answer within the timeout, is a :class:`RelayError` (as Meta treats
its own callback). Only the configured URL is contacted: no redirects followed, no proxy taken
from the environment.
"""

from __future__ import annotations

import httpx

DELIVERY_HEADER = "X-Coexist-Relay-Delivery"
DEFAULT_CONTENT_TYPE = "application/json"


class RelayError(Exception):
    """The receiver did not take a delivery; the reason never includes the body or URL."""


def check_url(url: str) -> str:
    """``url`` if it is an absolute http(s) URL with a host; ValueError otherwise."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError) as exc:
        raise ValueError(f"not a URL: {exc}") from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise ValueError("must be an http or https URL with a host")
    return url


class Receiver:
    """The provider's receiver at ``url``; :meth:`send` posts one delivery."""

    def __init__(
        self, url: str, *, timeout: float = 10.0, http: httpx.Client | None = None
    ) -> None:
        self.url = check_url(url)
        self._owns_http = http is None
        self._http = http or httpx.Client(
            timeout=timeout,
            follow_redirects=False,
            trust_env=False,
            headers={"User-Agent": "coexist-relay/1"},
        )

    def send(
        self, delivery_id: int, body: bytes, *, signature: str, content_type: str | None
    ) -> int:
        """POST one delivery; its HTTP status if ``2xx``, else :class:`RelayError`."""
        headers = {
            "Content-Type": content_type or DEFAULT_CONTENT_TYPE,
            "X-Hub-Signature-256": signature,
            DELIVERY_HEADER: str(delivery_id),
        }
        try:
            response = self._http.post(self.url, content=body, headers=headers)
        except httpx.TimeoutException as exc:
            raise RelayError(f"no answer in time ({type(exc).__name__})") from None
        except httpx.HTTPError as exc:
            raise RelayError(f"{type(exc).__name__}: {str(exc)[:200]}") from None
        if not 200 <= response.status_code < 300:
            raise RelayError(f"receiver answered HTTP {response.status_code}")
        return response.status_code

    def close(self) -> None:
        if self._owns_http:
            self._http.close()
