"""Every read the dashboard and the CLI need. Plain dataclasses and dicts out, never ORM rows.

One module per subject, mirroring `dashboard.queries`: `providers` (per-target summaries, series,
states, vendor status, configured targets), `compare` (all-target aggregates in SQL), `overview`
(vantage points), `alerts` (incidents, the outbox as sent), `risk` (latency budgets, what drills
saw), `drills` (drill runs). `_sources` holds what they share: which table answers a window
(`pick_source`: raw results up to 2 hours, minute rollups up to 2 days, hour rollups beyond) and
how it is read. Import from here; the modules are where to look.

The incident helpers the monitor writes with live in `monitor.store.incidents` and are
re-exported here, as they always were.
"""

from monitor.store.incidents import close_incident, open_incident, open_incident_for, record_status, set_vendor_post
from monitor.store.queries._sources import MINUTE_MAX, RAW_MAX, pick_source
from monitor.store.queries.alerts import Incident, alert_log, incidents
from monitor.store.queries.compare import canary_counts, latency_by_target, totals_by_target
from monitor.store.queries.drills import drill_run, drill_summaries
from monitor.store.queries.overview import vantage_points
from monitor.store.queries.providers import (
    TargetState,
    TargetSummary,
    availability_series,
    current_states,
    error_counts,
    known_targets,
    latency_series,
    latest_status,
    target_summary,
    target_with_history,
)
from monitor.store.queries.risk import BudgetCounts, DrillObservation, budget_counts, drill_observations

__all__ = [
    "MINUTE_MAX",
    "RAW_MAX",
    "BudgetCounts",
    "DrillObservation",
    "Incident",
    "TargetState",
    "TargetSummary",
    "alert_log",
    "availability_series",
    "budget_counts",
    "canary_counts",
    "close_incident",
    "current_states",
    "drill_observations",
    "drill_run",
    "drill_summaries",
    "error_counts",
    "incidents",
    "known_targets",
    "latency_by_target",
    "latency_series",
    "latest_status",
    "open_incident",
    "open_incident_for",
    "pick_source",
    "record_status",
    "set_vendor_post",
    "target_summary",
    "target_with_history",
    "totals_by_target",
    "vantage_points",
]
