"""The event feed: what coexist learnt, in order, for the provider's own product.

* :mod:`.events` — the event types and :func:`~.events.emit`, which writes an event in the
  transaction of the change it tells of (a transactional outbox);
* :mod:`.bodies` — bodies built from the rows a writer holds (a stored page of messages);
* :mod:`.log` — cursors and reads that never pass over an event, whatever order transactions
  commit in;
* :mod:`.tail` — following the feed from a terminal (``coexist events tail``).
"""
