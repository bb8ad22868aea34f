"""One stack's shared configuration: the ``COEX_*`` settings every process gets."""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from benchmarks._harness.services import DEFAULT_BROKER_URL, DEFAULT_DATABASE_URL
from config import Settings
from models.crypto import TokenCipher
from onboarding.sandbox import Sandbox

# -- configuration -------------------------------------------------------------------------


def _token() -> str:
    return secrets.token_urlsafe(24)


@dataclass(frozen=True)
class StackConfig:
    """Everything the processes of one stack share; secrets are fresh per instance."""

    database_url: str = DEFAULT_DATABASE_URL
    broker_url: str = DEFAULT_BROKER_URL
    app_id: str = "1234567890123456"
    app_secret: str = field(default_factory=_token)
    signup_token: str = field(default_factory=_token)
    admin_token: str = field(default_factory=_token)
    feed_token: str = field(default_factory=_token)
    webhook_verify_token: str = field(default_factory=_token)
    token_keys: str = field(default_factory=TokenCipher.generate_key)
    graph_max_attempts: int = 3
    #: Further settings by field name, e.g. ``{"sync_max_probes": "10"}``.
    overrides: Mapping[str, str] = field(default_factory=dict)
    #: prometheus-client's multiprocess directory for every process of the stack (None: off).
    metrics_dir: str | None = None

    def values(self, graph_url: str) -> dict[str, str]:
        """The settings every process gets, by :class:`~config.Settings` field name."""
        values = {
            "environment": "production",
            "database_url": self.database_url,
            "broker_url": self.broker_url,
            "tasks_eager": "false",
            "meta_graph_url": graph_url,
            "meta_app_id": self.app_id,
            "meta_app_secret": self.app_secret,
            "token_keys": self.token_keys,
            "signup_token": self.signup_token,
            "admin_token": self.admin_token,
            "feed_token": self.feed_token,
            "webhook_verify_token": self.webhook_verify_token,
            "graph_max_attempts": str(self.graph_max_attempts),
        }
        values.update(self.overrides)
        return values

    def environment(self, graph_url: str) -> dict[str, str]:
        """This process's environment without any ``COEX_*``, plus the stack's settings."""
        env = {k: v for k, v in os.environ.items() if not k.upper().startswith("COEX_")}
        env.update({f"COEX_{k.upper()}": v for k, v in self.values(graph_url).items()})
        env["PYTHONUNBUFFERED"] = "1"
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        if self.metrics_dir is not None:
            env["PROMETHEUS_MULTIPROC_DIR"] = self.metrics_dir
        return env

    def settings(self, graph_url: str) -> Settings:
        """The same settings as an object, for in-process clients (broker, database)."""
        return Settings(_env_file=None, **self.values(graph_url))  # type: ignore[arg-type]

    def sandbox(self, **options: Any) -> Sandbox:
        """A sandbox for this stack's Meta app (``seed=``, ``faults=``...)."""
        return Sandbox(self.app_id, self.app_secret, **options)
