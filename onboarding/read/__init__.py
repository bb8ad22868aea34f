"""The read API's queries: what coexist synced, a page at a time, without scanning.

Every list is a keyset page (``WHERE (key) > (cursor) ORDER BY key LIMIT n``) over an index
that holds its key, so a page costs the same on the first thread of a small onboarding and on
the last page of a million-message one.

* :mod:`.pages` — pages and their opaque cursors;
* :mod:`.onboardings` — onboardings, filtered, newest first or oldest first;
* :mod:`.threads` — one thread per peer, the most recently active first, with its last
  message and counts;
* :mod:`.messages` — a thread's messages in time order, edit, revoke and media state included;
* :mod:`.contacts` — the business's address book, with each contact's peer;
* :mod:`.media` — stored media by content hash: its file and content type;
* :mod:`.schemas` — the answers as models, for ``/openapi.json``.
"""
