"""Alembic environment: migrates through the connection `monitor.store.db.migrate` passes in.

Run outside `migrate` (``alembic -x url=...`` with a config pointing here), it opens
``-x url`` or `database_url()`. SQLite gets batch mode, since it cannot ALTER most things.
"""

from __future__ import annotations

from alembic import context
from sqlmodel import SQLModel

import monitor.store.lifecycle  # (model_notice, model_seen: monitor/lifecycle.py's own tables)
import monitor.store.models  # noqa: F401  (registers the tables on SQLModel.metadata)
from monitor.store.db import database_url, make_engine

target_metadata = SQLModel.metadata


def _configure_and_run(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_offline() -> None:
    url = context.get_x_argument(as_dictionary=True).get("url") or database_url()
    context.configure(url=url, target_metadata=target_metadata, literal_binds=True,
                      render_as_batch=url.startswith("sqlite"))
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _configure_and_run(connection)
        return
    url = context.get_x_argument(as_dictionary=True).get("url") or database_url()
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            _configure_and_run(conn)
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
