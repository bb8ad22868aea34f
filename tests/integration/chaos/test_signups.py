"""Signups during a broker outage: every ``202`` gets its code exchanged within the code's life.

The code of a finished Embedded Signup dies 30 s after signup. ``POST /signup`` stores the
onboarding before it answers ``202`` and enqueues the exchange after the commit; while Redis
is down that enqueue fails, and a Redis without persistence that is killed loses the messages
it held. Beat's ``coexist.signup.resume`` (every 5 s) enqueues the exchange of every received
signup again that has not started 5 s after signup. Here beat runs for real, as in production.
"""

from __future__ import annotations

import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from benchmarks._harness import CoexistApi, StackConfig, poll_until
from models import OnboardingState
from onboarding.sandbox import FaultRule, Faults, Sandbox, SandboxServer, SignupResult
from tests.integration._flow import finished_signup
from tests.integration.chaos._report import figures, log_events
from tests.integration.chaos._stack import private_stack

pytestmark = [pytest.mark.integration, pytest.mark.chaos]

SIGNUPS = 30
#: One signup posted every this many seconds: the burst spans the outage.
SIGNUP_PACE = 0.1
#: Redis is killed once this many signups have been answered, and stays down this long.
KILL_AFTER = 8
REDIS_DOWN_SECONDS = 2.0
#: Each code exchange takes this long at Meta, so that exchanges are under way when Redis dies.
SLOW_EXCHANGE = Faults(rules={"oauth": FaultRule(latency_ms=300)}, seed=1)
#: The code's life: every exchange must have happened by then.
CODE_TTL = 30.0
EXCHANGED = {
    s.value
    for s in OnboardingState
    if s not in (OnboardingState.RECEIVED, OnboardingState.CODE_EXPIRED)
}


class Burst:
    """Posts the signups from a few threads, one every ``pace`` seconds, and keeps the answers."""

    def __init__(self, api: CoexistApi, signups: list[SignupResult], pace: float) -> None:
        #: (posted at, seconds to answer, status, body) per signup.
        self.answers: list[tuple[float, float, int, Any]] = []
        self._lock = threading.Lock()
        self._api = api
        self._signups = signups
        self._pace = pace
        self._thread = threading.Thread(target=self._run, name="signup-burst", daemon=True)

    def _post(self, signup: SignupResult) -> None:
        posted = time.monotonic()
        response = self._api.post_signup(signup.session, signup.code)
        took = time.monotonic() - posted
        with self._lock:
            self.answers.append((posted, took, response.status_code, response.json()))

    def _run(self) -> None:
        with ThreadPoolExecutor(max_workers=4) as pool:
            for signup in self._signups:
                pool.submit(self._post, signup)
                time.sleep(self._pace)

    def __enter__(self) -> Burst:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._thread.join(30.0)

    def answered(self) -> int:
        with self._lock:
            return len(self.answers)


def exchanged_after(detail: dict[str, Any]) -> float | None:
    """Seconds from signup to the code exchange, from the onboarding's timeline."""
    started = datetime.fromisoformat(detail["signup_completed_at"])
    for step in detail["timeline"]:
        if step["to"] == OnboardingState.TOKEN_EXCHANGED.value:
            return (datetime.fromisoformat(step["at"]) - started).total_seconds()
    return None


def test_signups_accepted_while_redis_is_down_are_all_exchanged_in_time(
    sandbox: Sandbox, stack_config: StackConfig, sandbox_server: SandboxServer, tmp_path: Path
) -> None:
    """Redis killed for 2 s during a burst of 30 signups, exchanges under way: each ends
    token_exchanged or later (an exchange is never cut off after Meta took its code)."""
    began = time.monotonic()
    signups = [finished_signup(sandbox) for _ in range(SIGNUPS)]
    sandbox.set_faults(SLOW_EXCHANGE)
    with private_stack(
        stack_config, sandbox_server.url, tmp_path, overrides={}, beat=True
    ) as stack:
        with Burst(stack.api, signups, SIGNUP_PACE) as burst:
            poll_until(burst.answered, lambda n: n >= KILL_AFTER, what="signups", timeout=20)
            killed = time.monotonic()
            stack.redis.kill()
            time.sleep(REDIS_DOWN_SECONDS)
            restarted = time.monotonic()
            stack.redis.start()
        ids = [body["onboarding_id"] for *_, status, body in burst.answers if status == 202]
        during = [took for at, took, *_ in burst.answers if killed <= at < restarted]

        def states() -> dict[int, str]:
            return {i: stack.api.onboarding(i)["state"] for i in ids}

        ended = poll_until(
            states,
            lambda now: OnboardingState.RECEIVED.value not in now.values(),
            what="every signup's code exchanged or expired",
            timeout=CODE_TTL + 10,
            interval=0.5,
        )
        details = [stack.api.onboarding(i) for i in ids]
        enqueue_failures = log_events(stack.workers["web"], "enqueue_failed")

    assert sorted(status for *_, status, _ in burst.answers) == [202] * SIGNUPS
    assert len(during) >= 10, f"only {len(during)} signups were posted while Redis was down"
    assert set(ended.values()) <= EXCHANGED, ended
    delays = sorted(d for d in map(exchanged_after, details) if d is not None)
    assert len(delays) == SIGNUPS
    assert delays[-1] < CODE_TTL
    figures(
        "signups_redis_outage",
        signups=SIGNUPS,
        posted_while_redis_down=len(during),
        answer_seconds_while_redis_down_max=round(max(during), 3),
        redis_down_seconds=round(restarted - killed, 2),
        enqueue_failures_logged_by_web=enqueue_failures,
        exchanged=len(delays),
        signup_to_token_seconds_median=round(statistics.median(delays), 2),
        signup_to_token_seconds_max=round(delays[-1], 2),
        states=sorted(set(ended.values())),
        test_seconds=round(time.monotonic() - began, 1),
    )
