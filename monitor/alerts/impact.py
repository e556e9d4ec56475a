"""What an alert's outage does to the product: the features it hits, what serves each now, and the cost so far.

An alert names targets ("openai: gpt-4o is DOWN"); the on-call engineer needs the answer behind it. For
every feature whose chain uses one of the alert's targets (a link naming the target, or a provider whose
targets it pools, as `monitor.risk.load.resolve_backend` resolves it), `impact_of` gives:

- its criticality, and the chain links the alert hits;
- what serves it now: the first link of its chain that the alert does not hit and that is not known
  DOWN (an open DOWN incident): the primary (the alert took away a fallback), a fallback, a degraded
  mode, or nothing;
- whether the risk model counts that fallback (`monitor.risk.proven`: drill-verified, and for an AI
  fallback also probed and with measured quality at or above ``min_quality``), when a drill verified it
  and which, in the model's own words;
- its measured quality for the feature (the latest eval run's pass rate and the lower bound the model
  counts with, against ``features.<name>.min_quality``);
- the incident's cost so far, by the risk model's arithmetic (`monitor.risk.chain.chain_outcome`) over
  the links left: the share of requests no link serves (down) and the value lost by those a fallback
  serves at less than full value (its quality factor), times the minutes since the incident opened.

Nothing here raises into the alert path: `impact_of` catches every failure, and a lookup that fails
(the risk inputs, the incident, the known DOWN targets) leaves its terms out and says so in
``missing``. The result is plain frozen data whose `Impact.to_dict` / `Impact.from_dict` round trip
through JSON exactly (it rides in the outbox row's payload).
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal, Protocol
from urllib.parse import urlencode

from monitor.alerts.redact import redact

if TYPE_CHECKING:
    from sqlmodel import Session

    from monitor.config.model import AiriskConfig
    from monitor.risk.model import FeatureRisk, Link

log = logging.getLogger(__name__)

CRITICALITIES = ("low", "medium", "high", "critical")
"""Least to most critical (`monitor.config.features.Criticality`)."""
DASHBOARD_ENV = "AIRISK_DASHBOARD_URL"
DEFAULT_DASHBOARD = "http://127.0.0.1:8501"
DASHBOARD_PAGE = "providers"
"""The dashboard page an incident links to (`dashboard/app.py`: the Providers page shows a target's incidents);
it is given ``?target=NAME&incident=ID``."""

Status = Literal["unserved", "unverified_fallback", "covered", "exposed", "degraded_primary"]
STATUSES: tuple[str, ...] = ("exposed", "covered", "degraded_primary", "unverified_fallback", "unserved")
"""A hit feature's status, least harmful first:

- ``exposed``: the primary still serves; the alert took away a fallback (nothing is lost yet).
- ``covered``: a fallback the risk model counts (drill-verified, and for an AI fallback probed and of
  measured quality at or above ``min_quality``) serves it.
- ``degraded_primary``: a DEGRADED alert: the primary still answers, slowly or with errors.
- ``unverified_fallback``: a fallback serves it, but no drill (or no eval) proved it does: the risk model
  counts it as absent, and so does the cost.
- ``unserved``: no link is left to serve it: the feature is down.
"""


class HitLike(Protocol):
    """What the impact needs of one alerted target (`monitor.alerts.events.Member` fits)."""

    target: str
    incident_id: int | None
    from_state: str
    to_state: str
    at: datetime
    cause: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class FeatureImpact:
    """One feature hit by an alert."""

    feature: str
    criticality: str
    """low | medium | high | critical (``features.<name>.criticality``)."""
    status: str
    """See `STATUSES`."""
    hit_by: tuple[str, ...]
    """The alert's targets its chain uses."""
    hit_links: tuple[str, ...]
    """The chain links (labels, as the risk model names them) the alert hits."""
    serving: str | None = None
    """The link serving the feature now (a backend name, or ``degraded:NAME``); None: nothing."""
    serving_kind: str | None = None
    """backend | degraded | None."""
    serving_role: str | None = None
    """primary | fallback | None."""
    counted: bool | None = None
    """Whether the risk model counts the serving link; None: the risk inputs could not be read."""
    serving_status: str = ""
    """The risk model's words on the serving link ("verified 2025-03-01 by drill outage; quality 0.74 ...")."""
    verified_at: datetime | None = None
    """When a drill last showed the serving fallback answering this feature; None: never (or the primary)."""
    verified_by: str = ""
    """That drill's name."""
    pass_rate: float | None = None
    """The serving backend's pass rate on the feature's eval set, from its latest run (passed / judged); None:
    not measured (or a degraded mode, whose quality is declared)."""
    quality_lower: float | None = None
    """The lower bound of that pass rate's 95% interval: what the risk model counts an AI fallback with."""
    quality_judged: int | None = None
    """Cases judged in that run."""
    quality_at: datetime | None = None
    """When that eval run started."""
    min_quality: float | None = None
    """``features.<name>.min_quality``; None: unset."""
    meets_min_quality: bool | None = None
    """``quality_lower >= min_quality``; None when either is unknown or unset."""
    value: float | None = None
    """The serving link's quality factor: the share of the feature's value a request it serves keeps (1 for the
    primary, the quality lower bound for an AI fallback, ``quality`` for a degraded mode)."""
    loss: float | None = None
    """Share of the feature's value lost while this lasts (the risk model's unavailability over the links
    left, each taken as up): 1 = down, 0 = unharmed."""
    down_minutes: float | None = None
    """Minutes since the incident opened times the share of requests no link serves."""
    degraded_minutes: float | None = None
    """Minutes since the incident opened times the share served by a fallback, a degraded mode or a degraded
    primary (any link but a healthy primary)."""
    cost_minutes: float | None = None
    """Expected feature downtime so far: ``loss`` x the minutes since the incident opened (a degraded minute at
    quality 0.5 costs half a minute)."""
    weighted_cost_minutes: float | None = None
    """``cost_minutes`` x the criticality weight the risk grade uses (`monitor.risk.grade.WEIGHTS`)."""
    notes: tuple[str, ...] = ()
    """What else the on-call engineer should know about this feature's figures."""

    def serving_text(self) -> str:
        """"served by local (fallback, verified 2025-03-01 by drill outage)", "nothing serves it", ..."""
        if self.serving is None:
            return "nothing serves it"
        if self.status == "exposed":
            return f"still served by its primary {self.serving}"
        if self.status == "degraded_primary":
            return f"served by its DEGRADED primary {self.serving}"
        if self.verified_at is not None:
            proof = f"verified {self.verified_at:%Y-%m-%d}"
            proof += f" by drill {self.verified_by}" if self.verified_by else ""
        else:
            proof = "never verified by a drill"
        counted = "" if self.counted is not False else ", not counted by the risk model"
        return f"served by {self.serving} ({self.serving_role}, {proof}{counted})"

    def quality_text(self) -> str:
        """"quality 0.93 (lower bound 0.86 of 30 judged) meets min_quality 0.8", or "" when not measured."""
        if self.pass_rate is None:
            if self.serving_kind == "degraded" and self.value is not None:
                return f"degraded mode keeps {self.value:.0%} of the feature's value"
            return ""
        text = (f"quality {self.pass_rate:.2f} (lower bound {self.quality_lower or 0:.2f} of {self.quality_judged} "
                "judged)")
        if self.meets_min_quality is not None:
            text += f" {'meets' if self.meets_min_quality else 'is BELOW'} min_quality {self.min_quality:g}"
        return text

    def cost_text(self) -> str:
        """"cost so far 12.3 min (down 10.0, degraded 4.6)", or "" when not counted."""
        if self.cost_minutes is None:
            return ""
        return (f"cost so far {self.cost_minutes:.1f} min (down {self.down_minutes or 0:.1f}, degraded "
                f"{self.degraded_minutes or 0:.1f}; {self.loss or 0:.0%} of its value lost while this lasts)")

    def line(self) -> str:
        """The feature in one line, for text channels."""
        parts = [self.serving_text(), self.quality_text(), self.cost_text()]
        return f"{self.feature} ({self.criticality}): " + "; ".join(p for p in parts if p)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in fields(self):
            v = getattr(self, f.name)
            out[f.name] = v.isoformat() if isinstance(v, datetime) else list(v) if isinstance(v, tuple) else v
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FeatureImpact:
        known = {f.name for f in fields(cls)}
        kw: dict[str, Any] = {k: v for k, v in data.items() if k in known}
        for name in ("verified_at", "quality_at"):
            if kw.get(name) is not None:
                kw[name] = datetime.fromisoformat(kw[name])
        for name in ("hit_by", "hit_links", "notes"):
            kw[name] = tuple(kw.get(name) or ())
        return cls(**kw)


@dataclass(frozen=True, slots=True)
class Impact:
    """What one alert's targets do to the product."""

    targets: tuple[str, ...]
    """The alert's targets."""
    at: datetime
    """Until when the cost is counted (the alert's time, or the recovery's)."""
    opened_at: datetime | None = None
    """When the incident opened (the earliest of the alert's incidents); None: not known."""
    features: tuple[FeatureImpact, ...] = ()
    """The hit features, most critical and worst off first."""
    dashboard_url: str = ""
    """The dashboard's page for the incident."""
    missing: tuple[str, ...] = ()
    """Terms left out because a lookup failed, each with why ("risk inputs: OperationalError: ...")."""

    @property
    def minutes(self) -> float | None:
        """Minutes from ``opened_at`` to ``at``."""
        return None if self.opened_at is None else max((self.at - self.opened_at).total_seconds(), 0.0) / 60

    @property
    def known(self) -> bool:
        """Whether the features hit are known (False only when the whole computation failed)."""
        return not any(m.startswith("impact:") for m in self.missing)

    @property
    def worst_criticality(self) -> str | None:
        """The highest criticality among the hit features; None: no feature is hit."""
        return max((f.criticality for f in self.features), key=criticality_rank, default=None)

    @property
    def covered(self) -> bool:
        """Every hit feature (at least one) is served by its primary or by a fallback the risk model counts."""
        return bool(self.features) and all(f.status in ("exposed", "covered") for f in self.features)

    @property
    def cost_minutes(self) -> float | None:
        """The hit features' expected downtime so far, summed (None when no feature has a figure)."""
        costs = [f.cost_minutes for f in self.features if f.cost_minutes is not None]
        return sum(costs) if costs else None

    def criticalities_for(self, target: str) -> set[str]:
        """The criticalities of the features ``target`` hits."""
        return {f.criticality for f in self.features if target in f.hit_by}

    def lines(self) -> list[str]:
        """The impact as text lines: one per feature, then what is missing, then the dashboard link."""
        if not self.features and not self.missing:
            out = ["no declared feature uses these targets"]
        else:
            out = [f"feature {f.line()}" for f in self.features]
        out += [f"not known: {m}" for m in self.missing]
        if self.dashboard_url:
            out.append(f"dashboard: {self.dashboard_url}")
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"targets": list(self.targets), "at": self.at.isoformat(),
                "opened_at": self.opened_at.isoformat() if self.opened_at else None,
                "features": [f.to_dict() for f in self.features], "dashboard_url": self.dashboard_url,
                "missing": list(self.missing), "worst_criticality": self.worst_criticality,
                "covered": self.covered, "minutes": self.minutes, "cost_minutes": self.cost_minutes}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Impact:
        return cls(tuple(data.get("targets") or ()), datetime.fromisoformat(data["at"]),
                   datetime.fromisoformat(data["opened_at"]) if data.get("opened_at") else None,
                   tuple(FeatureImpact.from_dict(f) for f in data.get("features") or ()),
                   data.get("dashboard_url") or "", tuple(data.get("missing") or ()))


def criticality_rank(criticality: str) -> int:
    """0 (low) to 3 (critical); an unknown name ranks as medium."""
    return CRITICALITIES.index(criticality) if criticality in CRITICALITIES else 1


def dashboard_url(targets: Sequence[str], incident_id: int | None, *, environ: Mapping[str, str] | None = None
                  ) -> str:
    """The dashboard's page for an incident: ``$AIRISK_DASHBOARD_URL`` (default http://127.0.0.1:8501) +
    ``/providers?target=NAME&incident=ID``."""
    env = os.environ if environ is None else environ
    base = (env.get(DASHBOARD_ENV) or DEFAULT_DASHBOARD).rstrip("/")
    query = {"target": targets[0]} if targets else {}
    if incident_id is not None:
        query["incident"] = str(incident_id)
    return f"{base}/{DASHBOARD_PAGE}" + (f"?{urlencode(query)}" if query else "")


def impact_of(hits: Sequence[HitLike], *, config: AiriskConfig, session: Session | None, now: datetime,
              environ: Mapping[str, str] | None = None) -> Impact:
    """The impact of the alert naming ``hits`` (its members), counted up to ``now`` (for a recovery: up to
    the recovery). Never raises: whatever fails is left out and named in ``missing``."""
    return impact_source(config=config, session=session, now=now, environ=environ)(hits)


def impact_source(*, config: AiriskConfig, session: Session | None, now: datetime,
                  environ: Mapping[str, str] | None = None) -> Callable[[Sequence[HitLike]], Impact]:
    """`impact_of` bound to one config, session and time: what `monitor.alerts.rules.events_for` takes as
    ``impact``. The risk inputs are read once, for every group of the call."""
    cache: dict[Any, Any] = {}

    def impact(hits: Sequence[HitLike]) -> Impact:
        targets = tuple(dict.fromkeys(h.target for h in hits))
        try:
            return _impact(hits, targets, config=config, session=session, now=now, environ=environ, cache=cache)
        except Exception as exc:  # the alert goes out without its impact rather than not at all
            log.exception("impact of %s could not be computed", ", ".join(targets))
            return Impact(targets, now, dashboard_url=_safe_url(targets, hits, environ),
                          missing=(f"impact: {_why(exc)}",))

    return impact


# --- the computation ---


@dataclass(slots=True)
class _Lookups:
    risks: dict[str, FeatureRisk] | None = None
    inputs: dict[str, Any] | None = None
    known_down: set[str] = field(default_factory=set)
    opened: dict[int, datetime] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)


def _impact(hits: Sequence[HitLike], targets: tuple[str, ...], *, config: AiriskConfig, session: Session | None,
            now: datetime, environ: Mapping[str, str] | None, cache: dict[str, Any] | None = None) -> Impact:
    from monitor.risk.load import resolve_backend

    states = {h.target: _hit_state(h) for h in hits}
    causes = {h.target: h.cause for h in hits}
    recovery = bool(hits) and all(h.to_state == "up" for h in hits)
    until = max(h.at for h in hits) if recovery else now
    chains: dict[str, list[tuple[str, tuple[str, ...]]]] = {}  # per hit feature, per chain link: its label and
    for name, feature in config.features.items():                # the alert's targets it uses
        links: list[tuple[str, tuple[str, ...]]] = []
        for step in feature.chain:
            if step.backend is not None:
                used = tuple(t for t in resolve_backend(config=config, name=step.backend).targets if t in states)
                links.append((step.backend, used))
            else:
                links.append((f"degraded:{step.degraded}", ()))
        if any(used for _, used in links):
            chains[name] = links
    looked = _lookup(hits, tuple(chains), config=config, session=session, now=now, cache=cache)
    opened = [looked.opened.get(h.incident_id, h.at) if h.incident_id is not None else h.at for h in hits]
    opened_at = min(opened) if opened else None
    minutes = None if opened_at is None else max((until - opened_at).total_seconds(), 0.0) / 60
    features = []
    for name, links in chains.items():
        feature = config.features[name]
        risk = looked.risks.get(name) if looked.risks is not None else None
        link_inputs = looked.inputs[name].chain if looked.inputs is not None and name in looked.inputs else None
        features.append(_feature(name, feature, links, states, causes, looked, risk, link_inputs, minutes,
                                 resolve=lambda b: resolve_backend(config=config, name=b).targets))
    features.sort(key=lambda f: (-criticality_rank(f.criticality), -STATUSES.index(f.status), f.feature))
    first_incident = next((h.incident_id for h in hits if h.incident_id is not None), None)
    return Impact(targets, until, opened_at, tuple(features), dashboard_url(targets, first_incident, environ=environ),
                  tuple(looked.missing))


def _hit_state(h: HitLike) -> str:
    """down | degraded: the state the alert reports (a recovery: the state it recovers from)."""
    state = h.to_state if h.to_state in ("down", "degraded") else h.from_state
    return state if state in ("down", "degraded") else "down"


def _lookup(hits: Sequence[HitLike], names: tuple[str, ...], *, config: AiriskConfig, session: Session | None,
            now: datetime, cache: dict[Any, Any] | None) -> _Lookups:
    """What the store says about the hit features ``names``: read once per source call (``cache``)."""
    looked = _Lookups()
    if session is None:
        looked.missing.append("store: no database session (drills, evals, probes and incidents not read)")
        return looked
    cache = {} if cache is None else cache
    if not names:  # no feature hit: nothing to read
        return looked
    key = ("risk", frozenset(names))
    if key not in cache:
        cache[key] = _guarded(session, lambda: _risk(config, names, session, now))
    risk, why = cache[key]
    if why is None:
        looked.inputs, looked.risks = risk
    else:
        looked.missing.append(f"risk inputs (drills, evals, probes): {why}")
    if "down" not in cache:
        cache["down"] = _guarded(session, lambda: _known_down(session))
    down, why = cache["down"]
    if why is None:
        looked.known_down = down
    else:
        looked.missing.append(f"known DOWN targets: {why}")
    ids = sorted({h.incident_id for h in hits if h.incident_id is not None})
    if ids:
        opened, why = _guarded(session, lambda: _opened(session, ids))
        if why is None:
            looked.opened = opened
        else:
            looked.missing.append(f"incident start (counted from the alert's own time): {why}")
    return looked


def _guarded(session: Session, work: Callable[[], Any]) -> tuple[Any, str | None]:
    """``work()`` and None, or None and why it failed. On PostgreSQL it runs in a savepoint, so a failed
    query does not abort the caller's transaction (which still has the alerts to write)."""
    try:
        if session.get_bind().dialect.name == "postgresql":
            with session.begin_nested():
                return work(), None
        return work(), None
    except Exception as exc:
        log.warning("alert impact: a lookup failed: %s", _why(exc))
        return None, _why(exc)


def _risk(config: AiriskConfig, names: Sequence[str], session: Session, now: datetime
          ) -> tuple[dict[str, Any], dict[str, FeatureRisk]]:
    """The risk model's inputs and assessment of the features ``names``, as `airisk score` reads them (only
    their chains' backends are measured: the monitor's one database thread does this)."""
    from monitor.risk.load import feature_inputs
    from monitor.risk.model import assess

    only = config.model_copy(update={"features": {n: config.features[n] for n in names}})
    inputs, _, _ = feature_inputs(config=only, session=session, now=now)
    return inputs, {name: assess(feature=f) for name, f in inputs.items()}


def _known_down(session: Session) -> set[str]:
    import sqlalchemy as sa

    from monitor.store.models import IncidentRow

    rows = session.execute(sa.select(IncidentRow.target).where(IncidentRow.closed_at.is_(None),
                                                               IncidentRow.state == "down"))
    return {t for (t,) in rows}


def _opened(session: Session, ids: Sequence[int]) -> dict[int, datetime]:
    import sqlalchemy as sa

    from monitor.store.models import IncidentRow

    rows = session.execute(sa.select(IncidentRow.id, IncidentRow.opened_at).where(IncidentRow.id.in_(ids)))
    return {i: at for i, at in rows}


def _feature(name: str, feature: Any, links: list[tuple[str, tuple[str, ...]]], states: Mapping[str, str],
             causes: Mapping[str, Mapping[str, Any]], looked: _Lookups, risk: FeatureRisk | None,
             link_inputs: Sequence[Link] | None, minutes: float | None,
             resolve: Callable[[str], tuple[str, ...]]) -> FeatureImpact:
    from monitor.risk.chain import Term, chain_outcome
    from monitor.risk.grade import WEIGHTS

    notes: list[str] = []
    hit_links = tuple(label for label, used in links if used)
    terms: list[Term] = []
    serving: int | None = None
    degraded_hit = False
    for i, (label, used) in enumerate(links):
        down_now = any(states[t] == "down" for t in used)
        backend = not label.startswith("degraded:")
        known_down = backend and not used and bool(set(resolve(label)) & looked.known_down)
        if down_now or known_down:
            if known_down:
                notes.append(f"{label} is itself DOWN (an open incident): skipped")
            continue
        availability = 1.0
        if used:  # the alert has it DEGRADED: it still answers, with the error rate detection measured
            degraded_hit = True
            rate = _error_rate(causes, used)
            if rate is None:
                notes.append(f"{label} is DEGRADED (slow answers): its cost is not counted")
            else:
                availability = 1.0 - rate
        if serving is None:
            serving = i
        if risk is not None:
            lr = risk.links[i]
            if lr.counted and lr.value is not None:
                domain = lr.link.domain or lr.link.provider or lr.link.label
                terms.append(Term(availability, domain, lr.value,
                                  1.0 if lr.effectiveness is None else lr.effectiveness))
    status = _status(serving, links, risk, degraded_hit)
    fi = dict(feature=name, criticality=feature.criticality, status=status,
              hit_by=tuple(dict.fromkeys(t for _, used in links for t in used)), hit_links=hit_links,
              min_quality=feature.min_quality, notes=())
    if serving is not None:
        label = links[serving][0]
        fi |= dict(serving=label, serving_kind="degraded" if label.startswith("degraded:") else "backend",
                   serving_role="primary" if serving == 0 else "fallback")
        if risk is not None:
            lr = risk.links[serving]
            fi |= dict(counted=lr.counted, serving_status=lr.status, value=lr.value)
        if link_inputs is not None:
            link = link_inputs[serving]
            q = link.measured_quality
            if serving:  # a fallback: the primary is not verified by drills, it defines the feature's job
                fi |= dict(verified_at=link.verified_at, verified_by=link.verified_by)
            if q is not None and q.judged:
                fi |= dict(pass_rate=q.pass_rate, quality_lower=q.lower, quality_judged=q.judged, quality_at=q.at)
                if feature.min_quality is not None:
                    fi["meets_min_quality"] = q.lower >= feature.min_quality
    if risk is None:
        notes.append("cost not counted: the risk inputs could not be read")
    else:
        outcome = chain_outcome(terms)
        loss = outcome.unavailability if terms else 1.0
        unserved = outcome.unserved if terms else 1.0
        if status == "unverified_fallback":
            notes.append(f"{links[serving][0] if serving is not None else '-'} is not counted by the risk model "
                         "(a fallback no drill or eval proved): the cost counts it as absent")
        fi |= dict(loss=loss)
        if minutes is not None:
            served_other = 0.0 if status == "exposed" else 1.0 - unserved
            fi |= dict(down_minutes=minutes * unserved, degraded_minutes=minutes * served_other,
                       cost_minutes=minutes * loss,
                       weighted_cost_minutes=minutes * loss * WEIGHTS.get(feature.criticality, 1.0))
    fi["notes"] = tuple(notes)
    return FeatureImpact(**fi)


def _status(serving: int | None, links: Sequence[tuple[str, tuple[str, ...]]], risk: FeatureRisk | None,
            degraded_hit: bool) -> str:
    if serving is None:
        return "unserved"
    if serving == 0:
        return "degraded_primary" if degraded_hit and links[0][1] else "exposed"
    if risk is not None and risk.links[serving].counted:
        return "covered"
    return "unverified_fallback"


def _error_rate(causes: Mapping[str, Mapping[str, Any]], used: Sequence[str]) -> float | None:
    rates = []
    for t in used:
        rate = causes.get(t, {}).get("error_rate")
        if isinstance(rate, int | float) and not isinstance(rate, bool) and math.isfinite(rate):
            rates.append(min(1.0, max(0.0, float(rate))))
    return max(rates) if rates else None


def _safe_url(targets: Sequence[str], hits: Sequence[HitLike], environ: Mapping[str, str] | None) -> str:
    try:
        return dashboard_url(targets, next((h.incident_id for h in hits if h.incident_id is not None), None),
                             environ=environ)
    except Exception:
        return ""


def _why(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}".splitlines()[0] if str(exc) else type(exc).__name__
    return redact(text[:200])

