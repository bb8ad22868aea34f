"""The Celery application (``celery -A tasks worker``)."""

from __future__ import annotations

from celery import Celery
from celery.signals import setup_logging, worker_process_init

from config import get_settings
from config.celery import celery_config
from config.errors import configure_error_reporting
from config.logging import configure_logging

app = Celery(
    "coexist",
    include=[
        "tasks.signup",
        "tasks.sync",
        "tasks.ingest",
        "tasks.followups",
        "tasks.sending",
        "tasks.reconcile",
        "tasks.erase",
        "tasks.relay",
    ],
)
app.config_from_object(celery_config(get_settings()))


@setup_logging.connect
def _logging(**_: object) -> None:
    """Celery's own logs go through coexist's structlog processors (and redaction)."""
    settings = get_settings()
    configure_logging(settings.environment, settings.log_level, settings.secret_values)
    configure_error_reporting(
        settings.sentry_dsn.get_secret_value(),
        environment=settings.environment,
        static_secrets=settings.secret_values,
    )


@worker_process_init.connect
def _fresh_connections(**_: object) -> None:
    """A forked worker child must not share its parent's database connections or sockets."""
    from onboarding import runtime  # noqa: PLC0415 - only meaningful inside a worker

    previous = runtime.install(None)
    if previous is not None:
        previous.db.engine.dispose(close=False)
