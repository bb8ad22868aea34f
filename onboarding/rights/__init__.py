"""The business's rights over what coexist holds for one onboarding.

* :mod:`.export` — everything held for one onboarding, written as one zip archive as it is
  read (messages, contacts, peers, media with their sha256 sums, timeline, follow-ups, alerts
  and a manifest of counts); memory stays flat whatever the size.

Erasure comes later, beside it.
"""
