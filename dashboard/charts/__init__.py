"""Plotly figures for the pages: each function takes what a `dashboard.queries` function returned and
gives a figure (an explaining blank one when there is nothing to draw), so tests can check what it draws."""

from dashboard.charts.alerts import alerts_by_channel
from dashboard.charts.common import empty_figure, shade_incidents
from dashboard.charts.compare import local_vs_hosted
from dashboard.charts.drills import drill_timeline
from dashboard.charts.features import EDGE_COLORS, dependency_sankey, feature_minutes, risk_breakdown
from dashboard.charts.own import capacity_curve, quality_vs_cost
from dashboard.charts.providers import availability_heatmap, detection_vs_vendor, errors_by_kind, latency_over_time

__all__ = [
    "EDGE_COLORS",
    "alerts_by_channel",
    "availability_heatmap",
    "capacity_curve",
    "dependency_sankey",
    "detection_vs_vendor",
    "drill_timeline",
    "empty_figure",
    "errors_by_kind",
    "feature_minutes",
    "latency_over_time",
    "local_vs_hosted",
    "quality_vs_cost",
    "risk_breakdown",
    "shade_incidents",
]
