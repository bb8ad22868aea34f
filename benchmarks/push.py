"""Push delivery throughput: a feed holding a history of N messages pushed to a receiver that
verifies every signature.

The feed is filled directly (``--messages``, default 1,000,000): ``messages.stored`` events of
500 to 1000 messages each, shaped as ingestion writes them (``source``, ``count`` and one entry
per message: id, wamid, thread, direction, type, timestamp), in transactions of 50 events.
Then :func:`onboarding.feed.push.deliver` — what the ``feed`` queue's task runs — pushes it all
from PostgreSQL to a receiver in another process on 127.0.0.1 that verifies each request with
``standardwebhooks.Webhook.verify`` (which also parses the JSON) and counts the messages.
``messages_per_s`` is the messages acknowledged per second, first request to last answer,
reading, serializing, signing and the cursor's commits included.

Baseline, same run, same receiver process: the same request bodies (built before the clock
starts), POSTed unsigned by a plain ``httpx`` client to the receiver's ``/bare`` path, which
parses the JSON and counts, without verifying: the bare HTTP round trips and the parse.
``vs_bare`` is push's rate over the baseline's.

Prints one JSON object. Needs PostgreSQL; resets the schema of a disposable database.
"""

from __future__ import annotations

import argparse
import base64
import json
import multiprocessing
import random
import secrets
import sys
import time
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
from sqlalchemy import insert

from benchmarks._harness import (
    check_postgres,
    ensure_database,
    exclusive_stack,
    free_port,
    reset_database,
)
from config.logging import configure_logging
from models import Database
from onboarding.feed import push
from onboarding.feed.events import EVENTS, EventType
from onboarding.feed.log import Cursor, backlog, read_text

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/coexist_push_bench"
EVENTS_PER_TRANSACTION = 50


# -- the receiver (its own process) --------------------------------------------------------


def serve_receiver(port: int, secret: str, ready: Any) -> None:
    """``/signed``: verify, parse, count. ``/bare``: parse, count. ``GET /stats``: the counts."""
    from standardwebhooks.webhooks import Webhook  # noqa: PLC0415 - in the child process

    verifier = Webhook(secret)
    counts = {"requests": 0, "messages": 0, "refused": 0, "bytes": 0}

    class Endpoint(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            if self.path == "/signed":
                try:
                    data = verifier.verify(body, {k.lower(): v for k, v in self.headers.items()})
                except Exception:
                    counts["refused"] += 1
                    self._answer(401)
                    return
            else:
                data = json.loads(body)
            counts["requests"] += 1
            counts["bytes"] += len(body)
            counts["messages"] += sum(e["data"]["count"] for e in data["events"])
            self._answer(200)

        def do_GET(self) -> None:
            reply = json.dumps(counts).encode()
            if self.path == "/stats/reset":
                for key in counts:
                    counts[key] = 0
            self._answer(200, reply)

        def _answer(self, status: int, reply: bytes = b"{}") -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Endpoint)
    ready.set()
    server.serve_forever(0.05)


# -- the feed ------------------------------------------------------------------------------


def message_entries(rng: random.Random, first_id: int, count: int, at: datetime) -> list[Any]:
    thread = f"1555{rng.randrange(10**7):07d}"
    entries = []
    for i in range(count):
        entries.append(
            {
                "id": first_id + i,
                "wamid": "wamid.HBgL" + secrets.token_hex(18).upper(),
                "thread": thread,
                "direction": "inbound" if rng.random() < 0.55 else "outbound",
                "type": "text",
                "timestamp": (at + timedelta(seconds=i * 37)).isoformat(),
            }
        )
    return entries


def fill(db: Database, messages: int, seed: int) -> tuple[int, int]:
    """``messages`` messages in messages.stored events; (events, messages) written."""
    rng = random.Random(seed)
    start = datetime(2026, 6, 1, tzinfo=UTC)
    written = events = 0
    rows: list[dict[str, Any]] = []

    def flush() -> None:
        with db.session() as session:
            session.execute(insert(EVENTS), rows)
        rows.clear()

    while written < messages:
        count = min(rng.randint(500, 1000), messages - written)
        rows.append(
            {
                "type": EventType.MESSAGES_STORED.value,
                "version": 1,
                "onboarding_id": 1,
                "waba_id": "102290129340398",
                "phone_number_id": "106540352242922",
                "occurred_at": start + timedelta(seconds=events),
                "body": {
                    "source": "history",
                    "count": count,
                    "messages": message_entries(rng, written + 1, count, start),
                },
            }
        )
        written += count
        events += 1
        if len(rows) == EVENTS_PER_TRANSACTION:
            flush()
    if rows:
        flush()
    return events, written


def bodies(db: Database, batch_size: int) -> list[str]:
    """The request bodies push sent, byte for byte."""
    out: list[str] = []
    cursor = Cursor()
    with db.sessionmaker() as session:
        while events := read_text(session, cursor, batch_size):
            out.append('{"events":[' + ",".join(text for _, text in events) + "]}")
            cursor = events[-1][0]
    return out


def readable(db: Database, events: int, timeout: float = 300) -> None:
    """Wait until every event is readable: a transaction running anywhere in the cluster
    holds back what the feed shows (onboarding.feed.log), and the clock must not count it."""
    deadline = time.monotonic() + timeout
    while True:
        with db.sessionmaker() as session:
            if backlog(session, Cursor()) >= events:
                return
        if time.monotonic() > deadline:
            raise RuntimeError("the feed's events did not become readable (a long transaction?)")
        time.sleep(0.2)


# -- measuring -----------------------------------------------------------------------------


def stats(client: httpx.Client, base: str, *, reset: bool = False) -> dict[str, int]:
    counts: dict[str, int] = client.get(f"{base}/stats{'/reset' if reset else ''}").json()
    return counts


def measure_push(db: Database, base: str, secret: str, batch_size: int) -> float:
    policy = push.Policy(batch_size=batch_size, budget=3600)
    with push.FeedWebhook(f"{base}/signed", secret, timeout=20) as webhook:
        began = time.perf_counter()
        while True:
            report = push.deliver(db, webhook, policy)
            if report.error:
                raise RuntimeError(f"push failed: {report.error}")
            if not report.more:
                break
        return time.perf_counter() - began


def measure_bare(base: str, payloads: list[str]) -> float:
    encoded = [p.encode() for p in payloads]
    with httpx.Client(timeout=20) as client:
        began = time.perf_counter()
        for body in encoded:
            client.post(
                f"{base}/bare", content=body, headers={"Content-Type": "application/json"}
            ).raise_for_status()
        return time.perf_counter() - began


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--batch-size", type=int, default=100, help="events per request")
    parser.add_argument("--database-url", default=DEFAULT_URL)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    if not 1 <= args.batch_size <= 1000:
        parser.error("--batch-size is 1 to 1000")
    configure_logging("production", "WARNING")
    secret = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
    port = free_port()
    ready = multiprocessing.get_context("spawn").Event()
    receiver = multiprocessing.get_context("spawn").Process(
        target=serve_receiver, args=(port, secret, ready), daemon=True
    )
    receiver.start()
    try:
        if not ready.wait(30):
            raise RuntimeError("the receiver did not start")
        ensure_database(args.database_url)
        check_postgres(args.database_url)
        with exclusive_stack(args.database_url):
            reset_database(args.database_url)
            db = Database(args.database_url)
            try:
                report = run(db, f"http://127.0.0.1:{port}", secret, args)
            finally:
                db.dispose()
    finally:
        receiver.terminate()
        receiver.join(10)
    json.dump(report, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


def run(db: Database, base: str, secret: str, args: argparse.Namespace) -> dict[str, Any]:
    began = time.perf_counter()
    events, messages = fill(db, args.messages, args.seed)
    fill_seconds = time.perf_counter() - began
    print(f"feed filled: {events} events, {messages} messages", file=sys.stderr)
    readable(db, events)
    with httpx.Client(timeout=10) as client:
        stats(client, base, reset=True)
        push_seconds = measure_push(db, base, secret, args.batch_size)
        pushed = stats(client, base, reset=True)
        payloads = bodies(db, args.batch_size)
        bare_seconds = measure_bare(base, payloads)
        bare = stats(client, base, reset=True)
    if pushed["messages"] != messages or pushed["refused"]:
        raise RuntimeError(f"the receiver counted {pushed}, expected {messages} messages")
    rate = messages / push_seconds
    bare_rate = bare["messages"] / bare_seconds
    return {
        "benchmark": "push",
        "events": events,
        "messages": messages,
        "batch_size": args.batch_size,
        "requests": pushed["requests"],
        "feed_mb": round(pushed["bytes"] / 2**20, 1),
        "fill_seconds": round(fill_seconds, 2),
        "seconds": round(push_seconds, 2),
        "messages_per_s": round(rate),
        "mb_per_s": round(pushed["bytes"] / 2**20 / push_seconds, 1),
        "baseline": {
            "what": "same bodies, unsigned, plain httpx POSTs to the same receiver (parse only)",
            "seconds": round(bare_seconds, 2),
            "messages_per_s": round(bare_rate),
        },
        "ratios": {"vs_bare": round(rate / bare_rate, 3)},
        "goals": {"messages_per_s>=50000": rate >= 50_000},
    }


if __name__ == "__main__":
    raise SystemExit(main())
