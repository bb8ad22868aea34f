"""``coexist events tail``: the feed in a terminal, as JSON lines or one line per event."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from onboarding.cli import app
from onboarding.feed import tail
from onboarding.feed.events import EventType
from onboarding.feed.log import Cursor, latest, read
from onboarding.runtime import Runtime
from onboarding.states import raise_alert
from tests.onboarding.deliveries import Business

runner = CliRunner()


def feed(rt: Runtime) -> list[dict[str, object]]:
    with rt.db.sessionmaker() as session:
        return read(session, Cursor(), 1000).events


def test_json_prints_every_envelope_in_feed_order(rt: Runtime, business: Business) -> None:
    """--json prints one envelope per line, the same events in the same order as the feed."""
    result = runner.invoke(app, ["events", "tail", "--json", "--limit", "1000"])
    assert result.exit_code == 0, result.output
    printed = [json.loads(line) for line in result.stdout.splitlines()]
    assert printed == feed(rt)
    assert f"next cursor: {printed[-1]['cursor']}" in result.stderr


def test_the_human_form_is_one_line_per_event(rt: Runtime, business: Business) -> None:
    """Without --json each event is one line naming its cursor, type and onboarding."""
    result = runner.invoke(app, ["events", "tail"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    told = feed(rt)
    assert len(lines) == len(told)
    for line, event in zip(lines, told, strict=True):
        assert str(event["cursor"]) in line
        assert str(event["type"]) in line
        assert f"  {business.onboarding_id}  " in line


def test_type_onboarding_after_and_limit_narrow_the_output(rt: Runtime, business: Business) -> None:
    """--type keeps those types, --onboarding that onboarding's, --after what follows a
    cursor, --limit that many."""
    told = feed(rt)
    result = runner.invoke(
        app,
        [
            "events",
            "tail",
            "--json",
            "--type",
            EventType.SYNC_REQUESTED.value,
            "--onboarding",
            str(business.onboarding_id),
        ],
    )
    assert result.exit_code == 0, result.output
    types = {json.loads(line)["type"] for line in result.stdout.splitlines()}
    assert types == {EventType.SYNC_REQUESTED.value}
    result = runner.invoke(
        app, ["events", "tail", "--json", "--after", str(told[0]["cursor"]), "--limit", "2"]
    )
    assert [json.loads(line)["id"] for line in result.stdout.splitlines()] == [
        told[1]["id"],
        told[2]["id"],
    ]
    result = runner.invoke(
        app, ["events", "tail", "--json", "--onboarding", str(business.onboarding_id + 1)]
    )
    assert result.stdout == ""


def test_bad_arguments_are_usage_errors(rt: Runtime) -> None:
    """An unknown type, a cursor the feed did not hand out or a limit out of range exit 2."""
    result = runner.invoke(app, ["events", "tail", "--type", "message.sent"])
    assert result.exit_code == 2
    assert "messages.stored" in result.output
    result = runner.invoke(app, ["events", "tail", "--after", "yesterday"])
    assert result.exit_code == 2
    assert "not a feed cursor" in result.output
    for bad in (["--limit", "0"], ["--limit", "1001"], ["--onboarding", "0"]):
        assert runner.invoke(app, ["events", "tail", *bad]).exit_code == 2


def test_follow_starts_at_the_end_of_the_feed(rt: Runtime, business: Business) -> None:
    """--follow without --after prints only what comes after it started."""
    result = runner.invoke(app, ["events", "tail", "--follow", "--polls", "1", "--json"])
    assert result.exit_code == 0, result.output
    assert result.stdout == ""


def test_follow_reads_again_until_stopped(rt: Runtime, business: Business) -> None:
    """Following polls, and an event written between two reads comes out of the second."""
    with rt.db.sessionmaker() as session:
        start = latest(session)
    sleeps: list[float] = []

    def write_an_alert(seconds: float) -> None:
        sleeps.append(seconds)
        with rt.db.session() as session:
            raise_alert(session, business.onboarding_id, f"kind_{len(sleeps)}", "new")

    got = list(tail.follow(rt.db, start, limit=10, interval=0.5, polls=3, sleep=write_an_alert))
    assert [e["data"]["kind"] for e in got] == ["kind_1", "kind_2"]
    assert sleeps == [0.5, 0.5]
