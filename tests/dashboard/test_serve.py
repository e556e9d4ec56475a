"""Starting and protecting the dashboard, and where it takes its settings from."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import settings as settings_h
from hypothesis import strategies as st

from dashboard import serve, settings
from dashboard.access import password_ok
from dashboard.windows import DEFAULT_WINDOW, WINDOWS


def test_binds_loopback_by_default():
    cmd = serve.command(python="py")
    assert cmd[:4] == ["py", "-m", "streamlit", "run"] and cmd[4].endswith("dashboard/app.py")
    assert cmd[cmd.index("--server.address") + 1] == "127.0.0.1"
    assert cmd[cmd.index("--server.port") + 1] == "8501"
    assert cmd[cmd.index("--browser.gatherUsageStats") + 1] == "false"


def test_viewers_get_no_developer_toolbar():
    """Streamlit's "Deploy" button, rerun and settings menu are for whoever develops the app, not its viewers."""
    cmd = serve.command(python="py")
    assert cmd[cmd.index("--client.toolbarMode") + 1] == "minimal"
    from airisk.up import dashboard_command

    up_cmd = dashboard_command("127.0.0.1", 8765)  # `airisk up` and `airisk dashboard` start it this way
    assert up_cmd[up_cmd.index("--client.toolbarMode") + 1] == "minimal"


@pytest.mark.parametrize(("address", "env", "allow", "refused"), [
    ("127.0.0.1", {}, False, False), ("localhost", {}, False, False), ("::1", {}, False, False),
    ("0.0.0.0", {}, False, True), ("10.1.2.3", {}, False, True),
    ("0.0.0.0", {"AIRISK_DASHBOARD_PASSWORD": "x"}, False, False),
    ("0.0.0.0", {"AIRISK_DASHBOARD_AUTH": "oidc"}, False, False),
    ("0.0.0.0", {}, True, False),
])
def test_an_open_address_needs_protection(address, env, allow, refused):
    why = serve.refusal(address, allow, env)
    assert (why is not None) == refused
    if refused:
        assert "AIRISK_DASHBOARD_PASSWORD" in why and "--allow-open" in why


@settings_h(max_examples=200)
@given(address=st.text(max_size=40), password=st.text(max_size=8), auth=st.text(max_size=6), allow=st.booleans())
def test_refusal_holds_for_any_address_and_environment(address, password, auth, allow):
    env = {"AIRISK_DASHBOARD_PASSWORD": password, "AIRISK_DASHBOARD_AUTH": auth}
    why = serve.refusal(address, allow, env, flag="--allow-unprotected")
    protected = bool(password) or auth.strip().lower() == "oidc"
    assert (why is None) == (serve.is_loopback(address) or allow or protected)
    if why is not None:
        assert why.endswith("or pass --allow-unprotected") and address in why


def test_main_refuses_an_unprotected_open_address(monkeypatch, capsys):
    monkeypatch.delenv("AIRISK_DASHBOARD_PASSWORD", raising=False)
    monkeypatch.delenv("AIRISK_DASHBOARD_AUTH", raising=False)
    with pytest.raises(SystemExit) as exc:
        serve.main(["--address", "0.0.0.0"])
    assert exc.value.code == 2 and "refusing to serve the dashboard on 0.0.0.0" in capsys.readouterr().err


def test_password_comparison():
    assert password_ok("s3cret", "s3cret") and not password_ok("s3cre", "s3cret") and not password_ok("", "x")
    assert password_ok("pässwörd", "pässwörd")


def test_config_path(tmp_path: Path):
    assert settings.config_path({"AIRISK_CONFIG": "/etc/airisk.yaml"}, tmp_path) == Path("/etc/airisk.yaml")
    assert settings.config_path({}, tmp_path) is None
    (tmp_path / "airisk.yaml").write_text("targets: []\n")
    assert settings.config_path({}, tmp_path) == tmp_path / "airisk.yaml"


def test_flags():
    assert settings.demo({"AIRISK_DEMO": "1"}) and settings.demo({"AIRISK_DEMO": "true"})
    assert not settings.demo({}) and not settings.demo({"AIRISK_DEMO": "0"})
    assert settings.password({"AIRISK_DASHBOARD_PASSWORD": ""}) is None
    assert settings.oidc({"AIRISK_DASHBOARD_AUTH": "OIDC"}) and not settings.oidc({})


def test_windows():
    assert DEFAULT_WINDOW in WINDOWS and list(WINDOWS) == ["1 h", "6 h", "24 h", "7 d", "30 d"]
    for w in WINDOWS.values():
        assert 20 <= w.span / w.step <= 400  # enough points to see a shape, few enough to draw fast
    assert WINDOWS["1 h"].all_targets_source is None and WINDOWS["30 d"].all_targets_source == "hour"
    assert WINDOWS["24 h"].span == timedelta(days=1)


def test_the_database_is_shown_without_its_password():
    from dashboard.ui import Context

    def shown(url: str) -> str:
        return Context(url, WINDOWS[DEFAULT_WINDOW], 0, None, None, None, "").database

    assert shown("postgresql+psycopg://airisk:hunter2@db.internal:5432/airisk") == "postgresql db.internal:5432/airisk"
    assert shown("sqlite:////var/lib/airisk/airisk.db") == "SQLite /var/lib/airisk/airisk.db"
