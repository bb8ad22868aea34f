"""The one-shot ``smb_app_data`` calls for contacts and history, inside the 24-hour window.

* :mod:`.states` — the sync request's state machine, the one writer of ``SyncRequest.state``;
* :mod:`.trigger` — request each sync once (intent recorded before the call, lost answers
  probed), and move the onboarding as its syncs settle;
* :mod:`.sweep` — the beat sweep that re-fires stalled steps, alerts near the deadline and
  closes missed windows;
* :mod:`.retry` — what an operator may safely resume (``coexist onboardings retry``).
"""
