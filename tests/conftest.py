"""Shared fixtures: explicit settings, a fresh database per test, eager tasks, the sandbox.

Unit tests run on SQLite with the Graph API answered by the Meta sandbox through
``httpx.MockTransport``. Integration tests (``tests/integration``) use the real PostgreSQL,
Redis and a Celery worker; see ``tests/integration/conftest.py``.
"""

from __future__ import annotations

import secrets
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
from onboarding.media_store.s3 import S3Config, client_for
from onboarding.meta.graph import GraphClient
from onboarding.runtime import Runtime
from onboarding.sandbox import Sandbox
from tasks.app import app as celery_app

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


#: What the tests' S3 server accepts (moto takes any key pair).
S3_KEY_ID = "test-access-key"
S3_SECRET = "test-secret-key-0123456789"


@pytest.fixture(scope="session")
def s3_server() -> Iterator[str]:
    """A real S3 API (moto's server) on a free port of 127.0.0.1, for the session; its URL.

    moto is a dev dependency: without it this fixture, and every test using it, fails."""
    from moto.server import ThreadedMotoServer  # noqa: PLC0415 - only tests that need it pay

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


def use_s3(settings: Settings, endpoint: str, *, prefix: str = "media") -> str:
    """Point ``settings`` at a new, empty bucket of the S3 server at ``endpoint``; its URL."""
    bucket = f"coexist-{secrets.token_hex(6)}"
    config = S3Config(endpoint, "us-east-1", S3_KEY_ID, S3_SECRET, max_attempts=2, timeout=5.0)
    client_for(config).create_bucket(Bucket=bucket)
    settings.media_store = f"s3://{bucket}/{prefix}" if prefix else f"s3://{bucket}"
    settings.media_s3_endpoint_url = endpoint
    settings.media_s3_region = "us-east-1"
    settings.media_s3_access_key_id = S3_KEY_ID
    settings.media_s3_secret_access_key = SecretStr(S3_SECRET)
    settings.media_s3_max_attempts = 2
    settings.media_s3_timeout = 5.0
    return settings.media_store


@pytest.fixture(params=["local", "s3"])
def media_store(request: pytest.FixtureRequest, settings: Settings, tmp_path: Path) -> MediaStore:
    """The settings' media store: a temporary directory, then a bucket on the S3 server."""
    if request.param == "s3":
        use_s3(settings, request.getfixturevalue("s3_server"))
    else:
        settings.media_store = str(tmp_path / "media")
    return store_for(settings)
