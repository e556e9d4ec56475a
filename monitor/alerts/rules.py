"""From detection transitions to alert events: pure functions of their inputs and the config.

- A transition's kind: ``down`` (into down), ``degraded`` (up -> degraded), ``recovered`` (back
  to up). Down -> degraded is the same incident getting better: no alert of its own.
- Grouping: transitions of one kind, of targets of the same provider, within ``group_window`` of
  the first of them, make one event naming every target (a provider outage is one page, not ten).
- Dedup: an event's key is ``{rule}:{provider}:{lead incident}:{channel}``, deterministic, so
  feeding the same transitions again yields the same keys and the outbox keeps one row.
- Maintenance: a transition inside a maintenance window raises nothing; so does the recovery of
  an incident that opened inside one (no alert went out for it).
- Reminders: an incident still open ``reminder_every`` after it opened is alerted again, once
  per period (the period number is in the key).

`Grouper` is the one stateful piece: it holds transitions until their group window closes, so
that targets failing a few seconds apart still land in one event.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime

from monitor.alerts.events import SEVERITY, AlertEvent, IncidentLike, Member, Transition, incident_key, title_for
from monitor.config.alerts import AlertsConfig
from monitor.durations import format_duration


def kind_of(t: Transition) -> str | None:
    """The rule a transition can fire: down, degraded, recovered, or None."""
    if t.to_state == "down" and t.from_state != "down":
        return "down"
    if t.to_state == "degraded" and t.from_state == "up":
        return "degraded"
    if t.to_state == "up" and t.from_state in ("down", "degraded"):
        return "recovered"
    return None


def events_for(transitions: Iterable[Transition], *, config: AlertsConfig, now: datetime,
               incidents: Iterable[IncidentLike] = ()) -> list[AlertEvent]:
    """The alert events for ``transitions`` (grouped per provider) and reminders for ``incidents``.

    One event per (rule, group, channel); two rules sending the same event to one channel give it
    once. ``incidents`` are the open incidents (closed ones are ignored); ``now`` dates reminders.
    """
    kept = [t for t in transitions if kind_of(t) and not _silenced(t, config)]
    events: list[AlertEvent] = []
    for rule in config.rules:
        if rule.rule == "slo_burn":
            continue
        matching = [t for t in kept if kind_of(t) == rule.rule and rule.matches(t.target)]
        for group in clusters(matching, window=config.group_window):
            events += [_event(rule.rule, group, channel) for channel in rule.channels]
    events += reminders(incidents, config=config, now=now)
    return list({(e.channel, e.event_key): e for e in events}.values())


def clusters(transitions: Iterable[Transition], *, window: float) -> list[list[Transition]]:
    """Per provider, in time order: runs of transitions within ``window`` seconds of the run's first."""
    by_provider: dict[str, list[Transition]] = defaultdict(list)
    for t in sorted(transitions, key=lambda t: (t.at, t.target, t.region)):
        by_provider[t.provider].append(t)
    out = []
    for items in by_provider.values():
        run: list[Transition] = []
        for t in items:
            if run and (t.at - run[0].at).total_seconds() > window:
                out.append(run)
                run = []
            run.append(t)
        out.append(run)
    return [run for run in out if run]


def _event(rule: str, group: Sequence[Transition], channel: str) -> AlertEvent:
    lead = group[0]
    members = tuple(Member.of(t) for t in group)
    group_id = f"{lead.provider}:{lead.incident_id if lead.incident_id is not None else lead.target}"
    if lead.incident_id is None:  # no incident to name the group: the time keeps the key unique
        group_id += f"@{lead.at:%Y%m%dT%H%M%S}"
    since = lead.opened_at if rule == "recovered" and len(group) == 1 else None
    return AlertEvent(
        channel=channel, rule=rule, action="resolve" if rule == "recovered" else "trigger",
        event_key=f"{rule}:{group_id}:{channel}", dedup_key=members[0].dedup_key, provider=lead.provider,
        title=title_for(rule, lead.provider, members, since=since), severity=SEVERITY[rule], at=lead.at,
        members=members,
    )


def reminders(incidents: Iterable[IncidentLike], *, config: AlertsConfig, now: datetime) -> list[AlertEvent]:
    """One event per open incident per whole ``reminder_every`` period it has been open, to the
    channels of the rules for its state. PagerDuty is left out: it escalates on its own, and a
    repeated trigger would only be added to the alert's log."""
    every = config.reminder_every
    if not every:
        return []
    events = []
    for inc in incidents:
        period = int((now - inc.opened_at).total_seconds() // every)
        if inc.closed_at is not None or period < 1 or config.in_maintenance(inc.target, now):
            continue
        key = incident_key(inc.id, inc.target, inc.region)
        member = Member(inc.target, inc.region, inc.id, key, inc.state, inc.state, inc.opened_at, inc.cause)
        open_for = format_duration(period * every)
        label = member.label
        for rule in config.rules:
            if rule.rule != inc.state or not rule.matches(inc.target):
                continue
            for channel in rule.channels:
                ch = config.channel(channel)
                if ch is None or ch.type == "pagerduty":
                    continue
                events.append(AlertEvent(
                    channel=channel, rule="reminder", action="trigger",
                    event_key=f"reminder:{inc.provider}:{inc.id if inc.id is not None else label}#{period}:{channel}",
                    dedup_key=key, provider=inc.provider,
                    title=f"{inc.provider}: {label} still {inc.state.upper()} after {open_for}",
                    severity=SEVERITY.get(inc.state, "warning"), at=now, members=(member,),
                    details={"open_for": open_for},
                ))
    return events


def _silenced(t: Transition, config: AlertsConfig) -> bool:
    if config.in_maintenance(t.target, t.at):
        return True
    # The recovery of an incident no alert went out for would be noise.
    return kind_of(t) == "recovered" and t.opened_at is not None and config.in_maintenance(t.target, t.opened_at)


class Grouper:
    """Holds transitions until their provider's group window has closed.

    ``add`` what detection reports as it comes; ``take(now)`` gives back the complete groups (the
    first transition at least ``window`` old), in the order `clusters` forms them, for `events_for`.
    In memory: a restart loses at most one window of held transitions.
    """

    def __init__(self, *, window: float) -> None:
        self.window = window
        self._held: list[Transition] = []

    def add(self, transitions: Iterable[Transition]) -> None:
        self._held.extend(transitions)

    def take(self, now: datetime) -> list[Transition]:
        ready, held = [], []
        for group in clusters(self._held, window=self.window):
            done = (now - group[0].at).total_seconds() >= self.window
            (ready if done else held).extend(group)
        self._held = held
        return ready

    def __len__(self) -> int:
        return len(self._held)
