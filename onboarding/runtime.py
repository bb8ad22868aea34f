"""The long-lived objects one process shares: settings, database, Graph client, cipher.

Built once per process from :func:`config.get_settings`; tests, the demo and benchmarks install
their own with :func:`install`.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from config import Settings, get_settings
from config.logging import configure_logging, register_secret
from models import Database
from models.crypto import TokenCipher
from onboarding.graph import GraphClient


class ConfigurationError(RuntimeError):
    """The process is missing settings it cannot run without."""


@dataclass
class Runtime:
    settings: Settings
    db: Database
    cipher: TokenCipher
    graph: GraphClient
    extras: dict[str, object] = field(default_factory=dict)

    @classmethod
    def build(cls, settings: Settings, *, graph: GraphClient | None = None) -> Runtime:
        return cls(
            settings=settings,
            db=Database(settings.database_url),
            cipher=TokenCipher(settings.token_keys.get_secret_value()),
            graph=graph or GraphClient.from_settings(settings),
        )

    def close(self) -> None:
        self.graph.close()
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
            register_secret(*settings.secret_values)
            _current = Runtime.build(settings)
        return _current


def install(runtime: Runtime | None) -> Runtime | None:
    """Use ``runtime`` from now on (None to forget); returns the previous one."""
    global _current
    with _lock:
        previous, _current = _current, runtime
        return previous
