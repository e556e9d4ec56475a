"""`airisk eval run` and `airisk eval reference` end to end: a config whose targets are the emulator, an eval
set beside it, the history in a real SQLite file."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from airisk.cli import main
from chaos.faults import Fault
from monitor.quality.cases import parse_cases
from tests.conftest import until
from tests.monitor.quality.test_runner import CASES, FAILED, PASSED, write_setup

REPO = Path(__file__).resolve().parents[2]


async def _airisk(home: Path, *args: str):
    """The CLI in a worker thread (it runs its own event loop; the emulator serves on the test's)."""
    env = {"AIRISK_HOME": str(home), "AIRISK_DATABASE_URL": "", "COLUMNS": "250"}
    return await asyncio.to_thread(CliRunner().invoke, main, list(args), env=env, catch_exceptions=False)


def _rows(home: Path, sql: str = "SELECT backend, case_id, passed, error_kind FROM eval_answer") -> list[tuple]:
    engine = sa.create_engine(f"sqlite:///{home / 'airisk.db'}")
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(sa.text(sql))]
    finally:
        engine.dispose()


@pytest.fixture
def home(tmp_path, emulator):
    write_setup(tmp_path, emulator.url)
    return tmp_path


# -- run ------------------------------------------------------------------------------------------------

async def test_run_prints_each_backends_figures_and_stores_every_answer(home):
    result = await _airisk(home, "eval", "run", "--config", str(home / "airisk.yaml"))
    assert result.exit_code == 0, result.output
    for backend in ("gpt", "claude", "gemini"):
        row = next(line for line in result.stdout.splitlines() if f"│ {backend} " in line)
        assert "50% [15-85%] of 4" in row and "budget 5.00s" in row
    assert result.stderr.count("1 case(s) without messages") == 1
    rows = _rows(home)
    assert len(rows) == 15 and len(set(rows)) == 15
    assert {c for b, c, passed, _ in rows if passed is not None and passed} == {c for c in PASSED}


async def test_json_is_one_object_per_feature_and_backend_with_every_field(home, emulator):
    emulator.emu.faults.add(Fault.from_dict({"type": "overloaded", "route": "anthropic"}))
    result = await _airisk(home, "eval", "run", "--config", str(home / "airisk.yaml"), "--json", "--cases", "4")
    assert result.exit_code == 0, result.output
    objs = {o["backend"]: o for o in map(json.loads, result.stdout.splitlines())}
    assert set(objs) == {"gpt", "claude", "gemini"}
    fields = {"feature", "backend", "run_id", "at", "local", "cases", "judged", "passed", "failed", "unjudged",
              "errors", "error_count", "pass_rate", "interval", "lower", "min_quality", "meets_min_quality",
              "ttft_p50_ms", "ttft_p95_ms", "total_p50_ms", "total_p95_ms", "first_token_budget_ms",
              "total_budget_ms", "ttft_over_budget", "total_over_budget", "input_tokens", "output_tokens",
              "cost_usd", "cost_per_1000_usd", "failures"}
    assert all(set(o) == fields for o in objs.values())
    gpt, claude = objs["gpt"], objs["claude"]
    assert (gpt["cases"], gpt["passed"], gpt["failed"], gpt["errors"]) == (4, 2, 2, {})
    assert [f["case"] for f in gpt["failures"]] == ["atlantis", "one-word"]
    # the overloaded backend: errors, counted apart, never quality failures
    assert (claude["errors"], claude["failed"], claude["judged"], claude["failures"]) == ({"overloaded": 4}, 0, 0, [])
    assert gpt["first_token_budget_ms"] == 5000.0 and gpt["ttft_over_budget"] is False


async def test_min_quality_unmet_exits_1_and_junit_lists_the_failed_cases(tmp_path, emulator):
    write_setup(tmp_path, emulator.url, min_quality=0.5)
    junit = tmp_path / "eval.xml"
    result = await _airisk(tmp_path, "eval", "run", "--config", str(tmp_path / "airisk.yaml"), "--backend", "gpt",
                           "--junit", str(junit))
    assert result.exit_code == 1, result.output
    assert "chat on gpt: pass rate 50% [15-85%] of 4, lower bound 15% under min_quality 50%" in result.stderr
    (suite,) = ET.parse(junit).getroot().iter("testsuite")
    (case,) = suite.iter("testcase")
    assert (suite.get("failures"), case.get("name")) == ("1", "gpt")
    text = case.find("failure").text
    assert all(f"{c}: " in text for c in FAILED) and "sum-1" not in text


async def test_an_interrupted_run_resumes_and_says_so(home, emulator):
    cases = [{"id": f"c{i:02d}", "messages": [{"role": "user", "content": f"What is {i} plus 1?"}],
              "checks": [{"type": "contains", "value": str(i + 1)}]} for i in range(40)]
    write_setup(home, emulator.url, cases=cases, extra="quality: {concurrency: 1}\n")
    emulator.emu.default_profile.ttft_ms = 100
    env = {**os.environ, "AIRISK_HOME": str(home), "AIRISK_DATABASE_URL": "", "PYTHONPATH": str(REPO)}
    command = [sys.executable, "-m", "airisk.cli", "eval", "run", "--config", str(home / "airisk.yaml"),
               "--backend", "gpt"]
    # A shell's background job (`make test &`, a CI runner) starts with SIGINT ignored, and a child inherits
    # that: the child gets the default back, as a terminal's Ctrl-C would find it.
    proc = await asyncio.create_subprocess_exec(*command, env=env, cwd=REPO, stdout=subprocess.PIPE,
                                                stderr=subprocess.PIPE,
                                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        await until(lambda: sum(1 for e in emulator.emu.log if e.get("status") == 200) >= 5, within=60,
                    what="five answers")
        # The rest answer slowly, so the run is still going when it is interrupted, however busy the machine.
        emulator.emu.default_profile.ttft_ms = 3000
        proc.send_signal(signal.SIGINT)
        _, err = await asyncio.wait_for(proc.communicate(), 30)
    finally:
        if proc.returncode is None:
            proc.kill()
    assert proc.returncode == 130, err.decode()
    assert "run the same command again to resume" in err.decode()
    emulator.emu.default_profile.ttft_ms = 100
    stored = len(_rows(home))
    assert 0 < stored < 40
    result = await _airisk(home, "eval", "run", "--config", str(home / "airisk.yaml"), "--backend", "gpt")
    assert result.exit_code == 0, result.output
    assert f"resuming an interrupted run: {stored} answer(s) already stored, {40 - stored} to go" in result.stderr
    rows = _rows(home)
    assert sorted(c for _, c, _, _ in rows) == [c["id"] for c in cases]  # each once
    assert _rows(home, "SELECT count(*) FROM eval_run") == [(1,)]


async def test_bad_input_exits_2_saying_what_is_wrong(home):
    config = str(home / "airisk.yaml")
    unknown = await _airisk(home, "eval", "run", "--config", config, "--feature", "search")
    assert unknown.exit_code == 2 and "unknown feature 'search' (known: chat)" in unknown.stderr
    backend = await _airisk(home, "eval", "run", "--config", config, "--backend", "gtp")
    assert backend.exit_code == 2 and "unknown backend 'gtp' (known: " in backend.stderr and "claude" in backend.stderr
    eval_file = home / "evals" / "chat.jsonl"
    bad_case = {**CASES[0], "id": "x", "checks": [{"type": "nope"}]}
    eval_file.write_text(json.dumps(CASES[0]) + "\n" + json.dumps(bad_case) + "\n")
    bad = await _airisk(home, "eval", "run", "--config", config)
    assert bad.exit_code == 2
    assert bad.stderr.startswith(f"{eval_file}:2: checks.0: unknown check type 'nope' (known: ")
    assert not (home / "airisk.db").exists() or _rows(home) == []  # nothing was run


# -- reference ----------------------------------------------------------------------------------------------

async def test_reference_writes_the_primarys_answers_and_keeps_every_other_byte(home):
    eval_file = home / "evals" / "chat.jsonl"
    lines = [json.dumps(c, separators=(",", ":")) for c in CASES]
    lines[1] = json.dumps({**CASES[1], "reference": "kept as written"})
    original = ("\n".join(lines[:3]) + "\n\n" + "\n".join(lines[3:]) + "\n").encode()
    eval_file.write_bytes(original)
    result = await _airisk(home, "eval", "reference", "--config", str(home / "airisk.yaml"), "--feature", "chat")
    assert result.exit_code == 0, result.output
    assert "4 reference(s) from gpt written" in result.stderr and "1 kept" in result.stderr
    assert (home / "evals" / "chat.jsonl.bak").read_bytes() == original
    new = eval_file.read_bytes()
    cases = {c.id: c for c in parse_cases(new)}
    assert cases["sum-1"].reference.startswith("5 is my answer")
    assert cases["sum-2"].reference == "kept as written"
    assert cases["http-only"].reference is None
    for before, after in zip(original.split(b"\n"), new.split(b"\n"), strict=True):
        if before != after:  # only a reference member was added at the end of the object
            assert after.startswith(before[:-1] + b',"reference":') and after.endswith(b"}")
    assert not (home / "airisk.db").exists()  # references are not measurements: nothing stored

    forced = await _airisk(home, "eval", "reference", "--config", str(home / "airisk.yaml"), "--feature", "chat",
                           "--force", "--backend", "claude", "--out", str(home / "other.jsonl"))
    assert forced.exit_code == 0, forced.output
    assert eval_file.read_bytes() == new  # --out leaves the eval file alone
    others = {c.id: c for c in parse_cases((home / "other.jsonl").read_bytes())}
    assert others["sum-2"].reference.startswith("30 is my answer")


async def test_reference_failures_are_counted_and_leave_no_reference(home, emulator):
    emulator.emu.faults.add(Fault.from_dict({"type": "overloaded", "route": "openai"}))
    eval_file = home / "evals" / "chat.jsonl"
    original = eval_file.read_bytes()
    result = await _airisk(home, "eval", "reference", "--config", str(home / "airisk.yaml"), "--feature", "chat")
    assert result.exit_code == 1
    assert "sum-1: no reference (overloaded)" in result.stderr
    assert "5 case(s) left without a reference" in result.stderr
    assert eval_file.read_bytes() == original and not (home / "evals" / "chat.jsonl.bak").exists()


async def test_reference_needs_a_known_feature(home):
    result = await _airisk(home, "eval", "reference", "--config", str(home / "airisk.yaml"), "--feature", "nope")
    assert result.exit_code == 2 and "unknown feature 'nope' (known: chat)" in result.stderr


def test_eval_is_an_airisk_command_with_its_subcommands():
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0 and "\n  eval " in result.stdout
    listed = CliRunner().invoke(main, ["eval", "--help"])
    assert listed.exit_code == 0 and "\n  run " in listed.stdout and "\n  reference " in listed.stdout
    for name, module in (("capacity", "airisk.capacitycli"), ("export", "airisk.capturecli")):
        try:
            __import__(module)
        except ImportError:
            continue
        assert f"\n  {name} " in listed.stdout  # loaded only when the eval group is asked for it
        assert CliRunner().invoke(main, ["eval", name, "--help"]).exit_code == 0
