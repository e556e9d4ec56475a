"""The monitor hands freed memory back to the OS, and keeps SQLite's page cache small: a monitor that
runs for months is watched by its RSS (docs/BENCHMARKS.md, "Soak")."""

from __future__ import annotations

import asyncio
import ctypes
import platform
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from monitor import memory
from monitor.store import make_engine
from monitor.store.db import MONITOR_SQLITE_CACHE_KIB
from tests.conftest import until
from tests.monitor.test_service_resilience import _page_config, _running

GLIBC = platform.libc_ver()[0] == "glibc"


def _rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS in /proc/self/status")


@pytest.mark.skipif(not GLIBC, reason="malloc_trim is glibc's; elsewhere release_freed_memory does nothing")
def test_freed_memory_held_by_malloc_goes_back_to_the_os():
    """Freed chunks with live ones between them cannot be trimmed from the heap's top, which is what
    glibc does on its own; malloc_trim(0) releases their pages. 64 MiB freed must show in RSS."""
    assert memory.can_release()
    memory.release_freed_memory()  # start from a trimmed heap
    blocks = [ctypes.create_string_buffer(16_000) for _ in range(8_000)]  # ~128 MiB from malloc's heap
    for block in blocks:
        ctypes.memset(block, 1, 16_000)  # touched: resident
    del blocks[::2]  # every other one freed: 16 KB holes (3 whole pages each) no top-of-heap trim reaches
    before = _rss_kib()
    assert memory.release_freed_memory()
    after = _rss_kib()
    assert before - after > 32 * 1024, f"RSS {before} KiB -> {after} KiB"
    del blocks


def test_without_malloc_trim_nothing_is_released_and_nothing_raises(monkeypatch):
    """Where the C library has no malloc_trim (musl, macOS), as if here: release says False, never raises."""
    monkeypatch.setattr(memory, "_malloc_trim", lambda: None)
    assert memory.release_freed_memory() is False
    assert memory.can_release() is False


def test_the_monitors_sqlite_connections_keep_a_small_page_cache(tmp_path):
    def cache(engine) -> int:
        with engine.connect() as conn:
            return conn.execute(sa.text("PRAGMA cache_size")).scalar_one()

    monitor = make_engine(f"sqlite:///{tmp_path / 'a.db'}", sqlite_cache_kib=MONITOR_SQLITE_CACHE_KIB)
    other = make_engine(f"sqlite:///{tmp_path / 'a.db'}")
    assert cache(monitor) == -MONITOR_SQLITE_CACHE_KIB  # negative: KiB
    assert cache(other) == -2000  # SQLite's default, for the dashboard and the CLI
    with monitor.connect() as conn:  # the other pragmas still apply
        assert conn.execute(sa.text("PRAGMA journal_mode")).scalar_one() == "wal"
    monitor.dispose()
    other.dispose()


@pytest.mark.parametrize("every", [0.3, 3600.0])
async def test_housekeeping_releases_freed_memory_on_its_period(emulator, tmp_path, monkeypatch, every):
    """At start, then once a period: with an hour's period, one call in a second of 0.1 s ticks."""
    import monitor.service as service_module

    calls = []
    monkeypatch.setattr(service_module, "release_freed_memory", lambda: calls.append(1) or True)
    engine = make_engine(f"sqlite:///{tmp_path / 'airisk.db'}")
    config = _page_config(emulator, f"{emulator.url}/status/openai")
    async with _running(config, engine, status_interval=3600, release_memory_every=timedelta(seconds=every)) as (
            _, task):
        if every < 1:
            await until(lambda: len(calls) >= 3, 15, "memory released on three periods")
        else:
            await asyncio.sleep(1.0)  # ten housekeeping ticks
            assert calls == [1]
        assert not task.done()
    engine.dispose()
