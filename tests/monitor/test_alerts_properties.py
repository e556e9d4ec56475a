"""Properties of alerting over inputs from outside.

- What a receiver answers: any status, body and Retry-After is judged (delivered, or a `DeliveryError`
  with a one-line message and a usable wait), never raised on.
- What detection reports: for any interleaving of down, degraded and recover transitions of one
  provider's targets, however far apart, the pages are exactly its episodes (a span where some target is
  not up, split again by a DOWN after a DEGRADED-only span or after 30 min without a DOWN), no DOWN goes
  out as an update of a page that sent no DOWN in the last 30 min, and every target that went down is
  resolved, in PagerDuty too.
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
from monitor.alerts.rules import STALE_AFTER
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
WINDOW = 10
CONFIG = AlertsConfig.model_validate({
    "channels": [{"name": "team", "type": "webhook", "url_env": "HOOK_URL"},
                 {"name": "pd", "type": "pagerduty", "routing_key_env": "PD_KEY"}],
    "rules": [{"rule": rule, "channels": ["team", "pd"]} for rule in ("down", "degraded", "recovered")],
    "group_window": WINDOW,
})

# A step: which target goes into which state, and how many seconds after the previous step; gaps on both
# sides of the 10 s group window and of the 30 min after which a page no longer takes a DOWN.
_steps = st.lists(st.tuples(st.sampled_from(TARGETS), st.sampled_from(["up", "degraded", "down"]),
                            st.sampled_from([0.5, 1, 3, 9.5, 10, 10.5, 15, 25, 40, 120, 900, 1799, 1801, 3600])),
                  max_size=30)


def _transitions(steps: list[tuple[str, str, float]]) -> list[Transition]:
    """The steps as transitions, every target not up brought back at the end; one incident from leaving up
    to coming back (DEGRADED <-> DOWN is the same incident getting worse or better)."""
    state: dict[str, str] = dict.fromkeys(TARGETS, "up")
    incidents: dict[str, tuple[int, datetime]] = {}
    out, at, incident = [], 0.0, 0
    for target, to, gap in [*steps, *((t, "up", 30.0) for t in TARGETS)]:
        at += gap
        when, frm = T0 + timedelta(seconds=at), state[target]
        if to == frm:
            continue
        if frm == "up":
            incident += 1
            incidents[target] = (incident, when)
        iid, opened = incidents.pop(target) if to == "up" else incidents[target]
        out.append(Transition(target, "openai", frm, to, when, incident_id=iid,
                              opened_at=opened if to == "up" else None))
        state[target] = to
    return out


def _episodes(transitions: list[Transition]) -> int:
    """The pages the module doc promises, counted on their own terms: released in runs of ``WINDOW`` (from
    each run's first), a provider's open pages each last until its targets are back; the first DOWN or
    DEGRADED with no page open starts one, and so does a DOWN whose provider's latest page has sent no DOWN
    in the last 30 min (a DEGRADED-only page, or one gone quiet), unless that page began in the same run."""
    pages: list[tuple[set[str], list[datetime]]] = []  # open pages, oldest first: targets out, DOWNs sent
    count, runs = 0, []
    for t in transitions:
        if runs and (t.at - runs[-1][0].at).total_seconds() <= WINDOW:
            runs[-1].append(t)
        else:
            runs.append([t])
    for run in runs:
        begun = None
        for t in run:
            if t.to_state == "up":
                pages = [(out - {t.target}, downs) for out, downs in pages if out - {t.target}]
                continue
            down = t.to_state == "down"  # from up or degraded: a step never repeats a state
            current = pages[-1] if pages else None
            quiet = current is not None and current is not begun and not any(
                (t.at - d).total_seconds() <= STALE_AFTER for d in current[1])
            if current is None or (down and quiet):
                current = begun = (set(), [])
                pages.append(current)
                count += 1
            current[0].add(t.target)
            if down:
                current[1].append(t.at)
    return count


@settings(max_examples=300, deadline=None)
@given(_steps)
def test_pages_are_the_episodes_no_down_hides_and_every_target_that_went_down_is_resolved(steps):
    transitions = _transitions(steps)
    grouper = Grouper(window=WINDOW, config=CONFIG)
    events, pending = [], list(transitions)
    # As the service, which takes the grouper every second: it only gives anything back when a run's window
    # has closed, so taking it at each transition and each window's end is the same, and quicker.
    moments = sorted({t.at for t in transitions} | {t.at + timedelta(seconds=WINDOW) for t in transitions})
    for now in moments:
        grouper.add([t for t in pending if t.at <= now])
        pending = [t for t in pending if t.at > now]
        events += events_for(grouper.take(now), config=CONFIG, now=now)

    team = [e for e in events if e.channel == "team"]
    pages = {e.dedup_key for e in team if e.action == "trigger"}
    assert len(pages) == _episodes(transitions)
    paged, last_down = set(), {}
    for e in team:  # an update only ever names a page sent before it, and a DOWN update one that sent a DOWN lately
        if e.action == "trigger":
            paged.add(e.dedup_key)
        elif e.action == "update":
            assert e.dedup_key in paged
            if e.rule == "down":
                assert (e.at - last_down[e.dedup_key]).total_seconds() <= STALE_AFTER
        if e.rule == "down" and e.action in ("trigger", "update"):
            assert e.severity == "critical"
            last_down[e.dedup_key] = e.at
    went_down = {t.incident_id for t in transitions if t.from_state == "up"}
    resolved = {m.incident_id for e in team if e.action == "resolve" for m in e.members}
    assert resolved == went_down
    assert grouper.open_pages() == {}

    # What PagerDuty makes of it (its documented de-duplication): one alert per page, all resolved.
    opened, open_now = [], set()
    for e in (e for e in events if e.channel == "pd"):
        for body in pagerduty.events(Alert(e, CONFIG.channels[1], "key"), "key"):
            if body["event_action"] == "trigger" and body["dedup_key"] not in open_now:
                opened.append(body["dedup_key"])
                open_now.add(body["dedup_key"])
            elif body["event_action"] == "resolve":
                open_now.discard(body["dedup_key"])
    assert len(opened) == len(pages) and not open_now
