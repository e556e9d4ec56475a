"""Heartbeats (`monitor.vantage`) and the global incident's writes (`monitor.store.incidents`), on SQLite
and PostgreSQL: a region lost is announced once however many monitors look, and two monitors racing
on one outage open one global incident."""

from __future__ import annotations

import logging
import threading
from datetime import timedelta

import httpx
import pytest
import sqlalchemy as sa
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlmodel import Session, select

from monitor.config.alerts import AlertsConfig
from monitor.quorum import Sighting, Verdict, verdict
from monitor.store.incidents import apply_verdict, lock_quorum, open_global_for, record_sighting, sightings
from monitor.store.models import IncidentRow, VantageRow
from monitor.store.queries import vantage_points
from monitor.vantage import alive_regions, beat, events, mark_lost, ping
from tests.monitor.conftest import T0, fresh_engine

ALERTS = AlertsConfig.model_validate({
    "channels": [{"name": "oncall", "type": "webhook", "url_env": "HOOK"},
                 {"name": "team", "type": "slack", "url_env": "TEAM"}],
    "rules": [{"rule": "vantage_lost", "channels": ["oncall", "team"]}, {"rule": "down", "channels": ["oncall"]}],
})


def _beat(session, region, at, **kw):
    kw.setdefault("host", "h")
    kw.setdefault("pid", 1)
    kw.setdefault("version_", "1.0")
    return beat(session=session, region=region, now=at, started_at=T0, **kw)


def test_a_region_silent_past_the_timeout_is_lost_once_and_back_once(session):
    _beat(session, "eu", T0)
    _beat(session, "us", T0)
    later = T0 + timedelta(seconds=10)
    _beat(session, "eu", later)
    assert alive_regions(session=session, now=later, timeout=5) == {"eu": T0}
    [lost] = mark_lost(session=session, now=later, timeout=5)
    assert (lost.region, lost.lost, lost.lost_at, lost.last_seen) == ("us", True, later, T0)
    assert mark_lost(session=session, now=later + timedelta(seconds=5), timeout=5) == []  # announced already
    back = _beat(session, "us", later + timedelta(seconds=6))
    assert back is not None and (back.region, back.lost, back.lost_at) == ("us", False, later)
    assert _beat(session, "us", later + timedelta(seconds=7)) is None  # back once
    session.commit()
    row = session.get(VantageRow, "us")
    assert row.lost_at is None and row.host == "h" and row.version == "1.0"
    points = vantage_points(session=session, now=later + timedelta(seconds=7), timeout=5)
    assert [(p["region"], p["alive"]) for p in points] == [("eu", False), ("us", True)]


def test_loss_and_return_alert_every_vantage_lost_channel_with_keys_that_repeat():
    from monitor.vantage import Change

    lost = Change("eu-west", True, T0 + timedelta(seconds=200), T0, "box1")
    back = Change("eu-west", False, lost.lost_at, T0, "box1")
    first = events([lost, back], config=ALERTS, now=lost.lost_at)
    assert sorted((e.channel, e.action) for e in first) == [
        ("oncall", "resolve"), ("oncall", "trigger"), ("team", "resolve"), ("team", "trigger")]
    [trigger] = [e for e in first if e.channel == "oncall" and e.action == "trigger"]
    assert trigger.title == "vantage point eu-west lost: no heartbeat for 3m20s"
    assert trigger.rule == "vantage_lost" and trigger.details["region"] == "eu-west"
    # Deterministic: whichever monitor builds it, the outbox sees the same key.
    assert {e.event_key for e in events([lost, back], config=ALERTS, now=lost.lost_at)} == {e.event_key for e in first}
    # A later loss of the same region is a new alert.
    again = Change("eu-west", True, T0 + timedelta(hours=1), T0, "box1")
    assert not {e.event_key for e in events([again], config=ALERTS, now=again.lost_at)} & {e.event_key for e in first}
    assert events([lost], config=AlertsConfig(), now=T0) == []  # no vantage_lost rule: no alert


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(regions=st.lists(st.text(min_size=0, max_size=40), min_size=1, max_size=4, unique=True))
def test_any_region_name_round_trips_through_heartbeats_and_alerts(regions):
    with fresh_engine("sqlite") as engine, Session(engine) as session:
        for region in regions:
            _beat(session, region, T0)
        session.commit()
        assert set(alive_regions(session=session, now=T0, timeout=1)) == set(regions)
        lost = mark_lost(session=session, now=T0 + timedelta(seconds=2), timeout=1)
        assert sorted(c.region for c in lost) == sorted(regions)
        keys = [e.event_key for e in events(lost, config=ALERTS, now=T0)]
        assert len(keys) == len(set(keys)) == 2 * len(regions)


def _race(db, n, work):
    """``work(session, i)`` in ``n`` threads at once, each on its own engine (its own "monitor"),
    each in one transaction under the quorum lock; returns what each returned. On SQLite as on
    PostgreSQL: without the lock, a SQLite transaction's reads are a snapshot another commits past."""
    engines = [db.engine() for _ in range(n)]
    barrier = threading.Barrier(n)
    out: list = [None] * n
    errors: list[BaseException] = []

    def run(i):
        try:
            with Session(engines[i]) as session:
                barrier.wait(5)
                lock_quorum(session)
                out[i] = work(session, i)
                session.commit()
        except BaseException as exc:  # reported by the test below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors, errors
    return out


def test_monitors_racing_on_a_lost_region_announce_it_once(database):
    db = database
    with Session(db.engine()) as session:
        _beat(session, "ap", T0)
        session.commit()
    later = T0 + timedelta(seconds=60)
    out = _race(db, 4, lambda session, i: mark_lost(session=session, now=later, timeout=5))
    assert sorted(len(changes) for changes in out) == [0, 0, 0, 1]


def test_monitors_racing_on_one_outage_open_one_global_incident_and_one_of_them_announces_it(database):
    """Four regions see the target DOWN at the same moment; quorum 2. Each records its sighting and
    judges, under the lock: one transaction opens the incident, the others only add their region."""
    regions = ["eu", "us", "ap", "sa"]
    db = database

    def work(session, i):
        record_sighting(session=session, target="openai", region=regions[i], state="down",
                        since=T0 + timedelta(seconds=i))
        seen = [Sighting(s.region, s.state, s.since) for s in sightings(session=session, targets=["openai"])]
        v = verdict(seen, quorum=2, alive=regions)
        return apply_verdict(session=session, target="openai", provider="openai", verdict=v,
                             at=T0 + timedelta(seconds=10))

    out = _race(db, 4, work)
    changes = [c for c in out if c is not None]
    assert [(f, t) for f, t, _ in changes] == [("up", "down")]
    with Session(db.engine()) as session:
        [row] = session.exec(select(IncidentRow)).all()
    assert row.scope == "global" and row.region == "" and sorted(row.regions) == sorted(regions)
    # The second region to commit made the quorum: the incident opened at the later of those two
    # regions' times, whichever two they were (the threads commit in any order).
    assert T0 + timedelta(seconds=1) <= row.opened_at <= T0 + timedelta(seconds=3)
    assert all(seen["state"] == "down" for seen in row.regions.values())


def test_while_one_monitor_holds_the_quorum_lock_another_waits(database):
    """What the race tests rely on, shown without luck: a second transaction cannot take the lock
    until the first ends (it gives up after 0.2 s here), then it can."""
    first, second = Session(database.engine()), Session(database.engine())
    try:
        lock_quorum(first)
        wait = "PRAGMA busy_timeout = 200" if database.kind == "sqlite" else "SET lock_timeout = '200ms'"
        second.execute(sa.text(wait))
        if database.kind == "sqlite":
            second.commit()  # a PRAGMA outside the transaction under test
        with pytest.raises(sa.exc.OperationalError, match=r"(?i)locked|lock timeout"):
            lock_quorum(second)
        second.rollback()
        first.commit()
        lock_quorum(second)  # free again
        second.commit()
    finally:
        first.close()
        second.close()


def test_the_database_refuses_a_second_open_global_incident_for_a_target(engine):
    with Session(engine) as session:
        for _ in range(2):
            session.add(IncidentRow(target="openai", provider="openai", scope="global", state="down", opened_at=T0))
        with pytest.raises(sa.exc.IntegrityError, match=r"(?i)unique"):
            session.commit()


def test_a_global_incident_worsens_records_its_regions_and_closes_when_the_quorum_breaks(session):
    for region, state in (("eu", "degraded"), ("us", "degraded")):
        record_sighting(session=session, target="t", region=region, state=state, since=T0)
    v = Verdict("degraded", "global", ("eu", "us"), T0)
    assert apply_verdict(session=session, target="t", provider="p", verdict=v, at=T0)[:2] == ("up", "degraded")
    assert apply_verdict(session=session, target="t", provider="p", verdict=v, at=T0) is None  # nothing new
    record_sighting(session=session, target="t", region="eu", state="down", since=T0 + timedelta(minutes=1))
    record_sighting(session=session, target="t", region="us", state="down", since=T0 + timedelta(minutes=1))
    worse = Verdict("down", "global", ("eu", "us"), T0 + timedelta(minutes=1))
    change = apply_verdict(session=session, target="t", provider="p", verdict=worse, at=T0 + timedelta(minutes=1))
    assert change[:2] == ("degraded", "down")
    row = change[2]
    # each region keeps when it first saw the incident, and the worst it saw
    assert row.regions == {r: {"since": T0.isoformat(), "state": "down"} for r in ("eu", "us")}
    regional = Verdict("down", "regional", ("eu",), T0)
    closed = apply_verdict(session=session, target="t", provider="p", verdict=regional, at=T0 + timedelta(minutes=5))
    assert closed[:2] == ("down", "up") and closed[2].closed_at == T0 + timedelta(minutes=5)
    assert open_global_for(session=session, target="t") is None
    with pytest.raises(ValueError, match="sighting state must be up, degraded or down, got 'gone'"):
        record_sighting(session=session, target="t", region="eu", state="gone", since=T0)


@pytest.fixture
async def ping_server():
    hits: list[str] = []
    answers: list[int] = []

    async def handle(request: web.Request) -> web.Response:
        hits.append(request.path_qs)
        return web.Response(status=answers.pop(0) if answers else 200, text="OK")

    app = web.Application()
    app.router.add_get("/{tail:.*}", handle)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield f"http://127.0.0.1:{port}", hits, answers
    await runner.cleanup()


async def test_the_dead_mans_switch_is_pinged_and_its_url_never_logged(ping_server, caplog):
    url, hits, answers = ping_server
    secret = f"{url}/ping/6f1c0b7e-5d2a-4c1e-9f6b-secret-uuid"
    caplog.set_level(logging.DEBUG)
    async with httpx.AsyncClient() as client:
        assert await ping(client, secret)
        answers.append(500)
        assert not await ping(client, secret)
        assert not await ping(client, "http://127.0.0.1:9/ping/6f1c0b7e-5d2a-4c1e-9f6b-secret-uuid", wait=2)
    assert hits == ["/ping/6f1c0b7e-5d2a-4c1e-9f6b-secret-uuid"] * 2
    said = "\n".join(r.getMessage() for r in caplog.records if r.name == "monitor.vantage")
    assert "HTTP 500" in said and "ConnectError" in said and "/ping/" not in said
    # httpx itself logs each request's URL at INFO: the monitor registers the URL with `protect`
    # (MonitorService does, when heartbeat_url is set), and then no record of any logger holds it.
    from monitor.alerts.redact import protect

    protect([secret])
    caplog.clear()
    async with httpx.AsyncClient() as client:
        answers.append(503)
        assert not await ping(client, secret)
    assert "HTTP 503" in caplog.text and "secret-uuid" not in caplog.text


def _service(engine, region, emulator_url="http://127.0.0.1:9", rules=""):
    from monitor.config import parse_config
    from monitor.service import MonitorService

    config = parse_config(f"""
targets:
  - provider: openai
    base_url: {emulator_url}/openai/v1
  - provider: anthropic
    base_url: {emulator_url}/anthropic/v1
detection: {{heartbeat_timeout: 4s}}
alerts:
  heartbeat_every: 1s
  channels:
    - {{name: oncall, type: webhook, url_env: HOOK}}
  rules:
    - {{rule: vantage_lost, channels: [oncall]}}
{rules}""", environ={})
    return MonitorService(config=config, engine=engine, region=region)


def _outbox(engine) -> list[str]:
    with Session(engine) as session:
        return [key for key in session.exec(select(sa.text("event_key")).select_from(sa.text("alert_outbox")))]


def test_a_region_is_announced_lost_only_by_a_monitor_that_has_itself_been_beating_for_the_timeout(tmp_path):
    """After the database was away for everyone (no heartbeat written anywhere), the first monitor
    back must not call the others lost: it waits until it has itself been beating for the timeout."""
    from monitor.store import make_engine, migrate

    engine = make_engine(f"sqlite:///{tmp_path / 'airisk.db'}")
    migrate(engine)
    eu, us = _service(engine, "eu"), _service(engine, "us")
    at = T0.replace(year=2030)
    eu._heartbeat(at)
    us._heartbeat(at)
    # Nobody could write for 10 s; eu is back first.
    eu._heartbeat(at + timedelta(seconds=10))
    eu._heartbeat(at + timedelta(seconds=12))
    us._heartbeat(at + timedelta(seconds=12.5))
    eu._heartbeat(at + timedelta(seconds=14.5))
    assert _outbox(engine) == []
    # us really stops: eu, beating steadily, says so once.
    for s in (16, 17, 18):
        eu._heartbeat(at + timedelta(seconds=s))
    [lost] = _outbox(engine)
    assert lost.startswith("vantage_lost:us@") and lost.endswith(":oncall")
    eu._heartbeat(at + timedelta(seconds=19))
    assert len(_outbox(engine)) == 1
    engine.dispose()


def test_the_dashboard_shows_the_vantage_points_and_the_regions_that_saw_each_incident(session):
    from dashboard.queries.overview import overview

    _beat(session, "eu", T0, host="box-eu", pid=11)
    _beat(session, "us", T0 - timedelta(minutes=10), host="box-us", pid=12)
    for region, minute in (("eu", 1), ("us", 2)):
        record_sighting(session=session, target="openai", region=region, state="down",
                        since=T0 + timedelta(minutes=minute))
    apply_verdict(session=session, target="openai", provider="openai",
                  verdict=Verdict("down", "global", ("eu", "us"), T0 + timedelta(minutes=2)), at=T0)
    session.add(IncidentRow(target="anthropic", provider="anthropic", region="us", state="degraded",
                            opened_at=T0))
    session.commit()
    data = overview(session=session, now=T0 + timedelta(seconds=30))
    vantage = data.vantage.set_index("region")
    assert dict(vantage["status"]) == {"eu": "alive", "us": "lost"}  # us: 10 min silent, past the 3 min default
    assert vantage.loc["eu", "host"] == "box-eu (pid 11)" and vantage.loc["eu", "age"] == "30s"
    incidents = data.open_incidents.set_index("target")
    assert incidents.loc["openai", "scope"] == "global"
    assert incidents.loc["openai", "regions"] == "eu 10:01:00 down, us 10:02:00 down"
    assert (incidents.loc["anthropic", "scope"], incidents.loc["anthropic", "regions"]) == ("regional", "us")


def test_a_global_incident_whose_opener_stopped_before_paging_is_paged_by_another_monitor(tmp_path):
    """The monitor that opens a global incident holds its page for the group window; killed then,
    the page would never go out. Another monitor's heartbeat finds the incident unannounced once it
    has seen it open for the group window and two heartbeats (17 s here), and pages it, once; an
    incident already paged is left alone."""
    from datetime import UTC, datetime

    from monitor.store import make_engine, migrate

    engine = make_engine(f"sqlite:///{tmp_path / 'airisk.db'}")
    migrate(engine)
    rules = "    - {rule: down, channels: [oncall]}\n"
    us, ap = _service(engine, "us", rules=rules), _service(engine, "ap", rules=rules)
    now = datetime.now(UTC)
    with Session(engine) as session:
        # opened_at is when the outage began: long ago, yet its opener may have committed it just now
        old = IncidentRow(target="openai", provider="openai", scope="global", state="down",
                          opened_at=now - timedelta(hours=1), regions={"eu": {}, "us": {}})
        session.add(old)
        session.add(IncidentRow(target="openai", provider="openai", scope="global", state="down",
                                opened_at=now - timedelta(hours=1), closed_at=now - timedelta(seconds=1)))
        session.commit()
        old_id = old.id
    assert us._heartbeat(now) == [] and ap._heartbeat(now) == []  # first seen: its opener may still be grouping
    assert us._heartbeat(now + timedelta(seconds=16)) == []
    [late] = us._heartbeat(now + timedelta(seconds=17))
    assert (late.incident_id, late.from_state, late.to_state, late.region) == (old_id, "up", "down", "")
    assert late.cause["regions"] == ["eu", "us"]
    assert us._heartbeat(now + timedelta(seconds=18)) == []  # once per monitor
    assert us._enqueue([late], now, False, False) == 1
    assert ap._heartbeat(now + timedelta(seconds=30)) == []  # paged already: the outbox names it
    assert _outbox(engine) == [f"down:openai:{old_id}:oncall"]
    engine.dispose()
