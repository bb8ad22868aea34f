"""What the sandbox's webhooks deliver and how: :class:`WebhookConfig` and
:class:`DeliveryOptions`, with their JSON forms for the control API."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Final, Literal, get_args

import httpx

from onboarding.sandbox.profile import HistoryProfile
from onboarding.sandbox.sinks import Sink

WebhookMode = Literal["normal", "declined"]
WEBHOOK_MODES: Final = get_args(WebhookMode)


@dataclass(frozen=True, slots=True)
class DeliveryOptions:
    """How deliveries are sent: retries, pacing, concurrency and threading.

    Attempt 1 goes out at once; a failed attempt n is retried after 0 s (n = 1), then
    ``retry_delay * 2 ** (n - 2)`` seconds, capped at ``max_retry_delay``, until
    ``max_attempts`` attempts were made. ``delivery_delay`` is a pause after each attempt of a
    worker. ``max_records`` bounds the per-delivery outcome log (oldest dropped first).
    """

    max_attempts: int = 4
    retry_delay: float = 0.05
    max_retry_delay: float = 1.0
    delivery_delay: float = 0.0
    max_in_flight: int = 1
    timeout: float = 5.0
    require_subscription: bool = True
    background: bool = True
    max_records: int = 10_000

    def __post_init__(self) -> None:
        """Reject non-positive counts and negative or non-finite durations."""
        for name in ("max_attempts", "max_in_flight", "max_records"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        for name in ("retry_delay", "max_retry_delay", "delivery_delay", "timeout"):
            value = getattr(self, name)
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not math.isfinite(value)
                or value < 0
            ):
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
        if self.timeout <= 0:
            raise ValueError("timeout must be > 0")
        for name in ("require_subscription", "background"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be true or false")

    def backoff(self, attempts_made: int) -> float:
        """Seconds to wait before retrying a delivery that failed ``attempts_made`` times."""
        if attempts_made <= 1:
            return 0.0
        return float(min(self.retry_delay * 2 ** (attempts_made - 2), self.max_retry_delay))

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON form used by the control API."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DeliveryOptions:
        """Build options from their JSON form; unknown keys are an error."""
        known = {spec.name for spec in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown delivery keys: {sorted(unknown)}")
        return cls(**data)


@dataclass(frozen=True, slots=True)
class WebhookConfig:
    """What the sandbox delivers after an accepted sync, and where.

    Exactly one target: ``sink`` (in-process) or ``callback_url`` (HTTP POST); with neither,
    accepted syncs deliver nothing. ``echoes`` is the number of ``smb_message_echoes`` webhooks
    sent after the history. A change that follows a webhook override the sandbox holds
    (:mod:`.webhook_routing`) is posted to that override instead; ``override_targets`` maps an
    override URL (Meta's are https) to where the sandbox really posts it, such as a loopback
    ``http://`` address in tests.
    """

    callback_url: str | None = None
    sink: Sink | None = field(default=None, compare=False)
    profile: HistoryProfile = field(default_factory=HistoryProfile)
    mode: WebhookMode = "normal"
    echoes: int = 0
    envelope_less_decline: bool = False
    delivery: DeliveryOptions = field(default_factory=DeliveryOptions)
    override_targets: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        """Validate the target, mode and counts."""
        _check_targets(self.override_targets)
        if self.callback_url is not None and self.sink is not None:
            raise ValueError("configure either callback_url or sink, not both")
        if self.callback_url is not None:
            try:
                url = httpx.URL(self.callback_url)
            except (httpx.InvalidURL, TypeError) as error:
                raise ValueError(f"invalid callback_url: {error}") from None
            if url.scheme not in {"http", "https"} or not url.host:
                raise ValueError("callback_url must be an absolute http(s) URL")
        if self.sink is not None and not callable(self.sink):
            raise ValueError("sink must be callable")
        if self.mode not in WEBHOOK_MODES:
            raise ValueError(f"mode must be one of {list(WEBHOOK_MODES)}, got {self.mode!r}")
        if isinstance(self.echoes, bool) or not isinstance(self.echoes, int) or self.echoes < 0:
            raise ValueError(f"echoes must be an integer >= 0, got {self.echoes!r}")
        if not isinstance(self.envelope_less_decline, bool):
            raise ValueError("envelope_less_decline must be true or false")
        if not isinstance(self.profile, HistoryProfile):
            raise ValueError("profile must be a HistoryProfile")
        if not isinstance(self.delivery, DeliveryOptions):
            raise ValueError("delivery must be DeliveryOptions")

    def override_target(self, override_url: str) -> str:
        """Where a delivery for ``override_url`` is really posted."""
        return dict(self.override_targets).get(override_url, override_url)

    @property
    def has_target(self) -> bool:
        """Whether deliveries have somewhere to go."""
        return self.sink is not None or self.callback_url is not None

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON form used by the control API (an in-process sink shows as such)."""
        return {
            "callback_url": self.callback_url,
            "sink": "in-process" if self.sink is not None else None,
            "mode": self.mode,
            "echoes": self.echoes,
            "envelope_less_decline": self.envelope_less_decline,
            "profile": self.profile.to_dict(),
            "delivery": self.delivery.to_dict(),
            "override_targets": dict(self.override_targets),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> WebhookConfig:
        """Build a config from the control API's JSON form (no in-process sink there).

        Profile and delivery fields go under ``"profile"`` and ``"delivery"``, or flat at the
        top level (``{"callback_url": ..., "seed": 3, "max_attempts": 2}``), not both.
        """
        profile_keys = {spec.name for spec in fields(HistoryProfile)}
        delivery_keys = {spec.name for spec in fields(DeliveryOptions)}
        unknown = set(data) - _CONFIG_KEYS - profile_keys - delivery_keys
        if unknown:
            raise ValueError(f"unknown webhook config keys: {sorted(unknown)}")
        callback_url = data.get("callback_url")
        if callback_url is not None and not isinstance(callback_url, str):
            raise ValueError("callback_url must be a string or null")
        sections: dict[str, dict[str, Any]] = {}
        for section, keys in (("profile", profile_keys), ("delivery", delivery_keys)):
            nested = data.get(section, {})
            if not isinstance(nested, Mapping):
                raise ValueError(f"{section} must be an object")
            flat = {key: value for key, value in data.items() if key in keys}
            both = set(flat) & set(nested)
            if both:
                raise ValueError(f"{sorted(both)} given both flat and under {section!r}")
            sections[section] = {**nested, **flat}
        return cls(
            callback_url=callback_url,
            mode=data.get("mode", "normal"),
            echoes=data.get("echoes", 0),
            envelope_less_decline=data.get("envelope_less_decline", False),
            profile=HistoryProfile.from_dict(sections["profile"]),
            delivery=DeliveryOptions.from_dict(sections["delivery"]),
            override_targets=_string_map(data.get("override_targets", {})),
        )


_CONFIG_KEYS: Final = frozenset(
    {
        "callback_url",
        "mode",
        "echoes",
        "envelope_less_decline",
        "profile",
        "delivery",
        "override_targets",
    }
)


def _string_map(value: Any) -> dict[str, str]:
    if not isinstance(value, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise ValueError("override_targets must be an object of URL strings")
    return dict(value)


def _check_targets(targets: Mapping[str, str]) -> None:
    for source, target in dict(targets).items():
        if not isinstance(source, str) or not isinstance(target, str):
            raise ValueError("override_targets maps override URLs to URLs (strings)")
        _check_url("override_targets", target)


def _check_url(name: str, value: str) -> None:
    try:
        url = httpx.URL(value)
    except (httpx.InvalidURL, TypeError) as error:
        raise ValueError(f"invalid {name} URL: {error}") from None
    if url.scheme not in {"http", "https"} or not url.host:
        raise ValueError(f"{name} URLs must be absolute http(s) URLs")
