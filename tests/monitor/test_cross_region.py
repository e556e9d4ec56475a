"""Cross-region confirmation: a failure in one region has the other regions probe the target at once;
and corroboration: a target failing here that another region calls DOWN is DOWN here at once.

Unit: the store's suspicion query (other regions' fresh rows only, on SQLite and PostgreSQL); the
service nudges each suspicion once, never for its own region, a target DOWN here or in maintenance,
and reads nothing while no other region is alive. End to end: two real `airisk monitor --region`
processes on PostgreSQL, the second probing every 20 s: with the switch on, the global incident opens
seconds after the outage, long before that region's next scheduled probe; with it off, not before.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import event
from sqlmodel import Session, select

from chaos.faults import Fault
from monitor import vantage
from monitor.config import parse_config
from monitor.detect import Detector
from monitor.service import SUSPECT_LOOKBACK, MonitorService
from monitor.store import make_engine, migrate
from monitor.store.incidents import down_elsewhere, open_incident_for, record_sighting, record_suspect, suspects_since
from monitor.store.models import ProbeRow, SuspectRow, VantageRow
from probes import Status
from probes.result import ErrorKind, ProbeResult
from tests.conftest import until
from tests.monitor.test_multiregion import cluster

T0 = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)


def _suspect(engine, target: str, region: str, at: datetime) -> None:
    with Session(engine) as session:
        record_suspect(session=session, target=target, region=region, at=at)
        session.commit()


def test_the_suspect_query_returns_other_regions_fresh_rows_only(session: Session) -> None:
    record_suspect(session=session, target="a", region="us", at=T0 - timedelta(seconds=10))  # before the last look
    record_suspect(session=session, target="b", region="us", at=T0 + timedelta(seconds=1))
    record_suspect(session=session, target="a", region="ap", at=T0 + timedelta(seconds=2))
    record_suspect(session=session, target="a", region="eu", at=T0 + timedelta(seconds=3))  # the reader's own
    session.commit()
    assert suspects_since(session=session, since=T0, region="eu") == [
        ("b", "us", T0 + timedelta(seconds=1)), ("a", "ap", T0 + timedelta(seconds=2))]
    # A later suspicion moves the row on; one handled late (earlier) does not move it back.
    record_suspect(session=session, target="a", region="us", at=T0 + timedelta(seconds=4))
    record_suspect(session=session, target="b", region="us", at=T0)
    session.commit()
    assert suspects_since(session=session, since=T0 + timedelta(seconds=1), region="eu") == [
        ("a", "ap", T0 + timedelta(seconds=2)), ("a", "us", T0 + timedelta(seconds=4))]
    with pytest.raises(ValueError, match="naive since"):
        suspects_since(session=session, since=T0.replace(tzinfo=None), region="eu")


def _service(engine, now: datetime, *, down: str = "b", maintained: str = "c") -> tuple[MonitorService, list[str]]:
    config = parse_config(f"""
targets:
  - {{name: a, provider: openai}}
  - {{name: b, provider: anthropic}}
  - {{name: c, provider: gemini}}
  - {{name: d, provider: mistral}}
detection:
  maintenance: [{{start: "{(now - timedelta(hours=1)).isoformat()}", end: "{(now + timedelta(hours=1)).isoformat()}",
                  targets: [{maintained}]}}]
""", environ={})
    service = MonitorService(config=config, engine=engine, region="eu")
    service.detectors = {n: Detector(service.detection, n, state=Status.DOWN if n == down else Status.UP)
                         for n in service.targets}
    nudged: list[str] = []
    service.scheduler = SimpleNamespace(nudge=lambda name: nudged.append(name) or True)  # a stub: unit test
    service._others_alive = True  # as the last heartbeat found
    return service, nudged


@pytest.fixture
def sqlite_engine(tmp_path: Path):
    engine = make_engine(f"sqlite:///{tmp_path / 'airisk.db'}")
    migrate(engine)
    yield engine
    engine.dispose()


async def test_each_suspicion_nudges_once_and_not_targets_down_here_or_in_maintenance(sqlite_engine) -> None:
    now = datetime.now(UTC)
    service, nudged = _service(sqlite_engine, now)
    for name in ("a", "b", "c", "gone"):  # b is DOWN here, c in maintenance, "gone" not watched here
        _suspect(sqlite_engine, name, "us", now - timedelta(seconds=1))
    _suspect(sqlite_engine, "d", "eu", now - timedelta(seconds=1))  # this region's own
    assert await service._confirm_suspects(now) == ["a"]
    assert nudged == ["a"]
    assert await service._confirm_suspects(now + timedelta(seconds=1)) == []  # the same suspicion again: no
    _suspect(sqlite_engine, "a", "us", now + timedelta(seconds=1.5))  # a new suspicion is news
    assert await service._confirm_suspects(now + timedelta(seconds=2)) == ["a"]
    assert nudged == ["a", "a"]
    # A suspicion older than the first look (a row left from long ago) is no news.
    fresh, nudged_fresh = _service(sqlite_engine, now)
    _suspect(sqlite_engine, "d", "ap", now - timedelta(minutes=5))
    await fresh._confirm_suspects(now + timedelta(seconds=2))
    assert "d" not in nudged_fresh


async def test_nothing_is_read_or_written_while_no_other_region_is_alive(sqlite_engine) -> None:
    now = datetime.now(UTC)
    service, nudged = _service(sqlite_engine, now)
    service._others_alive = False
    _suspect(sqlite_engine, "a", "us", now)
    statements: list[str] = []
    event.listen(sqlite_engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
    assert await service._confirm_suspects(now) == []
    assert not service._confirming_across_regions()
    assert statements == [] and nudged == []
    # ...and the switch off is the same, another region alive or not.
    service._others_alive = True
    service.detection = service.detection.model_copy(update={"cross_region_confirm": False})
    assert await service._confirm_suspects(now) == [] and statements == []


async def test_a_suspicion_the_database_refuses_is_said_and_never_raised(tmp_path, caplog) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'empty.db'}")  # never migrated: no suspect table
    service, _ = _service(engine, datetime.now(UTC))
    await service._suspect("a", datetime.now(UTC))
    await service._suspect("a", datetime.now(UTC))
    said = [r.getMessage() for r in caplog.records if "not asked to confirm" in r.getMessage()]
    assert said == ["other regions not asked to confirm a, database unavailable: OperationalError"]  # once
    engine.dispose()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.one_of(
    st.tuples(st.just("write"), st.sampled_from("ad"), st.sampled_from(["us", "ap", "eu"]),
              st.floats(0, SUSPECT_LOOKBACK.total_seconds() - 0.5)),
    st.tuples(st.just("tick"), st.floats(0.1, 3.0))), max_size=30))
def test_every_fresh_suspicion_of_another_region_nudges_exactly_once(sqlite_engine, steps) -> None:
    """Whatever the interleaving of suspicions (committed up to a few seconds after the time they
    carry) and looks, each other region's suspicion present at a look nudges once, and no other."""
    with Session(sqlite_engine) as session:
        session.execute(sa.delete(SuspectRow))
        session.commit()
    now = T0
    service, nudged = _service(sqlite_engine, now, down="none", maintained="none")
    acted: set[tuple[str, str, datetime]] = set()

    def look() -> None:
        nudged.clear()
        asyncio.run(service._confirm_suspects(now))
        with Session(sqlite_engine) as session:
            rows = {(r.target, r.region, r.at) for r in session.exec(select(SuspectRow))}
        news = sorted(key for key in rows - acted if key[1] != "eu")
        acted.update(news)
        assert sorted(nudged) == sorted(key[0] for key in news)

    look()
    for step in steps:
        if step[0] == "tick":
            now += timedelta(seconds=step[1])
            look()
        else:
            _, target, region, lag = step
            at = now - timedelta(seconds=lag)
            with Session(sqlite_engine) as session:
                held = session.get(SuspectRow, (target, region))
                if held is not None and held.at >= at:
                    continue  # not a later suspicion: the row keeps its time (tested above)
            _suspect(sqlite_engine, target, region, at)
    now += timedelta(seconds=1)
    look()
    assert not [key for key in acted if key[1] == "eu"]


# -- two real monitors on PostgreSQL ----------------------------------------------------------------

async def test_a_probe_hedged_for_want_of_a_first_token_tells_the_other_regions_at_once(sqlite_engine) -> None:
    """A hang fails only at the first-token deadline: the hedge, seconds in, is the first news of it."""
    now = datetime.now(UTC)
    service, _ = _service(sqlite_engine, now, down="b")
    watch = SimpleNamespace(target=service.targets["a"])
    assert await asyncio.gather(*[asyncio.sleep(0)]) and service._hedges(watch, now, False) == 4  # 5 - 1 failing
    await asyncio.gather(*service._tasks)
    with Session(sqlite_engine) as session:
        rows = session.exec(select(SuspectRow)).all()
    assert [(r.target, r.region) for r in rows] == [("a", "eu")] and rows[0].at >= now  # stamped when written
    # A confirmation's hedge, a target DOWN here (no hedges), or no other region alive: no suspicion.
    assert service._hedges(watch, now, True) > 0
    assert service._hedges(SimpleNamespace(target=service.targets["b"]), now, False) == 0
    service._others_alive = False
    assert service._hedges(watch, now, False) == 4
    assert not service._tasks


def test_down_elsewhere_names_other_alive_regions_calling_a_target_down(session: Session) -> None:
    for target, region, state in [("a", "us", "down"), ("a", "ap", "down"), ("a", "eu", "down"),
                                  ("b", "us", "degraded"), ("c", "gone", "down"), ("d", "us", "down")]:
        record_sighting(session=session, target=target, region=region, state=state, since=T0)
    session.commit()
    assert down_elsewhere(session=session, targets=["a", "b", "c"], region="eu", alive={"us", "ap", "eu"}) == {
        "a": ["ap", "us"]}  # not b (degraded), not c (its region is not alive), not d (not asked), not eu's own
    assert down_elsewhere(session=session, targets=["a"], region="eu", alive={"eu"}) == {}


def _fail(service: MonitorService, name: str, n: int, at: datetime) -> None:
    for i in range(n):
        service.detectors[name].feed(ProbeResult(
            target=name, provider="openai", model="m", at=at + timedelta(seconds=i), status=Status.DOWN,
            error_kind=ErrorKind.SERVER_ERROR, total_ms=300.0), confirm=i > 0)


async def test_a_target_failing_here_and_down_in_another_alive_region_is_corroborated(sqlite_engine, caplog) -> None:
    caplog.set_level(logging.INFO, logger="monitor.service")
    now = datetime.now(UTC)
    service, _ = _service(sqlite_engine, now, down="none", maintained="c")
    with Session(sqlite_engine) as session:
        vantage.beat(session=session, region="us", now=now, started_at=now - timedelta(minutes=5))  # alive
        for target, region in [("a", "us"), ("b", "ap"), ("c", "us"), ("d", "us")]:  # ap: no heartbeat, not alive
            record_sighting(session=session, target=target, region=region, state="down", since=now)
        session.commit()
    for name, n in [("a", 4), ("b", 4), ("c", 4), ("d", 3)]:  # c in maintenance here; d: 3 < corroborate_after
        _fail(service, name, n, now - timedelta(seconds=10))
    assert await service._corroborate(now) == ["a"]
    assert {n: str(d.state) for n, d in service.detectors.items()} == {"a": "down", "b": "up", "c": "up", "d": "up"}
    with Session(sqlite_engine) as session:
        row = open_incident_for(session=session, target="a", region="eu")
        assert row is not None and row.cause["rule"] == "corroborated" and row.cause["down_in"] == ["us"]
    assert any("a: 4 failures in a row here, DOWN in us: corroborated" in r.getMessage() for r in caplog.records)
    # No target failing here: not a single statement; no other region alive: none either.
    statements: list[str] = []
    event.listen(sqlite_engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
    quiet, _ = _service(sqlite_engine, now, down="none")
    assert await quiet._corroborate(now) == [] and statements == []
    _fail(quiet, "a", 4, now)
    quiet._others_alive = False
    assert await quiet._corroborate(now) == [] and statements == []
    quiet._others_alive = True
    assert await quiet._corroborate(now) == ["a"] and statements


_FAST, _SLOW = 1.0, 20.0  # eu probes every second, us every 20 s


_QUICK = "failure_threshold: 2, confirm_after: [0.1s]"


def _config(path: Path, provider_url: str, *, interval: float, confirm: bool, detection: str = _QUICK) -> Path:
    path.write_text(f"""
defaults:
  interval: {interval}s
  deadlines: {{connect: 2s, first_token: 2s, total: 4s, stall: 1s}}
targets:
  - provider: openai
    base_url: {provider_url}/openai/v1
detection: {{{detection}, success_threshold: 2, quorum: 2,
             heartbeat_timeout: 6s, cross_region_confirm: {str(confirm).lower()}}}
alerts:
  group_window: 0.2s
  reminder_every: null
  heartbeat_every: 0.5s
  channels:
    - {{name: oncall, type: webhook, url_env: ONCALL_HOOK}}
  rules:
    - {{rule: down, channels: [oncall]}}
""")
    return path


def _first_probe(c, region: str) -> datetime | None:
    with Session(c.engine) as session:
        return session.exec(select(sa.func.min(ProbeRow.at)).where(ProbeRow.region == region)).one()


def _alive(c) -> set[str]:
    with Session(c.engine) as session:
        return set(session.exec(select(VantageRow.region)))


async def _outage_between_us_probes(c, emulator, tmp_path, *, confirm: bool, detection: str = _QUICK):
    """us (every 20 s) and eu (every second) monitoring, then an outage of openai at least 10 s
    before us's next scheduled probe: (when the fault went in, that probe's time)."""
    # us first: its schedule is known from its first probe (every 20 s from then on).
    c.start("us", _config(tmp_path / "us.yaml", emulator.url, interval=_SLOW, confirm=confirm, detection=detection))
    await until(lambda: _first_probe(c, "us") is not None, _SLOW + 15, "us's first scheduled probe")
    c.start("eu", _config(tmp_path / "eu.yaml", emulator.url, interval=_FAST, confirm=confirm, detection=detection))
    await until(lambda: _first_probe(c, "eu") is not None and _alive(c) == {"eu", "us"}, 15, "eu probing")
    await asyncio.sleep(1.5)  # us's next heartbeat finds eu alive
    first = _first_probe(c, "us")
    assert first is not None
    # The fault goes in at least 10 s before us's next scheduled probe (waiting a round if need be).
    k = 1
    while first + timedelta(seconds=k * _SLOW) - datetime.now(UTC) < timedelta(seconds=10):
        k += 1
    if k > 1:  # past the scheduled probe just before: the fault goes in after it
        after = first + timedelta(seconds=(k - 1) * _SLOW + 1.5)
        await asyncio.sleep(max(0.0, (after - datetime.now(UTC)).total_seconds()))
    next_scheduled = first + timedelta(seconds=k * _SLOW)
    emulator.emu.faults.add(Fault.from_dict({"type": "overloaded", "route": "openai"}))
    fault_at = datetime.now(UTC)
    assert next_scheduled - fault_at >= timedelta(seconds=9), (next_scheduled, fault_at)
    return fault_at, next_scheduled


@pytest.mark.parametrize("confirm", [True, False], ids=["switch-on", "switch-off"])
async def test_the_quorum_forms_before_the_second_regions_next_scheduled_probe(emulator, receiver, tmp_path,
                                                                               confirm):
    async with cluster(tmp_path, receiver) as c:
        fault_at, next_scheduled = await _outage_between_us_probes(c, emulator, tmp_path, confirm=confirm)
        before = (next_scheduled - datetime.now(UTC)).total_seconds() - 1.0
        if confirm:
            await until(lambda: bool(c.incidents("global")), before, "the global incident")
            [whole] = c.incidents("global")
            seen = {region: datetime.fromisoformat(s["since"]) for region, s in whole.regions.items()}
            assert sorted(seen) == ["eu", "us"]
            assert seen["us"] - fault_at < timedelta(seconds=6), (seen, fault_at)  # seconds, not the interval
            assert whole.opened_at < next_scheduled - timedelta(seconds=3)
            def us_failed():  # results are written by the monitor's buffered writer, after the incident
                with Session(c.engine) as session:
                    return session.exec(select(ProbeRow).where(ProbeRow.region == "us", ProbeRow.status == "down")
                                        .order_by(ProbeRow.at)).first()

            await until(lambda: us_failed() is not None, 15, "us's failed probe stored")
            failed = us_failed()
            assert failed.confirm  # us's first look at the outage was off schedule
            await receiver.wait_for(1, "/oncall", within=10)
            assert "probing it from here now" in c.log("us")
        else:
            started = time.monotonic()
            while time.monotonic() - started < before:
                assert c.incidents("global") == [], "a global incident before us's next scheduled probe"
                await asyncio.sleep(0.5)
            # ...and at that probe it does open: the outage was real all along.
            await until(lambda: bool(c.incidents("global")), 15, "the global incident after us's scheduled probe")
            [whole] = c.incidents("global")
            assert whole.opened_at >= next_scheduled - timedelta(seconds=1)
            assert "probing it from here now" not in c.log("us")


async def test_the_second_region_corroborates_rather_than_confirming_all_over_again(emulator, receiver, tmp_path):
    """Six failures in a row make a target DOWN, one a second: eu, failing first, goes DOWN after
    its six; us, nudged a second or so later, has two or three of its own by then and goes DOWN on
    eu's word (its regional incident's cause says so), a second or more before its sixth."""
    detection = "failure_threshold: 6, confirm_after: [1s, 1s, 1s, 1s, 1s], corroborate_after: 2"
    async with cluster(tmp_path, receiver) as c:
        await _outage_between_us_probes(c, emulator, tmp_path, confirm=True, detection=detection)
        # (No race with us's next scheduled probe here: one more failure there changes nothing asserted.)
        await until(lambda: bool(c.incidents("global")), 30, "the global incident")
        await until(lambda: len(c.incidents("regional")) == 2, 10, "both regional incidents")
        causes = {row.region: row.cause for row in c.incidents("regional")}
        assert causes["eu"]["rule"] == "failures" and causes["eu"]["failures"] == 6
        assert causes["us"]["rule"] == "corroborated" and causes["us"]["down_in"] == ["eu"], causes
        assert 2 <= causes["us"]["failures"] < 6
        [whole] = c.incidents("global")
        assert sorted(whole.regions) == ["eu", "us"]
        await receiver.wait_for(1, "/oncall", within=10)
        assert "corroborated" in c.log("us") and "corroborated" not in c.log("eu")
