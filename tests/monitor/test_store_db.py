"""Opening the store: where it lives, how SQLite is tuned, and that migrations equal the models."""

from __future__ import annotations

import contextlib
import fnmatch
import threading
import tomllib
from datetime import datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from setuptools import find_packages
from sqlalchemy.engine import Engine
from sqlmodel import SQLModel

from monitor.store.db import alembic_config, database_url, make_engine, migrate
from monitor.store.models import ProbeRow
from tests.monitor.conftest import Database, pg_schema

ROOT = Path(__file__).resolve().parents[2]


def test_database_url_prefers_the_env_url_and_gives_postgres_the_psycopg_driver() -> None:
    assert database_url({"AIRISK_DATABASE_URL": "postgresql://u@db/x"}) == "postgresql+psycopg://u@db/x"
    assert database_url({"AIRISK_DATABASE_URL": "postgres://u@db/x"}) == "postgresql+psycopg://u@db/x"
    assert database_url({"AIRISK_DATABASE_URL": "postgresql+psycopg://u@db/x"}) == "postgresql+psycopg://u@db/x"
    assert database_url({"AIRISK_HOME": "/srv/airisk"}) == "sqlite:////srv/airisk/airisk.db"


def test_database_url_defaults_to_the_users_data_dir() -> None:
    assert database_url({}) == f"sqlite:///{Path.home() / '.local/share/airisk/airisk.db'}"


def test_sqlite_file_gets_wal_busy_timeout_and_normal_sync(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'new' / 'dir' / 'airisk.db'}")  # the directory is created
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 5000
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
    finally:
        engine.dispose()


def test_postgres_engine_uses_psycopg_and_a_connect_timeout() -> None:
    engine = make_engine("postgres://u@127.0.0.1:1/x", connect_args={"options": "-csearch_path=s"})
    try:
        assert engine.dialect.driver == "psycopg"
        assert engine.pool._pre_ping  # type: ignore[attr-defined]
    finally:
        engine.dispose()


def _diff(engine: Engine) -> list:
    with engine.connect() as conn:
        return compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), SQLModel.metadata)


def test_migrations_build_exactly_the_models(engine: Engine) -> None:
    assert _diff(engine) == []
    with engine.connect() as conn:
        heads = ScriptDirectory.from_config(alembic_config()).get_heads()
        assert MigrationContext.configure(conn).get_current_heads() == tuple(heads)
        assert len(heads) == 1


def test_migrate_is_idempotent(engine: Engine) -> None:
    migrate(engine)
    assert _diff(engine) == []


def test_the_comparison_would_notice_a_drift(engine: Engine) -> None:
    # Guards the test above against comparing nothing: a dropped index is reported.
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP INDEX ix_rollup_hour_bucket")
    diff = _diff(engine)
    assert [d[0] for d in diff] == ["add_index"]
    assert diff[0][1].name == "ix_rollup_hour_bucket"


def test_one_line_of_revisions_from_one_initial() -> None:
    script = ScriptDirectory.from_config(alembic_config())
    revisions = list(script.walk_revisions())  # head first
    assert [r.revision for r in revisions] == ["0007_suspect", "0006_lifecycle", "0005_vantage", "0004_quality",
                                               "0003_drills", "0002_proxy_request", "0001_initial"]
    assert [r.down_revision for r in revisions] == ["0006_lifecycle", "0005_vantage", "0004_quality", "0003_drills",
                                                    "0002_proxy_request", "0001_initial", None]
    assert script.get_heads() == ["0007_suspect"]


def test_migrations_ship_with_the_package() -> None:
    # The revisions are .py files in packages, and script.py.mako matches the package data.
    packages = find_packages(str(ROOT), include=["monitor*"])
    assert {"monitor.store.migrations", "monitor.store.migrations.versions"} <= set(packages)
    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["*"]
    assert any(fnmatch.fnmatch("script.py.mako", p) for p in patterns)
    assert (ROOT / "monitor/store/migrations/script.py.mako").is_file()


def test_naive_datetimes_are_refused(engine: Engine) -> None:
    with engine.connect() as conn, pytest.raises(sa.exc.StatementError, match="naive datetime"):
        conn.execute(sa.select(ProbeRow.id).where(ProbeRow.at > datetime(2025, 1, 1)))



@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_monitors_starting_together_migrate_once(kind: str, tmp_path: Path) -> None:
    # Several services starting at the same moment on an empty database each call migrate()
    # (threads here; separate processes meet at PostgreSQL's advisory lock).
    with contextlib.ExitStack() as stack:
        if kind == "postgresql":
            db = stack.enter_context(pg_schema(migrated=False))
        else:
            db = Database("sqlite", f"sqlite:///{tmp_path / 'airisk.db'}")
            stack.callback(db.dispose)
        errors: list[BaseException] = []

        def run() -> None:
            try:
                migrate(db.engine())
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=run) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert errors == []
        assert _diff(db.engine()) == []
