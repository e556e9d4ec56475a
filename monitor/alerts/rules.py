"""From detection transitions to alert events: pure functions of their inputs and the config.

- A transition's kind: ``down`` (into down), ``degraded`` (up -> degraded), ``recovered`` (back
  to up). Down -> degraded is the same incident getting better: no alert of its own.
- Grouping: transitions of one kind, of targets of the same provider, within ``group_window`` of
  the first of them, make one event naming every target (a provider outage is one page, not ten).
- Pages and updates (Alertmanager's group_wait / group_interval, with the group kept open until its
  last member is back): a PAGE is a trigger event whose ``dedup_key`` the receiver has no open alert
  for, so it opens one and wakes someone (a receiver without alerts, a chat or an inbox, takes every
  trigger as a page; an update tells it in its title that it is not one). The first down / degraded
  transitions of a provider page after ``group_window``, as before. From then until every target of
  that group is back up, the provider's group is open, and later down / degraded transitions of the
  same provider (a target that hung 15 s longer before it went DOWN, or one getting worse) are not
  pages: `Grouper` marks them with the page's key (``Transition.group``) and they go out as UPDATE
  events (action ``update``, ``dedup_key`` the page's, event key ``update:...``), which each channel
  renders as an update of the alert already open. Recoveries still resolve each member; the one that
  brings the last member back closes the group, and the provider's next outage is a new page. The
  page's key is its first target's incident key; its events say which page they belong to in
  ``details`` (``page``, or ``update_of`` for an update; a recovery adds ``page_open``), for the
  channels that keep one alert per page (PagerDuty).
- A DOWN never hides in an update: an update reaches no one (PagerDuty does not notify on new triggers
  of an acknowledged alert, and a page is acknowledged minutes after it goes out), so a DOWN is an
  update only of a page that went out with a DOWN (as its page or an update) at most ``STALE_AFTER``
  (30 min) before it. Otherwise it is a new page, with its own key and a down alert's severity (the
  down rule's, or its features'), never the DEGRADED page's:
  - escalation: a page that has held only DEGRADED members (one target slow for days) takes no DOWN,
    of another target or of its own target getting worse; the DOWN page is the provider's current page
    from then on (later DOWNs and DEGRADEDs update it), and the DEGRADED page stays open until its own
    members are back, and resolves as any page (a recovery of a target in both is sent once for each:
    the second with event key ``recovered:{provider}:{incident}@{older page}:{channel}``);
  - a page gone quiet (the cap, still needed with escalation: a DOWN page acknowledged hours ago whose
    DOWN targets are back but one DEGRADED member lingers, or a long outage left acknowledged overnight,
    would hide a fresh DOWN the same way): a DOWN more than 30 min after the page's latest DOWN is a new
    page. 30 min is far longer than the spread of one outage's targets failing (seconds to minutes, the
    case updates are for) and about as long as anyone keeps watching an acknowledged alert. A trickle
    of DOWNs (one every 20 min) keeps one page, as one outage it is; DEGRADEDs never freshen a page, and
    never page while one is open (they are warnings), nor do DOWNs no rule pages for.
  Within one cluster (``group_window``) the page is being formed, not joined: DEGRADED and DOWN
  transitions released together are one page. A new page whose first member's incident key is already
  an open page's key (the target that paged DEGRADED went DOWN) takes that key with the time of its
  transition (``airisk-incident-7@20250304T120030``), so the receiver opens a new alert.
- Dedup: an event's key is ``{rule}:{provider}:{lead incident}:{channel}``, deterministic, so
  feeding the same transitions again yields the same keys and the outbox keeps one row.
- Maintenance: a transition inside a maintenance window raises nothing; so does the recovery of
  an incident that opened inside one (no alert went out for it).
- Reminders: an incident still open ``reminder_every`` after it opened is alerted again, once
  per period (the period number is in the key).

- Impact: given ``impact`` (`monitor.alerts.impact.impact_source`), each event carries the features its
  targets hit, what serves each and the cost so far; its severity comes from them (`severity_for`), a
  rule with ``criticality`` matches only targets hitting a feature of one of those criticalities, and a
  rule's ``covered`` says what an outage all of whose features are still served does (page, warn, skip).
- Wording: a target DOWN for a spent quota or credit balance says so in its title, and every channel
  shows the runbook line for the cause's kind (`monitor.alerts.runbook`).

Severity of a down / degraded alert: the worst over the features it hits, each by its status and
criticality (`FEATURE_SEVERITY`, PagerDuty's scale)::

    status                 low      medium   high     critical
    unserved               warning  error    error    critical   nothing serves it
    unverified_fallback    warning  error    error    critical   a fallback no drill or eval proved
    degraded_primary       info     warning  warning  error      its primary answers, slowly or with errors
    covered                warning  warning  warning  warning    a fallback the risk model counts serves it
    exposed                info     info     warning  warning    its primary serves; a fallback is gone

An unverified fallback counts as absent, as the risk model counts it. An alert whose targets no
declared feature uses, or whose impact could not be computed, keeps the rule's own severity
(`SEVERITY`): in doubt, page. Each row rises with criticality and the worst is taken, so a more
critical feature never lowers an alert's severity.

`Grouper` is the one stateful piece: it holds transitions until their group window closes, so
that targets failing a few seconds apart still land in one event, and it remembers each provider's
open group, so that targets failing further apart update that page instead of paging again.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

from monitor.alerts.events import SEVERITY, AlertEvent, IncidentLike, Member, Transition, incident_key, title_for
from monitor.alerts.impact import CRITICALITIES, Impact
from monitor.alerts.runbook import title_wording
from monitor.config.alerts import AlertsConfig, RuleConfig
from monitor.durations import format_duration

log = logging.getLogger(__name__)

ImpactSource = Callable[[Sequence[Member]], Impact]
"""Members of one alert -> their impact (`monitor.alerts.impact.impact_source` makes one)."""

_SCALE = ("info", "warning", "error", "critical")
FEATURE_SEVERITY: dict[str, dict[str, str]] = {
    "unserved": dict(zip(CRITICALITIES, ("warning", "error", "error", "critical"), strict=True)),
    "unverified_fallback": dict(zip(CRITICALITIES, ("warning", "error", "error", "critical"), strict=True)),
    "degraded_primary": dict(zip(CRITICALITIES, ("info", "warning", "warning", "error"), strict=True)),
    "covered": dict.fromkeys(CRITICALITIES, "warning"),
    "exposed": dict(zip(CRITICALITIES, ("info", "info", "warning", "warning"), strict=True)),
}
"""A hit feature's status -> criticality -> severity (see the module doc's table)."""


def severity_for(rule: str, impact: Impact | None) -> str:
    """The severity of a ``rule`` alert with ``impact``: the worst of its features' (`FEATURE_SEVERITY`);
    the rule's own (`SEVERITY`) when no feature is hit or the impact is not known, and for recoveries."""
    if rule not in ("down", "degraded") or impact is None or not impact.known or not impact.features:
        return SEVERITY.get(rule, "warning")
    worst = max((FEATURE_SEVERITY.get(f.status, FEATURE_SEVERITY["unserved"]).get(f.criticality, "error")
                 for f in impact.features), key=_SCALE.index)
    return worst


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
               incidents: Iterable[IncidentLike] = (), impact: ImpactSource | None = None) -> list[AlertEvent]:
    """The alert events for ``transitions`` (grouped per provider) and reminders for ``incidents``.

    One event per (rule, group, channel); two rules sending the same event to one channel give it
    once. ``incidents`` are the open incidents (closed ones are ignored); ``now`` dates reminders.
    ``impact``: what each group's outage does to the features (see the module doc); never lets an
    error through (a failing source leaves the events without impact).
    """
    kept = [t for t in transitions if kind_of(t) and not _silenced(t, config)]
    impacts = _Impacts(impact)
    events: list[AlertEvent] = []
    for rule in config.rules:
        if rule.rule not in ("down", "degraded", "recovered"):
            continue
        matching = [t for t in kept if kind_of(t) == rule.rule and rule.matches(t.target)]
        for group in _clusters_by_page(matching, window=config.group_window):
            members = tuple(Member.of(t) for t in group)
            found = impacts.get(members)
            if rule.criticality is not None:
                known = found is not None and found.known
                group = [t for t in group if rule.matches(t.target, found.criticalities_for(t.target) if known
                                                          and found is not None else None)]
                if not group:
                    continue
                if len(group) < len(members):
                    members = tuple(Member.of(t) for t in group)
                    found = impacts.get(members)
            for channel in rule.channels:
                event = _event(rule, group, channel, found)
                if event is not None:
                    events.append(event)
    events += reminders(incidents, config=config, now=now, impact=impact)
    return list({(e.channel, e.event_key): e for e in events}.values())


class _Impacts:
    """The impact source, asked once per distinct group, its failures kept out of the alert path."""

    def __init__(self, source: ImpactSource | None) -> None:
        self.source = source
        self.cache: dict[tuple[tuple[str, str, int | None, str], ...], Impact | None] = {}

    def get(self, members: Sequence[Member]) -> Impact | None:
        if self.source is None or not members:
            return None
        key = tuple((m.target, m.region, m.incident_id, m.to_state) for m in members)
        if key not in self.cache:
            try:
                self.cache[key] = self.source(members)
            except Exception:  # a source is meant never to raise; if it does, the alert still goes out
                log.exception("alert impact failed for %s", ", ".join(m.label for m in members))
                self.cache[key] = None
        return self.cache[key]


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


def _clusters_by_page(transitions: Iterable[Transition], *, window: float) -> list[list[Transition]]:
    """`clusters`, kept apart by the page each transition belongs to: the transitions of a page, its updates
    and its recoveries never share an event with another page's, nor a page's with its updates'."""
    by_page: dict[tuple[str, str], list[Transition]] = defaultdict(list)
    for t in transitions:
        by_page[(t.group or "", "update" if t.role == "update" else "")].append(t)
    return [run for _, items in sorted(by_page.items()) for run in clusters(items, window=window)]


def _event(rule_config: RuleConfig, group: Sequence[Transition], channel: str,
           impact: Impact | None = None) -> AlertEvent | None:
    """The event of one group for one channel; None when the rule skips an outage whose features are covered.

    A down / degraded group marked with an open page (``Transition.group``) is an update of it, not a page:
    action ``update``, the page's ``dedup_key``, an ``update:`` event key and a title that says so."""
    rule = rule_config.rule
    lead = group[0]
    members = tuple(Member.of(t) for t in group)
    group_id = f"{lead.provider}:{lead.incident_id if lead.incident_id is not None else lead.target}"
    if lead.incident_id is None:  # no incident to name the group: the time keeps the key unique
        group_id += f"@{lead.at:%Y%m%dT%H%M%S}"
    if lead.role == "closes":  # the copy of a recovery that resolves an older page: its own event
        group_id += f"@{lead.group}"
    since = lead.opened_at if rule == "recovered" and len(group) == 1 else None
    severity = severity_for(rule, impact)
    if rule in ("down", "degraded") and impact is not None and impact.covered:
        if rule_config.covered == "skip":
            return None
        severity = _covered_severity(rule_config, severity)
    wording = title_wording(m.cause for m in members) if rule == "down" else None
    title = f"{lead.provider}: {wording}" if wording else title_for(rule, lead.provider, members, since=since)
    update_of = lead.group if lead.role == "update" and rule != "recovered" else None
    details: dict[str, object] = {}
    if update_of is not None:
        title = f"UPDATE, not a new page: {title} (same outage as the open page {update_of})"
        details = {"update_of": update_of}
    elif lead.role == "page" and rule != "recovered":
        details = {"page": lead.group}
    elif rule == "recovered" and any(t.group for t in group):
        page = next(t.group for t in group if t.group)
        details = {"page": page, "page_open": not any(t.role in ("last", "closes") for t in group)}
    action = "resolve" if rule == "recovered" else "update" if update_of is not None else "trigger"
    return AlertEvent(
        channel=channel, rule=rule, action=action,
        event_key=f"{'update:' if update_of else ''}{rule}:{group_id}:{channel}",
        dedup_key=lead.group if lead.role in ("page", "update") else members[0].dedup_key, provider=lead.provider,
        title=title, severity=severity, at=lead.at, members=members, details=details, impact=impact,
    )


def _covered_severity(rule: RuleConfig, severity: str) -> str:
    """An outage all of whose features are served: ``page`` keeps the rule's own severity, ``warn`` makes it
    a warning (``skip`` sends nothing, decided by the caller)."""
    return SEVERITY.get(rule.rule, severity) if rule.covered == "page" else "warning"


def reminders(incidents: Iterable[IncidentLike], *, config: AlertsConfig, now: datetime,
              impact: ImpactSource | None = None) -> list[AlertEvent]:
    """One event per open incident per whole ``reminder_every`` period it has been open, to the
    channels of the rules for its state. PagerDuty is left out: it escalates on its own, and a
    repeated trigger would only be added to the alert's log. With ``impact``, a reminder carries
    the cost so far, and a rule's ``criticality`` and ``covered`` apply as to the first alert."""
    impacts = _Impacts(impact)
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
        found = impacts.get((member,))
        criticalities = found.criticalities_for(inc.target) if found is not None and found.known else None
        severity = severity_for(inc.state, found)
        for rule in config.rules:
            if rule.rule != inc.state or not rule.matches(inc.target, criticalities):
                continue
            covered = found is not None and found.covered
            if covered and rule.covered == "skip":
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
                    severity=_covered_severity(rule, severity) if covered else severity, at=now,
                    members=(member,), details={"open_for": open_for}, impact=found,
                ))
    return events


def _silenced(t: Transition, config: AlertsConfig) -> bool:
    if config.in_maintenance(t.target, t.at):
        return True
    # The recovery of an incident no alert went out for would be noise.
    return kind_of(t) == "recovered" and t.opened_at is not None and config.in_maintenance(t.target, t.opened_at)


STALE_AFTER = 30 * 60
"""Seconds after a page's latest DOWN beyond which a new DOWN of its provider pages again (see the module doc)."""


@dataclass(slots=True)
class _OpenPage:
    """One paged group of a provider while any of its targets is not back up."""

    key: str
    """The page's dedup key: its first member's (`monitor.alerts.events.incident_key`), with the time of its
    first transition when that key is already an open page's (see the module doc)."""
    out: set[tuple[str, str]] = field(default_factory=set)
    """The (target, region) members not back up."""
    last_down: datetime | None = None
    """When a DOWN last went out on this page (as its page or an update); None: it has only held DEGRADED."""


class Grouper:
    """Holds transitions until their provider's group window has closed, and remembers each provider's
    open pages.

    ``add`` what detection reports as it comes; ``take(now)`` gives back the complete groups (the
    first transition at least ``window`` old), in the order `clusters` forms them, for `events_for`.
    On the way out, each transition is marked against its provider's current page (the latest opened
    of its open pages; see the module doc): a down / degraded one the page absorbs gets ``group`` (the
    page's key) and ``role`` ``update``; one with no page to join opens one (``role`` ``page``), and the
    others released with it in its cluster are the page too. A DOWN is absorbed only by a page that went
    out with a DOWN less than ``stale_after`` seconds before; otherwise it opens a new page (escalation
    of a DEGRADED-only page, or a page gone quiet), which becomes the current one. A recovery gets
    ``group`` and ``role`` ``back`` for the latest page holding its member, or ``last`` if it brings that
    page's last member back; an older page it also closes (the DEGRADED page its target escalated from)
    gets a copy of it with ``role`` ``closes``, so that page resolves too. Pages are kept per provider
    and per kind of transition (a regional incident's transitions never update a global page). A
    transition added again after a failed enqueue keeps its mark: taking it again gives the same events.

    ``config``: when given, a transition no rule of its kind matches, or one inside a maintenance
    window, does not open a page (nothing paged, so nothing to update).

    In memory: a restart loses at most one window of held transitions, and the open pages: the first
    down / degraded transition of a provider after a restart pages again (at most one extra page per
    provider and outage) unless `resume` is given the open incidents.
    """

    def __init__(self, *, window: float, config: AlertsConfig | None = None,
                 stale_after: float = STALE_AFTER) -> None:
        self.window = window
        self.config = config
        self.stale_after = stale_after
        self._held: list[Transition] = []
        self._open: dict[tuple[str, type], list[_OpenPage]] = {}

    def add(self, transitions: Iterable[Transition]) -> None:
        self._held.extend(transitions)

    def take(self, now: datetime) -> list[Transition]:
        ready, held = [], []
        for group in clusters(self._held, window=self.window):
            done = (now - group[0].at).total_seconds() >= self.window
            (ready if done else held).extend(group)
        self._held = held
        return self._mark(ready)

    def resume(self, incidents: Iterable[IncidentLike]) -> None:
        """Rebuild the open pages from the open incidents after a restart, as if each incident had gone into
        its present state when it opened: per provider, the earliest-opened open incident's page, a new page
        for a DOWN incident joining a DEGRADED-only page or one whose latest DOWN opened ``stale_after``
        earlier, every open incident a member not back up. A provider whose pages are already known keeps
        them (its incidents join its current page). An incident that opened DEGRADED and is DOWN now counts
        as DOWN since it opened: its DEGRADED page and the time it got worse are not in the incident."""
        known = set(self._open)
        for inc in sorted((i for i in incidents if i.closed_at is None), key=lambda i: (i.opened_at, i.target)):
            scope = (inc.provider, Transition)
            pages = self._open.setdefault(scope, [])
            down = inc.state == "down"
            page = pages[-1] if pages else None
            if page is None or (scope not in known and down and not self._absorbs(page, inc.opened_at)):
                page = _OpenPage(self._new_key(pages, incident_key(inc.id, inc.target, inc.region), inc.opened_at))
                pages.append(page)
            page.out.add((inc.target, inc.region))
            if down:
                page.last_down = max(page.last_down or inc.opened_at, inc.opened_at)

    def open_pages(self) -> dict[str, str]:
        """Provider -> the dedup key of its current page (the latest opened; global transitions' pages only)."""
        return {provider: pages[-1].key for (provider, kind), pages in self._open.items()
                if kind is Transition and pages}

    def _mark(self, ready: list[Transition]) -> list[Transition]:
        out = []
        for group in clusters(ready, window=self.window):
            opened: dict[tuple[str, type], _OpenPage] = {}  # the pages this cluster opened
            for t in group:
                out.extend(self._marked(t, opened))
        return out

    def _marked(self, t: Transition, opened: dict[tuple[str, type], _OpenPage]) -> list[Transition]:
        if t.group is not None:  # taken before (its enqueue failed): the page state already counts it
            return [t]
        scope = (t.provider, type(t))
        kind = kind_of(t)
        if kind == "recovered":
            return self._back(t, scope)
        if t.to_state == "up":
            return [t]
        pages = self._open.get(scope, [])
        page = pages[-1] if pages else None
        routed = kind is not None and self._pages(t, kind)
        new = page is None or (kind == "down" and page is not opened.get(scope) and not self._absorbs(page, t.at))
        if new and routed:
            page = _OpenPage(self._new_key(pages, incident_key(t.incident_id, t.target, t.region), t.at))
            self._open.setdefault(scope, []).append(page)
            opened[scope] = page
        if page is None:
            return [t]
        page.out.add((t.target, t.region))
        if kind is None:
            return [t]
        if kind == "down" and routed:  # a DOWN no rule pages for tells no one: the page is not fresher for it
            page.last_down = t.at
        return [replace(t, group=page.key, role="page" if opened.get(scope) is page else "update")]

    def _back(self, t: Transition, scope: tuple[str, type]) -> list[Transition]:
        """A recovery marked with the latest page holding its member, and a ``closes`` copy for each older
        page it brings its last member back to."""
        pages = self._open.get(scope)
        if not pages:
            return [t]
        member = (t.target, t.region)
        holding = [p for p in pages if member in p.out] or [pages[-1]]
        for page in holding:
            page.out.discard(member)
        lead = holding[-1]
        marked = [replace(t, group=lead.key, role="back" if lead.out else "last")]
        marked += [replace(t, group=page.key, role="closes") for page in holding[:-1] if not page.out]
        pages[:] = [p for p in pages if p.out]
        if not pages:
            del self._open[scope]
        return marked

    def _absorbs(self, page: _OpenPage, at: datetime) -> bool:
        """Whether a DOWN at ``at`` is an update of ``page``: the page went out with a DOWN, lately."""
        return page.last_down is not None and (at - page.last_down).total_seconds() <= self.stale_after

    @staticmethod
    def _new_key(pages: Sequence[_OpenPage], key: str, at: datetime) -> str:
        """A new page's key: its first member's incident key, unless an open page has it already (the target
        that paged DEGRADED got worse): then that key with the time, so the receiver opens a new alert."""
        return f"{key}@{at:%Y%m%dT%H%M%S}" if any(p.key == key for p in pages) else key

    def _pages(self, t: Transition, kind: str) -> bool:
        if self.config is None:
            return True
        return not _silenced(t, self.config) and any(r.rule == kind and r.matches(t.target) for r in self.config.rules)

    def __len__(self) -> int:
        return len(self._held)
