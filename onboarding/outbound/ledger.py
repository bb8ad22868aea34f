"""The idempotency ledger: each ``idempotency_key``'s send, remembered across task runs.

A key is claimed as an ``intent`` before the Graph call (:meth:`SendLedger.claim`), overwritten
with Meta's ``wamid`` and the address used (``to`` digits or ``recipient`` BSUID) after it
(:meth:`~SendLedger.mark_sent`), marked ``unknown`` when the
answer was lost (never sent again), and released when nothing was sent. Two twins with one
contract, side by side: :class:`RedisSendLedger` (``SET NX`` with a TTL, shared by every
worker) and :class:`LocalSendLedger` (this process's memory: embedded demo, unit tests). Redis
errors propagate (``redis.RedisError``); the send task retries them.
"""

from __future__ import annotations

import enum
import hashlib
import json
import math
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, Protocol

import redis

DEFAULT_LEDGER_TTL: Final = 2 * 24 * 3600.0
LEDGER_PREFIX: Final = "coexist:send"


class ClaimState(enum.StrEnum):
    """What the ledger holds for a key, as :meth:`SendLedger.claim` reports it."""

    NEW = "new"  # the caller now holds the key and may send
    INTENT = "intent"  # someone claimed it and has not finished (or died)
    SENT = "sent"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class Claim:
    """The ledger's answer: who holds the key, and what is known of its send."""

    state: ClaimState
    at: float
    owner: str | None = None
    wamid: str | None = None
    address: tuple[str, str] | None = None
    """How a sent message was addressed: ``("to", digits)`` or ``("recipient", BSUID)``."""


class SendLedger(Protocol):
    """Remembers each idempotency key's send: intent, then wamid (or unknown)."""

    def claim(self, onboarding_id: int, key: str) -> Claim:
        """Record an intent if the key is free (``NEW``, with ``owner``), else what it holds."""
        ...

    def mark_sent(
        self,
        onboarding_id: int,
        key: str,
        wamid: str,
        at: float,
        *,
        address: tuple[str, str] | None = None,
    ) -> None:
        """The key's message went out as ``wamid`` at ``at`` (Unix seconds), to ``address``."""
        ...

    def mark_unknown(self, onboarding_id: int, key: str) -> None:
        """The key's send may have gone out: it is never sent again."""
        ...

    def release(self, onboarding_id: int, key: str, owner: str) -> None:
        """Nothing was sent: free the key, if ``owner`` still holds it."""
        ...


def _entry(state: ClaimState, at: float, **extra: str | list[str]) -> str:
    return json.dumps({"state": state.value, "at": at, **extra}, separators=(",", ":"))


def _parse(raw: str | bytes) -> Claim:
    data = json.loads(raw)
    address = data.get("address")
    return Claim(
        state=ClaimState(data["state"]),
        at=float(data["at"]),
        owner=data.get("owner"),
        wamid=data.get("wamid"),
        address=(str(address[0]), str(address[1])) if address else None,
    )


_RELEASE_LUA: Final = """
local raw = redis.call('GET', KEYS[1])
if raw and cjson.decode(raw)['owner'] == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class RedisSendLedger:
    """The ledger in Redis: one string per ``(onboarding_id, key)``, JSON, expiring after
    ``ttl`` seconds (longer than any retry or redelivery of the task)."""

    def __init__(
        self,
        client: redis.Redis,
        *,
        prefix: str = LEDGER_PREFIX,
        ttl: float = DEFAULT_LEDGER_TTL,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self._client = client
        self.prefix = prefix
        self.ttl_ms = math.ceil(ttl * 1000)
        self._clock = clock or time.time
        self._release = client.register_script(_RELEASE_LUA)

    def key(self, onboarding_id: int, key: str) -> str:
        """The Redis key: the client's key is hashed (any length or character is safe)."""
        digest = hashlib.sha256(key.encode()).hexdigest()[:40]
        return f"{self.prefix}:{onboarding_id}:{digest}"

    def claim(self, onboarding_id: int, key: str) -> Claim:
        """``SET NX`` an intent; if the key is taken, return what it holds."""
        name = self.key(onboarding_id, key)
        for _ in range(3):
            owner = secrets.token_hex(8)
            at = self._clock()
            if self._client.set(
                name, _entry(ClaimState.INTENT, at, owner=owner), nx=True, px=self.ttl_ms
            ):
                return Claim(ClaimState.NEW, at, owner=owner)
            raw: Any = self._client.get(name)
            if raw is not None:
                return _parse(raw)
            # It expired between SET and GET: try again.
        raise RuntimeError(f"could not claim idempotency key {name}")

    def mark_sent(
        self,
        onboarding_id: int,
        key: str,
        wamid: str,
        at: float,
        *,
        address: tuple[str, str] | None = None,
    ) -> None:
        """Overwrite the entry with the wamid and the address it went to."""
        extra: dict[str, str | list[str]] = {"wamid": wamid}
        if address is not None:
            extra["address"] = list(address)
        entry = _entry(ClaimState.SENT, at, **extra)
        self._client.set(self.key(onboarding_id, key), entry, px=self.ttl_ms)

    def mark_unknown(self, onboarding_id: int, key: str) -> None:
        """Overwrite the entry with ``unknown``."""
        entry = _entry(ClaimState.UNKNOWN, self._clock())
        self._client.set(self.key(onboarding_id, key), entry, px=self.ttl_ms)

    def release(self, onboarding_id: int, key: str, owner: str) -> None:
        """Delete the entry if it is still ``owner``'s intent (compare and delete, atomic)."""
        self._release(keys=[self.key(onboarding_id, key)], args=[owner])


class LocalSendLedger:
    """The ledger in this process's memory (embedded demo, unit tests)."""

    def __init__(
        self, *, ttl: float = DEFAULT_LEDGER_TTL, clock: Callable[[], float] | None = None
    ) -> None:
        self.ttl = ttl
        self._clock = clock or time.time
        self._lock = threading.Lock()
        self._entries: dict[tuple[int, str], tuple[float, Claim]] = {}

    def _get(self, name: tuple[int, str]) -> Claim | None:
        found = self._entries.get(name)
        if found is None or found[0] <= self._clock():
            self._entries.pop(name, None)
            return None
        return found[1]

    def _put(self, name: tuple[int, str], claim: Claim) -> None:
        self._entries[name] = (self._clock() + self.ttl, claim)

    def claim(self, onboarding_id: int, key: str) -> Claim:
        """Record an intent if the key is free, else return what it holds."""
        name = (onboarding_id, key)
        with self._lock:
            existing = self._get(name)
            if existing is not None:
                return existing
            claim = Claim(ClaimState.NEW, self._clock(), owner=secrets.token_hex(8))
            self._put(name, Claim(ClaimState.INTENT, claim.at, owner=claim.owner))
            return claim

    def mark_sent(
        self,
        onboarding_id: int,
        key: str,
        wamid: str,
        at: float,
        *,
        address: tuple[str, str] | None = None,
    ) -> None:
        """Remember the wamid and the address it went to."""
        with self._lock:
            claim = Claim(ClaimState.SENT, at, wamid=wamid, address=address)
            self._put((onboarding_id, key), claim)

    def mark_unknown(self, onboarding_id: int, key: str) -> None:
        """Remember that the send may have gone out."""
        with self._lock:
            self._put((onboarding_id, key), Claim(ClaimState.UNKNOWN, self._clock()))

    def release(self, onboarding_id: int, key: str, owner: str) -> None:
        """Forget the key if ``owner`` still holds it."""
        with self._lock:
            existing = self._get((onboarding_id, key))
            if existing is not None and existing.owner == owner:
                del self._entries[(onboarding_id, key)]
