"""The store: SQLite or PostgreSQL history of probe results, rollups, incidents and vendor status.

`make_engine` + `migrate` open it, `ResultWriter` is the monitor's buffered write path,
`monitor.store.results` writes, `monitor.store.queries` reads (plain dataclasses and dicts), and
`monitor.store.bulk` writes history made all at once (`chaos.history`) with the same schema.
Every data-access function is keyword-only, takes aware UTC datetimes and never commits.
"""

from monitor.store.buffer import ResultWriter
from monitor.store.db import database_url, make_engine, migrate
from monitor.store.incidents import close_incident, open_incident, open_incident_for, record_status, set_vendor_post
from monitor.store.models import (
    ALL_TABLES,
    AlertOutbox,
    IncidentRow,
    ProbeRow,
    RollupHour,
    RollupMinute,
    StatusSnapshot,
    TargetRow,
    UTCDateTime,
)
from monitor.store.queries import (
    Incident,
    TargetState,
    TargetSummary,
    availability_series,
    current_states,
    error_counts,
    incidents,
    latest_status,
    pick_source,
    target_summary,
)
from monitor.store.results import prune, upsert_targets, write_results

__all__ = [
    "ALL_TABLES",
    "AlertOutbox",
    "Incident",
    "IncidentRow",
    "ProbeRow",
    "ResultWriter",
    "RollupHour",
    "RollupMinute",
    "StatusSnapshot",
    "TargetRow",
    "TargetState",
    "TargetSummary",
    "UTCDateTime",
    "availability_series",
    "close_incident",
    "current_states",
    "database_url",
    "error_counts",
    "incidents",
    "latest_status",
    "make_engine",
    "migrate",
    "open_incident",
    "open_incident_for",
    "pick_source",
    "prune",
    "record_status",
    "set_vendor_post",
    "target_summary",
    "upsert_targets",
    "write_results",
]
