"""Dashboard fixtures: the store fixtures of tests/monitor (SQLite and PostgreSQL), and a seeded history."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlmodel import Session

from monitor.config import parse_config
from tests.dashboard.seed import CONFIG, seed
from tests.monitor.conftest import engine, session  # noqa: F401  (fixtures)

# Whole seconds, so that bins and buckets in assertions are easy to reason about.
NOW = datetime.now(UTC).replace(microsecond=0)


@pytest.fixture
def seeded(session: Session) -> dict[str, int]:  # noqa: F811
    return seed(session, NOW)


@pytest.fixture
def config():
    return parse_config(CONFIG, environ={})
