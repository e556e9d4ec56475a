"""Alerts end to end: outbox -> dispatcher -> real receivers on loopback, on SQLite and PostgreSQL.

What a user relies on: an alert reaches a channel that is failing or down once it is back, exactly
once; a request the receiver refuses is not retried; nothing logged or stored holds a secret.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import secrets
from collections import Counter, deque
from datetime import datetime, timedelta

import httpx
import pytest
from sqlalchemy.orm import Session

from monitor.alerts import Dispatcher, Transition, claim_due, enqueue, events_for
from monitor.config.alerts import AlertsConfig
from monitor.store.models import utcnow
from tests.conftest import until
from tests.monitor.test_alerts_harness import Receiver, alert_database

TOKEN = "tok" + secrets.token_hex(12)
ROUTING_KEY = "R" + secrets.token_hex(16)
FAST_RETRY = {"first_delay": "50ms", "max_delay": "200ms"}


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request, tmp_path):
    with alert_database(request.param, tmp_path) as database:
        yield database


@pytest.fixture
async def http():
    async with httpx.AsyncClient(trust_env=False) as client:
        yield client


def setup(receiver: Receiver, *, hooks: tuple[str, ...] = ("hook",), **extra) -> tuple[AlertsConfig, dict]:
    """A config with a webhook channel per name in ``hooks``, Slack, PagerDuty and Apprise, all
    pointing at ``receiver``; and the environment holding their secrets."""
    channels = [{"name": h, "type": "webhook", "url_env": f"URL_{h.upper()}"} for h in hooks] + [
        {"name": "slack", "type": "slack", "url_env": "SLACK_URL"},
        {"name": "pd", "type": "pagerduty", "routing_key_env": "PD_KEY", "events_url": f"{receiver.url}/pd/v2/enqueue"},
        {"name": "apprise", "type": "apprise", "url_env": "APPRISE_URL"},
    ]
    names = [c["name"] for c in channels]
    config = AlertsConfig.model_validate({
        "channels": channels, "retry": FAST_RETRY,
        "rules": [{"rule": "down", "channels": names}, {"rule": "recovered", "channels": names}], **extra})
    environ = {f"URL_{h.upper()}": f"{receiver.url}/{h}/{TOKEN}" for h in hooks} | {
        "SLACK_URL": f"{receiver.url}/slack/services/T0/B0/{TOKEN}", "PD_KEY": ROUTING_KEY,
        "APPRISE_URL": f"json://127.0.0.1:{receiver.port}/apprise/{TOKEN}"}
    return config, environ


def down(target: str, incident: int, at: datetime, provider: str = "openai") -> Transition:
    return Transition(target, provider, "up", "down", at, incident_id=incident, cause={"error_kind": "timeout"})


def enqueue_for(db, config: AlertsConfig, transitions: list[Transition], channels: set[str] | None = None) -> int:
    events = [e for e in events_for(transitions, config=config, now=utcnow())
              if channels is None or e.channel in channels]
    with Session(db.engines[0]) as session, session.begin():
        return enqueue(session=session, events=events)


@contextlib.asynccontextmanager
async def running(*dispatchers: Dispatcher):
    stop = asyncio.Event()
    tasks = [asyncio.create_task(d.run_forever(stop)) for d in dispatchers]
    try:
        yield
    finally:
        stop.set()
        await asyncio.gather(*tasks)


async def test_a_failing_receiver_gets_the_alert_once_it_recovers(db, receiver, http):
    config, environ = setup(receiver)
    enqueue_for(db, config, [down("gpt-4o", 1, utcnow())], {"hook"})
    receiver.fail_next.extend([503, 503, 429, 500])
    async with running(Dispatcher(db.engine(), config, http, environ=environ, poll=0.02)):
        await receiver.wait_for(1)
        await asyncio.sleep(0.4)  # time for a duplicate to show up, if there were one
    assert [r.status for r in receiver.requests] == [503, 503, 429, 500, 200]
    (row,) = db.rows()
    assert (row.state, row.attempts, row.last_error) == ("sent", 5, "")


async def test_a_receiver_that_is_down_gets_every_alert_once_it_is_back(db, receiver, http):
    config, environ = setup(receiver)
    await receiver.stop()
    start = utcnow()
    transitions = [down(f"t{i}", i, start + timedelta(seconds=20 * i), provider=f"p{i}") for i in range(4)]
    assert enqueue_for(db, config, transitions, {"hook", "pd", "slack"}) == 12
    dispatcher = Dispatcher(db.engine(), config, http, environ=environ, poll=0.02)
    async with running(dispatcher):
        # The port is closed: every try fails with a connection error, and is tried again. Wait for
        # a third try rather than a fixed time (a busy CI machine gave two tries in 0.6 s).
        await until(lambda: max(r.attempts for r in db.rows()) >= 3, 15, "a third try")
        waiting = db.rows()
        assert {r.state for r in waiting} == {"pending"}
        # (a row being tried right now has no error yet)
        assert {r.last_error.split(":")[0] for r in waiting if r.last_error} == {"ConnectError"}
        await receiver.start()  # same port
        await receiver.wait_for(12)
        await asyncio.sleep(0.4)
    assert len(receiver.requests) == 12 and dispatcher.delivered == 12
    # Each channel got its alerts once each, in the order they were raised.
    for prefix in ("/hook/", "/slack/", "/pd/"):
        got = [r.body for r in receiver.accepted(prefix)]
        assert len(got) == 4
    assert [b["targets"] for b in (r.body for r in receiver.accepted("/hook/"))] == [["t0"], ["t1"], ["t2"], ["t3"]]
    assert [b["dedup_key"] for b in (r.body for r in receiver.accepted("/pd/"))] == [
        f"airisk-incident-{i}" for i in range(4)]
    assert {r.state for r in db.rows()} == {"sent"}


async def test_a_refused_alert_is_dead_after_one_try_and_does_not_block_the_next(db, receiver, http):
    config, environ = setup(receiver)
    now = utcnow()
    enqueue_for(db, config, [down("a", 1, now), down("b", 2, now + timedelta(minutes=1))], {"hook"})
    receiver.fail_next.append(400)
    async with running(Dispatcher(db.engine(), config, http, environ=environ, poll=0.02)):
        await receiver.wait_for(1)
        await asyncio.sleep(0.4)
    assert [r.status for r in receiver.requests] == [400, 200]
    dead, sent = db.rows()
    assert (dead.state, dead.attempts) == ("dead", 1)
    assert dead.last_error.startswith("HTTP 400 Bad Request: rejected [redacted]: {")
    assert sent.state == "sent"


async def test_two_targets_of_one_provider_become_one_alert(db, receiver, http):
    config, environ = setup(receiver, group_window="10s")
    now = utcnow()
    transitions = [down("gpt-4o", 1, now), down("gpt-4o-mini", 2, now + timedelta(seconds=4)),
                   down("claude", 3, now + timedelta(seconds=2), provider="anthropic")]
    assert enqueue_for(db, config, transitions, {"hook", "slack"}) == 4
    assert enqueue_for(db, config, transitions, {"hook", "slack"}) == 0  # fed twice: nothing more queued
    async with running(Dispatcher(db.engine(), config, http, environ=environ, poll=0.02)):
        await receiver.wait_for(4)
        await asyncio.sleep(0.2)
    hooks = sorted((r.body for r in receiver.accepted("/hook/")), key=lambda b: b["provider"])
    assert [(b["provider"], b["targets"]) for b in hooks] == [("anthropic", ["claude"]),
                                                              ("openai", ["gpt-4o", "gpt-4o-mini"])]
    slack_texts = sorted(r.body["text"] for r in receiver.accepted("/slack/"))
    assert slack_texts == [":red_circle: anthropic: claude is DOWN",
                           ":red_circle: openai: 2 targets (gpt-4o, gpt-4o-mini) DOWN"]


async def test_a_resolve_never_overtakes_its_trigger(db, receiver, http):
    config, environ = setup(receiver)
    now = utcnow()
    recovered = Transition("gpt-4o", "openai", "down", "up", now + timedelta(minutes=5), incident_id=9, opened_at=now)
    enqueue_for(db, config, [down("gpt-4o", 9, now), recovered], {"pd"})
    receiver.fail_next.extend([503, 503])  # the trigger fails twice; the resolve is already due
    async with running(Dispatcher(db.engine(), config, http, environ=environ, poll=0.02)):
        await receiver.wait_for(2)
    assert [(r.body["event_action"], r.status) for r in receiver.requests] == [
        ("trigger", 503), ("trigger", 503), ("trigger", 202), ("resolve", 202)]
    assert {r.body["dedup_key"] for r in receiver.requests} == {"airisk-incident-9"}


async def test_a_crashed_dispatchers_claim_runs_out_and_another_delivers(db, receiver, http):
    config, environ = setup(receiver)
    enqueue_for(db, config, [down("a", 1, utcnow())], {"hook"})
    now = utcnow()
    with Session(db.engine()) as session, session.begin():  # a dispatcher claims, then dies
        assert len(claim_due(session=session, now=now, limit=10, lease=60)) == 1
    survivor = Dispatcher(db.engine(), config, http, environ=environ)
    assert await survivor.run_once(now + timedelta(seconds=30)) == 0
    assert await survivor.run_once(now + timedelta(seconds=61)) == 1
    assert len(receiver.requests) == 1 and db.rows()[0].attempts == 2


async def test_rows_a_lease_cannot_cover_are_handed_back_untried(db, receiver, http):
    config, environ = setup(receiver)  # channel timeouts 10s: a send may take up to 15s
    now = utcnow()
    enqueue_for(db, config, [down(f"t{i}", i, now + timedelta(minutes=i), provider=f"p{i}") for i in range(3)],
                {"hook"})
    receiver.delay = 1.2
    dispatcher = Dispatcher(db.engine(), config, http, environ=environ, lease=16)
    assert await dispatcher.run_once() == 1  # after 1.2s, a second send could outlive the claim
    assert [(r.state, r.attempts) for r in db.rows()] == [("sent", 1), ("pending", 0), ("pending", 0)]
    receiver.delay = 0
    assert await dispatcher.run_once() == 2
    assert [r.body["targets"] for r in receiver.accepted()] == [["t0"], ["t1"], ["t2"]]
    with pytest.raises(ValueError, match=r"lease \(15s\) must be longer than the longest channel timeout"):
        Dispatcher(db.engine(), config, http, environ=environ, lease=15)


async def test_unset_secret_waits_and_unknown_channel_is_dead(db, receiver, http, caplog):
    config, environ = setup(receiver)
    now = utcnow()
    enqueue_for(db, config, [down("a", 1, now)], {"hook"})
    with Session(db.engines[0]) as session, session.begin():  # a row for a channel since removed
        event = events_for([down("b", 2, now)], config=config, now=now)[0]
        enqueue(session=session, events=[dataclasses.replace(event, channel="gone", event_key="down:x:gone")])
    del environ["URL_HOOK"]
    dispatcher = Dispatcher(db.engine(), config, http, environ=environ)
    assert "environment variable URL_HOOK is not set" in caplog.text
    assert await dispatcher.run_once() == 0
    waiting, gone = db.rows()
    assert waiting.state == "pending"
    assert waiting.last_error == "channel 'hook': environment variable URL_HOOK is not set"
    assert (gone.state, gone.last_error) == ("dead", "channel 'gone' is not configured")


async def test_secrets_never_reach_last_error_or_the_logs(db, receiver, http, caplog):
    caplog.set_level(logging.DEBUG)  # every logger, httpx's request lines and apprise's URLs included
    config, environ = setup(receiver)
    enqueue_for(db, config, [down("a", 1, utcnow())])
    for prefix in ("/hook/", "/slack/", "/pd/", "/apprise/"):  # each fails retryably, then is refused
        receiver.fail_paths[prefix] = deque([503, 400])
    async with running(Dispatcher(db.engine(), config, http, environ=environ, poll=0.02)):
        await receiver.wait_for(1, "/apprise/")  # the last to finish: its backoff is the longest
        await asyncio.sleep(0.3)
    rows = db.rows()
    # Apprise does not say why it failed, so its 400 is retried too (and the third try succeeds).
    assert {r.channel: r.state for r in rows} == {"hook": "dead", "slack": "dead", "pd": "dead", "apprise": "sent"}
    assert len(receiver.requests) == 9
    for row in rows:
        assert TOKEN not in row.last_error and ROUTING_KEY not in row.last_error
    # The receiver echoed the URL path or the PagerDuty body back: proof that redaction had work to do.
    assert sum("[redacted]" in r.last_error for r in rows) >= 3
    assert "HTTP Request: POST" in caplog.text  # httpx did log its requests...
    assert TOKEN not in caplog.text and ROUTING_KEY not in caplog.text  # ...without the secret
    assert "[redacted]" in caplog.text


async def test_concurrent_dispatchers_deliver_each_alert_exactly_once(db, receiver, http):
    hooks = ("a", "b", "c", "d")
    config, environ = setup(receiver, hooks=hooks)
    start = utcnow()
    transitions = [down(f"t{i}", i, start + timedelta(minutes=i), provider=f"p{i}") for i in range(15)]
    assert enqueue_for(db, config, transitions, set(hooks)) == 60
    receiver.delay = 0.005
    receiver.fail_next.extend([503] * 5)  # some retries in the mix
    first = Dispatcher(db.engine(), config, http, environ=environ, batch=4, poll=0.01)
    second = Dispatcher(db.engine(), config, http, environ=environ, batch=4, poll=0.01)
    async with running(first, second):
        await receiver.wait_for(60, within=30)
        await asyncio.sleep(0.5)
    delivered = Counter((r.path, r.body["event_key"]) for r in receiver.accepted())
    assert len(delivered) == 60 and set(delivered.values()) == {1}
    assert first.delivered + second.delivered == 60
    assert {r.state for r in db.rows()} == {"sent"}
    for hook in hooks:  # and each channel in order
        keys = [r.body["event_key"] for r in receiver.accepted(f"/{hook}/")]
        assert keys == [f"down:p{i}:{i}:{hook}" for i in range(15)]
