"""The features' risk as both Overview and Features show it, and the dependency map (features to
backends: primary, fallbacks, what was seen called but not declared)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import pandas as pd
from sqlmodel import Session

from dashboard.queries.common import frame
from dashboard.queries.risk import feature_table, risk_report, undeclared_table
from monitor.config import AiriskConfig
from monitor.risk import RiskReport

EDGE_COLUMNS = ("feature", "backend", "role", "position", "verified", "counted", "declared", "owned", "traffic",
                "minutes", "status")


def dependency_edges(report: RiskReport) -> pd.DataFrame:
    """Feature -> backend edges: each chain link (``primary``, ``fallback`` or ``degraded``, with whether a
    drill verified it), then routes seen called that no chain names (``undeclared``), also for features
    not declared at all."""
    rows = []

    def undeclared(feature: str, route: str, status: str) -> dict:
        return {"feature": feature, "backend": route, "role": "undeclared", "position": None, "verified": None,
                "counted": False, "declared": False, "owned": None, "traffic": None, "minutes": None, "status": status}

    for f in report.features:
        for i, lr in enumerate(f.links):
            link = lr.link
            role = "primary" if i == 0 else "degraded" if link.kind == "degraded" else "fallback"
            rows.append({"feature": f.feature, "backend": link.label, "role": role, "position": i,
                         "verified": None if i == 0 else link.verified_at is not None, "counted": lr.counted,
                         "declared": True, "owned": link.local, "traffic": lr.traffic, "minutes": lr.minutes,
                         "status": lr.status})
        rows += [undeclared(f.feature, route, "seen calling it; not in the feature's chain")
                 for route in f.undeclared_routes]
    for name, routes in sorted(report.undeclared_features.items()):
        rows += [undeclared(name, route, "feature not declared in airisk.yaml") for route in routes]
    return frame(rows, EDGE_COLUMNS)


@dataclass(frozen=True, slots=True)
class RiskView:
    """The risk report and the tables both Overview and Features draw from it."""

    report: RiskReport
    features: pd.DataFrame  # risk.feature_table: worst first
    undeclared: pd.DataFrame  # risk.undeclared_table
    edges: pd.DataFrame  # EDGE_COLUMNS

    @property
    def measured(self) -> bool:
        return self.report.measured


def risk_view(*, session: Session, config: AiriskConfig | None, now: datetime) -> RiskView | None:
    """Every declared feature's risk over the risk model's 30 days with its tables; None without features."""
    if config is None or not config.features:
        return None
    report = risk_report(session=session, config=config, now=now)
    return RiskView(report, feature_table(report), undeclared_table(report), dependency_edges(report))
