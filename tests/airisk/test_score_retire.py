"""`airisk score --retire-horizon`: a release fails when a feature's primary model retires within the horizon.

Run through the real CLI on a real SQLite file, with dates from the three sources: a target's ``retires:``,
the lifecycle notices a monitor stored (what listings said), and the dates airisk ships.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from click.testing import CliRunner
from sqlmodel import Session

from airisk.cli import main
from monitor.store import make_engine, migrate
from monitor.store.lifecycle import ModelNoticeRow, add_notice

TODAY = datetime.now(UTC).date()


def _home(tmp_path, config: str):
    (tmp_path / "airisk.yaml").write_text(config)
    return tmp_path


def _score(home, *args):
    return CliRunner().invoke(main, ["score", "--config", str(home / "airisk.yaml"), *args],
                              env={"AIRISK_HOME": str(home), "AIRISK_DATABASE_URL": "", "COLUMNS": "200"})


def _notice(home, **fields):
    engine = make_engine(f"sqlite:///{home / 'airisk.db'}")
    migrate(engine)
    with Session(engine) as session:
        add_notice(session=session, row=ModelNoticeRow(**{"endpoint": "anthropic http://x/v1", "targets": ["claude"],
                                                          "features": [], "message": "m", **fields}))
        session.commit()
    engine.dispose()


def test_a_primary_retiring_within_the_horizon_fails_one_line_per_feature(tmp_path):
    soon = TODAY + timedelta(days=20)
    home = _home(tmp_path, f"""
targets:
  - {{provider: anthropic, name: claude, model: claude-x, retires: {soon}}}
  - {{provider: openai, name: gpt}}
features:
  chat: {{chain: [{{backend: claude}}, {{backend: gpt}}]}}
  summary: {{chain: [{{backend: claude}}]}}
  search: {{chain: [{{backend: gpt}}, {{backend: claude}}]}}
""")
    result = _score(home, "--retire-horizon", "30d")
    assert result.exit_code == 1, result.output
    lines = [line for line in result.stderr.splitlines() if "--retire-horizon" in line]
    assert lines == [
        f"airisk: chat: its primary claude (claude-x) retires on {soon}, in 20 days (source: the target's retires:): "
        "within --retire-horizon 30d",
        f"airisk: summary: its primary claude (claude-x) retires on {soon}, in 20 days (source: the target's "
        "retires:): within --retire-horizon 30d"]  # search only falls back to it: not a primary
    assert _score(home, "--retire-horizon", "14d").exit_code == 0
    assert _score(home).exit_code == 0  # no horizon, no gate


def test_a_date_a_listing_gave_the_monitor_fails_the_release(tmp_path):
    home = _home(tmp_path, """
targets:
  - {provider: anthropic, name: claude, model: claude-x}
features:
  chat: {chain: [{backend: claude}]}
""")
    assert _score(home, "--retire-horizon", "30d").exit_code == 0
    _notice(home, key="retiring:anthropic:claude-x:30d", kind="retiring", provider="anthropic", model="claude-x",
            retires=TODAY + timedelta(days=9), source="listing", step_days=30)
    result = _score(home, "--retire-horizon", "30d", "--json")
    assert result.exit_code == 1
    gate = json.loads(result.stdout)["retire_gate"]
    assert gate["horizon"] == "30d"
    assert gate["failures"] == [f"chat: its primary claude (claude-x) retires on {TODAY + timedelta(days=9)}, in 9 "
                                "days (source: listing): within --retire-horizon 30d"]


def test_a_primary_gone_from_its_listing_fails_whatever_the_horizon(tmp_path):
    home = _home(tmp_path, """
targets:
  - {provider: anthropic, name: claude, model: claude-x}
features:
  chat: {chain: [{backend: claude}]}
""")
    _notice(home, key="vanished:anthropic http://x/v1:claude-x:2026-12-07", kind="vanished", provider="anthropic",
            model="claude-x", opened_at=datetime.now(UTC))
    result = _score(home, "--retire-horizon", "1d")
    assert result.exit_code == 1
    assert "chat: its primary claude (claude-x) has left anthropic's model listing" in result.stderr


def test_a_shipped_date_counts_and_a_past_one_says_retired(tmp_path):
    home = _home(tmp_path, """
targets:
  - {provider: anthropic, name: old, model: claude-3-opus-20240229}
features:
  legacy: {chain: [{backend: old}]}
""")
    result = _score(home, "--retire-horizon", "30d")
    assert result.exit_code == 1
    assert ("legacy: its primary old (claude-3-opus-20240229) retired on 2026-01-05 (source: "
            "https://docs.claude.com/en/docs/about-claude/model-deprecations)") in result.stderr


def test_a_bad_horizon_is_one_line_and_exit_2(tmp_path):
    home = _home(tmp_path, "targets: [{provider: openai}]\n")
    result = _score(home, "--retire-horizon", "soon")
    assert result.exit_code == 2
    assert result.stderr.startswith("airisk: --retire-horizon: ")
