"""Drills end to end: the storefront example, the emulator, the fault proxy and Locust, all real
processes on loopback. The shipped drill files are run with their ports and durations shortened."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import httpx
import pytest
import yaml
from click.testing import CliRunner

from airisk.cli import main
from chaos.drill.runner import Stack, free_port, running_stack, start_emulator, start_proxy

ROOT = Path(__file__).resolve().parents[2]
DRILLS = ROOT / "examples" / "storefront" / "drills"
CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}


def shipped(name: str, tmp_path: Path, *, proxy: str | None = None, phases: tuple[float, ...] = (2, 5, 2),
            **changes) -> tuple[Path, dict]:
    """A shipped drill file on free ports, with shorter phases; ``proxy``: use that running proxy."""
    data = yaml.safe_load((DRILLS / name).read_text())
    port = free_port()
    data["product"]["base_url"] = f"http://127.0.0.1:{port}"
    data["product"]["start"]["command"][-1] = str(port)
    data["product"]["start"]["cwd"] = str(ROOT)  # the file is copied elsewhere; `examples` lives here
    data["proxy"] = {"url": proxy, "start": False} if proxy else {**data["proxy"], "url": f"http://127.0.0.1:{free_port()}"}
    for phase, seconds in zip(data["phases"], phases, strict=True):
        phase["duration"] = seconds
    for feature in data["features"].values():
        if "cases" in feature:  # relative to the shipped file
            feature["cases"] = str((DRILLS / feature["cases"]).resolve())
    data.update(changes)
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return path, data


def drill(*args: str, home: Path):
    return CliRunner().invoke(main, ["drill", "run", *args, "--quiet"], catch_exceptions=False,
                              env={"AIRISK_HOME": str(home), "AIRISK_DATABASE_URL": ""})


def test_openai_outage_drill_finds_each_features_strategy(tmp_path):
    # 8 s of faults: each request now draws a case, and answers as long as the feature's (a chat reply,
    # a two-sentence description) take longer than the fixed request's few words did
    path, _ = shipped("openai-outage.yaml", tmp_path, phases=(3, 8, 2))
    out = drill(str(path), "--json", str(tmp_path / "r.json"), "--junit", str(tmp_path / "r.xml"), "--workers", "2",
                home=tmp_path)
    result = json.loads((tmp_path / "r.json").read_text())
    verdicts = {f["feature"]: f["verdict"] for f in result["features"]}
    assert verdicts == {"description": "broken", "tags": "degraded", "chat": "resilient", "search": "resilient"}
    by = {f["feature"]: f for f in result["features"]}
    assert by["chat"]["answered_by"] == ["anthropic"] and by["search"]["answered_by"] == ["local"]
    assert by["tags"]["during_faults"]["backends"] == {"heuristic": by["tags"]["during_faults"]["degraded"]}
    assert by["description"]["during_faults"]["errors"].keys() == {"http_503"}
    assert all(f["during_faults"]["requests"] > 20 for f in result["features"])  # two workers' records, merged
    # Requests came from the eval sets, and the features that answered in full were checked, and passed.
    for name in ("chat", "search"):
        q = by[name]["during_faults"]["quality"]
        assert q["passed"] >= 3 and q["failed"] == 0 and q["sampled"] <= 20, (name, q)
    assert by["tags"]["during_faults"]["quality"]["sampled"] == 0  # degraded answers (the heuristic) are not checked
    # The file expects the description to survive: the gate fails, naming it, and JUnit agrees.
    assert out.exit_code == 1
    assert "description: expected to survives, was broken" in out.output
    suite = ET.parse(tmp_path / "r.xml").getroot()
    failed = [c.get("name") for c in suite.iter("testcase") if c.find("failure") is not None]
    assert failed == ["description"] and suite.get("tests") == "4"
    # ...and the run is in the monitor's database for the dashboard and the risk model.
    import sqlite3

    db = sqlite3.connect(tmp_path / "airisk.db")
    try:
        assert db.execute("SELECT name, passed FROM drill_run").fetchall() == [("openai-outage", 0)]
        assert db.execute("SELECT count(*) FROM proxy_request WHERE source LIKE 'drill:openai-outage:%'").fetchone()[0]
    finally:
        db.close()


@pytest.mark.parametrize("garbage", [True, False], ids=["garbage fallback", "good fallback"])
def test_a_fallback_answering_200_with_garbage_is_broken_and_a_good_one_resilient(tmp_path, garbage):
    """The outage a status code never shows: Anthropic overloaded, chat answered in full by the local
    model through the proxy, which (with `wrong_answer`) answers fluently and wrongly. The checks of
    the storefront's chat eval set find it; without the fault the same drill is resilient."""
    path, data = shipped("garbage-fallback.yaml", tmp_path, phases=(3, 5, 2))
    if not garbage:
        data["phases"][1]["faults"] = [f for f in data["phases"][1]["faults"] if f["type"] != "wrong_answer"]
        path.write_text(yaml.safe_dump(data))
    out = drill(str(path), "--json", str(tmp_path / "r.json"), "--junit", str(tmp_path / "r.xml"), home=tmp_path)
    chat = json.loads((tmp_path / "r.json").read_text())["features"][0]
    during = chat["during_faults"]
    # Either way every request was answered in full, by the local model: status codes see no outage.
    assert during["ok_rate"] >= 0.95 and chat["answered_by"] == ["local"], during
    assert during["requests"] > 20
    # outside the faults, Anthropic's answers do the job (none of those checked failed)
    assert chat["phases"]["baseline"]["quality"]["failed"] == chat["phases"]["recovery"]["quality"]["failed"] == 0
    q = during["quality"]
    assert q["passed"] + q["failed"] >= 5 and q["sampled"] <= 20 and q["by_backend"].keys() == {"local"}
    assert q["unjudged"] == 0  # each case's judge check is unjudged, and its other checks decide
    import sqlite3

    from sqlmodel import Session

    from monitor.store import make_engine
    from monitor.store.drills import verified_fallbacks

    engine = make_engine(f"sqlite:///{tmp_path / 'airisk.db'}")
    try:
        with Session(engine) as session:
            verified = [(v.feature, v.route) for v in verified_fallbacks(session=session)]
    finally:
        engine.dispose()
    db = sqlite3.connect(tmp_path / "airisk.db")
    try:
        stored = json.loads(db.execute("SELECT phases FROM drill_feature WHERE feature = 'chat'").fetchone()[0])
    finally:
        db.close()
    assert stored["local-garbage"]["quality"] == {**q, "faulted": True}  # what the risk model's rule reads
    if garbage:
        assert q["pass_rate"] == 0.0 and chat["verdict"] == "broken" and not chat["meets"]
        assert chat["reason"].startswith(f"answered 100% of requests, but 0 of {q['failed']} checked answers passed "
                                         "(0%, below min_pass 80%); e.g. chat-")
        assert out.exit_code == 1 and "chat: expected to survives, was broken (full answers" in out.output
        assert "checked answers passed" in out.output and "answer quality per phase" in out.output
        failure = ET.parse(tmp_path / "r.xml").getroot().find("testcase/failure")
        assert "0 of" in failure.get("message") and "below min_pass 80%" in failure.get("message")
        assert verified == []  # answering with garbage verifies nothing
    else:
        assert q["pass_rate"] == 1.0 and (chat["verdict"], chat["meets"], chat["reason"]) == ("resilient", True, None)
        assert out.exit_code == 0, out.output
        assert verified == [("chat", "local")]


def test_a_stalled_runner_puts_its_lapsed_faults_back_and_leaves_the_gap_out(tmp_path):
    """The runner stalls longer than the lease in the middle of an outage: Anthropic answers again
    for a moment (the proxy's own log shows it). The drill puts the faults back, says so, and the
    answers of that moment do not count: during the faults chat was still served by the local model."""
    from chaos.drill.runner import Options, run_drill
    from chaos.drill.spec import load_drill

    path, _ = shipped("garbage-fallback.yaml", tmp_path, phases=(2, 7, 2), lease=2)
    stalls: list[float] = []

    def stall(progress) -> None:
        if progress["index"] == 1 and not stalls and progress["elapsed"] > 3.5:
            stalls.append(time.time())
            time.sleep(3.5)  # no renewal for longer than the lease

    result, entries = run_drill(load_drill(path), Options(live=stall, base_dir=path.parent))
    assert stalls, "the fault phase never ran long enough to stall in"
    down = result.phases[1]
    anthropic = [e for e in entries if e["route"] == "anthropic" and e.get("status") == 200
                 and down.start <= e["at"] < down.end]
    assert anthropic, "the lease did not run out: nothing was tested"
    [chat] = result.features
    assert chat.answered_by == ["local"] and chat.during_faults.requests > 10, chat.during_faults
    lapses = [n for n in result.notes if " lapsed for " in n]  # the stall's, and any a loaded machine adds
    for fault in ("overloaded on route anthropic", "wrong_answer on route local"):
        assert any(n.startswith(f"local-garbage: fault {fault} lapsed for ") for n in lapses), result.notes
    assert all("left out of the phase's figures" in n for n in lapses)


@pytest.fixture
def running_proxy():
    """An emulator and a fault proxy in their own processes, outliving any drill runner."""
    with running_stack() as stack:
        yield start_proxy(stack, port=free_port(), emulator=start_emulator(stack, ttft_ms=5, gap_ms=1))


def test_guard_breach_aborts_and_removes_the_faults(tmp_path, running_proxy):
    path, _ = shipped("openai-outage.yaml", tmp_path, proxy=running_proxy, phases=(2, 60, 2),
                      guards={"min_success_rate": 0.9, "for": "1s", "max_duration": "2m"})
    started = time.monotonic()
    out = drill(str(path), "--json", str(tmp_path / "r.json"), "--no-store", home=tmp_path)
    took = time.monotonic() - started
    result = json.loads((tmp_path / "r.json").read_text())
    assert out.exit_code == 1 and "drill aborted: success rate" in out.output
    assert result["aborted"].endswith("below the floor 90% for 1s")
    down = result["phases"][1]
    assert down["end"] - down["start"] < 10 and took < 40  # not the 60 s the phase was given
    assert httpx.get(f"{running_proxy}/_airisk/faults").json() == []  # nothing left behind
    assert httpx.post(f"{running_proxy}/openai/chat/completions", json=CHAT).status_code == 200


LEASE = 5  # the runner renews every 1 s: a runner starved for up to ~4 s still keeps its fault


def test_faults_cleared_by_someone_else_stop_the_drill_and_are_not_put_back(tmp_path, running_proxy):
    """An operator stopping the damage by hand (`airisk fault clear`) mid-drill: the drill does not
    undo it, and ends, saying why (its figures would no longer describe the outage it names)."""
    path, _ = shipped("openai-outage.yaml", tmp_path, proxy=running_proxy, phases=(1, 60, 1))
    cleared: list[float] = []

    def clear_once_in_force() -> None:
        for _ in range(600):
            if httpx.get(f"{running_proxy}/_airisk/faults").json():
                time.sleep(1)
                httpx.delete(f"{running_proxy}/_airisk/faults")
                cleared.append(time.monotonic())
                return
            time.sleep(0.05)

    operator = threading.Thread(target=clear_once_in_force, daemon=True)
    operator.start()
    out = drill(str(path), "--json", str(tmp_path / "r.json"), "--no-store", home=tmp_path)
    ended = time.monotonic()
    operator.join(5)
    result = json.loads((tmp_path / "r.json").read_text())
    assert cleared and ended - cleared[0] < 15  # not the 60 s the phase was given
    assert "was removed from the proxy" in result["aborted"] and out.exit_code == 1, out.output
    assert httpx.get(f"{running_proxy}/_airisk/faults").json() == []  # not put back


def test_killed_runner_leaves_no_fault_beyond_its_lease(tmp_path, running_proxy):
    path, _ = shipped("openai-outage.yaml", tmp_path, proxy=running_proxy, phases=(1, 120, 1), lease=LEASE)
    runner = subprocess.Popen([sys.executable, "-m", "airisk.cli", "drill", "run", str(path), "--quiet", "--no-store"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              env={**os.environ, "AIRISK_HOME": str(tmp_path)})
    try:
        for _ in range(600):  # until the fault phase is on
            if httpx.get(f"{running_proxy}/_airisk/faults").json():
                break
            time.sleep(0.05)
        else:
            pytest.fail("the drill never put its fault in force")
        time.sleep(LEASE + 1)  # past one lease: renewals are keeping it alive
        assert httpx.post(f"{running_proxy}/openai/chat/completions", json=CHAT).status_code == 503
        runner.send_signal(signal.SIGKILL)
        killed = time.monotonic()
        runner.wait(5)
        while httpx.post(f"{running_proxy}/openai/chat/completions", json=CHAT).status_code != 200:
            # a lease from the last renewal (<= LEASE after the kill), + 5 s for a slow machine;
            # with no lease the fault would stay for the rest of its 120 s phase
            assert time.monotonic() - killed < LEASE + 5, f"the fault outlived its {LEASE} s lease"
            time.sleep(0.05)
        assert httpx.get(f"{running_proxy}/_airisk/faults").json() == []
        # The load generator and the product died with the runner (their keepers saw it go): traffic stops.
        time.sleep(1.5)
        seen = len(httpx.get(f"{running_proxy}/_airisk/log").json())
        time.sleep(1)
        assert len(httpx.get(f"{running_proxy}/_airisk/log").json()) == seen
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.wait()


def test_dry_run_prints_the_plan_and_starts_nothing(tmp_path):
    path, data = shipped("slow-tokens-brownout.yaml", tmp_path)
    out = drill(str(path), "--dry-run", home=tmp_path)
    assert out.exit_code == 0
    assert "brownout" in out.output and "first_token_delay on openai" in out.output
    with pytest.raises(httpx.ConnectError):  # the product was not started
        httpx.get(data["product"]["base_url"] + "/healthz")


def test_a_drill_of_a_public_host_is_refused(tmp_path):
    path, _ = shipped("openai-outage.yaml", tmp_path)
    path.write_text(path.read_text().replace("http://127.0.0.1", "http://192.0.2.10"))
    out = drill(str(path), home=tmp_path)
    assert out.exit_code == 2 and "is not loopback and not in allow_hosts" in out.output


def test_a_rate_per_feature_is_kept(tmp_path, running_proxy):
    chat = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}
    data = {
        "name": "rates", "product": {"base_url": running_proxy}, "proxy": {"url": running_proxy, "start": False},
        "features": {"busy": {"request": {"path": "/openai/chat/completions", "json": chat}, "rate": 20},
                     "quiet": {"request": {"method": "GET", "path": "/openai/models"}, "rate": 5}},
        "load": {"users": 5, "spawn_rate": 100},
        # the runner starts Locust without waiting for it: the warm phase covers its start-up
        "phases": [{"name": "warm", "duration": 3},
                   {"name": "measure", "duration": 6, "faults": [{"route": "groq", "type": "overloaded"}]}],
    }
    path = tmp_path / "rates.yaml"
    path.write_text(yaml.safe_dump(data))
    out = drill(str(path), "--json", str(tmp_path / "r.json"), "--no-store", home=tmp_path)
    result = json.loads((tmp_path / "r.json").read_text())
    counts = {f["feature"]: f["phases"]["measure"]["requests"] for f in result["features"]}
    assert out.exit_code == 0
    # 20/s and 5/s over 6 s (120 and 30): by rate, not by an even share of the users' requests.
    # The floors (a third of the rate) allow for a slow machine and still catch a rate split among
    # the feature's users once too often (busy: 4 users, 1/4 of the rate: 30). The ceilings sit
    # above the most paced users can send (one request each beyond the rate: 124 and 31) and catch
    # unpaced users, or the whole rate given to each user (busy: 480).
    assert 40 <= counts["busy"] <= 150 and 10 <= counts["quiet"] <= 45, counts
    assert counts["busy"] > 2.5 * counts["quiet"], counts


def test_rates_are_all_or_none(tmp_path):
    path, data = shipped("openai-outage.yaml", tmp_path)
    data["features"]["chat"]["rate"] = 5
    path.write_text(yaml.safe_dump(data))
    out = drill(str(path), "--dry-run", home=tmp_path)
    assert out.exit_code == 2 and "need a rate too" in out.output


def test_interrupt_has_a_one_off_command_clean_up_and_end_and_starts_no_more(tmp_path):
    """What `airisk up` does on SIGTERM: a drill under way gets Ctrl-C (it removes its faults), and
    the up's own exit does not wait for the drill to run its course."""
    stack = Stack(logs=tmp_path)
    child = ("import sys, time\nprint('ready', flush=True)\ntry:\n    time.sleep(120)\n"
             "except KeyboardInterrupt:\n    print('cleaned up', flush=True)\n    sys.exit(3)\n")
    codes = []
    thread = threading.Thread(target=lambda: codes.append(
        stack.run_once("drill", [sys.executable, "-c", child], timeout=300)))
    thread.start()
    deadline = time.monotonic() + 30
    while b"ready" not in ((tmp_path / "drill.log").read_bytes() if (tmp_path / "drill.log").exists() else b""):
        assert time.monotonic() < deadline, "the child never started"
        time.sleep(0.05)
    stack.interrupt()
    thread.join(30)
    assert codes == [3] and b"cleaned up" in (tmp_path / "drill.log").read_bytes()
    assert stack.run_once("next", [sys.executable, "-c", "print('ran')"], timeout=30) == -signal.SIGINT
    assert not (tmp_path / "next.log").exists() or b"ran" not in (tmp_path / "next.log").read_bytes()


def _descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                ppid = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(proc.name))
    out, todo = [], [root]
    while todo:
        for kid in children.get(todo.pop(), []):
            out.append(kid)
            todo.append(kid)
    return out


def test_no_child_of_a_drill_gets_a_provider_key(tmp_path, monkeypatch):
    """The emulator, the proxy, the product and Locust each get the basic environment and what they
    need, never the runner's whole environment with its keys."""
    from chaos.drill.runner import Options, run_drill
    from chaos.drill.spec import load_drill

    if not Path("/proc/self/environ").exists():
        pytest.skip("reads /proc to see the children's environment")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-planted-in-the-runner")
    path, _ = shipped("openai-outage.yaml", tmp_path, phases=(1, 2, 1))
    seen: dict[str, bool] = {}  # command -> had the key

    def look(_progress) -> None:
        for pid in _descendants(os.getpid()):
            try:
                cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
                env = Path(f"/proc/{pid}/environ").read_bytes()
            except OSError:
                continue
            for name in ("emulate", "proxy", "examples.storefront", "chaos.drill.loadgen"):
                if name in cmd and "_keeper" not in cmd:
                    seen[name] = seen.get(name, False) or b"sk-planted-in-the-runner" in env

    run_drill(load_drill(path), Options(live=look, base_dir=path.parent))
    assert seen == {"emulate": False, "proxy": False, "examples.storefront": False, "chaos.drill.loadgen": False}
