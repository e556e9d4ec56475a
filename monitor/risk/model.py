"""The risk model's arithmetic: pure functions over plain inputs (no database, no config).

A feature is a chain of links (its primary backend, then fallbacks). Each link that counts
(`monitor.risk.proven`: only what probes, drills, evals and capacity searches prove) has an
availability (measured within the feature's latency budget), a failure domain, the value it keeps
when it serves (1 for the primary, an AI fallback's measured quality, ``quality`` for a degraded
mode) and an effectiveness (the share of requests it serves when it is up and reached: 1 unless a
drill measured it, times the share of the feature's peak traffic its capacity holds). A request is
served by the first link that is up for it; the feature loses ``1 - value`` of that request, or all
of it when no link is up. Links of one failure domain fail together (the least available first);
domains fail independently. `docs/RISK_MODEL.md` gives every formula with a worked example.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Literal

from monitor.quality.figures import CapacityFigure, QualityFigure
from monitor.risk.breakdown import link_dict
from monitor.risk.chain import Term, chain_outcome
from monitor.risk.grade import GRADE_ORDER, GRADES, MONTH_MINUTES, WEIGHTS, grade_for, score_for
from monitor.risk.proven import UNMEASURED_AVAILABILITY, Decision, decide, measured_value

DEFAULT_QUALITY = 0.5
"""A degraded mode's share of the feature's value when the config gives no ``quality``."""
Kind = Literal["backend", "degraded"]


@dataclass(frozen=True, slots=True)
class Measurement:
    """What the probes said about one backend over the window, judged against one feature's budget."""

    samples: int
    """Scheduled probes (every region); confirmation probes never count."""
    answered: int
    """Probes that got an answer (status up or degraded), however slow."""
    within_budget: int
    """Answered within the feature's latency budget (time to first token and total)."""
    covered_s: float
    """Span between the first and the last sample."""
    window_s: float
    """The window asked for."""
    approximate: bool = False
    """Part of it came from hour rollups: ``within_budget`` may be low by up to one histogram bucket."""

    @property
    def availability(self) -> float:
        """Answered within budget / samples: what the feature can use."""
        return self.within_budget / self.samples if self.samples else 0.0

    @property
    def raw_availability(self) -> float:
        """Answered / samples, whatever the latency (to show what the budget costs)."""
        return self.answered / self.samples if self.samples else 0.0

    @property
    def short(self) -> bool:
        """History shorter than the window (by more than one probe interval's worth, ~1 %)."""
        return self.covered_s < 0.99 * self.window_s


@dataclass(frozen=True, slots=True)
class Link:
    """One step of a feature's chain, with everything the arithmetic and the breakdown need."""

    name: str
    """The backend (target or provider) name, or the degraded mode's name."""
    kind: Kind = "backend"
    provider: str = ""
    """The provider behind a backend: the route drills and the proxy know it by."""
    local: bool = False
    """Owned (runs on our machines, or a non-AI degraded mode) rather than outsourced."""
    domain: str = ""
    """Failure domain: links of one domain fail together (default: the provider)."""
    measurement: Measurement | None = None
    """None: no probe in the window (a degraded mode is never probed: it is assumed always up)."""
    quality: float = 1.0
    """Share of the feature's value kept when this link serves (degraded modes < 1)."""
    verified_at: datetime | None = None
    """When a drill last showed this fallback answering the feature; None: never (counted as absent)."""
    verified_by: str = ""
    effectiveness: float | None = None
    """Share of requests it serves when up and reached, as a drill measured it; None: assumed 1."""
    effectiveness_note: str = ""
    hypothetical: bool = False
    """Added by a what-if: counted as if a drill had verified it."""
    measured_quality: QualityFigure | None = None
    """Its answers to the feature's eval set (the latest run within the verification window); None: not
    measured. An AI fallback counts with the lower bound of the pass rate's 95% interval, and not at
    all without it; the primary's is shown for context only."""
    assumed_quality: float | None = None
    """A quality taken as given instead of measured (a what-if, "were it at min_quality"); said so."""
    capacity: CapacityFigure | None = None
    """The highest rate it held for the feature (`airisk eval capacity`); None: not measured (an AI
    fallback is then counted as unlimited, and flagged)."""

    @property
    def label(self) -> str:
        return self.name if self.kind == "backend" else f"degraded:{self.name}"


@dataclass(frozen=True, slots=True)
class FeatureInput:
    """A feature as the arithmetic sees it."""

    name: str
    chain: tuple[Link, ...]
    criticality: str = "medium"
    undeclared_routes: tuple[str, ...] = ()
    """Routes the proxy log or a drill saw the feature call that its chain does not name."""
    scenario: str = ""
    """Set by `what_if`: what was changed."""
    min_quality: float | None = None
    """An AI fallback whose quality (lower bound) is below this counts as absent; None: any counts."""
    peak_rps: float | None = None
    """The feature's peak traffic, requests a second; None: not known (capacity is then not compared)."""
    peak_source: str = ""
    """Where ``peak_rps`` comes from ("features.chat.rate", or the proxy log's busiest minute)."""


@dataclass(frozen=True, slots=True)
class LinkRisk:
    """One link's part in a feature's risk."""

    link: Link
    role: str  # primary | fallback
    counted: bool
    status: str  # why it counts or not, in words
    availability: float | None  # the availability used (None: not counted)
    minutes: float  # expected downtime minutes a month it shares (0 when not counted)
    traffic: float  # share of the feature's requests it serves
    minutes_if_verified: float | None = None  # the feature's minutes were this unverified fallback verified
    # (by a drill, and at quality 1 where its quality is not measured: a bound)
    value: float | None = None  # share of the feature's value a request it serves keeps (None: not known)
    capacity_share: float | None = None  # min(1, capacity / peak traffic); None: not compared
    effectiveness: float | None = None  # used: the drill's (else 1) x capacity_share (None: not counted)
    lacks: tuple[str, ...] = ()  # what keeps it from counting: drill, probes, quality, min_quality, capacity
    notes: tuple[str, ...] = ()  # flags: capacity not measured, traffic not known, the primary's quality
    minutes_at_min_quality: float | None = None  # the feature's minutes were this fallback at min_quality


@dataclass(frozen=True, slots=True)
class FeatureRisk:
    """A feature's score with its breakdown: every number it was computed from."""

    feature: str
    criticality: str
    weight: float
    unavailability: float  # expected share of requests lost (a degraded answer loses 1 - quality)
    minutes: float  # expected downtime minutes a 30-day month
    weighted_minutes: float
    grade: str
    score: float
    outsourced_minutes: float
    owned_minutes: float
    traffic_outsourced: float
    traffic_owned: float
    traffic_unserved: float
    links: tuple[LinkRisk, ...]
    notes: tuple[str, ...] = ()
    gate_blockers: tuple[str, ...] = ()  # why no grade can be trusted enough to pass a gate
    undeclared_routes: tuple[str, ...] = ()
    scenario: str = ""
    min_quality: float | None = None
    peak_rps: float | None = None  # the feature's peak traffic, requests a second (None: not known)
    peak_source: str = ""

    @property
    def outsourced_share(self) -> float:
        """Share of the downtime that lies with outsourced providers (0 without downtime)."""
        return self.outsourced_minutes / self.minutes if self.minutes > 0 else 0.0

    @property
    def main_link(self) -> LinkRisk | None:
        """The link sharing the most downtime minutes (the first of equals); None without downtime."""
        return max((lr for lr in self.links if lr.minutes > 0), key=lambda lr: lr.minutes, default=None)

    @property
    def main_contributor(self) -> str | None:
        main = self.main_link
        return main.link.label if main else None

    @property
    def unverified(self) -> tuple[str, ...]:
        return tuple(lr.link.label for lr in self.links if lr.role == "fallback" and not lr.counted)

    def worse_than(self, grade: str) -> bool:
        return GRADE_ORDER.index(self.grade) > GRADE_ORDER.index(grade)

    def to_dict(self) -> dict[str, Any]:
        out = {
            "feature": self.feature, "criticality": self.criticality, "weight": self.weight,
            "unavailability": self.unavailability, "minutes_per_month": self.minutes,
            "weighted_minutes": self.weighted_minutes, "grade": self.grade, "score": round(self.score, 2),
            "outsourced_minutes": self.outsourced_minutes, "owned_minutes": self.owned_minutes,
            "outsourced_share_of_downtime": self.outsourced_share,
            "traffic": {"outsourced": self.traffic_outsourced, "owned": self.traffic_owned,
                        "unserved": self.traffic_unserved},
            "main_contributor": self.main_contributor, "unverified_fallbacks": list(self.unverified),
            "undeclared_routes": list(self.undeclared_routes), "notes": list(self.notes),
            "gate_blockers": list(self.gate_blockers), "links": [link_dict(lr) for lr in self.links],
            "min_quality": self.min_quality,
            "peak_rate": None if self.peak_rps is None else {"rps": self.peak_rps, "source": self.peak_source},
        }
        if self.scenario:
            out["scenario"] = self.scenario
        return out


# --- A feature ---


def assess(*, feature: FeatureInput) -> FeatureRisk:
    """The feature's expected downtime, grade and score, with each link's part (see the module doc)."""
    return _assess(feature, trials=True)


def _assess(feature: FeatureInput, *, trials: bool) -> FeatureRisk:
    roles = ["primary", *["fallback"] * (len(feature.chain) - 1)]
    decisions = [decide(link, role, feature) for link, role in zip(feature.chain, roles, strict=True)]
    counted = [i for i, d in enumerate(decisions) if d.counted]
    outcome = chain_outcome([_term(feature.chain[i], decisions[i]) for i in counted])
    minutes = outcome.unavailability * MONTH_MINUTES
    per_link = dict(zip(counted, zip(outcome.blame, outcome.served, strict=True), strict=True))
    links = []
    for i, (link, role, d) in enumerate(zip(feature.chain, roles, decisions, strict=True)):
        blame, served = per_link.get(i, (0.0, 0.0))
        if_verified, at_min = (_trials(feature, i, d) if trials else (None, None))
        links.append(LinkRisk(link, role, d.counted, d.status, d.availability, blame * MONTH_MINUTES, served,
                              if_verified, value=d.value, capacity_share=d.capacity_share,
                              effectiveness=d.effectiveness if d.counted else None, lacks=d.lacks, notes=d.notes,
                              minutes_at_min_quality=at_min))
    outsourced = sum(lr.minutes for lr in links if not lr.link.local)
    weight = WEIGHTS[feature.criticality]
    assumed = [lr.link.name for lr, d in zip(links, decisions, strict=True) if d.assumed]
    return FeatureRisk(
        feature=feature.name, criticality=feature.criticality, weight=weight, unavailability=outcome.unavailability,
        minutes=minutes, weighted_minutes=minutes * weight, grade=grade_for(minutes * weight),
        score=score_for(minutes * weight), outsourced_minutes=outsourced, owned_minutes=minutes - outsourced,
        traffic_outsourced=sum(lr.traffic for lr in links if not lr.link.local),
        traffic_owned=sum(lr.traffic for lr in links if lr.link.local), traffic_unserved=outcome.unserved,
        links=tuple(links),
        notes=tuple(_notes(feature, links, assumed)),
        gate_blockers=tuple(f"primary {name} is unmeasured (no probe in the window)" for name in assumed),
        undeclared_routes=feature.undeclared_routes, scenario=feature.scenario, min_quality=feature.min_quality,
        peak_rps=feature.peak_rps, peak_source=feature.peak_source,
    )


def _trials(feature: FeatureInput, i: int, d: Decision) -> tuple[float | None, float | None]:
    """The feature's minutes were link ``i`` verified (by a drill; an unmeasured quality taken as 1: a
    bound), and were it at ``min_quality`` (and verified, if no drill did): what fixing it would give."""
    link = feature.chain[i]
    lacks = set(d.lacks)
    if d.counted or not lacks or not lacks <= {"drill", "quality", "min_quality"}:
        return None, None

    def minutes(changed: Link) -> float:
        chain = tuple(changed if j == i else x for j, x in enumerate(feature.chain))
        return _assess(replace(feature, chain=chain), trials=False).minutes

    if "min_quality" in lacks:
        assert feature.min_quality is not None
        return None, minutes(replace(link, hypothetical=True, assumed_quality=feature.min_quality))
    return minutes(_as_verified(link)), None


def _as_verified(link: Link) -> Link:
    """``link`` counted as verified: by a drill, and at quality 1 where no eval measured its quality."""
    if link.kind == "backend" and link.assumed_quality is None and measured_value(link) is None:
        return replace(link, hypothetical=True, assumed_quality=1.0)
    return replace(link, hypothetical=True)


def _term(link: Link, d: Decision) -> Term:
    assert d.availability is not None and d.value is not None
    return Term(d.availability, link.domain or link.provider or link.label, d.value, d.effectiveness)


def _notes(feature: FeatureInput, links: Sequence[LinkRisk], assumed: Sequence[str]) -> list[str]:
    notes = []
    for lr in links:
        m = lr.link.measurement
        if not lr.counted or m is None or m.samples == 0:
            continue
        if m.short:
            notes.append(f"{lr.link.name} measured over {_days(m.covered_s)} of {_days(m.window_s)}")
        if m.approximate:
            notes.append(f"{lr.link.name}: older history from hour rollups, latency budget exact to one bucket")
    notes += [f"{name} unmeasured: assumed {UNMEASURED_AVAILABILITY:.1%}" for name in assumed]
    if feature.undeclared_routes:
        notes.append(f"calls undeclared {', '.join(feature.undeclared_routes)} (seen in the proxy log; not scored)")
    return notes


def _days(seconds: float) -> str:
    days = seconds / 86400
    if days >= 1:
        return f"{days:.1f} days"
    return f"{seconds / 3600:.1f} hours"


# --- What-if ---


def what_if(*, feature: FeatureInput, add_fallback: Link | None = None, primary: Link | None = None) -> FeatureInput:
    """The feature as if ``add_fallback`` were added (and verified), and/or its primary were ``primary``.

    Both links come measured for this feature's budget (`monitor.risk.load` builds them from the
    same measurements). An added AI fallback goes after the chain's last AI backend (before any
    degraded mode); one already in the chain but unverified is counted as verified instead. Verified
    means by a drill; where no eval measured its quality, it is taken as 1 (said in its status): a
    what-if shows what the fallback could give, its measured quality and capacity where there are some.
    """
    chain = list(feature.chain)
    labels = []
    if primary is not None:
        chain = [primary, *(link for link in chain[1:] if link.label != primary.label)]
        labels.append(f"primary moved to {primary.name}")
    if add_fallback is not None:
        existing = [i for i, link in enumerate(chain) if i > 0 and link.label == add_fallback.label]
        for i in existing:
            chain[i] = _as_verified(chain[i])
        if not existing:
            new = _as_verified(add_fallback)
            at = max(i for i, link in enumerate(chain) if link.kind == "backend") + 1
            chain.insert(at if new.kind == "backend" else len(chain), new)
        added = chain[existing[0]] if existing else new
        assumed = " (quality not measured: taken as 1)" if added.assumed_quality == 1.0 else ""
        labels.append(f"{add_fallback.label} added as a verified fallback{assumed}")
    scenario = "; ".join(filter(None, [feature.scenario, *labels]))
    return replace(feature, chain=tuple(chain), scenario=scenario)


@dataclass(frozen=True, slots=True)
class RiskReport:
    """Every declared feature's risk (worst first), and what the proxy log saw that is not declared."""

    window_s: float
    generated_at: datetime
    features: tuple[FeatureRisk, ...]
    undeclared_features: dict[str, tuple[str, ...]] = field(default_factory=dict)  # feature -> routes seen
    what_ifs: tuple[tuple[FeatureRisk, FeatureRisk], ...] = ()  # (as is, as if)

    @property
    def measured(self) -> bool:
        """Whether any probe at all was found for any counted backend."""
        return any(lr.link.measurement is not None and lr.link.measurement.samples > 0
                   for f in self.features for lr in f.links)

    def to_dict(self) -> dict[str, Any]:
        return {
            "window_days": self.window_s / 86400, "generated_at": self.generated_at.isoformat(),
            "month_minutes": MONTH_MINUTES, "measured": self.measured,
            "grades": {g: b for g, b in GRADES} | {"F": None}, "weights": WEIGHTS,
            "features": [f.to_dict() for f in self.features],
            "undeclared_features": [{"feature": name, "routes": list(routes)}
                                    for name, routes in sorted(self.undeclared_features.items())],
            "what_if": [{"as_is": a.to_dict(), "as_if": b.to_dict(), "minutes_saved": a.minutes - b.minutes}
                        for a, b in self.what_ifs],
        }


def worst_first(risks: Sequence[FeatureRisk]) -> list[FeatureRisk]:
    """Sorted by weighted minutes, most first (then by name)."""
    return sorted(risks, key=lambda r: (-r.weighted_minutes, r.feature))
