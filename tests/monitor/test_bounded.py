"""What a long-running monitor keeps stays within its bound (issue 13, the soak: bench/soak.py,
diagnosed with bench/soak_trace.py)."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlmodel import Session, select

from chaos.faults import Fault
from monitor import schedule
from monitor.config import parse_config
from monitor.schedule import Scheduler, Watch
from monitor.service import MonitorService
from monitor.store import make_engine
from monitor.store.models import IncidentRow, ProbeRow
from probes import make_client
from probes.result import ErrorKind, ProbeResult, Status
from tests.conftest import until


def _config(emulator, hook_env: str):
    targets = "\n".join(
        f"  - {{name: {provider}-{i}, provider: {provider}, base_url: {emulator.url}/{provider}/v1,"
        f" status_page: {emulator.url}/status/{provider}}}"
        for provider in ("openai", "anthropic") for i in range(4))
    return parse_config(f"""
defaults:
  interval: 0.3s
  deadlines: {{connect: 2s, first_token: 2s, total: 5s, stall: 1s}}
targets:
{targets}
detection: {{failure_threshold: 2, success_threshold: 2, confirm_after: [0.1s]}}
alerts:
  group_window: 0.2s
  reminder_every: null
  channels:
    - {{name: oncall, type: webhook, url_env: {hook_env}}}
  rules:
    - {{rule: down, channels: [oncall]}}
    - {{rule: recovered, channels: [oncall]}}
""", environ={})


async def test_the_monitor_keeps_one_database_connection_on_one_thread(emulator, receiver, tmp_path, monkeypatch):
    """Every part of the monitor that reaches the database (the result writer, incidents, alert
    queueing, status snapshots, the dispatcher) does so from one thread, so the pool opens one
    connection. Spread over asyncio's default pool (up to six threads) the soak's monitor held five
    SQLite connections, each with its own page cache and prepared statements (each cache emptied
    whenever another connection wrote), allocated across six threads' malloc arenas, whose RSS grew
    ~0.2 MiB a minute for as long as it ran (monitor/service.py). Statements are slowed here so
    that the parts overlap, as they do under load."""
    monkeypatch.setenv("ONCALL_HOOK", receiver.url + "/hook")
    engine = make_engine(f"sqlite:///{tmp_path / 'airisk.db'}")
    threads: set[str] = set()
    opened = []

    def slow(*_args) -> None:
        threads.add(threading.current_thread().name)
        time.sleep(0.01)

    sa.event.listen(engine, "connect", lambda *_: opened.append(threading.current_thread().name))
    sa.event.listen(engine, "before_cursor_execute", slow)
    service = MonitorService(config=_config(emulator, "ONCALL_HOOK"), engine=engine, status_interval=0.2,
                             housekeeping_interval=0.05, seed=3)
    stop = asyncio.Event()
    task = asyncio.create_task(service.run(stop))
    try:
        await asyncio.wait_for(service.started.wait(), 20)
        emulator.emu.faults.add(Fault.from_dict({"type": "overloaded", "route": "anthropic"}))
        await receiver.wait_for(1, "/hook", within=20)  # incidents opened, alerts queued and delivered
        emulator.emu.faults.clear()
        await receiver.wait_for(2, "/hook", within=20)
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
    sa.event.remove(engine, "before_cursor_execute", slow)
    opened = list(opened)
    with Session(engine) as session:
        assert session.exec(select(sa.func.count()).select_from(ProbeRow)).one() > 20
        assert session.exec(select(IncidentRow)).all()
    assert len(threads) == 1, sorted(threads)
    assert opened == [next(iter(threads))], opened  # one connection, opened there
    engine.dispose()


async def test_scheduling_delays_kept_fill_within_minutes(monkeypatch, emulator, client):
    """A target keeps its last `DELAYS_KEPT` scheduling delays (for benches and tests): 20 is a
    bench's sample and fills within the soak's 5-minute warm-up (200 targets probed every 10 s). At
    100 a target, the soak's monitor was still filling them at 13 minutes, 0.6 MiB for 200 targets."""

    async def quick_probe(target, client, **_):
        return ProbeResult(target=target.name, provider="openai", model="m", at=datetime.now(UTC),
                           status=Status.UP, error_kind=ErrorKind.OK, total_ms=1.0)

    monkeypatch.setattr(schedule, "probe", quick_probe)

    async def handle(watch, result, confirm, sibling):
        return None

    scheduler = Scheduler(watches=[Watch(emulator.target("openai"), 10.0)], client=client, handle=handle)
    for _ in range(300):
        await scheduler._run("openai", False, datetime.now(UTC))
    watch = scheduler.watches["openai"]
    assert len(watch.delays_ms) == schedule.DELAYS_KEPT <= 20
    # The soak: 200 targets every 10 s fill theirs in 200 s, within the 5-minute warm-up.
    assert schedule.DELAYS_KEPT * 10 <= 5 * 60


async def test_connections_left_idle_by_a_burst_are_closed_once_they_expire():
    """The probes' pool hands out its most recently used connection first, so after a burst (a hang
    fault holds many probes at once) the burst's other connections sat under the warm one, never
    taken again until as many requests came at once, never closed (the server's side long gone):
    the open sockets followed the largest burst so far. Past ``keepalive_expiry`` they are closed."""
    opened = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        opened.append(writer)
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            while True:
                await reader.readuntil(b"\r\n\r\n")
                await asyncio.sleep(0.05)  # a burst of requests needs a connection each
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/"
    client = make_client(keepalive_expiry=0.3)
    pool = client._transport._pool
    try:
        await asyncio.gather(*(client.get(url) for _ in range(12)))
        assert sum(len(idle) for idle in pool._idle.values()) == 12
        for _ in range(8):  # one request at a time from now on, for longer than the expiry
            assert (await client.get(url)).text == "ok"
            await asyncio.sleep(0.1)
        assert sum(len(idle) for idle in pool._idle.values()) == 1  # 12 before
        assert len(opened) == 12  # and the warm one served them all
        await until(lambda: sum(not w.is_closing() for w in opened) == 1, 5, "the expired ones closed")
    finally:
        await client.aclose()
        await until(lambda: all(w.is_closing() for w in opened), 5, "the server's side closed too")
        server.close()
        await server.wait_closed()
