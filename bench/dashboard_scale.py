"""Dashboard at scale: every page over 30 days of 50 targets probed every 30 s (4.3 million results).

What it measures, each figure beside a baseline taken in the same run (the same pages over an
almost-empty database: 1 target, 1 hour of history, 1 drill, the same 8 features on that target):

1. generating the history (`chaos.history.generate_history`) into SQLite under a temporary
   directory (and with ``--postgres URL`` into a PostgreSQL schema of its own): seconds, rows per
   second, rows per table, database size. All 4.32 million results go through the rollups (hour
   rollups for the 30 days, minute rollups for the last 2, as `storage` keeps them); the raw rows
   are kept for ``--raw-days`` (default 30: every result stays raw, as with ``storage: {raw_days:
   30}``: the heavier case for whatever reads raw rows; the default retention of 14 days keeps 2.0
   million). Ten drill runs with per-second timelines are added (`monitor.store.drills.write_drill`)
   so the Drills page has something to draw;
2. the monitor queries beneath the pages (`monitor.store.queries`, the risk loader) for the 24 h
   and 30 d windows, called directly: median of 3 calls (the first in parentheses);
3. page render: `streamlit.testing.v1.AppTest` runs dashboard/app.py against that database
   (``AIRISK_DATABASE_URL``) and a generated airisk.yaml declaring the 50 targets and 8 features
   with chains over them (``AIRISK_CONFIG``), each page (as app.py's `st.Page` calls list them)
   for the 24 h and 30 d windows, median of 3: cold (Streamlit's data cache cleared first: a page
   opened for the first time in a refresh interval), warm (run again: widgets, other viewers), and
   fresh (every cache and resource cleared: the first view after the server starts), with the part
   of cold spent in the page queries (`dashboard.ui.load` and `dashboard.ui.risk`, timed around).
   A run that raises counts as failed. It is the server side of a render (queries, DataFrames,
   plotly figures); the browser's drawing comes on top. AppTest's `switch_page` runs the page's
   script alone, not app.py around it, so app.py is also run whole with its default page.
Goal, from the issue: every page renders in under 1.5 s at this scale, on this machine (judged on
cold; fresh is shown beside it).

Usage: .venv/bin/python bench/dashboard_scale.py [--quick] [--raw-days 30] [--postgres URL]
       [--dir DIR [--reuse]]
``--quick``: 10 targets x 3 days. ``--dir``: keep the databases there; ``--reuse``: use the ones
a previous run left there instead of generating (generation figures are then not printed).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import sqlalchemy as sa  # noqa: E402
from sqlmodel import Session  # noqa: E402

from chaos.history import HistoryStats, HistoryTarget, generate_history  # noqa: E402
from monitor.config import load_config  # noqa: E402
from monitor.store.db import make_engine, migrate  # noqa: E402
from monitor.store.drills import write_drill  # noqa: E402
from monitor.store.models import ALL_TABLES, RollupHour  # noqa: E402

GOAL_S = 1.5
INTERVAL_S = 30.0
# 50 targets; the order is round-robin over providers, so a --quick prefix still has a spread.
MIX = [("openai", 8), ("anthropic", 7), ("local", 2), ("gemini", 5), ("azure-openai", 4), ("mistral", 4),
       ("groq", 4), ("together", 3), ("deepseek", 3), ("openrouter", 3), ("fireworks", 3), ("cohere", 2),
       ("ollama", 1), ("vllm", 1)]
WINDOWS = ("24 h", "30 d")


def pages(app: Path) -> list[tuple[str, str]]:
    """(title, path) of each ``st.Page(path, title=...)`` that ``app`` hands to `st.navigation`."""
    import ast

    out = []
    for node in ast.walk(ast.parse(app.read_text())):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "Page" and node.args:
            title = next((k.value.value for k in node.keywords if k.arg == "title"), node.args[0].value)
            out.append((str(title), str(node.args[0].value)))
    return out


def fleet(n: int) -> list[HistoryTarget]:
    queues = [[f"{p}-{i + 1}" for i in range(k)] for p, k in MIX]
    names: list[str] = []
    while len(names) < n and any(queues):
        for q in queues:
            if q and len(names) < n:
                names.append(q.pop(0))
    return [HistoryTarget(name, name.rsplit("-", 1)[0]) for name in names]


def features(targets: list[HistoryTarget]) -> dict[str, dict[str, Any]]:
    """Eight features with chains over the fleet (a provider missing from a small fleet: any target)."""
    by: dict[str, list[str]] = {}
    for t in targets:
        by.setdefault(t.provider, []).append(t.name)
    names = [t.name for t in targets]

    def pick(provider: str, i: int = 0) -> str:
        got = by.get(provider) or names
        return got[i % len(got)]

    def chain(*backends: str, degraded: tuple[str, float] | None = None) -> list[dict[str, Any]]:
        links: list[dict[str, Any]] = [{"backend": b} for b in dict.fromkeys(backends)]
        return links + ([{"degraded": degraded[0], "quality": degraded[1]}] if degraded else [])

    return {
        "chat": {"criticality": "critical", "latency_budget": {"first_token": "5s"},
                 "chain": chain(pick("openai"), pick("anthropic"), degraded=("canned", 0.3))},
        "search": {"criticality": "high", "chain": chain(pick("gemini"), pick("openai", 1))},
        "summarise": {"criticality": "medium", "chain": chain(pick("anthropic", 1), pick("local"))},
        "tagging": {"criticality": "low", "chain": chain(pick("groq"), degraded=("heuristic", 0.6))},
        "support": {"criticality": "high", "latency_budget": {"first_token": "8s", "total": "30s"},
                    "chain": chain(pick("openai", 2), pick("azure-openai"), pick("anthropic", 2))},
        "translate": {"criticality": "medium", "chain": chain(pick("deepseek"), pick("mistral"))},
        "moderation": {"criticality": "high", "chain": chain(pick("local"), pick("openai"))},
        "recommend": {"criticality": "low", "chain": chain(pick("together"), pick("fireworks"),
                                                           degraded=("cached", 0.5))},
    }


def write_config(path: Path, targets: list[HistoryTarget], raw_days: float) -> None:
    # JSON is YAML: no quoting questions.
    doc = {"storage": {"raw_days": max(1, round(raw_days))},
           "targets": [{"name": t.name, "provider": t.provider, "model": t.model} for t in targets],
           "features": features(targets)}
    path.write_text(json.dumps(doc, indent=1))


def write_drills(engine: sa.Engine, feature_chains: dict[str, dict[str, Any]], *, count: int, end: datetime) -> None:
    """``count`` drills spread over the history: a 5-minute OpenAI outage each, timelines per second."""
    with Session(engine) as session:
        for k in range(count):
            start = (end - timedelta(days=3 * k + 1)).timestamp()
            phases = [{"name": "steady", "start": start, "end": start + 60, "faults": []},
                      {"name": "openai down", "start": start + 60, "end": start + 240,
                       "faults": [{"route": "openai", "type": "overloaded", "probability": 1}]},
                      {"name": "recovery", "start": start + 240, "end": start + 300, "faults": []}]
            timeline, rows = [], []
            for i, (name, f) in enumerate(sorted(feature_chains.items())):
                hit = f["chain"][0].get("backend", "").startswith("openai")
                for s in range(300):
                    down = hit and 60 <= s < 240
                    timeline.append({"s": s, "feature": name, "n": 4, "ok": 1 if down else 4, "deg": 2 if down else 0,
                                     "p50_ms": 900.0 + 40 * i + (600 if down else 0)})
                rows.append({"feature": name, "expected": "survives" if i % 3 else "degrades",
                             "verdict": "degraded" if hit else "resilient", "meets": not (hit and i % 3),
                             "requests": 720, "ok_rate": 0.25 if hit else 0.99, "answered_rate": 0.75 if hit else 1.0,
                             "p50_ms": 1500.0 if hit else 950.0, "p95_ms": 2900.0 if hit else 1400.0,
                             "recovery_s": 4.0 if hit else None, "faulted_routes": ["openai"],
                             "answered_by": [b["backend"].rsplit("-", 1)[0] for b in f["chain"][1:] if "backend" in b],
                             "backends": {}, "phases": {}})
            write_drill(session=session, features=rows, run={
                "name": "openai-outage", "started_at": start, "ended_at": start + 300,
                "passed": all(r["meets"] for r in rows), "phases": phases, "timeline": timeline})
        session.commit()


@dataclass
class Store:
    label: str
    url: str
    engine: sa.Engine
    size: Callable[[], int]
    drop: Callable[[], None] = lambda: None


def sqlite_store(label: str, path: Path) -> Store:
    url = f"sqlite:///{path}"
    engine = make_engine(url)

    def size() -> int:
        with engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        return sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))

    return Store(label, url, engine, size)


def postgres_store(label: str, url: str) -> Store:
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(url, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    with admin.connect() as conn:
        conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
    # search_path in the URL, so the dashboard (which only gets AIRISK_DATABASE_URL) reads this schema.
    sep = "&" if "?" in url else "?"
    scoped = f"{url}{sep}options=-csearch_path%3D{schema}"
    engine = make_engine(scoped)

    def size() -> int:
        with engine.connect() as conn:
            return int(conn.execute(sa.text(
                "SELECT coalesce(sum(pg_total_relation_size(quote_ident(schemaname) || '.' || "
                "quote_ident(tablename))), 0) FROM pg_tables WHERE schemaname = :schema"), {"schema": schema}
            ).scalar_one())

    def drop() -> None:
        engine.dispose()
        with admin.connect() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
        admin.dispose()

    return Store(label, scoped, engine, size, drop)


def counts(engine: sa.Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {t.__tablename__: conn.execute(sa.select(sa.func.count()).select_from(t.__table__)).scalar_one()
                for t in ALL_TABLES}


def populate(store: Store, targets: list[HistoryTarget], days: float, raw_days: float, drills: int,
             end: datetime) -> HistoryStats:
    migrate(store.engine)
    stats = generate_history(engine=store.engine, targets=targets, days=days, interval_s=INTERVAL_S, end=end,
                             seed=1, raw_days=raw_days)
    write_drills(store.engine, features(targets), count=drills, end=end)
    return stats


# --- 2. monitor query times ----------------------------------------------------------------------


def timed(fn: Callable[[], Any], n: int = 3) -> tuple[float, float]:
    """(first, median of n) in ms."""
    times = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    return times[0], statistics.median(times)


def monitor_queries(session: Session, config: Any, now: datetime, span: timedelta) -> list[tuple[str, Callable]]:
    from monitor.risk.load import score_features
    from monitor.store import queries as mq

    since = now - span
    first = sorted(t.target_name for t in config.targets)[0]
    return [
        ("target_summary (all targets)", lambda: mq.target_summary(session=session, since=since, until=now)),
        ("availability_series (1 target, 1 h bins)", lambda: mq.availability_series(
            session=session, target=first, since=since, until=now, step=timedelta(hours=1))),
        ("error_counts (all targets)", lambda: mq.error_counts(session=session, since=since, until=now)),
        ("incidents", lambda: mq.incidents(session=session, since=since)),
        ("current_states", lambda: mq.current_states(session=session)),
        ("risk loader (score_features; always 30 d)", lambda: score_features(config=config, session=session, now=now)),
    ]


def query_section(stores: dict[str, Store], configs: dict[str, Path], now: datetime) -> None:
    print("\n2. monitor queries beneath the pages (monitor.store.queries, the risk loader), ms: median of 3 "
          "calls (first call)")
    print(f"   {'query':<44}" + "".join(f"{f'{w} {k}':>22}" for w in WINDOWS for k in ("baseline", "scale")))
    results: dict[tuple[str, str, str], tuple[float, float]] = {}
    names: list[str] = []
    for label, store in stores.items():
        config = load_config(configs[label])
        with Session(store.engine) as session:
            for w, span in zip(WINDOWS, (timedelta(days=1), timedelta(days=30)), strict=True):
                for name, fn in monitor_queries(session, config, now, span):
                    results[(name, w, label)] = timed(fn)
                    names.append(name)
    for name in dict.fromkeys(names):
        cells = [results[(name, w, label)] for w in WINDOWS for label in ("baseline", "scale")]
        print(f"   {name:<44}" + "".join(f"{med:>12.1f} ({first:>7.1f})" for first, med in cells))


# --- 3. render times ------------------------------------------------------------------------------


@contextlib.contextmanager
def environment(**values: str) -> Iterator[None]:
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


REPEAT = 3


@dataclass
class Run:
    cold: float  # seconds, the whole script run with the data cache cleared (median of REPEAT)
    cold_max: float
    warm: float  # the same run again, cached (median of REPEAT)
    queries: float  # of cold: seconds inside the page queries (dashboard.ui.load), median
    calls: list[str]  # the page queries it made
    error: str  # what it raised, if it did
    start: float = float("nan")  # every cache cleared, resources too (the engine, the risk view): a fresh server


@contextlib.contextmanager
def query_clock(spent: list[tuple[str, float]]) -> Iterator[None]:
    """Times what the pages call for their data while it is on: `dashboard.ui.load` (every page query)
    and `dashboard.ui.risk` (the risk view, cached as a resource and refreshed in the background)."""
    from dashboard import ui

    originals = {name: getattr(ui, name) for name in ("load", "risk") if hasattr(ui, name)}

    def clocked(name: str, original: Callable[..., Any]) -> Callable[..., Any]:
        def timed_call(*args: Any, **kwargs: Any) -> Any:
            t = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                what = args[0] if name == "load" and args else None
                spent.append((getattr(what, "__name__", name), time.perf_counter() - t))
        return timed_call

    for name, original in originals.items():
        setattr(ui, name, clocked(name, original))
    try:
        yield
    finally:
        for name, original in originals.items():
            setattr(ui, name, original)


def render(store: Store, config: Path) -> dict[tuple[str, str], Run]:
    """Per (page, window): cold and warm seconds, the time in page queries, and what it raised.

    AppTest (Streamlit 1.67) runs only the page's script after `switch_page`, not app.py around it;
    the window is then set through session state, which is where app.py's selector keeps it. The
    shell (app.py: sidebar, navigation) is measured on its own with the default page.
    """
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    app = str(ROOT / "dashboard" / "app.py")
    out: dict[tuple[str, str], Run] = {}
    spent: list[tuple[str, float]] = []

    def run(at: Any, title: str, window: str, switch: str | None = None, repeat: int = REPEAT) -> None:
        if switch:
            at.switch_page(switch)
            at.session_state["window"] = window
        colds, warms, queries, errors, calls = [], [], [], [], []
        st.cache_resource.clear()
        st.cache_data.clear()
        t = time.perf_counter()
        at.run()
        start = time.perf_counter() - t
        errors.append(_errors(at))
        for _ in range(repeat):
            st.cache_data.clear()
            spent.clear()
            t = time.perf_counter()
            at.run()
            colds.append(time.perf_counter() - t)
            queries.append(sum(s for _, s in spent))
            calls = [n for n, _ in spent]
            errors.append(_errors(at))
        for _ in range(repeat):
            t = time.perf_counter()
            at.run()
            warms.append(time.perf_counter() - t)
            errors.append(_errors(at))
        med = statistics.median
        out[(title, window)] = Run(med(colds), max(colds), med(warms), med(queries), calls,
                                   next((e for e in errors if e), ""), start)

    with environment(AIRISK_DATABASE_URL=store.url, AIRISK_CONFIG=str(config), AIRISK_DASHBOARD_PASSWORD=""), \
            query_clock(spent):
        st.cache_resource.clear()
        first = AppTest.from_file(app, default_timeout=120)
        t = time.perf_counter()
        first.run()  # the process's first run: imports too
        out[("(app.py, first run)", "24 h")] = Run(time.perf_counter() - t, 0, 0, 0, [], _errors(first))
        run(AppTest.from_file(app, default_timeout=120), "app.py + Overview", "24 h")  # a new session
        at = AppTest.from_file(app, default_timeout=120)
        at.run()
        for w in WINDOWS:
            for title, path in pages(Path(app)):
                run(at, title, w, switch=path)
    return out


def _errors(at: Any) -> str:
    return "; ".join(str(e.message).splitlines()[0] for e in at.exception) if len(at.exception) else ""


def render_section(stores: dict[str, Store], configs: dict[str, Path]) -> None:
    app = ROOT / "dashboard" / "app.py"
    try:
        import streamlit  # noqa: F401
    except ImportError:
        print("\n3. render time: skipped (streamlit is not installed)")
        return
    if not app.exists():
        print(f"\n3. render time: skipped ({app.relative_to(ROOT)} does not exist yet)")
        return
    got = {label: render(store, configs[label]) for label, store in stores.items()}
    print("\n3. page render, s: AppTest runs dashboard/app.py per page (server side: queries, DataFrames, figures),")
    print(f"   median of {REPEAT}. cold: Streamlit's data cache cleared first (max: the slowest of the {REPEAT});")
    print("   queries: the part of cold spent in the page queries; warm: run again, cached. Page rows run the")
    print("   page's script (AppTest's switch_page); app.py rows the whole app with its default page (Overview).")
    print("   fresh: every cache cleared, resources too (engine, the risk view the dashboard keeps as a resource and")
    print("   refreshes in the background): the first view after the server starts")
    print(f"   {'page':<22}{'window':>7}{'baseline':>10}{'scale':>8}{'ratio':>7}{'max':>8}{'queries':>9}{'warm':>7}"
          f"{'fresh':>8}   goal: cold < {GOAL_S:g} s")
    worst: dict[str, float] = {}
    failed: set[str] = set()
    for (title, w), run in got["scale"].items():
        base = got["baseline"][(title, w)]
        line = (f"   {title:<22}{w:>7}{base.cold:>10.3f}{run.cold:>8.3f}{run.cold / base.cold:>6.1f}x"
                f"{run.cold_max:>8.3f}{run.queries:>9.3f}")
        if title.startswith("("):
            print(f"   {title:<22}{w:>7}{base.cold:>10.3f}{run.cold:>8.3f}{run.cold / base.cold:>6.1f}x")
            continue
        verdict = "met" if run.cold < GOAL_S else "NOT MET"
        for who, r in (("", run), ("baseline ", base)):
            if r.error:
                verdict = f"FAILED: {who}raised {r.error}"
                failed.add(title)
        worst[title] = max(worst.get(title, 0.0), run.cold)
        fresh = "" if run.start < GOAL_S else f" (fresh: NOT MET {run.start:.3f} s)"
        print(f"{line}{run.warm:>7.3f}{run.start:>8.3f}   {verdict}{fresh}")
    calls = {title: sorted(set(run.calls)) for (title, _), run in got["scale"].items() if not title.startswith("(")}
    print("   page queries timed: " + "; ".join(f"{t}: {', '.join(c) or '-'}" for t, c in calls.items()))
    ok = [t for t, s in worst.items() if s < GOAL_S and t not in failed]
    slowest = max(worst, key=worst.__getitem__)
    print(f"\n   goal, every page under {GOAL_S:g} s cold at this scale: "
          + ("met" if len(ok) == len(worst) else "NOT MET")
          + f" ({len(ok)} of {len(worst)} pages; slowest: {slowest}, {worst[slowest]:.3f} s)")


# --- the run ---------------------------------------------------------------------------------------


def main(args: argparse.Namespace) -> None:
    n, days = (10, 3.0) if args.quick else (args.targets, args.days)
    raw_days = min(days, args.raw_days)
    base_dir = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="airisk-bench-"))
    base_dir.mkdir(parents=True, exist_ok=True)
    end = datetime.now(UTC).replace(microsecond=0)
    targets = fleet(n)
    plan = {"scale": (targets, days, raw_days, 10), "baseline": (targets[:1], 1 / 24, 1 / 24, 1)}
    print(f"scale: {n} targets x {days:g} days every {INTERVAL_S:g} s ({n * days * 86400 / INTERVAL_S:,.0f} results), "
          f"raw rows kept {raw_days:g} days, minute rollups 2 days, hour rollups all; 10 drills; 8 features")
    print(f"   raw rows: {n * raw_days * 86400 / INTERVAL_S:,.0f} (as with storage: {{raw_days: {raw_days:g}}}; "
          f"the default 14 days would keep {n * min(days, 14) * 86400 / INTERVAL_S:,.0f})")
    print("baseline (same run): 1 target x 1 hour every 30 s, 1 drill, the 8 features all on that target")
    print(f"machine: {os.cpu_count()} cores; databases under {base_dir}")
    configs: dict[str, Path] = {}
    stores: dict[str, dict[str, Store]] = {"sqlite": {}}
    generated: dict[tuple[str, str], tuple[HistoryStats | None, float]] = {}
    try:
        for label, (tg, d, rd, drills) in plan.items():
            configs[label] = base_dir / f"{label}.yaml"
            write_config(configs[label], tg, rd)
            db = base_dir / f"{label}.db"
            reuse = args.reuse and db.exists()
            if not reuse:
                for p in base_dir.glob(f"{label}.db*"):
                    p.unlink()
            store = stores["sqlite"][label] = sqlite_store(label, db)
            t = time.perf_counter()
            stats = None if reuse else populate(store, tg, d, rd, drills, end)
            generated[("sqlite", label)] = (stats, time.perf_counter() - t)
            if args.postgres:
                pg = stores.setdefault("postgresql", {})[label] = postgres_store(label, args.postgres)
                t = time.perf_counter()
                generated[("postgresql", label)] = (populate(pg, tg, d, rd, drills, end), time.perf_counter() - t)
        print("\n1. generating the history (chaos.history; seconds: generate_history alone, then the drills; "
              "results: every probe, raw or not)")
        cols = ("probe_result", "rollup_minute", "rollup_hour", "incident", "status_snapshot", "alert_outbox")
        print(f"   {'database':<20}" + "".join(f"{c:>16}" for c in cols)
              + f"{'seconds':>9}{'raw rows/s':>11}{'results/s':>11}{'size':>9}")
        for (kind, label), (stats, _) in generated.items():
            store = stores[kind][label]
            c = counts(store.engine)
            with store.engine.connect() as conn:
                results = conn.execute(sa.select(sa.func.sum(RollupHour.count))).scalar_one() or 0
            if stats:
                per_s = (c["probe_result"] / stats.seconds, results / stats.seconds)
                rates = f"{stats.seconds:>9.1f}{per_s[0]:>11,.0f}{per_s[1]:>11,.0f}"
            else:
                rates = f"{'(reused)':>31}"
            print(f"   {kind + ' ' + label:<20}" + "".join(f"{c[k]:>16,}" for k in cols)
                  + f"{rates}{store.size() / 1e6:>6.0f} MB")
        now = datetime.now(UTC)
        for kind, pair in stores.items():
            print(f"\n--- {kind} ---" if args.postgres else "", end="")
            query_section(pair, configs, now)
            render_section(pair, configs)
    finally:
        for pair in stores.values():
            for store in pair.values():
                store.engine.dispose()
                store.drop()
        if not args.dir:
            shutil.rmtree(base_dir, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10 targets x 3 days")
    parser.add_argument("--targets", type=int, default=50)
    parser.add_argument("--days", type=float, default=30.0)
    parser.add_argument("--raw-days", type=float, default=30.0, help="raw rows kept (default 30: all of them)")
    parser.add_argument("--postgres", metavar="URL", help="also PostgreSQL, e.g. postgresql+psycopg://postgres@127.0.0.1:5432/test")
    parser.add_argument("--dir", help="keep the databases in DIR (default: a temporary directory, removed)")
    parser.add_argument("--reuse", action="store_true", help="with --dir: use the SQLite databases found there")
    main(parser.parse_args())
