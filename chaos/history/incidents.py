"""Incidents, vendor status pages and alerts, derived from the results by the monitor's own code.

The real `monitor.detect.Detector` is fed the results around each outage (quiet stretches cannot page),
incidents open and close through `monitor.store.incidents` as `monitor.service` opens and closes them,
the alert outbox is filled by `monitor.alerts.rules.events_for` and `reminders` (and written by
`monitor.alerts.outbox.record_deliveries`), and our lead over each vendor's first post is
`monitor.statuspoll.lead_time`'s.
"""

from __future__ import annotations

import zlib
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import numpy as np
from sqlmodel import Session

from chaos.history.clock import HOUR, MINUTE, to_dt
from chaos.history.outages import IMPACT, TITLES, Outage
from chaos.history.profiles import HistoryTarget
from chaos.history.series import KINDS, Series
from monitor.alerts import events as alert_events
from monitor.alerts.outbox import Delivery, record_deliveries
from monitor.alerts.rules import events_for, reminders
from monitor.config.alerts import AlertsConfig, ChannelConfig, RuleConfig
from monitor.config.detection import DetectionConfig
from monitor.detect import Detector
from monitor.statuspoll import VendorIncident, lead_time
from monitor.store.incidents import close_incident, open_incident, set_vendor_post
from monitor.store.models import IncidentRow
from monitor.store.queries import incidents as read_incidents
from probes.result import ProbeResult, Status


def detect(t: HistoryTarget, s: Series, outages: list[Outage], detection: DetectionConfig, interval: int,
           end: int) -> list[Any]:
    """The real detector's transitions over the results around each outage (quiet stretches cannot page:
    five random failures in a row at 0.3 % noise are a once-in-millennia event)."""
    windows: list[list[int]] = []
    for o in sorted((o for o in outages if t.name in o.targets), key=lambda o: o.start):
        lo, hi = o.start - 20 * interval, min(end, o.end + max(HOUR, 40 * interval))
        if windows and lo <= windows[-1][1]:
            windows[-1][1] = max(windows[-1][1], hi)
        else:
            windows.append([lo, hi])
    out = []
    for lo, hi in windows:
        det = Detector(detection, t.name)
        a, b = np.searchsorted(s.at, [lo, hi])
        for i in range(a, b):
            kind = KINDS[s.kind[i]]
            ttft, total = s.ttft[i], s.total[i]
            result = ProbeResult(target=t.name, provider=t.provider, model=t.model, at=to_dt(s.at[i]),
                                 status=kind.status, error_kind=kind, ttft_ms=None if np.isnan(ttft) else float(ttft),
                                 total_ms=None if np.isnan(total) else float(total))
            decision = det.feed(result)
            if decision.transition is not None:
                out.append(decision.transition)
    return out


def default_alerts() -> AlertsConfig:
    """The channels and rules the emulated alerts went to: PagerDuty, Slack, email."""
    return AlertsConfig(
        channels=[ChannelConfig(name="oncall", type="pagerduty", routing_key_env="PD_ROUTING_KEY"),
                  ChannelConfig(name="team", type="slack", url_env="SLACK_WEBHOOK_URL"),
                  ChannelConfig(name="mail", type="email", smtp_host="smtp.example.com", from_addr="airisk@example.com",
                                to_addrs=["oncall@example.com"])],
        rules=[RuleConfig(rule="down", channels=["oncall", "team", "mail"]),
               RuleConfig(rule="degraded", channels=["team"]),
               RuleConfig(rule="recovered", channels=["oncall", "team"])])


def outbox_rows(rng: np.random.Generator, events: list[alert_events.AlertEvent], alerts: AlertsConfig,
                end: datetime, reminder: bool) -> list[tuple[alert_events.AlertEvent, datetime, Delivery]]:
    """Outbox rows for ``events`` as a dispatcher left them (`monitor.alerts.outbox.record_deliveries`
    takes them): mostly sent, some on a retry, some mail dead."""
    rows = []
    for e in events:
        created = e.at if reminder else min(e.at + timedelta(seconds=alerts.group_window), end)
        state, attempts, last_error = "sent", 1, ""
        sent_at: datetime | None = created + timedelta(seconds=float(rng.uniform(0.2, 2)))
        draw = rng.random()
        if e.channel == "mail" and draw < 0.2:  # a mail relay that refused our login: not retryable
            state, sent_at, last_error = "dead", None, "SMTP 535 5.7.8 authentication failed"
        elif draw < 0.1:  # delivered on a retry, after the first backoff
            attempts, sent_at = 2, created + timedelta(seconds=alerts.retry.first_delay + 1)
        if sent_at is not None and sent_at > end:
            state, sent_at = "pending", None
        rows.append((e, created, Delivery(state, attempts, sent_at, last_error)))
    return rows


def write_incidents(session: Session, targets: list[HistoryTarget], series: list[Series], outages: list[Outage],
                    detection: DetectionConfig, alerts: AlertsConfig, interval: int, end: int,
                    seed: int) -> tuple[int, int]:
    """Incidents (as `monitor.service` opens and closes them), vendor lead times and the alert outbox."""
    by_provider: dict[str, list[Outage]] = {}
    for o in outages:
        by_provider.setdefault(o.provider, []).append(o)
    made: list[tuple[IncidentRow, list[Any]]] = []  # each incident with the transitions that made it
    for t, s in zip(targets, series, strict=True):
        current: tuple[IncidentRow, list[Any]] | None = None
        for tr in detect(t, s, by_provider.get(t.provider, []), detection, interval, end):
            if tr.to is Status.UP:
                if current is not None:
                    close_incident(session=session, incident_id=current[0].id, at=tr.at)
                    current[1].append(tr)
                    current = None
                continue
            # A new incident, or the open one worsened and its cause merged: as `monitor.service` does.
            row = open_incident(session=session, target=t.name, provider=t.provider, region="", state=str(tr.to),
                                cause=dict(tr.cause), at=tr.since)
            if current is None:
                current = (row, [])
                made.append(current)
            current[1].append(tr)
    seen = {o.provider: [] for o in outages}
    for o in outages:
        if o.post is not None:
            seen[o.provider].append((o, VendorIncident(o.vendor_id, TITLES[o.shape], "investigating", IMPACT[o.shape],
                                                       to_dt(o.post), to_dt(o.post))))
    for row, trs in made:
        detected = trs[0].at
        # The monitor matches every status-page poll after our incident row exists against it.
        visible = [v for o, v in seen.get(row.provider, []) if o.resolved is not None and to_dt(o.resolved) > detected]
        found = lead_time(row.opened_at, visible, window=timedelta(hours=2))
        if found is not None:
            set_vendor_post(session=session, incident_id=row.id, first_post_at=found[0])
    providers = {t.name: t.provider for t in targets}
    transitions = [
        alert_events.Transition(target=row.target, provider=providers[row.target], from_state=str(tr.from_),
                                to_state=str(tr.to), at=tr.at, incident_id=row.id, cause=dict(tr.cause),
                                opened_at=row.opened_at)
        for row, trs in made for tr in trs]
    end_dt = to_dt(end)
    rng = np.random.default_rng([seed, 7])
    rows = outbox_rows(rng, events_for(transitions, config=alerts, now=end_dt), alerts, end_dt, reminder=False)
    every = alerts.reminder_every
    # What `reminders` sees of an incident while it was open: the incident as the monitor reads it, not yet closed.
    as_read = {i.id: i for i in read_incidents(session=session, scope="regional")} if every else {}
    for row, _ in made:
        until = row.closed_at or end_dt
        k = 1
        while every and row.opened_at + timedelta(seconds=k * every) < until:
            now = row.opened_at + timedelta(seconds=k * every)
            live = replace(as_read[row.id], closed_at=None, duration_s=None)
            rows += outbox_rows(rng, reminders([live], config=alerts, now=now), alerts, end_dt, reminder=True)
            k += 1
    record_deliveries(session=session, deliveries=rows)
    return len(made), len(rows)


_DESCRIPTION = {"none": "All Systems Operational", "minor": "Partially Degraded Service",
                "major": "Partial System Outage"}


def snapshot_rows(outages: list[Outage], providers: list[str], start: int, end: int, seed: int) -> list[dict[str, Any]]:
    """What each vendor's status page said: hourly, and at the first poll after each post and resolve."""
    rows = []
    for provider in providers:
        rng = np.random.default_rng([seed, zlib.crc32(f"status:{provider}".encode())])
        posted = [o for o in outages if o.provider == provider and o.post is not None]
        times = set(range(start + int(rng.uniform(0, HOUR)), end, HOUR))
        for o in posted:  # the monitor polls every minute: the first poll after the post, then every 15 min
            times.update(x for x in range(o.post + int(rng.uniform(0, MINUTE)), o.resolved + MINUTE, 15 * MINUTE)
                         if start <= x < end)
            if start <= o.resolved + MINUTE < end:
                times.add(o.resolved + MINUTE)
        for at in sorted(times):
            active = [o for o in posted if o.post <= at < o.resolved]
            incidents = []
            for o in active:
                stage = "investigating" if at < o.post + (o.end - o.post) * 0.3 else (
                    "identified" if at < o.end else "monitoring")
                iso = to_dt(o.post).isoformat()
                incidents.append({"id": o.vendor_id, "name": TITLES[o.shape], "status": stage,
                                  "impact": IMPACT[o.shape], "created_at": iso, "first_post_at": iso})
            indicator = "major" if any(i["impact"] == "major" for i in incidents) else "minor" if incidents else "none"
            rows.append({"provider": provider, "fetched_at": to_dt(at), "indicator": indicator,
                         "description": _DESCRIPTION[indicator], "incidents": incidents})
    return rows
