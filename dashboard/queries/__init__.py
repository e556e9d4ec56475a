"""What each page shows, as plain data: pure functions over `monitor` queries (DataFrames and
dataclasses out), tested without Streamlit.

Page functions (``overview``, ``risk_view``, ``what_if``, ``provider_view``, ``drill_list``,
``drill_detail``, ``comparison``, ``own_view``, ``alert_table``, ...) take keyword arguments among ``session, config,
now, window`` and their own, so the page layer caches them all one way (`dashboard.ui.load`). They
read through rollups for long windows and ask the store about all targets at once: no query per
target over raw rows.
"""

from dashboard.queries.alerts import alert_table, delivery_counts
from dashboard.queries.common import describe_cause, duration_text, safe_url
from dashboard.queries.compare import comparison
from dashboard.queries.drills import DrillDetail, drill_detail, drill_list, fault_text
from dashboard.queries.features import RiskView, dependency_edges, risk_view
from dashboard.queries.overview import Overview, incident_table, overview, provider_table
from dashboard.queries.own import OwnView, own_view
from dashboard.queries.ownable import Ownability, ownability
from dashboard.queries.providers import ProviderView, detection_vs_vendor, provider_view, target_names, vendor_status
from dashboard.queries.risk import (
    WhatIfResult,
    breakdown,
    fallback_status,
    feature_table,
    risk_report,
    undeclared_table,
    what_if,
    what_if_choices,
    what_if_table,
)

__all__ = [
    "DrillDetail",
    "Overview",
    "OwnView",
    "Ownability",
    "ProviderView",
    "RiskView",
    "WhatIfResult",
    "alert_table",
    "breakdown",
    "comparison",
    "delivery_counts",
    "dependency_edges",
    "describe_cause",
    "detection_vs_vendor",
    "drill_detail",
    "drill_list",
    "duration_text",
    "fallback_status",
    "fault_text",
    "feature_table",
    "incident_table",
    "overview",
    "own_view",
    "ownability",
    "provider_table",
    "provider_view",
    "risk_report",
    "risk_view",
    "safe_url",
    "target_names",
    "undeclared_table",
    "vendor_status",
    "what_if",
    "what_if_choices",
    "what_if_table",
]
