"""``coexist demo``: signup, trigger, contacts and history in, against the sandbox, on SQLite."""

from __future__ import annotations

import io
import json
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from config import Settings
from onboarding.cli import app
from onboarding.demo.run import DemoResult, demo_profile, run_demo
from onboarding.demo.summary import DemoSummary, summarize, summary_table
from onboarding.sandbox import HistoryPlan
from tests.conftest import make_settings

SMALL = 300
"""Messages in the tests' history: a few chunks per phase, a second or so per run."""


def _quiet() -> Console:
    return Console(file=io.StringIO(), width=120)


@pytest.fixture(scope="module")
def base_settings() -> Settings:
    """Explicit settings for the demo to derive its own from (it replaces database and secrets)."""
    return make_settings()


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder of the shared demo run: its SQLite database and downloaded media."""
    return tmp_path_factory.mktemp("demo")


@pytest.fixture(scope="module")
def normal(base_settings: Settings, workdir: Path) -> DemoResult:
    """One demo run whose business shares its history, shared by the tests that read it."""
    return run_demo(console=_quiet(), workdir=workdir, messages=SMALL, base_settings=base_settings)


def test_history_is_ingested_and_counts_add_up(normal: DemoResult) -> None:
    """Every planned history message is stored, dropped as too old or dropped as a group one."""
    summary = normal.summary
    assert summary.ok, summary.problems
    assert summary.history_sync == "completed"
    assert summary.onboarding_state == "synced"
    assert summary.messages_history > 0
    assert sum(p.messages for p in summary.phases) == summary.messages_history
    assert all(p.messages > 0 for p in summary.phases)
    assert (
        summary.messages_history + summary.dropped.out_of_window + summary.dropped.group
        == summary.messages.planned
        == SMALL
    )
    assert summary.messages.total >= summary.messages_history
    assert summary.messages.inbound + summary.messages.outbound == summary.messages.total
    assert summary.gaps == {}


def test_the_provider_app_receives_the_whole_feed_signed_and_in_order(
    normal: DemoResult,
) -> None:
    """The demo's stand-in for the provider's app gets every event pushed, each request
    verified by its Standard Webhooks signature, in feed order, with every stored message."""
    feed = normal.feed
    assert feed is not None
    assert feed["left_undelivered"] == 0
    assert feed["requests"] == feed["signatures_verified"] > 0
    assert (feed["refused"], feed["out_of_order"]) == (0, 0)
    assert feed["messages"] == normal.onboarding["counts"]["messages"]
    moves = [t for t in normal.onboarding["timeline"] if t["from"] != t["to"]]
    assert feed["events_by_type"]["onboarding.state_changed"] == len(moves)
    assert normal.ok


def test_media_of_every_age_is_settled(normal: DemoResult, workdir: Path) -> None:
    """Recent media is downloaded to the media folder, older media is skipped, none awaits."""
    summary = normal.summary
    assert summary.media.stored > 0
    assert summary.media.skipped_too_old > 0
    assert summary.media.awaiting == summary.media.failed == summary.media.expired == 0
    assert [f for f in (workdir / "media").rglob("*") if f.is_file()]


def test_each_sync_is_accepted_once_and_contacts_arrive(normal: DemoResult) -> None:
    """The sandbox accepted one sync per type, and every generated contact is stored."""
    per_type = Counter(s["sync_type"] for s in normal.accepted_syncs)
    assert per_type == {"smb_app_state_sync": 1, "history": 1}
    summary = normal.summary
    assert summary.contacts.active > 0
    assert summary.contacts.active + summary.contacts.removed == demo_profile(SMALL).contacts
    assert summary.messages.app_echoes > 0
    assert summary.webhooks.failed == 0
    assert 0 < summary.sync_window_seconds_left <= 24 * 3600


def test_the_business_is_told_to_relink_its_devices_at_once_then_after_one_and_three_days(
    normal: DemoResult,
) -> None:
    """Beat's follow-ups job, run in the demo, schedules the relink series from the signup and
    sends its first reminder, whose text tells the business how to link a device again."""
    told = normal.follow_ups
    assert told is not None
    relink = told.relink
    assert [r.step for r in relink] == [0, 1, 2]
    start = relink[0].due_at
    assert [r.due_at - start for r in relink] == [
        timedelta(0),
        timedelta(days=1),
        timedelta(days=3),
    ]
    assert (relink[0].status, relink[0].sent_on) == ("sent", ("log",))
    assert [r.status for r in relink[1:]] == ["scheduled", "scheduled"]
    assert told.first is not None
    assert told.first.kind == "companion_relink"
    assert told.first.simulated is False
    assert "Linked devices > Link a device" in told.first.text
    assert [f["kind"] for f in normal.onboarding["follow_ups"]].count("companion_relink") == 3


def test_the_business_is_told_to_open_the_app_ten_and_twelve_days_after_its_last_activity(
    normal: DemoResult,
) -> None:
    """The heartbeat reminders fall 10 and 12 days after the last app activity, and the first
    one's text is rendered on its due date, marked as a simulated passage of time."""
    told = normal.follow_ups
    assert told is not None
    last_activity = datetime.fromisoformat(normal.onboarding["last_app_activity_at"])
    assert [r.due_at - last_activity for r in told.heartbeat] == [
        timedelta(days=10),
        timedelta(days=12),
    ]
    assert all(r.status == "scheduled" for r in told.heartbeat)
    words = told.heartbeat_text
    assert words is not None
    assert words.simulated is True
    assert words.at == told.heartbeat[0].due_at
    assert "has not been opened for 10 days" in words.text
    assert "about 4 days left" in words.text


def test_declined_history_ends_history_declined(base_settings: Settings, tmp_path: Path) -> None:
    """A business that turned history sharing off ends `history_declined`, contacts still in."""
    result = run_demo(
        console=_quiet(),
        workdir=tmp_path,
        messages=SMALL,
        declined=True,
        base_settings=base_settings,
    )
    summary = result.summary
    assert summary.ok, summary.problems
    assert summary.declined
    assert summary.onboarding_state == "history_declined"
    assert summary.messages_history == 0
    assert summary.contacts.active > 0
    assert result.onboarding["alerts"][0]["kind"] == "history_declined"


PLAN = HistoryPlan(total_messages=30, beyond_window=0, phase_messages=(10, 10, 10), chunk_size=5)
"""Two chunks of five messages per phase."""


def _summary(
    *,
    contacts_state: str = "requested",
    contacts: int = 4,
    per_phase: dict[int, tuple[int, list[int]]] | None = None,
) -> DemoSummary:
    """The summary of a finished run: synced, history completed, four contacts planned."""
    counts = dict.fromkeys(
        (
            "contacts_removed",
            "threads",
            "messages",
            "messages_inbound",
            "messages_outbound",
            "app_echoes",
            "media_stored",
            "media_awaiting",
            "media_skipped_too_old",
            "media_expired",
            "media_failed",
            "dropped_out_of_window",
            "dropped_group",
        ),
        0,
    )
    counts["contacts"] = contacts
    detail = {
        "state": "synced",
        "sync": {"contacts": {"state": contacts_state}, "history": {"state": "completed"}},
        "counts": counts,
        "peers": {"total": 5, "with_phone": 3, "without_phone": 2, "with_username": 2},
        "sync_window_seconds_left": 86_000,
    }
    return summarize(
        detail,
        per_phase=per_phase or {0: (10, [1, 2]), 1: (10, [1, 2]), 2: (10, [1, 2])},
        plan=PLAN,
        planned_contacts=4,
        dispatcher_stats={"delivered": 12, "failed": 0},
        expected_state="synced",
        expected_history="completed",
        timed_out=False,
        seconds=1.0,
    )


def test_a_complete_run_has_no_problem() -> None:
    """Every planned chunk and contact stored, both syncs ended as expected: the demo passes."""
    summary = _summary()
    assert summary.ok
    assert summary.messages_history == 30
    assert summary.gaps == {}


def test_a_chunk_never_received_is_a_gap_and_a_failure() -> None:
    """A chunk_order the sandbox planned but coexist never recorded fails the demo."""
    summary = _summary(per_phase={0: (10, [1, 2]), 1: (5, [1]), 2: (10, [1, 2])})
    assert summary.gaps == {"1": [2]}
    assert summary.problems == ("history chunks never received: {1: [2]}",)


def test_a_contacts_sync_never_accepted_is_a_failure() -> None:
    """A synced onboarding whose contacts sync is still unknown, contacts missing, fails."""
    summary = _summary(contacts_state="unknown", contacts=0)
    assert summary.problems == (
        "contacts sync ended unknown, expected requested",
        "0 of the 4 contacts stored",
    )


def test_the_summary_counts_peers_with_and_without_a_phone_number() -> None:
    """The summary's JSON and table show peers with a number, BSUID only and with a username."""
    summary = _summary()
    assert summary.to_dict()["peers"] == {
        "total": 5,
        "with_phone": 3,
        "without_phone": 2,
        "with_username": 2,
    }
    console = Console(width=200, record=True)
    console.print(summary_table(summary))
    assert "5 (3 with a phone number, 2 BSUID only, 2 with a username)" in console.export_text()


def test_cli_demo_json_exits_zero() -> None:
    """`coexist demo --json --messages 300` prints the run and its summary, and exits 0."""
    result = CliRunner().invoke(app, ["demo", "--json", "--messages", str(SMALL)])
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)
    assert {"onboarding", "accepted_syncs", "register_calls", "seconds", "summary"} <= set(printed)
    follow_ups = printed["follow_ups"]
    assert [r["status"] for r in follow_ups["relink"]] == ["sent", "scheduled", "scheduled"]
    assert len(follow_ups["heartbeat"]) == 2
    assert follow_ups["first_reminder"]["subject"] == "Link your WhatsApp devices again"
    summary = printed["summary"]
    assert summary["ok"] is True
    assert summary["syncs"]["history"] == "completed"
    assert sum(summary["messages"]["per_phase"].values()) == summary["messages"]["history"]
