"""Per-feature SLO alerts: a feature burns its error budget (``features.<name>.slo``) at a multi-window rate.

**What a minute of a feature is worth.** The risk model's arithmetic (`monitor.risk`), one minute at a
time: each link of the feature's chain counts as the risk model decides (`monitor.risk.proven.decide`:
a fallback counts only when a drill saw it answer the feature and an eval measured its quality, at or
above ``min_quality``; its value is that quality's lower bound; a degraded mode keeps its configured
``quality``), and its availability in that minute is the share of its scheduled probes, all regions
together, that answered within the feature's latency budget (the minute rollups; the hour rollups,
spread over their minutes, where the minute rollups were pruned). A minute with no probe of a link
takes the link's last minute for up to one probe interval; a minute without any word on the primary
is left out. `monitor.risk.chain.chain_outcome` turns the links of a minute into its unavailability
(the share of the feature's value lost: a request served by a fallback at quality 0.7 loses 0.3).

**Burn rate** over a window = (1 - availability over the window) / (1 - objective): 1 spends the
budget exactly over the SLO's window, 14.4 spends a 30-day budget in about two days.

**When it alerts.** The multiwindow, multi-burn-rate alerts of The Site Reliability Workbook (Beyer et
al., O'Reilly 2018), chapter 5 "Alerting on SLOs", Table 5-8 and the 1-day ticket of its iteration 6:
a pair fires when the burn rate over *both* its long and its short window (1/12 of the long) exceeds
the pair's threshold; the long window says enough budget went, the short one that it is still going
(so the alert resets minutes after the burn stops, not hours).

| class | long | short | budget spent in the long window | threshold, 30-day SLO |
|---|---|---|---|---|
| page (critical) | 1 h | 5 min | 2 % | 14.4 |
| page (critical) | 6 h | 30 min | 5 % | 6 |
| ticket (warning) | 1 d | 2 h | 10 % | 3 |
| ticket (warning) | 3 d | 6 h | 10 % | 1 |

The workbook derives each threshold from the share of the budget spent: threshold = share x SLO
window / long window. For an SLO window other than 30 days the same shares and windows are kept and
the thresholds follow (a 7-day SLO pages at 3.36 over 1 h), though never below 1 (a burn at 1 or below
lasts the SLO's window); a pair whose long window is longer than the SLO's own window is left out.
Burn rates are taken over the minutes measured; a long window counts only once half of it is measured
(a young history does not make "3 days" of 1 hour).

**Episodes.** Per feature and class (page, ticket) one alert: a trigger when a pair of the class
starts to burn, a resolve when none of its pairs burns. The dedup key is stable per (feature, class),
so a PagerDuty incident follows the feature. Whether a class is burning is read back from the outbox
(the last feature_slo row of that key): a restarted monitor, or a second monitor on the same
PostgreSQL, picks up the episode instead of paging again; the state passed in stands in where the
outbox has no row for a key.
"""

from __future__ import annotations

import logging
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlmodel import Session

from monitor.alerts.events import AlertEvent, Member
from monitor.config.features import FeatureConfig
from monitor.config.model import AiriskConfig
from monitor.durations import format_duration
from monitor.risk.chain import Term, chain_outcome
from monitor.risk.load import feature_inputs, resolve_backend
from monitor.risk.model import FeatureInput, Link
from monitor.risk.proven import Decision, decide
from monitor.store import histogram
from monitor.store.models import AlertOutbox, RollupHour, RollupMinute
from monitor.store.results import floor_hour, floor_minute

log = logging.getLogger(__name__)

RULE = "feature_slo"
MONTH = 30 * 86400.0
SEVERITY = {"page": "critical", "ticket": "warning"}

Burning = Mapping[tuple[str, str], datetime]
"""(feature, class) -> when the episode began."""


@dataclass(frozen=True, slots=True)
class Pair:
    """One multiwindow alert: fires when the burn rate over both windows exceeds ``threshold``."""

    cls: str
    """page | ticket"""
    long: float
    short: float
    budget: float
    """The share of the error budget the threshold spends over the long window."""

    def threshold(self, slo_window: float) -> float:
        """The burn rate that spends ``budget`` of the error budget in the long window, and at least 1: at
        1 or below the budget lasts the SLO's window, and nothing needs doing."""
        return max(1.0, self.budget * slo_window / self.long)

    @property
    def name(self) -> str:
        return f"{span(self.long)}/{span(self.short)}"


PAIRS = (
    Pair("page", 3600.0, 300.0, 0.02),
    Pair("page", 6 * 3600.0, 1800.0, 0.05),
    Pair("ticket", 86400.0, 7200.0, 0.10),
    Pair("ticket", 3 * 86400.0, 6 * 3600.0, 0.10),
)


def pairs_for(slo_window: float, pairs: Sequence[Pair] = PAIRS) -> tuple[Pair, ...]:
    """The pairs that apply to an SLO over ``slo_window`` seconds (a long window must fit in it)."""
    return tuple(p for p in pairs if p.long <= slo_window)


def span(seconds: float) -> str:
    """A window as a user writes it: "5m", "6h", "3d"."""
    if seconds >= 86400 and seconds % 86400 == 0:
        return f"{seconds / 86400:g}d"
    return format_duration(seconds)


def burn_rate(unavailable: Sequence[float | None], minutes: int, objective: float, *, at_least: int = 1
              ) -> float | None:
    """(1 - availability) / (1 - objective) over the last ``minutes`` of ``unavailable`` (one value a
    minute, oldest first, the current minute last; None: no word), over the minutes with a value.
    None when fewer than ``at_least`` of them have one."""
    known = [u for u in unavailable[-minutes:] if u is not None] if minutes > 0 else []
    if not known or len(known) < at_least:
        return None
    lost = math.fsum(min(1.0, max(0.0, u)) for u in known) / len(known)
    return lost / (1.0 - objective)


@dataclass(frozen=True, slots=True)
class Reading:
    """One pair's burn rates now."""

    pair: Pair
    threshold: float
    long_rate: float | None
    short_rate: float | None

    @property
    def firing(self) -> bool:
        return (self.long_rate is not None and self.short_rate is not None
                and self.long_rate > self.threshold and self.short_rate > self.threshold)

    def as_dict(self) -> dict:
        return {"pair": self.pair.name, "class": self.pair.cls, "threshold": round(self.threshold, 4),
                "burn_rate_long": _round(self.long_rate), "burn_rate_short": _round(self.short_rate),
                "firing": self.firing}


def readings(unavailable: Sequence[float | None], *, objective: float, slo_window: float,
             pairs: Sequence[Pair] = PAIRS) -> list[Reading]:
    """Every applicable pair's burn rates over a per-minute unavailability series (current minute last).

    A long window is read only once at least half of it (and a short window's worth) is measured: on a
    young history the "3 days" would be the last hour, and the slow pairs' low thresholds would fire on
    what the fast pairs rightly let pass."""
    return [Reading(p, p.threshold(slo_window),
                    burn_rate(unavailable, _minutes(p.long), objective,
                              at_least=max(_minutes(p.short), _minutes(p.long) // 2)),
                    burn_rate(unavailable, _minutes(p.short), objective))
            for p in pairs_for(slo_window, pairs)]


def _minutes(seconds: float) -> int:
    return max(1, math.ceil(seconds / 60 - 1e-9))


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 4)


# --- From the store: a feature's unavailability, minute by minute. ---


@dataclass(frozen=True, slots=True)
class _Counted:
    """A link that counts, and what it counts with (the risk model's decision)."""

    link: Link
    decision: Decision
    targets: tuple[str, ...]  # whose probes measure it; () for a degraded mode
    hold: int  # minutes a probe's word lasts (its targets' longest interval)


def feature_series(*, session: Session, config: AiriskConfig, feature: str, now: datetime, minutes: int,
                   inputs: FeatureInput | None = None) -> tuple[list[float | None], list[str]]:
    """The feature's unavailability (0..1) for each of the last ``minutes`` minutes, the current one last
    (None: no word on its primary), and what each link of its chain counted as, in words."""
    if inputs is None:
        inputs = feature_inputs(config=config, session=session, now=now,
                                window=timedelta(minutes=minutes))[0][feature]
    spec = config.features[feature]
    intervals: dict[str, float] = {t.name: interval for t, interval in config.resolve_schedule()}
    roles = ["primary", *["fallback"] * (len(inputs.chain) - 1)]
    counted, said = [], []
    for link, role in zip(inputs.chain, roles, strict=True):
        d = decide(link, role, inputs)
        said.append(f"{link.label}: {d.status}")
        if not d.counted:
            continue
        targets = () if link.kind == "degraded" else resolve_backend(config=config, name=link.name).targets
        longest = max((intervals.get(t, 60.0) for t in targets), default=60.0)
        counted.append(_Counted(link, d, targets, max(1, math.ceil(longest / 60))))
    end = floor_minute(now)
    start = end - timedelta(minutes=minutes - 1)
    per_link = [_link_minutes(session, c, spec, start, end, minutes) if c.targets else [1.0] * minutes
                for c in counted]
    series: list[float | None] = []
    seen: dict[tuple[float | None, ...], float] = {}  # most minutes look alike (everything up): compute each once
    for i in range(minutes):
        if not per_link or per_link[0][i] is None:  # the primary always counts: no word on it, no minute
            series.append(None)
            continue
        minute = tuple(a[i] for a in per_link)
        if minute not in seen:
            terms = [Term(a, c.link.domain or c.link.provider or c.link.label, c.decision.value or 0.0,
                          c.decision.effectiveness)
                     for c, a in zip(counted, minute, strict=True) if a is not None]
            seen[minute] = chain_outcome(terms).unavailability
        series.append(seen[minute])
    return series, said


def _link_minutes(session: Session, c: _Counted, spec: FeatureConfig, start: datetime, end: datetime,
                  minutes: int) -> list[float | None]:
    """A link's availability within the feature's budget, per minute from ``start`` to ``end`` (inclusive)."""
    budget = spec.latency_budget
    ft = None if budget.first_token is None else budget.first_token * 1000
    tot = None if budget.total is None else budget.total * 1000
    counts: dict[datetime, list[int]] = defaultdict(lambda: [0, 0])  # minute -> [probes, within budget]
    after = end + timedelta(minutes=1)
    for bucket, n, within in _rollup_counts(session, RollupMinute.__table__, c.targets, start, after, ft, tot):
        counts[bucket][0] += n
        counts[bucket][1] += within
    first = min(counts, default=after)
    if first > start:  # where the minute rollups were pruned, each older hour's rollup stands for its minutes
        hours = _rollup_counts(session, RollupHour.__table__, c.targets, floor_hour(start), floor_hour(first), ft, tot)
        for bucket, n, within in hours:
            for k in range(60):
                at = bucket + timedelta(minutes=k)
                if start <= at < first:
                    counts[at][0] += n
                    counts[at][1] += within
    out: list[float | None] = []
    last, age = None, 0
    for i in range(minutes):
        probes, within = counts.get(start + timedelta(minutes=i), (0, 0))
        if probes:
            last, age = within / probes, 0
        else:
            age += 1
            if age > c.hold:
                last = None
        out.append(last)
    return out


def _rollup_counts(session: Session, table: sa.Table, targets: Sequence[str], lo: datetime, hi: datetime,
                   ft: float | None, tot: float | None) -> Iterable[tuple[datetime, int, int]]:
    """(bucket, probes, answered within the budget) per bucket of ``table`` in [lo, hi), every region and
    target together. The rule of `monitor.store.queries.budget_counts` for rollups: an answer in a
    histogram bucket not entirely within the budget counts as over it (strict by up to one bucket)."""
    c = table.c
    where = (c.target.in_(list(targets)), c.bucket >= lo, c.bucket < hi)
    if ft is None and tot is None:  # no budget: the sums alone, added up by the database
        for bucket, up, degraded, down in session.execute(
                sa.select(c.bucket, sa.func.sum(c.up), sa.func.sum(c.degraded), sa.func.sum(c.down))
                .where(*where).group_by(c.bucket)):
            yield _utc(bucket), int(up + degraded + down), int(up + degraded)
        return
    for row in session.execute(sa.select(c.bucket, c.up, c.degraded, c.down, c.ttft_hist, c.total_hist)
                               .where(*where)):
        over = _over(row.ttft_hist or [], ft) + _over(row.total_hist or [], tot)
        yield _utc(row.bucket), row.up + row.degraded + row.down, max(0, row.up + row.degraded - over)


def _over(hist: Sequence[int], budget_ms: float | None) -> int:
    if budget_ms is None:
        return 0
    return sum(n for i, n in enumerate(hist) if n and histogram.bounds(i)[1] > budget_ms)


def _utc(at: datetime) -> datetime:
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


# --- The alerts. ---


def dedup_key(feature: str, cls: str) -> str:
    return f"airisk-slo-{feature}-{cls}"


def feature_slo_events(*, session: Session, config: AiriskConfig, now: datetime, burning: Burning
                       ) -> tuple[list[AlertEvent], dict[tuple[str, str], datetime]]:
    """The feature_slo events due now, and the burning state to pass in next time.

    For each feature with an ``slo`` that some feature_slo rule covers (by ``criticality``, and by
    ``targets``: a rule naming targets covers the features whose chain uses one of them). A feature
    whose primary's targets are all in an alerts maintenance window changes nothing, nor does one
    without any measured minute in a pair's windows.
    """
    rules = [r for r in (config.alerts.rules if config.alerts else []) if r.rule == RULE]
    state = dict(burning)
    features = {name: f for name, f in config.features.items() if f.slo is not None
                and any(_covers(r, config, f) for r in rules)}
    if not features:
        return [], state
    longest = max(max((p.long for p in pairs_for(f.slo.window)), default=3600.0) for f in features.values())
    inputs = feature_inputs(config=config, session=session, now=now, window=timedelta(seconds=longest))[0]
    episodes = _episodes(session, [dedup_key(n, c) for n in features for c in SEVERITY])
    events: list[AlertEvent] = []
    for name, spec in features.items():
        assert spec.slo is not None
        pairs = pairs_for(spec.slo.window)
        if not pairs:
            continue
        targets = [t for link in spec.chain if link.backend
                   for t in resolve_backend(config=config, name=link.backend).targets]
        primary = resolve_backend(config=config, name=spec.chain[0].backend or "").targets
        if config.alerts and primary and all(config.alerts.in_maintenance(t, now) for t in primary):
            continue
        series, said = feature_series(session=session, config=config, feature=name, now=now,
                                      minutes=_minutes(max(p.long for p in pairs)), inputs=inputs[name])
        now_readings = readings(series, objective=spec.slo.objective, slo_window=spec.slo.window, pairs=pairs)
        for cls in SEVERITY:
            mine = [r for r in now_readings if r.pair.cls == cls]
            fire = any(r.firing for r in mine)
            # Not burning is said only where it is measured: a short window without a probe (the monitor
            # stopped probing, or lost the database) resolves nothing.
            unknown = all(r.long_rate is None for r in mine) or any(
                r.long_rate is not None and r.short_rate is None for r in mine)
            if not mine or (not fire and unknown):
                continue
            key = (name, cls)
            was = episodes[dedup_key(name, cls)] if dedup_key(name, cls) in episodes else state.get(key)
            if fire == (was is not None):
                if was is not None:
                    state[key] = was
                continue
            since = was or floor_minute(now)
            if fire:
                state[key] = since
            else:
                state.pop(key, None)
            rules_here = [r for r in rules if _covers(r, config, spec)]
            events += _events(name, spec, cls, fire, since, now, mine, said, rules_here,
                              config.backend_provider(spec.chain[0].backend or ""), targets)
    return events, state


def _covers(rule, config: AiriskConfig, feature: FeatureConfig) -> bool:
    if rule.criticality is not None and feature.criticality not in rule.criticality:
        return False
    if rule.targets is None:
        return True
    used = {link.backend for link in feature.chain if link.backend}
    used |= {t for b in list(used) for t in resolve_backend(config=config, name=b).targets}
    return bool(used & set(rule.targets))


def _episodes(session: Session, keys: Iterable[str]) -> dict[str, datetime | None]:
    """Per dedup key with a feature_slo row in the outbox: when its open episode began, from the last
    such row (None: that row is a resolve, no episode is open)."""
    o = AlertOutbox.__table__.c
    latest = (sa.select(o.dedup_key, sa.func.max(o.id).label("id"))
              .where(o.rule == RULE, o.dedup_key.in_(list(keys))).group_by(o.dedup_key).subquery())
    out: dict[str, datetime | None] = {}
    for key, payload in session.execute(sa.select(o.dedup_key, o.payload).join(latest, o.id == latest.c.id)):
        out[key] = None
        if payload.get("action") == "trigger":
            began = (payload.get("details") or {}).get("since") or payload["at"]
            out[key] = _utc(datetime.fromisoformat(began))
    return out


def _events(name: str, spec: FeatureConfig, cls: str, fire: bool, since: datetime, now: datetime,
            mine: list[Reading], said: list[str], rules, provider: str, targets: list[str]) -> list[AlertEvent]:
    assert spec.slo is not None
    slo = f"SLO {spec.slo.objective:.3%} over {span(spec.slo.window)}"
    worst = max(mine, key=lambda r: (r.firing, (r.long_rate or 0) / r.threshold))
    if fire:
        title = (f"{name} ({spec.criticality}) is burning its error budget at {worst.long_rate:.1f}x over "
                 f"{span(worst.pair.long)} and {worst.short_rate:.1f}x over "
                 f"{span(worst.pair.short)} ({cls} at {worst.threshold:.3g}x; {slo})")
    else:
        title = f"{name} ({spec.criticality}) no longer burns its error budget at a {cls} rate ({slo})"
    key = dedup_key(name, cls)
    episode = f"{name}:{cls}@{since:%Y%m%dT%H%M}"
    log.log(logging.WARNING if fire else logging.INFO, "feature %s: %s", name, title, extra={
        "event": "feature_slo_burning" if fire else "feature_slo_ok", "feature": name, "pair": worst.pair.name,
        "class": cls, "burn_rate": _round(worst.long_rate), "threshold": round(worst.threshold, 4)})
    member = Member(name, "", None, key, "ok" if fire else "burning", "burning" if fire else "ok", now)
    details = {"feature": name, "criticality": spec.criticality, "objective": spec.slo.objective,
               "slo_window": span(spec.slo.window), "since": since.isoformat(),
               "pairs": [r.as_dict() for r in mine], "chain": said, "targets": targets}
    channels = list(dict.fromkeys(ch for r in rules for ch in r.channels))
    return [AlertEvent(channel=ch, rule=RULE, action="trigger" if fire else "resolve",
                       event_key=f"{RULE}:{episode}{'' if fire else '/resolved'}:{ch}", dedup_key=key,
                       provider=provider, title=title, severity=SEVERITY[cls] if fire else "info", at=now,
                       members=(member,), details=details)
            for ch in channels]
