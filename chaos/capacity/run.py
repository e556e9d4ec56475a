"""`airisk eval capacity` behind the command line: what to judge, the search, and its stored figure.

`prepare` reads a feature's eval set and budget and resolves the backend as `airisk eval run` does
(`monitor.quality.runner`), and chooses the pass rate a step must keep (`criteria_for`):
``min_quality`` when the feature sets one; else the backend's latest eval pass rate less 10 points (load
may cost quality: answers cut short, a smaller context); else none, judging latency only and saying so.
`find_capacity` warms the backend up and runs the search (`chaos.capacity.search`) with a `Meter`;
`figure_of` is the `CapacityFigure` the store keeps (`monitor.store.quality.record_capacity`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chaos.capacity.search import Capacity, Step, search_async
from chaos.capacity.step import MIN_REQUESTS, SAMPLE, STEP_S, Criteria, Meter
from monitor.quality.figures import CapacityFigure

if TYPE_CHECKING:
    import httpx
    from sqlalchemy.engine import Engine

    from monitor.config import AiriskConfig
    from monitor.config.features import FeatureConfig
    from monitor.quality.figures import QualityFigure
    from monitor.quality.runner import Plan
    from probes import Target

QUALITY_MARGIN = 0.10  # points of pass rate a step may lose against the latest eval run, without min_quality
DEFAULT_MAX_RATE = 16.0
"""Without --max-rate or the feature's rate: enough for an owned model on one machine, and a bound on what a
hosted backend's search costs."""


class CapacityError(ValueError):
    """Bad input for a capacity search (no latency budget, nothing to send)."""


@dataclass(frozen=True, slots=True)
class Setup:
    """A search before it starts: the cases, the backend, what a step must do."""

    feature: str
    plan: Plan
    target: Target
    criteria: Criteria


def criteria_for(feature: str, backend: str, spec: FeatureConfig, figure: QualityFigure | None) -> Criteria:
    """What a step must do (pure): the feature's budget, and the pass rate to keep. `CapacityError` when the
    feature has no latency budget (without one, no rate is too high)."""
    budget = spec.latency_budget
    if budget.total is not None:
        budget_ms, on = budget.total * 1000, "total"
    elif budget.first_token is not None:
        budget_ms, on = budget.first_token * 1000, "first_token"
    else:
        raise CapacityError(f"feature {feature!r} has no latency budget, so no rate is too high: give "
                            f"features.{feature}.latency_budget.total (or first_token)")
    if spec.min_quality is not None:
        return Criteria(budget_ms, on, spec.min_quality, f"the feature's min_quality {spec.min_quality:.0%}")
    if figure is not None and figure.pass_rate is not None:
        keep = max(0.0, figure.pass_rate - QUALITY_MARGIN)
        return Criteria(budget_ms, on, keep, f"the latest eval run #{figure.run_id} passed {figure.pass_rate:.0%}, "
                                             f"less {QUALITY_MARGIN * 100:.0f} points")
    return Criteria(budget_ms, on, None, f"no eval run has judged {backend} on {feature} yet: latency only; "
                                         "`airisk eval run` to judge quality too")


def prepare(config: AiriskConfig, feature: str, backend: str, *, base_dir: Path,
            latest: Callable[[str, str], QualityFigure | None] | None = None) -> Setup:
    """The search of ``backend`` on ``feature``'s eval set. Raises `monitor.quality.runner.EvalError` (unknown
    feature or backend, no eval set), `monitor.quality.cases.CaseError` (a bad eval file) or `CapacityError`
    (no latency budget, nothing to send). ``latest(feature, backend)`` gives the backend's latest quality
    figure (`latest_quality` over an engine); it is asked only once the input is known to be good."""
    from monitor.quality.runner import plan_feature

    plan = plan_feature(config, feature, base_dir=base_dir, backends=[backend])
    spec = config.features[feature]
    target = plan.targets[0]
    criteria_for(feature, target.name, spec, None)  # no budget: refused before anything is read or stored
    if not plan.cases:
        raise CapacityError(f"feature {feature!r}: its eval set {plan.cases_file} holds only HTTP cases "
                            "(the product's request); a capacity search sends the model's messages")
    figure = latest(feature, target.name) if latest is not None else None
    return Setup(feature=feature, plan=plan, target=target, criteria=criteria_for(feature, target.name, spec, figure))


def latest_quality(engine: Engine, feature: str, backend: str) -> QualityFigure | None:
    from sqlmodel import Session

    from monitor.store.quality import quality_figures

    with Session(engine) as session:
        return quality_figures(session, feature=feature).get((feature, backend))


def default_max_rate(spec: FeatureConfig) -> float:
    """Twice the feature's peak traffic when it is known (capacity beyond that changes no score), else 16."""
    return 2 * spec.rate if spec.rate else DEFAULT_MAX_RATE


async def find_capacity(setup: Setup, *, client: httpx.AsyncClient, judge: Any = None, max_rate: float,
                        start: float = 1.0, min_rate: float = 0.1, step_s: float = STEP_S,
                        min_requests: int = MIN_REQUESTS, sample: int = SAMPLE, warm_up: int = 2,
                        settle_s: float = 0.5, on_step: Callable[[Step], None] | None = None) -> Capacity:
    """Warms the backend up, then searches; ``on_step`` is told each step as it finishes."""
    meter = Meter(feature=setup.feature, target=setup.target, cases=setup.plan.cases,
                  conversations=setup.plan.conversations, criteria=setup.criteria, client=client, judge=judge,
                  step_s=step_s, min_requests=min_requests, sample=sample, settle_s=settle_s)
    if warm_up:
        await meter.warm_up(warm_up)

    async def measure(rate: float) -> Step:
        step = await meter.measure(rate)
        if on_step is not None:
            on_step(step)
        return step

    return await search_async(measure, max_rate=max_rate, start=start, min_rate=min_rate)


def figure_of(setup: Setup, capacity: Capacity, at: datetime) -> CapacityFigure:
    best = capacity.best
    return CapacityFigure(feature=setup.feature, backend=setup.target.name, at=at, rate_rps=round(capacity.rate, 4),
                          p95_ms=best.p95_ms if best else None, pass_rate=best.pass_rate if best else None,
                          budget_ms=setup.criteria.budget_ms, steps=tuple(s.as_dict() for s in capacity.steps))


def store(engine: Engine, figure: CapacityFigure, *, duration_s: float) -> int:
    from sqlmodel import Session

    from monitor.store.quality import record_capacity

    with Session(engine) as session:
        return record_capacity(session, figure, duration_s=duration_s)
