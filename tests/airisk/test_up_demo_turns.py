"""The demo's background turns: the eval first (so "Can we own it?" has figures for the bundled model
soon after `airisk up`), then drills, the eval again every EVAL_EVERY turns — never both at once, since
both load the one local model. Unit test: a recording stand-in for the Stack; the commands themselves
are run for real by tests/airisk/test_evalcli.py and tests/chaos/test_drill_e2e.py."""

from __future__ import annotations

from pathlib import Path

from airisk.up import DEMO_EVAL_CASES, EVAL_EVERY, Ports, _drill_runner


class _Recorder:
    def __init__(self) -> None:
        self.ran: list[tuple[str, list[str], dict]] = []

    def run_once(self, name, cmd, *, env=None, keep=(), timeout):
        self.ran.append((name, cmd, dict(env or {})))
        return 0


def test_the_eval_runs_first_and_every_eval_every_turns_and_drills_take_the_rest(tmp_path: Path):
    stack = _Recorder()
    config = tmp_path / "airisk.yaml"
    env = {"AIRISK_HOME": str(tmp_path), "AIRISK_DATABASE_URL": ""}
    run = _drill_runner(stack, Ports(), env, config)
    for turn in range(EVAL_EVERY + 2):
        run(turn)
    kinds = [cmd[cmd.index("airisk.cli") + 1] for _, cmd, _ in stack.ran]
    assert kinds[0] == "eval" and kinds[EVAL_EVERY] == "eval"
    assert kinds.count("eval") == 2 and kinds.count("drill") == EVAL_EVERY
    _, first, first_env = stack.ran[0]
    assert first[-6:] == ["eval", "run", "--config", str(config), "--cases", str(DEMO_EVAL_CASES)]
    assert first_env == env  # the demo's own store, nothing else
    drills = {cmd[cmd.index("run") + 1] for _, cmd, _ in stack.ran if "drill" in cmd}
    assert len(drills) >= 2 and all(Path(d).parent == tmp_path for d in drills)  # every demo drill gets turns
