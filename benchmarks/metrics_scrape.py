"""The cost of one ``GET /metrics`` scrape on a big database, against the bare SQL of its
gauges and the process counters alone.

It loads the data of :mod:`benchmarks.console` (``--onboardings`` (10,000) onboardings in every
state, one onboarding with ``--messages`` (1,000,000) messages) plus ``--inbox`` (200,000)
stored deliveries of which one in ten is still pending (the ingest backlog), and serves the web
app with the relay and the feed's push configured (their gauges are read too; nothing listens
at either address, and nothing forwards or pushes: no worker runs). Then, alternating call by
call after ``--warmup`` (5) untimed pairs, ``--iterations`` (100) times:

* ``scrape``: ``GET /metrics`` through ``uvicorn onboarding.web:app`` on loopback;
* ``sql``: the statements the scrape's gauges send to the database, captured from the
  collectors once and replayed on one connection, rows fetched (nothing formatted);
* ``counters``: the process counters alone, formatted by prometheus-client in this process
  (what a scrape costs without the database).

Prints one JSON object: p50 and p99 in milliseconds of each, the scrape's over the SQL's, and
the scrape's size in bytes. Own database ``coexist_metrics_bench`` by default.
"""

from __future__ import annotations

import argparse
import base64
import json
import secrets
import sys
import time

import httpx
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest

from benchmarks.console import (
    add_common_options,
    captured,
    compare,
    loaded_stack,
    percentiles,
    replay,
    runtime,
    timed,
)
from onboarding.metrics import StateCollector
from onboarding.web.metrics import DeliveryLag

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/coexist_metrics_bench"
#: Nothing listens at these: the relay's and the push's gauges are read, never acted on.
RELAY_URL = "http://127.0.0.1:9/relay"
FEED_URL = "http://127.0.0.1:9/feed"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_options(parser)
    parser.add_argument("--inbox", type=int, default=200_000)
    parser.add_argument("--database-url", default=DEFAULT_URL)
    args = parser.parse_args(argv)
    secret = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
    overrides = {
        "relay_url": RELAY_URL,
        "feed_webhook_url": FEED_URL,
        "feed_webhook_secret": secret,
    }
    with (
        loaded_stack(args, "metrics", args.inbox, **overrides) as (db, loaded, web, config),
        httpx.Client(base_url=web.url, timeout=60) as client,
        db.engine.connect() as conn,
    ):
        r = runtime(config)
        try:

            def gauges() -> None:
                state = CollectorRegistry()
                state.register(StateCollector(r.db.sessionmaker))
                state.register(DeliveryLag(r))
                generate_latest(state)

            queries = captured(r.db, gauges)
        finally:
            r.close()

        def scrape() -> int:
            answer = client.get("/metrics")
            answer.raise_for_status()
            return len(answer.content)

        print("metrics: timing", file=sys.stderr, flush=True)
        scrape_samples, sql_samples, size = timed(
            scrape, replay(conn, queries), args.iterations, args.warmup
        )
        last = client.get("/metrics").text

    def counters() -> int:
        return len(generate_latest(REGISTRY))

    counter_samples: list[float] = []
    for _ in range(args.iterations):
        began = time.perf_counter()
        counters()
        counter_samples.append(time.perf_counter() - began)
    result = {
        "onboardings": loaded.onboardings + 1,
        "messages": loaded.messages,
        "inbox": loaded.inbox,
        "inbox_pending": _sample(last, 'coexist_inbox{status="pending"}'),
        "relay_backlog": _sample(last, "coexist_relay_backlog"),
        "load_seconds": round(loaded.seconds, 1),
        "iterations": args.iterations,
        **compare(scrape_samples, sql_samples, "scrape"),
        "queries": len(queries),
        "counters": percentiles(counter_samples),
        "scrape_bytes": size,
    }
    print(json.dumps(result, indent=2))
    return 0


def _sample(exposition: str, name: str) -> float | None:
    """The value of the sample ``name`` (with its labels) in a text exposition."""
    for line in exposition.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return None


if __name__ == "__main__":
    raise SystemExit(main())
