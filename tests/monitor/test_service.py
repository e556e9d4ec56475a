"""`airisk monitor` end to end: emulator -> probes -> detection -> incidents -> alerts, stored."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
from sqlmodel import Session, select

from chaos.faults import Fault
from monitor.config import parse_config
from monitor.detect import Detector
from monitor.service import MonitorService
from monitor.store import make_engine
from monitor.store.models import IncidentRow, ProbeRow
from probes import Status
from tests.conftest import until


def _vendor_post_seen(engine) -> bool:
    with Session(engine) as session:
        return any(i.vendor_first_post_at is not None for i in session.exec(select(IncidentRow)))


def _config(emulator, *, hook_env: str, extra: str = "", rules: str = "", interval: str = "0.4s", group_window="0.2s",
            detection: str = "failure_threshold: 2, success_threshold: 2, confirm_after: [0.1s]"):
    text = f"""
defaults:
  interval: {interval}
  deadlines: {{connect: 2s, first_token: 2s, total: 5s, stall: 1s}}
targets:
  - provider: openai
    base_url: {emulator.url}/openai/v1
    status_page: {emulator.url}/status/openai
  - provider: anthropic
    base_url: {emulator.url}/anthropic/v1
    status_page: {emulator.url}/status/anthropic
detection: {{{detection}}}
alerts:
  group_window: {group_window}
  reminder_every: null
  channels:
    - {{name: oncall, type: webhook, url_env: {hook_env}}}
  rules:
    - {{rule: down, channels: [oncall]}}
    - {{rule: recovered, channels: [oncall]}}
{rules}{extra}"""
    return parse_config(text, environ={})


async def test_an_outage_opens_an_incident_alerts_and_recovers(emulator, receiver, tmp_path, monkeypatch):
    monkeypatch.setenv("ONCALL_HOOK", receiver.url + "/hook")
    engine = make_engine(f"sqlite:///{tmp_path / 'airisk.db'}")
    service = MonitorService(config=_config(emulator, hook_env="ONCALL_HOOK"), engine=engine, region="eu",
                             status_interval=0.5, housekeeping_interval=0.1, seed=5)
    stop = asyncio.Event()
    task = asyncio.create_task(service.run(stop))
    try:
        await asyncio.wait_for(service.started.wait(), 10)
        emulator.emu.faults.add(Fault.from_dict({"type": "overloaded", "route": "anthropic"}))
        emulator.emu.pages["anthropic"].post(name="Elevated errors", impact="major")
        [down] = await receiver.wait_for(1, "/hook", within=15)
        assert "anthropic" in str(down.body) and "down" in str(down.body).lower()
        emulator.emu.faults.clear()
        alerts = await receiver.wait_for(2, "/hook", within=15)
        assert "recovered" in str(alerts[1].body).lower()
        # The status page is polled every 0.5 s: the vendor's post is matched to the incident.
        await until(lambda: _vendor_post_seen(engine), 15, "the vendor's post on the incident")
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
    with Session(engine) as session:
        [incident] = session.exec(select(IncidentRow).where(IncidentRow.scope == "regional")).all()
        assert (incident.target, incident.state, incident.region) == ("anthropic", "down", "eu")
        assert incident.closed_at is not None and incident.closed_at > incident.opened_at
        assert incident.cause["kinds"] == {"overloaded": incident.cause["kinds"]["overloaded"]}
        # One monitor is its own quorum (detection.quorum: 1): the global incident is the one that paged.
        [whole] = session.exec(select(IncidentRow).where(IncidentRow.scope == "global")).all()
        assert (whole.target, whole.state, whole.region, list(whole.regions)) == ("anthropic", "down", "", ["eu"])
        assert whole.closed_at is not None
        assert f"airisk-incident-{whole.id}" in str(down.body)
        assert incident.vendor_first_post_at is not None and incident.lead_time_s is not None
        rows = session.exec(select(ProbeRow)).all()
        assert {r.target for r in rows} == {"openai", "anthropic"}
        assert any(r.confirm for r in rows)  # confirmation probes were sent and stored as such
        assert all(r.region == "eu" for r in rows)
    assert not [r for r in receiver.requests if "openai" in str(r.body)]
    engine.dispose()


async def test_two_regions_share_postgresql_and_each_alert_goes_out_once(emulator, receiver, monkeypatch):
    from collections import Counter

    from tests.monitor.conftest import pg_schema

    monkeypatch.setenv("ONCALL_HOOK", receiver.url + "/hook")
    with pg_schema() as db:
        services = [
            MonitorService(config=_config(emulator, hook_env="ONCALL_HOOK"), engine=db.engine(), region=region,
                           status_interval=0.5, housekeeping_interval=0.1, seed=i)
            for i, region in enumerate(("eu", "us"))
        ]
        stop = asyncio.Event()
        tasks = [asyncio.create_task(s.run(stop)) for s in services]
        try:
            for s in services:
                await asyncio.wait_for(s.started.wait(), 10)
            emulator.emu.faults.add(Fault.from_dict({"type": "overloaded", "route": "anthropic"}))
            await receiver.wait_for(1, "/hook", within=15)  # one "down" for the outage both regions see
            await until(lambda: _global_regions(db.engine()) == ["eu", "us"], 15, "both regions on the incident")
            emulator.emu.faults.clear()
            await receiver.wait_for(2, "/hook", within=15)  # and one "recovered"
            await asyncio.sleep(1.0)  # time for a duplicate to show up, if either dispatcher sent one
        finally:
            stop.set()
            await asyncio.wait_for(asyncio.gather(*tasks), 30)
        with Session(db.engine()) as session:
            incidents = session.exec(select(IncidentRow)).all()
            regions = {r.region for r in session.exec(select(ProbeRow)).all()}
    bodies = [str(r.body) for r in receiver.accepted("/hook")]
    assert len(bodies) == 2, bodies
    assert Counter(bodies).most_common(1)[0][1] == 1  # no alert delivered twice
    assert sorted(i.region for i in incidents if i.scope == "regional") == ["eu", "us"]
    assert [i.region for i in incidents if i.scope == "global"] == [""]
    assert regions == {"eu", "us"}


async def test_slo_burn_rule_fires_when_availability_falls_below_objective(emulator, receiver, tmp_path,
                                                                           monkeypatch):
    monkeypatch.setenv("ONCALL_HOOK", receiver.url + "/hook")
    config = _config(emulator, hook_env="ONCALL_HOOK",
                     rules="    - {rule: slo_burn, channels: [oncall], objective: 0.99, window: 1h}\n")
    engine = make_engine(f"sqlite:///{tmp_path / 'airisk.db'}")
    service = MonitorService(config=config, engine=engine, housekeeping_interval=0.1, slo_interval=0.3,
                             status_interval=60)
    emulator.emu.faults.add(Fault.from_dict({"type": "server_error", "route": "openai", "probability": 0.5}))
    stop = asyncio.Event()
    task = asyncio.create_task(service.run(stop))
    try:
        async with asyncio.timeout(20):
            while not [r for r in receiver.accepted("/hook") if "objective" in str(r.body)]:
                receiver.changed.clear()
                await receiver.changed.wait()
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
    [burn] = [r for r in receiver.accepted("/hook") if "objective" in str(r.body)]
    assert "openai" in str(burn.body) and "99.000% objective" in str(burn.body)
    engine.dispose()


def test_retention_follows_the_storage_section(emulator, tmp_path):
    from datetime import UTC, datetime, timedelta

    from monitor.store import migrate

    config = _config(emulator, hook_env="UNUSED", extra="storage: {raw_days: 3}\n")
    engine = make_engine(f"sqlite:///{tmp_path / 'airisk.db'}")
    migrate(engine)
    now = datetime.now(UTC)
    with Session(engine) as session:
        for age in (1, 5):
            session.add(ProbeRow(target="openai", at=now - timedelta(days=age), status="up", error_kind="ok"))
        session.commit()
    MonitorService(config=config, engine=engine)._prune(now)
    with Session(engine) as session:
        assert [r.at.date() for r in session.exec(select(ProbeRow))] == [(now - timedelta(days=1)).date()]
    engine.dispose()


@contextlib.asynccontextmanager
async def _service_on_sqlite_with_a_lock(emulator, tmp_path, **config):
    """A running service on a SQLite file, with a second connection to lock the file from (the
    service waits 5 s, its busy_timeout, for a lock, then gives up)."""
    db = tmp_path / "airisk.db"
    engine = make_engine(f"sqlite:///{db}")
    service = MonitorService(config=_config(emulator, hook_env="ONCALL_HOOK", **config), engine=engine,
                             status_interval=3600, housekeeping_interval=0.1)
    stop = asyncio.Event()
    task = asyncio.create_task(service.run(stop))
    lock = sqlite3.connect(db, timeout=5)
    try:
        await asyncio.wait_for(service.started.wait(), 10)
        yield service, engine, lock
    finally:
        lock.close()
        stop.set()
        await asyncio.wait_for(task, 30)


async def test_database_away_during_an_outage_loses_no_result_and_no_incident(emulator, receiver, tmp_path,
                                                                               monkeypatch):
    monkeypatch.setenv("ONCALL_HOOK", receiver.url + "/hook")
    async with _service_on_sqlite_with_a_lock(emulator, tmp_path) as (service, engine, lock):
        lock.execute("BEGIN EXCLUSIVE")  # the database is unreachable for everyone else from here
        emulator.emu.faults.add(Fault.from_dict({"type": "overloaded", "route": "anthropic"}))
        await asyncio.sleep(7)  # the outage is detected, and writing it times out, while nothing can be written
        assert service.writer.pending > 0 and not receiver.requests
        submitted = service.writer.pending + service.writer.written
        lock.rollback()  # the database is back
        [down] = await receiver.wait_for(1, "/hook", within=15)
        assert "anthropic" in str(down.body)
    with Session(engine) as session:
        rows = session.exec(select(ProbeRow)).all()
        [incident] = session.exec(select(IncidentRow).where(IncidentRow.scope == "regional")).all()
    assert len(rows) >= submitted  # every result measured while the database was away is there
    assert incident.target == "anthropic" and incident.state == "down"
    engine.dispose()


async def test_a_page_whose_group_closes_while_the_database_is_away_goes_out_once_it_is_back(
        emulator, receiver, tmp_path, monkeypatch):
    """The incident is written, then the database goes away before the alert group closes: queueing
    the page fails, and the page must wait for the database, not vanish."""
    monkeypatch.setenv("ONCALL_HOOK", receiver.url + "/hook")
    async with _service_on_sqlite_with_a_lock(emulator, tmp_path, group_window="3s") as (_, engine, lock):
        emulator.emu.faults.add(Fault.from_dict({"type": "overloaded", "route": "anthropic"}))
        await until(lambda: _incidents(engine) == {"anthropic"}, 15, "the incident written")
        lock.execute("BEGIN EXCLUSIVE")  # within the 3 s group window: the page is not queued yet
        await asyncio.sleep(9)  # the group closes, and queueing it times out at least once
        assert not receiver.requests
        lock.rollback()
        [down] = await receiver.wait_for(1, "/hook", within=15)
        await asyncio.sleep(0.5)  # time for a duplicate to show up, if there were one
    assert "anthropic" in str(down.body) and len(receiver.requests) == 1
    engine.dispose()


async def test_postgresql_away_for_a_minute_loses_no_result_and_pages_once_it_is_back(emulator, receiver, proxied_pg,
                                                                                     monkeypatch, caplog):
    """The issue's "database unreachable for a minute", at full length: PostgreSQL refuses every
    connection for 60 s while an outage starts and ends; probing goes on at its interval, and when
    the database is back every result, the incident (with the times it really opened and closed)
    and both pages arrive, once each."""
    monkeypatch.setenv("ONCALL_HOOK", receiver.url + "/hook")
    via, direct, relay = proxied_pg
    service = MonitorService(config=_config(emulator, hook_env="ONCALL_HOOK", interval="1s"), engine=via,
                             status_interval=3600, housekeeping_interval=0.1, seed=5)
    stop = asyncio.Event()
    task = asyncio.create_task(service.run(stop))
    try:
        await asyncio.wait_for(service.started.wait(), 10)
        await until(lambda: service.writer.written >= 4, 15, "the first results written")
        await relay.stop()  # pooled connections are reset, new ones refused
        away = datetime.now(UTC)
        await asyncio.sleep(5)
        emulator.emu.faults.add(Fault.from_dict({"type": "overloaded", "route": "anthropic"}))
        await asyncio.sleep(25)
        emulator.emu.faults.clear()
        await asyncio.sleep(30)
        assert not task.done() and not receiver.requests  # alive; pages wait in memory for the outbox
        submitted = service.writer.pending + service.writer.written
        await relay.start()  # the database is back on the same address
        back = datetime.now(UTC)
        alerts = await receiver.wait_for(2, "/hook", within=30)
        await asyncio.sleep(1)  # time for a duplicate to show up, if there were one
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
    assert len(receiver.requests) == 2
    assert "down" in str(alerts[0].body).lower() and "recovered" in str(alerts[1].body).lower()
    with Session(direct) as session:
        rows = session.exec(select(ProbeRow)).all()
        [incident] = session.exec(select(IncidentRow).where(IncidentRow.scope == "regional")).all()
    assert len(rows) >= submitted
    during = [r for r in rows if away <= r.at.replace(tzinfo=UTC) <= back and not r.confirm]
    for target in ("openai", "anthropic"):  # scheduled probing went on at its 1 s interval
        assert sum(r.target == target for r in during) >= 0.7 * (back - away).total_seconds()
    assert incident.target == "anthropic"
    opened, closed = (t.replace(tzinfo=UTC) for t in (incident.opened_at, incident.closed_at))
    assert away < opened < closed < back  # stamped when it happened, not when it could be written
    # The log says so in a few lines (every 30 s, every 10th try), not one per housekeeping tick (~600).
    warned = [r for r in caplog.records if "database unavailable" in r.getMessage()]
    assert 2 <= len(warned) <= 8 and not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_a_hanging_provider_is_down_one_first_token_deadline_after_its_first_probe(emulator, receiver, tmp_path,
                                                                                         monkeypatch):
    monkeypatch.setenv("ONCALL_HOOK", receiver.url + "/hook")
    engine = make_engine(f"sqlite:///{tmp_path / 'airisk.db'}")
    # The next scheduled probe is 5 s off: the hedges must do it.
    config = _config(emulator, hook_env="ONCALL_HOOK", interval="5s",
                     detection="failure_threshold: 3, confirm_after: [0.1s, 0.1s], hedge_after: 0.2s")
    service = MonitorService(config=config, engine=engine, housekeeping_interval=0.1, status_interval=3600, seed=5)
    stop = asyncio.Event()
    task = asyncio.create_task(service.run(stop))
    try:
        await asyncio.wait_for(service.started.wait(), 10)
        emulator.emu.faults.add(Fault.from_dict({"type": "hang", "route": "anthropic"}))
        [down] = await receiver.wait_for(1, "/hook", within=15)
        assert "anthropic" in str(down.body)
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
    with Session(engine) as session:
        [incident] = session.exec(select(IncidentRow).where(IncidentRow.scope == "regional")).all()
        assert incident.cause["kinds"] == {"first_token_timeout": 3}
        rows = session.exec(select(ProbeRow).where(ProbeRow.target == "anthropic", ProbeRow.error_kind != "ok")).all()
    first = min(r.at for r in rows).replace(tzinfo=UTC)
    # DOWN one 2 s first-token deadline (+ the 0.2 s hedge) after the first probe, where three deadlines
    # one after another would take 6.2 s or more.
    assert (incident.opened_at.replace(tzinfo=UTC) - first).total_seconds() < 4.5
    assert sum(r.confirm for r in rows) >= 2
    engine.dispose()


@pytest.mark.parametrize("siblings", [True, False], ids=["siblings", "each-on-its-own"])
async def test_a_failure_probes_the_endpoints_other_targets_at_once(emulator, receiver, tmp_path, monkeypatch,
                                                                    siblings):
    """Two models on one OpenAI endpoint, probed every 6 s: the first to fail has the other probed
    at once, so both are DOWN together and on-call gets one page naming both. Without sibling
    probes the other waits for its own next interval."""
    monkeypatch.setenv("ONCALL_HOOK", receiver.url + "/hook")
    base = f"{emulator.url}/openai/v1"
    config = parse_config(f"""
defaults: {{interval: 6s, deadlines: {{connect: 2s, first_token: 2s, total: 5s, stall: 1s}}}}
targets:
  - {{name: mini, provider: openai, model: gpt-4o-mini, base_url: {base}}}
  - {{name: full, provider: openai, model: gpt-4o, base_url: {base}}}
  - {{provider: anthropic, base_url: {emulator.url}/anthropic/v1}}
detection: {{failure_threshold: 3, confirm_after: [0.1s, 0.1s], probe_siblings: {str(siblings).lower()}}}
alerts:
  group_window: 3s
  reminder_every: null
  channels: [{{name: oncall, type: webhook, url_env: ONCALL_HOOK}}]
  rules: [{{rule: down, channels: [oncall]}}]
""", environ={})
    engine = make_engine(f"sqlite:///{tmp_path / 'airisk.db'}")
    # seed 25: the first runs fall at 2.3 s (mini) and 5.6 s (full), so the sibling probe and its
    # confirmations have 3 s before full's own scheduled probe could take their place.
    service = MonitorService(config=config, engine=engine, status_interval=3600, housekeeping_interval=0.1, seed=25)
    assert service.siblings == ({"mini": ["full"], "full": ["mini"]} if siblings else {})
    stop = asyncio.Event()
    task = asyncio.create_task(service.run(stop))
    try:
        await asyncio.wait_for(service.started.wait(), 10)
        emulator.emu.faults.add(Fault.from_dict({"type": "overloaded", "route": "openai"}))
        await until(lambda: _incidents(engine) == {"mini", "full"}, 20, "both openai targets DOWN")
        await receiver.wait_for(1, "/hook", within=10)
        await asyncio.sleep(0.5)  # time for a second page to show up, if there were one
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
    with Session(engine) as session:
        failed = session.exec(select(ProbeRow).where(ProbeRow.error_kind != "ok").order_by(ProbeRow.at)).all()
    first = {}
    for row in failed:
        first.setdefault(row.target, row)
    leader, follower = sorted((first["mini"], first["full"]), key=lambda r: r.at)
    assert not leader.confirm  # the outage was first seen by a scheduled probe
    if siblings:
        # The other was probed the moment the first failure ended, not at its next interval...
        assert follower.confirm
        ended = leader.at + timedelta(milliseconds=leader.total_ms)
        assert timedelta(0) <= follower.at - ended < timedelta(seconds=1.5)
        # ...and that probe opened its own confirmations: DOWN on three off-schedule probes, none
        # of its scheduled ones needed (were it counted as a confirmation, one would be missing).
        assert [r.confirm for r in failed if r.target == follower.target][:3] == [True] * 3
        [page] = receiver.accepted("/hook")
        assert sorted(page.body["targets"]) == ["full", "mini"]
    else:
        assert not follower.confirm  # its own schedule found it
    assert "anthropic" not in first


def _global_regions(engine) -> list[str]:
    with Session(engine) as session:
        return sorted(r for i in session.exec(select(IncidentRow).where(IncidentRow.scope == "global"))
                      for r in i.regions)


def _incidents(engine) -> set[str]:
    with Session(engine) as session:
        return {i.target for i in session.exec(select(IncidentRow))}


def test_siblings_share_provider_and_base_url_and_local_models_have_none():
    config = parse_config("""
targets:
  - {name: a, provider: openai, model: gpt-4o-mini}
  - {name: b, provider: openai, model: gpt-4o, base_url: "https://api.openai.com/v1/"}
  - {name: c, provider: openai, base_url: https://gateway.example.com/v1}
  - {name: d, provider: azure-openai, base_url: https://api.openai.com/v1, options: {deployment: x}}
  - {name: l1, provider: llamacpp, base_url: http://127.0.0.1:8011/v1, local: true}
  - {name: l2, provider: llamacpp, base_url: http://127.0.0.1:8011/v1, local: true}
""", environ={})
    service = MonitorService(config=config, engine=make_engine("sqlite://"))
    assert service.siblings == {"a": ["b"], "b": ["a"]}


def test_sibling_probes_skip_targets_down_or_in_maintenance():
    now = datetime.now(UTC)
    config = parse_config(f"""
targets:
  - {{name: a, provider: openai}}
  - {{name: b, provider: openai}}
  - {{name: c, provider: openai}}
  - {{name: d, provider: openai}}
detection:
  maintenance: [{{start: "{(now - timedelta(hours=1)).isoformat()}", end: "{(now + timedelta(hours=1)).isoformat()}",
                  targets: [c]}}]
""", environ={})
    service = MonitorService(config=config, engine=make_engine("sqlite://"))
    service.detectors = {n: Detector(service.detection, n, state=Status.DOWN if n == "b" else Status.UP)
                         for n in "abcd"}
    nudged = []
    service.scheduler = SimpleNamespace(nudge=lambda name: nudged.append(name) or True)  # a stub: unit test
    service._probe_siblings("a", now)
    assert nudged == ["d"]  # b is DOWN already, c in maintenance


async def test_the_headless_monitor_logs_what_happens_with_fields_and_pings_its_dead_mans_switch(
        emulator, receiver, tmp_path, monkeypatch, caplog):
    """State changes (with the cause's values), incidents opened and closed (regional and global,
    with their regions), the vendor's posts: each one INFO record with structured fields. The ping
    URL is fetched at every heartbeat and appears in no record."""
    from aiohttp import web

    pings: list[str] = []

    async def ping(request: web.Request) -> web.Response:
        pings.append(request.path)
        return web.Response(text="OK")

    app = web.Application()
    app.router.add_get("/{tail:.*}", ping)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    secret = f"http://127.0.0.1:{runner.addresses[0][1]}/ping/0b8e3d1c-secret-check-uuid"
    monkeypatch.setenv("ONCALL_HOOK", receiver.url + "/hook")
    config = _config(emulator, hook_env="ONCALL_HOOK")
    config = config.model_copy(update={"alerts": config.alerts.model_copy(update={
        "heartbeat_url": secret, "heartbeat_every": 0.3})})
    caplog.set_level(logging.INFO)
    engine = make_engine(f"sqlite:///{tmp_path / 'airisk.db'}")
    service = MonitorService(config=config, engine=engine, region="eu", status_interval=0.5,
                             housekeeping_interval=0.1, seed=5)
    stop = asyncio.Event()
    task = asyncio.create_task(service.run(stop))
    try:
        await asyncio.wait_for(service.started.wait(), 10)
        emulator.emu.faults.add(Fault.from_dict({"type": "overloaded", "route": "anthropic"}))
        emulator.emu.pages["anthropic"].post(name="Elevated errors on Claude", impact="major")
        await receiver.wait_for(1, "/hook", within=15)
        emulator.emu.faults.clear()
        await receiver.wait_for(2, "/hook", within=15)
        await until(lambda: _events(caplog, "vendor_post"), 10, "the vendor's post logged")
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
        await runner.cleanup()
        engine.dispose()
    [down, up] = [r for r in _events(caplog, "state_change") if r.target == "anthropic"]
    assert (down.region, down.from_state, down.to_state) == ("eu", "up", "down")
    assert down.cause["kinds"] == {"overloaded": down.cause["failures"]} and down.cause["threshold"] == 2
    assert "anthropic@eu: up -> down (rule=failures, failures=2, threshold=2" in down.getMessage()
    assert (up.from_state, up.to_state) == ("down", "up")
    opened = {(r.scope, r.target) for r in _events(caplog, "incident_opened")}
    closed = {(r.scope, r.target) for r in _events(caplog, "incident_closed")}
    assert opened == closed == {("regional", "anthropic"), ("global", "anthropic")}
    [whole] = [r for r in _events(caplog, "incident_opened") if r.scope == "global"]
    assert whole.regions == ["eu"] and isinstance(whole.incident_id, int) and whole.to_state == "down"
    assert "regions eu (quorum 1 of 1 regions counting)" in whole.getMessage()
    [post] = _events(caplog, "vendor_post")
    assert (post.provider, post.vendor_incident, post.status) == ("anthropic", "Elevated errors on Claude",
                                                                  "investigating")
    assert len(pings) >= 3 and set(pings) == {"/ping/0b8e3d1c-secret-check-uuid"}
    assert "secret-check-uuid" not in caplog.text


def _events(caplog, event: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if getattr(r, "event", None) == event]
