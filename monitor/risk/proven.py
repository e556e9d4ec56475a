"""Which links of a chain count, and for how much: only what probes, drills, evals and capacity searches prove.

- The primary counts with value 1 (it defines the feature's job), measured by its probes or, unmeasured,
  at the prior; its own eval figure, where there is one, is shown for context only.
- A degraded mode counts once a drill saw it answer, always up, with its configured ``quality``.
- An AI fallback counts only when all of these hold: a drill saw it answer the feature (or a what-if
  says so); probes measured it in the window; an eval measured its quality (its value: the lower bound
  of the pass rate's 95% Wilson interval), at or above the feature's ``min_quality``; and its measured
  capacity is not 0. Its effectiveness (the drill's, else 1) is multiplied by min(1, capacity / the
  feature's peak traffic): traffic above its capacity goes on down the chain. An unmeasured capacity,
  or unknown traffic, is counted as unlimited and flagged.

`docs/RISK_MODEL.md` §3 and §4 say why.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from monitor.quality.figures import QualityFigure
    from monitor.risk.model import FeatureInput, Link

UNMEASURED_AVAILABILITY = 0.995
"""Assumed for a primary with no probe in the window (loudly flagged; it cannot pass a gate). Hosted
LLM APIs' own status pages showed ~120-180 outage minutes a month in 2021-2024 (Chu et al., ICPE 2025):
99.5% (216 min) is that, rounded towards pessimism."""

Lack = str
"""What an AI fallback lacks to count: "drill", "probes", "quality", "min_quality" or "capacity"."""


@dataclass(frozen=True, slots=True)
class Decision:
    """Whether a link counts, why (in words), and the numbers it counts with."""

    counted: bool
    status: str
    availability: float | None = None
    value: float | None = None
    """Share of the feature's value a request it serves keeps (None: not known)."""
    effectiveness: float = 1.0
    """Share of the requests reaching it, when up, that it serves: the drill's, times ``capacity_share``."""
    capacity_share: float | None = None
    """min(1, capacity / peak traffic); None: not compared (capacity or traffic unknown)."""
    assumed: bool = False
    """A primary without measurement: the prior stands in."""
    lacks: tuple[Lack, ...] = ()
    notes: tuple[str, ...] = ()


def measured_value(link: Link) -> float | None:
    """The lower bound of the link's measured pass rate; None when no eval judged any of its answers."""
    q = link.measured_quality
    return None if q is None or q.judged == 0 else q.lower


def quality_value(link: Link) -> float | None:
    """What an AI fallback counts with: an assumed quality where one is given, else the measured one."""
    return link.assumed_quality if link.assumed_quality is not None else measured_value(link)


def describe_quality(q: QualityFigure) -> str:
    """"quality 0.74 (27 of 30 passed, 95% interval 0.74-0.97)"."""
    lo, hi = q.interval
    return f"quality {q.lower:.2f} ({q.passed} of {q.judged} passed, 95% interval {lo:.2f}-{hi:.2f})"


def _quality_text(link: Link) -> str:
    measured = measured_value(link)
    if link.assumed_quality is None:
        assert link.measured_quality is not None
        return describe_quality(link.measured_quality)
    if measured is None:
        return f"quality {link.assumed_quality:.2f} assumed (not measured)"
    assert link.measured_quality is not None
    return f"quality {link.assumed_quality:.2f} assumed (measured: {describe_quality(link.measured_quality)})"


def _verified(link: Link) -> str | None:
    if link.hypothetical:
        return "hypothetical (what-if): counted as verified"
    if link.verified_at is None:
        return None
    return f"verified {link.verified_at:%Y-%m-%d}" + (f" by drill {link.verified_by}" if link.verified_by else "")


def decide(link: Link, role: str, feature: FeatureInput) -> Decision:
    """Whether ``link`` (in ``role``: primary or fallback) counts for ``feature``, and with what."""
    m = link.measurement
    measured = m is not None and m.samples > 0
    drill_e = 1.0 if link.effectiveness is None else link.effectiveness
    if role == "primary":
        notes = ()
        if measured_value(link) is not None:
            assert link.measured_quality is not None
            notes = (f"{describe_quality(link.measured_quality)}: for context only, the primary defines the "
                     f"feature's job (value 1)",)
        if not measured:
            return Decision(True, f"primary, unmeasured: assumed {UNMEASURED_AVAILABILITY:.1%}",
                            UNMEASURED_AVAILABILITY, 1.0, drill_e, assumed=True, notes=notes)
        return Decision(True, "primary", m.availability, 1.0, drill_e, notes=notes)
    verified = _verified(link)
    if link.kind == "degraded":
        if verified is None:
            return Decision(False, "unverified: no drill showed it answering, counted as absent", value=link.quality,
                            lacks=("drill",))
        return Decision(True, f"{verified}; degraded mode assumed always up (not probed)", 1.0, link.quality, drill_e)
    return _decide_ai_fallback(link, feature, verified, m.availability if measured else None, drill_e)


def _decide_ai_fallback(link: Link, feature: FeatureInput, verified: str | None, availability: float | None,
                        drill_e: float) -> Decision:
    lacks: list[Lack] = []
    reasons: list[str] = []
    if verified is None:
        lacks.append("drill")
        reasons.append("no drill showed it answering")
    if availability is None:
        lacks.append("probes")
        reasons.append("unmeasured")
    value = quality_value(link)
    if value is None:
        lacks.append("quality")
        reasons.append(f"quality not measured: airisk eval run --feature {feature.name} --backend {link.name}")
    elif feature.min_quality is not None and value < feature.min_quality:
        lacks.append("min_quality")
        reasons.append(f"{_quality_text(link)} below min_quality {feature.min_quality:g}")
    share, notes = _capacity(link, feature)
    if share == 0:
        lacks.append("capacity")
        reasons.append("capacity 0 req/s: it serves nothing")
    if lacks:
        why = "; ".join(reasons)
        status = (f"unverified: {why}; counted as absent" if verified is None
                  else f"{verified}, but {why}: counted as absent")
        return Decision(False, status, value=value, capacity_share=share, lacks=tuple(lacks), notes=notes)
    assert value is not None
    return Decision(True, f"{verified}; {_quality_text(link)}", availability, value,
                    drill_e * (1.0 if share is None else share), share, notes=notes)


def _capacity(link: Link, feature: FeatureInput) -> tuple[float | None, tuple[str, ...]]:
    """The capacity share (None: not compared) and what the breakdown says about it."""
    cap = link.capacity
    if cap is None:
        return None, (f"capacity not measured: counted as unlimited (airisk eval capacity --feature {feature.name} "
                      f"--backend {link.name})",)
    if cap.rate_rps <= 0:
        return 0.0, (f"capacity 0 req/s (measured {cap.at:%Y-%m-%d}): no rate held the latency budget and the "
                     f"pass rate",)
    if feature.peak_rps is None:
        return None, (f"traffic not known (set features.{feature.name}.rate, or log the feature's requests "
                      f"through the proxy): capacity {cap.rate_rps:.3g} req/s counted as unlimited",)
    share = 1.0 if feature.peak_rps <= 0 else min(1.0, cap.rate_rps / feature.peak_rps)
    return share, (f"capacity {cap.rate_rps:.3g} req/s (measured {cap.at:%Y-%m-%d}) against {feature.peak_rps:.3g} "
                   f"req/s at peak ({feature.peak_source or 'given'}): serves {share:.0%} of the requests reaching it",)
