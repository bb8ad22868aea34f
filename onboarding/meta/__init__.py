"""Meta's side of the wire: what coexist sends to the Graph API and how it reads what comes back.

* :mod:`.graph` — the one Graph API client (one ``httpx.Client``, one choke point, bounded quick
  retries);
* :mod:`.errors` — the typed error tree the client raises, chosen by Meta's error ``code``;
* :mod:`.signatures` — the ``X-Hub-Signature-256`` of a webhook delivery and the
  ``appsecret_proof`` sent with Graph calls;
* :mod:`.subscriptions` — our app's subscription (and override) on a WABA, read from
  ``subscribed_apps``;
* :mod:`.payloads` — webhook bodies decoded into storable values and split into changes.

Nothing here knows about onboardings, the database or Celery. What coexist relies on about
Meta's platform is written down, with Meta's URLs, in ``docs/meta.md``.
"""
