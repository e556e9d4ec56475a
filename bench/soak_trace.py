"""Soak trace: what the monitor's memory is made of, as bench/soak.py loads it.

The same setup as ``bench/soak.py`` (its config, its emulator as a subprocess, its fault
switcher, here on a thread), but the monitor runs in this process (`monitor.service.MonitorService`
on a SQLite file under a temporary ``AIRISK_HOME``, the engine the CLI makes), under
``tracemalloc`` (25 frames, started once the monitor has started). Every minute it prints RSS,
malloc's bytes in use and free, SQLite's heap, pymalloc's arenas and RSS by kind of mapping; at
each of ``--minutes`` (default 5, 15, 25; the run ends at the last) a snapshot:

- RSS; mallinfo2 (uordblks: in use, fordblks: free in the arenas, summed over every arena);
  SQLite's own heap (``sqlite3_memory_used`` of the libsqlite3 that ``_sqlite3`` links to) and,
  per connection resting in the pool, its page cache, schema and prepared statements
  (``sqlite3_db_status``); pymalloc's arenas against its live blocks; RSS by mapping (glibc's main
  heap, its per-thread arenas, other anonymous maps, libraries);
- the top 20 allocation sites by traceback that grew since the previous snapshot (size, count);
- the object counts by type (``gc.get_objects``) and their change;
- the length of each container that could grow: the scheduler's watches, delays, in-flight set
  and APScheduler jobs, the event loop's timer heap and ready queue, every detector's deques,
  the ResultWriter's pending rows and spill files, the Grouper, held transitions, the metrics'
  label sets, the HTTP pool's idle connections, SQLAlchemy's compiled cache and pool, and
  ``asyncio.all_tasks()``.

Reading it: tracemalloc slows the monitor several times over (on two busy cores it probed a fifth
of the soak's rate, with hundreds of probes queued), so its sites say *what* Python keeps, not how
fast; ``--no-trace`` runs at the soak's rate with everything else, and its malloc and mapping
figures are clean (tracemalloc's own tables live in malloc too). Growth in malloc's free bytes and
in the thread arenas' RSS, with bytes in use flat, is fragmentation, not a leak. The snapshot
itself (gc.get_objects, tracemalloc's snapshot) costs RSS; compare the per-minute lines.

Usage: .venv/bin/python bench/soak_trace.py [--minutes 25 | --minutes 5,15,25] [--no-trace]
       [--targets 200] [--interval 10]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import ctypes
import gc
import linecache
import logging
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from soak import AIRISK, FAULTS, NO_KEY, PROVIDERS, config_text, fault_types, free_port, wait_http  # noqa: E402

FRAMES = 25


# -- process-level figures ------------------------------------------------------------------------

def rss_kib() -> int:
    return int(re.search(r"VmRSS:\s+(\d+)", Path("/proc/self/status").read_text()).group(1))


class _Mallinfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]


def mallinfo2() -> dict[str, int]:
    try:
        libc = ctypes.CDLL("libc.so.6")
        fn = libc.mallinfo2
    except (OSError, AttributeError):
        return {}
    fn.restype = _Mallinfo2
    info = fn()
    return {name: getattr(info, name) for name, _ in _Mallinfo2._fields_}


def sqlite_memory() -> tuple[int, int] | None:
    """(sqlite3_memory_used, sqlite3_memory_highwater) of the library _sqlite3 links to."""
    try:
        lib = ctypes.CDLL("libsqlite3.so.0")
    except OSError:
        return None
    lib.sqlite3_memory_used.restype = ctypes.c_int64
    lib.sqlite3_memory_highwater.restype = ctypes.c_int64
    lib.sqlite3_memory_highwater.argtypes = [ctypes.c_int]
    return lib.sqlite3_memory_used(), lib.sqlite3_memory_highwater(0)


_DBSTATUS = {"cache": 1, "schema": 2, "statements": 3}  # SQLITE_DBSTATUS_CACHE_USED, _SCHEMA_USED, _STMT_USED


def sqlite_connections(engine) -> list[dict[str, int]]:
    """SQLite's memory per connection resting in the engine's pool (sqlite3_db_status). The
    ``sqlite3*`` is read from the pysqlite connection object (CPython 3.11: the field after the
    object header); connections checked out at that moment are not seen."""
    try:
        lib = ctypes.CDLL("libsqlite3.so.0")
    except OSError:
        return []
    fn = lib.sqlite3_db_status
    fn.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.POINTER(ctypes.c_int), ctypes.POINTER(ctypes.c_int),
                   ctypes.c_int]
    out = []
    for record in list(getattr(getattr(engine.pool, "_pool", None), "queue", ())):
        conn = getattr(record, "dbapi_connection", None)
        if conn is None or type(conn).__name__ != "Connection":
            continue
        db = ctypes.c_void_p.from_address(id(conn) + ctypes.sizeof(ctypes.c_ssize_t) * 2).value
        row = {}
        for name, op in _DBSTATUS.items():
            cur, high = ctypes.c_int(), ctypes.c_int()
            if fn(db, op, ctypes.byref(cur), ctypes.byref(high), 0) == 0:
                row[name] = cur.value
        out.append(row)
    return out


def smaps() -> dict[str, int]:
    """Resident KiB by kind of mapping: ``heap`` glibc's main heap, ``arenas`` its per-thread arenas
    (64 MiB aligned anonymous maps), ``anon`` other anonymous maps (pymalloc's 1 MiB arenas, blocks
    malloc mmaps, thread stacks), ``libs`` shared libraries, ``other`` the rest."""
    out: collections.Counter[str] = collections.Counter()
    kind = "other"
    for line in Path("/proc/self/smaps").read_text().splitlines():
        head = re.match(r"^([0-9a-f]+)-[0-9a-f]+ \S+ \S+ \S+ \d+\s*(.*)$", line)
        if head:
            start, name = int(head.group(1), 16), head.group(2).strip()
            if name == "[heap]":
                kind = "heap"
            elif not name:
                kind = "arenas" if start % (64 << 20) == 0 else "anon"
            elif ".so" in name:
                kind = "libs"
            else:
                kind = "other"
        elif line.startswith("Rss:"):
            out[kind] += int(line.split()[1])
    return dict(out)


def pymalloc() -> dict[str, int]:
    """pymalloc's arenas (``sys._debugmallocstats``, which writes to the C stderr): arenas held, bytes
    in live blocks, bytes free in used pools, bytes in unused pools. Arenas held against live bytes
    is pymalloc's fragmentation: an arena goes back to the OS only when all of it is free."""
    with tempfile.TemporaryFile("w+b") as tmp:
        sys.stderr.flush()
        saved = os.dup(2)
        try:
            os.dup2(tmp.fileno(), 2)
            sys._debugmallocstats()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        tmp.seek(0)
        text = tmp.read().decode(errors="replace")
    out = {}
    for key, pattern in (("arenas", r"# arenas allocated current\s*=\s*([\d,]+)"),
                         ("live", r"# bytes in allocated blocks\s*=\s*([\d,]+)"),
                         ("free_in_pools", r"# bytes in available blocks\s*=\s*([\d,]+)"),
                         ("unused_pools", r"\d+ unused pools \* \d+ bytes\s*=\s*([\d,]+)")):
        if m := re.search(pattern, text):
            out[key] = int(m.group(1).replace(",", ""))
    return out


def mib(n: float) -> str:
    return f"{n / 1048576:8.2f} MiB"


# -- containers -----------------------------------------------------------------------------------

def containers(service, client: httpx.AsyncClient, engine) -> dict[str, int]:
    out: dict[str, int] = {}
    loop = asyncio.get_running_loop()
    out["asyncio.all_tasks()"] = len(asyncio.all_tasks())
    out["loop._scheduled (timer heap)"] = len(getattr(loop, "_scheduled", ()))
    out["loop._scheduled cancelled"] = sum(h.cancelled() for h in getattr(loop, "_scheduled", ()))
    out["loop._ready"] = len(getattr(loop, "_ready", ()))
    sch = service.scheduler
    if sch is not None:
        out["scheduler.watches"] = len(sch.watches)
        out["scheduler watch.delays_ms (sum)"] = sum(len(w.delays_ms) for w in sch.watches.values())
        out["scheduler._inflight"] = len(sch._inflight)
        out["scheduler._hedging"] = sch._hedging
        aps = sch._scheduler
        out["apscheduler jobs"] = len(aps.get_jobs())
        for alias, store in getattr(aps, "_jobstores", {}).items():
            out[f"apscheduler jobstore[{alias}]._jobs"] = len(getattr(store, "_jobs", ()))
            out[f"apscheduler jobstore[{alias}]._jobs_index"] = len(getattr(store, "_jobs_index", ()))
        out["apscheduler _pending_jobs"] = len(getattr(aps, "_pending_jobs", ()))
        for alias, ex in getattr(aps, "_executors", {}).items():
            out[f"apscheduler executor[{alias}]._instances"] = sum(getattr(ex, "_instances", {}).values())
            out[f"apscheduler executor[{alias}]._instances keys"] = len(getattr(ex, "_instances", {}))
            out[f"apscheduler executor[{alias}]._pending_futures"] = len(getattr(ex, "_pending_futures", ()))
        out["apscheduler _listeners"] = len(getattr(aps, "_listeners", ()))
    dets = service.detectors.values()
    out["detectors"] = len(service.detectors)
    out["detector._recent (sum)"] = sum(len(d._recent) for d in dets)
    out["detector._window (sum)"] = sum(len(d._window) for d in dets)
    out["detector._state_cause keys (sum)"] = sum(len(d._state_cause) for d in dets)
    w = service.writer
    if w is not None:
        out["writer._pending"] = len(w._pending)
        out["writer.spill.to_replay"] = len(w.spill.to_replay)
        out["writer.spill open file"] = int(w.spill._file is not None)
        out["writer.spilled"] = w.spilled
        out["writer.written"] = w.written
    out["grouper._held"] = len(service.grouper)
    out["service._held"] = len(service._held)
    out["service._page_warnings"] = len(service._page_warnings)
    out["service._burning"] = len(service._burning)
    for attr in ("up", "state", "ttft", "total", "probes", "errors", "cost"):
        metric = getattr(service.metrics, attr)
        out[f"metrics.{attr} label sets"] = len(getattr(metric, "_metrics", {}))
    pool = getattr(client._transport, "_pool", None)
    idle = getattr(pool, "_idle", None)
    if idle is not None:
        out["httpx pool origins"] = len(idle)
        out["httpx pool idle connections"] = sum(len(v) for v in idle.values())
        conns = [c[-1] if isinstance(c, tuple) else c for v in idle.values() for c in v]  # (since, conn)
        out["httpx pool idle expired"] = sum(c.has_expired() for c in conns)
        out["httpx pool slots free"] = pool._slots._value
    cache = getattr(engine, "_compiled_cache", None)
    out["engine._compiled_cache"] = len(cache) if cache is not None else -1
    p = engine.pool
    for name in ("checkedin", "checkedout", "overflow", "size"):
        if hasattr(p, name):
            out[f"engine.pool.{name}()"] = getattr(p, name)()
    # Per-connection statement caches of the SQLAlchemy sqlite dialect live in the DBAPI; pysqlite
    # has its own (cached_statements), not inspectable from Python.
    return out


# -- snapshots ------------------------------------------------------------------------------------

def _frame_text(tb: tracemalloc.Traceback, lines: int = 8) -> str:
    shown = []
    for frame in list(tb)[-lines:]:  # oldest first: the last lines are where it was allocated
        code = linecache.getline(frame.filename, frame.lineno).strip()
        shown.append(f"      {_short(frame.filename)}:{frame.lineno}  {code[:100]}")
    return "\n".join(shown)


def _short(path: str) -> str:
    for marker in ("site-packages/", "/work/main/", "lib/python3.11/"):
        if marker in path:
            return path.split(marker, 1)[1]
    return path


class Tracer:
    def __init__(self) -> None:
        self.snapshot: tracemalloc.Snapshot | None = None
        self.types: collections.Counter[str] | None = None
        self.containers: dict[str, int] | None = None
        self.at: float | None = None

    def take(self, label: str, service, client, engine, started: float) -> None:
        t0 = time.monotonic()
        gc.collect()
        traced, peak = tracemalloc.get_traced_memory()
        snap = tracemalloc.take_snapshot() if tracemalloc.is_tracing() else None
        types = collections.Counter(type(o).__qualname__ for o in gc.get_objects())
        conts = containers(service, client, engine)
        mi = mallinfo2()
        sq = sqlite_memory()
        minutes = (time.monotonic() - started) / 60
        print(f"\n==================== snapshot {label} at {minutes:.1f} min ====================")
        print(f"  RSS {mib(rss_kib() * 1024)}   tracemalloc traced {mib(traced)} (peak {mib(peak)})")
        if mi:
            print(f"  mallinfo2: arena {mib(mi['arena'])}  uordblks (in use) {mib(mi['uordblks'])}  "
                  f"fordblks (free) {mib(mi['fordblks'])}  hblkhd (mmapped) {mib(mi['hblkhd'])}  "
                  f"keepcost {mib(mi['keepcost'])}")
        if sq:
            print(f"  sqlite3_memory_used {mib(sq[0])} (highwater {mib(sq[1])})")
        for i, row in enumerate(sqlite_connections(engine)):
            print(f"    pooled connection {i}: " + "  ".join(f"{k} {v / 1024:.0f} KiB" for k, v in row.items()))
        pm = pymalloc()
        if pm:
            print(f"  pymalloc: {pm.get('arenas', 0)} arenas of 1 MiB, live blocks {mib(pm.get('live', 0))}, "
                  f"free in used pools {mib(pm.get('free_in_pools', 0))}, "
                  f"unused pools {mib(pm.get('unused_pools', 0))}")
        print("  RSS by mapping (MiB): " + "  ".join(f"{k} {v / 1024:.1f}" for k, v in sorted(smaps().items())))
        print(f"  gc objects: {sum(types.values())}   gc counts {gc.get_count()}   garbage {len(gc.garbage)}")

        if snap is None:
            pass
        elif self.snapshot is not None:
            span = (time.monotonic() - self.at) / 60 if self.at else 0
            stats = snap.compare_to(self.snapshot, "traceback")
            growing = [s for s in stats if s.size_diff > 0]
            total = sum(s.size_diff for s in stats)
            print(f"\n  tracemalloc: net {total / 1024:+.1f} KiB over {span:.1f} min since the previous snapshot; "
                  f"top 20 growing sites by traceback:")
            for i, s in enumerate(growing[:20], 1):
                print(f"   #{i}: {s.size_diff / 1024:+.1f} KiB ({s.count_diff:+d} blocks) now "
                      f"{s.size / 1024:.1f} KiB in {s.count} blocks")
                print(_frame_text(s.traceback))
            by_line = snap.compare_to(self.snapshot, "lineno")
            print("\n  top 15 growing lines (the allocating line alone):")
            for s in [s for s in by_line if s.size_diff > 0][:15]:
                f = s.traceback[0]
                print(f"    {s.size_diff / 1024:+8.1f} KiB ({s.count_diff:+6d})  {_short(f.filename)}:{f.lineno}")
        else:
            print("\n  tracemalloc: first snapshot; top 15 sites by size now:")
            for s in snap.statistics("lineno")[:15]:
                f = s.traceback[0]
                print(f"    {s.size / 1024:8.1f} KiB ({s.count:6d})  {_short(f.filename)}:{f.lineno}")

        print("\n  objects by type (top 30 by count; change since previous):")
        for name, n in types.most_common(30):
            diff = n - self.types.get(name, 0) if self.types is not None else 0
            print(f"    {n:9d} {diff:+8d}  {name}")
        if self.types is not None:
            changed = sorted(((n - self.types.get(k, 0), k) for k, n in types.items()), reverse=True)[:15]
            print("  types that grew most:")
            for diff, name in changed:
                if diff > 0:
                    print(f"    {diff:+8d}  {name} (now {types[name]})")

        print("\n  containers:")
        for key, n in conts.items():
            was = self.containers.get(key) if self.containers else None
            print(f"    {key:<50} {n:10d}" + (f"  ({n - was:+d})" if was is not None else ""))
        self.snapshot, self.types, self.containers, self.at = snap, types, conts, time.monotonic()
        print(f"  (snapshot took {time.monotonic() - t0:.1f} s)", flush=True)


# -- the run --------------------------------------------------------------------------------------

def switch_faults(emulator: str, faults: list[dict], args: argparse.Namespace, stop: threading.Event,
                  counter: list[int]) -> None:
    """The fault switcher, on its own thread as soak.py's is in its own process: a traced, busy event
    loop must not delay the faults it is to be tested with."""
    rng = random.Random(args.seed)
    with httpx.Client(timeout=10) as http:
        while not stop.is_set():
            fault = dict(rng.choice(faults))
            lease = rng.uniform(args.switch * 0.5, args.switch * 1.5)
            body = {**fault, "route": rng.choice(PROVIDERS), "for_s": round(lease, 1),
                    "probability": rng.choice((0.5, 1.0))}
            try:
                r = http.post(f"{emulator}/_airisk/faults", json=body)
                counter[0] += r.status_code < 300
            except httpx.HTTPError as exc:
                print(f"  fault switch failed: {exc!r}", flush=True)
            stop.wait(args.switch)


async def run(args: argparse.Namespace, emulator: str, home: Path, faults: list[dict]) -> None:
    from monitor.config import load_config
    from monitor.service import MonitorService
    from monitor.store.db import MONITOR_SQLITE_CACHE_KIB, make_engine
    from probes import make_client

    cfg = home / "airisk.yaml"
    cfg.write_text(config_text(emulator, args.targets, args.interval))
    config = load_config(cfg)
    engine = make_engine(f"sqlite:///{home / 'airisk.db'}", sqlite_cache_kib=MONITOR_SQLITE_CACHE_KIB)
    service = MonitorService(config=config, engine=engine)
    server = service.metrics.serve(port=free_port()) if args.metrics else None
    client = make_client()
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)  # ends cleanly, emulator too
    task = asyncio.create_task(service.run(stop, client=client))
    await asyncio.wait_for(service.started.wait(), 300)
    # Traced from here: imports and the migration would only slow the start and crowd the snapshots.
    if args.trace:
        tracemalloc.start(FRAMES)
    switched = [0]
    stop_switching = threading.Event()
    switcher = threading.Thread(target=switch_faults, args=(emulator, faults, args, stop_switching, switched),
                                daemon=True)
    switcher.start()
    started = time.monotonic()
    print(f"soak trace: {args.targets} targets every {args.interval:g}s, faults every {args.switch:g}s, "
          f"snapshots at {', '.join(f'{m:g}' for m in args.minutes)} min; "
          f"{f'tracemalloc {FRAMES} frames' if args.trace else 'no tracemalloc'}", flush=True)
    tracer = Tracer()
    try:
        for at in args.minutes:
            while (left := started + at * 60 - time.monotonic()) > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), min(60.0, left))
                if stop.is_set():
                    raise SystemExit("stopped (SIGTERM)")
                if task.done():
                    raise SystemExit(f"the monitor ended: {task.exception()!r}")
                m = (time.monotonic() - started) / 60
                mi, sq, pm = mallinfo2(), sqlite_memory(), pymalloc()
                traced = tracemalloc.get_traced_memory()[0]
                print(f"  {m:5.1f} min  RSS {rss_kib() / 1024:7.1f} MiB  traced {traced / 1048576:6.2f} MiB"
                      f"  malloc in use {mi.get('uordblks', 0) / 1048576:6.2f} MiB"
                      f" free {mi.get('fordblks', 0) / 1048576:6.2f} MiB  sqlite {(sq or (0,))[0] / 1048576:5.2f} MiB"
                      f"  pymalloc {pm.get('arenas', 0)} arenas, live {pm.get('live', 0) / 1048576:.2f} MiB"
                      f"  {' '.join(f'{k} {v / 1024:.1f}' for k, v in sorted(smaps().items()))}"
                      f"  written {service.writer.written}  in flight {len(service.scheduler._inflight)}"
                      f"  faults {switched[0]}", flush=True)
            tracer.take(f"{at:g}", service, client, engine, started)
    finally:
        stop_switching.set()
        stop.set()
        await asyncio.gather(task, return_exceptions=True)
        await client.aclose()
        if server is not None:
            server[0].shutdown()
        engine.dispose()


def snapshot_minutes(text: str) -> list[float]:
    at = sorted(float(x) for x in text.split(","))
    return [at[0] / 5, at[0] * 3 / 5, at[0]] if len(at) == 1 else at


def main(args: argparse.Namespace) -> int:
    home = Path(tempfile.mkdtemp(prefix="airisk-soak-trace-"))
    for key in [k for k in os.environ if k.endswith("_API_KEY")]:
        os.environ.pop(key)
    os.environ["AIRISK_HOME"] = str(home)
    os.environ.pop("AIRISK_DATABASE_URL", None)
    os.environ.pop(NO_KEY, None)
    eport = free_port()
    emulator = f"http://127.0.0.1:{eport}"
    emu = subprocess.Popen([AIRISK, "emulate", "--port", str(eport), "--ttft-ms", "150", "--token-gap-ms", "15"],
                           env=dict(os.environ), stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    print(f"emulator pid {emu.pid} on {emulator}; this process {os.getpid()}", flush=True)
    logging.getLogger("apscheduler").setLevel(logging.ERROR)  # "skipped: maximum number of running instances"
    try:
        wait_http(f"{emulator}/_airisk/health", emu, 30)
        known = fault_types(emulator)
        faults = [f for f in FAULTS if f["type"] in known]
        asyncio.run(run(args, emulator, home, faults))
    finally:
        if emu.poll() is None:
            emu.terminate()
            try:
                emu.wait(10)
            except subprocess.TimeoutExpired:
                emu.kill()
    print(f"\ndata left in {home}")
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=snapshot_minutes, default=[5, 15, 25],
                        help="minutes to snapshot at, comma-separated (the run ends at the last); one number N: "
                             "at N/5, 3N/5 and N (25: 5, 15, 25)")
    parser.add_argument("--targets", type=int, default=200)
    parser.add_argument("--interval", type=float, default=10)
    parser.add_argument("--switch", type=float, default=20, help="seconds between fault switches")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--trace", action=argparse.BooleanOptionalAction, default=True,
                        help="tracemalloc (slows the monitor several times over); --no-trace: the rest only")
    parser.add_argument("--metrics", action=argparse.BooleanOptionalAction, default=True,
                        help="serve /metrics on a thread, as the monitor does")
    sys.exit(main(parser.parse_args()))
