"""The real stack for integration tests: PostgreSQL, Redis, a Celery worker, web app, sandbox.

Session-wide (started once, in this order, torn down in reverse):

* the services check: PostgreSQL at ``COEX_TEST_DATABASE_URL`` and Redis at
  ``COEX_TEST_BROKER_URL`` must answer, or every test here *fails* with a message naming what is
  missing (CI's services are part of the contract; a skip would hide their absence);
* the schema: everything in schema ``public`` dropped, then coexist's real migrations;
* the Meta sandbox, served over HTTP on 127.0.0.1 from a thread of this process;
* the broker: this Redis DB flushed (only this DB number) and coexist's queues declared;
* one prefork Celery worker (``-Q signup,sync``, the ``urgent`` process) and the web app
  (``uvicorn onboarding.web:app``) as subprocesses sharing one ``COEX_*`` environment, each
  logging to a file under pytest's temporary directory;
* on request only (``ingest_worker``): a second prefork worker on ``-Q ingest`` (webhook
  processing and media downloads).

Every process of the stack keeps media in one S3 bucket (``media_bucket``) of a real S3 API,
moto's server on 127.0.0.1 in this process, as hosts scaled out share one store; the chaos tests'
private stacks keep theirs in a directory, so both stores run under real workers.

Per test (autouse): app tables truncated, the Redis DB flushed, the sandbox reset. When a test
fails, the tail of the worker's and the web app's logs and the sandbox's call and fault
counters are attached to its report. A PostgreSQL advisory lock keeps two sessions (or a
session and a benchmark) from resetting the same database and Redis DB under each other.

The processes and their helpers live in :mod:`benchmarks._harness`, shared with the benchmarks.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from benchmarks._harness import (
    DEFAULT_BROKER_URL,
    DEFAULT_DATABASE_URL,
    BrokerClient,
    CoexistApi,
    ManagedProcess,
    ServiceUnavailableError,
    StackConfig,
    StackStartError,
    WebServer,
    check_services,
    exclusive_stack,
    reset_database,
    start_web,
    start_worker,
    truncate_app_tables,
)
from models import Database
from onboarding.media_store import MediaStore, store_for
from onboarding.sandbox import Sandbox, SandboxServer
from tests.s3server import S3Server

DATABASE_URL = os.environ.get("COEX_TEST_DATABASE_URL", DEFAULT_DATABASE_URL)
BROKER_URL = os.environ.get("COEX_TEST_BROKER_URL", DEFAULT_BROKER_URL)
SANDBOX_SEED = 7
#: The worker's budget of probes for smb_app_data calls whose answer was lost, pinned so the
#: lossy test does not hang on the default: during its spell a sync can lose up to about five
#: answers, and past the budget an operator must decide (unit-tested in tests/onboarding).
SYNC_MAX_PROBES = "10"
#: Signs the hosted signup page's invitation links in the web process and in the tests.
CONNECT_LINK_SECRET = "connect-link-secret-for-integration-0123"
#: The ingest worker calls a history sync with no history webhook after 3 s ``stalled``. Only
#: the watchdog applies it, and no beat runs here: a test sends ``coexist.ingest.watchdog``
#: itself. A sync that received history never stalls, so the other tests do not notice.
INGEST_HISTORY_STALL_MINUTES = "0.05"
#: A download held up by the S3 store being away is tried again this soon (the test that takes
#: the store away waits for it).
MEDIA_STORE_RETRY_SECONDS = 1.0

T = TypeVar("T")

_PROCESSES = pytest.StashKey[list[ManagedProcess]]()
_SANDBOX = pytest.StashKey[Sandbox]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Attach the stack's log tails and the sandbox's counters to a failed test's report."""
    report: pytest.TestReport = yield
    if report.failed:
        for process in item.config.stash.get(_PROCESSES, []):
            report.sections.append(
                (f"{process.name}: last log lines ({process.log_path})", process.log_tail())
            )
        sandbox = item.config.stash.get(_SANDBOX, None)
        if sandbox is not None:
            stats = json.dumps(sandbox.stats(), indent=1, sort_keys=True)
            report.sections.append(("sandbox: Graph calls and injected faults", stats))
    return report


def _missing_services() -> str | None:
    try:
        check_services(
            DATABASE_URL,
            BROKER_URL,
            database_hint="(set COEX_TEST_DATABASE_URL to a reachable PostgreSQL database)",
            broker_hint="(set COEX_TEST_BROKER_URL to a reachable Redis database)",
        )
    except ServiceUnavailableError as exc:
        return str(exc)
    return None


def _started(start: Callable[[], T]) -> T:
    """``start()``, or fail the test with the process's log tail (no traceback noise)."""
    try:
        return start()
    except StackStartError as exc:
        problem = str(exc)
    pytest.fail(problem, pytrace=False)


@pytest.fixture(scope="session")
def media_bucket(s3_server: S3Server) -> str:
    """The stack's media store: a bucket of the tests' S3 server, as ``s3://bucket/media``."""
    return f"s3://{s3_server.new_bucket()}/media"


@pytest.fixture(scope="session")
def media_store(stack_config: StackConfig) -> MediaStore:
    """The stack's media store, as its processes see it."""
    return store_for(stack_config.settings("http://127.0.0.1"))


@pytest.fixture(scope="session")
def stack_config(
    tmp_path_factory: pytest.TempPathFactory, s3_server: S3Server, media_bucket: str
) -> StackConfig:
    """Fail every integration test, naming the missing service, unless PG and Redis answer.

    The stack's processes keep their metrics in one multiprocess directory, as in production,
    and their media in one bucket."""
    problem = _missing_services()
    if problem:
        pytest.fail(f"integration services missing:\n{problem}", pytrace=False)
    return StackConfig(
        database_url=DATABASE_URL,
        broker_url=BROKER_URL,
        overrides={
            "sync_max_probes": SYNC_MAX_PROBES,
            "connect_link_secret": CONNECT_LINK_SECRET,
            **s3_server.settings(media_bucket, retry_seconds=MEDIA_STORE_RETRY_SECONDS),
        },
        metrics_dir=str(tmp_path_factory.mktemp("metrics")),
    )


@pytest.fixture(scope="session")
def stack_lock(stack_config: StackConfig) -> Iterator[None]:
    """Wait until no other test session or benchmark is using the database and Redis DB."""
    with exclusive_stack(stack_config.database_url):
        yield


@pytest.fixture(scope="session")
def db(stack_config: StackConfig, stack_lock: None) -> Iterator[Database]:
    """The test database, schema dropped and migrated to head once per session."""
    reset_database(stack_config.database_url)
    database = Database(stack_config.database_url)
    yield database
    database.dispose()


@pytest.fixture(scope="session")
def sandbox_server(
    request: pytest.FixtureRequest, stack_config: StackConfig
) -> Iterator[SandboxServer]:
    """The Meta sandbox over real HTTP on 127.0.0.1, a free port."""
    with SandboxServer(stack_config.sandbox(seed=SANDBOX_SEED)) as server:
        request.config.stash[_SANDBOX] = server.sandbox
        yield server


@pytest.fixture(scope="session")
def broker(
    stack_config: StackConfig, stack_lock: None, sandbox_server: SandboxServer
) -> Iterator[BrokerClient]:
    """A Celery client on the test Redis DB, which starts empty."""
    with BrokerClient(stack_config.settings(sandbox_server.url)) as client:
        client.reset()
        yield client


@pytest.fixture(scope="session")
def log_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("stack-logs")


@pytest.fixture(scope="session")
def worker(
    request: pytest.FixtureRequest,
    stack_config: StackConfig,
    sandbox_server: SandboxServer,
    db: Database,
    broker: BrokerClient,
    log_dir: Path,
) -> Iterator[ManagedProcess]:
    """One real prefork Celery worker consuming ``signup`` and ``sync``."""
    process = _started(
        lambda: start_worker(stack_config, sandbox_server.url, log_dir, broker=broker)
    )
    request.config.stash.setdefault(_PROCESSES, []).append(process)
    with process:
        yield process


@pytest.fixture(scope="session")
def web(
    request: pytest.FixtureRequest,
    stack_config: StackConfig,
    sandbox_server: SandboxServer,
    db: Database,
    log_dir: Path,
) -> Iterator[WebServer]:
    """The web app (``uvicorn onboarding.web:app``) on a free port of 127.0.0.1."""
    server = _started(lambda: start_web(stack_config, sandbox_server.url, log_dir))
    request.config.stash.setdefault(_PROCESSES, []).append(server.process)
    with server:
        yield server


@pytest.fixture(scope="session")
def api(web: WebServer, stack_config: StackConfig) -> Iterator[CoexistApi]:
    """The web app's HTTP API with the signup and admin bearers."""
    with CoexistApi(web.url, stack_config) as client:
        yield client


@pytest.fixture
def sandbox(sandbox_server: SandboxServer) -> Sandbox:
    """The served sandbox, reset: no businesses, no calls counted, no faults."""
    sandbox_server.sandbox.reset()
    return sandbox_server.sandbox


@pytest.fixture(autouse=True)
def _clean_stack(
    db: Database,
    broker: BrokerClient,
    sandbox: Sandbox,
    worker: ManagedProcess,
    web: WebServer,
) -> None:
    """Every test starts with empty tables and an empty broker, the whole stack running."""
    truncate_app_tables(db)
    broker.reset()
    for process in (worker, web.process):
        if not process.running:
            pytest.fail(
                f"{process.name} exited with status {process.returncode}:\n{process.log_tail()}",
                pytrace=False,
            )


@pytest.fixture(scope="session")
def ingest_worker(
    request: pytest.FixtureRequest,
    stack_config: StackConfig,
    sandbox_server: SandboxServer,
    db: Database,
    broker: BrokerClient,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[ManagedProcess]:
    """A second prefork Celery worker consuming ``ingest``: webhooks, media, beat's ingest jobs."""
    config = dataclasses.replace(
        stack_config,
        overrides={
            **stack_config.overrides,
            "history_stall_minutes": INGEST_HISTORY_STALL_MINUTES,
        },
    )
    logs = tmp_path_factory.mktemp("ingest-worker-logs")
    process = _started(
        lambda: start_worker(
            config, sandbox_server.url, logs, broker=broker, queues=("ingest",), concurrency=2
        )
    )
    request.config.stash.setdefault(_PROCESSES, []).append(process)
    with process:
        yield process
