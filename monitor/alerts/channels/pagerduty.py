"""PagerDuty Events API v2: ``trigger`` on down / degraded / slo_burn, ``resolve`` on recovery.

Each target's incident has its own ``dedup_key`` (stable from trigger to resolve), so one event
is sent per member of a grouped alert: the resolve of each incident then closes exactly its own
PagerDuty alert, even when the targets of a provider recover at different times, and PagerDuty's
alert grouping folds the alerts of one outage into one incident. A trigger repeated with the same
key (a retry after a timeout) is deduplicated by PagerDuty, so sending all members again on retry
is safe.

An update (`monitor.alerts.rules`: targets of a provider whose page is still open going down later)
must not open a new PagerDuty incident, so it is ONE trigger under the page's ``dedup_key``, not one
per member under their own: "Submitting subsequent events for the same dedup_key will result in those
events being applied to an open alert matching that dedup_key" (a trigger log entry on it, no new
alert), while "once the alert is resolved, any further events with the same dedup_key will create a
new alert (for trigger events) or be dropped (for acknowledge and resolve events)"
(https://developer.pagerduty.com/docs/events-api-v2/trigger-events/, Alert De-Duplication). Hence the
page's own alert must stay open as long as its group does: the resolve of the member whose key is the
page's is held back while the page is open (``page_open`` in the resolve's details), and the recovery
that brings the page's last member back resolves the page's key too. The members that came in by
update have no alert of their own; their resolves are sent all the same and PagerDuty drops them.

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
    """The Events API v2 bodies for ``alert``: one per member, or one for a member-less alert; one under the
    page's key for an update; for a resolve, the page's key held back while its page is open and added when
    the page closes (see the module doc)."""
    e = alert.event
    members: list[Member | None] = list(e.members) or [None]
    keys = [m.dedup_key if m else e.dedup_key for m in members]
    if e.action == "update":
        members, keys = [None], [e.dedup_key]
    elif e.action == "resolve" and e.details.get("page"):
        page = str(e.details["page"])
        held = bool(e.details.get("page_open"))
        pairs = [(m, k) for m, k in zip(members, keys, strict=True) if not (held and k == page)]
        if not held and page not in keys:
            pairs.append((None, page))
        members, keys = [m for m, _ in pairs], [k for _, k in pairs]
    out = []
    for m, key in zip(members, keys, strict=True):
        body: dict[str, Any] = {"routing_key": routing_key, "event_action": "trigger" if e.action == "update"
                                else e.action, "dedup_key": key[:255], "client": "airisk"}  # PagerDuty's limit
        if e.action in ("trigger", "update"):
            details: dict[str, Any] = {"rule": e.rule, "targets": list(e.targets), **e.details}
            if m:
                details |= {"from": m.from_state, "to": m.to_state, "cause": dict(m.cause)}
            elif e.action == "update":
                details["update"] = [x.line() for x in e.members]
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
                "class": e.rule if e.action == "trigger" else f"{e.rule} (update)",
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
