"""Generic webhook: the alert as JSON, POSTed to the URL in ``url_env``.

Body (version 1)::

    {"version": 1, "rule": "down", "action": "trigger", "event_key": "...", "dedup_key": "...",
     "title": "...", "severity": "critical", "provider": "openai", "targets": ["gpt-4o"],
     "at": "2025-01-01T12:00:00+00:00", "members": [...], "details": {...},
     "worst_criticality": "critical", "runbook": ["..."], "impact": {...} | null}

``action`` is ``trigger`` (a page), ``update`` (more targets of an outage already paged, under that
page's ``dedup_key``, with ``details.update_of`` naming it: not a new page) or ``resolve`` (a page's
recoveries carry ``details.page`` and ``details.page_open``).

``impact`` is `monitor.alerts.impact.Impact.to_dict`: every field of every hit feature (what serves it,
whether a drill verified it and when, its quality, the cost so far), the dashboard URL and what could
not be known; ``null`` when no impact was computed. Fields are only ever added within a version.

Delivery is at least once (a timeout after the receiver took the request is retried), so the
``Idempotency-Key`` header carries the event key: a receiver that remembers it sees each alert once.
"""

from __future__ import annotations

from typing import Any

import httpx

from monitor.alerts.channels._http import post_json
from monitor.alerts.channels.base import Alert, require_secret

SECRET = "url_env"


def body(alert: Alert) -> dict[str, Any]:
    e = alert.event
    row = e.to_row()
    return {"version": 1, "rule": e.rule, "action": e.action, "event_key": e.event_key,
            "dedup_key": e.dedup_key, "title": e.title, "severity": e.severity, "provider": e.provider,
            "targets": list(e.targets), "at": e.at.isoformat(), "members": row["payload"]["members"],
            "details": row["payload"]["details"], "worst_criticality": e.worst_criticality,
            "runbook": [r.line for r in e.runbook], "impact": row["payload"].get("impact")}


async def send(alert: Alert, *, client: httpx.AsyncClient) -> None:
    url = require_secret(alert)
    await post_json(client, url, body(alert), within=alert.config.timeout, secret=url,
                    headers={"Idempotency-Key": alert.event.event_key})
