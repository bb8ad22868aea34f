"""``coexist demo``: a whole onboarding against the built-in Meta sandbox, in one process.

* :mod:`.run` — the scenario: sandbox, web app and eager tasks wired together, the signup, the
  wait for syncs and webhooks;
* :mod:`.servers` — the web app on a loopback port, in a thread;
* :mod:`.progress` — the progress bars;
* :mod:`.summary` — what the onboarding ended with (typed counts) and its table.
"""
