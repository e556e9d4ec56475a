"""PagerDuty Events API v2: ``trigger`` on down / degraded / slo_burn, ``resolve`` on recovery.

Each target's incident has its own ``dedup_key`` (stable from trigger to resolve), so one event
is sent per member of a grouped alert: the resolve of each incident then closes exactly its own
PagerDuty alert, even when the targets of a provider recover at different times, and PagerDuty's
alert grouping folds the alerts of one outage into one incident. A trigger repeated with the same
key (a retry after a timeout) is deduplicated by PagerDuty, so sending all members again on retry
is safe.

A trigger carries the impact (https://developer.pagerduty.com/docs/events-api-v2/trigger-events/):
``payload.severity`` is the alert's, set from the worst feature criticality hit (`monitor.alerts.rules`:
critical / error / warning / info, PagerDuty's own scale); ``payload.custom_details`` holds the features
(each with what serves it, its verification, quality and cost so far), the worst criticality, the cost,
the runbook lines and what could not be known; ``links`` and ``client_url`` point at the dashboard's
page for the incident. The documented limits are kept: ``summary`` at most 1024 characters,
``dedup_key`` at most 255, ``source`` and ``summary`` never empty.
"""

from __future__ import annotations

from typing import Any

import httpx

from monitor.alerts.channels._http import post_json
from monitor.alerts.channels.base import Alert, require_secret
from monitor.alerts.events import AlertEvent, Member

SECRET = "routing_key_env"


def events(alert: Alert, routing_key: str) -> list[dict[str, Any]]:
    """The Events API v2 bodies for ``alert``: one per member, or one for a member-less alert."""
    e = alert.event
    members: list[Member | None] = list(e.members) or [None]
    out = []
    for m in members:
        body: dict[str, Any] = {"routing_key": routing_key, "event_action": e.action,
                                "dedup_key": m.dedup_key if m else e.dedup_key, "client": "airisk"}
        body["dedup_key"] = body["dedup_key"][:255]  # PagerDuty's limit
        if e.action == "trigger":
            details: dict[str, Any] = {"rule": e.rule, "targets": list(e.targets), **e.details}
            if m:
                details |= {"from": m.from_state, "to": m.to_state, "cause": dict(m.cause)}
            if e.runbook:
                details["runbook"] = [r.line for r in e.runbook]
            if e.impact is not None:
                details |= _impact_details(e)
                if e.impact.dashboard_url:
                    body["links"] = [{"href": e.impact.dashboard_url, "text": "airisk dashboard: this incident"}]
                    body["client_url"] = e.impact.dashboard_url
            body["payload"] = {
                "summary": (e.title or e.rule)[:1024],  # PagerDuty's limit
                "severity": e.severity if e.severity in ("critical", "error", "warning", "info") else "error",
                "source": (m.label if m else e.provider) or "airisk",
                "component": e.provider,
                "group": e.provider,
                "class": e.rule,
                "timestamp": (m.at if m else e.at).isoformat(),
                "custom_details": details,
            }
        out.append(body)
    return out


def _impact_details(e: AlertEvent) -> dict[str, Any]:
    """The impact as custom details: a line per feature (what PagerDuty's alert view shows at a glance)
    and every field of every feature."""
    impact = e.impact
    assert impact is not None
    out: dict[str, Any] = {
        "worst_criticality": impact.worst_criticality, "covered": impact.covered,
        "cost_minutes": impact.cost_minutes, "incident_minutes": impact.minutes,
        "impact": [f.line() for f in impact.features] or ["no declared feature uses these targets"],
        "features": [f.to_dict() for f in impact.features],
    }
    if impact.missing:
        out["not_known"] = list(impact.missing)
    if impact.dashboard_url:
        out["dashboard"] = impact.dashboard_url
    return out


async def send(alert: Alert, *, client: httpx.AsyncClient) -> None:
    key = require_secret(alert)
    for body in events(alert, key):
        await post_json(client, alert.config.pagerduty_url, body, within=alert.config.timeout, secret=key)
