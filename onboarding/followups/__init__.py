"""Reminders to the business and alerts to operators, each sent once.

* :mod:`.rules` — Meta's coexistence rules the reminders are about (which companions work, the
  days before an idle number is disconnected), stated once;
* :mod:`.schedule` — what is due when (companion relink, app-open heartbeat, alerts), and
  acknowledgements;
* :mod:`.render` — what a follow-up says, rendered once for every channel;
* :mod:`.channels` — where it goes: log, signed webhook, WhatsApp template;
* :mod:`.wiring` — the channels ``COEX_NOTIFY_CHANNELS`` names, built from the settings;
* :mod:`.notifier` — each (follow-up, channel) notification recorded before it is sent, and
  its state machine.
"""
