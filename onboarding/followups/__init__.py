"""Reminders to the business and alerts to operators, each sent once.

* :mod:`.schedule` — what is due when (companion relink, app-open heartbeat, alerts), and
  acknowledgements;
* :mod:`.notifier` — rendering and the channels (log, signed webhook, WhatsApp template).
"""
