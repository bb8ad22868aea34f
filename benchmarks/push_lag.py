"""Push lag under a steady load: how long after Meta posts a message the provider's app has it.

The whole path runs as in production: signed ``messages`` deliveries (one user message each, for
an onboarded number) are posted to the real web app (``uvicorn onboarding.web:app``) at a steady
``--rate`` per second for ``--seconds``; a Celery worker on ``ingest`` stores them as ``live``
messages, a task's deliveries in one pass with one ``messages.stored`` event; a worker on
``feed`` pushes the feed, kicked every ``--push-every`` seconds as beat kicks it, to a receiver
on 127.0.0.1 that verifies every request's Standard Webhooks signature. For each message, the
lag is the time from the moment its delivery was posted to the moment the receiver took the
batch that lists it.

Reported: lag p50, p95, p99 and max, the rate actually posted, and every message accounted for.
The baseline, in the same run, is the intake's own answer time (post to ``200``) of the same
deliveries: the part of the lag that is the web app's. Prints one JSON object. Needs PostgreSQL
and Redis; resets its own database (``coexist_lag_bench``) and flushes its Redis DB.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import secrets
import statistics
import sys
import tempfile
import threading
import time
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from benchmarks._harness import (
    BrokerClient,
    StackConfig,
    check_services,
    ensure_database,
    exclusive_stack,
    free_port,
    reset_database,
    start_web,
    start_worker,
)
from benchmarks.ingest import NUMBER, PNID, WABA, make_onboarding
from benchmarks.intake import post_request, read_answer
from config.logging import configure_logging
from models import Database
from onboarding.meta.signatures import sign

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/coexist_lag_bench"
DEFAULT_BROKER = "redis://127.0.0.1:6379/13"


class Provider:
    """The provider's app: verifies each pushed batch and notes when each message arrived."""

    def __init__(self, secret: str) -> None:
        self.webhook = Webhook(secret)
        self.arrived: dict[str, float] = {}
        #: When each message's event was written (its ``occurred_at``).
        self.written: dict[str, float] = {}
        self.requests = 0
        self.refused = 0
        self._lock = threading.Lock()
        provider = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                now = time.time()
                status = provider.take(body, dict(self.headers.items()), now)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/feed"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def take(self, body: bytes, headers: dict[str, str], now: float) -> int:
        try:
            batch = self.webhook.verify(body, headers)
        except WebhookVerificationError:
            with self._lock:
                self.refused += 1
            return 401
        with self._lock:
            self.requests += 1
            for event in batch["events"]:
                if event["type"] != "messages.stored":
                    continue
                written = datetime.fromisoformat(event["occurred_at"]).timestamp()
                for message in event["data"]["messages"]:
                    self.arrived.setdefault(message["wamid"], now)
                    self.written.setdefault(message["wamid"], written)
        return 200

    def __enter__(self) -> Provider:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def delivery(n: int, app_secret: str, users: int = 500) -> tuple[str, bytes, str]:
    """(wamid, body, signature) of Meta's ``messages`` webhook with one text message from one
    of ``users`` customers (live traffic comes mostly from people the business knows)."""
    user = f"1650555{n % users:04d}"
    wamid = f"wamid.lag.{n}"
    value = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": NUMBER, "phone_number_id": PNID},
        "contacts": [{"profile": {"name": f"User {n % users}"}, "wa_id": user}],
        "messages": [
            {
                "from": user,
                "id": wamid,
                "timestamp": str(int(time.time())),
                "type": "text",
                "text": {"body": f"message {n}"},
            }
        ],
    }
    payload = {
        "object": "whatsapp_business_account",
        "entry": [{"id": WABA, "changes": [{"field": "messages", "value": value}]}],
    }
    body = json.dumps(payload, separators=(",", ":")).encode()
    return wamid, body, sign(body, app_secret)


async def paced(
    url: str, items: list[tuple[str, bytes, str]], rate: float, concurrency: int
) -> tuple[dict[str, float], list[float], int]:
    """Post item ``i`` at ``start + i / rate`` over keep-alive connections: (posted at, answer
    times, non-200s)."""
    target = httpx.URL(url)
    host, port = target.host, target.port or 80
    requests = [
        (wamid, post_request(host, port, body, signature)) for wamid, body, signature in items
    ]
    posted: dict[str, float] = {}
    answers: list[float] = []
    failures = 0
    next_index = 0
    loop = asyncio.get_running_loop()
    start = loop.time() + 0.5

    async def connection() -> None:
        nonlocal next_index, failures
        reader, writer = await asyncio.open_connection(host, port)
        try:
            while next_index < len(requests):
                index = next_index
                next_index += 1
                wamid, request = requests[index]
                await asyncio.sleep(max(0.0, start + index / rate - loop.time()))
                posted[wamid] = time.time()
                began = loop.time()
                writer.write(request)
                status_line = await read_answer(reader)
                answers.append(loop.time() - began)
                if b" 200 " not in status_line:
                    failures += 1
        finally:
            writer.close()
            await writer.wait_closed()

    await asyncio.gather(*(connection() for _ in range(concurrency)))
    return posted, answers, failures


def percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    if not ordered:
        return {}

    def at(share: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(share * len(ordered)))] * 1000, 1)

    return {
        "p50_ms": round(statistics.median(ordered) * 1000, 1),
        "p95_ms": at(0.95),
        "p99_ms": at(0.99),
        "max_ms": round(ordered[-1] * 1000, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=1000.0, help="deliveries per second")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--concurrency", type=int, default=32, help="connections posting")
    parser.add_argument("--ingest-concurrency", type=int, default=2)
    parser.add_argument("--push-every", type=float, default=0.25, help="seconds between kicks")
    parser.add_argument("--users", type=int, default=500, help="customers sending (<= 10000)")
    parser.add_argument("--database-url", default=DEFAULT_URL)
    parser.add_argument("--broker-url", default=DEFAULT_BROKER)
    args = parser.parse_args(argv)
    configure_logging("production", "WARNING")
    ensure_database(args.database_url)
    check_services(args.database_url, args.broker_url)
    secret = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
    count = int(args.rate * args.seconds)
    with exclusive_stack(args.database_url), Provider(secret) as provider:
        reset_database(args.database_url)
        config = StackConfig(
            database_url=args.database_url,
            broker_url=args.broker_url,
            overrides={
                "feed_webhook_url": provider.url,
                "feed_webhook_secret": secret,
                "feed_webhook_batch_size": "100",
            },
        )
        graph_url = "http://127.0.0.1:9"  # nothing here calls the Graph API
        db = Database(args.database_url)
        make_onboarding(db, config.settings(graph_url))
        items = [
            delivery(n, config.app_secret, max(1, min(args.users, 10_000))) for n in range(count)
        ]
        with tempfile.TemporaryDirectory(prefix="coexist-lag-bench-") as tmp:
            logs = Path(tmp)
            with BrokerClient(config.settings(graph_url)) as broker:
                broker.reset()
                with (
                    start_worker(
                        config,
                        graph_url,
                        logs / "ingest",
                        broker=broker,
                        queues=("ingest",),
                        concurrency=args.ingest_concurrency,
                    ),
                    start_worker(config, graph_url, logs / "feed", broker=broker, queues=("feed",)),
                    start_web(config, graph_url, logs / "web") as web,
                ):
                    stop = threading.Event()

                    def kick() -> None:  # beat's job, every --push-every seconds
                        while not stop.is_set():
                            broker.send("coexist.feed.push")
                            stop.wait(args.push_every)

                    kicker = threading.Thread(target=kick, daemon=True)
                    kicker.start()
                    print(f"push_lag: posting {count} deliveries", file=sys.stderr, flush=True)
                    began = time.time()
                    posted, answers, failures = asyncio.run(
                        paced(web.url, items, args.rate, args.concurrency)
                    )
                    posting_seconds = time.time() - began - 0.5
                    deadline = time.monotonic() + 120
                    while len(provider.arrived) < len(posted) and time.monotonic() < deadline:
                        time.sleep(0.2)
                    stop.set()
                    kicker.join(5)
        db.dispose()
    lags = [provider.arrived[w] - at for w, at in posted.items() if w in provider.arrived]
    stored = [provider.written[w] - at for w, at in posted.items() if w in provider.written]
    pushed = [provider.arrived[w] - provider.written[w] for w in provider.arrived]
    result = {
        "benchmark": "push_lag",
        "rate_asked": args.rate,
        "rate_posted": round(len(posted) / max(posting_seconds, 1e-9), 1),
        "deliveries": len(posted),
        "answered_not_200": failures,
        "messages_pushed": len(lags),
        "missing": len(posted) - len(lags),
        "pushed_requests": provider.requests,
        "refused_signatures": provider.refused,
        "lag": percentiles(lags),
        "lag_parts": {
            "posted_to_event_written": percentiles(stored),
            "event_written_to_received": percentiles(pushed),
        },
        "baseline": {
            "what": "the web app's answer time of the same deliveries (post to 200)",
            **percentiles(answers),
        },
        "push_every_s": args.push_every,
    }
    print(json.dumps(result, indent=2))
    return 0 if result["missing"] == 0 and not failures else 1


if __name__ == "__main__":
    sys.exit(main())
