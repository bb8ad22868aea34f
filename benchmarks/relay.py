"""Relay throughput: stored deliveries forwarded per second to a provider's receiver, against
the intake rate of the same deliveries, measured in the same run.

The intake side is :mod:`benchmarks.intake`'s: signed ~4 KB deliveries posted to the real
receiver (``uvicorn onboarding.web:app``) over keep-alive connections. The relay side is
:func:`onboarding.relay.run.run`, what the ``coexist.relay.forward`` task runs, forwarding every
stored delivery in order to a receiver on 127.0.0.1 that reads each body and answers 200
(HTTP/1.1 keep-alive). The relay sends one delivery at a time, in order, so its rate is bounded
by one round trip per delivery; the intake takes many at once. ``relay_over_intake`` says
whether the relay keeps up with what comes in.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from sqlalchemy import text

from benchmarks._harness import (
    BrokerClient,
    StackConfig,
    check_services,
    exclusive_stack,
    reset_database,
    start_web,
)
from benchmarks.intake import BODY_BYTES, blast, deliveries
from config import Settings
from config.logging import configure_logging
from models import Database
from onboarding.meta.signatures import signature_valid
from onboarding.relay import log as inbox_log
from onboarding.relay.log import Position
from onboarding.relay.receiver import Receiver
from onboarding.relay.run import run


class Sink:
    """A provider's receiver on 127.0.0.1: reads each body, answers 200, counts."""

    def __init__(self, secret: str, check_every: int) -> None:
        self.count = 0
        self.bad_signatures = 0
        self._lock = threading.Lock()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with sink._lock:
                    sink.count += 1
                    n = sink.count
                if n % check_every == 0 and not signature_valid(
                    body, self.headers.get("X-Hub-Signature-256"), secret
                ):
                    sink.bad_signatures += 1
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/webhooks"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def wait_visible(db: Database, count: int, timeout: float = 300.0) -> float:
    """Seconds until ``count`` inbox rows are readable by the relay.

    The relay reads only rows older than every running transaction in the cluster, so a long
    transaction elsewhere (another database's, too) holds them back; that wait is reported,
    not timed as relay work.
    """
    started = time.perf_counter()
    while True:
        with db.sessionmaker() as session:
            if inbox_log.backlog(session, Position()) >= count:
                return time.perf_counter() - started
        if time.perf_counter() - started > timeout:
            raise RuntimeError(f"the {count} stored deliveries were not readable in {timeout} s")
        time.sleep(0.05)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deliveries", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=100, help="COEX_RELAY_BATCH_SIZE")
    parser.add_argument("--database-url", default=StackConfig.database_url)
    parser.add_argument("--broker-url", default=StackConfig.broker_url)
    args = parser.parse_args(argv)
    configure_logging("development", "WARNING", stream=sys.stderr)  # stdout is the JSON alone
    config = StackConfig(database_url=args.database_url, broker_url=args.broker_url)
    check_services(config.database_url, config.broker_url)
    with (
        exclusive_stack(config.database_url),
        tempfile.TemporaryDirectory(prefix="coexist-relay-") as tmp,
        BrokerClient(config.settings("http://127.0.0.1:9")) as broker,
    ):
        reset_database(config.database_url)
        broker.reset()
        items = deliveries(args.deliveries, config.app_secret, "relay")
        with start_web(
            config, "http://127.0.0.1:9", Path(tmp), extra_args=["--no-access-log"]
        ) as web:
            seconds, failures = asyncio.run(blast(web.url, items, args.concurrency))
        if failures:
            raise RuntimeError(f"{failures} deliveries were not answered 200")
        intake_rate = len(items) / seconds
        broker.reset()

        sink = Sink(config.app_secret, check_every=10)
        settings = Settings(
            _env_file=None,  # type: ignore[call-arg]
            **config.values("http://127.0.0.1:9"),
            relay_url=sink.url,
            relay_batch_size=args.batch_size,
        )
        db = Database(config.database_url)
        waited = wait_visible(db, len(items))
        receiver = Receiver(sink.url)
        started = time.perf_counter()
        try:
            with db.session() as session:
                report = run(session, receiver, settings)
        finally:
            relay_seconds = time.perf_counter() - started
            receiver.close()
            sink.close()
        with db.engine.connect() as conn:
            stored = conn.execute(text("SELECT count(*) FROM inbox")).scalar_one()
        db.dispose()
    relay_rate = report.forwarded / relay_seconds
    result: dict[str, Any] = {
        "benchmark": "relay",
        "delivery_bytes": BODY_BYTES,
        "deliveries": len(items),
        "stored_in_inbox": stored,
        "forwarded": report.forwarded,
        "received_by_sink": sink.count,
        "bad_signatures_in_sample": sink.bad_signatures,
        "relay_outcome": report.outcome,
        "visibility_wait_s": round(waited, 3),
        "relay_per_s": round(relay_rate),
        "baseline": {"intake_per_s": round(intake_rate), "concurrency": args.concurrency},
        "relay_over_intake": round(relay_rate / intake_rate, 3),
        "goals": {"every_delivery_forwarded": report.forwarded == stored == sink.count},
    }
    json.dump(result, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
