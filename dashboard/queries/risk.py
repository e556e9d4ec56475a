"""The risk model, as the dashboard shows it: the report (as `airisk score` computes it), each
feature's fallbacks in words, the per-link breakdown and what-ifs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import pandas as pd
from sqlmodel import Session

from dashboard.queries.common import frame
from monitor.config import AiriskConfig
from monitor.risk import FeatureRisk, RiskError, RiskReport, WhatIf, score_features
from monitor.risk.load import WINDOW as RISK_WINDOW

__all__ = ["RISK_WINDOW", "WhatIfResult", "breakdown", "fallback_status", "feature_table", "risk_report",
           "undeclared_table", "what_if", "what_if_choices", "what_if_table"]


def risk_report(*, session: Session, config: AiriskConfig, now: datetime,
                what_ifs: Sequence[WhatIf] = ()) -> RiskReport:
    """Every declared feature's risk over the risk model's own window (30 days), as `airisk score` gives it."""
    return score_features(config=config, session=session, now=now, window=RISK_WINDOW, what_ifs=what_ifs)


_LACKS = {"drill": "no drill saw it answer", "probes": "not probed", "quality": "quality not measured",
          "min_quality": "below min_quality", "capacity": "no capacity"}


def fallback_status(f: FeatureRisk) -> str:
    """Whether the feature's fallbacks count in the score, in a few words: an AI fallback counts once a drill
    saw it answer and an eval measured its answers (at or above min_quality), a degraded mode once a drill
    saw it; what each one not counted lacks."""
    fallbacks = [lr for lr in f.links if lr.role == "fallback"]
    if not fallbacks:
        return "no fallback"
    counted = [lr.link.label for lr in fallbacks if lr.counted]
    absent = [lr.link.label + (f" ({', '.join(_LACKS.get(x, x) for x in lr.lacks)})" if lr.lacks else "")
              for lr in fallbacks if not lr.counted]
    if not absent:
        return f"verified: {', '.join(counted)}"
    if not counted:
        return f"unverified: {', '.join(absent)}"
    return f"verified: {', '.join(counted)}; unverified: {', '.join(absent)}"


FEATURE_COLUMNS = ("feature", "grade", "minutes_per_month", "outsourced_share", "fallbacks", "fallbacks_verified",
                   "main_contributor", "criticality", "score", "notes")


def feature_table(report: RiskReport) -> pd.DataFrame:
    """One row per declared feature, worst first: grade, expected downtime minutes a month, the share of
    them that lies with outsourced providers, and whether its fallbacks are drill-verified."""
    rows = []
    for f in report.features:
        fallbacks = [lr for lr in f.links if lr.role == "fallback"]
        rows.append({
            "feature": f.feature, "grade": f.grade, "minutes_per_month": f.minutes,
            "outsourced_share": f.outsourced_share if f.minutes > 0 else None,
            "fallbacks": fallback_status(f),
            "fallbacks_verified": all(lr.counted for lr in fallbacks) if fallbacks else None,
            "main_contributor": f.main_contributor or "", "criticality": f.criticality, "score": f.score,
            "notes": "; ".join([*f.notes, *f.gate_blockers]),
        })
    return frame(rows, FEATURE_COLUMNS)


def undeclared_table(report: RiskReport) -> pd.DataFrame:
    """Features the proxy log or a drill saw calling providers, that `airisk.yaml` does not declare."""
    return frame(({"feature": name, "seen_calling": ", ".join(routes)}
                  for name, routes in sorted(report.undeclared_features.items())), ("feature", "seen_calling"))


BREAKDOWN_COLUMNS = ("position", "link", "role", "kind", "provider", "owned", "counted", "status", "availability_used",
                     "within_budget", "any_latency", "samples", "minutes", "traffic", "minutes_if_verified",
                     "value", "pass_rate", "pass_rate_low", "pass_rate_high", "judged", "capacity_rps",
                     "capacity_share", "effectiveness", "minutes_at_min_quality", "verified_at", "verified_by")


def breakdown(f: FeatureRisk) -> pd.DataFrame:
    """Every link of the feature's chain with its part in the risk: why it counts or not, the
    availability used, the minutes it shares, the traffic it serves, and for an AI fallback what proves it:
    the value it counts with (its pass rate's lower bound), the interval, its capacity's share of peak
    traffic, and what reaching min_quality would leave."""
    rows = []
    for i, lr in enumerate(f.links):
        link, m, q = lr.link, lr.link.measurement, lr.link.measured_quality
        rows.append({
            "position": i, "link": link.label, "role": lr.role, "kind": link.kind, "provider": link.provider,
            "owned": link.local, "counted": lr.counted, "status": lr.status, "availability_used": lr.availability,
            "within_budget": m.availability if m and m.samples else None,
            "any_latency": m.raw_availability if m and m.samples else None, "samples": m.samples if m else 0,
            "minutes": lr.minutes, "traffic": lr.traffic, "minutes_if_verified": lr.minutes_if_verified,
            "value": lr.value, "pass_rate": q.pass_rate if q else None,
            "pass_rate_low": q.interval[0] if q and q.judged else None,
            "pass_rate_high": q.interval[1] if q and q.judged else None, "judged": q.judged if q else None,
            "capacity_rps": link.capacity.rate_rps if link.capacity else None, "capacity_share": lr.capacity_share,
            "effectiveness": lr.effectiveness, "minutes_at_min_quality": lr.minutes_at_min_quality,
            "verified_at": link.verified_at, "verified_by": link.verified_by,
        })
    return frame(rows, BREAKDOWN_COLUMNS)


def what_if_choices(config: AiriskConfig) -> list[str]:
    """Backends a what-if may name: the configured targets first (and 'local'), then the other catalog providers."""
    targets = [t.target_name for t in config.targets]
    if config.local_model is not None and config.local_model.serve and "local" not in targets:
        targets.append("local")
    rest = sorted(config.backend_names() - set(targets))
    return [*targets, *rest]


def what_if_table(report: RiskReport) -> pd.DataFrame:
    """Each asked what-if, as is and as if: minutes a month, grade, outsourced share."""
    rows = [{"feature": before.feature, "change": after.scenario, "minutes_before": before.minutes,
             "minutes_after": after.minutes, "minutes_saved": before.minutes - after.minutes,
             "grade_before": before.grade, "grade_after": after.grade,
             "outsourced_before": before.outsourced_share, "outsourced_after": after.outsourced_share}
            for before, after in report.what_ifs]
    return frame(rows, ("feature", "change", "minutes_before", "minutes_after", "minutes_saved", "grade_before",
                        "grade_after", "outsourced_before", "outsourced_after"))


@dataclass(frozen=True, slots=True)
class WhatIfResult:
    table: pd.DataFrame  # what_if_table: one row, or none when the what-if was refused
    error: str = ""


def what_if(*, session: Session, config: AiriskConfig, now: datetime, feature: str, change: str,
            backend: str) -> WhatIfResult:
    """``feature`` as if ``backend`` were added as a verified fallback (``change="add"``) or were its primary
    (``"primary"``), from the same measurements as the scores. Only that feature is measured again, so
    a what-if costs a few queries, not the whole report. A refused what-if is told in ``error``."""
    if change not in ("add", "primary"):
        return WhatIfResult(what_if_table(RiskReport(0, now, ())), f"what-if: change must be add or primary, "
                                                                   f"not {change!r}")
    scenario = WhatIf(feature, add_fallback=backend) if change == "add" else WhatIf(feature, primary=backend)
    one = config.model_copy(update={"features": {feature: config.features[feature]}}) \
        if feature in config.features else config
    try:
        return WhatIfResult(what_if_table(risk_report(session=session, config=one, now=now, what_ifs=[scenario])))
    except RiskError as exc:
        return WhatIfResult(what_if_table(RiskReport(0, now, ())), str(exc))
