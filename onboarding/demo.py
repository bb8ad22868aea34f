"""``coexist demo``: the whole onboarding, in one process, against the built-in Meta sandbox.

It starts the sandbox and the web app on loopback ports, seeds a business whose number runs
the WhatsApp Business app, plays the customer's browser (Embedded Signup finished with
"connect my existing app"), posts the hand-off to ``POST /signup`` and lets the tasks run
in-process (``COEX_TASKS_EAGER``) on SQLite. ``--flaky`` makes the sandbox drop and fail
``smb_app_data`` answers, to show that each sync is still accepted exactly once.
"""

from __future__ import annotations

import secrets
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from pydantic import SecretStr
from rich.console import Console

from config import Settings, get_settings
from config.logging import configure_logging
from models.crypto import TokenCipher
from onboarding import runtime as runtime_module
from onboarding.runtime import Runtime
from onboarding.sandbox import Faults, Sandbox, SandboxServer
from onboarding.web import create_app

DEMO_APP_ID = "100000000000001"
SETTLED = frozenset({"requested", "declined", "window_missed", "failed"})
GAVE_UP = frozenset({"code_expired", "ineligible", "failed", "sync_window_missed"})


@dataclass
class DemoResult:
    onboarding: dict[str, Any]
    accepted_syncs: list[dict[str, Any]]
    register_calls: int
    seconds: float


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextmanager
def _serve(app: Any) -> Iterator[str]:
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            app, host="127.0.0.1", port=port, log_config=None, access_log=False, lifespan="on"
        )
    )
    thread = threading.Thread(target=server.run, name="coexist-web", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the web app did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def demo_settings(base: Settings, workdir: Path) -> Settings:
    """The demo's settings: SQLite in ``workdir``, eager tasks, throwaway credentials."""
    return base.model_copy(
        update={
            "database_url": f"sqlite:///{workdir / 'coexist-demo.db'}",
            "tasks_eager": True,
            "meta_app_id": DEMO_APP_ID,
            "meta_app_secret": SecretStr(secrets.token_urlsafe(24)),
            "signup_token": SecretStr(secrets.token_urlsafe(24)),
            "admin_token": SecretStr(secrets.token_urlsafe(24)),
            "webhook_verify_token": SecretStr(secrets.token_urlsafe(24)),
            "token_keys": SecretStr(TokenCipher.generate_key()),
            "media_dir": workdir / "media",
        }
    )


def run_demo(
    *,
    console: Console,
    workdir: Path | None = None,
    flaky: bool = False,
    display_number: str = "+1 650 555 1234",
    timeout: float = 60.0,
) -> DemoResult:
    """Run the onboarding end to end and return what happened."""
    from tasks.app import app as celery_app  # noqa: PLC0415 - interfaces enqueue
    from tasks.sync import sweep  # noqa: PLC0415

    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="coexist-demo-") as tmp:
        settings = demo_settings(get_settings(), Path(workdir or tmp))
        configure_logging("development", "WARNING", static_secrets=settings.secret_values)
        sandbox = Sandbox(
            app_id=settings.meta_app_id,
            app_secret=settings.meta_app_secret.get_secret_value(),
            seed=2026,
        )
        if flaky:
            sandbox.set_faults(
                Faults.from_dict(
                    {
                        "rules": {
                            "smb_app_data": {
                                "error_5xx": 0.3,
                                "drop_after_apply": 0.3,
                            }
                        },
                    }
                )
            )
        with SandboxServer(sandbox) as sandbox_server:
            settings = settings.model_copy(update={"meta_graph_url": sandbox_server.url})
            rt = Runtime.build(settings)
            rt.db.upgrade()
            previous = runtime_module.install(rt)
            celery_app.conf.task_always_eager = True
            try:
                console.print(
                    f"[dim]sandbox Graph API at {sandbox_server.url}, "
                    f"database {settings.database_url}[/dim]"
                )
                with _serve(create_app(rt)) as web_url:
                    result = _drive(
                        console, sandbox, settings, web_url, sweep, display_number, timeout
                    )
            finally:
                runtime_module.install(previous)
                rt.close()
    result.seconds = round(time.monotonic() - started, 2)
    return result


def _drive(
    console: Console,
    sandbox: Sandbox,
    settings: Settings,
    web_url: str,
    sweep: Any,
    display_number: str,
    timeout: float,
) -> DemoResult:
    business = sandbox.add_business("Lucky Shrub", [display_number])
    console.print(
        f"business [bold]{business.name}[/bold]: WABA {business.waba_id}, "
        f"number {display_number} on the WhatsApp Business app"
    )
    signup = sandbox.complete_signup(business.waba_id)
    console.print(
        f"browser: Embedded Signup finished ({signup.session['event']}), code valid for 30 s"
    )
    signup_auth = {"Authorization": f"Bearer {settings.signup_token.get_secret_value()}"}
    admin_auth = {"Authorization": f"Bearer {settings.admin_token.get_secret_value()}"}
    with httpx.Client(base_url=web_url, timeout=30) as client:
        response = client.post(
            "/signup",
            json={"code": signup.code, "session": dict(signup.session)},
            headers=signup_auth,
        )
        response.raise_for_status()
        onboarding_id = response.json()["onboarding_id"]
        console.print(f"POST /signup → {response.status_code}, onboarding {onboarding_id}")
        deadline = time.monotonic() + timeout
        while True:
            detail = client.get(f"/onboardings/{onboarding_id}", headers=admin_auth).json()
            settled = all(s["state"] in SETTLED for s in detail["sync"].values())
            if settled or detail["state"] in GAVE_UP:
                break
            if time.monotonic() > deadline:
                break
            time.sleep(0.5)
            sweep.delay()  # the beat job, in-process: fires syncs whose backoff has passed
    syncs = [s.to_dict() for s in sandbox.accepted_syncs()]
    return DemoResult(
        onboarding=detail,
        accepted_syncs=syncs,
        register_calls=sandbox.call_counts().get("register", 0),
        seconds=0.0,
    )
