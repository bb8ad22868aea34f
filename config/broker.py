"""The Redis transport of coexist's Celery processes: kombu's own, with one guard.

Why a guard. When Redis goes away under a worker, Celery 5.7's consumer first collects the
broken ``kombu.Connection`` and then closes it (https://github.com/celery/celery/pull/10242).
Collecting tries to close the default channel, fails at once (reading the reply of the BRPOP in
flight raises ``ConnectionError``, which kombu swallows) and then detaches the transport from
the connection: ``transport.client`` is ``None``. Closing closes that same channel again: it drops
its connection pools and restores its unacknowledged messages, which needs a new pool, and kombu
builds one from ``transport.client.hostname``. That is an ``AttributeError``, not a connection
error, so Celery calls it unrecoverable and the worker process exits for good::

    celery/worker/consumer/consumer.py  on_connection_error_after_connected
      ignore_errors(connection, connection.close)
    kombu/transport/virtual/base.py     Channel.close -> qos.restore_unacked_once()
    kombu/transport/redis.py            restore_unacked -> conn_or_acquire -> _create_client
                                        -> pool -> _get_pool -> _connparams
      'host': conninfo.hostname or '127.0.0.1'
    AttributeError: 'NoneType' object has no attribute 'hostname'

An acknowledgement still pending for a message of that channel (a task that finished while
Redis was going away) takes the same path, from ``basic_ack``.

The guard: a channel whose transport has lost its connection raises redis's
``ConnectionError`` instead, which kombu and Celery already handle as a lost broker. The second
close is abandoned quietly, like the first; a late acknowledgement is logged as "Couldn't ack"
and the message is handed out again once the broker's visibility timeout has passed, if Redis
kept it (every coexist task is idempotent, and beat re-dispatches what Redis lost). Nothing else
changes: a channel with a live connection builds its pools exactly as kombu does.

It applies to ``redis://`` broker URLs; any other scheme keeps kombu's own transport
(``rediss://`` included: with an explicit transport, kombu no longer infers TLS from it).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from kombu.transport import redis as kombu_redis
from redis.exceptions import ConnectionError as RedisConnectionError

#: The value of Celery's ``broker_transport`` setting that selects :class:`Transport`.
TRANSPORT = "config.broker:Transport"


class Channel(kombu_redis.Channel):
    """kombu's Redis channel, refusing to build a pool for a connection that is gone."""

    def _connparams(self, asynchronous: bool = False) -> dict[str, Any]:
        transport = self.connection
        if transport is None or transport.client is None:
            raise RedisConnectionError("the broker connection of this channel is closed")
        params: dict[str, Any] = super()._connparams(asynchronous=asynchronous)  # type: ignore[no-untyped-call]
        return params


class Transport(kombu_redis.Transport):
    """kombu's Redis transport with :class:`Channel`."""

    Channel = Channel


def broker_transport(broker_url: str) -> str | None:
    """Celery's ``broker_transport`` for ``broker_url``: ours for Redis, else kombu's choice."""
    return TRANSPORT if urlsplit(broker_url).scheme == "redis" else None
