"""The guarded Redis transport: chosen for redis:// brokers, a lost connection stays a lost one."""

from __future__ import annotations

import pytest
from kombu import Connection
from redis.exceptions import ConnectionError as RedisConnectionError

from config.broker import TRANSPORT, Channel, Transport, broker_transport
from config.celery import celery_config
from tests.conftest import make_settings


def detached_channel(connection: Connection) -> Channel:
    """A channel of ``connection``'s transport, built without contacting Redis."""
    channel: Channel = Channel.__new__(Channel)
    channel.connection = connection.transport
    return channel


@pytest.mark.parametrize(
    ("url", "transport"),
    [
        ("redis://127.0.0.1:6379/0", TRANSPORT),
        ("redis://:secret@redis.internal/3", TRANSPORT),
        ("rediss://redis.internal:6380/0", None),
        ("sentinel://127.0.0.1:26379", None),
        ("memory://", None),
    ],
)
def test_only_redis_urls_use_the_guarded_transport(url: str, transport: str | None) -> None:
    """redis:// brokers get the guarded transport; other schemes keep kombu's own choice."""
    assert broker_transport(url) == transport
    assert celery_config(make_settings(broker_url=url))["broker_transport"] == transport


def test_a_redis_connection_resolves_to_the_guarded_transport() -> None:
    """Celery's setting resolves to the guarded transport and keeps the URL's host and database."""
    connection = Connection("redis://127.0.0.1:6390/3", transport=TRANSPORT)
    assert isinstance(connection.transport, Transport)
    assert connection.transport.Channel is Channel
    params = detached_channel(connection)._connparams()
    assert (params["host"], params["port"], params["db"]) == ("127.0.0.1", 6390, 3)


def test_a_channel_whose_connection_was_closed_raises_a_connection_error() -> None:
    """Once the connection is released, a channel's new pool is a connection error, not a crash."""
    connection = Connection("redis://127.0.0.1:6390/3", transport=TRANSPORT)
    channel = detached_channel(connection)
    connection.release()  # detaches the transport, as collecting a broken connection does
    assert channel.connection.client is None
    with pytest.raises(RedisConnectionError, match="closed"):
        channel._connparams()
    assert RedisConnectionError in Transport.connection_errors


def test_a_channel_without_a_transport_raises_a_connection_error() -> None:
    """A channel already removed from its transport gets a connection error too."""
    channel = detached_channel(Connection("redis://127.0.0.1:6390/3", transport=TRANSPORT))
    channel.connection = None
    with pytest.raises(RedisConnectionError):
        channel._connparams()
