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

from benchmarks._harness.api import (
    CoexistApi,
    describe,
    syncs_requested,
)
from benchmarks._harness.processes import (
    ManagedProcess,
    WebServer,
    free_port,
    healthy,
    start_beat,
    start_web,
    start_worker,
)
from benchmarks._harness.services import (
    DEFAULT_BROKER_URL,
    DEFAULT_DATABASE_URL,
    DISPOSABLE_DATABASE_MARKERS,
    LOCK_TIMEOUT,
    ROOT,
    STACK_LOCK_KEY,
    STUCK_STATES,
    BrokerClient,
    ServiceUnavailableError,
    StackStartError,
    check_postgres,
    check_redis,
    check_services,
    ensure_database,
    exclusive_stack,
    poll_until,
    redact,
    reset_database,
    truncate_app_tables,
)
from benchmarks._harness.stack import (
    StackConfig,
)

__all__ = [
    "DEFAULT_BROKER_URL",
    "DEFAULT_DATABASE_URL",
    "DISPOSABLE_DATABASE_MARKERS",
    "LOCK_TIMEOUT",
    "ROOT",
    "STACK_LOCK_KEY",
    "STUCK_STATES",
    "BrokerClient",
    "CoexistApi",
    "ManagedProcess",
    "ServiceUnavailableError",
    "StackConfig",
    "StackStartError",
    "WebServer",
    "check_postgres",
    "check_redis",
    "check_services",
    "describe",
    "ensure_database",
    "exclusive_stack",
    "free_port",
    "healthy",
    "poll_until",
    "redact",
    "reset_database",
    "start_beat",
    "start_web",
    "start_worker",
    "syncs_requested",
    "truncate_app_tables",
]
