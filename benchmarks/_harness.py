"""The real coexist stack driven from Python, shared by the integration tests and the benchmarks.

It checks and resets PostgreSQL and Redis, serves the Meta sandbox (in the caller's process),
starts a Celery worker and the web app as subprocesses with the same ``COEX_*`` environment,
and talks to the web app over HTTP::

    config = StackConfig(database_url=..., broker_url=...)
    check_services(config.database_url, config.broker_url)  # names whatever is missing
    with (
        exclusive_stack(config.database_url),  # one stack per database at a time
        SandboxServer(config.sandbox(seed=7)) as server,
        BrokerClient(config.settings(server.url)) as broker,
    ):
        reset_database(config.database_url)  # drop everything in schema public, migrate
        broker.reset()  # flush this Redis DB only, re-declare coexist's queues
        with (
            start_worker(config, server.url, log_dir, broker=broker),
            start_web(config, server.url, log_dir) as web,
            CoexistApi(web.url, config) as api,
        ):
            api.post_signup(signup.session, signup.code)

Every wait polls a condition and is bounded. Every subprocess runs in its own session and logs
to a file; :meth:`ManagedProcess.stop` sends SIGTERM, then SIGKILL to the whole process group
(a prefork worker's children included) after a timeout.
"""

from __future__ import annotations

import contextlib
import functools
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Final, TypeVar
from urllib.parse import urlsplit

import httpx
import redis
from celery import Celery
from kombu.exceptions import KombuError
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlalchemy.pool import NullPool

from config import Settings
from config.celery import URGENT_QUEUES, celery_config
from models import Database, OnboardingState, SyncState
from models.crypto import TokenCipher
from models.db import make_engine
from onboarding.sandbox import Sandbox

T = TypeVar("T")

ROOT: Final = Path(__file__).resolve().parent.parent
DEFAULT_DATABASE_URL: Final = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
DEFAULT_BROKER_URL: Final = "redis://127.0.0.1:6379/15"
#: Destructive resets refuse databases whose name does not say it is disposable.
DISPOSABLE_DATABASE_MARKERS: Final = ("test", "bench")
#: How long a DDL or TRUNCATE may wait for a lock held by a straggling task.
LOCK_TIMEOUT: Final = "10s"
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
    webhook_verify_token: str = field(default_factory=_token)
    token_keys: str = field(default_factory=TokenCipher.generate_key)
    graph_max_attempts: int = 3
    #: Further settings by field name, e.g. ``{"sync_max_probes": "10"}``.
    overrides: Mapping[str, str] = field(default_factory=dict)

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
        return env

    def settings(self, graph_url: str) -> Settings:
        """The same settings as an object, for in-process clients (broker, database)."""
        return Settings(_env_file=None, **self.values(graph_url))  # type: ignore[arg-type]

    def sandbox(self, **options: Any) -> Sandbox:
        """A sandbox for this stack's Meta app (``seed=``, ``faults=``...)."""
        return Sandbox(self.app_id, self.app_secret, **options)


# -- subprocesses --------------------------------------------------------------------------


class ManagedProcess:
    """A subprocess in its own session, logging to a file, stopped with its process group."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        env: Mapping[str, str],
        log_path: Path,
        cwd: Path = ROOT,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.env = dict(env)
        self.log_path = log_path
        self.cwd = cwd
        self._popen: subprocess.Popen[bytes] | None = None

    def start(self) -> ManagedProcess:
        if self._popen is not None:
            raise RuntimeError(f"{self.name} already started")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self._popen = subprocess.Popen(
                self.argv,
                cwd=self.cwd,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self

    @property
    def pid(self) -> int | None:
        return self._popen.pid if self._popen else None

    @property
    def running(self) -> bool:
        return self._popen is not None and self._popen.poll() is None

    @property
    def returncode(self) -> int | None:
        return self._popen.poll() if self._popen else None

    def stop(self, timeout: float = 20.0) -> int | None:
        """SIGTERM, wait up to ``timeout`` s, then SIGKILL the whole process group."""
        popen = self._popen
        if popen is None:
            return None
        if popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                popen.send_signal(signal.SIGTERM)
            try:
                popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self._kill_group(popen.pid)
                popen.wait(10)
        # Children left behind by a parent that died (prefork pool processes) go too.
        self._kill_group(popen.pid)
        return popen.returncode

    @staticmethod
    def _kill_group(pgid: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)

    def log_tail(self, lines: int = 60, max_bytes: int = 64 * 1024) -> str:
        """The last ``lines`` lines of the log ('' if there is none yet)."""
        try:
            with self.log_path.open("rb") as log:
                size = log.seek(0, os.SEEK_END)
                log.seek(max(0, size - max_bytes))
                data = log.read()
        except FileNotFoundError:
            return ""
        return "\n".join(data.decode("utf-8", "replace").splitlines()[-lines:])

    def wait_until(
        self, check: Callable[[], bool], *, what: str, timeout: float, interval: float = 0.1
    ) -> None:
        """Poll ``check`` until true; fail early if the process exits."""
        deadline = time.monotonic() + timeout
        while True:
            if not self.running:
                raise StackStartError(
                    f"{self.name} exited with status {self.returncode} while waiting for {what};"
                    f" log {self.log_path}:\n{self.log_tail()}"
                )
            if check():
                return
            if time.monotonic() >= deadline:
                raise StackStartError(
                    f"{self.name}: {what} did not happen within {timeout:g} s;"
                    f" log {self.log_path}:\n{self.log_tail()}"
                )
            time.sleep(interval)

    def __enter__(self) -> ManagedProcess:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def start_worker(
    config: StackConfig,
    graph_url: str,
    log_dir: Path,
    *,
    broker: BrokerClient,
    concurrency: int = 2,
    queues: Iterable[str] = URGENT_QUEUES,
    timeout: float = 60.0,
) -> ManagedProcess:
    """A prefork Celery worker (the ``urgent`` process by default), once it answers a ping."""
    node = f"coexist-{uuid.uuid4().hex[:8]}@{socket.gethostname()}"
    argv = [
        *(sys.executable, "-m", "celery", "-A", "tasks", "worker"),
        *("-Q", ",".join(queues), "-c", str(concurrency), "--pool", "prefork"),
        *("--without-heartbeat", "--without-gossip", "--without-mingle"),
        *("-l", "INFO", "-n", node),
    ]
    process = ManagedProcess(
        f"celery worker {node}",
        argv,
        env=config.environment(graph_url),
        log_path=log_dir / "worker.log",
    ).start()
    try:
        process.wait_until(lambda: broker.ping(node), what="an answer to ping", timeout=timeout)
    except BaseException:
        process.stop()
        raise
    return process


def start_beat(
    config: StackConfig, graph_url: str, log_dir: Path, *, timeout: float = 30.0
) -> ManagedProcess:
    """``celery beat`` with coexist's schedule (a fresh schedule file), once it has started."""
    log_dir.mkdir(parents=True, exist_ok=True)
    argv = [
        *(sys.executable, "-m", "celery", "-A", "tasks", "beat", "-l", "INFO"),
        *("--schedule", str(log_dir / "beat-schedule")),
    ]
    process = ManagedProcess(
        "celery beat", argv, env=config.environment(graph_url), log_path=log_dir / "beat.log"
    ).start()
    try:
        process.wait_until(
            lambda: "beat: Starting" in process.log_tail(), what="beat to start", timeout=timeout
        )
    except BaseException:
        process.stop()
        raise
    return process


@dataclass(frozen=True)
class WebServer:
    """The uvicorn process and the URL it serves."""

    process: ManagedProcess
    url: str

    def __enter__(self) -> WebServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.process.stop()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False


def start_web(
    config: StackConfig,
    graph_url: str,
    log_dir: Path,
    *,
    timeout: float = 30.0,
    tries: int = 3,
    extra_args: Sequence[str] = (),
) -> WebServer:
    """``uvicorn onboarding.web:app`` on a free port, once ``GET /healthz`` answers 200."""
    for attempt in range(1, tries + 1):
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        argv = [sys.executable, "-m", "uvicorn", "onboarding.web:app"]
        argv += ["--host", "127.0.0.1", "--port", str(port), *extra_args]
        suffix = "" if attempt == 1 else f"-{attempt}"
        process = ManagedProcess(
            f"web {url}",
            argv,
            env=config.environment(graph_url),
            log_path=log_dir / f"web{suffix}.log",
        ).start()
        try:
            process.wait_until(
                functools.partial(_healthy, url), what="GET /healthz to answer 200", timeout=timeout
            )
        except StackStartError:
            process.stop()
            if attempt < tries and "address already in use" in process.log_tail().lower():
                continue  # another process took the port between probe and bind
            raise
        except BaseException:
            process.stop()
            raise
        return WebServer(process, url)
    raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises


# -- the web app's API ---------------------------------------------------------------------


def syncs_requested(detail: Mapping[str, Any]) -> bool:
    """The onboarding is ``syncing`` and Meta accepted both of its sync requests."""
    return detail["state"] == OnboardingState.SYNCING and all(
        sync["state"] == SyncState.REQUESTED for sync in detail["sync"].values()
    )


def describe(detail: Mapping[str, Any]) -> str:
    """One line about an onboarding, for failure messages."""
    syncs = ", ".join(
        f"{label}={sync['state']}/{sync['attempts']} attempts"
        + (f" ({sync['last_error']})" if sync["last_error"] else "")
        for label, sync in detail["sync"].items()
    )
    timeline = " > ".join(step["to"] for step in detail["timeline"])
    alerts = ", ".join(alert["kind"] for alert in detail["alerts"]) or "none"
    error = detail["last_error"] or "none"
    return (
        f"onboarding {detail['id']} {detail['state']} [{timeline}] syncs: {syncs};"
        f" last error: {error}; alerts: {alerts}"
    )


class CoexistApi:
    """The web app over HTTP, with the signup and admin bearers."""

    def __init__(
        self, base_url: str, config: StackConfig, *, timeout: float = 10.0, connections: int = 16
    ) -> None:
        self._signup = {"Authorization": f"Bearer {config.signup_token}"}
        self._admin = {"Authorization": f"Bearer {config.admin_token}"}
        limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
        self._http = httpx.Client(base_url=base_url, timeout=timeout, limits=limits)

    def post_signup(self, session: Mapping[str, Any], code: str | None = None) -> httpx.Response:
        """``POST /signup`` with the browser's hand-off (``code`` absent for a CANCEL)."""
        body: dict[str, Any] = {"session": dict(session)}
        if code is not None:
            body["code"] = code
        return self._http.post("/signup", json=body, headers=self._signup)

    def onboarding(self, onboarding_id: int) -> dict[str, Any]:
        """``GET /onboardings/{id}``: the operator's view of one onboarding."""
        response = self._http.get(f"/onboardings/{onboarding_id}", headers=self._admin)
        response.raise_for_status()
        detail: dict[str, Any] = response.json()
        return detail

    def wait_for_onboarding(
        self,
        onboarding_id: int,
        until: Callable[[Mapping[str, Any]], bool] = syncs_requested,
        *,
        what: str = "both syncs requested",
        timeout: float = 30.0,
    ) -> dict[str, Any]:
        """Poll the onboarding until ``until`` holds; fail early if it is stuck."""
        detail = poll_until(
            lambda: self.onboarding(onboarding_id),
            lambda d: until(d) or d["state"] in STUCK_STATES,
            what=f"onboarding {onboarding_id}: {what}",
            timeout=timeout,
            describe=describe,
        )
        if not until(detail):
            raise AssertionError(f"{what}: never, the onboarding is stuck: {describe(detail)}")
        return detail

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> CoexistApi:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
