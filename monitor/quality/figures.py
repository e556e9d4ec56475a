"""The figures quality measurement produces, as the risk model, the dashboard and the CLI read them.

Pure values: the store (`monitor.store.quality`) builds them from rows, the risk model
(`monitor.risk`) and the "Can we own it?" page read them. Nothing here touches a database.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from monitor.quality.stats import wilson


@dataclass(frozen=True, slots=True)
class QualityFigure:
    """One backend's answers to one feature's eval set, in its latest run."""

    feature: str
    backend: str
    run_id: int
    at: datetime
    """When the run started."""
    cases: int
    """Cases sent to this backend in the run."""
    passed: int
    """Answered, judged, and every judged check passed."""
    failed: int
    """Answered, judged, and a check failed: a quality failure."""
    unjudged: int = 0
    """Answered, but no check could judge it (a judge backend down, no reference)."""
    errors: dict[str, int] = field(default_factory=dict)
    """Not answered, by error kind (counted apart from quality failures)."""
    ttft_p50_ms: float | None = None
    ttft_p95_ms: float | None = None
    total_p50_ms: float | None = None
    total_p95_ms: float | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float | None = None
    """What the run's answers cost this backend (catalog prices x measured tokens); None: unpriced."""
    local: bool = False
    """An owned backend (runs on our machines)."""

    @property
    def judged(self) -> int:
        return self.passed + self.failed

    @property
    def pass_rate(self) -> float | None:
        return self.passed / self.judged if self.judged else None

    @property
    def interval(self) -> tuple[float, float]:
        """The 95% Wilson interval of the pass rate (0, 1 when nothing was judged)."""
        return wilson(self.passed, self.judged)

    @property
    def lower(self) -> float:
        """What the risk model counts: the interval's lower bound."""
        return self.interval[0]

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    @property
    def cost_per_1000(self) -> float | None:
        answered = self.cases - self.error_count
        return None if self.cost_usd is None or answered <= 0 else 1000 * self.cost_usd / answered


@dataclass(frozen=True, slots=True)
class CapacityFigure:
    """The highest request rate one backend held for one feature (`airisk eval capacity`)."""

    feature: str
    backend: str
    at: datetime
    rate_rps: float
    """The highest rate at which p95 stayed within the latency budget and the pass rate held; 0: none."""
    p95_ms: float | None = None
    """p95 total time at that rate."""
    pass_rate: float | None = None
    """Pass rate at that rate."""
    budget_ms: float | None = None
    steps: tuple[dict, ...] = ()
    """Every rate tried: {"rate", "p95_ms", "pass_rate", "ok", "requests", "errors"}."""
