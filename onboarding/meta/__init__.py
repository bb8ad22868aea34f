"""Meta's side of the wire: what coexist sends to the Graph API and how it reads what comes back.

* :mod:`.graph` — the one Graph API client (one ``httpx.Client``, one choke point, bounded quick
  retries) and the typed error tree keyed on Graph error codes;
* :mod:`.payloads` — webhook bodies decoded into storable values and split into changes.

Nothing here knows about onboardings, the database or Celery.
"""
