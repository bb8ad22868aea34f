"""Throughput guard: two worker processes sending to one number stay under Meta's limit.

Serves the Meta sandbox over HTTP (in this process) with its per-number throughput rule
(at most ``--rate`` sends accepted in any sliding second, else ``130429``), seeds one
coexistence number, then runs two phases with two worker processes each sending
``--messages`` text messages to that number through :func:`onboarding.outbound.send.send_message`
(the Graph call the send task makes):

* **guarded**: each send first takes a token from the number's Redis bucket
  (:class:`onboarding.outbound.throttle.TokenBucket`, shared by both processes); a send refused with
  ``130429`` anyway takes another token and tries again, so every message is delivered;
* **baseline** (same run, a second number): the same two processes without the guard, each
  sending as fast as it can, once per message: what the sandbox accepts and refuses.

Prints one JSON object: per-second windows of the sandbox's accepted sends (and the busiest
sliding second), ``130429`` counts (0 when the guard works), and total time against the ideal
``2 * messages / rate``. Needs Redis only; its keys get a fresh prefix and are deleted after.

    python -m benchmarks.throughput_guard --messages 1000 --rate 20
    python -m benchmarks.throughput_guard --messages 200 --burst 20 --headroom 0   # burst = rate
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Final

import redis

from benchmarks._harness import DEFAULT_BROKER_URL, ServiceUnavailableError, check_redis, redact
from config.logging import configure_logging
from onboarding.meta.errors import GraphError, RateLimitedError
from onboarding.meta.graph import GraphClient
from onboarding.outbound.payload import validate_payload
from onboarding.outbound.send import THROUGHPUT_LIMIT, send_message
from onboarding.outbound.throttle import Shape, TokenBucket
from onboarding.sandbox import Faults, Sandbox, SandboxServer

APP_ID: Final = "1234567890123456"
APP_SECRET: Final = "throughput-guard-benchmark-secret"
RECIPIENT: Final = "16505551234"
WORKERS: Final = 2
DEFAULT_REDIS_URL: Final = DEFAULT_BROKER_URL.rsplit("/", 1)[0] + "/14"


def log(message: str) -> None:
    print(f"[throughput_guard] {message}", file=sys.stderr, flush=True)


@dataclass
class WorkerReport:
    """What one worker process did."""

    worker: int
    accepted: int = 0
    rejected_130429: int = 0
    other_errors: dict[str, int] = field(default_factory=dict)
    attempts: list[float] = field(default_factory=list)
    finished_at: float = 0.0


@dataclass(frozen=True)
class Job:
    """Everything a worker process needs (picklable)."""

    worker: int
    graph_url: str
    token: str
    phone_number_id: str
    messages: int
    guarded: bool
    redis_url: str
    prefix: str
    rate: float
    burst: float | None
    headroom: float
    deadline: float


def work(job: Job, start: Any, results: Any) -> None:
    """One worker process: send ``job.messages`` messages, guarded or not; report."""
    configure_logging("development", "WARNING")  # 130429s are counted, not logged
    report = WorkerReport(job.worker)
    connection = redis.Redis.from_url(job.redis_url) if job.guarded else None
    bucket = (
        TokenBucket(
            connection,
            default_rate=job.rate,
            shape=Shape(burst=job.burst, headroom=job.headroom),
            prefix=job.prefix,
        )
        if connection is not None
        else None
    )
    graph = GraphClient(
        app_id=APP_ID, app_secret=APP_SECRET, base_url=job.graph_url, max_attempts=1
    )
    try:
        start.wait()
        for index in range(job.messages):
            payload = {"to": RECIPIENT, "type": "text", "text": {"body": f"{job.worker}-{index}"}}
            body = validate_payload(payload).graph_body()
            while time.time() < job.deadline:
                if bucket is not None and not bucket.acquire(job.phone_number_id, timeout=5.0):
                    continue
                report.attempts.append(time.time())
                try:
                    send_message(graph, job.phone_number_id, job.token, body)
                except RateLimitedError as exc:
                    if exc.code != THROUGHPUT_LIMIT:
                        raise
                    report.rejected_130429 += 1
                    if bucket is None:
                        break  # the baseline sends each message once
                    continue
                except GraphError as exc:
                    name = f"{type(exc).__name__}:{exc.code}"
                    report.other_errors[name] = report.other_errors.get(name, 0) + 1
                    break
                report.accepted += 1
                break
    finally:
        report.finished_at = time.time()
        graph.close()
        if connection is not None:
            connection.close()
        results.put(asdict(report))


def run_phase(
    args: argparse.Namespace,
    graph_url: str,
    token: str,
    phone_number_id: str,
    *,
    guarded: bool,
    prefix: str,
) -> tuple[float, list[WorkerReport]]:
    """Start the two workers together; return the start time and their reports."""
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(WORKERS + 1)
    results = context.Queue()
    budget = args.timeout if args.timeout else 3 * WORKERS * args.messages / args.rate + 60
    deadline = time.time() + budget + 30  # spawning takes a few seconds
    processes = [
        context.Process(
            target=work,
            args=(
                Job(
                    worker=n,
                    graph_url=graph_url,
                    token=token,
                    phone_number_id=phone_number_id,
                    messages=args.messages,
                    guarded=guarded,
                    redis_url=args.redis_url,
                    prefix=prefix,
                    rate=args.rate,
                    burst=args.burst,
                    headroom=args.headroom,
                    deadline=deadline,
                ),
                start,
                results,
            ),
            name=f"throughput-guard-worker-{n}",
        )
        for n in range(WORKERS)
    ]
    for process in processes:
        process.start()
    try:
        start.wait(timeout=60)
        started = time.time()
        reports = [WorkerReport(**results.get(timeout=budget + 60)) for _ in processes]
    finally:
        for process in processes:
            process.join(timeout=10)
            if process.is_alive():
                process.terminate()
                process.join(timeout=5)
    return started, reports


def windows(times: Sequence[float], origin: float) -> list[int]:
    """Counts per whole second from ``origin``."""
    if not times:
        return []
    counts = [0] * (int(max(times) - origin) + 1)
    for t in times:
        counts[int(t - origin)] += 1
    return counts


def sliding_max(times: Sequence[float], width: float = 1.0) -> int:
    """The most events in any half-open window of ``width`` seconds."""
    ordered = sorted(times)
    best, first = 0, 0
    for last, t in enumerate(ordered):
        while ordered[first] <= t - width:
            first += 1
        best = max(best, last - first + 1)
    return best


def summarize(
    sandbox: Sandbox,
    phone_number_id: str,
    started: float,
    reports: list[WorkerReport],
    rate: float,
    messages: int,
) -> dict[str, Any]:
    """The phase's figures, from the sandbox's accepted sends and the workers' reports."""
    accepted = [sent.accepted_at for sent in sandbox.sent_messages(phone_number_id)]
    attempts = [t for report in reports for t in report.attempts]
    ended = max([*accepted, *(r.finished_at for r in reports)], default=started)
    elapsed = ended - started
    per_second = windows(accepted, started)
    ideal = WORKERS * messages / rate
    errors: dict[str, int] = {}
    for report in reports:
        for name, count in report.other_errors.items():
            errors[name] = errors.get(name, 0) + count
    return {
        "attempted": len(attempts),
        "accepted": len(accepted),
        "rejected_130429": sum(r.rejected_130429 for r in reports),
        "sandbox_throughput_rejections": sandbox.throughput_rejections(phone_number_id),
        "other_errors": errors,
        "total_s": round(elapsed, 3),
        "ideal_s": round(ideal, 3),
        "total_over_ideal": round(elapsed / ideal, 3),
        "attempted_per_s": round(len(attempts) / elapsed, 2) if elapsed else None,
        "accepted_per_s": round(len(accepted) / elapsed, 2) if elapsed else None,
        "max_accepted_per_second_window": max(per_second, default=0),
        "max_accepted_in_sliding_second": sliding_max(accepted),
        "max_attempted_in_sliding_second": sliding_max(attempts),
        "exceeded_limit": max(per_second, default=0) > rate,
        "accepted_per_second_window": per_second,
        "per_worker": [
            {"worker": r.worker, "accepted": r.accepted, "rejected_130429": r.rejected_130429}
            for r in reports
        ],
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    check_redis(args.redis_url, hint="(pass --redis-url)")
    faults = None
    if args.jitter_ms > 0:  # each send reaches the sandbox 0 to jitter_ms later, at random
        faults = Faults.only("messages", latency_jitter_ms=args.jitter_ms, seed=21)
    sandbox = Sandbox(APP_ID, APP_SECRET, seed=21, message_throughput=args.rate, faults=faults)
    business = sandbox.add_business("Throughput Bench", 2)
    guarded_number, baseline_number = business.phone_number_ids
    for number in business.phone_number_ids:
        sandbox.complete_signup(business.waba_id, number)
    token = sandbox.issue_token(business.id)
    prefix = f"coexist:bench:{uuid.uuid4().hex[:12]}"
    client = redis.Redis.from_url(args.redis_url)
    result: dict[str, Any] = {
        "config": {
            "workers": WORKERS,
            "messages_per_worker": args.messages,
            "rate": args.rate,
            "burst": args.burst,
            "headroom": args.headroom,
            "jitter_ms": args.jitter_ms,
            "sandbox_limit": "at most rate sends accepted per sliding second per number",
            "redis": redact(args.redis_url),
        }
    }
    try:
        with SandboxServer(sandbox) as server:
            ideal = WORKERS * args.messages / args.rate
            log(f"guarded: {WORKERS} x {args.messages} messages at {args.rate:g}/s (~{ideal:g} s)")
            started, reports = run_phase(
                args, server.url, token, guarded_number, guarded=True, prefix=prefix
            )
            result["guarded"] = summarize(
                sandbox, guarded_number, started, reports, args.rate, args.messages
            )
            if not args.skip_baseline:
                log("baseline: the same processes without the guard")
                started, reports = run_phase(
                    args, server.url, token, baseline_number, guarded=False, prefix=prefix
                )
                result["baseline_unguarded"] = summarize(
                    sandbox, baseline_number, started, reports, args.rate, args.messages
                )
    finally:
        keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
        if keys:
            client.delete(*keys)
        client.close()
    return result


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.throughput_guard",
        description="Two processes sending to one number through the Redis token bucket, "
        "against the sandbox's 130429 throughput rule; and the same without the guard.",
    )
    parser.add_argument("--messages", type=int, default=1000, help="messages per worker")
    parser.add_argument("--rate", type=float, default=20.0, help="the number's limit, per s")
    parser.add_argument(
        "--burst", type=float, default=1.0, help="bucket capacity in tokens (default 1)"
    )
    parser.add_argument(
        "--headroom", type=float, default=0.05, help="share of the rate left unused (0.05)"
    )
    parser.add_argument(
        "--jitter-ms",
        type=float,
        default=0.0,
        help="delay each send by 0 to N ms before the sandbox counts it (network jitter)",
    )
    parser.add_argument("--redis-url", default=DEFAULT_REDIS_URL, help="Redis for the bucket")
    parser.add_argument(
        "--timeout", type=float, default=0, help="seconds per phase (default 3 x ideal + 60)"
    )
    parser.add_argument("--skip-baseline", action="store_true", help="only the guarded phase")
    args = parser.parse_args(argv)
    if args.messages < 1 or args.rate <= 0 or args.jitter_ms < 0:
        parser.error("--messages must be >= 1, --rate > 0 and --jitter-ms >= 0")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        result = run(args)
    except KeyboardInterrupt:
        log("interrupted; the worker processes were stopped")
        return 130
    except ServiceUnavailableError as exc:
        log(f"Redis missing:\n{exc}")
        return 2
    json.dump(result, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
