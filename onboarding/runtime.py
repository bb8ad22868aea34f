"""The long-lived objects one process shares: settings, database, Graph client, cipher, and
the send guard (throttle and idempotency ledger) once the first send builds it.

Built once per process from :func:`config.get_settings`; tests, the demo and benchmarks install
their own with :func:`install`.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from config import Settings, get_settings
from config.errors import configure_error_reporting
from config.logging import configure_logging, register_secret
from models import Database
from models.crypto import TokenCipher
from onboarding.meta.graph import GraphClient
from onboarding.outbound.guard import SendGuard
from onboarding.relay.receiver import Receiver


class ConfigurationError(RuntimeError):
    """The process is missing settings it cannot run without."""


@dataclass
class Runtime:
    """One process's shared objects; :meth:`close` releases them."""

    settings: Settings
    db: Database
    cipher: TokenCipher
    graph: GraphClient
    #: Built on first use by :func:`onboarding.outbound.guard.guard_for`; tests set their own.
    send_guard: SendGuard | None = None
    _ingest_db: Database | None = None
    _receiver: Receiver | None = None

    @property
    def receiver(self) -> Receiver | None:
        """The provider's webhook receiver the relay forwards to (None: no ``COEX_RELAY_URL``)."""
        if self._receiver is None and self.settings.relay_url:
            self._receiver = Receiver(self.settings.relay_url, timeout=self.settings.relay_timeout)
        return self._receiver

    @property
    def ingest_db(self) -> Database:
        """The database for webhook ingestion: asynchronous commits on PostgreSQL.

        Everything ingestion writes is rebuilt from the inbox, which the receiver commits
        synchronously; a crash can only lose derived rows whose inbox row then goes back to
        pending (its ``processed`` mark is lost with them) and is dispatched again by beat.
        """
        if self._ingest_db is None:
            if self.db.dialect == "postgresql":
                self._ingest_db = Database(
                    self.db.url, synchronous_commit=False, feed=self.settings.feed_enabled
                )
            else:
                self._ingest_db = self.db
        return self._ingest_db

    @classmethod
    def build(cls, settings: Settings, *, graph: GraphClient | None = None) -> Runtime:
        return cls(
            settings=settings,
            db=Database(settings.database_url, feed=settings.feed_enabled),
            cipher=TokenCipher(settings.token_keys.get_secret_value()),
            graph=graph or GraphClient.from_settings(settings),
        )

    def close(self) -> None:
        self.graph.close()
        if self._receiver is not None:
            self._receiver.close()
        if self._ingest_db is not None and self._ingest_db is not self.db:
            self._ingest_db.dispose()
        self.db.dispose()


_lock = threading.Lock()
_current: Runtime | None = None


def current() -> Runtime:
    """This process's runtime, built from the environment on first use."""
    global _current  # noqa: PLW0603 - one runtime per process
    with _lock:
        if _current is None:
            settings = get_settings()
            missing = settings.missing_for("worker")
            if missing:
                raise ConfigurationError(f"refusing to start: set {', '.join(missing)}")
            configure_logging(
                settings.environment, settings.log_level, static_secrets=settings.secret_values
            )
            configure_error_reporting(
                settings.sentry_dsn.get_secret_value(),
                environment=settings.environment,
                static_secrets=settings.secret_values,
            )
            register_secret(*settings.secret_values)
            _current = Runtime.build(settings)
        return _current


def install(runtime: Runtime | None) -> Runtime | None:
    """Use ``runtime`` from now on (None to forget); returns the previous one."""
    global _current
    with _lock:
        previous, _current = _current, runtime
        return previous
