"""Fault injection per call: what the configured :class:`~.faults.Faults` do to one request.

A :class:`FaultInjector` draws, from one RNG seeded with ``Faults.seed``, the latency, the 5xx
or throttling error that replaces the call, or the drop of its response after the call was
applied (:class:`DroppedResponse`), and counts what it injected per endpoint and kind.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass

import httpx

from onboarding.sandbox.errors import GraphReplyError
from onboarding.sandbox.faults import ENDPOINTS, FAULT_KINDS, Faults


class DroppedResponse(Exception):  # noqa: N818 - named after what happens, as the design asks
    """The call was applied, but fault injection says its response must never arrive."""

    def __init__(self, endpoint: str, response: httpx.Response) -> None:
        super().__init__(f"response to {endpoint} dropped after the call was applied")
        self.endpoint = endpoint
        self.response = response


@dataclass(frozen=True, slots=True)
class FaultPlan:
    """What happens to one call: a delay, an error instead of the call, or a dropped answer."""

    delay_seconds: float = 0.0
    error: GraphReplyError | None = None
    drop: bool = False


class FaultInjector:
    """The faults in force, their RNG and the count of injected faults."""

    def __init__(self, faults: Faults) -> None:
        """Inject ``faults``; the counters start at zero."""
        self.set(faults)
        self.reset_counts()

    @property
    def faults(self) -> Faults:
        """The fault configuration in force."""
        return self._faults

    def set(self, faults: Faults) -> None:
        """Replace the fault configuration; its seed re-seeds the RNG."""
        self._faults = faults
        self._rng = random.Random(faults.seed)

    def reset_counts(self) -> None:
        """Zero the injected-fault counters."""
        self._counts: dict[str, dict[str, int]] = {
            endpoint: dict.fromkeys(FAULT_KINDS, 0) for endpoint in ENDPOINTS
        }

    def counts(self) -> dict[str, dict[str, int]]:
        """The injected faults per endpoint key and kind."""
        return {endpoint: dict(kinds) for endpoint, kinds in self._counts.items()}

    def plan(self, endpoint: str, usage_owner: str) -> FaultPlan:
        """Draw the faults of one call to ``endpoint`` (a key of :data:`~.faults.ENDPOINTS`).

        ``usage_owner`` is the WABA (or app) a WABA-level throttle names in its usage header.
        """
        rule = self._faults.rule_for(endpoint)
        counts = self._counts[endpoint]
        rng = self._rng
        delay = 0.0
        if rule.latency_ms > 0 or rule.latency_jitter_ms > 0:
            jitter = rng.uniform(0.0, rule.latency_jitter_ms) if rule.latency_jitter_ms else 0.0
            delay = (rule.latency_ms + jitter) / 1000.0
            counts["latency"] += 1
        if rule.error_5xx > 0 and rng.random() < rule.error_5xx:
            counts["error_5xx"] += 1
            return FaultPlan(delay, _server_error(rng))
        if rule.throttle > 0 and rng.random() < rule.throttle:
            counts["throttle"] += 1
            error = _throttle_error(rng, usage_owner, rule.throttle_regain_minutes)
            return FaultPlan(delay, error)
        drop = rule.drop_after_apply > 0 and rng.random() < rule.drop_after_apply
        if drop:
            counts["drop_after_apply"] += 1
        return FaultPlan(delay, None, drop)


def _server_error(rng: random.Random) -> GraphReplyError:
    if rng.random() < 0.25:
        return GraphReplyError("Service temporarily unavailable", 2, status=503, is_transient=True)
    return GraphReplyError("An unknown error has occurred.", 1, status=500, is_transient=False)


def _throttle_error(rng: random.Random, owner: str, regain_minutes: float) -> GraphReplyError:
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
