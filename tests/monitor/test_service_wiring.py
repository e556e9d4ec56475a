"""What the running `MonitorService` wires in beside detection: each feature's SLO checked at its burn rates
(monitor/alerts/burn.py) and the providers' model listings watched (monitor/lifecycle.py), each through to a
real webhook receiver on loopback. (The impact in a page is checked end to end, through a real `airisk monitor`
process, in tests/airisk/test_monitor_logging.py.)"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import httpx
from sqlmodel import Session

from monitor.service import MonitorService
from monitor.store import make_engine, migrate
from tests.monitor.test_risk import _probes
from tests.monitor.test_service import _config


async def _until_posted(receiver, match, within: float = 20):
    async with asyncio.timeout(within):
        while not (found := [r for r in receiver.accepted("/hook") if match(r.body)]):
            receiver.changed.clear()
            await receiver.changed.wait()
    return found


async def _running(service: MonitorService, receiver, match):
    stop = asyncio.Event()
    task = asyncio.create_task(service.run(stop))
    try:
        return await _until_posted(receiver, match)
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


async def test_a_feature_burning_its_error_budget_pages_from_the_running_monitor(emulator, receiver, tmp_path,
                                                                                  monkeypatch):
    monkeypatch.setenv("ONCALL_HOOK", receiver.url + "/hook")
    config = _config(emulator, hook_env="ONCALL_HOOK", rules="    - {rule: feature_slo, channels: [oncall]}\n",
                     extra="features:\n  chat: {criticality: critical, slo: {objective: 0.999},"
                           " chain: [{backend: openai}]}\n")
    engine = make_engine(f"sqlite:///{tmp_path / 'airisk.db'}")
    migrate(engine)
    # The last 70 minutes of history: an hour up, then 10 minutes down (a 14.4x burn over 1 h and 5 min).
    start = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=70)
    with Session(engine) as session:
        _probes(session, "openai", [("up", 200, 600)] * 60 + [("down", None, 50)] * 10, start=start, region="")
    service = MonitorService(config=config, engine=engine, housekeeping_interval=0.1, slo_interval=0.3,
                             status_interval=60)
    [page] = await _running(service, receiver, lambda body: body.get("rule") == "feature_slo")
    assert (page.body["action"], page.body["severity"], page.body["dedup_key"]) == (
        "trigger", "critical", "airisk-slo-chat-page")
    assert page.body["title"].startswith("chat (critical) is burning its error budget")
    engine.dispose()


async def test_a_model_gone_from_its_listing_is_announced_by_the_running_monitor(emulator, receiver, tmp_path,
                                                                                 monkeypatch):
    monkeypatch.setenv("ONCALL_HOOK", receiver.url + "/hook")
    config = _config(emulator, hook_env="ONCALL_HOOK", rules="    - {rule: model_lifecycle, channels: [oncall]}\n")
    model = config.resolve_schedule()[0][0].model
    async with httpx.AsyncClient() as c:  # the first target's model, taken off its provider's listing
        route = config.resolve_schedule()[0][0].provider
        # (another model stays listed: an empty listing is taken for a broken one, and judges nothing missing)
        for body in ({"model": "another-model", "listed": True}, {"model": model, "listed": False}):
            answer = await c.put(f"{emulator.url}/_airisk/models/{route}", json=body)
            assert answer.status_code == 200, answer.text
    engine = make_engine(f"sqlite:///{tmp_path / 'airisk.db'}")
    service = MonitorService(config=config, engine=engine, housekeeping_interval=0.1, status_interval=60)
    [notice] = await _running(service, receiver, lambda body: body.get("rule") == "model_lifecycle")
    assert notice.body["action"] == "trigger" and model in notice.body["title"], notice.body
    engine.dispose()
