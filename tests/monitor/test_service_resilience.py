"""The monitor never goes quiet: an odd status page, a bug in the alert rules or a result the metrics
cannot take is logged (once, not every tick) and the loops go on; detection never depends on metrics."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import Session, select

from chaos.faults import Fault
from monitor.config import parse_config
from monitor.service import MonitorService
from monitor.store import make_engine, migrate
from monitor.store.models import IncidentRow, ProbeRow, ProxyRequestRow, StatusSnapshot
from monitor.store.proxylog import write_proxy_requests
from probes.result import ErrorKind, ProbeResult, Status
from tests.conftest import until
from tests.monitor.status_server import DEEP, GOOD, OVERFLOW
from tests.monitor.test_service import _config


@contextlib.asynccontextmanager
async def _running(config, engine, **kwargs):
    service = MonitorService(config=config, engine=engine, **{"housekeeping_interval": 0.1, "seed": 5, **kwargs})
    stop = asyncio.Event()
    task = asyncio.create_task(service.run(stop))
    try:
        await asyncio.wait_for(service.started.wait(), 10)
        yield service, task
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


def _page_config(emulator, status_page: str):
    return parse_config(f"""
defaults: {{interval: 5s}}
targets:
  - provider: openai
    base_url: {emulator.url}/openai/v1
    status_page: {status_page}
""", environ={})


def _indicators(engine) -> list[str]:
    with Session(engine) as session:
        return [s.indicator for s in session.exec(select(StatusSnapshot).order_by(StatusSnapshot.id))]


def _said(caplog, text: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if text in r.getMessage()]


# --- the status loop -----------------------------------------------------------------------------


async def test_odd_status_page_bodies_do_not_stop_the_polling(emulator, page, tmp_path):
    """A time past datetime.max once converted to UTC (OverflowError before), JSON nested past the
    decoder's limit (RecursionError before), garbage: each is read or is an error, and the page
    is polled on until its good body is read."""
    url = page.serve("odd", OVERFLOW, DEEP, b"\x00garbage", GOOD)
    engine = make_engine(f"sqlite:///{tmp_path / 'airisk.db'}")
    async with _running(_page_config(emulator, url), engine, status_interval=0.1) as (_, task):
        await until(lambda: "major" in _indicators(engine), 15, "the good body read after the odd ones")
        assert not task.done()
    assert _indicators(engine)[:2] == ["minor", "major"]  # the two that are summaries; the others are errors
    assert page.served["odd"] >= 4
    engine.dispose()


async def test_an_unforeseen_error_in_the_status_loop_is_said_once_and_the_loop_goes_on(emulator, page, tmp_path,
                                                                                         monkeypatch, caplog):
    url = page.serve("good", GOOD)
    engine = make_engine(f"sqlite:///{tmp_path / 'airisk.db'}")
    config = _page_config(emulator, url)
    failures = []

    def broken(self, statuses):
        failures.append(statuses)
        raise OverflowError("date value out of range")

    monkeypatch.setattr(MonitorService, "_record_vendor", broken)
    async with _running(config, engine, status_interval=0.05) as (_, task):
        await until(lambda: len(failures) >= 5, 15, "five polls, each failing to record")
        assert not task.done()
    said = _said(caplog, "status pages not recorded")
    assert len(said) == 1 and said[0].levelno == logging.ERROR  # at once, then at most every 30 s
    assert "OverflowError: date value out of range" in said[0].getMessage()
    engine.dispose()


async def test_a_page_the_fetch_did_not_foresee_costs_only_its_own_snapshot(emulator, page, tmp_path, monkeypatch,
                                                                             caplog):
    import monitor.service as service_module

    real = service_module.fetch_status
    tries = []

    async def fetch_status(client, url, *, provider=None):
        if provider == "anthropic":
            tries.append(url)
            raise RecursionError("maximum recursion depth exceeded")
        return await real(client, url, provider=provider)

    monkeypatch.setattr(service_module, "fetch_status", fetch_status)
    config = parse_config(f"""
defaults: {{interval: 5s}}
targets:
  - {{provider: openai, base_url: {emulator.url}/openai/v1, status_page: {page.serve("good", GOOD)}}}
  - {{provider: anthropic, base_url: {emulator.url}/anthropic/v1, status_page: {page.url}/other}}
""", environ={})
    engine = make_engine(f"sqlite:///{tmp_path / 'airisk.db'}")
    async with _running(config, engine, status_interval=0.05):
        await until(lambda: len(tries) >= 5 and len(_indicators(engine)) >= 5, 15, "five polls of both pages")
    with Session(engine) as session:
        assert {s.provider for s in session.exec(select(StatusSnapshot))} == {"openai"}
    [said] = _said(caplog, "status page of anthropic")
    assert "unexpected RecursionError" in said.getMessage()
    engine.dispose()


# --- the housekeeping loop -----------------------------------------------------------------------


async def test_alert_rules_failing_on_one_target_hold_up_no_other_alert(emulator, receiver, tmp_path, monkeypatch,
                                                                        caplog):
    import monitor.service as service_module

    real = service_module.events_for

    def events_for(transitions, **kwargs):
        if any(t.target == "openai" for t in transitions):
            raise OverflowError("date value out of range")
        return real(transitions, **kwargs)

    monkeypatch.setattr(service_module, "events_for", events_for)
    monkeypatch.setenv("ONCALL_HOOK", receiver.url + "/hook")
    engine = make_engine(f"sqlite:///{tmp_path / 'airisk.db'}")
    emulator.emu.faults.add(Fault.from_dict({"type": "overloaded"}))  # both targets go down together
    async with _running(_config(emulator, hook_env="ONCALL_HOOK"), engine, status_interval=3600):
        [down] = await receiver.wait_for(1, "/hook", within=15)
        await until(lambda: _said(caplog, "not queued"), 15, "the alert that failed said so")
        emulator.emu.faults.clear()
        alerts = await receiver.wait_for(2, "/hook", within=15)  # the loop still queues
    assert "anthropic" in str(down.body) and "recovered" in str(alerts[1].body).lower()
    assert not [r for r in receiver.requests if "openai" in str(r.body)]
    dropped = {r.getMessage().split(" at ")[0] for r in _said(caplog, "not queued")}
    assert dropped == {"alert for openai up -> down", "alert for openai down -> up"}  # each said, loudly
    engine.dispose()


async def test_housekeeping_goes_on_after_an_unexpected_error_and_says_so_once(emulator, receiver, tmp_path,
                                                                               monkeypatch, caplog):
    """Reminders fail on every housekeeping tick (a bug): the pages still go out, and the log says
    so once, not ten times a second."""
    import monitor.service as service_module

    calls = []

    def reminders(*args, **kwargs):
        calls.append(1)
        raise OverflowError("date value out of range")

    monkeypatch.setattr(service_module, "reminders", reminders)
    monkeypatch.setenv("ONCALL_HOOK", receiver.url + "/hook")
    config = _config(emulator, hook_env="ONCALL_HOOK").model_copy(deep=True)
    config.alerts.reminder_every = 60.0
    engine = make_engine(f"sqlite:///{tmp_path / 'airisk.db'}")
    async with _running(config, engine, status_interval=3600, reminder_check=0.1) as (_, task):
        await until(lambda: len(calls) >= 5, 15, "reminders tried on five ticks")
        emulator.emu.faults.add(Fault.from_dict({"type": "overloaded", "route": "anthropic"}))
        [down] = await receiver.wait_for(1, "/hook", within=15)
        assert not task.done()
    assert "anthropic" in str(down.body)
    said = _said(caplog, "housekeeping failed")
    assert len(said) == 1 and "OverflowError" in said[0].getMessage()
    engine.dispose()


# --- every result reaches the detector -----------------------------------------------------------


async def test_negative_token_counts_still_reach_the_detector_and_the_store(emulator, tmp_path, monkeypatch, caplog):
    """A provider reporting negative token counts gives a negative cost, which a Prometheus
    Counter refuses: the result must still be stored and detected (it used to stop at the metrics)."""
    import monitor.schedule as schedule

    async def probe(target, *, client, **kwargs):
        return ProbeResult(target=target.name, provider=target.provider, model=target.model, at=datetime.now(UTC),
                           status=Status.DOWN, error_kind=ErrorKind.SERVER_ERROR, http_status=500, total_ms=12.0,
                           input_tokens=-3, output_tokens=-7, cost_usd=-0.002)

    monkeypatch.setattr(schedule, "probe", probe)
    engine = make_engine(f"sqlite:///{tmp_path / 'airisk.db'}")
    config = _config(emulator, hook_env="UNUSED", interval="0.2s")
    async with _running(config, engine, status_interval=3600) as (service, _):
        await until(lambda: all(d.state is Status.DOWN for d in service.detectors.values()), 15,
                    "both targets detected down")
        await until(lambda: service.writer.written >= 4, 15, "the results stored")
        scrape = {(s.name, s.labels.get("target"), s.labels.get("state")): s.value
                  for family in service.metrics.registry.collect() for s in family.samples}
    assert scrape[("airisk_target_state", "openai", "down")] == 1
    assert scrape[("airisk_probes_total", "openai", None)] >= 2  # counted, the impossible figures left out
    assert scrape.get(("airisk_probe_cost_usd_total", "openai", None), 0) == 0
    with Session(engine) as session:
        rows = session.exec(select(ProbeRow)).all()
        incidents = {i.target for i in session.exec(select(IncidentRow))}
    assert incidents == {"openai", "anthropic"}
    assert any(r.output_tokens == -7 for r in rows)  # stored as reported (coercing them is the probe's job)
    assert not _said(caplog, "handling a result")  # the scheduler's last-resort handler never ran
    engine.dispose()


# --- retention of the proxy's request log --------------------------------------------------------


@pytest.mark.parametrize(("storage", "kept"), [
    ("{raw_days: 3}", [1, 2]),  # with the raw results
    ("{raw_days: 3, proxy_days: 30}", [1, 2, 5]),  # its own retention, when the config gives one
])
def test_housekeeping_prunes_the_proxy_request_log(emulator, tmp_path, storage, kept):
    config = _config(emulator, hook_env="UNUSED", extra=f"storage: {storage}\n")
    engine = make_engine(f"sqlite:///{tmp_path / 'airisk.db'}")
    migrate(engine)
    now = datetime.now(UTC)
    with Session(engine) as session:
        entries = [{"at": (now - timedelta(days=age)).timestamp(), "route": "openai", "status": 200}
                   for age in (1, 2, 5, 40)]
        write_proxy_requests(session=session, entries=entries, source="test")
        session.commit()
    MonitorService(config=config, engine=engine)._prune(now)
    with Session(engine) as session:
        assert sorted((now - r.at).days for r in session.exec(select(ProxyRequestRow))) == kept
    engine.dispose()
