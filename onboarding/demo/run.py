"""``coexist demo``: the whole onboarding, in one process, against the built-in Meta sandbox.

It starts the sandbox and the web app on loopback ports, seeds a business whose number runs
the WhatsApp Business app, plays the customer's browser (Embedded Signup finished with
"connect my existing app"), posts the hand-off to ``POST /signup`` and lets the tasks run
in-process (``COEX_TASKS_EAGER``) on SQLite. Before the syncs are triggered, the sandbox is
told to deliver Meta's webhooks to the web app's ``POST /webhooks/meta`` once each sync is
accepted: the contacts, the chat history in three phases of shuffled and partly duplicated
chunks, the late-media webhooks of the last 14 days and a few app echoes, generated from a
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

import base64
import secrets
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Final

import httpx
from pydantic import SecretStr
from rich.console import Console

from config import Settings, get_settings
from config.logging import configure_logging
from models import OnboardingState, SyncState
from models.crypto import TokenCipher
from onboarding import runtime as runtime_module
from onboarding.demo.follow_ups import BusinessFollowUps, run_beat_follow_ups
from onboarding.demo.progress import ProgressBars
from onboarding.demo.receiver import FeedReceiver, serve_receiver
from onboarding.demo.servers import serve
from onboarding.demo.summary import DemoSummary, ledger, summarize
from onboarding.feed import push as feed_push
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
from tasks.feed import push as push_feed
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
"""Seconds between in-process runs of the beat jobs (sync sweeper, feed push, ingest watchdog)."""


@dataclass
class DemoResult:
    """The onboarding's final detail, the sandbox's view of it, and the summary."""

    onboarding: dict[str, Any]
    accepted_syncs: list[dict[str, Any]]
    register_calls: int
    seconds: float
    summary: DemoSummary
    #: What the provider's app (the demo's feed receiver) took: events by type, messages,
    #: signatures verified (:class:`~onboarding.demo.receiver.Received`).
    feed: dict[str, Any] | None = None
    #: What the business is told and when: the follow-ups beat scheduled at the end.
    follow_ups: BusinessFollowUps | None = None

    @property
    def problems(self) -> list[str]:
        """Why the flow did not end as expected: the onboarding's, then the feed's."""
        problems = list(self.summary.problems)
        feed = self.feed or {}
        if feed.get("left_undelivered"):
            problems.append(f"{feed['left_undelivered']} feed events were never delivered")
        if feed.get("refused") or feed.get("out_of_order"):
            problems.append("the provider's app refused or reordered feed events")
        return problems

    @property
    def ok(self) -> bool:
        """Whether the flow reached its expected end state and the feed reached the provider."""
        return not self.problems


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

    Threads and contacts grow with the size, and about a third of the users adopted a
    username (some then known by BSUID alone); everything else is the profile's defaults:
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
        # More username adopters than Meta's likely share, so the demo shows peers known by
        # BSUID alone, and some joined to their number later.
        adopter_share=0.35,
    )


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
            "media_store": str(workdir / "media"),  # the demo keeps its media in its workdir
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
        secret = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
        with SandboxServer(sandbox) as sandbox_server, serve_receiver(secret) as provider:
            receiver_url, receiver = provider
            settings = settings.model_copy(
                update={
                    "meta_graph_url": sandbox_server.url,
                    "feed_webhook_url": receiver_url,
                    "feed_webhook_secret": SecretStr(secret),
                }
            )
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
                with serve(create_app(rt)) as web_url:
                    try:
                        result = _drive(console, sandbox, rt, web_url, scenario, started)
                    finally:
                        sandbox.disable_webhooks()
                result.feed = _pushed(rt, receiver)
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
        f"browser: Embedded Signup v{signup.session.get('version', 4)} finished "
        f"({signup.session['event']}), code valid for 30 s"
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
        follow_ups = run_beat_follow_ups(rt, onboarding_id)
        final = fetch()
    per_phase = ledger(rt, onboarding_id)
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
        onboarding=final,
        accepted_syncs=syncs,
        register_calls=sandbox.call_counts().get("register", 0),
        seconds=0.0,
        summary=summary,
        follow_ups=follow_ups,
    )


def _pushed(rt: Runtime, receiver: FeedReceiver, timeout: float = 30.0) -> dict[str, Any]:
    """Push the rest of the feed to the provider's app (as beat would), then what it took."""
    deadline = time.monotonic() + timeout
    lag = None
    while time.monotonic() < deadline:
        push_feed.delay()
        with rt.db.sessionmaker() as session:
            lag = feed_push.status(session, rt.settings)["lag_events"]
        if lag == 0:
            break
        time.sleep(POLL_SECONDS)
    return {**receiver.received.to_dict(), "left_undelivered": lag}


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
    bars = ProgressBars(console, plan, contacts_expected, declined=scenario.declined)
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
                push_feed.delay()  # and pushes the feed, when COEX_FEED_WEBHOOK_URL is set
                if idle:
                    watchdog.delay()  # and downloads media a failed attempt left for later
