"""The proxy request log's write path (``airisk proxy --store``) takes any entry, on SQLite and
PostgreSQL: fields coerced and capped, NUL stripped, and a row the database still refuses set
aside so that it can never hold back the rows after it (issue 13)."""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.engine import Engine
from sqlmodel import Session

from chaos.proxystore import LogStore
from monitor.store.db import make_engine, migrate
from monitor.store.proxylog import proxy_requests, write_proxy_requests
from tests.monitor.conftest import T0, fresh_engine


def _entry(path: str = "/chat/completions", **extra):
    return {"at": T0.timestamp(), "route": "openai", "method": "POST", "path": path, "model": "m",
            "feature": "chat", "stream": False, "status": 200, "faults": [], **extra}


def _count(engine: Engine) -> int:
    with engine.connect() as conn:
        return conn.execute(sa.text("SELECT count(*) FROM proxy_request")).scalar_one()


def test_hostile_entries_are_coerced_into_rows(session):
    hostile = [
        _entry(model={}, feature=["a"], stream="yes", status="200"),  # a "model": {} request body
        _entry(path="/chat/\x00completions", error="boom\x00" + "e" * 5000),  # NUL: PostgreSQL refuses it
        _entry(at="soon", ttfb_ms=math.nan, total_ms=math.inf, faults="stream_cut", broken=7, status=10**6),
        _entry(at=1e300, route="\ud800lone", method=None, path="p" * 10_000, model="\x00"),
        {"route": "openai"},  # almost nothing
    ]
    assert write_proxy_requests(session=session, entries=hostile, source="127.0.0.1:8480") == 5
    session.commit()  # before: the first of these made the whole batch (and every later one) fail
    rows = proxy_requests(session=session)
    assert len(rows) == 5
    first = next(r for r in rows if r.feature == '["a"]')
    assert (first.model, first.stream, first.status) == ("{}", None, None)
    nul = next(r for r in rows if r.error)
    assert nul.path == "/chat/completions"  # the NUL is gone, the rest kept
    assert nul.error.startswith("boomeee") and len(nul.error) == 500
    odd = next(r for r in rows if r.broken == "7")
    assert (odd.ttfb_ms, odd.total_ms, odd.faults, odd.status) == (None, None, [], None)
    assert odd.at > datetime(2026, 1, 1, tzinfo=UTC)  # an impossible time becomes the time of writing
    long = next(r for r in rows if len(r.path) > 100)
    assert len(long.path) == 2000 and long.route == "?lone" and long.method == "POST" and long.model is None


@contextlib.contextmanager
def _poisoned(engine: Engine) -> Iterator[None]:
    """Makes the database itself refuse rows with path '/poison', as only a constraint can."""
    with engine.begin() as conn:
        if engine.dialect.name == "sqlite":
            conn.exec_driver_sql("CREATE TRIGGER poison BEFORE INSERT ON proxy_request WHEN NEW.path = '/poison' "
                                 "BEGIN SELECT RAISE(ABORT, 'poisoned row'); END")
        else:
            conn.exec_driver_sql("ALTER TABLE proxy_request ADD CONSTRAINT poison CHECK (path <> '/poison')")
    yield


async def test_a_row_the_database_refuses_is_set_aside_and_the_rest_are_written(engine, tmp_path):
    with _poisoned(engine):
        store = LogStore(engine, source="test", reject_dir=tmp_path)
        for path in ("/a", "/poison", "/b"):
            store.sink(_entry(path))
        await store.flush()
        # Before: the refused batch was "held" and retried for ever, and every later entry with it.
        assert (store.written, store.rejected, store.pending) == (2, 1, 0)
        store.sink(_entry("/c"))
        await store.flush()
    assert store.written == 3 and _count(engine) == 3
    (rejected,) = tmp_path.glob("proxy-rejected-*.rejected")
    line = json.loads(rejected.read_text())
    assert line["entry"]["path"] == "/poison" and line["error"]


async def test_entries_wait_while_the_database_is_away_and_are_written_when_it_returns(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'late.db'}")  # not migrated yet: "no such table" ...
    store = LogStore(engine, reject_dir=tmp_path / "spill", max_pending=3)
    for i in range(4):
        store.sink(_entry(f"/{i}"))
    await store.flush()
    # ... is an OperationalError on SQLite, the class a database that is away raises: held, not set aside
    assert (store.written, store.rejected, store.pending, store.dropped) == (0, 0, 3, 1)
    migrate(engine)
    await store.flush()
    assert (store.written, store.pending) == (3, 0) and _count(engine) == 3
    engine.dispose()


# -- any entry, on both databases (hypothesis) ------------------------------------------------------

_ANY = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.binary(max_size=8)
    | st.text(st.characters(exclude_categories=()), max_size=30),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)
_FIELDS = ("at", "route", "method", "path", "model", "feature", "stream", "status", "faults", "broken", "ttfb_ms",
           "total_ms", "error", "id", "upstream")
_ENTRIES = st.lists(st.fixed_dictionaries({}, optional={k: _ANY for k in _FIELDS}), max_size=4)


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_any_entry_is_written(kind):
    with fresh_engine(kind) as engine:
        total = [0]

        @settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
        @given(entries=_ENTRIES, source=st.text(st.characters(exclude_categories=()), max_size=10))
        def check(entries, source):
            with Session(engine) as session:
                assert write_proxy_requests(session=session, entries=entries, source=source) == len(entries)
                session.commit()
            total[0] += len(entries)

        check()
        assert _count(engine) == total[0]
