"""Webhook intake throughput: signed 4 KB deliveries per second through ``POST /webhooks/meta``.

The real receiver (``uvicorn onboarding.web:app``: verify the HMAC, commit the raw delivery to
the PostgreSQL inbox, enqueue its processing on Redis, answer 200) against a bare endpoint on
the same framework and server that only reads the body (the baseline, measured in the same
run). Every delivery is distinct (the inbox deduplicates identical bytes), about 4 KB, signed
with the app secret. Prints one JSON object with the median of ``--rounds`` rounds each.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import text

from benchmarks._harness import (
    BrokerClient,
    ManagedProcess,
    StackConfig,
    check_services,
    exclusive_stack,
    free_port,
    healthy,
    reset_database,
    start_web,
)
from models import Database
from onboarding.meta.signatures import sign

BODY_BYTES = 4096


def deliveries(count: int, secret: str, salt: str) -> list[tuple[bytes, str]]:
    """``count`` distinct signed ~4 KB history deliveries."""
    out = []
    for n in range(count):
        messages = []
        k = 0
        while True:
            messages.append(
                {
                    "from": "16505551234",
                    "id": f"wamid.{salt}.{n}.{k}",
                    "timestamp": str(1_790_000_000 + k),
                    "type": "text",
                    "text": {"body": f"delivery {n} message {k}: see you at five"},
                    "history_context": {"status": "READ"},
                }
            )
            payload = {
                "object": "whatsapp_business_account",
                "entry": [
                    {
                        "id": "102290129340398",
                        "time": 1_790_000_000,
                        "changes": [
                            {
                                "field": "history",
                                "value": {
                                    "messaging_product": "whatsapp",
                                    "metadata": {
                                        "display_phone_number": "15550783881",
                                        "phone_number_id": "106540352242922",
                                    },
                                    "history": [
                                        {
                                            "metadata": {
                                                "phase": 1,
                                                "chunk_order": n + 1,
                                                "progress": 50,
                                            },
                                            "threads": [
                                                {"id": "16505551234", "messages": messages}
                                            ],
                                        }
                                    ],
                                },
                            }
                        ],
                    }
                ],
            }
            body = json.dumps(payload, separators=(",", ":")).encode()
            if len(body) >= BODY_BYTES - 150:
                break
            k += 1
        out.append((body, sign(body, secret)))
    return out


def post_request(host: str, port: int, body: bytes, signature: str) -> bytes:
    """One signed ``POST /webhooks/meta`` as bytes on the wire (HTTP/1.1, keep-alive)."""
    return (
        f"POST /webhooks/meta HTTP/1.1\r\nHost: {host}:{port}\r\n"
        f"Content-Type: application/json\r\nX-Hub-Signature-256: {signature}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


async def read_answer(reader: asyncio.StreamReader) -> bytes:
    """Read one HTTP/1.1 answer off the connection; its status line."""
    status_line = await reader.readline()
    length = 0
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode("latin-1").partition(":")
        if name.strip().lower() == "content-length":
            length = int(value.strip())
    await reader.readexactly(length)
    return status_line


async def blast(url: str, items: list[tuple[bytes, str]], concurrency: int) -> tuple[float, int]:
    """Send every delivery over ``concurrency`` keep-alive connections; (seconds, non-200s).

    A minimal HTTP/1.1 client on asyncio streams, with every request built before the clock
    starts, so the load generator spends as little as possible of the machine's CPU.
    """
    target = httpx.URL(url)
    host, port = target.host, target.port or 80
    requests = [post_request(host, port, body, signature) for body, signature in items]
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for request in requests:
        queue.put_nowait(request)
    failures = 0

    async def connection() -> None:
        nonlocal failures
        reader, writer = await asyncio.open_connection(host, port)
        try:
            while True:
                try:
                    request = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                writer.write(request)
                if b" 200 " not in await read_answer(reader):
                    failures += 1
        finally:
            writer.close()
            await writer.wait_closed()

    started = time.perf_counter()
    await asyncio.gather(*(connection() for _ in range(concurrency)))
    return time.perf_counter() - started, failures


def start_bare(log_dir: Path, config: StackConfig, workers: int = 1) -> tuple[ManagedProcess, str]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    argv = [
        sys.executable,
        "-m",
        "uvicorn",
        "benchmarks.bare_app:app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--no-access-log",
        "--workers",
        str(workers),
    ]
    process = ManagedProcess(
        "bare web",
        argv,
        env=config.environment("http://127.0.0.1:9"),
        log_path=log_dir / "bare.log",
    ).start()
    process.wait_until(lambda: healthy(url), what="GET /healthz", timeout=30)
    return process, url


def rounds_of(
    url: str, config: StackConfig, count: int, rounds: int, concurrency: int, tag: str
) -> list[float]:
    rates = []
    for r in range(rounds + 1):  # the first round warms up and is not counted
        items = deliveries(count if r else max(count // 10, 50), config.app_secret, f"{tag}{r}")
        seconds, failures = asyncio.run(blast(url, items, concurrency))
        if failures:
            raise RuntimeError(f"{failures} deliveries were not answered 200 by {url}")
        if r:
            rates.append(len(items) / seconds)
    return rates


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deliveries", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--web-workers", type=int, default=1, help="uvicorn worker processes")
    parser.add_argument("--database-url", default=StackConfig.database_url)
    parser.add_argument("--broker-url", default=StackConfig.broker_url)
    args = parser.parse_args(argv)
    config = StackConfig(database_url=args.database_url, broker_url=args.broker_url)
    check_services(config.database_url, config.broker_url)
    with (
        exclusive_stack(config.database_url),
        tempfile.TemporaryDirectory(prefix="coexist-intake-") as tmp,
        BrokerClient(config.settings("http://127.0.0.1:9")) as broker,
    ):
        reset_database(config.database_url)
        broker.reset()
        log_dir = Path(tmp)
        bare, bare_url = start_bare(log_dir, config, args.web_workers)
        try:
            bare_rates = rounds_of(
                bare_url, config, args.deliveries, args.rounds, args.concurrency, "bare"
            )
        finally:
            bare.stop()
        # Both servers without access logs: the benchmark measures receiving, not logging.
        with start_web(
            config,
            "http://127.0.0.1:9",
            log_dir,
            extra_args=["--no-access-log", "--workers", str(args.web_workers)],
        ) as web:
            real_rates = rounds_of(
                web.url, config, args.deliveries, args.rounds, args.concurrency, "real"
            )
        db = Database(config.database_url)
        with db.engine.connect() as conn:
            stored = conn.execute(text("SELECT count(*) FROM inbox")).scalar_one()
        db.dispose()
        broker.reset()
    real, bare_median = statistics.median(real_rates), statistics.median(bare_rates)
    report: dict[str, Any] = {
        "benchmark": "intake",
        "delivery_bytes": BODY_BYTES,
        "deliveries_per_round": args.deliveries,
        "rounds": args.rounds,
        "concurrency": args.concurrency,
        "web_workers": args.web_workers,
        "deliveries_per_s": round(real),
        "rounds_per_s": [round(r) for r in real_rates],
        "stored_in_inbox": stored,
        "baseline": {
            "bare_endpoint_per_s": round(bare_median),
            "rounds_per_s": [round(r) for r in bare_rates],
        },
        "ratio_vs_bare": round(real / bare_median, 3),
        "goals": {
            "deliveries_per_s>=1000": real >= 1000,
            "ratio_vs_bare>=0.5": real / bare_median >= 0.5,
        },
    }
    json.dump(report, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
