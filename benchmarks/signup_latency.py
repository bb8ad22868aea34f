"""Signup latency: from ``POST /signup`` to the business token, and to both syncs requested.

Runs the real stack (PostgreSQL, Redis, one ``urgent`` Celery worker, the web app, the Meta
sandbox with a fixed latency on every Graph endpoint), posts N finished signups from a few
threads as fast as they go, waits until every onboarding settles, reads each timeline from the
database and prints one JSON object on stdout (progress goes to stderr).

The baseline, measured in the same run against the same sandbox, is the Graph work itself: the
calls the flow makes, sent directly and sequentially from one thread with coexist's Graph
client. The gap between the two is what the web app, the broker, the worker and the database
add, including queueing when signups arrive in a burst. The code dies 30 s after signup, so
the goal is a p99 of 5 s to the token.

    python -m benchmarks.signup_latency --signups 200 --latency-ms 50 --concurrency 8
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import signal
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import FrameType
from typing import Any, Final

import httpx
from sqlalchemy import and_, func, or_, select

from benchmarks._harness import (
    DEFAULT_BROKER_URL,
    DEFAULT_DATABASE_URL,
    BrokerClient,
    CoexistApi,
    ManagedProcess,
    ServiceUnavailableError,
    StackConfig,
    StackStartError,
    check_services,
    exclusive_stack,
    poll_until,
    redact,
    reset_database,
    start_web,
    start_worker,
)
from models import (
    Database,
    Onboarding,
    OnboardingState,
    SyncRequest,
    SyncState,
    SyncType,
    Transition,
)
from onboarding.meta.graph import GraphClient
from onboarding.sandbox import Business, FaultRule, Faults, Sandbox, SandboxServer
from onboarding.signup.handoff import NUMBER_FIELDS

GOAL_TOKEN_P99_S: Final = 5.0
SANDBOX_SEED: Final = 20
IN_FLIGHT: Final = (
    OnboardingState.RECEIVED.value,
    OnboardingState.TOKEN_EXCHANGED.value,
    OnboardingState.SUBSCRIBED.value,
)


def log(message: str) -> None:
    print(f"[signup_latency] {message}", file=sys.stderr, flush=True)


# -- statistics ----------------------------------------------------------------------------


def quantile(ordered: Sequence[float], q: float) -> float:
    """The ``q`` quantile of sorted values, linearly interpolated (numpy's default)."""
    position = (len(ordered) - 1) * q
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def summary(
    values: Sequence[float], quantiles: Sequence[float] = (0.5, 0.9, 0.99)
) -> dict[str, Any]:
    """``n``, the given percentiles and the maximum, in seconds rounded to 0.1 ms."""
    ordered = sorted(values)
    result: dict[str, Any] = {"n": len(ordered)}
    for q in quantiles:
        result[f"p{round(q * 100)}"] = round(quantile(ordered, q), 4) if ordered else None
    result["max"] = round(ordered[-1], 4) if ordered else None
    return result


# -- the baseline: the same Graph calls, direct ---------------------------------------------


def measure_baseline(sandbox: Sandbox, graph: GraphClient, samples: int) -> dict[str, Any]:
    """Time the flow's Graph calls sent directly, one signup after another, on this thread."""
    exchange: list[float] = []
    sequence: list[float] = []
    for i in range(samples):
        business = sandbox.add_business(f"Baseline {i}")
        signup = sandbox.complete_signup(business.waba_id)
        started = time.perf_counter()
        token = graph.exchange_code(signup.code)
        exchanged = time.perf_counter()
        numbers = list(graph.list_phone_numbers(business.waba_id, token, fields=NUMBER_FIELDS))
        number_id = str(numbers[0]["id"])
        graph.get_phone_number(number_id, token, fields=NUMBER_FIELDS)
        graph.subscribe_app(business.waba_id, token)
        for sync_type in SyncType:
            graph.request_sync(number_id, token, sync_type.value)
        finished = time.perf_counter()
        exchange.append(exchanged - started)
        sequence.append(finished - started)
    return {
        "samples": samples,
        "direct_exchange_s": summary(exchange, (0.5, 0.99)),
        "direct_sequence_s": summary(sequence, (0.5, 0.99)),
        "direct_sequence_calls": ["exchange", "list numbers", "get number", "subscribe"]
        + [f"smb_app_data {t.value}" for t in SyncType],
    }


# -- the flow ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Posted:
    """One ``POST /signup`` as the browser's backend saw it."""

    status: int | None
    onboarding_id: int | None
    seconds: float
    error: str | None = None


def post_signups(
    api: CoexistApi, sandbox: Sandbox, businesses: Sequence[Business], concurrency: int
) -> list[Posted]:
    """Finish each business's signup and post it at once, from ``concurrency`` threads."""

    def post(business: Business) -> Posted:
        # The code starts dying when signup finishes in the browser, just before this POST.
        signup = sandbox.complete_signup(business.waba_id)
        started = time.perf_counter()
        try:
            response = api.post_signup(signup.session, signup.code)
        except httpx.HTTPError as exc:
            return Posted(None, None, time.perf_counter() - started, repr(exc))
        seconds = time.perf_counter() - started
        onboarding_id = response.json().get("onboarding_id") if response.is_success else None
        return Posted(response.status_code, onboarding_id, seconds)

    executor = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="post")
    try:
        return list(executor.map(post, businesses))
    finally:
        executor.shutdown(wait=True, cancel_futures=True)


def in_flight(db: Database) -> int:
    """Onboardings still on their way to both syncs requested."""
    unsettled_sync = (
        select(SyncRequest.id)
        .where(
            SyncRequest.onboarding_id == Onboarding.id,
            SyncRequest.state != SyncState.REQUESTED.value,
        )
        .exists()
    )
    with db.sessionmaker() as session:
        query = select(func.count(Onboarding.id)).where(
            or_(
                Onboarding.state.in_(IN_FLIGHT),
                and_(Onboarding.state == OnboardingState.SYNCING.value, unsettled_sync),
            )
        )
        return session.scalar(query) or 0


@dataclass(frozen=True)
class Timeline:
    onboarding_id: int
    state: str
    received_at: datetime | None
    token_exchanged_at: datetime | None
    syncs_requested_at: datetime | None


def read_timelines(db: Database) -> list[Timeline]:
    """Each onboarding's received and token_exchanged times, and when its last sync went."""

    def reached(state: OnboardingState) -> Any:
        return (
            select(func.min(Transition.at))
            .where(Transition.onboarding_id == Onboarding.id, Transition.to_state == state.value)
            .scalar_subquery()
        )

    both_requested = (
        select(func.max(SyncRequest.requested_at))
        .where(SyncRequest.onboarding_id == Onboarding.id)
        .having(func.count(SyncRequest.requested_at) == len(SyncType))
        .scalar_subquery()
    )
    query = select(
        Onboarding.id,
        Onboarding.state,
        reached(OnboardingState.RECEIVED),
        reached(OnboardingState.TOKEN_EXCHANGED),
        both_requested,
    ).order_by(Onboarding.id)
    with db.sessionmaker() as session:
        return [Timeline(*row) for row in session.execute(query)]


def seconds_between(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return (end - start).total_seconds()


def report(
    args: argparse.Namespace,
    config: StackConfig,
    posted: Sequence[Posted],
    timelines: Sequence[Timeline],
    baseline: dict[str, Any],
    timings: dict[str, float],
    settled: bool,
) -> dict[str, Any]:
    to_token = [
        s
        for t in timelines
        if (s := seconds_between(t.received_at, t.token_exchanged_at)) is not None
    ]
    to_syncs = [
        s
        for t in timelines
        if (s := seconds_between(t.received_at, t.syncs_requested_at)) is not None
    ]
    states: dict[str, int] = {}
    for t in timelines:
        states[t.state] = states.get(t.state, 0) + 1
    completed = sum(
        1 for t in timelines if t.state == OnboardingState.SYNCING and t.syncs_requested_at
    )
    token = summary(to_token)
    direct_exchange_p99 = baseline["direct_exchange_s"]["p99"]
    ratio = (
        round(token["p99"] / direct_exchange_p99, 1)
        if token["p99"] is not None and direct_exchange_p99
        else None
    )
    accepted = sum(1 for p in posted if p.status == 202 and p.onboarding_id is not None)
    settings = config.settings("http://127.0.0.1")
    return {
        "benchmark": "signup_latency",
        "settings": {
            "signups": args.signups,
            "latency_ms": args.latency_ms,
            "concurrency": args.concurrency,
            "workers": args.workers,
            "during_ingest_messages": args.during_ingest,
            "worker_queues": "signup,sync",
            "timeout_s": args.timeout,
            "baseline_samples": args.baseline_samples,
            "database_url": redact(args.database_url),
            "broker_url": redact(args.broker_url),
            "code_ttl_seconds": settings.code_ttl_seconds,
            "graph_max_attempts": settings.graph_max_attempts,
            "cpus": os.cpu_count(),
        },
        "counts": {
            "posted": len(posted),
            "accepted": accepted,
            "post_errors": len(posted) - accepted,
            "completed": completed,
            "code_expired": states.get(OnboardingState.CODE_EXPIRED.value, 0),
            "failed": states.get(OnboardingState.FAILED.value, 0),
            "unsettled_at_timeout": 0 if settled else len(timelines) - completed,
            "states": states,
        },
        "signup_to_token_exchanged_s": token,
        "signup_to_syncs_requested_s": summary(to_syncs),
        "post_latency_s": summary([p.seconds for p in posted]),
        "timings_s": {k: round(v, 3) for k, v in timings.items()},
        "baseline": {
            **baseline,
            "token_exchanged_p99_over_direct_exchange_p99": ratio,
        },
        "goal": {
            "token_exchanged_p99_s": GOAL_TOKEN_P99_S,
            "met": bool(
                token["p99"] is not None
                and token["p99"] <= GOAL_TOKEN_P99_S
                and len(to_token) == len(posted)
            ),
        },
    }


# -- running it ----------------------------------------------------------------------------


def run(args: argparse.Namespace, stack: contextlib.ExitStack) -> dict[str, Any]:
    """Start the stack (registering its teardown on ``stack``), measure, and report."""
    check_services(
        args.database_url,
        args.broker_url,
        database_hint="(see --database-url)",
        broker_hint="(see --broker-url)",
    )
    log_dir = Path(args.log_dir or tempfile.mkdtemp(prefix="coexist-signup-latency-"))
    log(f"logs in {log_dir}")
    config = StackConfig(database_url=args.database_url, broker_url=args.broker_url)
    stack.enter_context(exclusive_stack(config.database_url))
    reset_database(config.database_url)
    db = Database(config.database_url)
    stack.callback(db.dispose)

    latency = Faults(rules={"*": FaultRule(latency_ms=args.latency_ms)})
    server = stack.enter_context(SandboxServer(config.sandbox(seed=SANDBOX_SEED, faults=latency)))
    sandbox = server.sandbox
    settings = config.settings(server.url)
    broker = stack.enter_context(BrokerClient(settings))
    broker.reset()
    started = time.monotonic()
    stack.enter_context(
        start_worker(config, server.url, log_dir, broker=broker, concurrency=args.workers)
    )
    web = stack.enter_context(start_web(config, server.url, log_dir))
    api = stack.enter_context(CoexistApi(web.url, config, connections=args.concurrency * 2))
    timings = {"stack_start": time.monotonic() - started}

    log(f"baseline: {args.baseline_samples} direct Graph sequences")
    graph = stack.enter_context(GraphClient.from_settings(settings))
    started = time.monotonic()
    baseline = measure_baseline(sandbox, graph, args.baseline_samples)
    timings["baseline"] = time.monotonic() - started
    sandbox.reset()  # forget the baseline's businesses and calls; the latency stays

    businesses = [sandbox.add_business(f"Bench {i}") for i in range(args.signups)]
    if args.during_ingest:
        # History ingestion on its own database and workers, as a provider's busy `worker`
        # processes would be: signups must not slow down while it runs.
        ingest = ManagedProcess(
            "ingest load",
            [
                sys.executable,
                "-m",
                "benchmarks.ingest",
                "--load-only",
                "--messages",
                str(args.during_ingest),
            ],
            env=config.environment(server.url),
            log_path=log_dir / "ingest.log",
        ).start()
        stack.callback(ingest.stop)
        log(f"waiting for {args.during_ingest} history messages to start ingesting")
        ingest.wait_until(
            lambda: "ingest: processing" in ingest.log_tail(),
            what="the ingest load to start processing",
            timeout=900,
        )
    log(f"posting {args.signups} signups from {args.concurrency} threads")
    started = time.monotonic()
    posted = post_signups(api, sandbox, businesses, args.concurrency)
    timings["posting"] = time.monotonic() - started
    try:
        poll_until(
            lambda: in_flight(db),
            lambda n: n == 0,
            what="every onboarding settled",
            timeout=args.timeout,
            interval=0.25,
        )
        settled = True
    except TimeoutError as exc:
        log(str(exc))
        settled = False
    timings["post_to_settled"] = time.monotonic() - started
    return report(args, config, posted, read_timelines(db), baseline, timings, settled)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.signup_latency",
        description=__doc__.split("\n\n", 1)[0] if __doc__ else None,
    )
    parser.add_argument("--signups", type=int, default=200, help="signups to post (200)")
    parser.add_argument(
        "--latency-ms", type=float, default=50.0, help="sandbox latency per Graph call (50)"
    )
    parser.add_argument("--concurrency", type=int, default=8, help="threads posting signups (8)")
    parser.add_argument("--workers", type=int, default=2, help="Celery worker concurrency (2)")
    parser.add_argument(
        "--baseline-samples", type=int, default=50, help="direct Graph sequences timed (50)"
    )
    parser.add_argument(
        "--timeout", type=float, default=300.0, help="seconds to wait for all to settle (300)"
    )
    parser.add_argument("--database-url", default=DEFAULT_DATABASE_URL)
    parser.add_argument("--broker-url", default=DEFAULT_BROKER_URL)
    parser.add_argument("--log-dir", help="where the worker and web logs go (a new temp dir)")
    parser.add_argument(
        "--during-ingest",
        type=int,
        default=0,
        metavar="N",
        help="post the signups while benchmarks.ingest processes N history messages (0: no)",
    )
    args = parser.parse_args(argv)
    for name in ("signups", "concurrency", "workers", "baseline_samples"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.latency_ms < 0 or args.timeout <= 0:
        parser.error("--latency-ms must be >= 0 and --timeout > 0")
    return args


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


@contextlib.contextmanager
def _shielded_teardown() -> Iterator[contextlib.ExitStack]:
    """An ExitStack whose unwinding Ctrl-C and SIGTERM cannot cut short."""
    stack = contextlib.ExitStack()
    try:
        yield stack
    finally:
        previous: dict[signal.Signals, Any] = {
            sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)
        }
        try:
            stack.close()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    for sig in (signal.SIGINT, signal.SIGTERM):  # also when started with SIGINT ignored
        signal.signal(sig, _interrupt)
    try:
        with _shielded_teardown() as stack:
            result = run(args, stack)
    except KeyboardInterrupt:
        log("interrupted; every process was stopped")
        return 130
    except ServiceUnavailableError as exc:
        log(f"services missing:\n{exc}")
        return 2
    except (StackStartError, TimeoutError) as exc:
        log(str(exc))
        return 1
    json.dump(result, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
