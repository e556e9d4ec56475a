"""A feature's breakdown as JSON (`airisk score --json`): every term of every link, named as
`docs/RISK_MODEL.md` names it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from monitor.quality.figures import CapacityFigure, QualityFigure
    from monitor.risk.model import LinkRisk


def link_dict(lr: LinkRisk) -> dict[str, Any]:
    link, m = lr.link, lr.link.measurement
    return {
        "name": link.name, "kind": link.kind, "role": lr.role, "provider": link.provider or None,
        "local": link.local, "failure_domain": link.domain, "counted": lr.counted, "status": lr.status,
        "availability_used": lr.availability,
        "measured": None if m is None else {
            "availability_within_budget": m.availability, "availability_any_latency": m.raw_availability,
            "samples": m.samples, "answered": m.answered, "within_budget": m.within_budget,
            "covered_days": m.covered_s / 86400, "window_days": m.window_s / 86400, "approximate": m.approximate},
        "quality": lr.value, "effectiveness": 1.0 if link.effectiveness is None else link.effectiveness,
        "effectiveness_source": ("assumed (no drill measured it)" if link.effectiveness is None
                                 else link.effectiveness_note or "given"),
        "verified_at": link.verified_at.isoformat() if link.verified_at else None, "verified_by": link.verified_by,
        "minutes": lr.minutes, "traffic": lr.traffic, "minutes_if_verified": lr.minutes_if_verified,
        "measured_quality": _quality_dict(link.measured_quality), "assumed_quality": link.assumed_quality,
        "capacity": _capacity_dict(link.capacity), "capacity_share": lr.capacity_share,
        "effectiveness_used": lr.effectiveness, "lacks": list(lr.lacks), "notes": list(lr.notes),
        "minutes_at_min_quality": lr.minutes_at_min_quality,
    }


def _quality_dict(q: QualityFigure | None) -> dict[str, Any] | None:
    if q is None:
        return None
    lo, hi = q.interval
    return {"run_id": q.run_id, "at": q.at.isoformat(), "cases": q.cases, "judged": q.judged, "passed": q.passed,
            "failed": q.failed, "unjudged": q.unjudged, "errors": dict(q.errors), "pass_rate": q.pass_rate,
            "interval": [lo, hi], "lower": q.lower}


def _capacity_dict(c: CapacityFigure | None) -> dict[str, Any] | None:
    if c is None:
        return None
    return {"rate_rps": c.rate_rps, "at": c.at.isoformat(), "p95_ms": c.p95_ms, "pass_rate": c.pass_rate,
            "budget_ms": c.budget_ms}
