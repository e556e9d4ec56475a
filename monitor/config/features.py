"""``features:``: what the product does with AI, and which backends each feature depends on.

Each feature has a chain: its primary backend, then fallbacks in order. A backend is a target
name from ``targets`` or a catalog provider; the last resort can be a non-AI degraded mode
(``degraded: heuristic``) with a quality factor (0-1: how much of the feature it keeps).
The risk model (`monitor.risk`) scores each feature from this chain, and drills check it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated, Literal, Self

from annotated_types import Interval
from pydantic import Field, model_validator

from monitor.config.base import Loc, Section, Text
from monitor.durations import Duration

Criticality = Literal["low", "medium", "high", "critical"]


class ChainLink(Section):
    """One step of a feature's chain: an AI backend, or a non-AI degraded mode."""

    backend: Text | None = None
    """A target name (from ``targets``) or a catalog provider."""
    degraded: Text | None = None
    """A non-AI fallback, e.g. ``heuristic`` or ``cached``: the feature keeps working, worse."""
    quality: Annotated[float, Interval(gt=0, le=1)] | None = None
    """For a degraded mode: the share of the feature's value it keeps (default 0.5)."""
    failure_domain: Text | None = None
    """Backends in one failure domain fail together (default: the backend's provider)."""

    @model_validator(mode="after")
    def _one_kind(self) -> Self:
        if (self.backend is None) == (self.degraded is None):
            raise ValueError("give exactly one of 'backend' (an AI backend) or 'degraded' (a non-AI fallback)")
        if self.backend is not None and self.quality is not None:
            raise ValueError("'quality' is for a degraded mode; an AI backend's quality is measured "
                             "(features.<name>.eval, airisk eval run), not declared")
        return self


class LatencyBudget(Section):
    """An answer slower than this counts as unavailable for the feature."""

    first_token: Duration | None = None
    total: Duration | None = None


class SloConfig(Section):
    """A feature's service level objective: the share of ``window`` it must be available."""

    objective: Annotated[float, Interval(gt=0, lt=1)]
    """e.g. 0.999: the error budget is the rest (0.1% of the window)."""
    window: Duration = 30 * 86400.0
    """The SLO's period (default 30 days); burn rates are measured against its budget."""


class FeatureConfig(Section):
    chain: Annotated[list[ChainLink], Field(min_length=1)]
    """Primary backend first, then fallbacks in the order the product tries them."""
    criticality: Criticality = "medium"
    slo: SloConfig | None = None
    """Alerted on by ``feature_slo`` rules: multi-window, multi-burn-rate (monitor/alerts/burn.py)."""
    latency_budget: LatencyBudget = Field(default_factory=LatencyBudget)
    description: str = ""
    eval: Text | None = None
    """The feature's eval set: a JSONL file of cases (a relative path is read from the config file's
    folder). `airisk eval run` measures every AI backend of the chain, and each candidate, on it."""
    candidates: list[Text] = Field(default_factory=list)
    """Owned backends to measure on the eval set even though the chain does not use them yet
    ("could we own this feature?"): target names or catalog providers."""
    min_quality: Annotated[float, Interval(ge=0, le=1)] | None = None
    """The pass rate (lower bound of its 95% interval) an AI fallback needs to count at all; unset: any
    measured quality counts, as far as it goes."""
    rate: Annotated[float, Interval(gt=0, le=1e6), Field(allow_inf_nan=False)] | None = None
    """The feature's peak traffic, requests a second; unset: read from the proxy log when it has any.
    A fallback's measured capacity is compared with it (traffic above capacity is unserved)."""


def feature_problems(features: dict[str, FeatureConfig], backends: Iterable[str]) -> list[tuple[Loc, str]]:
    """Chains (and candidates) that name an unknown backend, or that start with a degraded mode."""
    known = set(backends)
    problems: list[tuple[Loc, str]] = []
    for name, feature in features.items():
        if feature.chain and feature.chain[0].degraded is not None:
            problems.append((("features", name, "chain", 0), "the primary must be an AI backend, not a degraded mode"))
        for i, link in enumerate(feature.chain):
            if link.backend is not None and link.backend not in known:
                problems.append((("features", name, "chain", i, "backend"),
                                 f"unknown backend {link.backend!r}: name a target or a catalog provider"))
        for i, candidate in enumerate(feature.candidates):
            if candidate not in known:
                problems.append((("features", name, "candidates", i),
                                 f"unknown backend {candidate!r}: name a target or a catalog provider"))
    return problems
