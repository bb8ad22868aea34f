"""structlog, configured once: JSON in production, console in development.

Standard-library loggers (Celery's, uvicorn's, httpx's) go through the same processors via
``ProcessorFormatter``, so the redaction below covers every line coexist writes.

Redaction works three ways, because a secret can hide under any key or inside any string:

* by key: values under keys such as ``code``, ``token``, ``access_token``, ``client_secret``,
  ``authorization`` are replaced whole;
* by shape: Meta access tokens (``EAA…``), ``Bearer …`` headers and ``code=``,
  ``client_secret=``, ``access_token=``, ``input_token=``, ``appsecret_proof=`` query
  parameters, and the hosted page's ``sig=`` and ``watch=``, are masked inside any string;
* by value: the configured secrets and every signup code and business token seen at run time
  (:func:`register_secret`) are masked wherever they appear.
"""

from __future__ import annotations

import logging
import re
import sys
import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping, MutableMapping
from typing import Any

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

REDACTED = "[redacted]"

SECRET_KEYS = frozenset(
    {
        "code",
        "signup_code",
        "token",
        "access_token",
        "business_token",
        "client_secret",
        "app_secret",
        "secret",
        "authorization",
        "password",
        "verify_token",
        "hub.verify_token",
        "appsecret_proof",
        "input_token",
        "token_keys",
    }
)
_PATTERNS = [
    re.compile(r"\bEAA[A-Za-z0-9_\-]{8,}"),
    re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=\-]+"),
    # A value that is all digits ("code=133010" in an error text) is Meta's error code, not a
    # secret: kept, so logs still say what went wrong.
    re.compile(
        r"(?i)((?:code|client_secret|access_token|input_token|appsecret_proof)=)(?!\d+\b)[^&\s'\"]+"
    ),
    # The hosted page's invitation signature and watch token travel in its query strings.
    re.compile(r"(?i)([?&](?:sig|watch)=)[^&\s'\"]+"),
]


class _SecretRegistry:
    """Bounded, thread-safe set of run-time secrets (codes and tokens) to mask by value."""

    def __init__(self, capacity: int = 4096) -> None:
        self._values: OrderedDict[str, None] = OrderedDict()
        self._lock = threading.Lock()
        self._capacity = capacity

    def add(self, value: str) -> None:
        if len(value) < 6:
            return
        with self._lock:
            self._values[value] = None
            self._values.move_to_end(value)
            while len(self._values) > self._capacity:
                self._values.popitem(last=False)

    def snapshot(self) -> list[str]:
        with self._lock:
            return list(self._values)


_registry = _SecretRegistry()


def register_secret(*values: str | None) -> None:
    """Mask these values in every later log line (signup codes, business tokens)."""
    for value in values:
        if value:
            _registry.add(value)


def scrub_text(text: str, extra: Iterable[str] = ()) -> str:
    """``text`` with every known secret and secret-shaped substring masked."""
    for value in (*extra, *_registry.snapshot()):
        if value and value in text:
            text = text.replace(value, REDACTED)
    for pattern in _PATTERNS:
        if pattern.groups:
            text = pattern.sub(lambda m: m.group(1) + REDACTED, text)
        else:
            text = pattern.sub(REDACTED, text)
    return text


def scrub_deep(value: Any, extra: list[str], max_depth: int) -> Any:
    """``value`` (JSON-like) with secrets masked by key, by shape and by value, down to
    ``max_depth`` levels (error reports nest deeper than log lines)."""
    return _scrub(value, extra, 0, max_depth)


def _scrub(value: Any, extra: list[str], depth: int = 0, max_depth: int = 8) -> Any:
    if depth > max_depth:
        return value
    if isinstance(value, str):
        return scrub_text(value, extra)
    if isinstance(value, Mapping):
        return {
            k: (
                REDACTED
                if str(k).lower() in SECRET_KEYS
                else _scrub(v, extra, depth + 1, max_depth)
            )
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return type(value)(_scrub(v, extra, depth + 1, max_depth) for v in value)
    if isinstance(value, BaseException):
        return scrub_text(repr(value), extra)
    return value


class RedactSecrets:
    """structlog processor that masks secrets by key, by shape and by value."""

    def __init__(self, static_secrets: Iterable[str] = ()) -> None:
        self.static = [s for s in static_secrets if s]

    def __call__(self, logger: WrappedLogger, method: str, event_dict: EventDict) -> EventDict:
        for key in list(event_dict):
            if key.lower() in SECRET_KEYS:
                event_dict[key] = REDACTED
            elif key == "exc_info":
                continue
            else:
                event_dict[key] = _scrub(event_dict[key], self.static)
        return event_dict


def _scrub_rendered(logger: WrappedLogger, method: str, event_dict: EventDict) -> EventDict:
    # Exceptions are rendered to text late; scrub the rendered traceback too.
    exc = event_dict.get("exception")
    if isinstance(exc, str):
        event_dict["exception"] = scrub_text(exc)
    return event_dict


_configured_with: tuple[str, str] | None = None


def configure_logging(
    environment: str = "development",
    level: str = "INFO",
    static_secrets: Iterable[str] = (),
    stream: Any = None,
) -> None:
    """Set up structlog and the standard library's root logger. Safe to call again."""
    global _configured_with  # noqa: PLW0603 - logging is process-global by nature
    redact = RedactSecrets(static_secrets)
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        redact,
    ]
    renderer: Processor
    if environment == "production":
        renderer = structlog.processors.JSONRenderer()
        final: list[Processor] = [structlog.processors.format_exc_info, _scrub_rendered, renderer]
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=False)
        final = [renderer]

    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *final],
    )
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in list(root.handlers):
        if getattr(old, "_coexist", False):
            root.removeHandler(old)
    handler._coexist = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level.upper())
    # uvicorn installs its own handlers and stops propagation; route its lines through ours.
    # ``--no-access-log`` leaves ``uvicorn.access`` with no handler and no propagation: keep
    # it off rather than turning every request into a log line again.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        uvicorn_logger = logging.getLogger(name)
        switched_off = not uvicorn_logger.handlers and not uvicorn_logger.propagate
        if name == "uvicorn.access" and switched_off:
            continue
        uvicorn_logger.handlers.clear()
        uvicorn_logger.propagate = True
    # httpx logs every request URL at INFO, which would include query strings; keep it quiet.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)
    _configured_with = (environment, level)


def bind(**values: Any) -> MutableMapping[str, Any]:
    """Bind ids (onboarding, waba, phone, task) to every log line of this context."""
    structlog.contextvars.bind_contextvars(**values)
    return values
