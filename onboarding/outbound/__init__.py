"""Messages sent from the business's number through the Cloud API.

* :mod:`.payload` — what may be sent: the payload checked, and the one builder of the
  ``/messages`` body;
* :mod:`.ledger` — the idempotency ledger, its Redis and local twins side by side;
* :mod:`.throttle` — the per-number token bucket (Meta's 20 messages/s for coexistence numbers);
* :mod:`.guard` — the throttle and ledger a process sends with, built once per runtime;
* :mod:`.send` — the send step: the account's state, the Graph call, Meta's answers, the
  recorded row.
"""
