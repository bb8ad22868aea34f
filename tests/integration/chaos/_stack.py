"""A second coexist stack of a chaos test's own: its own Redis, workers and web app.

It shares the session's PostgreSQL database, sandbox and secrets (so the session's API and
oracle still read what it writes) but not the session's Redis: the test may kill this one.
Every process logs under ``log_dir``; when the stack is torn down, each log's tail is printed,
which pytest shows with a failed test's captured output.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from benchmarks._harness import (
    BrokerClient,
    CoexistApi,
    ManagedProcess,
    StackConfig,
    WebServer,
    start_beat,
    start_web,
    start_worker,
)
from tests.integration.chaos._redis import RedisServer

#: The Redis DB the private stack uses (BrokerClient refuses to flush DB 0).
BROKER_DB = 1


@dataclass(frozen=True)
class PrivateStack:
    """The processes of one private stack and the clients that talk to them."""

    redis: RedisServer
    config: StackConfig
    broker: BrokerClient
    web: WebServer
    api: CoexistApi
    workers: Mapping[str, ManagedProcess]

    def node(self, worker: str) -> str:
        """The Celery node name of ``worker`` (for remote-control pings)."""
        return self.workers[worker].name.removeprefix("celery worker ")


def print_log_tails(processes: Mapping[str, ManagedProcess], lines: int = 40) -> None:
    """Print the last lines of each process's log (pytest shows them if the test failed)."""
    for name, process in processes.items():
        print(f"--- {name}: {process.log_path} ---\n{process.log_tail(lines)}")


@contextlib.contextmanager
def private_stack(
    base: StackConfig,
    graph_url: str,
    log_dir: Path,
    *,
    overrides: Mapping[str, str],
    urgent: bool = True,
    ingest_concurrency: int = 1,
    beat: bool = False,
) -> Iterator[PrivateStack]:
    """A Redis server, an ``ingest`` worker, optionally an urgent worker and beat, the web app."""
    with contextlib.ExitStack() as stack:
        server = RedisServer(log_dir)
        config = dataclasses.replace(
            base, broker_url=server.url(BROKER_DB), overrides={**base.overrides, **overrides}
        )
        processes: dict[str, ManagedProcess] = {}
        stack.callback(print_log_tails, processes)
        stack.enter_context(server)
        broker = stack.enter_context(BrokerClient(config.settings(graph_url)))
        broker.reset()
        if urgent:
            processes["urgent"] = stack.enter_context(
                start_worker(config, graph_url, log_dir / "urgent", broker=broker)
            )
        processes["ingest"] = stack.enter_context(
            start_worker(
                config,
                graph_url,
                log_dir / "ingest",
                broker=broker,
                queues=("ingest",),
                concurrency=ingest_concurrency,
            )
        )
        if beat:
            processes["beat"] = stack.enter_context(start_beat(config, graph_url, log_dir / "beat"))
        web = stack.enter_context(start_web(config, graph_url, log_dir / "web"))
        processes["web"] = web.process
        api = stack.enter_context(CoexistApi(web.url, config))
        yield PrivateStack(server, config, broker, web, api, processes)
