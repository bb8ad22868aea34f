"""A private ``redis-server`` a chaos test may kill and start again, never the machine's Redis.

It runs on a free port of 127.0.0.1 without persistence (``--save "" --appendonly no``), so a
kill loses everything it held (queued messages, unacked deliveries, queue bindings), as a real
crash of a Redis without persistence does. :meth:`RedisServer.kill` sends SIGKILL;
:meth:`RedisServer.start` brings a fresh, empty server back on the same port::

    with RedisServer(log_dir) as server:
        url = server.url(1)
        server.kill()
        server.start()
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import time
from pathlib import Path
from types import TracebackType

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from benchmarks._harness import ManagedProcess, StackStartError, free_port

#: How long a fresh server may take to answer PING.
START_TIMEOUT = 10.0


class RedisServer:
    """One ``redis-server`` process at a time on a fixed port, logging under ``log_dir``."""

    def __init__(self, log_dir: Path, *, binary: str = "redis-server") -> None:
        path = shutil.which(binary)
        if path is None:
            raise StackStartError(f"{binary} is not installed")
        self.binary = path
        self.log_dir = log_dir
        self.port = free_port()
        self.starts = 0
        self._process: ManagedProcess | None = None

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.running

    def start(self) -> RedisServer:
        """Start a new, empty server on :attr:`port` and wait until it answers PING."""
        if self.running:
            raise RuntimeError("redis-server is already running")
        self.starts += 1
        argv = [
            self.binary,
            *("--port", str(self.port), "--bind", "127.0.0.1"),
            *("--save", "", "--appendonly", "no"),
            *("--dir", str(self.log_dir), "--protected-mode", "no"),
        ]
        self._process = ManagedProcess(
            f"redis-server :{self.port} (start {self.starts})",
            argv,
            env=dict(os.environ),
            log_path=self.log_dir / f"redis-{self.starts}.log",
        ).start()
        try:
            self._process.wait_until(self.answers, what="PONG", timeout=START_TIMEOUT)
        except BaseException:
            self._process.stop()
            raise
        return self

    def answers(self) -> bool:
        """Whether the server answers PING right now."""
        client = self.client()
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False
        finally:
            client.close()

    def client(self, db: int = 0) -> redis.Redis:
        """A client that fails at once while the server is down (redis-py retries by default)."""
        return redis.Redis(
            host="127.0.0.1",
            port=self.port,
            db=db,
            socket_connect_timeout=0.5,
            socket_timeout=0.5,
            retry=Retry(NoBackoff(), 0),
        )

    def kill(self) -> None:
        """SIGKILL the server (no shutdown, no save) and reap it; the port is free at once."""
        process = self._process
        if process is None or process.pid is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.stop(timeout=5.0)
        deadline = time.monotonic() + 5.0
        while self.answers():  # the kernel closes the socket with the process: not for long
            if time.monotonic() >= deadline:
                raise RuntimeError(f"redis-server on port {self.port} still answers after SIGKILL")
            time.sleep(0.05)

    def stop(self) -> None:
        if self._process is not None:
            self._process.stop(timeout=5.0)

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
