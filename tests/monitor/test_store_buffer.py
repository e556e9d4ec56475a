"""The buffered writer: the probing loop never waits, and no result is lost while the database is away."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session

from monitor.store import ResultWriter, make_engine, migrate
from monitor.store.models import ProbeRow, RollupMinute
from monitor.store.spill import encode
from tests.conftest import until
from tests.monitor.conftest import T0, make_result

FAST = {"flush_interval": 0.05, "backoff_initial": 0.05, "backoff_max": 0.3}


def _results(n: int, start: int = 0, target: str = "openai"):
    return [make_result(target, T0 + timedelta(seconds=i), "down" if i % 10 == 0 else "up")
            for i in range(start, start + n)]


def _count(engine: Engine, model=ProbeRow) -> int:
    with Session(engine) as s:
        if model is RollupMinute:
            return s.exec(sa.select(sa.func.coalesce(sa.func.sum(RollupMinute.count), 0))).scalar()
        return s.exec(sa.select(sa.func.count()).select_from(model)).scalar()


def _files(directory: Path, suffix: str = "") -> list[Path]:
    return [p for p in directory.iterdir() if p.name.endswith(suffix)]


def _distinct_at(engine: Engine) -> int:
    with Session(engine) as s:
        return s.exec(sa.select(sa.func.count(sa.distinct(ProbeRow.at)))).scalar()


@pytest.fixture
def engine(database) -> Engine:
    """A file-backed SQLite (or a PostgreSQL schema): the writer works from a thread, and an
    in-memory SQLite shares one connection between that thread and the test's reads, so a read
    could roll back a batch mid-write - a fault of the fixture, not of the writer."""
    return database.engine()


async def test_everything_submitted_is_written_in_batches(engine: Engine, tmp_path: Path) -> None:
    async with ResultWriter(engine, region="eu", spill_dir=tmp_path, batch_size=50, **FAST) as writer:
        for r in _results(500):
            writer.submit(r)
        writer.submit(make_result(at=T0 + timedelta(hours=1)), confirm=True)
    assert (writer.written, writer.pending, writer.spilled) == (501, 0, 0)
    assert _count(engine) == 501
    assert _count(engine, RollupMinute) == 500  # the confirmation probe is stored, not counted


async def test_a_bad_result_is_set_aside_and_the_rest_written(engine: Engine, tmp_path: Path) -> None:
    async with ResultWriter(engine, spill_dir=tmp_path, **FAST) as writer:
        for r in _results(10):
            writer.submit(r)
        writer.submit(make_result(at=T0.replace(tzinfo=None)))  # naive: refused
        writer.submit("not a result")  # type: ignore[arg-type]
        for r in _results(10, start=10):
            writer.submit(r)
    assert _count(engine) == 20
    (rejected_file,) = _files(tmp_path, ".rejected")
    rejected = rejected_file.read_text()
    assert rejected.count("\n") == 2 and "naive" in rejected


@pytest.fixture
def sqlite_file(tmp_path: Path) -> tuple[Engine, Path]:
    path = tmp_path / "airisk.db"
    engine = make_engine(f"sqlite:///{path}")
    migrate(engine)
    # A short busy timeout so that the lock below makes writes fail (and be retried), rather
    # than just wait.
    sa.event.listen(engine, "connect", lambda conn, _: conn.execute("PRAGMA busy_timeout=100"))
    engine.dispose()
    yield engine, path
    engine.dispose()


async def test_sqlite_locked_by_another_connection(sqlite_file, tmp_path: Path) -> None:
    engine, path = sqlite_file
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")
    try:
        writer = ResultWriter(engine, region="eu", spill_dir=tmp_path / "spill", **FAST)
        began = time.perf_counter()
        for r in _results(300):
            writer.submit(r)
        assert time.perf_counter() - began < 0.5  # submit did not wait for the lock
        await until(lambda: writer.failures >= 3)
        assert "locked" in (writer.last_error or "")
        assert writer.written == 0 and writer.pending == 300
    finally:
        other.execute("ROLLBACK")
        other.close()
    await until(lambda: writer.pending == 0)
    await writer.close()
    assert _count(engine) == 300 and _distinct_at(engine) == 300
    assert writer.failures == 0


async def test_close_while_locked_spills_and_the_next_writer_replays(sqlite_file, tmp_path: Path) -> None:
    engine, path = sqlite_file
    spill = tmp_path / "spill"
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")
    try:
        writer = ResultWriter(engine, spill_dir=spill, **FAST)
        for r in _results(120):
            writer.submit(r)
        await writer.close(grace=0.3)
        writer.submit(make_result(at=T0 + timedelta(hours=2)))  # after close: straight to disk
        assert (writer.spilled, writer.written) == (121, 0)
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert _count(engine) == 0
    async with ResultWriter(engine, spill_dir=spill, **FAST) as again:
        await until(lambda: _count(engine) == 121)
    assert again.written == 121
    assert _files(spill) == []  # replayed files are removed
    assert _distinct_at(engine) == 121


async def test_memory_is_bounded_and_spilled_rows_come_back(sqlite_file, tmp_path: Path) -> None:
    engine, path = sqlite_file
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")
    writer = ResultWriter(engine, spill_dir=tmp_path / "spill", max_memory=100, batch_size=40, **FAST)
    try:
        for r in _results(1000):
            writer.submit(r)
        assert writer.pending == 100 and writer.spilled == 900
    finally:
        other.execute("ROLLBACK")
        other.close()
    await until(lambda: _count(engine) == 1000)
    await writer.close()
    assert _distinct_at(engine) == 1000 and _count(engine, RollupMinute) == 1000


async def test_orphaned_spill_file_of_a_dead_process_is_replayed(engine: Engine, tmp_path: Path) -> None:
    # A monitor that crashed (pid 2**22+1 is above Linux's pid_max) left rows, from region "us".
    lines = "".join(encode(r, confirm=False, region="us") for r in _results(30))
    (tmp_path / "spill-4194305-abc.jsonl").write_text(lines + '{"torn line', encoding="utf-8")
    async with ResultWriter(engine, region="eu", spill_dir=tmp_path, batch_size=7, **FAST) as writer:
        await until(lambda: _count(engine) == 30)
    assert writer.written == 30
    with Session(engine) as s:
        assert set(s.exec(sa.select(ProbeRow.region).distinct()).scalars()) == {"us"}


async def test_postgres_unreachable_then_back_loses_nothing(proxied_pg, tmp_path: Path) -> None:
    via, direct, proxy = proxied_pg
    writer = ResultWriter(via, region="eu", spill_dir=tmp_path, max_memory=150, **FAST)
    writer.start()
    for r in _results(100):
        writer.submit(r)
    await until(lambda: writer.written == 100)
    # The database goes away: pooled connections are reset, new ones refused.
    await proxy.stop()
    for r in _results(300, start=100):
        writer.submit(r)
        await asyncio.sleep(0)
    await until(lambda: writer.failures >= 3)
    assert writer.written == 100 and writer.pending == 150 and writer.spilled == 150
    # It comes back on the same address: the backlog, then the spilled rows, are written.
    await proxy.start()
    await until(lambda: _count(direct) == 400)
    await writer.close()
    assert _distinct_at(direct) == 400
    assert _count(direct, RollupMinute) == 400
    assert writer.failures == 0 and _files(tmp_path) == []
