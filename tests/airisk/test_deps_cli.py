"""`airisk deps`: the observed feature -> provider map against the declared one, from the store."""

from __future__ import annotations

import time

from click.testing import CliRunner
from sqlmodel import Session

from airisk.cli import main
from monitor.store import make_engine, migrate
from monitor.store.proxylog import write_proxy_requests

CONFIG = """
targets: [{provider: openai}]
features:
  chat: {chain: [{backend: anthropic}, {backend: local}]}
  description: {chain: [{backend: openai}]}
"""


def _log(home, entries):
    engine = make_engine(f"sqlite:///{home / 'airisk.db'}")
    migrate(engine)
    with Session(engine) as session:
        write_proxy_requests(session=session, entries=[
            {"at": time.time(), "route": r, "feature": f, "status": s, "faults": []} for f, r, s in entries])
        session.commit()
    engine.dispose()


def test_deps_reports_what_the_config_does_not_say(tmp_path):
    (tmp_path / "airisk.yaml").write_text(CONFIG)
    _log(tmp_path, [("chat", "anthropic", 200), ("chat", "anthropic", 529), ("description", "openai", 200),
                    ("description", "gemini", 200), ("reviews", "openai", 200)])
    out = CliRunner().invoke(main, ["deps", "--config", str(tmp_path / "airisk.yaml")],
                             env={"AIRISK_HOME": str(tmp_path), "AIRISK_DATABASE_URL": ""})
    lines = out.output.splitlines()
    assert out.exit_code == 1
    assert "chat: declared anthropic -> local; seen anthropic (1/2 answered)" in lines
    assert "  fallback never seen answering: local" in lines
    assert "  undeclared dependency: description calls gemini" in lines
    assert any(line.startswith("reviews (NOT DECLARED in ") for line in lines)


def test_deps_is_quiet_when_all_is_declared_and_seen(tmp_path):
    (tmp_path / "airisk.yaml").write_text(CONFIG)
    _log(tmp_path, [("chat", "anthropic", 200), ("chat", "local", 200), ("description", "openai", 200)])
    out = CliRunner().invoke(main, ["deps", "--config", str(tmp_path / "airisk.yaml")],
                             env={"AIRISK_HOME": str(tmp_path), "AIRISK_DATABASE_URL": ""})
    assert out.exit_code == 0 and "undeclared" not in out.output and "never seen" not in out.output
