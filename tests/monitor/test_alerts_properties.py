"""Properties of alerting over inputs from outside.

- What a receiver answers: any status, body and Retry-After is judged (delivered, or a `DeliveryError`
  with a one-line message and a usable wait), never raised on.
- What detection reports: for any interleaving of down and recover transitions of one provider's
  targets, however far apart, the pages are exactly its episodes, and every target that went down is
  resolved.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import httpx
from hypothesis import example, given, settings
from hypothesis import strategies as st

from monitor.alerts import Alert, Grouper, Transition, events_for
from monitor.alerts.channels import DeliveryError, pagerduty
from monitor.alerts.channels._http import _retry_after, check
from monitor.config.alerts import AlertsConfig, RetryConfig

# Header values as they come off the wire: bytes read as latin-1, no CR or LF.
_header = st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF), max_size=40)


@given(_header)
@example("nan")
@example("NaN")
@example("inf")
@example("-1e400")
@example("Fri, 31 Dec 9999 23:59:59 -1200")
@example("Mon, 01 Jan 0001 00:00:00 +2359")
@example("Fri, 31 Dec 99999 23:59:59 GMT")
def test_any_retry_after_is_a_wait_or_none(value):
    wait = _retry_after(httpx.Response(429, headers=[(b"retry-after", value.encode("latin-1"))]))
    assert wait is None or (not math.isnan(wait) and wait >= 0)
    delay = RetryConfig().delay(3, wait)  # what the outbox does with it
    assert 0 <= delay <= RetryConfig().max_delay


@given(st.integers(100, 599), st.binary(max_size=300), _header, _header)
def test_any_answer_is_accepted_or_a_delivery_error(status, body, content_type, retry_after):
    response = httpx.Response(status, content=body, headers=[(b"content-type", content_type.encode("latin-1")),
                                                             (b"retry-after", retry_after.encode("latin-1"))])
    try:
        check(response, secret="s3cret")
    except DeliveryError as exc:
        assert not 200 <= status < 300
        assert "\n" not in exc.message and exc.message.startswith(f"HTTP {status}")
        assert exc.retryable is (status >= 500 or status in (408, 425, 429))
    else:
        assert 200 <= status < 300


# --- pages per outage ---------------------------------------------------------------------------------

T0 = datetime(2025, 3, 4, 12, 0, 0, tzinfo=UTC)
TARGETS = ("a", "b", "c", "d")
CONFIG = AlertsConfig.model_validate({
    "channels": [{"name": "team", "type": "webhook", "url_env": "HOOK_URL"},
                 {"name": "pd", "type": "pagerduty", "routing_key_env": "PD_KEY"}],
    "rules": [{"rule": "down", "channels": ["team", "pd"]}, {"rule": "recovered", "channels": ["team", "pd"]}],
    "group_window": 10,
})

# A step: which target changes state (up <-> down), and how many seconds after the previous step;
# gaps on both sides of the 10 s group window.
_steps = st.lists(st.tuples(st.sampled_from(TARGETS), st.sampled_from([0.5, 1, 3, 9.5, 10, 10.5, 15, 25, 40, 120])),
                  max_size=30)


def _transitions(steps: list[tuple[str, float]]) -> list[Transition]:
    """The steps as transitions, every target still down brought back at the end; one incident per down."""
    down: dict[str, tuple[int, datetime]] = {}
    out, at, incident = [], 0.0, 0
    for target, gap in [*steps, *((t, 30.0) for t in TARGETS)]:
        at += gap
        when = T0 + timedelta(seconds=at)
        if target in down:
            iid, opened = down.pop(target)
            out.append(Transition(target, "openai", "down", "up", when, incident_id=iid, opened_at=opened))
        elif len(out) < len(steps):  # the closing steps only recover
            incident += 1
            down[target] = (incident, when)
            out.append(Transition(target, "openai", "up", "down", when, incident_id=incident))
    return out


def _episodes(transitions: list[Transition]) -> int:
    """Maximal spans of time where some target of the provider is not up."""
    out_now: set[str] = set()
    episodes = 0
    for t in transitions:
        if t.to_state == "down":
            episodes += not out_now
            out_now.add(t.target)
        else:
            out_now.discard(t.target)
    return episodes


@settings(max_examples=200, deadline=None)
@given(_steps)
def test_pages_are_the_episodes_and_every_target_that_went_down_is_resolved(steps):
    transitions = _transitions(steps)
    grouper = Grouper(window=CONFIG.group_window, config=CONFIG)
    events, pending, now = [], list(transitions), T0
    end = (transitions[-1].at if transitions else T0) + timedelta(seconds=30)
    while now <= end:  # as the service: each transition added when it happens, the grouper taken every second
        grouper.add([t for t in pending if t.at <= now])
        pending = [t for t in pending if t.at > now]
        events += events_for(grouper.take(now), config=CONFIG, now=now)
        now += timedelta(seconds=1)

    team = [e for e in events if e.channel == "team"]
    pages = [e for e in team if e.action == "trigger"]
    assert len(pages) == _episodes(transitions)
    paged = set()
    for e in team:  # an update only ever names a page sent before it
        if e.action == "trigger":
            paged.add(e.dedup_key)
        elif e.action == "update":
            assert e.dedup_key in paged
    went_down = {t.incident_id for t in transitions if t.to_state == "down"}
    resolved = [m.incident_id for e in team if e.action == "resolve" for m in e.members]
    assert sorted(resolved) == sorted(went_down)
    assert grouper.open_pages() == {}

    # What PagerDuty makes of it (its documented de-duplication): one alert per episode, all resolved.
    opened, open_now = [], set()
    for e in (e for e in events if e.channel == "pd"):
        for body in pagerduty.events(Alert(e, CONFIG.channels[1], "key"), "key"):
            if body["event_action"] == "trigger" and body["dedup_key"] not in open_now:
                opened.append(body["dedup_key"])
                open_now.add(body["dedup_key"])
            elif body["event_action"] == "resolve":
                open_now.discard(body["dedup_key"])
    assert len(opened) == len(pages) and not open_now
