"""What every channel module shares: the `Alert` it is given and the `DeliveryError` it raises.

A channel module has a ``send(alert, *, client)`` coroutine and a ``SECRET`` naming the config
field (``url_env``, ``routing_key_env``, ...) whose environment variable holds its secret, which the
dispatcher reads and hands over in ``Alert.secret``. It returns when the receiver has accepted the
alert and raises `DeliveryError` otherwise; it never puts the secret in a message.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import httpx

from monitor.alerts.events import AlertEvent
from monitor.config.alerts import ChannelConfig


class DeliveryError(Exception):
    """The receiver did not accept the alert.

    ``retryable``: worth trying again (5xx, 429, timeouts, connection errors); not retryable: the
    request itself is wrong (other 4xx) and the alert is given up on after this one try.
    ``retry_after``: seconds the receiver asked us to wait (Retry-After), if it did.
    """

    def __init__(self, retryable: bool, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.message = message
        self.retry_after = retry_after


@dataclass(frozen=True, slots=True)
class Alert:
    """One alert to deliver through one channel."""

    event: AlertEvent
    config: ChannelConfig
    secret: str | None = field(default=None, repr=False)
    """The value of the channel's secret environment variable (URL, routing key, password)."""
    attempt: int = 1


class ChannelModule(Protocol):
    SECRET: str | None

    async def send(self, alert: Alert, *, client: httpx.AsyncClient) -> None: ...


def require_secret(alert: Alert) -> str:
    """The channel's secret; a missing one is retryable (fixing the environment brings it back)."""
    if not alert.secret:
        raise DeliveryError(True, f"channel {alert.config.name!r}: its secret environment variable is not set")
    return alert.secret
