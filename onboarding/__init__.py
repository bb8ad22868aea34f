"""coexist's domain, one subpackage per area of the pipeline (arrows point one way:
entry points → ``tasks`` → these → ``models`` → ``config``).

=================  ==============================================================================
``meta/``          the Graph API client and its error tree, webhook payload decoding
``signup/``        signup intake, code exchange and hand-off, eligibility
``sync/``          the one-shot contacts and history sync trigger, the deadline sweep, operator
                   retry
``ingest/``        the inbox, dispatch by field, history, contacts, echoes, media, lifecycle
``outbound/``      sends through the Cloud API, per-number throttle
``followups/``     reminders to the business and operator alerts, and their channels
``read/``          the read API's keyset queries: onboardings, threads, messages, contacts, media
``sandbox/``       a faithful fake of Meta (Graph API and webhooks) for demos, staging and tests
``demo/``          the one-command demo
=================  ==============================================================================

Shared bookkeeping: :mod:`.states` (the onboarding's state machine, its one writer),
:mod:`.pauses` (what stops an onboarding's sends and what lifts it, their one writer),
:mod:`.store` (bulk upserts), :mod:`.views` (the JSON operators read), :mod:`.outcomes` and
:mod:`.runtime` (the process's settings, database, cipher and Graph client).

Entry points, at the edge and the only importers of ``tasks``: :mod:`.web` (``uvicorn
onboarding.web:app``) and :mod:`.cli` (``coexist``).
"""
