"""``coexist demo``: the whole onboarding, in one process, against the built-in Meta sandbox.

It starts the sandbox and the web app on loopback ports, seeds a business whose number runs
the WhatsApp Business app, plays the customer's browser (Embedded Signup finished with
"connect my existing app"), posts the hand-off to ``POST /signup`` and lets the tasks run
in-process (``COEX_TASKS_EAGER``) on SQLite. Before the syncs are triggered, the sandbox is
told to deliver Meta's webhooks to the web app's ``POST /webhooks/meta`` once each sync is
accepted: the contacts, the chat history in three phases of shuffled and partly duplicated
chunks, the media follow-ups of the last 14 days and a few app echoes, generated from a
:class:`~onboarding.sandbox.HistoryProfile` of ``messages`` messages (:func:`demo_profile`).

While the deliveries flow, rich progress bars follow each history phase (chunks received out
of the sandbox's plan), the contacts and the media downloads, polled from the status API
(``GET /onboardings/{id}`` with the admin bearer). The demo stops once the history sync has
ended (``completed``, ``completed_with_gaps`` or ``declined``), the sandbox has nothing left
to deliver and no media awaits download, or at the timeout; then it reads the history ledger
for the messages per phase and returns a :class:`DemoSummary`.

``--flaky`` makes the sandbox drop and fail ``smb_app_data`` answers, to show that each sync
is still accepted exactly once; ``--declined`` plays a business that turned history sharing
off (error 2593109): contacts arrive, the history sync ends ``declined`` and the onboarding
``history_declined``.
"""

from __future__ import annotations

import secrets
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Final

import httpx
import uvicorn
from pydantic import SecretStr
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Column, Table
from sqlalchemy import select

from config import Settings, get_settings
from config.logging import configure_logging
from models import HistoryChunk, OnboardingState, SyncState
from models.crypto import TokenCipher
from onboarding import runtime as runtime_module
from onboarding.runtime import Runtime
from onboarding.sandbox import (
    DeliveryOptions,
    Faults,
    HistoryGenerator,
    HistoryPlan,
    HistoryProfile,
    Sandbox,
    SandboxServer,
    WebhookDispatcher,
)
from onboarding.web import create_app
from tasks.app import app as celery_app
from tasks.ingest import watchdog
from tasks.sync import sweep

DEMO_APP_ID = "100000000000001"
DEFAULT_MESSAGES: Final = 2_000
"""History size of the default profile: enough for several chunks per phase, done in seconds."""
DEMO_ECHOES: Final = 6
"""``smb_message_echoes`` webhooks after the history (half repeat a history message)."""
SETTLED = frozenset({"requested", "declined", "window_missed", "failed"})
GAVE_UP = frozenset({"code_expired", "ineligible", "failed", "sync_window_missed"})
HISTORY_ENDED: Final = frozenset(
    {SyncState.COMPLETED.value, SyncState.COMPLETED_WITH_GAPS.value, SyncState.DECLINED.value}
)
"""History sync states after which Meta sends no more history."""
POLL_SECONDS: Final = 0.2
SWEEP_EVERY: Final = 0.5
"""Seconds between in-process runs of the beat jobs (sync sweeper, ingest watchdog)."""
PHASES: Final = (0, 1, 2)


@dataclass(frozen=True, slots=True)
class PhaseSummary:
    """One history phase: chunks expected from the sandbox's plan, received, and messages."""

    phase: int
    chunks_expected: int
    chunks_received: int
    messages: int
    """Messages stored from this phase's chunks (the ``history_chunks`` ledger)."""
    missing: tuple[int, ...]
    """``chunk_order``s the plan has but coexist never received."""


@dataclass(frozen=True, slots=True)
class DemoSummary:
    """What the demo's onboarding ended with, and whether that was the expected end."""

    expected_state: str
    onboarding_state: str
    contacts_sync: str
    history_sync: str
    timed_out: bool
    problems: tuple[str, ...]
    """Why the flow did not reach its expected end; empty when it did."""
    contacts: int
    contacts_removed: int
    threads: int
    phases: tuple[PhaseSummary, ...]
    messages_total: int
    """Every stored message: history plus app echoes that repeat no history message."""
    messages_inbound: int
    messages_outbound: int
    app_echoes: int
    planned_messages: int
    """Messages in the sandbox's history, out-of-window and group ones included."""
    media_stored: int
    media_skipped_too_old: int
    media_awaiting: int
    media_expired: int
    media_failed: int
    dropped_out_of_window: int
    dropped_group: int
    webhooks_delivered: int
    webhooks_failed: int
    sync_window_seconds_left: int
    seconds: float

    @property
    def ok(self) -> bool:
        """Whether the flow reached its expected end state."""
        return not self.problems

    @property
    def declined(self) -> bool:
        """Whether the business declined to share its history."""
        return self.history_sync == SyncState.DECLINED.value

    @property
    def messages_history(self) -> int:
        """Messages stored from history chunks, all phases."""
        return sum(p.messages for p in self.phases)

    @property
    def gaps(self) -> dict[str, list[int]]:
        """Missing ``chunk_order``s per phase (empty when none is missing)."""
        return {str(p.phase): list(p.missing) for p in self.phases if p.missing}

    def to_dict(self) -> dict[str, Any]:
        """The JSON form printed by ``coexist demo --json`` under ``summary``."""
        return {
            "ok": self.ok,
            "expected_state": self.expected_state,
            "onboarding_state": self.onboarding_state,
            "syncs": {"contacts": self.contacts_sync, "history": self.history_sync},
            "timed_out": self.timed_out,
            "problems": list(self.problems),
            "contacts": {"active": self.contacts, "removed": self.contacts_removed},
            "threads": self.threads,
            "messages": {
                "per_phase": {str(p.phase): p.messages for p in self.phases},
                "history": self.messages_history,
                "total": self.messages_total,
                "inbound": self.messages_inbound,
                "outbound": self.messages_outbound,
                "app_echoes": self.app_echoes,
                "planned": self.planned_messages,
            },
            "chunks": {
                str(p.phase): {"expected": p.chunks_expected, "received": p.chunks_received}
                for p in self.phases
            },
            "media": {
                "stored": self.media_stored,
                "skipped_too_old": self.media_skipped_too_old,
                "awaiting": self.media_awaiting,
                "expired": self.media_expired,
                "failed": self.media_failed,
            },
            "dropped": {
                "out_of_window": self.dropped_out_of_window,
                "group": self.dropped_group,
            },
            "gaps": self.gaps,
            "webhooks": {"delivered": self.webhooks_delivered, "failed": self.webhooks_failed},
            "sync_window_seconds_left": self.sync_window_seconds_left,
            "seconds": self.seconds,
        }


@dataclass
class DemoResult:
    """The onboarding's final detail, the sandbox's view of it, and the summary."""

    onboarding: dict[str, Any]
    accepted_syncs: list[dict[str, Any]]
    register_calls: int
    seconds: float
    summary: DemoSummary

    @property
    def ok(self) -> bool:
        """Whether the flow reached its expected end state."""
        return self.summary.ok


@dataclass(frozen=True, slots=True)
class _Scenario:
    """What the demo asks of the sandbox and what it expects coexist to end with."""

    profile: HistoryProfile
    declined: bool
    timeout: float
    display_number: str

    @property
    def expected_state(self) -> str:
        return (OnboardingState.HISTORY_DECLINED if self.declined else OnboardingState.SYNCED).value

    @property
    def expected_history(self) -> str:
        return (SyncState.DECLINED if self.declined else SyncState.COMPLETED).value


@dataclass
class _Watch:
    """The polling loop's view: the latest detail and whether it stopped at the timeout."""

    detail: dict[str, Any]
    timed_out: bool = False


def demo_profile(messages: int = DEFAULT_MESSAGES, *, seed: int = 2026) -> HistoryProfile:
    """A modest history of ``messages`` messages, cut into about 20 chunks over three phases.

    Threads and contacts grow with the size; everything else is the profile's defaults:
    200 days back (a few messages beyond Meta's 180), media of every age, group threads,
    shuffled chunks with duplicates, contact edits and removals, echoes repeating history.
    """
    if messages < 1:
        raise ValueError("messages must be >= 1")
    threads = max(8, min(400, messages // 25))
    return HistoryProfile(
        seed=seed,
        total_messages=messages,
        threads=threads,
        contacts=threads + threads // 2,
        chunk_size=max(10, messages // 20),
    )


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
    declined: bool = False,
    messages: int = DEFAULT_MESSAGES,
    display_number: str = "+1 650 555 1234",
    timeout: float = 60.0,
    base_settings: Settings | None = None,
) -> DemoResult:
    """Run the onboarding end to end, history included, and return what happened.

    ``timeout`` bounds the wait for the syncs and their webhooks, from the signup on. The
    demo's settings derive from ``base_settings`` (default: the environment's), with their
    database, credentials and media folder replaced (:func:`demo_settings`).
    """
    scenario = _Scenario(
        profile=demo_profile(messages),
        declined=declined,
        timeout=timeout,
        display_number=display_number,
    )
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="coexist-demo-") as tmp:
        settings = demo_settings(base_settings or get_settings(), Path(workdir or tmp))
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
            was_eager = celery_app.conf.task_always_eager
            celery_app.conf.task_always_eager = True
            try:
                console.print(
                    f"[dim]sandbox Graph API at {sandbox_server.url}, "
                    f"database {settings.database_url}[/dim]"
                )
                with _serve(create_app(rt)) as web_url:
                    try:
                        result = _drive(console, sandbox, rt, web_url, scenario, started)
                    finally:
                        sandbox.disable_webhooks()
            finally:
                celery_app.conf.task_always_eager = was_eager
                runtime_module.install(previous)
                rt.close()
    result.seconds = round(time.monotonic() - started, 2)
    result.summary = replace(result.summary, seconds=result.seconds)
    return result


def _drive(
    console: Console,
    sandbox: Sandbox,
    rt: Runtime,
    web_url: str,
    scenario: _Scenario,
    started: float,
) -> DemoResult:
    settings = rt.settings
    business = sandbox.add_business("Lucky Shrub", [scenario.display_number])
    console.print(
        f"business [bold]{business.name}[/bold]: WABA {business.waba_id}, "
        f"number {scenario.display_number} on the WhatsApp Business app"
    )
    dispatcher = sandbox.configure_webhooks(
        callback_url=f"{web_url}/webhooks/meta",
        profile=scenario.profile,
        mode="declined" if scenario.declined else "normal",
        echoes=DEMO_ECHOES,
        # Media are downloaded inside the delivery (eager tasks): give it time to answer.
        delivery=DeliveryOptions(timeout=30.0),
    )
    signup = sandbox.complete_signup(business.waba_id)
    plan = HistoryGenerator(scenario.profile, sandbox.number_context(signup.phone_number_id)).plan
    contacts_expected = scenario.profile.contacts
    console.print(
        f"browser: Embedded Signup finished ({signup.session['event']}), code valid for 30 s"
    )
    if scenario.declined:
        console.print(
            "sandbox: the business has turned history sharing [bold]off[/bold] in the app"
        )
    else:
        console.print(
            f"sandbox: {plan.total_messages} messages in {plan.total_chunks} chunks "
            f"(phases {'/'.join(str(n) for n in plan.phase_chunks)}), "
            f"{contacts_expected} contacts, {DEMO_ECHOES} echoes, once the syncs are accepted"
        )
    signup_auth = {"Authorization": f"Bearer {settings.signup_token.get_secret_value()}"}
    admin_auth = {"Authorization": f"Bearer {settings.admin_token.get_secret_value()}"}
    with httpx.Client(base_url=web_url, timeout=30, trust_env=False) as client:
        response = client.post(
            "/signup",
            json={"code": signup.code, "session": dict(signup.session)},
            headers=signup_auth,
        )
        response.raise_for_status()
        onboarding_id = response.json()["onboarding_id"]
        console.print(f"POST /signup → {response.status_code}, onboarding {onboarding_id}")

        def fetch() -> dict[str, Any]:
            answer = client.get(f"/onboardings/{onboarding_id}", headers=admin_auth)
            answer.raise_for_status()
            detail: dict[str, Any] = answer.json()
            return detail

        watch = _follow(console, fetch, dispatcher, plan, contacts_expected, scenario)
    per_phase = _ledger(rt, onboarding_id)
    summary = summarize(
        watch.detail,
        per_phase=per_phase,
        plan=plan,
        planned_contacts=contacts_expected,
        dispatcher_stats=dispatcher.stats(),
        expected_state=scenario.expected_state,
        expected_history=scenario.expected_history,
        timed_out=watch.timed_out,
        seconds=round(time.monotonic() - started, 2),
    )
    syncs = [s.to_dict() for s in sandbox.accepted_syncs()]
    return DemoResult(
        onboarding=watch.detail,
        accepted_syncs=syncs,
        register_calls=sandbox.call_counts().get("register", 0),
        seconds=0.0,
        summary=summary,
    )


def _finished(detail: Mapping[str, Any], idle: bool) -> bool:
    """Whether nothing more will happen: history ended, deliveries done, no media awaited."""
    if detail["state"] in GAVE_UP:
        return True
    syncs = detail["sync"]
    return (
        idle
        and syncs["contacts"]["state"] in SETTLED
        and syncs["history"]["state"] in HISTORY_ENDED
        and detail["counts"]["media_awaiting"] == 0
    )


def _follow(
    console: Console,
    fetch: Callable[[], dict[str, Any]],
    dispatcher: WebhookDispatcher,
    plan: HistoryPlan,
    contacts_expected: int,
    scenario: _Scenario,
) -> _Watch:
    """Poll the status API, drive the beat jobs in-process and draw progress until done."""
    bars = _Bars(console, plan, contacts_expected, declined=scenario.declined)
    deadline = time.monotonic() + scenario.timeout
    next_beat = time.monotonic() + SWEEP_EVERY
    with bars:
        while True:
            idle = bool(dispatcher.stats()["idle"])
            detail = fetch()
            bars.update(detail, dispatcher.stats())
            if _finished(detail, idle):
                return _Watch(detail)
            if time.monotonic() > deadline:
                return _Watch(detail, timed_out=True)
            time.sleep(POLL_SECONDS)
            if time.monotonic() >= next_beat:
                next_beat = time.monotonic() + SWEEP_EVERY
                sweep.delay()  # the beat job, in-process: fires syncs whose backoff has passed
                if idle:
                    watchdog.delay()  # and downloads media a failed attempt left for later


class _Bars:
    """Rich progress bars: contacts, each history phase's chunks, media downloads."""

    def __init__(
        self, console: Console, plan: HistoryPlan, contacts: int, *, declined: bool
    ) -> None:
        self._declined = declined
        self._progress = Progress(
            TextColumn("{task.description}", table_column=Column(width=15, no_wrap=True)),
            BarColumn(bar_width=24),
            MofNCompleteColumn(table_column=Column(width=9, no_wrap=True)),
            TextColumn(
                "{task.fields[note]}",
                table_column=Column(max_width=34, no_wrap=True, overflow="ellipsis"),
            ),
            TimeElapsedColumn(),
            console=console,
        )
        self._contacts = self._progress.add_task("contacts", total=contacts, note="")
        self._phases: dict[int, TaskID] = {}
        if declined:
            self._history = self._progress.add_task("history", total=1, note="waiting")
        else:
            for phase in PHASES:
                self._phases[phase] = self._progress.add_task(
                    f"history phase {phase}", total=plan.phase_chunks[phase], note="chunks"
                )
        self._media = self._progress.add_task("media", total=0, note="downloads")
        self._status = self._progress.add_task("webhooks", total=None, note="")

    def __enter__(self) -> _Bars:
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()

    def update(self, detail: Mapping[str, Any], stats: Mapping[str, Any]) -> None:
        """Redraw from the status API's ``detail`` and the dispatcher's ``stats``."""
        counts = detail["counts"]
        history = detail["sync"]["history"]
        progress = self._progress
        progress.update(self._contacts, completed=counts["contacts"] + counts["contacts_removed"])
        if self._declined:
            ended = history["state"] == SyncState.DECLINED
            progress.update(self._history, completed=int(ended), note=history["state"])
        else:
            phases = history.get("phases") or {}
            for phase, task in self._phases.items():
                received = len(phases.get(str(phase), {}).get("received", []))
                progress.update(task, completed=received)
        settled = counts["media_stored"] + counts["media_expired"] + counts["media_failed"]
        progress.update(
            self._media,
            total=settled + counts["media_awaiting"],
            completed=settled,
            note=f"stored, {counts['media_skipped_too_old']} too old",
        )
        progress.update(
            self._status,
            completed=int(stats["delivered"]),
            note=f"{stats['failed']} given up · {detail['state']}",
        )


def _ledger(rt: Runtime, onboarding_id: int) -> dict[int, tuple[int, list[int]]]:
    """Per phase, from the ``history_chunks`` ledger: messages stored and chunk_orders seen."""
    with rt.db.sessionmaker() as session:
        rows = session.execute(
            select(HistoryChunk.phase, HistoryChunk.chunk_order, HistoryChunk.messages)
            .where(HistoryChunk.onboarding_id == onboarding_id)
            .order_by(HistoryChunk.phase, HistoryChunk.chunk_order)
        ).all()
    out: dict[int, tuple[int, list[int]]] = {}
    for phase, chunk_order, messages in rows:
        stored, orders = out.get(phase, (0, []))
        out[phase] = (stored + messages, [*orders, chunk_order])
    return out


def summarize(
    detail: Mapping[str, Any],
    *,
    per_phase: Mapping[int, tuple[int, list[int]]],
    plan: HistoryPlan,
    planned_contacts: int,
    dispatcher_stats: Mapping[str, Any],
    expected_state: str,
    expected_history: str,
    timed_out: bool,
    seconds: float,
) -> DemoSummary:
    """Fold the final status, the ledger and the sandbox's plan into a :class:`DemoSummary`.

    The expected end: the onboarding in ``expected_state``, the history sync in
    ``expected_history``, the contacts sync accepted, every planned chunk and contact stored,
    no media awaiting download and no delivery given up, before the timeout.
    """
    counts = detail["counts"]
    history_state = detail["sync"]["history"]["state"]
    declined = history_state == SyncState.DECLINED
    phases = []
    for phase in PHASES:
        stored, orders = per_phase.get(phase, (0, []))
        expected = 0 if declined else plan.phase_chunks[phase]
        missing = sorted(set(range(1, expected + 1)) - set(orders))
        phases.append(PhaseSummary(phase, expected, len(orders), stored, tuple(missing)))
    problems = []
    if timed_out:
        problems.append("timed out before the flow ended")
    if detail["state"] != expected_state:
        problems.append(f"onboarding ended {detail['state']}, expected {expected_state}")
    if history_state != expected_history:
        problems.append(f"history sync ended {history_state}, expected {expected_history}")
    contacts_state = detail["sync"]["contacts"]["state"]
    if contacts_state != SyncState.REQUESTED:
        problems.append(f"contacts sync ended {contacts_state}, expected requested")
    stored_contacts = counts["contacts"] + counts["contacts_removed"]
    if stored_contacts < planned_contacts:
        problems.append(f"{stored_contacts} of the {planned_contacts} contacts stored")
    if any(p.missing for p in phases):
        gaps = {p.phase: list(p.missing) for p in phases if p.missing}
        problems.append(f"history chunks never received: {gaps}")
    if counts["media_awaiting"]:
        problems.append(f"{counts['media_awaiting']} media still awaiting download")
    if dispatcher_stats["failed"]:
        problems.append(f"{dispatcher_stats['failed']} webhook deliveries given up by Meta")
    return DemoSummary(
        expected_state=expected_state,
        onboarding_state=detail["state"],
        contacts_sync=detail["sync"]["contacts"]["state"],
        history_sync=history_state,
        timed_out=timed_out,
        problems=tuple(problems),
        contacts=counts["contacts"],
        contacts_removed=counts["contacts_removed"],
        threads=counts["threads"],
        phases=tuple(phases),
        messages_total=counts["messages"],
        messages_inbound=counts["messages_inbound"],
        messages_outbound=counts["messages_outbound"],
        app_echoes=counts["app_echoes"],
        planned_messages=0 if declined else plan.total_messages,
        media_stored=counts["media_stored"],
        media_skipped_too_old=counts["media_skipped_too_old"],
        media_awaiting=counts["media_awaiting"],
        media_expired=counts["media_expired"],
        media_failed=counts["media_failed"],
        dropped_out_of_window=counts["dropped_out_of_window"],
        dropped_group=counts["dropped_group"],
        webhooks_delivered=int(dispatcher_stats["delivered"]),
        webhooks_failed=int(dispatcher_stats["failed"]),
        sync_window_seconds_left=int(detail["sync_window_seconds_left"]),
        seconds=seconds,
    )


def summary_table(summary: DemoSummary) -> Table:
    """The summary as a two-column table, for ``coexist demo``."""
    title = "history declined by the business" if summary.declined else "what came in"
    table = Table("", "", title=title, show_header=False)
    outcome = f"[green]{summary.onboarding_state}[/green]"
    if not summary.ok:
        outcome = f"[red]{summary.onboarding_state}[/red] (expected {summary.expected_state})"
    table.add_row("onboarding", outcome)
    table.add_row("syncs", f"contacts {summary.contacts_sync}, history {summary.history_sync}")
    table.add_row("contacts", f"{summary.contacts} ({summary.contacts_removed} removed)")
    table.add_row("threads", str(summary.threads))
    if summary.declined:
        table.add_row("history", "none: sharing turned off in the Business app (2593109)")
    for p in summary.phases:
        if summary.declined:
            break
        table.add_row(
            f"messages phase {p.phase}",
            f"{p.messages} ({p.chunks_received}/{p.chunks_expected} chunks)",
        )
    table.add_row(
        "messages",
        f"{summary.messages_total} ({summary.messages_history} from history, "
        f"{summary.messages_inbound} in, {summary.messages_outbound} out, "
        f"{summary.app_echoes} app echoes)",
    )
    table.add_row(
        "media",
        f"{summary.media_stored} stored, {summary.media_skipped_too_old} skipped (too old), "
        f"{summary.media_awaiting} awaiting, {summary.media_expired} expired, "
        f"{summary.media_failed} failed",
    )
    table.add_row(
        "dropped",
        f"{summary.dropped_out_of_window} older than 180 days, "
        f"{summary.dropped_group} in group chats",
    )
    gaps = summary.gaps
    table.add_row("gaps", ", ".join(f"phase {k}: {v}" for k, v in gaps.items()) or "none")
    table.add_row(
        "webhooks",
        f"{summary.webhooks_delivered} delivered, {summary.webhooks_failed} given up",
    )
    left = summary.sync_window_seconds_left
    table.add_row("24 h window left", f"{left // 3600} h {left % 3600 // 60:02d} min")
    table.add_row("elapsed", f"{summary.seconds} s" + (" (timed out)" if summary.timed_out else ""))
    for problem in summary.problems:
        table.add_row("[red]problem[/red]", problem)
    return table
