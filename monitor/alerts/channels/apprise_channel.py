"""Apprise: one URL (``url_env``) reaching any of the ~100 services Apprise speaks (Discord, Teams,
Telegram, ntfy, Matrix, ``json://`` ...). Apprise URLs embed their tokens, so the URL is a secret.

Apprise reports success or failure but not why, so every failure is retried (bounded by the retry
settings); only a URL Apprise does not understand is given up on at once.

Apprise is an extra (``pip install airisk[apprise]``), imported on the first send: a headless
monitor without it loads every other channel, and an apprise channel there fails its sends with
a message saying what to install (retried, so installing it brings the alerts back).

Apprise's own timeouts are per request phase; the dispatcher's deadline per send bounds it.
"""

from __future__ import annotations

import warnings

import httpx

from monitor.alerts.channels.base import Alert, DeliveryError, require_secret
from monitor.alerts.redact import redact

SECRET = "url_env"
MISSING = "the apprise alert channel needs the apprise extra: pip install 'airisk[apprise]'"
_TYPE = {"critical": "FAILURE", "error": "FAILURE", "warning": "WARNING", "info": "SUCCESS"}


async def send(alert: Alert, *, client: httpx.AsyncClient) -> None:
    """Notifies through Apprise's own HTTP stack (``client`` is not used)."""
    url = require_secret(alert)
    try:
        import apprise
    except ImportError:
        raise DeliveryError(True, MISSING) from None
    with warnings.catch_warnings():
        # Apprise's plugin loader (run on the first add) imports the stdlib's imghdr, deprecated
        # since Python 3.11: a warning about Apprise's internals, not about anything we do.
        warnings.filterwarnings("ignore", "'imghdr' is deprecated", DeprecationWarning)
        notifier = apprise.Apprise()
        understood = notifier.add(url)
    if not understood:
        raise DeliveryError(False, "Apprise does not understand the URL")
    e = alert.event
    result = await notifier.async_notify(
        body="\n".join(e.lines()[1:]) or e.title, title=e.title,
        notify_type=getattr(apprise.NotifyType, _TYPE.get(e.severity, "INFO")), timeout=alert.config.timeout,
    )
    if not result:
        why = "; ".join(entry.message for entry in result.logs() if entry.level in ("WARNING", "ERROR"))
        raise DeliveryError(True, redact(f"Apprise: {result.status.name.lower()}" + (f": {why}" if why else ""),
                                         [url]))
