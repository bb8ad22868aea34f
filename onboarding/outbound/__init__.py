"""Messages sent from the business's number through the Cloud API.

* :mod:`.send` — payload validation, the idempotency ledger (Redis and local twins) and the send
  step, which records what was sent;
* :mod:`.throttle` — the per-number token bucket (Meta's 20 messages/s for coexistence numbers).
"""
