"""Store fixtures: every store test runs on SQLite and on PostgreSQL (a fresh schema per test).

PostgreSQL is ``AIRISK_TEST_POSTGRES`` (default ``postgresql+psycopg://postgres@127.0.0.1:5432/test``);
when it is not reachable those tests skip, except under ``CI=true``, where they fail.
"""

from __future__ import annotations

import contextlib
import functools
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.pool import StaticPool
from sqlmodel import Session

from monitor.store.db import make_engine, migrate
from probes.result import ErrorKind, ProbeResult, Status
from tests.conftest import need
from tests.monitor.status_server import StatusServer
from tests.monitor.tcp_relay import TcpProxy

PG_URL = os.environ.get("AIRISK_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
PG_MISSING = "PostgreSQL not reachable on 127.0.0.1:5432"
T0 = datetime(2025, 3, 3, 10, 0, tzinfo=UTC)  # a Monday, on the hour


@functools.cache
def pg_available() -> bool:
    try:
        engine = sa.create_engine(PG_URL, connect_args={"connect_timeout": 2}, poolclass=sa.pool.NullPool)
        with engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
        engine.dispose()
        return True
    except Exception:
        return False


@dataclass
class Database:
    """One fresh, migrated database; `engine()` opens more engines on it (other "processes")."""

    kind: str
    url: str
    connect_args: dict[str, Any] = field(default_factory=dict)
    engines: list[Engine] = field(default_factory=list)

    def engine(self, **kwargs: Any) -> Engine:
        kwargs.setdefault("connect_args", dict(self.connect_args))
        engine = make_engine(self.url, **kwargs)
        self.engines.append(engine)
        return engine

    def dispose(self) -> None:
        for engine in self.engines:
            engine.dispose()


@contextlib.contextmanager
def pg_schema(*, migrated: bool = True) -> Iterator[Database]:
    """A PostgreSQL schema of its own (``search_path``), migrated unless told, dropped afterwards."""
    need(pg_available(), PG_MISSING)
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(PG_URL, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    with admin.connect() as conn:
        conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
    db = Database("postgresql", PG_URL, {"options": f"-csearch_path={schema}"})
    try:
        if migrated:
            migrate(db.engine())
        yield db
    finally:
        db.dispose()
        with admin.connect() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """A migrated database any number of engines can share: a SQLite file, or a PostgreSQL schema."""
    if request.param == "postgresql":
        with pg_schema() as db:
            yield db
        return
    db = Database("sqlite", f"sqlite:///{tmp_path / 'airisk.db'}")
    migrate(db.engine())
    yield db
    db.dispose()


@contextlib.contextmanager
def fresh_engine(kind: str) -> Iterator[Engine]:
    """A fresh migrated engine: in-memory SQLite (``StaticPool``), or a PostgreSQL schema of its own.
    A context manager too, for hypothesis tests that need one per example."""
    if kind == "postgresql":
        with pg_schema() as db:
            yield db.engine()
        return
    eng = make_engine("sqlite://", poolclass=StaticPool)
    migrate(eng)
    yield eng
    eng.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest) -> Iterator[Engine]:
    """`fresh_engine` for each backend."""
    with fresh_engine(request.param) as eng:
        yield eng


@pytest.fixture
def session(engine: Engine) -> Iterator[Session]:
    with Session(engine) as s:
        yield s


_DEFAULT_KIND = {"up": ErrorKind.OK, "degraded": ErrorKind.WRONG_ANSWER, "down": ErrorKind.SERVER_ERROR}
_UNSET: Any = object()


def make_result(
    target: str = "openai",
    at: datetime = T0,
    status: str = "up",
    *,
    kind: ErrorKind | str | None = None,
    ttft: float | None = _UNSET,
    total: float | None = 400.0,
    cost: float | None = 0.001,
    tps: float | None = 50.0,
    **extra: Any,
) -> ProbeResult:
    """A `ProbeResult` as a probe would report it (``down`` ones never see a first token by default)."""
    if ttft is _UNSET:
        ttft = None if status == "down" else 100.0
    return ProbeResult(
        target=target, provider=extra.pop("provider", target), model=extra.pop("model", "m"), at=at,
        status=Status(status), error_kind=ErrorKind(kind or _DEFAULT_KIND[status]), ttft_ms=ttft,
        total_ms=total, cost_usd=cost, tokens_per_s=tps, **extra,
    )


@pytest.fixture
async def receiver():
    """A real HTTP receiver on loopback (webhook, Slack, PagerDuty and Apprise json:// endpoints)."""
    from tests.monitor.test_alerts_harness import Receiver

    r = Receiver()
    await r.start()
    yield r
    await r.stop()


@pytest.fixture
async def proxied_pg() -> AsyncIterator[tuple[Engine, Engine, TcpProxy]]:
    """(engine through the proxy, direct engine, proxy) on a fresh PostgreSQL schema."""
    with pg_schema() as db:
        proxy = TcpProxy(int(sa.engine.make_url(PG_URL).port or 5432))
        await proxy.start()
        url = sa.engine.make_url(PG_URL).set(host="127.0.0.1", port=proxy.port)
        via = make_engine(url.render_as_string(hide_password=False),
                          connect_args={**db.connect_args, "connect_timeout": 2})
        db.engines.append(via)
        try:
            yield via, db.engine(), proxy
        finally:
            with contextlib.suppress(Exception):
                await proxy.stop()
            via.dispose()


@pytest.fixture
async def page() -> AsyncIterator[StatusServer]:
    """A loopback vendor status page whose answers a test scripts (tests.monitor.status_server)."""
    server = StatusServer()
    await server.start()
    yield server
    await server.stop()
