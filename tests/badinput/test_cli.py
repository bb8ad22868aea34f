"""CLI arguments that are wrong: exit 2 for usage errors, 1 for refusals, with a message."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from models import InboxDelivery, Onboarding
from onboarding.cli import app
from onboarding.runtime import Runtime
from tests.badinput.conftest import count

runner = CliRunner()

USAGE = [
    pytest.param(["onboardings", "list", "--state", "nope"], "nope", id="unknown-state"),
    pytest.param(["onboardings", "list", "--state", "SYNCING"], "SYNCING", id="state-case"),
    pytest.param(["onboardings", "list", "--state", "sync\x00ing"], "unknown state", id="nul"),
    pytest.param(["onboardings", "list", "--limit", "0"], "limit", id="limit-zero"),
    pytest.param(["onboardings", "list", "--limit", "10001"], "limit", id="limit-too-big"),
    pytest.param(["onboardings", "list", "--limit", "ten"], "limit", id="limit-word"),
    pytest.param(["onboardings", "list", "--limit", "-1"], "limit", id="limit-negative"),
    pytest.param(["onboardings", "show", "abc"], "ONBOARDING_ID", id="show-word"),
    pytest.param(["onboardings", "show", "1.5"], "ONBOARDING_ID", id="show-float"),
    pytest.param(["onboardings", "show"], "ONBOARDING_ID", id="show-missing-id"),
    pytest.param(["onboardings", "show", "1", "--bogus"], "--bogus", id="unknown-option"),
    pytest.param(["onboardings", "retry", "\uff11\uff12"], "ONBOARDING_ID", id="retry-fullwidth"),
    pytest.param(["inbox", "list", "--status", "exploded"], "exploded", id="inbox-status"),
    pytest.param(["inbox", "replay"], "--status", id="replay-nothing"),
    pytest.param(["inbox", "replay", "1", "--status", "pending"], "--status", id="replay-both"),
    pytest.param(
        ["inbox", "replay", "--status", "\u00fcnknown"], "\u00fcnknown", id="replay-status"
    ),
    pytest.param(["alerts", "list", "--onboarding", "x"], "onboarding", id="alerts-word"),
    pytest.param(["follow-ups", "ack", "one"], "FOLLOW_UP_ID", id="ack-word"),
    pytest.param(["follow-ups", "list", "--limit", "0"], "limit", id="followups-limit"),
    pytest.param(["no-such-command"], "no-such-command", id="unknown-command"),
    pytest.param(["sandbox", "--port", "70000"], "port", id="port-out-of-range"),
    pytest.param(["demo", "--messages", "0"], "messages", id="demo-zero-messages"),
]


@pytest.mark.parametrize(("argv", "mentions"), USAGE)
def test_bad_arguments_exit_2_with_a_message(rt: Runtime, argv: list[str], mentions: str) -> None:
    """A malformed argument or option is a usage error (exit 2) that says what was wrong."""
    result = runner.invoke(app, argv)
    assert result.exit_code == 2, result.output
    assert mentions.lower() in result.output.lower(), result.output
    assert count(rt, Onboarding) == 0
    assert count(rt, InboxDelivery) == 0


REFUSALS = [
    pytest.param(["onboardings", "show", "999"], "no onboarding 999", id="show-missing"),
    pytest.param(["onboardings", "show", "0"], "no onboarding 0", id="show-zero"),
    pytest.param(["onboardings", "retry", "999"], "999", id="retry-missing"),
    pytest.param(["inbox", "replay", "999"], "no delivery 999", id="replay-missing"),
    pytest.param(["follow-ups", "ack", "999"], "999", id="ack-missing"),
]


@pytest.mark.parametrize(("argv", "mentions"), REFUSALS)
def test_refusals_exit_1_with_a_message(rt: Runtime, argv: list[str], mentions: str) -> None:
    """A well-formed command about something that does not exist is refused with exit 1."""
    result = runner.invoke(app, argv)
    assert result.exit_code == 1, result.output
    assert "error" in result.output.lower()
    assert mentions in result.output
    assert count(rt, Onboarding) == 0
    assert count(rt, InboxDelivery) == 0
