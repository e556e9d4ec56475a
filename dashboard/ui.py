"""The Streamlit side the pages share: the engine and config (cached resources), the sidebar's window
and refresh choices, a cached way to call the page queries, and empty states.

Caching lives here, not in `dashboard.queries`: each page query is cached per (database, config file
version, window, refresh tick, arguments) for one refresh interval, so a page redrawn for a widget does
not ask the database again, and auto-refresh brings new data every interval. How each page query is
called is written out once, in `PAGE_QUERIES`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import pandas as pd
import sqlalchemy as sa
import streamlit as st
from sqlalchemy.engine import Engine
from sqlmodel import Session

from dashboard import queries, settings
from dashboard.queries.features import RiskView, risk_view
from dashboard.windows import DEFAULT_WINDOW, WINDOWS, Window
from monitor.config import AiriskConfig, ConfigError, load_config
from monitor.store import database_url, make_engine, migrate

REFRESH_S = 30
"""Auto-refresh period, and how long a query's answer is reused."""
SLOW_REFRESH_S = 300
"""How long a slow answer is reused (the risk report and what-ifs: measured over 30 days, they move
slowly and cost a query per backend over raw rows, `monitor.store.queries.budget_counts`)."""
T = TypeVar("T")
_FULL_RUN_AT = "_airisk_full_run_at"


@st.cache_resource(show_spinner=False)
def engine(url: str) -> Engine:
    """One engine per database for the whole server; the schema brought to head (schema only: the
    dashboard never writes data)."""
    e = make_engine(url)
    migrate(e)
    return e


@st.cache_resource(show_spinner=False)
def _config(path: str, mtime_ns: int) -> tuple[AiriskConfig | None, str]:
    try:
        return load_config(path), ""
    except ConfigError as exc:
        return None, str(exc)


@dataclass(frozen=True, slots=True)
class Context:
    """What every page works from in this run."""

    url: str  # the database URL: a cache key only, never shown (it may hold a password)
    window: Window
    tick: int  # changes every REFRESH_S: part of every cache key
    config_path: Path | None
    config_key: tuple[str, int] | None
    config: AiriskConfig | None
    config_error: str

    @property
    def database(self) -> str:
        """The database, safe to show: ``SQLite /path`` or ``postgresql host/db`` (never a password)."""
        u = sa.engine.make_url(self.url)
        if u.get_backend_name() == "sqlite":
            return f"SQLite {u.database or '(in memory)'}"
        return f"{u.get_backend_name()} {u.host or ''}{f':{u.port}' if u.port else ''}/{u.database or ''}"


def context() -> Context:
    """The window chosen in the sidebar, the database and the config (see `dashboard.settings`)."""
    path = settings.config_path()
    key: tuple[str, int] | None = None
    config, error = None, ""
    if path is not None:
        try:
            key = (str(path), path.stat().st_mtime_ns)
            config, error = _config(*key)
        except OSError as exc:
            error = f"{path}: {exc.strerror or exc}"
    label = st.session_state.get("window", DEFAULT_WINDOW)
    return Context(database_url(), WINDOWS.get(label, WINDOWS[DEFAULT_WINDOW]), int(time.time() // REFRESH_S),
                   path, key, config, error)


@dataclass(frozen=True, slots=True)
class Given:
    """What a page query may take from this run, besides the page's own arguments."""

    session: Session
    now: datetime  # `datetime.now` of this module, read when the query runs (tests stop that clock)
    window: Window | None  # the sidebar's; None for a slow query (cached whatever the window)
    config: AiriskConfig | None


PAGE_QUERIES: dict[str, Callable[..., Any]] = {
    # name in `dashboard.queries`: how it is called, from `Given` and the page's own keyword arguments.
    "alert_table": lambda g: queries.alert_table(session=g.session, now=g.now, window=g.window),
    "comparison": lambda g: queries.comparison(session=g.session, now=g.now, window=g.window),
    "detection_vs_vendor": lambda g: queries.detection_vs_vendor(session=g.session, now=g.now, window=g.window),
    "drill_detail": lambda g, run_id: queries.drill_detail(session=g.session, run_id=run_id),
    "drill_list": lambda g: queries.drill_list(session=g.session),
    "overview": lambda g: queries.overview(session=g.session, now=g.now, config=g.config),
    "own_view": lambda g: queries.own_view(session=g.session, config=g.config, now=g.now),
    "provider_view": lambda g, target: queries.provider_view(session=g.session, now=g.now, window=g.window,
                                                             target=target),
    "target_names": lambda g: queries.target_names(session=g.session),
    "vendor_status": lambda g: queries.vendor_status(session=g.session),
    "what_if": lambda g, feature, change, backend: queries.what_if(session=g.session, config=g.config, now=g.now,
                                                                   feature=feature, change=change, backend=backend),
}
"""The page queries the views load (`load`), each as the plain call it makes."""


def load(fn: Callable[..., T], ctx: Context, *, slow: bool = False, **kwargs: Any) -> T:
    """``fn``'s answer, called as `PAGE_QUERIES` says, cached for this window and tick (``slow``: for
    `SLOW_REFRESH_S`, whatever the window, for answers that change slowly and cost much).

    ``fn`` is a page query of `dashboard.queries` listed in `PAGE_QUERIES`; ``kwargs`` are the page's own
    arguments (hashable: they are part of the cache key).
    """
    name = fn.__name__
    if getattr(queries, name, None) is not fn or name not in PAGE_QUERIES:
        raise KeyError(f"{fn.__module__}.{fn.__qualname__} is not a page query of dashboard.ui.PAGE_QUERIES")
    args = (name, ctx.url, ctx.config_key)
    if slow:
        return _cached_slow(*args, "", int(time.time() // SLOW_REFRESH_S), tuple(sorted(kwargs.items())))
    return _cached(*args, ctx.window.label, ctx.tick, tuple(sorted(kwargs.items())))


def risk(ctx: Context) -> RiskView | None:
    """The features' risk (None without features), as of at most `SLOW_REFRESH_S` ago.

    Only the first page after the dashboard starts (or after the config changes) waits for it; after
    that a page gets the latest report at once, and an expired one is recomputed in the background
    (Streamlit's ``refresh_mode="background"``), for every viewer together.
    """
    return _risk(ctx.url, ctx.config_key)


@st.cache_resource(ttl=SLOW_REFRESH_S, refresh_mode="background", max_entries=20,
                   show_spinner="Scoring the features over the last 30 days...")
def _risk(url: str, config_key: tuple[str, int] | None) -> RiskView | None:
    config = _config(*config_key)[0] if config_key else None
    with Session(engine(url)) as session:
        return risk_view(session=session, config=config, now=datetime.now(UTC))


def _call(name: str, url: str, config_key: tuple[str, int] | None, window: str,
          kwargs: tuple[tuple[str, Any], ...]) -> Any:
    config = _config(*config_key)[0] if config_key else None
    with Session(engine(url)) as session:
        given = Given(session=session, now=datetime.now(UTC), window=WINDOWS.get(window), config=config)
        return PAGE_QUERIES[name](given, **dict(kwargs))


@st.cache_data(ttl=REFRESH_S, max_entries=500, show_spinner=False)
def _cached(name: str, url: str, config_key: tuple[str, int] | None, window: str, tick: int,
            kwargs: tuple[tuple[str, Any], ...]) -> Any:
    return _call(name, url, config_key, window, kwargs)


@st.cache_data(ttl=SLOW_REFRESH_S, max_entries=100, show_spinner="Scoring the features over 30 days...")
def _cached_slow(name: str, url: str, config_key: tuple[str, int] | None, window: str, tick: int,
                 kwargs: tuple[tuple[str, Any], ...]) -> Any:
    return _call(name, url, config_key, window, kwargs)


def sidebar() -> None:
    """The window selector, auto-refresh and where the data comes from."""
    with st.sidebar:
        st.selectbox("Time window", list(WINDOWS), index=list(WINDOWS).index(DEFAULT_WINDOW), key="window")
        on = st.toggle(f"Auto-refresh every {REFRESH_S} s", value=True, key="auto_refresh")
        if st.button("Refresh now"):
            _cached.clear()
            _cached_slow.clear()
            _risk.clear()
        ctx = context()
        st.caption(f"Data: {ctx.database}")
        st.caption(f"Config: {ctx.config_path}" if ctx.config_path else "Config: none (no features)")
        st.caption(f"Updated {datetime.now(UTC):%H:%M:%S} UTC")
    if on:
        st.session_state[_FULL_RUN_AT] = time.monotonic()
        _ticker()


@st.fragment(run_every=REFRESH_S)
def _ticker() -> None:
    # A fragment on a timer reruns only itself; when no full run happened in the meantime, it asks for one.
    if time.monotonic() - st.session_state.get(_FULL_RUN_AT, 0.0) >= REFRESH_S * 0.8:
        st.rerun()


LABELS: dict[str, str] = {
    # alerts
    "created_at": "raised at", "last_error": "last error", "sent_at": "delivered at",
    "delay_s": "raised → delivered (s)",
    # targets, providers, local vs outsourced
    "last_probe": "last probe", "last_probe_at": "last probe at", "availability_24h": "available 24 h",
    "availability_7d": "available 7 d", "availability_30d": "available 30 d", "ttft_p50_ms": "TTFT p50 (ms)",
    "ttft_p95_ms": "TTFT p95 (ms)", "total_p50_ms": "total p50 (ms)", "total_p95_ms": "total p95 (ms)",
    "tokens_per_s": "tokens/s", "canary_pass_rate": "canary pass", "canary_exact": "canary exact",
    "cost_usd": "cost (USD)", "cost_per_1k_probes_usd": "USD / 1000 probes", "source": "from",
    "open_incident": "open incident", "open_posts": "open posts", "fetched_at": "fetched at",
    # incidents
    "opened_at": "opened at", "closed_at": "closed at", "vendor_first_post_at": "vendor's first post",
    "lead_time_s": "lead over vendor (s)",
    # drills
    "started_at": "started at", "faulted": "with faults", "meets": "as expected", "ok_rate": "full answers",
    "answered_rate": "any answer", "p50_ms": "p50 (ms)", "p95_ms": "p95 (ms)", "recovery_s": "recovery (s)",
    "answered_by": "answered by", "faulted_routes": "faulted routes",
    # features and their risk
    "minutes_per_month": "min/month", "outsourced_share": "outsourced", "fallbacks_verified": "fallbacks verified",
    "main_contributor": "main contributor", "seen_calling": "seen calling", "availability_used": "availability used",
    "within_budget": "within latency budget", "any_latency": "at any latency", "minutes": "min/month",
    "minutes_if_verified": "min/month if verified", "verified_at": "verified at", "verified_by": "verified by",
    "value": "value kept", "pass_rate": "pass rate", "pass_rate_low": "pass rate, 95% low",
    "pass_rate_high": "pass rate, 95% high", "judged": "cases judged", "capacity_rps": "capacity (req/s)",
    "capacity_share": "share of peak traffic held", "minutes_at_min_quality": "min/month at the minimum quality",
}
"""The header a reader sees for each column the pages show (a DataFrame keeps its names for code)."""


def label(column: str) -> str:
    """``column``'s header in words: `LABELS`, else the name with spaces for underscores."""
    return LABELS.get(column) or str(column).replace("_", " ")


def table(df: pd.DataFrame, **columns: Any) -> None:
    """``df`` as a table without its index, every column headed in words (`label`).

    ``columns`` are `st.column_config` entries by column name, for formats; a label given there wins
    (where one table means something narrower than the column's usual name). None hides a column.
    """
    config: dict[str, Any] = {}
    for name in df.columns:
        given = columns.get(name, {})
        if given is None or isinstance(given, str):
            config[name] = given
        else:
            config[name] = {**given, "label": given.get("label") or label(name)}
    st.dataframe(df, hide_index=True, column_config=config)


def empty(what: str, how: str) -> None:
    """An empty state: what is missing, and what produces it."""
    st.info(f"{what}. {how}")


def no_features(ctx: Context) -> None:
    """Says plainly why there are no features to show."""
    if ctx.config_error:
        st.error(f"The config could not be read, so features are not shown:\n\n```\n{ctx.config_error}\n```")
    elif ctx.config is None:
        empty("No features: no config found",
              f"Set {settings.CONFIG_ENV}=path/to/airisk.yaml or start the dashboard where airisk.yaml is, "
              "with a `features:` section (docs/RISK_MODEL.md).")
    else:
        empty(f"No features declared in {ctx.config_path}",
              "Add a `features:` section (each feature's chain of backends) to have them scored.")
