"""Alert rules as pure functions: which transitions alert whom, grouped, deduplicated, silenced, repeated."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

import monitor.alerts
import monitor.alerts.channels
from monitor.alerts import Alert, Availability, Grouper, Transition, events_for, kind_of, slo_events
from monitor.alerts.channels import pagerduty
from monitor.alerts.impact import FeatureImpact, Impact
from monitor.alerts.runbook import QUOTA_TITLE, cause_kind
from monitor.config.alerts import AlertsConfig

T0 = datetime(2025, 3, 4, 12, 0, 0, tzinfo=UTC)


def s(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def tr(target: str, frm: str, to: str, at: datetime = T0, *, incident: int | None = 1, provider: str = "openai",
       opened_at: datetime | None = None) -> Transition:
    return Transition(target, provider, frm, to, at, incident_id=incident, opened_at=opened_at)


def cfg(**extra: Any) -> AlertsConfig:
    data = {
        "channels": [{"name": "team", "type": "slack", "url_env": "SLACK_URL"},
                     {"name": "hook", "type": "webhook", "url_env": "HOOK_URL"},
                     {"name": "pd", "type": "pagerduty", "routing_key_env": "PD_KEY"}],
        "rules": [{"rule": "down", "channels": ["team", "pd"]},
                  {"rule": "degraded", "channels": ["team"]},
                  {"rule": "recovered", "channels": ["team", "pd"]}],
    }
    return AlertsConfig.model_validate({**data, **extra})


def keys(events) -> list[str]:
    return sorted(e.event_key for e in events)


@pytest.mark.parametrize("package", [monitor.alerts, monitor.alerts.channels])
def test_public_names_are_sorted_and_exist(package):
    assert package.__all__ == sorted(package.__all__)
    assert all(hasattr(package, name) for name in package.__all__)


@pytest.mark.parametrize(("frm", "to", "kind"), [
    ("up", "down", "down"), ("degraded", "down", "down"), ("up", "degraded", "degraded"),
    ("down", "up", "recovered"), ("degraded", "up", "recovered"), ("down", "degraded", None), ("up", "up", None),
])
def test_kind_of_a_transition(frm, to, kind):
    assert kind_of(tr("a", frm, to)) == kind


def test_targets_of_one_provider_failing_together_make_one_alert_per_channel():
    transitions = [tr("gpt-4o", "up", "down", s(0), incident=7), tr("gpt-4o-mini", "up", "down", s(3), incident=8),
                   tr("claude", "up", "down", s(1), incident=9, provider="anthropic")]
    events = events_for(transitions, config=cfg(), now=s(20))
    assert keys(events) == ["down:anthropic:9:pd", "down:anthropic:9:team", "down:openai:7:pd",
                            "down:openai:7:team"]
    openai = next(e for e in events if e.event_key == "down:openai:7:team")
    assert openai.targets == ("gpt-4o", "gpt-4o-mini")
    assert openai.title == "openai: 2 targets (gpt-4o, gpt-4o-mini) DOWN"
    assert (openai.dedup_key, openai.action, openai.severity, openai.at) == ("airisk-incident-7", "trigger",
                                                                             "critical", s(0))
    assert [m.dedup_key for m in openai.members] == ["airisk-incident-7", "airisk-incident-8"]


def test_transitions_further_apart_than_the_group_window_alert_separately():
    transitions = [tr("a", "up", "down", s(0), incident=1), tr("b", "up", "down", s(10.5), incident=2)]
    events = events_for(transitions, config=cfg(group_window="10s"), now=s(30))
    assert keys(events) == ["down:openai:1:pd", "down:openai:1:team", "down:openai:2:pd", "down:openai:2:team"]


def test_same_input_gives_the_same_keys_and_two_rules_to_one_channel_give_one_event():
    config = cfg(rules=[{"rule": "down", "channels": ["team"]}, {"rule": "down", "channels": ["team", "hook"]}])
    transitions = [tr("a", "up", "down", s(0))]
    first = events_for(transitions, config=config, now=s(20))
    assert keys(first) == keys(events_for(transitions, config=config, now=s(99))) == [
        "down:openai:1:hook", "down:openai:1:team"]


def test_each_rule_fires_on_its_own_kind_and_respects_its_target_filter():
    config = cfg(rules=[{"rule": "degraded", "channels": ["team"], "targets": ["a"]},
                        {"rule": "recovered", "channels": ["hook"]}])
    transitions = [tr("a", "up", "degraded", s(0), incident=1), tr("b", "up", "degraded", s(0), incident=2),
                   tr("c", "up", "down", s(0), incident=3), tr("d", "down", "up", s(0), incident=4),
                   tr("e", "down", "degraded", s(0), incident=5)]
    events = events_for(transitions, config=config, now=s(20))
    assert keys(events) == ["degraded:openai:1:team", "recovered:openai:4:hook"]
    recovered = next(e for e in events if e.rule == "recovered")
    assert (recovered.action, recovered.severity, recovered.dedup_key) == ("resolve", "info", "airisk-incident-4")


def test_a_recovery_says_how_long_the_incident_lasted():
    (event, _) = events_for([tr("a", "down", "up", s(750), opened_at=s(0))], config=cfg(), now=s(800))
    assert event.title == "openai: a recovered after 12m30s"


def test_nothing_is_raised_inside_a_maintenance_window():
    config = cfg(maintenance=[{"start": s(0).isoformat(), "end": s(600).isoformat(), "targets": ["a"]}])
    transitions = [
        tr("a", "up", "down", s(10), incident=1),  # inside: silent
        tr("b", "up", "down", s(10), incident=2),  # another target: alerts
        tr("a", "down", "up", s(900), incident=1, opened_at=s(10)),  # its incident began inside: silent
        tr("a", "up", "down", s(1000), incident=3),  # after the window: alerts
        tr("a", "down", "up", s(1200), incident=4, opened_at=-timedelta(seconds=60) + s(0)),  # began before
    ]
    events = events_for(transitions, config=config, now=s(2000))
    assert keys(events) == ["down:openai:2:pd", "down:openai:2:team", "down:openai:3:pd", "down:openai:3:team",
                            "recovered:openai:4:pd", "recovered:openai:4:team"]


@dataclass
class Incident:
    id: int | None
    target: str
    opened_at: datetime
    state: str = "down"
    provider: str = "openai"
    region: str = ""
    closed_at: datetime | None = None
    cause: dict[str, Any] = field(default_factory=dict)


def test_reminders_repeat_once_per_period_and_skip_pagerduty():
    config = cfg(reminder_every="30m")
    incidents = [Incident(7, "a", s(0)), Incident(8, "b", s(0), closed_at=s(60)),
                 Incident(9, "c", s(0), state="degraded")]

    def at(minutes: float) -> list[str]:
        return keys(events_for([], config=config, now=s(minutes * 60), incidents=incidents))

    assert at(29) == []
    assert at(31) == at(59) == ["reminder:openai:7#1:team", "reminder:openai:9#1:team"]
    assert at(61) == ["reminder:openai:7#2:team", "reminder:openai:9#2:team"]
    (event, _) = events_for([], config=config, now=s(61 * 60), incidents=incidents)
    assert event.title == "openai: a still DOWN after 1h"
    assert event.dedup_key == "airisk-incident-7"


def test_no_reminders_when_disabled_or_in_maintenance():
    incidents = [Incident(7, "a", s(0))]
    assert events_for([], config=cfg(reminder_every=None), now=s(7200), incidents=incidents) == []
    quiet = cfg(maintenance=[{"start": s(0).isoformat(), "end": s(9000).isoformat()}])
    assert events_for([], config=quiet, now=s(7200), incidents=incidents) == []


def test_grouper_holds_transitions_until_their_window_closes():
    grouper = Grouper(window=10)
    a, b = tr("a", "up", "down", s(0), incident=1), tr("b", "up", "down", s(3), incident=2)
    c = tr("c", "up", "down", s(20), incident=3)
    grouper.add([a])
    assert grouper.take(s(5)) == []
    grouper.add([b])
    assert [(t.target, t.group, t.role) for t in grouper.take(s(10))] == [
        ("a", "airisk-incident-1", "page"), ("b", "airisk-incident-1", "page")]
    grouper.add([c])
    assert grouper.take(s(29)) == [] and len(grouper) == 1
    assert [(t.target, t.group, t.role) for t in grouper.take(s(30))] == [("c", "airisk-incident-1", "update")]
    (event, _) = events_for([a, b], config=cfg(), now=s(10))
    assert event.targets == ("a", "b")


# --- slo_burn ---------------------------------------------------------------------------------


def slo_cfg() -> AlertsConfig:
    return cfg(rules=[{"rule": "slo_burn", "channels": ["team", "pd"], "objective": 0.995, "window": "1h"},
                      {"rule": "slo_burn", "channels": ["hook"], "objective": 0.9, "window": "24h",
                       "targets": ["a"]}])


def test_slo_burn_fires_once_below_and_once_back_above():
    config, burning = slo_cfg(), {}
    timeline = [(0, 0.999), (60, 0.990), (120, 0.980), (180, 0.996), (240, 0.996), (300, 0.97)]
    fired = []
    for minute, value in timeline:
        events, burning = slo_events([Availability("a", "openai", 3600, value)], config=config, burning=burning,
                                     now=s(minute * 60))
        fired += [(minute, e.channel, e.action, e.dedup_key) for e in events]
    first, second = "airisk-slo99.5%/1h:a@20250304T130000", "airisk-slo99.5%/1h:a@20250304T170000"
    assert fired == [(60, "team", "trigger", first), (60, "pd", "trigger", first),
                     (180, "team", "resolve", first), (180, "pd", "resolve", first),
                     (300, "team", "trigger", second), (300, "pd", "trigger", second)]


def test_slo_burn_message_and_matching_by_window_and_target():
    config = slo_cfg()
    samples = [Availability("a", "openai", 86400, 0.85, region="eu"), Availability("b", "openai", 86400, 0.5),
               Availability("b", "openai", 60, 0.1)]  # no rule has a 1-minute window
    events, burning = slo_events(samples, config=config, burning={}, now=s(0))
    (event,) = events
    assert event.channel == "hook" and event.rule == "slo_burn" and event.severity == "error"
    assert event.title == "openai: a@eu availability 85.000% over 24h is below the 90.000% objective"
    assert event.event_key == "slo_burn:slo90%/24h:a@20250304T120000:hook"
    assert burning == {("slo90%/24h", "a"): s(0)}


# --- Impact: severity from the features hit, rules by criticality, covered outages ---


def feature(name: str, criticality: str, status: str, *targets: str) -> FeatureImpact:
    return FeatureImpact(name, criticality, status, targets, targets)


def source(*features: FeatureImpact, calls: list | None = None):
    """An impact source (a stand-in for `impact_source`) giving each group the given features its targets hit."""

    def impact(members):
        if calls is not None:
            calls.append(tuple(m.target for m in members))
        targets = tuple(dict.fromkeys(m.target for m in members))
        return Impact(targets, T0, T0, tuple(f for f in features if set(f.hit_by) & set(targets)),
                      "http://127.0.0.1:8501/providers?target=a")

    return impact


def test_severity_comes_from_the_worst_feature_hit_and_the_event_carries_the_impact():
    calls: list = []
    impact = source(feature("chat", "high", "covered", "a"), feature("support", "critical", "unserved", "b"),
                    calls=calls)
    events = events_for([tr("a", "up", "down"), tr("b", "up", "down", s(2), incident=2)], config=cfg(), now=s(60),
                        impact=impact)
    assert {e.severity for e in events} == {"critical"} and len(events) == 2
    assert all(e.worst_criticality == "critical" and len(e.impact.features) == 2 for e in events)
    assert calls == [("a", "b")]  # asked once per group, whatever the channels
    only_chat = events_for([tr("a", "up", "down")], config=cfg(), now=s(60), impact=impact)
    assert {e.severity for e in only_chat} == {"warning"}  # covered: the default rule warns


@pytest.mark.parametrize(("covered", "severities"), [("page", {"critical"}), ("warn", {"warning"}), ("skip", set())])
def test_a_rule_says_what_an_outage_whose_features_are_all_covered_does(covered, severities):
    config = cfg(rules=[{"rule": "down", "channels": ["team"], "covered": covered}])
    impact = source(feature("chat", "critical", "covered", "a"), feature("tags", "low", "exposed", "a"))
    events = events_for([tr("a", "up", "down")], config=config, now=s(60), impact=impact)
    assert {e.severity for e in events} == severities
    # One feature not covered: the rule pages whatever it says about covered outages.
    hurt = source(feature("chat", "critical", "covered", "a"), feature("tags", "medium", "unserved", "a"))
    assert [e.severity for e in events_for([tr("a", "up", "down")], config=config, now=s(60), impact=hurt)] == [
        "error"]


def test_covered_is_only_for_down_and_degraded_rules():
    with pytest.raises(ValueError, match="covered: only a down or degraded rule has one"):
        cfg(rules=[{"rule": "recovered", "channels": ["team"], "covered": "skip"}])


def test_rules_match_on_the_criticality_of_the_features_hit():
    config = cfg(rules=[{"rule": "down", "channels": ["pd"], "criticality": ["critical"]},
                        {"rule": "down", "channels": ["team"], "criticality": ["low", "medium"]},
                        {"rule": "recovered", "channels": ["pd"]}])
    impact = source(feature("support", "critical", "unserved", "a"), feature("tags", "low", "covered", "b"))
    events = events_for([tr("a", "up", "down"), tr("b", "up", "down", s(1), incident=2)], config=config, now=s(60),
                        impact=impact)
    by_channel = {e.channel: e for e in events}
    assert by_channel["pd"].targets == ("a",) and by_channel["pd"].severity == "critical"
    assert [f.feature for f in by_channel["pd"].impact.features] == ["support"]  # the impact of its own targets
    assert by_channel["team"].targets == ("b",) and by_channel["team"].severity == "warning"
    # A target no feature uses hits no criticality: a criticality rule does not fire for it.
    assert events_for([tr("z", "up", "down")], config=config, now=s(60), impact=impact) == []
    # No impact (none given, or it failed): the rule fires in doubt rather than lose a page.
    assert {e.channel for e in events_for([tr("z", "up", "down")], config=config, now=s(60))} == {"pd", "team"}

    def broken(members):
        raise RuntimeError("boom")

    assert {e.channel for e in events_for([tr("z", "up", "down")], config=config, now=s(60), impact=broken)} == {
        "pd", "team"}


def test_a_rule_without_criticality_matches_whatever_is_hit():
    rule = cfg().rules[0]
    assert rule.matches("a") and rule.matches("a", set()) and rule.matches("a", {"low"})
    picky = cfg(rules=[{"rule": "down", "channels": ["team"], "criticality": ["high", "critical"]}]).rules[0]
    assert picky.matches("a", {"low", "high"}) and not picky.matches("a", {"low"}) and not picky.matches("a", set())
    assert picky.matches("a", None)
    targeted = cfg(rules=[{"rule": "down", "channels": ["team"], "targets": ["b"], "criticality": ["low"]}]).rules[0]
    assert not targeted.matches("a", {"low"}) and targeted.matches("b", {"low"})


def test_a_spent_quota_or_credit_balance_has_its_own_title_and_runbook():
    spent = Transition("gpt-4o", "openai", "up", "down", T0, incident_id=4,
                       cause={"rule": "failures", "kinds": {"quota_exhausted": 3, "server_error": 1}})
    (event,) = events_for([spent], config=cfg(rules=[{"rule": "down", "channels": ["team"]}]), now=s(60))
    assert event.title == f"openai: {QUOTA_TITLE}"
    assert event.title == ("openai: quota/credit exhausted — needs a human with a credit card, retrying will not "
                           "help")
    assert event.runbook[0].line.startswith("Spent quota or credit balance: top up the account")
    assert any(line.startswith("runbook: Spent quota") for line in event.lines())
    # A rate limit is not a spent quota: the usual title, its own runbook line.
    limited = Transition("gpt-4o", "openai", "up", "down", T0, incident_id=5, cause={"kinds": {"rate_limited": 3}})
    (event,) = events_for([limited], config=cfg(rules=[{"rule": "down", "channels": ["team"]}]), now=s(60))
    assert event.title == "openai: gpt-4o is DOWN" and event.runbook[0].line.startswith("Rate limited")


@pytest.mark.parametrize(("cause", "kind"), [
    ({"kinds": {"quota_exhausted": 1, "overloaded": 4}}, "overloaded"),  # one stray error does not make it
    ({"kinds": {"quota_exhausted": 2, "overloaded": 2}}, "quota_exhausted"),  # equals: detection's order
    ({"error_kind": "auth"}, "auth"),
    ({"kinds": {}}, None),
    ({"kinds": {"auth": "x"}}, None),
    ({}, None),
])
def test_the_kind_of_a_cause(cause, kind):
    assert cause_kind(cause) == kind


def test_reminders_carry_the_cost_so_far_and_follow_criticality_and_covered():
    config = cfg(reminder_every="30m", rules=[
        {"rule": "down", "channels": ["team"], "criticality": ["critical"]},
        {"rule": "down", "channels": ["hook"], "covered": "skip"},
    ])
    incidents = [Incident(7, "a", s(0)), Incident(8, "b", s(0))]
    impact = source(feature("support", "critical", "unserved", "a"), feature("tags", "low", "covered", "b"))
    events = events_for([], config=config, now=s(31 * 60), incidents=incidents, impact=impact)
    assert sorted((e.channel, e.members[0].target, e.severity) for e in events) == [
        ("hook", "a", "critical"), ("team", "a", "critical")]
    assert all(e.impact is not None and e.impact.features[0].feature == "support" for e in events)


# --- one page per outage: updates while the provider's page is open ------------------------------------


def drive(grouper: Grouper, transitions: list[Transition], *, until: float, config: AlertsConfig | None = None,
          step: float = 1.0) -> list:
    """What the service does: each transition added when it happens, the grouper taken every ``step`` s,
    what it gives back through `events_for`."""
    config = config or cfg()
    pending = sorted(transitions, key=lambda t: t.at)
    events, now = [], 0.0
    while now <= until:
        grouper.add([t for t in pending if t.at <= s(now)])
        pending = [t for t in pending if t.at > s(now)]
        events += events_for(grouper.take(s(now)), config=config, now=s(now))
        now += step
    return events


def test_targets_of_one_provider_down_far_apart_page_once_then_update_that_page():
    outage = [tr("a", "up", "down", s(0), incident=1), tr("b", "up", "down", s(15), incident=2),
              tr("c", "up", "down", s(25), incident=3)]
    events = drive(Grouper(window=10), outage, until=60)
    pages = [e for e in events if e.action == "trigger"]
    assert [(e.channel, e.dedup_key, e.targets, e.at) for e in pages] == [
        ("team", "airisk-incident-1", ("a",), s(0)), ("pd", "airisk-incident-1", ("a",), s(0))]
    updates = [e for e in events if e.action == "update"]
    # b and c, 10 s apart, make one update (their own group window), under the page's dedup key.
    assert keys(updates) == ["update:down:openai:2:pd", "update:down:openai:2:team"]
    assert {e.dedup_key for e in updates} == {"airisk-incident-1"}  # the page's: the receiver folds them into it
    bc = next(e for e in updates if e.channel == "team")
    assert bc.title == ("UPDATE, not a new page: openai: 2 targets (b, c) DOWN (same outage as the open page "
                        "airisk-incident-1)")
    assert bc.details == {"update_of": "airisk-incident-1"} and bc.severity == "critical"
    assert [m.dedup_key for m in bc.members] == ["airisk-incident-2", "airisk-incident-3"]


def test_an_update_further_than_a_window_from_the_last_is_its_own_update():
    outage = [tr("a", "up", "down", s(0), incident=1), tr("b", "up", "down", s(15), incident=2),
              tr("c", "up", "down", s(40), incident=3)]
    events = [e for e in drive(Grouper(window=10), outage, until=80) if e.channel == "team"]
    assert [(e.action, e.event_key, e.dedup_key, e.targets) for e in events] == [
        ("trigger", "down:openai:1:team", "airisk-incident-1", ("a",)),
        ("update", "update:down:openai:2:team", "airisk-incident-1", ("b",)),
        ("update", "update:down:openai:3:team", "airisk-incident-1", ("c",))]


def test_each_member_resolves_and_the_next_outage_after_all_recovered_pages_again():
    grouper = Grouper(window=10)
    first = [tr("a", "up", "down", s(0), incident=1), tr("b", "up", "down", s(15), incident=2),
             tr("c", "up", "down", s(25), incident=3),
             tr("a", "down", "up", s(100), incident=1, opened_at=s(0)),
             tr("b", "down", "up", s(130), incident=2, opened_at=s(15)),
             tr("c", "down", "up", s(160), incident=3, opened_at=s(25))]
    events = [e for e in drive(grouper, first, until=200) if e.channel == "pd"]
    resolves = [e for e in events if e.action == "resolve"]
    assert [(e.dedup_key, e.details) for e in resolves] == [
        ("airisk-incident-1", {"page": "airisk-incident-1", "page_open": True}),
        ("airisk-incident-2", {"page": "airisk-incident-1", "page_open": True}),
        ("airisk-incident-3", {"page": "airisk-incident-1", "page_open": False})]
    assert grouper.open_pages() == {}
    second = [tr("b", "up", "down", s(300), incident=4), tr("a", "up", "down", s(320), incident=5)]
    events = [e for e in drive(grouper, second, until=400) if e.channel == "pd"]
    assert [(e.action, e.dedup_key) for e in events] == [("trigger", "airisk-incident-4"),
                                                         ("update", "airisk-incident-4")]


def test_a_member_recovering_keeps_the_page_open_while_another_is_down():
    grouper = Grouper(window=10)
    events = drive(grouper, [tr("a", "up", "down", s(0), incident=1), tr("b", "up", "down", s(15), incident=2),
                             tr("a", "down", "up", s(40), incident=1, opened_at=s(0)),
                             tr("a", "up", "down", s(60), incident=3)], until=100)
    assert [(e.action, e.dedup_key) for e in events if e.channel == "pd"] == [
        ("trigger", "airisk-incident-1"), ("update", "airisk-incident-1"), ("resolve", "airisk-incident-1"),
        ("update", "airisk-incident-1")]
    assert grouper.open_pages() == {"openai": "airisk-incident-1"}


def test_degraded_of_an_open_page_are_updates_and_other_providers_page_on_their_own():
    events = drive(Grouper(window=10), [
        tr("a", "up", "down", s(0), incident=1), tr("a", "down", "degraded", s(30), incident=1),
        tr("b", "up", "degraded", s(40), incident=2), tr("claude", "up", "down", s(45), incident=9,
                                                          provider="anthropic")], until=100)
    got = sorted((e.action, e.rule, e.event_key, e.dedup_key) for e in events if e.channel == "team")
    assert got == [("trigger", "down", "down:anthropic:9:team", "airisk-incident-9"),
                   ("trigger", "down", "down:openai:1:team", "airisk-incident-1"),
                   ("update", "degraded", "update:degraded:openai:2:team", "airisk-incident-1")]


# --- a DOWN never hides as an update: escalation of a DEGRADED-only page, and pages gone quiet ---------


def escalating() -> AlertsConfig:
    """Every rule to Slack and PagerDuty: the DEGRADED page is a PagerDuty alert too (acknowledged, silent)."""
    return cfg(rules=[{"rule": r, "channels": ["team", "pd"]} for r in ("down", "degraded", "recovered")])


def pagerduty_replay(events) -> tuple[list[str], set[str]]:
    """The PagerDuty bodies of ``events``, through its documented de-duplication: (alerts opened, still open)."""
    opened, open_now = [], set()
    config = escalating()
    for e in (e for e in events if e.channel == "pd"):
        for body in pagerduty.events(Alert(e, config.channel("pd"), "key"), "key"):
            if body["event_action"] == "trigger" and body["dedup_key"] not in open_now:
                opened.append(body["dedup_key"])
                open_now.add(body["dedup_key"])
            elif body["event_action"] == "resolve":
                open_now.discard(body["dedup_key"])
    return opened, open_now


def test_a_down_after_hours_of_a_degraded_only_page_is_a_page_of_its_own():
    config = escalating()
    hours = 3 * 3600
    grouper = Grouper(window=10, config=config)
    events = drive(grouper, [
        tr("a", "up", "degraded", s(0), incident=1),
        tr("b", "up", "down", s(hours), incident=2),  # the defect: this was an update of a's acknowledged page
        tr("c", "up", "down", s(hours + 60), incident=3),  # the DOWN page is the current one now: an update of it
        tr("d", "up", "degraded", s(hours + 120), incident=4),
        tr("b", "down", "up", s(hours + 600), incident=2, opened_at=s(hours)),
        tr("c", "down", "up", s(hours + 700), incident=3, opened_at=s(hours + 60)),
        tr("d", "degraded", "up", s(hours + 800), incident=4, opened_at=s(hours + 120)),
        tr("a", "degraded", "up", s(hours + 900), incident=1, opened_at=s(0))], until=hours + 1000, config=config,
        step=5)
    team = [(e.action, e.rule, e.dedup_key, e.targets, e.severity) for e in events if e.channel == "team"]
    assert team == [
        ("trigger", "degraded", "airisk-incident-1", ("a",), "warning"),
        ("trigger", "down", "airisk-incident-2", ("b",), "critical"),  # its own key, the down rule's severity
        ("update", "down", "airisk-incident-2", ("c",), "critical"),
        ("update", "degraded", "airisk-incident-2", ("d",), "warning"),
        ("resolve", "recovered", "airisk-incident-2", ("b",), "info"),
        ("resolve", "recovered", "airisk-incident-3", ("c",), "info"),
        ("resolve", "recovered", "airisk-incident-4", ("d",), "info"),
        ("resolve", "recovered", "airisk-incident-1", ("a",), "info")]
    # The DOWN page's last member (d) resolves it while a's DEGRADED page stays open until a is back.
    resolves = [e.details for e in events if e.channel == "team" and e.action == "resolve"]
    assert [(d["page"], d["page_open"]) for d in resolves] == [
        ("airisk-incident-2", True), ("airisk-incident-2", True), ("airisk-incident-2", False),
        ("airisk-incident-1", False)]
    assert pagerduty_replay(events) == (["airisk-incident-1", "airisk-incident-2"], set())  # a second alert
    assert grouper.open_pages() == {}


def test_a_degraded_target_going_down_is_a_new_page_and_its_recovery_resolves_both():
    config = escalating()
    grouper = Grouper(window=10, config=config)
    events = drive(grouper, [
        tr("a", "up", "degraded", s(0), incident=1), tr("a", "degraded", "down", s(600), incident=1),
        tr("b", "up", "down", s(700), incident=2),
        tr("b", "down", "up", s(800), incident=2, opened_at=s(700)),
        tr("a", "down", "up", s(900), incident=1, opened_at=s(0))], until=1000, config=config, step=5)
    escalated = "airisk-incident-1@20250304T121000"  # a's key is its DEGRADED page's: the DOWN page's has the time
    team = [(e.action, e.event_key, e.dedup_key, e.details) for e in events if e.channel == "team"]
    assert team[:4] == [
        ("trigger", "degraded:openai:1:team", "airisk-incident-1", {"page": "airisk-incident-1"}),
        ("trigger", "down:openai:1:team", escalated, {"page": escalated}),
        ("update", "update:down:openai:2:team", escalated, {"update_of": escalated}),
        ("resolve", "recovered:openai:2:team", "airisk-incident-2", {"page": escalated, "page_open": True})]
    assert sorted(team[4:]) == [  # a's recovery: once for each page it closes, each its own event
        ("resolve", "recovered:openai:1:team", "airisk-incident-1", {"page": escalated, "page_open": False}),
        ("resolve", "recovered:openai:1@airisk-incident-1:team", "airisk-incident-1",
         {"page": "airisk-incident-1", "page_open": False})]
    assert pagerduty_replay(events) == (["airisk-incident-1", escalated], set())
    assert grouper.open_pages() == {}


def test_degraded_and_down_released_in_one_window_are_one_page():
    config = escalating()
    events = drive(Grouper(window=10, config=config), [
        tr("a", "up", "degraded", s(0), incident=1), tr("b", "up", "down", s(4), incident=2)],
        until=30, config=config)
    assert pagerduty_replay(events) == (["airisk-incident-1"], {"airisk-incident-1"})


def test_a_down_more_than_stale_after_the_pages_latest_down_is_a_new_page():
    config = escalating()
    events = drive(Grouper(window=10, config=config), [
        tr("a", "up", "down", s(0), incident=1),
        tr("b", "up", "down", s(1200), incident=2),  # 20 min: an update, and the page's latest DOWN
        tr("c", "up", "degraded", s(2400), incident=3),  # a DEGRADED update does not freshen the page
        tr("d", "up", "down", s(1200 + 1800), incident=4),  # exactly 30 min after b: still an update
        tr("e", "up", "down", s(3000 + 1801), incident=5)], until=4900, config=config, step=5)
    team = [(e.action, e.dedup_key, e.targets) for e in events if e.channel == "team"]
    assert team == [("trigger", "airisk-incident-1", ("a",)), ("update", "airisk-incident-1", ("b",)),
                    ("update", "airisk-incident-1", ("c",)), ("update", "airisk-incident-1", ("d",)),
                    ("trigger", "airisk-incident-5", ("e",))]
    quiet = drive(Grouper(window=10, config=config, stale_after=3600), [
        tr("a", "up", "down", s(0), incident=1), tr("e", "up", "down", s(3000), incident=5)], until=3100,
        config=config, step=5)
    assert [e.action for e in quiet if e.channel == "team"] == ["trigger", "update"]


def test_a_down_no_rule_pages_for_does_not_freshen_a_degraded_page():
    config = cfg(rules=[{"rule": "degraded", "channels": ["team"]},
                        {"rule": "down", "channels": ["team"], "targets": ["b"]}])
    events = drive(Grouper(window=10, config=config), [
        tr("a", "up", "degraded", s(0), incident=1), tr("c", "up", "down", s(60), incident=2),
        tr("b", "up", "down", s(120), incident=3)], until=200, config=config)
    assert [(e.action, e.rule, e.dedup_key) for e in events] == [
        ("trigger", "degraded", "airisk-incident-1"), ("trigger", "down", "airisk-incident-3")]


def test_a_group_taken_again_after_a_failed_enqueue_gives_the_same_events():
    grouper = Grouper(window=10)
    grouper.add([tr("a", "up", "down", s(0), incident=1)])
    page = grouper.take(s(10))
    grouper.add(page)  # the database refused the enqueue: the service hands them back
    again = grouper.take(s(11))
    assert again == page
    assert keys(events_for(again, config=cfg(), now=s(11))) == ["down:openai:1:pd", "down:openai:1:team"]
    grouper.add([tr("b", "up", "down", s(20), incident=2)])
    update = grouper.take(s(30))
    grouper.add(update)
    assert grouper.take(s(31)) == update and update[0].role == "update"


def test_two_outages_released_in_one_take_are_two_pages():
    # The first outage is over (a back up) before b goes down, both held in one window: two pages.
    events = events_for(_take_all([
        tr("a", "up", "down", s(0), incident=1), tr("a", "down", "up", s(2), incident=1, opened_at=s(0)),
        tr("b", "up", "down", s(8), incident=2)]), config=cfg(), now=s(30))
    assert keys(e for e in events if e.action == "trigger") == [
        "down:openai:1:pd", "down:openai:1:team", "down:openai:2:pd", "down:openai:2:team"]


def _take_all(transitions: list[Transition]) -> list[Transition]:
    grouper = Grouper(window=10)
    grouper.add(transitions)
    return grouper.take(s(3600))


def test_a_transition_nothing_pages_for_opens_no_page_when_the_grouper_knows_the_config():
    config = cfg(maintenance=[{"start": s(0).isoformat(), "end": s(60).isoformat(), "targets": ["a"]}])
    events = drive(Grouper(window=10, config=config), [tr("a", "up", "down", s(0), incident=1),
                                                       tr("b", "up", "down", s(100), incident=2)],
                   until=150, config=config)
    assert keys(events) == ["down:openai:2:pd", "down:openai:2:team"]  # a page, not an update of a silent one
    unrouted = cfg(rules=[{"rule": "down", "channels": ["team"], "targets": ["b"]}])
    events = drive(Grouper(window=10, config=unrouted), [tr("a", "up", "down", s(0), incident=1),
                                                         tr("b", "up", "down", s(30), incident=2)],
                   until=60, config=unrouted)
    assert [(e.action, e.event_key) for e in events] == [("trigger", "down:openai:2:team")]


def test_regional_transitions_never_update_a_global_page():
    class Regional(Transition):
        pass

    regional = Regional("a", "openai", "up", "down", s(0), incident_id=1, region="eu-west")
    events = drive(Grouper(window=10), [regional, tr("b", "up", "down", s(30), incident=2)], until=60)
    assert [(e.action, e.dedup_key) for e in events if e.channel == "team"] == [
        ("trigger", "airisk-incident-1"), ("trigger", "airisk-incident-2")]


def test_resume_rebuilds_the_open_pages_from_the_open_incidents():
    grouper = Grouper(window=10)
    grouper.resume([Incident(7, "a", s(0)), Incident(8, "b", s(20)), Incident(6, "c", s(-50), closed_at=s(-1)),
                    Incident(9, "claude", s(5), provider="anthropic")])
    assert grouper.open_pages() == {"openai": "airisk-incident-7", "anthropic": "airisk-incident-9"}
    events = drive(grouper, [tr("d", "up", "down", s(100), incident=10),
                             tr("a", "down", "up", s(110), incident=7, opened_at=s(0)),
                             tr("b", "down", "up", s(111), incident=8, opened_at=s(20)),
                             tr("d", "down", "up", s(112), incident=10, opened_at=s(100))], until=200)
    assert [(e.action, e.targets, e.dedup_key, e.details.get("page_open")) for e in events if e.channel == "pd"] == [
        ("update", ("d",), "airisk-incident-7", None), ("resolve", ("a",), "airisk-incident-7", True),
        ("resolve", ("b", "d"), "airisk-incident-8", False)]
    assert grouper.open_pages() == {"anthropic": "airisk-incident-9"}


def test_resume_keeps_a_down_incident_apart_from_a_degraded_only_page():
    grouper = Grouper(window=10)
    grouper.resume([Incident(1, "a", s(0), state="degraded"), Incident(2, "b", s(3600)),
                    Incident(3, "c", s(3650))])
    assert grouper.open_pages() == {"openai": "airisk-incident-2"}
    events = drive(grouper, [tr("d", "up", "down", s(3700), incident=4),
                             tr("a", "degraded", "up", s(3800), incident=1, opened_at=s(0)),
                             tr("e", "up", "down", s(3700 + 1801), incident=5)], until=5600, step=5)
    assert [(e.action, e.targets, e.dedup_key, e.details) for e in events if e.channel == "pd"] == [
        ("update", ("d",), "airisk-incident-2", {"update_of": "airisk-incident-2"}),
        ("resolve", ("a",), "airisk-incident-1", {"page": "airisk-incident-1", "page_open": False}),
        ("trigger", ("e",), "airisk-incident-5", {"page": "airisk-incident-5"})]  # d's DOWN was 30 min ago
