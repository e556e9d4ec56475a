"""Emulated probe history, written straight into the monitor's store: days of it in seconds.

`generate_history` writes what a monitor probing ``targets`` every ``interval_s`` would have
left behind: `TargetRow` rows, raw `ProbeRow` results, minute and hour rollups, incidents with
their causes, vendor status snapshots with our lead over each vendor's first post, and the alert
outbox. It serves the dashboard's scale benchmark (``bench/dashboard_scale.py``: 30 days of 50
targets) and ``airisk up``'s demo backfill, whose caller labels it as demo data.

How it stays true to the monitor:

- rollups hold exactly what `monitor.store.results.write_results` would have added (the same
  `Agg` semantics: scheduled probes only, TTFT whenever a first token came, total time only for
  answered probes, errors by kind, cost, tokens/s), computed per bucket in numpy instead of row
  by row; the latency values stored raw are the ones counted into the histograms;
- retention as the monitor prunes it: raw rows only for the last ``raw_days``, minute rollups
  for the last ``minute_days`` (default 2, ``storage.rollup_minute_days``), hour rollups for all;
- incidents come from the real `monitor.detect.Detector` fed the generated results around each
  outage, opened and closed the way `monitor.service` does; alerts from the real
  `monitor.alerts.rules.events_for` and `reminders`; our lead over the vendor from the real
  `monitor.statuspoll.lead_time`.

Outages are drawn like real ones (`chaos.history.outages`: durations and gaps of OpenAI's and
Anthropic's published incidents, Chu et al., ICPE 2025): a full outage, elevated errors or elevated
latency, with the provider's typical error kinds (Anthropic 529 overloaded, OpenAI 5xx and 429, a
local server refusing connections). Confirmation probes are not emulated (every row is a scheduled
probe), so the detector runs with ``confirm_after: []``.

Layout: `profiles` (how each provider behaves, `HistoryTarget`), `outages` (when it fails), `series`
(one target's results as numpy columns), `store` (raw rows and rollups, fast), `incidents`
(incidents, vendor status, alerts), `clock` (times as int64 microseconds). Needs numpy. Every write
goes through the store's own functions (`monitor.store.bulk` for results and rollups, `upsert_targets`,
`monitor.store.incidents`, `monitor.alerts.outbox.record_deliveries`): the store owns the schema.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session

from chaos.history.clock import DAY, HOUR, MINUTE, S, to_dt, to_us
from chaos.history.incidents import default_alerts, snapshot_rows, write_incidents
from chaos.history.outages import Outage, draw_outages
from chaos.history.profiles import HistoryTarget
from chaos.history.series import draw_series
from chaos.history.store import rollup_rows, write_raw
from monitor.config.alerts import AlertsConfig
from monitor.config.detection import DetectionConfig
from monitor.store.bulk import write_rollups_bulk
from monitor.store.incidents import record_status_bulk
from monitor.store.queries import target_with_history
from monitor.store.results import upsert_targets
from probes.catalog import CATALOG
from probes.target import Target

__all__ = ["HistoryStats", "HistoryTarget", "default_alerts", "generate_history"]


@dataclass(frozen=True, slots=True)
class HistoryStats:
    """What `generate_history` wrote, and how long it took (wall seconds)."""

    raw_rows: int
    minute_rows: int
    hour_rows: int
    incidents: int
    seconds: float
    status_rows: int = 0
    alert_rows: int = 0
    outages: int = 0  # drawn, per provider (an outage of one provider spans its targets)


def generate_history(
    *,
    engine: Engine,
    targets: list[HistoryTarget],
    days: float,
    interval_s: float,
    end: datetime | None = None,
    seed: int = 1,
    incidents: bool = True,
    raw_days: float | None = None,
    minute_days: float = 2.0,
    outage_rate: float = 1.0,
    detection: DetectionConfig | None = None,
    alerts: AlertsConfig | None = None,
) -> HistoryStats:
    """Writes ``days`` of emulated history of ``targets`` up to ``end`` (default now) into a migrated store.

    Every target is probed every ``interval_s`` (phases spread over one interval). Raw rows cover
    the last ``raw_days`` (default: all ``days``), minute rollups the last ``minute_days``, hour
    rollups everything. With ``incidents``, providers have outages drawn like real ones (``outage_rate``
    times as often: a short demo may want more than the ~1 a provider has in two real days), and
    incidents, vendor status snapshots and alert outbox rows are written for them (``detection``
    default: the monitor's defaults without confirmation probes, plus ``degraded_ttft_ms: 4000``;
    ``alerts`` default: `default_alerts`); without, only random noise. Targets already stored are
    left as they are. Deterministic for a ``seed``. Commits as it goes (not atomic): give it a
    window with no history of these targets yet, else ``ValueError``.
    """
    t0 = time.perf_counter()
    if days <= 0 or interval_s <= 0 or outage_rate <= 0:
        raise ValueError("days, interval_s and outage_rate must be positive")
    if len({t.name for t in targets}) != len(targets):
        raise ValueError("target names must be unique")
    if end is not None and end.tzinfo is None:
        raise ValueError(f"naive end {end!r}: airisk stores UTC-aware times only")
    end_dt = (end or datetime.now(UTC)).astimezone(UTC)
    stop = to_us(end_dt)
    start = stop - int(days * DAY)
    interval = int(interval_s * S)
    names = [t.name for t in targets]
    with Session(engine) as session:
        clash = target_with_history(session=session, targets=names, since=to_dt(start))
    if clash:
        raise ValueError(f"target {clash!r} already has history after {to_dt(start).isoformat()}")

    groups: dict[str, list[HistoryTarget]] = {}
    for t in targets:  # a local server fails on its own; a vendor's targets fail together
        groups.setdefault(f"{t.provider}/{t.name}" if t.local else t.provider, []).append(t)
    outages: list[Outage] = []
    if incidents:
        for key, members in sorted(groups.items()):
            entry = CATALOG.get(members[0].provider)
            page = bool(entry and entry.status_page) and not members[0].local
            outages += draw_outages(key, members, start, stop, seed, page, outage_rate)
        for o in outages:
            o.provider = o.provider.split("/")[0]
    series = [draw_series(t, start, stop, interval, outages, seed) for t in targets]

    with Session(engine) as session:
        configured = []
        for t in targets:
            entry = CATALOG.get(t.provider)
            configured.append(Target(name=t.name, provider=t.provider, model=t.model, local=t.local,
                                     dialect=entry.dialect if entry else "openai",
                                     base_url=entry.base_url if entry else ""))
        upsert_targets(session=session, targets=configured, now=end_dt, keep_existing=True)
        session.commit()
    raw_since = start if raw_days is None else max(start, stop - int(raw_days * DAY))
    raw = write_raw(engine, targets, series, raw_since, stop)
    # Prune keeps a rollup bucket while bucket >= now - retention: the first whole bucket after the cut.
    minute_since = stop - int(minute_days * DAY)
    minute_since = start if minute_since <= start else minute_since + (-minute_since % MINUTE)
    minute = [r for t, s in zip(targets, series, strict=True) for r in rollup_rows(t.name, s, minute_since, MINUTE)]
    hour = [r for t, s in zip(targets, series, strict=True) for r in rollup_rows(t.name, s, start, HOUR)]
    write_rollups_bulk(engine=engine, table="minute", rows=minute)
    write_rollups_bulk(engine=engine, table="hour", rows=hour)

    n_incidents = n_alerts = 0
    snaps: list[dict[str, Any]] = []
    if incidents:
        pages = sorted({t.provider for t in targets if not t.local and CATALOG.get(t.provider)
                        and CATALOG[t.provider].status_page})
        snaps = snapshot_rows(outages, pages, start, stop, seed)
        with Session(engine) as session:
            n_incidents, n_alerts = write_incidents(session, targets, series, outages, detection or DetectionConfig(
                confirm_after=[], degraded_ttft_ms=4000), alerts or default_alerts(), interval, stop, seed)
            record_status_bulk(session=session, snapshots=snaps)
            session.commit()
    return HistoryStats(raw, len(minute), len(hour), n_incidents, time.perf_counter() - t0, status_rows=len(snaps),
                        alert_rows=n_alerts, outages=len(outages))
