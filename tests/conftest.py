"""Shared fixtures: explicit settings, a fresh database per test, eager tasks, the sandbox.

Unit tests run on SQLite with the Graph API answered by the Meta sandbox through
``httpx.MockTransport``. Integration tests (``tests/integration``) use the real PostgreSQL,
Redis and a Celery worker; see ``tests/integration/conftest.py``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from config import Settings
from config.logging import configure_logging
from models import Base, Database
from models.crypto import TokenCipher
from onboarding import runtime
from onboarding.media_store import MediaStore, store_for
from onboarding.meta.graph import GraphClient
from onboarding.runtime import Runtime
from onboarding.sandbox import Sandbox
from tasks.app import app as celery_app
from tests.s3server import S3Server

APP_ID = "1234567890123456"
APP_SECRET = "sandbox-app-secret-0123456789abcdef"
SIGNUP_TOKEN = "signup-token-for-tests-0123456789"
ADMIN_TOKEN = "admin-token-for-tests-0123456789"
VERIFY_TOKEN = "verify-token-for-tests-0123456789"
FEED_TOKEN = "feed-token-for-tests-0123456789"
TOKEN_KEY = TokenCipher.generate_key()


def make_settings(**overrides: object) -> Settings:
    values: dict[str, object] = {
        "environment": "development",
        "database_url": "sqlite://",
        "broker_url": "memory://",
        "tasks_eager": True,
        "meta_app_id": APP_ID,
        "meta_app_secret": SecretStr(APP_SECRET),
        "meta_graph_url": "https://graph.facebook.com",
        "signup_token": SecretStr(SIGNUP_TOKEN),
        "admin_token": SecretStr(ADMIN_TOKEN),
        "feed_token": SecretStr(FEED_TOKEN),
        "webhook_verify_token": SecretStr(VERIFY_TOKEN),
        "token_keys": SecretStr(TOKEN_KEY),
        "graph_max_attempts": 3,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@pytest.fixture(scope="session", autouse=True)
def _logging() -> None:
    configure_logging("development", "WARNING")


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(database_url=f"sqlite:///{tmp_path / 'coexist.db'}")


@pytest.fixture
def db(settings: Settings) -> Iterator[Database]:
    database = Database(settings.database_url)
    Base.metadata.create_all(database.engine)
    yield database
    database.dispose()


@pytest.fixture
def sandbox() -> Sandbox:
    return Sandbox(app_id=APP_ID, app_secret=APP_SECRET, seed=7)


@pytest.fixture
def graph(sandbox: Sandbox) -> Iterator[GraphClient]:
    client = GraphClient(
        app_id=APP_ID,
        app_secret=APP_SECRET,
        transport=sandbox.mock_transport(),
        max_wait=0.01,
    )
    yield client
    client.close()


@pytest.fixture
def cipher(settings: Settings) -> TokenCipher:
    return TokenCipher(settings.token_keys.get_secret_value())


@pytest.fixture
def rt(
    settings: Settings, db: Database, graph: GraphClient, cipher: TokenCipher
) -> Iterator[Runtime]:
    """The process runtime, pointed at the test database and the sandbox; tasks run eagerly."""
    runtime_obj = Runtime(settings=settings, db=db, cipher=cipher, graph=graph)
    previous = runtime.install(runtime_obj)
    old_eager = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True
    celery_app.conf.task_eager_propagates = True
    yield runtime_obj
    celery_app.conf.task_always_eager = old_eager
    runtime.install(previous)


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """A real S3 API (moto's server) on a free port of 127.0.0.1, for the session."""
    server = S3Server()
    yield server
    server.close()


def use_s3(settings: Settings, server: S3Server, *, prefix: str = "media") -> str:
    """Point ``settings`` at a new, empty bucket of ``server``; the store's URL."""
    bucket = server.new_bucket()
    store = f"s3://{bucket}/{prefix}" if prefix else f"s3://{bucket}"
    values = server.settings(store)
    typed = make_settings(**values)  # read (and checked) as the environment would be
    for name in values:
        setattr(settings, name, getattr(typed, name))
    return store


@pytest.fixture(params=["local", "s3"])
def media_store(request: pytest.FixtureRequest, settings: Settings, tmp_path: Path) -> MediaStore:
    """The settings' media store: a temporary directory, then a bucket on the S3 server."""
    if request.param == "s3":
        use_s3(settings, request.getfixturevalue("s3_server"))
    else:
        settings.media_store = str(tmp_path / "media")
    return store_for(settings)
