"""PagerDuty Events API v2: ``trigger`` on down / degraded / slo_burn, ``resolve`` on recovery.

Each target's incident has its own ``dedup_key`` (stable from trigger to resolve), so one event
is sent per member of a grouped alert: the resolve of each incident then closes exactly its own
PagerDuty alert, even when the targets of a provider recover at different times, and PagerDuty's
alert grouping folds the alerts of one outage into one incident. A trigger repeated with the same
key (a retry after a timeout) is deduplicated by PagerDuty, so sending all members again on retry
is safe.

A page of `monitor.alerts.rules` (its events carry ``page`` or ``update_of`` in their details: the
transitions went through its `Grouper`) is ONE PagerDuty alert under the page's ``dedup_key``, whatever
the number of targets, so an outage is one alert and one incident without relying on PagerDuty's alert
grouping. PagerDuty's Alert De-Duplication (https://developer.pagerduty.com/docs/events-api-v2/trigger-events/)
decides how the rest is sent: "Submitting subsequent events for the same dedup_key will result in those
events being applied to an open alert matching that dedup_key" (a trigger adds a log entry, no new alert
and no new incident), but "once the alert is resolved, any further events with the same dedup_key will
create a new alert (for trigger events) or be dropped (for acknowledge and resolve events)". So:

- an update (targets going down while the page is open) is a trigger under the page's key: logged on
  the open alert, its targets and causes in ``custom_details``, no new incident;
- the alert stays open while any target of the page is down: a recovery that leaves others down
  sends nothing, and the one that brings the last target back resolves the page's key.
- a DOWN that would join a page that has sent no DOWN in the last 30 min (a DEGRADED-only page, or
  a quiet one) is a new page under its own key, since an acknowledged alert does not notify on new
  triggers; a recovery closing an older page as well comes as a second event (role ``closes``)
  resolving that page's key.

Events from outside a Grouper (and member-less ones) keep one event per member under each incident's
own key, as before pages were kept.

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
    """The Events API v2 bodies for ``alert``: for a page's event (see the module doc) one trigger under the
    page's key, or for its recoveries nothing until the last target is back and then one resolve; for
    other events one per member under its own key, or one for a member-less alert."""
    e = alert.event
    members: list[Member | None] = list(e.members) or [None]
    keys = [m.dedup_key if m else e.dedup_key for m in members]
    page = e.details.get("page") or e.details.get("update_of")
    if page:
        held = e.action == "resolve" and bool(e.details.get("page_open"))
        members, keys = ([], []) if held else ([None], [str(page)])
    out = []
    for m, key in zip(members, keys, strict=True):
        body: dict[str, Any] = {"routing_key": routing_key, "event_action": "trigger" if e.action == "update"
                                else e.action, "dedup_key": key[:255], "client": "airisk"}  # PagerDuty's limit
        if e.action in ("trigger", "update"):
            details: dict[str, Any] = {"rule": e.rule, "targets": list(e.targets), **e.details}
            if m:
                details |= {"from": m.from_state, "to": m.to_state, "cause": dict(m.cause)}
            elif e.members:  # one body for the page: every target's line and cause
                details["members"] = [x.line() for x in e.members]
                details["causes"] = {x.label: dict(x.cause) for x in e.members}
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
