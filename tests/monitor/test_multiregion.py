"""Several `airisk monitor --region R` processes on one PostgreSQL: one voice.

Real processes, a real PostgreSQL schema of their own, emulated providers on loopback (the same
server `airisk emulate` runs) and a loopback receiver for the alerts: an outage every region sees
is one global incident and one page per channel; an outage one region sees is a regional incident
that pages no one under the default rules; a monitor killed is one vantage_lost alert, and an
outage after it still pages once, with the survivors as the quorum.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import sqlalchemy as sa
from sqlmodel import Session, select

from chaos.emulator import Emulator, Profile, bound_port, serve
from chaos.faults import Fault
from monitor.store.models import IncidentRow, ProbeRow, VantageRow
from tests.conftest import FAST, until
from tests.monitor.conftest import pg_schema


def _config(path: Path, provider_url: str, *, quorum: int | str, regional_rule: bool = False,
            group_window: str = "0.2s") -> Path:
    """One target probed every 0.5 s, DOWN after two failures, heartbeats every 0.5 s (lost after 4 s);
    pages to two channels (a webhook and Slack), vantage_lost to the first."""
    regional = "    - {rule: down, channels: [ops], regional: true}\n" if regional_rule else ""
    ops = "    - {name: ops, type: webhook, url_env: OPS_HOOK}\n" if regional_rule else ""
    path.write_text(f"""
defaults:
  interval: 0.5s
  deadlines: {{connect: 2s, first_token: 2s, total: 4s, stall: 1s}}
targets:
  - provider: openai
    base_url: {provider_url}/openai/v1
detection: {{failure_threshold: 2, success_threshold: 2, confirm_after: [0.1s], quorum: {quorum},
             heartbeat_timeout: 4s}}
alerts:
  group_window: {group_window}
  reminder_every: null
  heartbeat_every: 0.5s
  channels:
    - {{name: oncall, type: webhook, url_env: ONCALL_HOOK}}
    - {{name: team, type: slack, url_env: TEAM_HOOK}}
{ops}  rules:
    - {{rule: down, channels: [oncall, team]}}
    - {{rule: recovered, channels: [oncall, team]}}
    - {{rule: vantage_lost, channels: [oncall]}}
{regional}""")
    return path


class Cluster:
    """Monitor processes, one per region, on one PostgreSQL schema."""

    def __init__(self, db, tmp: Path, receiver) -> None:
        self.db = db
        self.tmp = tmp
        self.engine = db.engine()
        options = db.connect_args["options"].replace("=", "%3D")
        self.env = {**os.environ, "AIRISK_HOME": str(tmp), "AIRISK_DATABASE_URL": f"{db.url}?options={options}",
                    "ONCALL_HOOK": receiver.url + "/oncall", "TEAM_HOOK": receiver.url + "/slack/team",
                    "OPS_HOOK": receiver.url + "/ops"}
        self.procs: dict[str, subprocess.Popen] = {}

    def start(self, region: str, config: Path) -> None:
        log = (self.tmp / f"{region}.log").open("a")
        self.procs[region] = subprocess.Popen(
            [sys.executable, "-m", "airisk.cli", "monitor", "--config", str(config), "--region", region,
             "--metrics-port", "0"], env=self.env, stdout=subprocess.DEVNULL, stderr=log)
        log.close()

    def log(self, region: str) -> str:
        return (self.tmp / f"{region}.log").read_text()

    def probing(self, regions) -> bool:
        """Every region has written its heartbeat and a probe result."""
        with Session(self.engine) as session:
            beats = set(session.exec(select(VantageRow.region)))
            probed = set(session.exec(select(ProbeRow.region).distinct()))
        return set(regions) <= beats & probed

    def incidents(self, scope: str) -> list[IncidentRow]:
        with Session(self.engine) as session:
            return list(session.exec(select(IncidentRow).where(IncidentRow.scope == scope).order_by(IncidentRow.id)))

    def outbox(self) -> list[tuple[str, str]]:
        with Session(self.engine) as session:
            return [(r.channel, r.rule) for r in session.exec(sa.text("SELECT channel, rule FROM alert_outbox"))]

    async def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                await asyncio.to_thread(proc.wait, 20)
            except subprocess.TimeoutExpired:
                proc.kill()
                await asyncio.to_thread(proc.wait, 5)


@asynccontextmanager
async def cluster(tmp: Path, receiver) -> AsyncIterator[Cluster]:
    with pg_schema() as db:
        c = Cluster(db, tmp, receiver)
        try:
            yield c
        finally:
            await c.stop()


@asynccontextmanager
async def another_emulator() -> AsyncIterator[Emulator]:
    """A second provider endpoint, so one region alone can be given an outage."""
    emu = Emulator(seed=8, profile=Profile(**{k: getattr(FAST, k) for k in FAST.__dataclass_fields__}))
    runner = await serve(emu, port=0)
    emu.url = f"http://127.0.0.1:{bound_port(runner)}"  # type: ignore[attr-defined]
    try:
        yield emu
    finally:
        emu.reset()
        await runner.cleanup()


def _paths(receiver) -> list[str]:
    return [r.path for r in receiver.accepted("/")]


async def test_an_outage_every_region_sees_is_one_incident_and_one_page_per_channel(emulator, receiver, tmp_path):
    config = _config(tmp_path / "airisk.yaml", emulator.url, quorum=2)
    async with cluster(tmp_path, receiver) as c:
        for region in ("eu", "us"):
            c.start(region, config)
        await until(lambda: c.probing(["eu", "us"]), 30, "both monitors probing")
        emulator.emu.faults.add(Fault.from_dict({"type": "overloaded", "route": "openai"}))
        await receiver.wait_for(1, "/oncall", within=20)
        await receiver.wait_for(1, "/slack/team", within=10)
        await until(lambda: [sorted(i.regions) for i in c.incidents("global")] == [["eu", "us"]], 15,
                    "both regions on the one global incident")
        emulator.emu.faults.clear()
        await receiver.wait_for(2, "/oncall", within=20)
        await receiver.wait_for(2, "/slack/team", within=10)
        await asyncio.sleep(1.5)  # time for a duplicate to show up, if any monitor sent one
        [whole] = c.incidents("global")
        regional = c.incidents("regional")
        await c.stop()
        logs = {region: c.log(region) for region in ("eu", "us")}
    oncall = [r.body for r in receiver.accepted("/oncall")]
    assert sorted(_paths(receiver)) == ["/oncall", "/oncall", "/slack/team", "/slack/team"], _paths(receiver)
    assert [b["rule"] for b in oncall] == ["down", "recovered"]
    assert all(f"airisk-incident-{whole.id}" == b["dedup_key"] for b in oncall)  # the global incident's
    assert whole.closed_at is not None and whole.state == "down"
    assert sorted(i.region for i in regional) == ["eu", "us"] and all(i.closed_at for i in regional)
    # The monitor whose commit opened the global incident said so; the other one did not open it.
    opened = [r for r, text in logs.items() if f"global incident {whole.id} of openai opened" in text]
    assert len(opened) == 1, logs
    assert all("openai@" in text and "-> down" in text for text in logs.values())  # each logs its state change


async def test_an_outage_one_region_sees_is_regional_and_pages_only_regional_rules(emulator, receiver, tmp_path):
    async with another_emulator() as other, cluster(tmp_path, receiver) as c:
        c.start("eu", _config(tmp_path / "eu.yaml", emulator.url, quorum="majority", regional_rule=True))
        c.start("us", _config(tmp_path / "us.yaml", other.url, quorum="majority", regional_rule=True))
        await until(lambda: c.probing(["eu", "us"]), 30, "both monitors probing")
        emulator.emu.faults.add(Fault.from_dict({"type": "overloaded", "route": "openai"}))  # eu's endpoint only
        await until(lambda: [i.region for i in c.incidents("regional")] == ["eu"], 20, "eu's regional incident")
        await receiver.wait_for(1, "/ops", within=10)  # the rule with regional: true
        await asyncio.sleep(3)  # a page to the default rules' channels, were there one, would be out by now
        assert c.incidents("global") == []
        assert _paths(receiver) == ["/ops"]
        assert "openai@eu is DOWN" in receiver.accepted("/ops")[0].body["title"]
        assert c.outbox() == [("ops", "down")]


async def test_a_monitor_killed_is_one_vantage_lost_alert_and_the_survivors_still_page_once(emulator, receiver,
                                                                                             tmp_path):
    # quorum 3 of 3: with one monitor dead, the two left must be enough (capped at the alive regions),
    # or a dead monitor would silence every outage after it.
    config = _config(tmp_path / "airisk.yaml", emulator.url, quorum=3)
    async with cluster(tmp_path, receiver) as c:
        for region in ("eu", "us", "ap"):
            c.start(region, config)
        await until(lambda: c.probing(["eu", "us", "ap"]), 40, "three monitors probing")
        c.procs["ap"].send_signal(signal.SIGKILL)
        await asyncio.to_thread(c.procs["ap"].wait, 10)
        [lost] = await receiver.wait_for(1, "/oncall", within=20)
        assert lost.body["rule"] == "vantage_lost" and "vantage point ap lost" in lost.body["title"]
        emulator.emu.faults.add(Fault.from_dict({"type": "overloaded", "route": "openai"}))
        await receiver.wait_for(2, "/oncall", within=20)
        await receiver.wait_for(1, "/slack/team", within=10)
        await asyncio.sleep(1.5)  # time for a duplicate to show up
        [whole] = c.incidents("global")
        assert sorted(whole.regions) == ["eu", "us"]
        # ap comes back during the outage: one "back" alert, no second page for the outage it joins
        c.start("ap", config)
        await receiver.wait_for(3, "/oncall", within=30)
        await until(lambda: sorted(c.incidents("global")[0].regions) == ["ap", "eu", "us"], 20, "ap joins")
        await asyncio.sleep(1.5)
        assert [i.closed_at for i in c.incidents("global")] == [None]  # ap's return broke no quorum
    oncall = [(r.body["rule"], r.body["title"]) for r in receiver.accepted("/oncall")]
    assert [rule for rule, _ in oncall] == ["vantage_lost", "down", "vantage_lost"], oncall
    assert "vantage point ap is back" in oncall[2][1]
    assert len(receiver.accepted("/slack/team")) == 1


async def test_the_opener_killed_before_its_page_went_out_is_made_up_for_by_a_survivor(emulator, receiver, tmp_path):
    """The monitor whose commit opened the global incident holds the page for its group window (4 s
    here) and is killed within it: the survivor, finding the incident open and named by no alert,
    pages it once."""
    config = _config(tmp_path / "airisk.yaml", emulator.url, quorum=1, group_window="4s")
    async with cluster(tmp_path, receiver) as c:
        for region in ("eu", "us"):
            c.start(region, config)
        await until(lambda: c.probing(["eu", "us"]), 30, "both monitors probing")
        emulator.emu.faults.add(Fault.from_dict({"type": "overloaded", "route": "openai"}))
        await until(lambda: bool(c.incidents("global")), 20, "the global incident")
        [whole] = c.incidents("global")
        said = f"global incident {whole.id} of openai opened"
        await until(lambda: any(said in c.log(r) for r in ("eu", "us")), 5, "its opener's log line")
        [opener] = [r for r in ("eu", "us") if said in c.log(r)]
        c.procs[opener].send_signal(signal.SIGKILL)
        await asyncio.to_thread(c.procs[opener].wait, 10)
        assert c.outbox() == []  # killed within the group window: its page never reached the outbox
        survivor = "us" if opener == "eu" else "eu"
        await until(lambda: [b["rule"] for b in _bodies(receiver, "/oncall")].count("down") == 1, 30,
                    "the survivor's page")
        await asyncio.sleep(1.5)
        assert "was never announced" in c.log(survivor)
    downs = [b for b in _bodies(receiver, "/oncall") if b["rule"] == "down"]
    assert len(downs) == 1 and downs[0]["dedup_key"] == f"airisk-incident-{whole.id}"
    assert len(receiver.accepted("/slack/team")) == 1


def _bodies(receiver, prefix: str) -> list[dict]:
    return [r.body for r in receiver.accepted(prefix)]
