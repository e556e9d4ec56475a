"""Can we own it? Per feature, each owned backend beside the hosted primary: quality, latency against the
budget, capacity against peak traffic, cost per 1,000 requests, and the verdict (`dashboard.queries.ownable`).

Read from the latest eval run of each (feature, backend) and its latest capacity search
(`monitor.store.quality`) within the risk model's ``VERIFIED_WITHIN`` (90 days), whatever the sidebar's
window: eval runs are rare and deliberate, and what is older no longer counts in the score either.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field, replace
from datetime import datetime

import pandas as pd
from sqlmodel import Session

from dashboard.queries.common import frame
from dashboard.queries.ownable import NOT_MEASURED, Budget, Ownability, ownability
from monitor.config import AiriskConfig
from monitor.config.features import FeatureConfig
from monitor.quality.figures import CapacityFigure, QualityFigure
from monitor.risk import resolve_backend
from monitor.risk.load import VERIFIED_WITHIN, WINDOW
from monitor.store.proxylog import PeakRate, peak_rates
from monitor.store.quality import capacity_figures, quality_figures, run_answers

OWN_COLUMNS = ("feature", "backend", "role", "owned", "pass_rate", "interval", "lower", "upper", "judged",
               "unjudged", "errors", "ttft_p95_ms", "total_p95_ms", "budget", "capacity_rps", "traffic_rps",
               "traffic_from", "cost_per_1000", "cost_from", "verdict", "why", "to_run")
STEP_COLUMNS = ("feature", "backend", "rate", "p95_ms", "pass_rate", "ok", "requests", "errors")

HOSTED_COST = "catalog prices × measured tokens"
NO_MACHINE_COST = "no price: set local_model.cost_per_hour"


@dataclass(frozen=True, slots=True)
class OwnView:
    """What the "Can we own it?" page shows."""

    table: pd.DataFrame
    """`OWN_COLUMNS`: per feature (config order), the primary, then each owned backend (chain, then candidates)."""
    steps: pd.DataFrame
    """`STEP_COLUMNS`: every rate each capacity search tried."""
    capacities: dict[tuple[str, str], CapacityFigure] = field(default_factory=dict)
    """The capacity searches of the backends in ``table``."""
    budgets: dict[str, Budget] = field(default_factory=dict)
    """Each feature's latency budget (ms)."""
    no_owned: tuple[str, ...] = ()
    """Features with no owned backend in their chain or candidates."""
    no_eval: tuple[str, ...] = ()
    """Features without an eval set (``features.<name>.eval`` unset)."""

    @property
    def measured(self) -> bool:
        """Whether any backend has an eval figure."""
        return bool(self.table["judged"].notna().any()) if not self.table.empty else False


def budget_of(feature: FeatureConfig) -> Budget:
    b = feature.latency_budget
    return Budget(None if b.first_token is None else b.first_token * 1000, None if b.total is None else b.total * 1000)


def budget_text(budget: Budget) -> str:
    """``"first token 2 s, total 8 s"``; ``"none"`` when unbounded."""
    parts = [f"{name} {ms / 1000:g} s" for name, ms in (("first token", budget.first_token_ms),
                                                      ("total", budget.total_ms)) if ms is not None]
    return ", ".join(parts) or "none"


def traffic(config: AiriskConfig, feature: str, peaks: dict[str, PeakRate]) -> tuple[float | None, str]:
    """The feature's peak traffic in requests a second, and where it comes from, as the risk model takes it:
    ``features.<name>.rate`` when set, else the proxy log's busiest minute (``peaks``, from
    `monitor.store.proxylog.peak_rates` over the risk model's window), else unknown."""
    rate = config.features[feature].rate
    if rate is not None:
        return rate, f"features.{feature}.rate"
    peak = peaks.get(feature)
    if peak is None:
        return None, "traffic unknown"
    return peak.rps, f"proxy log: busiest minute {peak.minute:%Y-%m-%d %H:%M} UTC, {peak.requests} requests"


def owned_cost(*, cost_per_hour: float | None, capacity: CapacityFigure | None,
               mean_total_ms: float | None) -> tuple[float | None, str]:
    """USD per 1,000 requests on an owned machine, and how it was reckoned.

    The machine's hourly cost over the requests it serves an hour: at its measured capacity when there is
    one (and it held a rate), else one request at a time at the eval's mean total time (an upper bound:
    a server takes several at once)."""
    if cost_per_hour is None:
        return None, NO_MACHINE_COST
    if capacity is not None and capacity.rate_rps > 0:
        per_hour = capacity.rate_rps * 3600
        return 1000 * cost_per_hour / per_hour, f"machine cost at capacity ({capacity.rate_rps:.3g} requests/s)"
    if mean_total_ms is not None and mean_total_ms > 0:
        per_hour = 3600 * 1000 / mean_total_ms
        return 1000 * cost_per_hour / per_hour, f"machine cost one at a time (mean {mean_total_ms:.0f} ms)"
    return None, "not measured"


def _mean_total_ms(session: Session, figure: QualityFigure) -> float | None:
    times = [a.total_ms for a in run_answers(session, figure.run_id)
             if a.backend == figure.backend and a.error_kind is None and a.total_ms is not None]
    return statistics.fmean(times) if times else None


def _errors_text(figure: QualityFigure | None) -> str:
    if figure is None or not figure.errors:
        return ""
    return ", ".join(f"{k} ×{n}" for k, n in sorted(figure.errors.items()))


def _primary_run(name: str, feature: FeatureConfig, backend: str, figure: QualityFigure | None) -> str:
    if figure is not None:
        return ""
    if feature.eval is None:
        return f"set features.{name}.eval to a JSONL file of cases"
    return f"airisk eval run --feature {name} --backend {backend}"


def _backends(config: AiriskConfig, feature: FeatureConfig) -> list[tuple[str, str, bool]]:
    """(backend, role, owned): the primary, then each owned fallback, then each owned candidate."""
    ai = [link.backend for link in feature.chain if link.backend is not None]
    primary = ai[0]
    out = [(primary, "owned primary" if resolve_backend(config=config, name=primary).local else "hosted primary",
            resolve_backend(config=config, name=primary).local)]
    seen = {primary}
    for name, role in [*((b, "owned fallback") for b in ai[1:]), *((b, "owned candidate") for b in feature.candidates)]:
        if name not in seen and resolve_backend(config=config, name=name).local:
            seen.add(name)
            out.append((name, role, True))
    return out


def own_view(*, session: Session, config: AiriskConfig | None, now: datetime) -> OwnView | None:
    """Every declared feature's owned backends beside its primary, with verdicts; None without features."""
    if config is None or not config.features:
        return None
    since = now - VERIFIED_WITHIN
    figures = quality_figures(session, since=since)
    capacities = capacity_figures(session, since=since)
    peaks = peak_rates(session=session, since=now - WINDOW, until=now)
    cost_per_hour = config.local_model.cost_per_hour if config.local_model is not None else None
    rows, steps, shown_caps, budgets, no_owned = [], [], {}, {}, []
    for name, feature in config.features.items():
        budget = budgets[name] = budget_of(feature)
        rate, rate_from = traffic(config, name, peaks)
        backends = _backends(config, feature)
        primary_name = backends[0][0]
        primary = figures.get((name, primary_name))
        if not any(owned for _, role, owned in backends if role != "hosted primary"):
            no_owned.append(name)
        for backend, role, owned in backends:
            q, cap = figures.get((name, backend)), capacities.get((name, backend))
            if cap is not None:
                shown_caps[(name, backend)] = cap
                steps += [{"feature": name, "backend": backend, **{k: s.get(k) for k in STEP_COLUMNS[2:]}}
                          for s in cap.steps]
            verdict: Ownability | None = None
            if owned:
                if q is None and feature.eval is None:
                    verdict = Ownability(NOT_MEASURED, (f"no eval set: set features.{name}.eval to a JSONL file "
                                                        "of cases",))
                else:
                    # An owned primary meets its own bar when min_quality is unset: it is the bar.
                    verdict = ownability(feature=name, backend=backend, quality=q, primary=primary, capacity=cap,
                                         min_quality=feature.min_quality, budget=budget, traffic_rps=rate,
                                         primary_name=primary_name)
                    if q is None:  # say how far back was looked: an older run exists for the risk model neither
                        verdict = replace(verdict, reasons=(f"no eval run in the last {VERIFIED_WITHIN.days} days",))
            if owned:
                cost, cost_from = owned_cost(cost_per_hour=cost_per_hour, capacity=cap,
                                             mean_total_ms=_mean_total_ms(session, q) if q is not None else None)
            else:
                cost = q.cost_per_1000 if q is not None else None
                cost_from = HOSTED_COST if cost is not None else ("unpriced" if q is not None else "not measured")
            judged = q.judged if q is not None and q.judged else None
            lower, upper = q.interval if judged else (None, None)
            rows.append({
                "feature": name, "backend": backend, "role": role, "owned": owned,
                "pass_rate": q.pass_rate if q is not None else None, "lower": lower, "upper": upper,
                "interval": f"{lower:.0%}–{upper:.0%}" if judged else "",
                "judged": judged, "unjudged": q.unjudged if q is not None else None, "errors": _errors_text(q),
                "ttft_p95_ms": q.ttft_p95_ms if q is not None else None,
                "total_p95_ms": q.total_p95_ms if q is not None else None, "budget": budget_text(budget),
                "capacity_rps": cap.rate_rps if cap is not None else None, "traffic_rps": rate,
                "traffic_from": rate_from, "cost_per_1000": cost, "cost_from": cost_from,
                "verdict": verdict.verdict if verdict is not None else "",
                "why": "; ".join(verdict.reasons) if verdict is not None else "",
                "to_run": "; ".join(verdict.runs) if verdict is not None else _primary_run(name, feature, backend, q),
            })
    return OwnView(frame(rows, OWN_COLUMNS), frame(steps, STEP_COLUMNS), shown_caps, budgets, tuple(no_owned),
                   tuple(n for n, f in config.features.items() if f.eval is None))
