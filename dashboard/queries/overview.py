"""Overview: each target's state and availability, and the open incidents (the features' risk is
`dashboard.queries.features.risk_view`, shared with the Features page)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

import pandas as pd
from sqlmodel import Session

from dashboard.queries.common import describe_cause, duration_text, frame
from monitor.config import AiriskConfig
from monitor.config.detection import DetectionConfig
from monitor.store.lifecycle import notices
from monitor.store.queries import (
    current_states,
    incidents,
    known_targets,
    latency_by_target,
    totals_by_target,
    vantage_points,
)

AVAILABILITY_SPANS = {"24h": timedelta(days=1), "7d": timedelta(days=7), "30d": timedelta(days=30)}
P95_SPAN = timedelta(days=1)
_SEVERITY = {"down": 3, "degraded": 2, "up": 1}

PROVIDER_COLUMNS = ("target", "provider", "model", "owned", "state", "last_probe", "last_probe_at",
                    "availability_24h", "availability_7d", "availability_30d", "ttft_p95_ms", "open_incident")
INCIDENT_COLUMNS = ("id", "target", "provider", "region", "state", "opened_at", "closed_at", "duration",
                    "duration_s", "cause", "vendor_first_post_at", "lead_time_s", "scope", "regions")
VANTAGE_COLUMNS = ("region", "status", "heartbeat", "age", "host", "version", "since")
MODEL_COLUMNS = ("model", "provider", "notice", "retires", "features", "since", "what")
MODEL_NOTICES_SHOWN = 30  # days: retirement warnings older than this are history


@dataclass(frozen=True, slots=True)
class Overview:
    """The providers, the open incidents and the vantage points; the features come from
    `dashboard.queries.features.risk_view`."""

    providers: pd.DataFrame  # PROVIDER_COLUMNS, worst state first
    open_incidents: pd.DataFrame  # INCIDENT_COLUMNS
    vantage: pd.DataFrame  # VANTAGE_COLUMNS: the monitors (vantage points) and their heartbeats
    models: pd.DataFrame = field(default_factory=lambda: frame([], MODEL_COLUMNS))
    """MODEL_COLUMNS: models gone from their listing (open) and retirement notices of the last 30 days."""


def provider_table(*, session: Session, now: datetime) -> pd.DataFrame:
    """One row per target: its state now (an open incident's state, else the latest probe's), its
    availability over 24 h, 7 d and 30 d, and its p95 time to first token over 24 h; worst state first.

    Every figure comes from one aggregate statement over all targets (rollups beyond two hours).
    """
    catalog = {t["name"]: t for t in known_targets(session=session)}
    states = current_states(session=session)
    open_by_target: dict[str, str] = {}
    for inc in incidents(session=session, open_only=True):
        if _SEVERITY[inc.state] > _SEVERITY.get(open_by_target.get(inc.target, "up"), 0):
            open_by_target[inc.target] = inc.state
    availability = {}
    for key, span in AVAILABILITY_SPANS.items():
        for row in totals_by_target(session=session, since=now - span, until=now,
                                    source=None if span <= timedelta(hours=2) else "hour"):
            availability[(row["target"], key)] = row["availability"]
    p95 = {r["target"]: r["ttft_p95"] for r in latency_by_target(session=session, since=now - P95_SPAN, until=now,
                                                                  source="hour")}
    latest: dict[str, dict] = {}
    for ts in states:
        if ts.latest is None:
            continue
        seen = latest.get(ts.target)
        if seen is None or ts.latest["at"] > seen["at"]:
            latest[ts.target] = ts.latest
    names = sorted(set(catalog) | {s.target for s in states} | {t for t, _ in availability})
    rows = []
    for name in names:
        t = catalog.get(name, {})
        last = latest.get(name)
        state = open_by_target.get(name) or ("up" if last else "never probed")
        rows.append({
            "target": name, "provider": t.get("provider", ""), "model": t.get("model", ""),
            "owned": bool(t.get("local", False)), "state": state,
            "last_probe": f"{last['status']} ({last['error_kind']})" if last and last["error_kind"] != "ok"
            else (last["status"] if last else ""),
            "last_probe_at": last["at"] if last else None,
            **{f"availability_{k}": availability.get((name, k)) for k in AVAILABILITY_SPANS},
            "ttft_p95_ms": p95.get(name), "open_incident": name in open_by_target,
        })
    rows.sort(key=lambda r: (-_SEVERITY.get(r["state"], 0), r["availability_24h"] if r["availability_24h"]
                             is not None else 2.0, r["target"]))
    return frame(rows, PROVIDER_COLUMNS)


def incident_table(*, session: Session, now: datetime, since: datetime | None = None, open_only: bool = False,
                   target: str | None = None) -> pd.DataFrame:
    """Incidents (open at some time since ``since``), newest first, with their cause in words and how
    far ahead of the vendor's first status-page post we were."""
    rows = []
    for inc in incidents(session=session, since=since, open_only=open_only, target=target):
        lasted = inc.duration_s if inc.duration_s is not None else (now - inc.opened_at).total_seconds()
        rows.append({"id": inc.id, "target": inc.target, "provider": inc.provider, "region": inc.region,
                     "state": inc.state, "opened_at": inc.opened_at, "closed_at": inc.closed_at,
                     "duration": duration_text(lasted) + ("" if inc.closed_at else " (open)"), "duration_s": lasted,
                     "cause": describe_cause(inc.cause), "vendor_first_post_at": inc.vendor_first_post_at,
                     "lead_time_s": inc.lead_time_s, "scope": inc.scope,
                     "regions": regions_text(inc.regions) if inc.scope == "global" else inc.region or "(default)"})
    return frame(rows, INCIDENT_COLUMNS)


def regions_text(regions: dict) -> str:
    """"eu 10:02:03 down, us 10:02:09 down": the regions that saw a global incident, first seen first."""
    def when(seen: dict) -> str:
        return str(seen.get("since", ""))

    parts = []
    for region, seen in sorted(regions.items(), key=lambda kv: (when(kv[1]), kv[0])):
        try:
            at = datetime.fromisoformat(when(seen)).strftime("%H:%M:%S")
        except ValueError:
            at = "?"
        parts.append(f"{region or '(default)'} {at} {seen.get('state', '')}".strip())
    return ", ".join(parts)


def vantage_table(*, session: Session, now: datetime, timeout: float) -> pd.DataFrame:
    """The monitors (one per region) with their last heartbeat, and whether each still counts
    towards the quorum (alive) or was lost."""
    rows = [{"region": v["region"] or "(default)", "status": "alive" if v["alive"] else "lost",
             "heartbeat": v["last_seen"], "age": duration_text(max((now - v["last_seen"]).total_seconds(), 0.0)),
             "host": f"{v['host']} (pid {v['pid']})", "version": v["version"], "since": v["started_at"]}
            for v in vantage_points(session=session, now=now, timeout=timeout)]
    return frame(rows, VANTAGE_COLUMNS)


def model_table(*, session: Session, now: datetime) -> pd.DataFrame:
    """Models a target or feature uses that have left their provider's listing (open incidents, first)
    and the retirement notices of the last 30 days (monitor/lifecycle.py), newest first; one row per
    model and notice kind (the latest warning step)."""
    rows, seen = [], set()
    gone = notices(session=session, open_only=True)
    recent = [n for n in notices(session=session, since=now - timedelta(days=MODEL_NOTICES_SHOWN))
              if n.kind != "vanished"]
    for n in [*gone, *recent]:
        if (n.provider, n.model, n.kind) in seen:
            continue
        seen.add((n.provider, n.model, n.kind))
        rows.append({"model": n.model, "provider": n.provider,
                     "notice": "gone from the listing" if n.kind == "vanished" else n.kind.replace("_", " "),
                     "retires": n.retires.isoformat() if n.retires else "", "features": ", ".join(n.features),
                     "since": n.opened_at or n.at, "what": n.message})
    return frame(rows, MODEL_COLUMNS)


def overview(*, session: Session, now: datetime, config: AiriskConfig | None = None) -> Overview:
    """Every target's state and availability, the open incidents, and the vantage points (lost past
    the config's ``detection.heartbeat_timeout``, or its default without a config)."""
    timeout = (config.detection if config is not None else DetectionConfig()).heartbeat_timeout
    return Overview(provider_table(session=session, now=now), incident_table(session=session, now=now, open_only=True),
                    vantage_table(session=session, now=now, timeout=timeout), model_table(session=session, now=now))
