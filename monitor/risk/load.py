"""From `airisk.yaml` and the store to the risk model's inputs: the thin, impure half of `monitor.risk`.

What it reads, all over one window ending now:

- per chain backend and feature: probes counted, answered, and answered within the feature's latency
  budget (`monitor.store.queries.budget_counts`: every region together, confirmation probes never);
- drills (`monitor.store.queries.drill_observations`): which fallbacks a drill saw answering the
  feature (the rule of `monitor.store.drills.verified_fallbacks`), and the feature's success rate
  in the latest drill that broke its primary;
- the proxy log (`monitor.store.proxylog.observed_dependencies`) and the routes drills saw
  answering: routes a feature was seen calling that its chain does not name, and features seen
  but not declared;
- per feature and backend, over the verification window: the latest eval run's quality figure and
  the latest capacity search (`monitor.store.quality`);
- per feature, its peak traffic: ``features.<name>.rate``, else the busiest minute of the proxy log
  over the window (`monitor.store.proxylog.peak_rates`, requests / 60).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from sqlmodel import Session

from monitor.config.features import FeatureConfig
from monitor.config.model import AiriskConfig
from monitor.dependencies import compare
from monitor.risk.model import (
    DEFAULT_QUALITY,
    FeatureInput,
    Link,
    Measurement,
    RiskReport,
    assess,
    what_if,
    worst_first,
)
from monitor.store.proxylog import ObservedEdge, PeakRate, observed_dependencies, peak_rates
from monitor.store.quality import capacity_figures, quality_figures
from monitor.store.queries import DrillObservation, budget_counts, drill_observations

# Raw results (exact) for the last two days, hour rollups (within one histogram bucket) before:
# a month of raw rows for 50 targets took ~3 s to read, the same month of rollups ~0.1 s.
EXACT_RECENT = timedelta(days=2)

WINDOW = timedelta(days=30)
VERIFIED_WITHIN = timedelta(days=90)
"""A drill, an eval run or a capacity search older than this no longer counts: code, models and providers
change."""


class RiskError(ValueError):
    """A what-if that names an unknown feature or backend."""


@dataclass(frozen=True, slots=True)
class WhatIf:
    """Recompute ``feature`` as if ``add_fallback`` were a verified fallback and/or ``primary`` its primary."""

    feature: str
    add_fallback: str | None = None
    primary: str | None = None


@dataclass(frozen=True, slots=True)
class _Backend:
    name: str
    provider: str
    local: bool
    targets: tuple[str, ...]  # whose probes measure it


def resolve_backend(*, config: AiriskConfig, name: str) -> _Backend:
    """Which targets' probes measure a chain backend, its provider, and whether it is owned.

    A target name measures that target. Else "local" with a served ``local_model`` is its target;
    else a provider name pools every target of that provider; else the name itself (history
    stored under that target name, if any).
    """
    from probes.catalog import CATALOG

    targets = {t.target_name: t for t in config.targets}
    if name in targets:
        t = targets[name]
        entry = CATALOG.get(t.provider)
        return _Backend(name, t.provider, t.local if t.local is not None else bool(entry and entry.local), (name,))
    entry = CATALOG.get(name)
    local = bool(entry and entry.local)
    if name == "local" and config.local_model is not None and config.local_model.serve:
        return _Backend(name, "local", True, ("local",))
    pooled = tuple(n for n, t in targets.items() if t.provider == name)
    return _Backend(name, name, local, pooled or (name,))


class _Measurer:
    """Budget counts per (targets, budget), each asked of the store once; the quality and capacity
    figures per (feature, backend) proven since ``proven_since``."""

    def __init__(self, session: Session, since: datetime, until: datetime, proven_since: datetime | None) -> None:
        self.session, self.since, self.until = session, since, until
        self.cache: dict[tuple[tuple[str, ...], float | None, float | None], Measurement | None] = {}
        self.quality = quality_figures(session, since=proven_since)
        self.capacity = capacity_figures(session, since=proven_since)

    def measure(self, targets: tuple[str, ...], feature: FeatureConfig) -> Measurement | None:
        budget = feature.latency_budget
        ft = None if budget.first_token is None else budget.first_token * 1000
        tot = None if budget.total is None else budget.total * 1000
        key = (targets, ft, tot)
        if key not in self.cache:
            c = budget_counts(session=self.session, targets=targets, since=self.since, until=self.until,
                              first_token_ms=ft, total_ms=tot, exact_recent=EXACT_RECENT)
            covered = (c.last_at - c.first_at).total_seconds() if c.first_at and c.last_at else 0.0
            self.cache[key] = None if not c.count else Measurement(
                c.count, c.answered, c.within, covered, (self.until - self.since).total_seconds(),
                approximate=c.from_rollups > 0)
        return self.cache[key]


def _link(config: AiriskConfig, measurer: _Measurer, feature_name: str, feature: FeatureConfig, name: str,
          domain: str | None = None) -> Link:
    """A chain backend as the model sees it: its probes against the feature's budget, and its eval and
    capacity figures for the feature (an eval run stores each backend under its chain name)."""
    b = resolve_backend(config=config, name=name)
    return Link(name=name, kind="backend", provider=b.provider, local=b.local, domain=domain or b.provider,
                measurement=measurer.measure(b.targets, feature),
                measured_quality=measurer.quality.get((feature_name, name)),
                capacity=measurer.capacity.get((feature_name, name)))


def _chain(config: AiriskConfig, measurer: _Measurer, feature_name: str, feature: FeatureConfig,
           drills: Sequence[DrillObservation]) -> tuple[Link, ...]:
    links = []
    for i, step in enumerate(feature.chain):
        if step.backend is not None:
            link = _link(config, measurer, feature_name, feature, step.backend, step.failure_domain)
            if i > 0:
                seen = [d for d in drills if link.provider in d.answered_by and link.provider not in d.faulted_routes]
                link = _verified(link, seen)
        else:
            assert step.degraded is not None
            link = Link(name=step.degraded, kind="degraded", local=True,
                        domain=step.failure_domain or f"degraded:{step.degraded}",
                        quality=DEFAULT_QUALITY if step.quality is None else step.quality)
            seen = [d for d in drills if step.degraded in d.backends
                    or (d.ok_rate is not None and d.answered_rate is not None and d.answered_rate > d.ok_rate)]
            link = _verified(link, seen)
        links.append(link)
    return _drill_impact(tuple(links), drills)


def _verified(link: Link, seen: Sequence[DrillObservation]) -> Link:
    if not seen:
        return link
    latest = seen[-1]  # drills come oldest first
    return replace(link, verified_at=latest.started_at, verified_by=latest.drill)


def _drill_impact(chain: tuple[Link, ...], drills: Sequence[DrillObservation]) -> tuple[Link, ...]:
    """Fallback effectiveness from the latest drill that broke the primary, in place of "it works fully".

    Its full-answer rate is what the AI fallbacks seen answering achieved together (k of them: each
    gets 1 - (1 - ok)^(1/k), so that together they give ok); of the requests left, the share that got
    a degraded answer is what the degraded modes achieved (split the same way).
    """
    primary = chain[0].provider
    broke = [d for d in drills if primary in d.faulted_routes and d.requests and d.ok_rate is not None]
    if not broke:
        return chain
    d = broke[-1]
    ok = d.ok_rate or 0.0
    when = f"drill {d.drill} {d.started_at:%Y-%m-%d}"
    ai = [i for i, link in enumerate(chain) if i > 0 and link.kind == "backend"
          and link.provider in d.answered_by and link.provider not in d.faulted_routes]
    out = list(chain)
    for i in ai:
        out[i] = replace(out[i], effectiveness=1 - (1 - ok) ** (1 / len(ai)),
                         effectiveness_note=f"{when}: {ok:.0%} full answers while {primary} was down")
    degraded = [i for i, link in enumerate(chain) if link.kind == "degraded"]
    if degraded and ok < 1 and d.answered_rate is not None:
        share = min(1.0, max(0.0, (d.answered_rate - ok) / (1 - ok)))
        for i in degraded:
            out[i] = replace(out[i], effectiveness=1 - (1 - share) ** (1 / len(degraded)),
                             effectiveness_note=f"{when}: {share:.0%} of the requests not fully answered "
                                                f"while {primary} was down got a degraded answer")
    return tuple(out)


def _peak(name: str, feature: FeatureConfig, peaks: dict[str, PeakRate]) -> tuple[float | None, str]:
    """The feature's peak requests a second and where it comes from: the config's ``rate``, else the proxy log."""
    if feature.rate is not None:
        return feature.rate, f"features.{name}.rate"
    p = peaks.get(name)
    if p is None:
        return None, ""
    return p.rps, f"proxy log: {p.requests} requests in the busiest minute ({p.minute:%Y-%m-%d %H:%M} UTC) / 60"


def feature_inputs(*, config: AiriskConfig, session: Session, now: datetime | None = None,
                   window: timedelta = WINDOW, verified_within: timedelta | None = VERIFIED_WITHIN,
                   ) -> tuple[dict[str, FeatureInput], dict[str, tuple[str, ...]], _Measurer]:
    """Every declared feature's model input; the features seen (proxy log, drills) but not declared,
    with the routes they called; and the measurer, for what-ifs over the same window."""
    now = (now or datetime.now(UTC)).astimezone(UTC)
    since = now - window
    proven_since = now - verified_within if verified_within else None
    measurer = _Measurer(session, since, now, proven_since)
    drills = drill_observations(session=session, since=proven_since)
    peaks = peak_rates(session=session, since=since, until=now)
    # Observed edges: the proxy log over the window, and the routes drills saw answering.
    edges = [*observed_dependencies(session=session, since=since),
             *(ObservedEdge(d.feature, route, d.requests, 1, d.started_at) for d in drills for route in d.answered_by)]
    deps = {d.feature: d for d in compare(config.features, config.backend_provider, edges)}
    inputs = {}
    for name, feature in config.features.items():
        mine = [d for d in drills if d.feature == name]
        peak, source = _peak(name, feature, peaks)
        inputs[name] = FeatureInput(name=name, chain=_chain(config, measurer, name, feature, mine),
                                    criticality=feature.criticality,
                                    undeclared_routes=tuple(deps[name].undeclared) if name in deps else (),
                                    min_quality=feature.min_quality, peak_rps=peak, peak_source=source)
    undeclared = {n: tuple(sorted(d.observed)) for n, d in deps.items() if not d.declared_feature}
    return inputs, undeclared, measurer


def score_features(*, config: AiriskConfig, session: Session, now: datetime | None = None,
                   window: timedelta = WINDOW, verified_within: timedelta | None = VERIFIED_WITHIN,
                   what_ifs: Sequence[WhatIf] = ()) -> RiskReport:
    """The risk of every declared feature over ``window`` (worst first), and the asked what-ifs.

    Raises `RiskError` for a what-if naming an unknown feature or backend.
    """
    now = (now or datetime.now(UTC)).astimezone(UTC)
    inputs, undeclared, measurer = feature_inputs(config=config, session=session, now=now, window=window,
                                                  verified_within=verified_within)
    scenarios = []
    known = config.backend_names()
    for w in what_ifs:
        if w.feature not in inputs:
            raise RiskError(f"what-if: no feature named {w.feature!r} (declared: {', '.join(sorted(inputs)) or '-'})")
        for backend in filter(None, (w.add_fallback, w.primary)):
            if backend not in known:
                raise RiskError(f"what-if: unknown backend {backend!r}: name a target or a catalog provider")
        feature = config.features[w.feature]
        changed = what_if(
            feature=inputs[w.feature],
            add_fallback=_link(config, measurer, w.feature, feature, w.add_fallback) if w.add_fallback else None,
            primary=_link(config, measurer, w.feature, feature, w.primary) if w.primary else None)
        scenarios.append((assess(feature=inputs[w.feature]), assess(feature=changed)))
    return RiskReport(window_s=window.total_seconds(), generated_at=now,
                      features=tuple(worst_first([assess(feature=f) for f in inputs.values()])),
                      undeclared_features=undeclared, what_ifs=tuple(scenarios))
