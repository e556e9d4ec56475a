"""Where the history lives, and how to open and migrate it.

SQLite (one file, WAL) is the embedded default; PostgreSQL when several monitors share one
history (``AIRISK_DATABASE_URL=postgresql+psycopg://user@host/db``). The schema only changes
through Alembic: `migrate` runs ``upgrade head`` from the revisions shipped inside this package,
so no ``alembic.ini`` is needed where airisk is installed.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
DEFAULT_HOME = Path("~/.local/share/airisk")


def database_url(env: Mapping[str, str] = os.environ) -> str:
    """``AIRISK_DATABASE_URL`` if set, else the SQLite file ``$AIRISK_HOME/airisk.db``.

    ``postgres://`` and ``postgresql://`` URLs are given the psycopg 3 driver, the one installed.
    """
    url = (env.get("AIRISK_DATABASE_URL") or "").strip()
    if url:
        for prefix in ("postgres://", "postgresql://"):
            if url.startswith(prefix):
                return "postgresql+psycopg://" + url[len(prefix) :]
        return url
    home = Path(env.get("AIRISK_HOME") or DEFAULT_HOME).expanduser()
    return f"sqlite:///{home / 'airisk.db'}"


# SQLite's page cache, per connection (its default is 2 MiB). The monitor appends rows and reads
# recent ones; the OS file cache serves the rest, so a smaller cache costs it nothing measurable and
# keeps a long-running monitor's RSS from growing by 2 MiB per pooled connection as the file grows.
MONITOR_SQLITE_CACHE_KIB = 512


def _sqlite_pragmas(dbapi_conn: Any, _record: Any, *, cache_kib: int | None = None) -> None:
    cur = dbapi_conn.cursor()
    if cache_kib is not None:
        cur.execute(f"PRAGMA cache_size=-{int(cache_kib)}")  # negative: KiB, not pages
    # WAL: the dashboard reads while the monitor writes. busy_timeout: a writer waits for the
    # lock instead of failing at once. NORMAL is durable across application crashes in WAL mode
    # (only a power loss may drop the last transactions), and much faster than FULL.
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA busy_timeout=5000")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


def make_engine(url: str | None = None, *, sqlite_cache_kib: int | None = None, **kwargs: Any) -> Engine:
    """An engine for ``url`` (default `database_url()`); ``kwargs`` go to `sa.create_engine`.

    SQLite gets WAL, ``busy_timeout=5000`` and ``synchronous=NORMAL`` on every connection, and
    its parent directory is created (``sqlite://``, in memory, gets one shared connection).
    PostgreSQL gets a 10 s connect timeout, so an unreachable server fails a write (which the
    buffered writer retries) rather than hanging it. Every engine pings pooled connections
    before use, so a restarted server is survived. ``sqlite_cache_kib`` caps SQLite's page cache
    per connection (the monitor passes `MONITOR_SQLITE_CACHE_KIB`); unset: SQLite's default.
    """
    # Through database_url even when given, so postgres:// URLs get the psycopg driver too.
    url = database_url({"AIRISK_DATABASE_URL": url}) if url else database_url()
    parsed = sa.engine.make_url(url)
    kwargs.setdefault("pool_pre_ping", True)
    if parsed.get_backend_name() == "sqlite":
        db = parsed.database
        if db and db != ":memory:" and not db.startswith("file:"):
            Path(db).expanduser().parent.mkdir(parents=True, exist_ok=True)
        elif not db or db == ":memory:":
            # One in-memory database for every thread (the writer works in worker threads);
            # SQLAlchemy's default would give each thread its own, empty one.
            kwargs.setdefault("poolclass", sa.pool.StaticPool)
        connect_args = kwargs["connect_args"] = dict(kwargs.get("connect_args") or {})
        # Writes run in worker threads (asyncio.to_thread); the pool hands one connection to one
        # thread at a time, so sharing across threads is safe.
        connect_args.setdefault("check_same_thread", False)
        engine = sa.create_engine(url, **kwargs)

        def pragmas(dbapi_conn: Any, record: Any) -> None:
            _sqlite_pragmas(dbapi_conn, record, cache_kib=sqlite_cache_kib)

        sa.event.listen(engine, "connect", pragmas)
        return engine
    if parsed.get_backend_name() == "postgresql":
        kwargs["connect_args"] = {"connect_timeout": 10, **(kwargs.get("connect_args") or {})}
        try:
            return sa.create_engine(parsed, **kwargs)
        except ModuleNotFoundError as exc:  # psycopg is an extra (pyproject.toml)
            if exc.name != "psycopg":
                raise
            raise ModuleNotFoundError("AIRISK_DATABASE_URL is PostgreSQL, which needs the postgres extra: "
                                      "pip install 'airisk[postgres]'", name="psycopg") from None
    return sa.create_engine(parsed, **kwargs)


def alembic_config(connection: sa.Connection | None = None) -> Any:
    """An Alembic `Config` built in code, pointing at the shipped revisions.

    With ``connection``, env.py migrates through it; without, from `database_url()`.
    """
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


# Alembic runs env.py through module-level proxies (alembic.context, alembic.op): two
# migrations at once in one process would tear each other's proxies down.
_MIGRATE_LOCK = threading.Lock()
_PG_MIGRATE_LOCK_KEY = 0x61697269736B  # "airisk": any fixed 64-bit number would do


def migrate(engine: Engine, revision: str = "head") -> None:
    """Brings the schema up to ``revision`` (idempotent: at head it does nothing).

    Safe when several monitors start at once: one at a time per process, and on PostgreSQL
    one at a time per database (a transaction-scoped advisory lock; whoever waits then finds
    the schema at head).
    """
    from alembic import command

    with _MIGRATE_LOCK, engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_PG_MIGRATE_LOCK_KEY})")
        command.upgrade(alembic_config(conn), revision)
