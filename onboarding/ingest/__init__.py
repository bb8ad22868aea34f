"""Everything Meta pushes, from the signed delivery to the rows an operator reads.

* :mod:`.inbox` — the receiver's side: signatures, raw deliveries committed before ``200``;
* :mod:`.dispatch` — a stored delivery parsed, routed by ``field`` to its handler, re-dispatched
  when stale or waiting for its onboarding;
* :mod:`.history` — history chunks (the phase and chunk ledger), contacts, app echoes, edits and
  revokes, the stalled-sync watchdog;
* :mod:`.media` — media downloads by content hash, bounded attempts, the 7-day life of media ids;
* :mod:`.lifecycle` — ``account_update`` moving the onboarding (disconnected, reconnecting,
  paused).
"""
