"""Reconciliation: re-reading from Meta what a missed webhook would have told us.

Webhooks can be missed (an outage longer than Meta's 7 days of retries, a subscription
removed elsewhere). Once a day per active onboarding, coexist re-reads the number's
``is_on_biz_app``/``platform_type``, the app's subscription and override on the WABA, and
whether the business token still works; it notes differences on the timeline and alerts when
one matters. An uncertain answer never changes anything (docs/meta.md#119-debug_token).

``checks`` holds the three reads and their verdicts; ``run`` records them, one onboarding per
transaction, in bounded batches.
"""

from onboarding.reconcile.checks import Finding, Verdict
from onboarding.reconcile.run import Report, active, batches, due, reconcile, reconcile_batch

__all__ = [
    "Finding",
    "Report",
    "Verdict",
    "active",
    "batches",
    "due",
    "reconcile",
    "reconcile_batch",
]
