"""PagerDuty Events API v2: ``trigger`` on down / degraded / slo_burn, ``resolve`` on recovery.

Each target's incident has its own ``dedup_key`` (stable from trigger to resolve), so one event
is sent per member of a grouped alert: the resolve of each incident then closes exactly its own
PagerDuty alert, even when the targets of a provider recover at different times, and PagerDuty's
alert grouping folds the alerts of one outage into one incident. A trigger repeated with the same
key (a retry after a timeout) is deduplicated by PagerDuty, so sending all members again on retry
is safe.
"""

from __future__ import annotations

from typing import Any

import httpx

from monitor.alerts.channels._http import post_json
from monitor.alerts.channels.base import Alert, require_secret
from monitor.alerts.events import Member

SECRET = "routing_key_env"


def events(alert: Alert, routing_key: str) -> list[dict[str, Any]]:
    """The Events API v2 bodies for ``alert``: one per member, or one for a member-less alert."""
    e = alert.event
    members: list[Member | None] = list(e.members) or [None]
    out = []
    for m in members:
        body: dict[str, Any] = {"routing_key": routing_key, "event_action": e.action,
                                "dedup_key": m.dedup_key if m else e.dedup_key, "client": "airisk"}
        if e.action == "trigger":
            details: dict[str, Any] = {"rule": e.rule, "targets": list(e.targets), **e.details}
            if m:
                details |= {"from": m.from_state, "to": m.to_state, "cause": dict(m.cause)}
            body["payload"] = {
                "summary": e.title[:1024],  # PagerDuty's limit
                "severity": e.severity,
                "source": m.label if m else e.provider,
                "component": e.provider,
                "group": e.provider,
                "class": e.rule,
                "timestamp": (m.at if m else e.at).isoformat(),
                "custom_details": details,
            }
        out.append(body)
    return out


async def send(alert: Alert, *, client: httpx.AsyncClient) -> None:
    key = require_secret(alert)
    for body in events(alert, key):
        await post_json(client, alert.config.pagerduty_url, body, within=alert.config.timeout, secret=key)
