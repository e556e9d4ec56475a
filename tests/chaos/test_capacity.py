"""`airisk eval capacity` end to end (the emulator, a real SQLite file), and its open-loop arrivals against
a loopback server that counts what it receives."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import pytest
from aiohttp import web
from click.testing import CliRunner
from sqlmodel import Session

from airisk.capacitycli import capacity
from chaos.capacity import CapacityError, Criteria, Meter, OpenLoop, criteria_for, prepare
from chaos.faults import Fault
from monitor.config import parse_config
from monitor.config.features import LatencyBudget
from monitor.quality.runner import plan_feature, run_plan
from monitor.store import make_engine, migrate
from monitor.store.quality import capacity_figures
from tests.conftest import until

# -- open-loop arrivals ----------------------------------------------------------------------------------


class Counting:
    """A loopback server that counts the requests it receives and holds each until ``release`` is set."""

    def __init__(self) -> None:
        self.received = 0
        self.answered = 0
        self.release = asyncio.Event()
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        self.received += 1
        await self.release.wait()
        self.answered += 1
        return web.Response(text="ok")


@pytest.fixture
async def counting():
    server = Counting()
    app = web.Application()
    app.router.add_get("/", server.handle)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    server.url = f"http://127.0.0.1:{runner.addresses[0][1]}/"
    try:
        yield server
    finally:
        server.release.set()
        await runner.cleanup()


@pytest.fixture
async def http():
    async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=100)) as client:
        yield client


async def test_every_request_is_sent_on_schedule_whether_or_not_earlier_ones_answered(counting, http):
    run = OpenLoop(lambda i: http.get(counting.url), rate=50, count=12)
    task = asyncio.create_task(run.run())
    # The server answers nothing until all twelve have arrived: a closed loop would have sent one.
    await until(lambda: counting.received == 12, what="all twelve requests at the server")
    assert counting.answered == 0
    counting.release.set()
    arrivals = await task
    assert counting.received == 12 and counting.answered == 12
    assert [a.index for a in arrivals] == list(range(12))
    assert all(a.value.status_code == 200 and not (a.cut or a.stopped or a.shed) for a in arrivals)
    # The schedule is the rate's, taken from the start (not from each send): request i is due i/rate after it.
    start = arrivals[0].due
    assert [round(a.due - start, 6) for a in arrivals] == [round(i / 50, 6) for i in range(12)]
    assert all(a.sent >= a.due and a.latency_s >= 0 for a in arrivals)


async def test_a_request_not_done_by_the_cutoff_is_abandoned_and_counted(counting, http):
    arrivals = await OpenLoop(lambda i: http.get(counting.url), rate=100, count=5, cutoff_s=0.2).run()
    assert counting.received == 5 and counting.answered == 0
    assert all(a.cut and a.value is None and a.done is None and a.ended >= a.due for a in arrivals)


async def test_stop_sends_nothing_more_and_abandons_the_requests_in_flight(counting, http):
    run = OpenLoop(lambda i: http.get(counting.url), rate=20, count=1000)
    task = asyncio.create_task(run.run())
    await until(lambda: counting.received >= 3, what="three requests at the server")
    run.stop()
    arrivals = await task
    sent = len(arrivals)
    assert 3 <= sent < 1000
    assert all(a.stopped and a.ended >= a.sent for a in arrivals)  # none was answered: all were in flight
    await asyncio.sleep(0.2)
    assert counting.received == sent  # nothing went out after the stop


async def test_beyond_the_in_flight_bound_arrivals_are_shed_not_sent(counting, http):
    run = OpenLoop(lambda i: http.get(counting.url), rate=200, count=6, max_in_flight=2)
    task = asyncio.create_task(run.run())
    await until(lambda: len(run.arrivals) == 6, what="six arrivals due")
    counting.release.set()
    arrivals = await task
    assert [a.shed for a in arrivals] == [False, False, True, True, True, True]
    assert counting.received == 2


async def test_a_send_that_raises_fails_its_request_only():
    async def send(i: int) -> int:
        if i == 1:
            raise RuntimeError("a defect")
        return i

    arrivals = await OpenLoop(send, rate=1000, count=3).run()
    assert [a.value for a in arrivals] == [0, None, 2]
    assert arrivals[1].error == "RuntimeError: a defect"


def test_open_loop_settings_are_checked():
    for bad in ({"rate": 0, "count": 1}, {"rate": 1, "count": -1}, {"rate": 1, "count": 1, "cutoff_s": 0},
                {"rate": 1, "count": 1, "max_in_flight": 0}):
        with pytest.raises(ValueError, match="open loop"):
            OpenLoop(lambda i: None, **bad)


# -- draining what a lost step left on the backend ------------------------------------------------------------


class Backlogged:
    """A loopback OpenAI-compatible chat server whose next ``slow`` answers each take 1.5 s (the work a lost
    step abandoned, still queued), and whose others come at once."""

    def __init__(self) -> None:
        self.slow = 0
        self.asked = 0
        self.url = ""

    async def chat(self, request: web.Request) -> web.StreamResponse:
        await request.read()
        self.asked += 1
        if self.slow:
            self.slow -= 1
            await asyncio.sleep(1.5)
        response = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await response.prepare(request)
        for delta, finish in (({"content": "5"}, None), ({}, "stop")):
            body = {"id": "c", "object": "chat.completion.chunk", "created": 0, "model": "m",
                    "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
            await response.write(b"data: " + json.dumps(body).encode() + b"\n\n")
        await response.write(b"data: [DONE]\n\n")
        return response


@pytest.fixture
async def backlogged():
    server = Backlogged()
    app = web.Application()
    app.router.add_post("/v1/chat/completions", server.chat)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    server.url = f"http://127.0.0.1:{runner.addresses[0][1]}/v1"
    try:
        yield server
    finally:
        await runner.cleanup()


def _meter(url: str, client, **criteria) -> Meter:
    from monitor.quality.cases import parse_cases
    from probes import Conversation, Target

    cases = parse_cases(json.dumps(CASES[0]))
    target = Target.from_provider("openai", name="m", base_url=url, key_env=None)
    return Meter(feature="chat", target=target, cases=cases, conversations=[Conversation.from_case(cases[0])],
                 criteria=Criteria(**criteria), client=client)


async def test_after_a_lost_step_the_backlog_is_waited_out_before_the_next(backlogged, client):
    meter = _meter(backlogged.url, client, budget_ms=500)
    assert await meter.warm_up(2) == 2
    backlogged.slow = 2  # two answers still owed to requests we abandoned: each new one waits behind them
    asked = backlogged.asked
    assert await meter.drain() == 3  # two too slow (1.5 s against a 500 ms budget), then one as fast as alone
    assert backlogged.asked - asked == 3


async def test_a_backend_that_never_recovers_is_not_waited_on_forever(backlogged, client, monkeypatch):
    from chaos.capacity import step

    monkeypatch.setattr(step, "DRAIN_MAX", 2)
    meter = _meter(backlogged.url, client, budget_ms=500)
    backlogged.slow = 100
    assert await meter.drain() == 2 and backlogged.asked == 2


# -- the command, end to end -----------------------------------------------------------------------------

# The emulator answers "What is A plus B?" with the sum, then filler: "contains the sum" passes.
CASES = [{"id": f"sum-{a}-{b}", "messages": [{"role": "user", "content": f"What is {a} plus {b}?"}],
          "params": {"max_tokens": 16}, "checks": [{"type": "contains", "value": str(a + b)}]}
         for a, b in [(2, 3), (10, 20), (4, 4), (7, 1)]] + [
    {"id": "http-only", "http": {"path": "/api/chat", "json": {"q": "hi"}},
     "checks": [{"type": "length", "max_words": 9}]}]


def write_setup(folder: Path, url: str, *, budget: str = "{total: 1s}", extra: str = "") -> Path:
    (folder / "evals").mkdir(exist_ok=True)
    (folder / "evals" / "chat.jsonl").write_text("".join(json.dumps(c) + "\n" for c in CASES))
    (folder / "airisk.yaml").write_text(f"""
defaults:
  deadlines: {{connect: 2s, first_token: 3s, total: 5s, stall: 2s}}
targets:
  - {{name: gpt, provider: openai, base_url: "{url}/openai/v1", key_env: NONE_SET}}
features:
  chat:
    latency_budget: {budget}
    chain: [{{backend: gpt}}]
    eval: evals/chat.jsonl
    rate: 1
{extra}""")
    return folder / "airisk.yaml"


@pytest.fixture
def db(tmp_path):
    return f"sqlite:///{tmp_path / 'airisk.db'}"


async def invoke(*args: str, db: str):
    """The command in a thread of its own (it runs its own event loop), the emulator serving on this one."""
    fast = ["--start", "2", "--max-rate", "4", "--min-rate", "1", "--step", "1", "--min-requests", "4"]
    return await asyncio.to_thread(CliRunner().invoke, capacity, [*fast, *args], catch_exceptions=False,
                                   env={"AIRISK_DATABASE_URL": db})


def stored(db: str):
    engine = make_engine(db)
    try:
        with Session(engine) as session:
            return capacity_figures(session)
    finally:
        engine.dispose()


async def test_a_healthy_backend_holds_every_rate_up_to_max_rate_and_the_search_is_stored(tmp_path, emulator, db):
    path = write_setup(tmp_path, emulator.url)
    result = await invoke("--config", str(path), "--feature", "chat", "--backend", "gpt", db=db)
    assert result.exit_code == 0, result.output
    steps = [line for line in result.stdout.splitlines() if " rps  " in line]
    assert len(steps) == 2 and all("held" in line for line in steps)
    assert steps[0].split()[0] == "2" and steps[1].split()[0] == "4"
    assert "chat on gpt: at least 4 rps (p95 " in result.stdout and "stored as capacity #1" in result.stdout
    assert "p95 total time within 1000 ms; pass rate not judged (no eval run has judged gpt on chat yet" \
        in result.stderr
    assert "1 HTTP-only case(s) skipped" in result.stderr
    assert "is a hosted backend" in result.stderr  # the emulated OpenAI stands for a billed one
    figure = stored(db)[("chat", "gpt")]
    assert figure.rate_rps == 4 and figure.budget_ms == 1000 and figure.p95_ms < 1000
    assert [(s["rate"], s["ok"], s["requests"], s["errors"]) for s in figure.steps] == [(2, True, 4, 0),
                                                                                          (4, True, 4, 0)]
    # Latency only decides (no eval run, no min_quality), but the checks still ran and say how answers fared.
    assert [(s["pass_rate"], s["checked"]) for s in figure.steps] == [(1.0, 4), (1.0, 4)]
    # Two warm-up requests (not counted), then each step's four: nothing more, nothing less reached the backend.
    assert len([e for e in emulator.emu.log if e.get("route") == "openai" and e.get("status") == 200]) == 2 + 4 + 4


async def test_answers_that_fail_their_checks_give_capacity_zero_and_exit_1_under_the_features_traffic(
        tmp_path, emulator, db):
    path = write_setup(tmp_path, emulator.url, extra="    min_quality: 0.5")
    emulator.emu.faults.add(Fault.from_dict({"type": "wrong_answer", "route": "openai"}))
    result = await invoke("--config", str(path), "--feature", "chat", "--backend", "gpt", "--json", db=db)
    assert result.exit_code == 1, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    steps = [line["step"] for line in lines if "step" in line]
    assert [s["rate"] for s in steps] == [2, 1]  # shrinking from the start, down to --min-rate
    assert all(not s["ok"] and s["pass_rate"] == 0 and s["errors"] == 0 for s in steps)
    assert "pass rate 0% under 50%" in steps[0]["why"]
    final = lines[-1]["result"]
    assert final["rate_rps"] == 0 and final["min_pass_rate"] == 0.5 and final["traffic_rps"] == 1
    assert "min_quality 50%" in final["quality_from"]
    assert "airisk: 0 rps is under the feature's peak traffic, 1 rps (features.chat.rate)" in result.stderr
    assert stored(db)[("chat", "gpt")].rate_rps == 0


async def test_answers_slower_than_the_budget_fail_their_step(tmp_path, emulator, db):
    path = write_setup(tmp_path, emulator.url, budget="{total: 300ms}")
    emulator.emu.faults.add(Fault.from_dict({"type": "first_token_delay", "route": "openai",
                                             "params": {"delay_ms": 700}}))
    result = await invoke("--config", str(path), "--feature", "chat", "--backend", "gpt", "--json", db=db)
    steps = [json.loads(line)["step"] for line in result.stdout.splitlines() if '"step"' in line]
    assert steps and not any(s["ok"] for s in steps)
    assert all(s["late"] >= 1 and "over the 300 ms budget" in s["why"] for s in steps)
    assert stored(db)[("chat", "gpt")].rate_rps == 0


async def test_the_pass_rate_to_keep_is_the_latest_eval_runs_less_ten_points(tmp_path, emulator, db):
    path = write_setup(tmp_path, emulator.url)
    config = parse_config(path.read_text(), source=str(path))
    engine = make_engine(db)
    migrate(engine)
    async with httpx.AsyncClient() as client:
        await run_plan(plan_feature(config, "chat", base_dir=tmp_path), engine=engine, client=client)
    from chaos.capacity.run import latest_quality

    setup = prepare(config, "chat", "gpt", base_dir=tmp_path, latest=lambda f, b: latest_quality(engine, f, b))
    engine.dispose()
    assert setup.criteria.min_pass_rate == pytest.approx(0.9)  # every case passed: 100%, less 10 points
    assert setup.criteria.quality_from.startswith("the latest eval run #1 passed 100%, less 10 points")
    result = await invoke("--config", str(path), "--feature", "chat", "--backend", "gpt", db=db)
    assert result.exit_code == 0, result.output
    assert "pass rate at least 90% (the latest eval run #1 passed 100%" in result.stderr
    assert stored(db)[("chat", "gpt")].pass_rate == 1.0


# -- bad input: one line, exit 2 ---------------------------------------------------------------------------

@pytest.mark.parametrize(("args", "budget", "said"), [
    (["--feature", "search", "--backend", "gpt"], "{total: 1s}", "airisk: unknown feature 'search' (known: chat)"),
    (["--feature", "chat", "--backend", "gtp"], "{total: 1s}", "airisk: unknown backend 'gtp' (known: "),
    (["--feature", "chat", "--backend", "gpt"], "{}",
     "airisk: feature 'chat' has no latency budget, so no rate is too high: give "
     "features.chat.latency_budget.total (or first_token)"),
    (["--feature", "chat", "--backend", "gpt", "--min-rate", "5", "--max-rate", "2"], "{total: 1s}",
     "airisk: --min-rate 5 is above --max-rate 2"),
])
def test_bad_input_is_one_line_and_exit_2_with_nothing_stored(tmp_path, db, args, budget, said):
    path = write_setup(tmp_path, "http://127.0.0.1:9", budget=budget)
    result = CliRunner().invoke(capacity, ["--config", str(path), *args], env={"AIRISK_DATABASE_URL": db})
    assert result.exit_code == 2
    assert result.stderr.startswith(said) and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "airisk.db").exists()  # refused before the database was opened


def test_a_bad_eval_file_is_every_bad_line(tmp_path, db):
    path = write_setup(tmp_path, "http://127.0.0.1:9")
    (tmp_path / "evals" / "chat.jsonl").write_text('{"id": "a"}\n{not json\n')
    result = CliRunner().invoke(capacity, ["--config", str(path), "--feature", "chat", "--backend", "gpt"],
                                env={"AIRISK_DATABASE_URL": db})
    assert result.exit_code == 2
    where = str(tmp_path / "evals" / "chat.jsonl")
    lines = result.stderr.splitlines()
    assert lines[0].startswith(f"{where}:1: ") and any(line.startswith(f"{where}:2: not JSON") for line in lines)


def test_the_commands_defaults_are_the_steps():
    from airisk import capacitycli
    from chaos.capacity import step

    assert (capacitycli.STEP_S, capacitycli.MIN_REQUESTS, capacitycli.SAMPLE) == (
        step.STEP_S, step.MIN_REQUESTS, step.SAMPLE)


def test_a_feature_without_an_eval_set_is_one_line_and_exit_2(tmp_path, db):
    path = write_setup(tmp_path, "http://127.0.0.1:9")
    path.write_text(path.read_text().replace("    eval: evals/chat.jsonl\n", ""))
    result = CliRunner().invoke(capacity, ["--config", str(path), "--feature", "chat", "--backend", "gpt"],
                                env={"AIRISK_DATABASE_URL": db})
    assert result.exit_code == 2
    assert result.stderr == ("airisk: feature 'chat' has no eval set: give features.chat.eval "
                             "(a JSONL file of cases)\n")


def test_the_budget_is_total_else_first_token_and_neither_is_refused():
    config = parse_config("""
targets: [{name: gpt, provider: openai, key_env: NONE_SET}]
features: {chat: {chain: [{backend: gpt}], latency_budget: {first_token: 800ms}}}
""")
    criteria = criteria_for("chat", "gpt", config.features["chat"], None)
    assert (criteria.budget_ms, criteria.on, criteria.min_pass_rate) == (800, "first_token", None)
    with pytest.raises(CapacityError, match="no latency budget"):
        criteria_for("chat", "gpt", config.features["chat"].model_copy(update={"latency_budget": LatencyBudget()}),
                     None)
