"""Everything Meta pushes, from the signed delivery to the rows an operator reads.

* :mod:`.inbox` — the receiver's side: signatures, raw deliveries committed before ``200``;
* :mod:`.dispatch` — a stored delivery parsed, routed by ``field`` to its handler, re-dispatched
  when stale, waiting for its onboarding, or replayed by an operator;
* :mod:`.batches` — a task's plain live traffic merged per onboarded number and handled in one
  pass, the rest through dispatch one by one;
* :mod:`.retention` — the raw bodies of old processed deliveries dropped (never one replay or
  the relay still needs);
* :mod:`.rows` — one message object as a storable row; the context and tally every handler
  shares;
* :mod:`.history` — ``history``: chunks, their ledger, the sync's progress and the declined error;
* :mod:`.late_media` — the later webhooks that carry a history media message's media id;
* :mod:`.windows` — the history window and the media cut-off applied to late media;
* :mod:`.dropped` — messages not kept (group chats, older than the window), whichever of chunk
  and media comes first;
* :mod:`.contacts` — ``smb_app_state_sync``: contacts, last write wins;
* :mod:`.messages` — ``smb_message_echoes`` (the business's app messages) and ``messages``
  (users' edits and revokes);
* :mod:`.changes` — edits and revokes (users' and the business's) applied by their own time, kept
  until their message comes;
* :mod:`.stalled` — the watchdog for history syncs Meta never started;
* :mod:`.media` — media downloads by content hash, bounded attempts, the 7-day life of media ids;
* :mod:`.lifecycle` — ``account_update`` moving the onboarding (disconnected, reconnecting,
  paused, restricted), and recording those for WABAs coexist does not onboard.
"""
