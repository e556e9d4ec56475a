"""The shapes alerting works on: what detection reports (`Transition`), and what is queued for one
channel (`AlertEvent`, one outbox row).

An `AlertEvent` is plain data that survives a round trip through `AlertOutbox.payload` (JSON), so
the dispatcher rebuilds exactly what the rules produced, however long the channel was down.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from monitor.alerts.impact import Impact
from monitor.alerts.runbook import Runbook, runbook_for
from monitor.durations import format_duration
from monitor.store.models import AlertOutbox

SEVERITY = {"down": "critical", "degraded": "warning", "recovered": "info", "slo_burn": "error"}


@dataclass(frozen=True, slots=True)
class Transition:
    """A target changing state (up | degraded | down), as detection reports it."""

    target: str
    provider: str
    from_state: str
    to_state: str
    at: datetime
    incident_id: int | None = None
    """The incident this opens, worsens or closes."""
    region: str = ""
    cause: Mapping[str, Any] = field(default_factory=dict)
    """Why: error kinds seen, thresholds crossed and the measured values."""
    opened_at: datetime | None = None
    """For a recovery: when the incident opened (says how long it lasted; see maintenance)."""
    group: str | None = None
    """Set by `monitor.alerts.rules.Grouper`: the dedup key of the page of this provider's outage that
    the transition belongs to; None: no Grouper saw it."""
    role: str = ""
    """Set with ``group``: ``page`` (it is in the page that opened the group), ``update`` (a down /
    degraded transition the provider's current page absorbs, see `monitor.alerts.rules`), ``back`` (a
    member recovered, others not yet), ``last`` (the last member recovered: the page is over),
    ``closes`` (a copy of a recovery for an older page of the provider that it brings its last member
    back to, e.g. the DEGRADED page its target escalated from: that page is over too)."""


class IncidentLike(Protocol):
    """What reminders need of an open incident (`monitor.store.models.IncidentRow` fits)."""

    id: int | None
    target: str
    provider: str
    region: str
    state: str
    opened_at: datetime
    closed_at: datetime | None
    cause: dict[str, Any]


def incident_key(incident_id: int | None, target: str, region: str = "") -> str:
    """The dedup key of one incident: stable from trigger to resolve (PagerDuty's dedup_key)."""
    if incident_id is not None:
        return f"airisk-incident-{incident_id}"
    return f"airisk-{target}@{region}" if region else f"airisk-{target}"


@dataclass(frozen=True, slots=True)
class Member:
    """One target's part in an alert (an alert groups the targets of one provider)."""

    target: str
    region: str
    incident_id: int | None
    dedup_key: str
    from_state: str
    to_state: str
    at: datetime
    cause: Mapping[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return f"{self.target}@{self.region}" if self.region else self.target

    @classmethod
    def of(cls, t: Transition) -> Member:
        return cls(t.target, t.region, t.incident_id, incident_key(t.incident_id, t.target, t.region),
                   t.from_state, t.to_state, t.at, _jsonable(t.cause))

    def line(self) -> str:
        cause = ", ".join(f"{k}={_short(v)}" for k, v in self.cause.items())
        return f"{self.label}: {self.from_state} -> {self.to_state} at {self.at:%H:%M:%SZ}" + (
            f" ({cause})" if cause else "")


@dataclass(frozen=True, slots=True)
class AlertEvent:
    """One alert for one channel: a row of the outbox.

    ``event_key`` is unique per channel and deterministic (``{rule}:{incident or group}:{channel}``,
    ``update:{rule}:...`` for an update), so enqueueing the same event twice is a no-op. ``dedup_key`` is
    stable per incident (or group): the trigger and the resolve of one incident share it, and an update
    carries the key of the page it updates.
    """

    channel: str
    rule: str
    """down | degraded | recovered | slo_burn | reminder"""
    action: str
    """trigger | update | resolve. A trigger is a page (see `monitor.alerts.rules`); an update adds
    targets to a page the receiver still has open, under that page's ``dedup_key``."""
    event_key: str
    dedup_key: str
    provider: str
    title: str
    severity: str
    """critical | error | warning | info (PagerDuty's scale)"""
    at: datetime
    members: tuple[Member, ...] = ()
    details: Mapping[str, Any] = field(default_factory=dict)
    impact: Impact | None = None
    """The features the outage hits, what serves each and the cost so far (`monitor.alerts.impact`); None:
    not computed (an alert raised without a config, or an outbox row from before impacts)."""

    @property
    def targets(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(m.label for m in self.members))

    @property
    def worst_criticality(self) -> str | None:
        """The highest criticality among the features the alert hits; None: none hit, or no impact."""
        return self.impact.worst_criticality if self.impact is not None else None

    @property
    def runbook(self) -> list[Runbook]:
        """What to do about the members' causes (`monitor.alerts.runbook`), each once; for a trigger only."""
        return runbook_for(m.cause for m in self.members) if self.action in ("trigger", "update") else []

    def detail_lines(self) -> list[str]:
        """The details as "key: value" lines, long values cut."""
        return [f"{k}: {_short(v)}" for k, v in self.details.items()]

    def lines(self) -> list[str]:
        """The alert as text lines: the title, one line per target, the runbook, the impact, then the details."""
        return [self.title, *(m.line() for m in self.members), *(f"runbook: {r.line}" for r in self.runbook),
                *(self.impact.lines() if self.impact is not None else ()), *self.detail_lines()]

    def to_row(self) -> dict[str, Any]:
        """The `AlertOutbox` columns this event fills (state and attempts start at their defaults)."""
        payload = {"action": self.action, "title": self.title, "severity": self.severity,
                   "at": self.at.isoformat(), "details": _jsonable(self.details),
                   "members": [{**{f: getattr(m, f) for f in Member.__slots__}, "at": m.at.isoformat()}
                               for m in self.members]}
        if self.impact is not None:
            payload["impact"] = self.impact.to_dict()
        first = self.members[0].target if self.members else ""
        return {"channel": self.channel, "rule": self.rule, "event_key": self.event_key,
                "dedup_key": self.dedup_key, "target": first, "provider": self.provider, "payload": payload}

    @classmethod
    def from_row(cls, row: AlertOutbox) -> AlertEvent:
        p = row.payload
        members = tuple(Member(**{**m, "at": datetime.fromisoformat(m["at"])}) for m in p.get("members", ()))
        impact = Impact.from_dict(p["impact"]) if p.get("impact") else None  # rows from before impacts have none
        return cls(row.channel, row.rule, p["action"], row.event_key, row.dedup_key, row.provider, p["title"],
                   p["severity"], datetime.fromisoformat(p["at"]), members, p.get("details", {}), impact)


def title_for(rule: str, provider: str, members: tuple[Member, ...], *, since: datetime | None = None) -> str:
    """"openai: gpt-4o is DOWN", "openai: 2 targets DOWN (a, b)", "openai: a recovered after 12m"."""
    labels = list(dict.fromkeys(m.label for m in members))
    who = labels[0] if len(labels) == 1 else f"{len(labels)} targets ({', '.join(labels)})"
    verb = {"down": "is DOWN", "degraded": "is DEGRADED", "recovered": "recovered"}.get(rule, rule)
    if len(labels) > 1:
        verb = verb.removeprefix("is ")
    if since is not None:
        verb += f" after {format_duration(max((members[0].at - since).total_seconds(), 0.001))}"
    return f"{provider}: {who} {verb}"


def _jsonable(value: Any) -> Any:
    # The cause comes from detection and may hold datetimes or enums: store what JSON can keep.
    return json.loads(json.dumps(value, default=str))


def _short(value: Any, limit: int = 80) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= limit else text[: limit - 3] + "..."
