"""Queue ``relay``: forward stored Meta deliveries to the provider's receiver (beat, every 1 s)."""

from __future__ import annotations

from onboarding.relay import run as relay
from onboarding.runtime import current
from tasks.base import coexist_task

#: A run stops taking new steps after this long, well inside the soft time limit.
RUN_BUDGET_SECONDS = 40.0


@coexist_task("coexist.relay.forward", soft_time_limit=55, time_limit=60, max_retries=0)
def forward() -> None:
    """Forward every delivery that is due, in order, from the relay's cursor (one run at once)."""
    rt = current()
    receiver = rt.receiver
    if receiver is None:  # COEX_RELAY_URL is empty: no relay
        return
    with rt.db.session() as session:
        relay.run(session, receiver, rt.settings, budget_seconds=RUN_BUDGET_SECONDS)
