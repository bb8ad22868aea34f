"""Fault injection configuration for the sandbox.

A :class:`Faults` value maps an endpoint key to a :class:`FaultRule`. The keys are the Graph
endpoints the sandbox models (:data:`ENDPOINTS`) or ``"*"`` for every endpoint; a rule for a
specific endpoint replaces the ``"*"`` rule for that endpoint entirely. Faults never apply to
the ``/_sandbox/`` control API.

Per call, the sandbox applies a rule in this order, drawing from one RNG seeded with
``Faults.seed`` (so a seeded run is reproducible):

1. ``latency_ms`` plus a uniform ``[0, latency_jitter_ms]`` delay before the call is handled;
2. ``error_5xx``: the call is not applied; HTTP 500 code 1 or, one time in four, HTTP 503 code 2;
3. ``throttle``: the call is not applied; HTTP 400 with code 4 or 80007 and usage headers;
4. ``drop_after_apply``: the call is applied, then the response is dropped
   (:class:`~onboarding.sandbox.injection.DroppedResponse`).

The JSON form used by ``PUT /_sandbox/faults``::

    {"seed": 7, "rules": {"*": {"latency_ms": 5},
                          "smb_app_data": {"drop_after_apply": 1.0}}}
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from types import MappingProxyType
from typing import Any, Final

ENDPOINTS: Final = (
    "oauth",
    "phone_numbers",
    "phone_number",
    "waba",
    "subscribed_apps",
    "smb_app_data",
    "register",
    "deregister",
    "media",
    "media_download",
    "messages",
    "debug_token",
)
"""Endpoint keys for faults and call counters (``unknown`` counts unrouted calls).

``media`` is the Graph media node (``GET /{media_id}``) and ``media_download`` the download URL
it hands out (``GET /_media/...``, the sandbox's stand-in for Meta's media CDN). ``messages`` is
the Cloud API send (``POST /{phone_number_id}/messages``); its own throughput limit (``130429``)
is not a fault but the sandbox's model of Meta's rule, and applies whatever the faults say.
"""

WILDCARD: Final = "*"
FAULT_KINDS: Final = ("latency", "error_5xx", "throttle", "drop_after_apply")
"""Names under which injected faults are counted."""

_RATE_FIELDS: Final = ("error_5xx", "throttle", "drop_after_apply")


@dataclass(frozen=True, slots=True)
class FaultRule:
    """Fault rates (0.0 to 1.0) and latency (milliseconds) for one endpoint."""

    error_5xx: float = 0.0
    throttle: float = 0.0
    latency_ms: float = 0.0
    latency_jitter_ms: float = 0.0
    drop_after_apply: float = 0.0
    #: ``estimated_time_to_regain_access`` (minutes) sent with code 80007 throttles; 0 omits
    #: the business use-case header, as Meta does when it gives no estimate.
    throttle_regain_minutes: float = 1.0

    def __post_init__(self) -> None:
        """Reject rates outside [0, 1] and negative or non-finite latencies."""
        for name in _RATE_FIELDS:
            value = getattr(self, name)
            if not isinstance(value, int | float) or not 0.0 <= value <= 1.0:
                raise ValueError(f"fault rate {name} must be a number in [0, 1], got {value!r}")
        for name in ("latency_ms", "latency_jitter_ms", "throttle_regain_minutes"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")

    def to_dict(self) -> dict[str, float]:
        """Return the JSON form of the rule."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FaultRule:
        """Build a rule from its JSON form; unknown keys are an error."""
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown fault rule keys: {sorted(unknown)}")
        for key, value in data.items():
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"fault rule {key} must be a number, got {value!r}")
        return cls(**{key: float(value) for key, value in data.items()})


_NO_FAULTS: Final = FaultRule()


@dataclass(frozen=True, slots=True)
class Faults:
    """Fault rules per endpoint key (or ``"*"``), plus the seed of the fault RNG."""

    rules: Mapping[str, FaultRule] = field(default_factory=dict)
    seed: int | None = None

    def __post_init__(self) -> None:
        """Validate the endpoint keys and freeze the mapping."""
        unknown = set(self.rules) - {*ENDPOINTS, WILDCARD}
        if unknown:
            raise ValueError(
                f"unknown fault endpoints {sorted(unknown)}; use {[*ENDPOINTS, WILDCARD]}"
            )
        for key, rule in self.rules.items():
            if not isinstance(rule, FaultRule):
                raise TypeError(f"fault rule for {key!r} must be a FaultRule")
        object.__setattr__(self, "rules", MappingProxyType(dict(self.rules)))

    @classmethod
    def only(cls, endpoint: str, *, seed: int | None = None, **rates: float) -> Faults:
        """Faults for one endpoint key, e.g. ``Faults.only("oauth", throttle=1.0, seed=1)``."""
        return cls(rules={endpoint: FaultRule(**rates)}, seed=seed)

    def rule_for(self, endpoint: str) -> FaultRule:
        """Return the rule for ``endpoint``: its own rule, else the ``"*"`` rule, else none."""
        rule = self.rules.get(endpoint)
        if rule is None:
            rule = self.rules.get(WILDCARD, _NO_FAULTS)
        return rule

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON form used by the control API."""
        return {
            "seed": self.seed,
            "rules": {key: rule.to_dict() for key, rule in self.rules.items()},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Faults:
        """Build faults from the control API's JSON form."""
        unknown = set(data) - {"seed", "rules"}
        if unknown:
            raise ValueError(f"unknown fault config keys: {sorted(unknown)}")
        seed = data.get("seed")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise ValueError(f"seed must be an integer or null, got {seed!r}")
        raw_rules = data.get("rules", {})
        if not isinstance(raw_rules, Mapping):
            raise ValueError("rules must be an object keyed by endpoint")
        rules: dict[str, FaultRule] = {}
        for key, raw in raw_rules.items():
            if not isinstance(raw, Mapping):
                raise ValueError(f"rule for {key!r} must be an object")
            rules[str(key)] = FaultRule.from_dict(raw)
        return cls(rules=rules, seed=seed)
