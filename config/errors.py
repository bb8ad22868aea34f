"""Error reporting to Sentry (or any server that speaks its protocol), when
``COEX_SENTRY_DSN`` is set.

Every event is scrubbed before it leaves the process exactly as log lines are
(:mod:`config.logging`): secret keys replaced whole, token-shaped strings and every configured
or run-time secret (signup codes, business tokens) masked, at any depth. Local variables are not
captured, and no personal data is sent by default.
"""

from __future__ import annotations

from collections.abc import Iterable
from importlib.metadata import version
from typing import Any

from config.logging import scrub_deep

#: Nesting a Sentry event reaches (exception → stack frames → request data...).
EVENT_DEPTH = 32


def configure_error_reporting(
    dsn: str, *, environment: str, static_secrets: Iterable[str] = ()
) -> bool:
    """Send unhandled errors (and error log lines) to ``dsn``; False when it is empty."""
    if not dsn:
        return False
    import sentry_sdk  # noqa: PLC0415 - only when reporting is on

    secrets = [s for s in static_secrets if s]

    def scrub(event: Any, _hint: Any) -> Any:
        return scrub_deep(event, secrets, EVENT_DEPTH)

    sentry_sdk.init(
        dsn=dsn,
        environment=environment,
        release=f"coexist@{version('coexist')}",
        include_local_variables=False,
        max_request_body_size="never",
        before_send=scrub,
        before_send_transaction=scrub,
        before_breadcrumb=scrub,
        traces_sample_rate=0.0,
    )
    return True
