"""SLO burn alerts: a target's availability over a rule's window fell below its objective.

Fires once when availability drops below the objective and once (a resolve) when it is back at or
above it. Which targets are burning is state the caller keeps and passes back in: `slo_events` is
pure. The key of a burn episode holds the time it began, so a trigger and its resolve share a
dedup key and a later episode is a new alert. A monitor that restarts without its state may
alert an ongoing burn once more (a new episode).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

from monitor.alerts.events import SEVERITY, AlertEvent, Member
from monitor.config.alerts import AlertsConfig
from monitor.durations import format_duration

Burning = Mapping[tuple[str, str], datetime]
"""(rule's slo_id, target) -> when the burn began."""


@dataclass(frozen=True, slots=True)
class Availability:
    """A target's measured availability (0..1) over the last ``window`` seconds."""

    target: str
    provider: str
    window: float
    value: float
    region: str = ""


def slo_events(samples: Iterable[Availability], *, config: AlertsConfig, burning: Burning, now: datetime
               ) -> tuple[list[AlertEvent], dict[tuple[str, str], datetime]]:
    """The slo_burn events the ``samples`` call for, and the burning state to pass in next time.

    A sample counts for each slo_burn rule with the same window that covers its target. A target
    in maintenance changes nothing (neither fires nor clears).
    """
    state = dict(burning)
    events: list[AlertEvent] = []
    for s in samples:
        if config.in_maintenance(s.target, now):
            continue
        for rule in config.rules:
            if rule.rule != "slo_burn" or rule.window != s.window or not rule.matches(s.target):
                continue
            key = (rule.slo_id, s.target)
            objective = rule.objective or 0.0
            below = s.value < objective
            if below == (key in state):
                continue
            since = state.pop(key, None) or now
            if below:
                state[key] = since
            episode = f"{rule.slo_id}:{s.target}@{since:%Y%m%dT%H%M%S}"
            action = "trigger" if below else "resolve"
            where = f"{s.target}@{s.region}" if s.region else s.target
            verb = "is below" if below else "is back at or above"
            title = (f"{s.provider}: {where} availability {s.value:.3%} over {format_duration(s.window)} "
                     f"{verb} the {objective:.3%} objective")
            member = Member(s.target, s.region, None, f"airisk-{episode}", "ok" if below else "burning",
                            "burning" if below else "ok", now)
            for channel in rule.channels:
                events.append(AlertEvent(
                    channel=channel, rule="slo_burn", action=action,
                    event_key=f"slo_burn:{episode}{'' if below else '/resolved'}:{channel}",
                    dedup_key=member.dedup_key, provider=s.provider, title=title,
                    severity=SEVERITY["slo_burn"] if below else "info", at=now, members=(member,),
                    details={"availability": round(s.value, 6), "objective": objective,
                             "window": format_duration(s.window)},
                ))
    return events, state
