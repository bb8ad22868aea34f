"""The stack's subprocesses: Celery workers, beat and the web app, each in its own session."""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import httpx

from benchmarks._harness.services import ROOT, BrokerClient, StackStartError
from benchmarks._harness.stack import StackConfig
from config.celery import URGENT_QUEUES

# -- subprocesses --------------------------------------------------------------------------


class ManagedProcess:
    """A subprocess in its own session, logging to a file, stopped with its process group."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        env: Mapping[str, str],
        log_path: Path,
        cwd: Path = ROOT,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.env = dict(env)
        self.log_path = log_path
        self.cwd = cwd
        self._popen: subprocess.Popen[bytes] | None = None

    def start(self) -> ManagedProcess:
        if self._popen is not None:
            raise RuntimeError(f"{self.name} already started")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self._popen = subprocess.Popen(
                self.argv,
                cwd=self.cwd,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self

    @property
    def pid(self) -> int | None:
        return self._popen.pid if self._popen else None

    @property
    def running(self) -> bool:
        return self._popen is not None and self._popen.poll() is None

    @property
    def returncode(self) -> int | None:
        return self._popen.poll() if self._popen else None

    def stop(self, timeout: float = 20.0) -> int | None:
        """SIGTERM, wait up to ``timeout`` s, then SIGKILL the whole process group."""
        popen = self._popen
        if popen is None:
            return None
        if popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                popen.send_signal(signal.SIGTERM)
            try:
                popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self._kill_group(popen.pid)
                popen.wait(10)
        # Children left behind by a parent that died (prefork pool processes) go too.
        self._kill_group(popen.pid)
        return popen.returncode

    @staticmethod
    def _kill_group(pgid: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)

    def log_tail(self, lines: int = 60, max_bytes: int = 64 * 1024) -> str:
        """The last ``lines`` lines of the log ('' if there is none yet)."""
        try:
            with self.log_path.open("rb") as log:
                size = log.seek(0, os.SEEK_END)
                log.seek(max(0, size - max_bytes))
                data = log.read()
        except FileNotFoundError:
            return ""
        return "\n".join(data.decode("utf-8", "replace").splitlines()[-lines:])

    def wait_until(
        self, check: Callable[[], bool], *, what: str, timeout: float, interval: float = 0.1
    ) -> None:
        """Poll ``check`` until true; fail early if the process exits."""
        deadline = time.monotonic() + timeout
        while True:
            if not self.running:
                raise StackStartError(
                    f"{self.name} exited with status {self.returncode} while waiting for {what};"
                    f" log {self.log_path}:\n{self.log_tail()}"
                )
            if check():
                return
            if time.monotonic() >= deadline:
                raise StackStartError(
                    f"{self.name}: {what} did not happen within {timeout:g} s;"
                    f" log {self.log_path}:\n{self.log_tail()}"
                )
            time.sleep(interval)

    def __enter__(self) -> ManagedProcess:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def start_worker(
    config: StackConfig,
    graph_url: str,
    log_dir: Path,
    *,
    broker: BrokerClient,
    concurrency: int = 2,
    queues: Iterable[str] = URGENT_QUEUES,
    timeout: float = 60.0,
) -> ManagedProcess:
    """A prefork Celery worker (the ``urgent`` process by default), once it answers a ping."""
    node = f"coexist-{uuid.uuid4().hex[:8]}@{socket.gethostname()}"
    argv = [
        *(sys.executable, "-m", "celery", "-A", "tasks", "worker"),
        *("-Q", ",".join(queues), "-c", str(concurrency), "--pool", "prefork"),
        *("--without-heartbeat", "--without-gossip", "--without-mingle"),
        *("-l", "INFO", "-n", node),
    ]
    process = ManagedProcess(
        f"celery worker {node}",
        argv,
        env=config.environment(graph_url),
        log_path=log_dir / "worker.log",
    ).start()
    try:
        process.wait_until(lambda: broker.ping(node), what="an answer to ping", timeout=timeout)
    except BaseException:
        process.stop()
        raise
    return process


def start_beat(
    config: StackConfig, graph_url: str, log_dir: Path, *, timeout: float = 30.0
) -> ManagedProcess:
    """``celery beat`` with coexist's schedule (a fresh schedule file), once it has started."""
    log_dir.mkdir(parents=True, exist_ok=True)
    argv = [
        *(sys.executable, "-m", "celery", "-A", "tasks", "beat", "-l", "INFO"),
        *("--schedule", str(log_dir / "beat-schedule")),
    ]
    process = ManagedProcess(
        "celery beat", argv, env=config.environment(graph_url), log_path=log_dir / "beat.log"
    ).start()
    try:
        process.wait_until(
            lambda: "beat: Starting" in process.log_tail(), what="beat to start", timeout=timeout
        )
    except BaseException:
        process.stop()
        raise
    return process


@dataclass(frozen=True)
class WebServer:
    """The uvicorn process and the URL it serves."""

    process: ManagedProcess
    url: str

    def __enter__(self) -> WebServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.process.stop()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False


def start_web(
    config: StackConfig,
    graph_url: str,
    log_dir: Path,
    *,
    timeout: float = 30.0,
    tries: int = 3,
    extra_args: Sequence[str] = (),
) -> WebServer:
    """``uvicorn onboarding.web:app`` on a free port, once ``GET /healthz`` answers 200."""
    for attempt in range(1, tries + 1):
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        argv = [sys.executable, "-m", "uvicorn", "onboarding.web:app"]
        argv += ["--host", "127.0.0.1", "--port", str(port), *extra_args]
        suffix = "" if attempt == 1 else f"-{attempt}"
        process = ManagedProcess(
            f"web {url}",
            argv,
            env=config.environment(graph_url),
            log_path=log_dir / f"web{suffix}.log",
        ).start()
        try:
            process.wait_until(
                functools.partial(healthy, url), what="GET /healthz to answer 200", timeout=timeout
            )
        except StackStartError:
            process.stop()
            if attempt < tries and "address already in use" in process.log_tail().lower():
                continue  # another process took the port between probe and bind
            raise
        except BaseException:
            process.stop()
            raise
        return WebServer(process, url)
    raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises
