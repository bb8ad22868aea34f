"""The relay: Meta's deliveries passed on, unchanged, to the provider's own webhook receiver.

When coexist owns the Meta app's callback (``COEX_RELAY_URL`` set), every stored delivery whose
fields are chosen (``COEX_RELAY_FIELDS``) is forwarded in order of receipt, at least once, with
its raw bytes, Meta's ``X-Hub-Signature-256`` and its ``Content-Type``, so the receiver checks it
with the app secret as if Meta had sent it.

* :mod:`.log` — the inbox read in ``(writing transaction, id)`` order below the oldest running
  transaction, so a batch that commits late is never passed over;
* :mod:`.receiver` — the one HTTP ``POST`` to the provider's receiver;
* :mod:`.run` — the cursor (``feed_cursors`` row ``relay``), retries with backoff, the failing
  state and its operator alert, one process at a time.
"""
