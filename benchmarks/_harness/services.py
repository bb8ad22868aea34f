"""PostgreSQL and Redis for the stack: checked, reset, locked, and bounded waits."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Any, Final, TypeVar
from urllib.parse import urlsplit

import redis
from celery import Celery
from kombu.exceptions import KombuError
from psycopg.errors import DeadlockDetected
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, OperationalError, SQLAlchemyError
from sqlalchemy.pool import NullPool

from config import Settings
from config.celery import celery_config
from models import Database, OnboardingState
from models.db import make_engine

T = TypeVar("T")

ROOT: Final = Path(__file__).resolve().parents[2]
DEFAULT_DATABASE_URL: Final = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
DEFAULT_BROKER_URL: Final = "redis://127.0.0.1:6379/15"
#: Destructive resets refuse databases whose name does not say it is disposable.
DISPOSABLE_DATABASE_MARKERS: Final = ("test", "bench")
#: How long a DDL or TRUNCATE may wait for a lock held by a straggling task.
LOCK_TIMEOUT: Final = "10s"
#: Tries of the per-test TRUNCATE that lost a deadlock to a worker.
TRUNCATE_ATTEMPTS: Final = 5
#: PostgreSQL advisory lock key ("coexstak") held by whoever runs a stack on a database.
STACK_LOCK_KEY: Final = 0x636F657873746B6B
#: Onboarding states that end a wait early: nothing more will happen without an operator.
STUCK_STATES: Final = frozenset(
    {
        OnboardingState.CODE_EXPIRED.value,
        OnboardingState.INELIGIBLE.value,
        OnboardingState.FAILED.value,
        OnboardingState.SYNC_WINDOW_MISSED.value,
        OnboardingState.HISTORY_DECLINED.value,
        OnboardingState.DISCONNECTED.value,
    }
)


class ServiceUnavailableError(RuntimeError):
    """PostgreSQL or Redis cannot be reached: the message names which, where, and why."""


class StackStartError(RuntimeError):
    """A subprocess died or did not become ready in time; the message carries its log tail."""


# -- waiting -------------------------------------------------------------------------------


def poll_until(
    fetch: Callable[[], T],
    done: Callable[[T], bool],
    *,
    what: str,
    timeout: float,
    interval: float = 0.2,
    describe: Callable[[T], str] = repr,
) -> T:
    """Call ``fetch`` until ``done(value)``; raise :class:`TimeoutError` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = fetch()
        if done(value):
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{what}: not within {timeout:g} s; last seen: {describe(value)}")
        time.sleep(interval)


# -- PostgreSQL and Redis ------------------------------------------------------------------


def redact(url: str) -> str:
    """``url`` with its password masked, for messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        parts = urlsplit(url)
        return f"{parts.scheme}://{parts.hostname or ''}{parts.path}"


def check_postgres(url: str, *, timeout: float = 3.0, hint: str = "") -> None:
    """Raise :class:`ServiceUnavailableError` unless ``SELECT 1`` works on ``url``."""
    try:
        engine = make_engine(
            url, poolclass=NullPool, connect_args={"connect_timeout": max(1, round(timeout))}
        )
    except (ArgumentError, ImportError) as exc:
        raise ServiceUnavailableError(f"PostgreSQL URL {redact(url)} is unusable: {exc}") from exc
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        message = f"PostgreSQL is not reachable at {redact(url)}: {reason}"
        raise ServiceUnavailableError(f"{message} {hint}".strip()) from exc
    finally:
        engine.dispose()


def check_redis(url: str, *, timeout: float = 3.0, hint: str = "") -> None:
    """Raise :class:`ServiceUnavailableError` unless Redis at ``url`` answers PING."""
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
    except ValueError as exc:
        raise ServiceUnavailableError(f"Redis URL {redact(url)} is unusable: {exc}") from exc
    try:
        client.ping()
    except (redis.RedisError, OSError) as exc:
        message = f"Redis is not reachable at {redact(url)}: {exc}"
        raise ServiceUnavailableError(f"{message} {hint}".strip()) from exc
    finally:
        client.close()


def check_services(
    database_url: str, broker_url: str, *, database_hint: str = "", broker_hint: str = ""
) -> None:
    """Check PostgreSQL and Redis; one error naming every service that is missing."""
    problems: list[str] = []
    for check, url, hint in (
        (check_postgres, database_url, database_hint),
        (check_redis, broker_url, broker_hint),
    ):
        try:
            check(url, hint=hint)
        except ServiceUnavailableError as exc:
            problems.append(str(exc))
    if problems:
        raise ServiceUnavailableError("\n".join(problems))


def _guard_disposable(url: str) -> None:
    parsed = make_url(url)
    if parsed.get_backend_name() != "postgresql":
        raise ValueError(f"the real stack needs PostgreSQL, not {parsed.get_backend_name()}")
    name = (parsed.database or "").lower()
    if not any(marker in name for marker in DISPOSABLE_DATABASE_MARKERS):
        raise ValueError(
            f"refusing to reset database {parsed.database!r}: its name must contain one of "
            f"{', '.join(DISPOSABLE_DATABASE_MARKERS)}"
        )


def ensure_database(url: str) -> None:
    """Create a benchmark's own database on first use (it is reset on every run); only names
    holding ``bench`` are created."""
    target = make_url(url)
    name = target.database or ""
    if "bench" not in name:
        return
    admin = Database(
        target.set(database="postgres").render_as_string(hide_password=False),
        isolation_level="AUTOCOMMIT",
    )
    try:
        with admin.engine.connect() as conn:
            exists = conn.execute(
                text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}
            ).first()
            if exists is None:
                conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    finally:
        admin.dispose()


def reset_database(url: str) -> None:
    """Drop everything in schema ``public``, then apply coexist's real migrations."""
    _guard_disposable(url)
    database = Database(url, poolclass=NullPool)
    try:
        with database.engine.begin() as connection:
            connection.execute(text(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'"))
            connection.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
            connection.execute(text("CREATE SCHEMA public"))
        database.upgrade()
    finally:
        database.dispose()


@contextlib.contextmanager
def exclusive_stack(database_url: str, *, timeout: float = 300.0) -> Iterator[None]:
    """Hold the stack's advisory lock, so that one test session or benchmark at a time resets
    and uses this database (and, by convention, its Redis DB); wait at most ``timeout`` s.
    """
    engine = make_engine(database_url, poolclass=NullPool)
    try:
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            poll_until(
                lambda: bool(
                    connection.scalar(
                        text("SELECT pg_try_advisory_lock(:key)"), {"key": STACK_LOCK_KEY}
                    )
                ),
                bool,
                what="the stack lock (another integration run or benchmark uses this database)",
                timeout=timeout,
                interval=1.0,
            )
            try:
                yield
            finally:
                connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": STACK_LOCK_KEY})
    finally:
        engine.dispose()


def truncate_app_tables(database: Database) -> None:
    """Empty every table in schema ``public`` except alembic's.

    Identities are not restarted on purpose: a retry a worker still holds from an earlier test
    then finds no onboarding, instead of acting on a new one that reused its id.
    """
    _guard_disposable(database.url)
    # A worker still finishing an earlier test's task (a media download, say) can deadlock
    # with the TRUNCATE; PostgreSQL picks one of the two, and the truncate tries again.
    for attempt in range(1, TRUNCATE_ATTEMPTS + 1):
        try:
            _truncate(database)
            return
        except OperationalError as exc:
            if not isinstance(exc.orig, DeadlockDetected) or attempt == TRUNCATE_ATTEMPTS:
                raise
            time.sleep(0.2 * attempt)


def _truncate(database: Database) -> None:
    with database.engine.begin() as connection:
        connection.execute(text(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'"))
        names = connection.scalars(
            text(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
                "AND tablename <> 'alembic_version' ORDER BY tablename"
            )
        ).all()
        if names:
            quote = connection.dialect.identifier_preparer.quote
            tables = ", ".join(f"public.{quote(name)}" for name in names)
            connection.execute(text(f"TRUNCATE TABLE {tables} CASCADE"))


def _redis_db(url: str) -> int:
    path = urlsplit(url).path.strip("/")
    return int(path) if path.isdigit() else 0


class BrokerClient:
    """A Celery client (never a worker) on the stack's broker: ping, send, reset."""

    def __init__(self, settings: Settings) -> None:
        self.url = settings.broker_url
        self.app = Celery("coexist-harness", set_as_current=False)
        self.app.config_from_object(celery_config(settings))

    def ping(self, node: str, *, timeout: float = 0.5) -> bool:
        """Whether worker ``node`` answers a remote-control ping within ``timeout`` s."""
        try:
            replies = self.app.control.ping(destination=[node], timeout=timeout)
        except (OSError, redis.RedisError, KombuError):
            return False
        return any(node in reply for reply in replies)

    def send(self, task_name: str, *args: Any) -> None:
        """Send a task by name, routed as coexist routes it (beat does the same)."""
        self.app.send_task(task_name, args=list(args))

    def reset(self) -> None:
        """Flush this Redis DB (and only it), then re-declare coexist's queues.

        Every test then starts from the same broker state a freshly started worker leaves:
        no messages, no unacked deliveries, the queues and their bindings declared.
        """
        number = _redis_db(self.url)
        if number == 0:
            raise ValueError(f"refusing to flush Redis DB 0 ({redact(self.url)}); use another DB")
        client = redis.Redis.from_url(self.url, socket_connect_timeout=5, socket_timeout=5)
        try:
            client.flushdb()
        finally:
            client.close()
        with self.app.connection_for_write() as connection:
            channel = connection.default_channel
            for queue in self.app.amqp.queues.values():
                queue.bind(channel).declare()

    def close(self) -> None:
        self.app.close()

    def __enter__(self) -> BrokerClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
