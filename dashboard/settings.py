"""What the dashboard takes from its environment: where the config is, the access options, demo mode.

The database is `monitor.store.make_engine`'s (``AIRISK_DATABASE_URL``, else SQLite under ``AIRISK_HOME``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

CONFIG_ENV = "AIRISK_CONFIG"
PASSWORD_ENV = "AIRISK_DASHBOARD_PASSWORD"
AUTH_ENV = "AIRISK_DASHBOARD_AUTH"
DEMO_ENV = "AIRISK_DEMO"


def config_path(env: Mapping[str, str] = os.environ, cwd: Path | None = None) -> Path | None:
    """``AIRISK_CONFIG`` if set (even if missing: the page then says so), else ``./airisk.yaml`` if it
    exists, else None (the dashboard runs without features)."""
    given = (env.get(CONFIG_ENV) or "").strip()
    if given:
        return Path(given).expanduser()
    local = (cwd or Path.cwd()) / "airisk.yaml"
    return local if local.is_file() else None


def password(env: Mapping[str, str] = os.environ) -> str | None:
    """The shared password protecting the dashboard, or None (open: fine on 127.0.0.1, the default)."""
    return env.get(PASSWORD_ENV) or None


def oidc(env: Mapping[str, str] = os.environ) -> bool:
    """Whether to require Streamlit's OIDC login (``AIRISK_DASHBOARD_AUTH=oidc``; see dashboard/README.md)."""
    return (env.get(AUTH_ENV) or "").strip().lower() == "oidc"


def demo(env: Mapping[str, str] = os.environ) -> bool:
    """``AIRISK_DEMO=1``: the data is the emulator's demo script, and every page says so."""
    return (env.get(DEMO_ENV) or "").strip().lower() in ("1", "true", "yes", "on")
