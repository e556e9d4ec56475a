"""Whether an owned backend can do a feature's job: the verdict of the "Can we own it?" page.

Pure: figures in (`monitor.quality.figures`), a verdict out. An owned backend is

- **ownable now** when its quality holds (the lower bound of its pass rate's 95% interval reaches the
  feature's ``min_quality``, or the hosted primary's own lower bound when ``min_quality`` is unset), its
  p95 times are within the feature's latency budget, and its measured capacity covers the feature's
  peak traffic;
- **ownable with more capacity** when quality and latency hold but capacity falls short (by how much);
- **not with this model** when quality or latency falls short (which, and by how much);
- **not measured** when a figure the verdict needs is missing (and which command measures it).

The lower bound, not the pass rate, is what counts, as in the risk model: 28 of 30 is not proof of 93%.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from monitor.quality.figures import CapacityFigure, QualityFigure

OWNABLE = "ownable now"
MORE_CAPACITY = "ownable with more capacity"
NOT_THIS_MODEL = "not with this model"
NOT_MEASURED = "not measured"
VERDICTS = (OWNABLE, MORE_CAPACITY, NOT_THIS_MODEL, NOT_MEASURED)
"""Best first (``not measured`` is not worse than ``not with this model``, only unknown)."""


@dataclass(frozen=True, slots=True)
class Budget:
    """A feature's latency budget in milliseconds (None: not bounded)."""

    first_token_ms: float | None = None
    total_ms: float | None = None


@dataclass(frozen=True, slots=True)
class Ownability:
    """A verdict, why, and what to run to complete it."""

    verdict: str
    """One of `VERDICTS`."""
    reasons: tuple[str, ...] = ()
    """What decided it, in words (what fell short and by how much, or what is missing)."""
    runs: tuple[str, ...] = ()
    """Commands (or config changes) that would measure what is missing."""
    capacity_factor: float | None = None
    """For ``ownable with more capacity``: traffic over capacity (inf when no rate was held)."""

    @property
    def text(self) -> str:
        """The verdict and its reasons on one line."""
        return f"{self.verdict}: {'; '.join(self.reasons)}" if self.reasons else self.verdict


def needs_text(factor: float) -> str:
    """``"needs 2.3× the capacity"``: the factor rounded up, so a shortfall never reads as 1.0×."""
    if math.isinf(factor):
        return "needs more capacity: it held none of the rates tried within the budget"
    shown = max(math.ceil(factor * 10 - 1e-9) / 10, 1.1)  # the epsilon: 2.3 * 10 is 23.000000000000004
    return f"needs {shown:.1f}× the capacity"


def _pct(x: float) -> str:
    return f"{x:.0%}"


def _ms(x: float) -> str:
    return f"{x / 1000:.2g} s" if x >= 1000 else f"{x:.0f} ms"


def _rps(x: float) -> str:
    return f"{x:.3g} requests/s"


def ownability(*, feature: str, backend: str, quality: QualityFigure | None, primary: QualityFigure | None,
               capacity: CapacityFigure | None, min_quality: float | None, budget: Budget,
               traffic_rps: float | None, primary_name: str | None = None) -> Ownability:
    """The verdict for owned ``backend`` on ``feature``.

    ``quality``: its latest eval figure; ``primary``: the hosted primary's (the bar when ``min_quality``
    is None); ``capacity``: its latest capacity search; ``traffic_rps``: the feature's peak traffic
    (None: unknown). Shortfalls in quality or latency decide before anything missing does: a model too
    weak on what was measured will not become ownable by measuring more.
    """
    run_eval = f"airisk eval run --feature {feature} --backend {backend}"
    run_capacity = f"airisk eval capacity --feature {feature} --backend {backend}"
    if quality is None:
        return Ownability(NOT_MEASURED, ("no eval run",), (run_eval,))
    if quality.judged == 0:
        if quality.unjudged:
            why = f"none of its {quality.cases} answers could be judged ({quality.unjudged} unjudged)"
        elif quality.error_count:
            kinds = ", ".join(f"{k} ×{n}" for k, n in sorted(quality.errors.items()))
            why = f"it answered none of the {quality.cases} cases ({kinds})"
        else:
            why = "no case was run"
        return Ownability(NOT_MEASURED, (why,), (run_eval,))

    short: list[str] = []
    missing: list[str] = []
    runs: list[str] = []
    lower = quality.lower
    if min_quality is not None:
        if lower < min_quality:
            short.append(f"quality: at least {_pct(lower)} pass (95% interval), below min_quality {_pct(min_quality)}")
    elif primary is not None and primary.judged:
        if lower < primary.lower:
            short.append(f"quality: at least {_pct(lower)} pass (95% interval), below the primary's "
                         f"{_pct(primary.lower)}")
    else:
        missing.append("no quality bar: set min_quality, or run the eval on the primary")
        if primary_name is not None:
            runs.append(f"airisk eval run --feature {feature} --backend {primary_name}")

    for name, p95, bound in (("time to first token", quality.ttft_p95_ms, budget.first_token_ms),
                             ("total time", quality.total_p95_ms, budget.total_ms)):
        if bound is None:
            continue
        if p95 is None:
            missing.append(f"no {name} measured against the {_ms(bound)} budget")
            if run_eval not in runs:
                runs.append(run_eval)
        elif p95 > bound:
            short.append(f"too slow: {name} p95 {_ms(p95)}, over the {_ms(bound)} budget ({p95 / bound:.1f}×)")
    if short:
        return Ownability(NOT_THIS_MODEL, tuple(short))

    if capacity is None:
        missing.append("capacity not measured")
        runs.append(run_capacity)
    if traffic_rps is None:
        missing.append(f"traffic unknown: set features.{feature}.rate (peak requests a second), or send the "
                       "product's calls through `airisk proxy --store` to log it")
    if missing:
        return Ownability(NOT_MEASURED, tuple(missing), tuple(runs))
    assert capacity is not None and traffic_rps is not None
    if capacity.rate_rps >= traffic_rps:
        return Ownability(OWNABLE, (f"holds {_rps(capacity.rate_rps)}, traffic peaks at {_rps(traffic_rps)}",))
    factor = traffic_rps / capacity.rate_rps if capacity.rate_rps > 0 else math.inf
    held = f"holds {_rps(capacity.rate_rps)}, " if capacity.rate_rps > 0 else ""
    return Ownability(MORE_CAPACITY, (f"{needs_text(factor)} ({held}traffic peaks at {_rps(traffic_rps)})",),
                      capacity_factor=factor)
