"""The app as a user reads it: `AppTest` runs dashboard/app.py over a seeded SQLite history, every page."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import streamlit as st
from sqlmodel import Session
from streamlit.testing.v1 import AppTest

import dashboard
import dashboard.ui
from dashboard import access
from monitor.store import make_engine, migrate
from tests.dashboard.seed import CONFIG, seed

APP = str(Path(dashboard.__file__).parent / "app.py")
TIMEOUT = 60  # generous: CI machines are slow, and the first run imports plotly and pandas
PAGES = ["views/overview.py", "views/providers.py", "views/features.py", "views/drills.py", "views/local.py",
         "views/own.py", "views/alerts.py"]


class Frozen(datetime):
    """The dashboard's clock (``dashboard.ui.datetime``) stopped at the moment the history was seeded:
    the module's pages render minutes after seeding, and the history has points on a window's edge."""

    at = datetime.now(UTC)

    @classmethod
    def now(cls, tz=None) -> datetime:  # type: ignore[override]
        return cls.at.astimezone(tz) if tz else cls.at


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A seeded SQLite file and its airisk.yaml (shared by the module: the app only reads)."""
    home = tmp_path_factory.mktemp("airisk")
    url = f"sqlite:///{home / 'airisk.db'}"
    engine = make_engine(url)
    migrate(engine)
    with Session(engine) as session:
        seed(session, Frozen.at)
    engine.dispose()
    (home / "airisk.yaml").write_text(CONFIG)
    return {"AIRISK_HOME": str(home), "AIRISK_DATABASE_URL": url, "AIRISK_CONFIG": str(home / "airisk.yaml")}


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """No access or demo settings from the outside, and no answer cached by an earlier test."""
    for name in ("AIRISK_DASHBOARD_PASSWORD", "AIRISK_DASHBOARD_AUTH", "AIRISK_DEMO", "AIRISK_CONFIG",
                 "AIRISK_DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    st.cache_data.clear()
    st.cache_resource.clear()
    yield monkeypatch
    st.cache_data.clear()
    st.cache_resource.clear()


@pytest.fixture
def app(env: pytest.MonkeyPatch, history: dict[str, str]) -> AppTest:
    for name, value in history.items():
        env.setenv(name, value)
    env.setattr(dashboard.ui, "datetime", Frozen)
    return AppTest.from_file(APP, default_timeout=TIMEOUT)


def open_page(at: AppTest, page: str, window: str | None = None) -> AppTest:
    at.run()
    if window is not None:
        at.sidebar.selectbox(key="window").set_value(window).run()
    if page != "views/overview.py":
        at.switch_page(page).run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def texts(at: AppTest) -> str:
    """Everything a user reads on the page, as one text (tables included)."""
    parts = [e.value for kind in ("title", "subheader", "markdown", "caption", "info", "warning", "error", "success")
             for e in getattr(at, kind)]
    parts += [f"{m.label}: {m.value}" for m in at.metric]
    parts += [d.value.to_string() for d in at.dataframe]
    return "\n".join(map(str, parts))


def test_overview_grades_providers_and_the_open_incident(app: AppTest):
    at = open_page(app, "views/overview.py")
    assert at.title[0].value == "Overview"
    features = at.dataframe[0].value.set_index("feature")
    assert dict(features["grade"]) == {"description": "E", "tags": "E", "chat": "D"}  # see test_queries
    assert at.markdown[0].value.startswith("Worst: **description**, grade **E**")
    providers = at.dataframe[1].value.set_index("target")
    assert providers.loc["anthropic", "state"] == "down" and providers.loc["openai", "state"] == "up"
    assert any("**anthropic** is **DOWN**" in m.value for m in at.markdown)
    assert not at.warning  # no demo banner unless asked
    assert at.sidebar.selectbox(key="window").value == "24 h"


def test_providers_latency_incidents_and_the_vendor(app: AppTest):
    at = open_page(app, "views/providers.py")
    assert at.selectbox(key="provider_target").value == "anthropic"
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["probes"] == "306" and metrics["available"] == "93.46%"
    assert at.dataframe[0].value.iloc[0]["target"] == "anthropic"  # its open incident
    assert len(at.get("plotly_chart")) == 4  # latency, heatmap, errors, detection vs vendor
    at.sidebar.selectbox(key="window").set_value("7 d").run()
    at.selectbox(key="provider_target").set_value("openai").run()
    assert not at.exception
    incident = at.dataframe[0].value.iloc[0]
    assert (incident["target"], incident["lead_time_s"]) == ("openai", 300.0)
    assert "Ahead of the vendor in 1 of 1 incidents; median lead 5m 00s." in texts(at)
    assert "Last 7 d, from the hour rollups" in texts(at)


def test_features_map_breakdown_and_what_if(app: AppTest):
    at = open_page(app, "views/features.py")
    assert at.error[0].value == "**chat** calls **gemini**: seen calling it; not in the feature's chain"
    at.selectbox(key="breakdown_feature").set_value("tags").run()
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["grade"] == "E" and metrics["outsourced"] == "100%"
    assert "unverified: no drill showed it answering" in at.dataframe[0].value.to_string()
    assert "local added" not in texts(at)  # a what-if is computed when asked
    at.selectbox(key="what_if_feature").set_value("description")
    at.selectbox(key="what_if_change").set_value("add")
    at.selectbox(key="what_if_backend").set_value("local")
    at.button[0].click().run()
    assert not at.exception
    (line,) = [m.value for m in at.markdown if m.value.startswith("**description**")]
    assert "local added as a verified fallback" in line and "grade E → **A**" in line


def test_drills_timeline_and_verdicts(app: AppTest):
    at = open_page(app, "views/drills.py")
    assert at.subheader[0].value == "anthropic-outage: failed"
    lines = [m.value for m in at.markdown]
    assert "**chat**: resilient (expected survives), :green[met]" in lines
    assert "**description**: broken (expected survives), :red[NOT met]" in lines
    assert len(at.get("plotly_chart")) == 1
    phases = at.dataframe[2].value
    assert list(phases[phases["faulted"]]["faults"]) == ["anthropic: overloaded"]


def test_local_beside_hosted(app: AppTest):
    at = open_page(app, "views/local.py", window="1 h")
    rows = at.dataframe[0].value
    assert list(rows["target"]) == ["local", "anthropic", "openai"] and list(rows["owned"]) == [True, False, False]
    assert rows.iloc[0]["cost_usd"] == 0 and rows.iloc[0]["canary_pass_rate"] == 1.0
    assert not at.info  # there is an owned model to compare


def test_alerts_channel_and_delivery(app: AppTest):
    at = open_page(app, "views/alerts.py")
    metrics = {m.label: m.value for m in at.metric}
    assert (metrics["alerts"], metrics["delivered"], metrics["not delivered"]) == ("2", "1", "1")
    alerts = at.dataframe[0].value.set_index("channel")
    assert alerts.loc["oncall", "delivered"] == "delivered"
    assert alerts.loc["team-slack", "last_error"] == "HTTP 404 from Slack: no_service"


def headers(table) -> list[str]:
    """The column headers a viewer sees in a table: each shown column's label, else its name."""
    config = json.loads(table.proto.columns or "{}")
    return [config.get(c, {}).get("label") or c for c in table.value.columns if not config.get(c, {}).get("hidden")]


@pytest.mark.parametrize("page", PAGES)
def test_every_table_is_headed_in_words(app: AppTest, page: str):
    at = open_page(app, page)
    if page == "views/providers.py":  # the status page table, and the incidents one (openai has one in 7 d)
        at.sidebar.selectbox(key="window").set_value("7 d").run()
        at.selectbox(key="provider_target").set_value("openai").run()
    shown = [headers(t) for t in at.dataframe]
    assert shown and all(shown)
    assert not [h for table in shown for h in table if "_" in h], shown
    if page == "views/overview.py":
        assert "main contributor" in shown[0] and "min/month" in shown[0]


@pytest.mark.parametrize("page", PAGES)
def test_no_secret_on_any_page(app: AppTest, page: str):
    at = open_page(app, page)
    assert "hunter2" not in texts(at)


def test_a_target_is_described_without_its_credentials(app: AppTest):
    at = open_page(app, "views/providers.py")
    at.selectbox(key="provider_target").set_value("local").run()
    assert "local · gemma-3-270m · http://127.0.0.1:8011/v1 · owned (local)" in [c.value for c in at.caption]


@pytest.mark.parametrize("page", PAGES)
def test_every_page_has_an_empty_state(env: pytest.MonkeyPatch, tmp_path: Path, page: str):
    env.setenv("AIRISK_DATABASE_URL", f"sqlite:///{tmp_path / 'empty.db'}")
    env.chdir(tmp_path)  # no ./airisk.yaml either
    at = open_page(AppTest.from_file(APP, default_timeout=TIMEOUT), page)
    said = texts(at)
    assert any(hint in said for hint in ("airisk monitor", "airisk drill run", "No features: no config found",
                                         "alerts:")), said


def test_a_config_that_cannot_be_read_is_said(env: pytest.MonkeyPatch, history: dict[str, str], tmp_path: Path):
    env.setenv("AIRISK_DATABASE_URL", history["AIRISK_DATABASE_URL"])
    bad = tmp_path / "airisk.yaml"
    bad.write_text("targets: [{provider: nope}]\n")
    env.setenv("AIRISK_CONFIG", str(bad))
    at = open_page(AppTest.from_file(APP, default_timeout=TIMEOUT), "views/features.py")
    assert "The config could not be read" in at.error[0].value and "nope" in at.error[0].value


def test_demo_data_is_labelled(app: AppTest, env: pytest.MonkeyPatch):
    env.setenv("AIRISK_DEMO", "1")
    at = open_page(app, "views/drills.py")
    assert "DEMO DATA" in at.warning[0].value


class Clock:
    """The password back-off's clock, turned by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(env: pytest.MonkeyPatch) -> Clock:
    """A fresh back-off on a clock the test turns, and the password set."""
    c = Clock()
    env.setattr(access, "GUESSES", access.Backoff(clock=c))
    env.setenv("AIRISK_DASHBOARD_PASSWORD", "s3cret")
    return c


def guess(at: AppTest, password: str) -> AppTest:
    return at.text_input(key="_airisk_password").input(password).run()


def test_password_gate(app: AppTest, clock: Clock):
    app.run()
    assert not app.exception and not app.dataframe  # nothing shown before the password
    guess(app, "guess")
    assert app.error[0].value == "Wrong password. The next try is taken in 1 second." and not app.dataframe
    clock.now += 1
    guess(app, "s3cret")
    assert not app.exception and app.title[0].value == "Overview" and app.dataframe
    app.switch_page("views/alerts.py").run()  # once given, it holds for the session
    assert app.title[0].value == "Alerts" and not app.text_input


def test_the_right_password_during_the_back_off_is_refused_until_it_lapses(app: AppTest, clock: Clock):
    app.run()
    guess(app, "guess")
    clock.now += 0.5
    guess(app, "s3cret")
    assert app.error[0].value == "Too many wrong passwords: try again in 1 second." and not app.dataframe
    guess(app, "guess")  # guesses during the wait are not compared, and do not lengthen it
    clock.now += 0.5
    guess(app, "s3cret")
    assert not app.exception and app.title[0].value == "Overview" and app.dataframe


def test_the_wait_doubles_and_a_new_session_does_not_escape_it(app: AppTest, clock: Clock):
    app.run()
    for wait in ("1 second", "2 seconds", "4 seconds"):
        guess(app, "guess")
        assert app.error[0].value == f"Wrong password. The next try is taken in {wait}."
        clock.now += int(wait.split()[0])
    guess(app, "guess")
    fresh = AppTest.from_file(APP, default_timeout=TIMEOUT).run()  # another browser session, same address
    guess(fresh, "s3cret")
    assert fresh.error[0].value == "Too many wrong passwords: try again in 8 seconds." and not fresh.dataframe


def test_oidc_login_is_required_when_asked(app: AppTest, env: pytest.MonkeyPatch):
    env.setenv("AIRISK_DASHBOARD_AUTH", "oidc")
    app.user = {}  # nobody logged in
    app.run()
    assert not app.exception
    assert [b.label for b in app.button] == ["Log in"] and not app.dataframe
    app.user = {"is_logged_in": True, "email": "lead@example.com"}
    app.switch_page("views/drills.py").run()
    assert not app.exception and app.title[0].value == "Drills"
    assert "Logged in as lead@example.com" in [c.value for c in app.sidebar.caption]


def test_a_pages_link_opens_its_target_and_incident(app: AppTest):
    # monitor/alerts/impact.py links a page to /providers?target=NAME&incident=ID.
    app.query_params["target"] = "openai"
    app.query_params["incident"] = "2"  # the seed's closed openai incident, two days old (tests/dashboard/seed.py)
    at = open_page(app, "views/providers.py")
    assert at.selectbox(key="provider_target").value == "openai"  # not the first name, anthropic
    assert any(i.value.startswith("Incident 2 of the page is not in the last 24 h") for i in at.info)
    at.sidebar.selectbox(key="window").set_value("7 d").run()
    assert not at.exception, [e.message for e in at.exception]
    assert at.dataframe[0].value.iloc[0]["id"] == 2
    [told] = [i.value for i in at.info if i.value.startswith("The incident of the page")]
    assert "openai DOWN since" in told and "30m" in told, told


def test_a_link_to_a_target_not_probed_is_ignored_and_never_shown(app: AppTest):
    app.query_params["target"] = "<b>evil</b>"
    app.query_params["incident"] = "1 OR 1=1"
    at = open_page(app, "views/providers.py")
    assert at.selectbox(key="provider_target").value == "anthropic"
    assert "evil" not in texts(at) and not [i for i in at.info if "of the page" in i.value]
