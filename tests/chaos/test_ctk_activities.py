"""chaosairisk's activities called directly, against a real emulator on a loopback port (in a thread, as
Chaos Toolkit calls them synchronously): what each returns, and the one-line error each gives."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import math
import socket
import threading
import time
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import need

need(importlib.util.find_spec("chaoslib") is not None,
     "the chaostoolkit extra is not installed: pip install 'airisk[chaostoolkit]'")

from chaos.emulator import Emulator, Profile, bound_port, serve  # noqa: E402 (after the check: the extra may be missing)
from chaosairisk import AiriskActivityFailed  # noqa: E402 (after the check: the extra may be missing)
from chaosairisk.actions import add_fault, remove_faults, reset  # noqa: E402 (after the check: the extra may be missing)
from chaosairisk.probes import drill_verdict, feature_status, probe_target  # noqa: E402 (after the check: the extra may be missing)


@pytest.fixture(scope="module")
def emulator() -> Iterator[str]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    emu = Emulator(seed=3, profile=Profile(ttft_ms=5, token_gap_ms=1, tokens=4))
    runner = asyncio.run_coroutine_threadsafe(serve(emu, port=0), loop).result(10)
    try:
        yield f"http://127.0.0.1:{bound_port(runner)}"
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


@pytest.fixture
def url(emulator: str) -> Iterator[str]:
    yield emulator
    reset(emulator)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_add_fault_is_leased_and_breaks_the_route(url):
    fault = add_fault(url, "overloaded", route="openai", lease_s=30)
    assert (fault["type"], fault["scope"]["route"]) == ("overloaded", "openai")
    assert 25 < fault["expires_at"] - time.time() <= 30
    assert probe_target("openai", url + "/openai/v1", timeout_s=5)["error_kind"] == "overloaded"
    assert probe_target("anthropic", url + "/anthropic/v1", timeout_s=5)["status"] == "up"


def test_remove_faults_one_then_all_and_a_lapsed_one_counts_as_removed(url):
    first = add_fault(url, "overloaded", route="openai")
    add_fault(url, "rate_limited", route="anthropic", params={"retry_after": 2})
    assert remove_faults(url, first["id"]) == {"removed": 1}
    assert remove_faults(url, first["id"]) == {"removed": 0}
    assert remove_faults(url) == {"removed": 1}
    assert probe_target("openai", url + "/openai/v1", timeout_s=5)["status"] == "up"


def test_reset_removes_every_fault(url):
    add_fault(url, "hang", route="openai")
    assert reset(url) == {"reset": True, "removed": 1}


@pytest.mark.parametrize(("call", "message"), [
    (lambda u: add_fault(u, "no_such"), r"airisk add_fault no_such at http://127\.0\.0\.1:\d+: fault\.type: unknown"),
    (lambda u: add_fault(u, "rate_limited", params={"nope": 1}), r"fault\.params\.nope: rate_limited takes no such"),
    (lambda u: add_fault("localhost:1", "overloaded"), r"^url: must start with http:// or https://, got 'localhost:1"),
    (lambda u: probe_target("no-such-provider", u), r"^provider: unknown 'no-such-provider'"),
    (lambda u: probe_target("openai", u, u), r"^base_url, proxy_url: give one of them, not both$"),
    (lambda u: probe_target("openai", proxy_url="ftp://x"), r"^proxy_url: must start with http:// or https://"),
])
def test_bad_arguments_fail_with_one_line_naming_them(url, call, message):
    with pytest.raises(AiriskActivityFailed, match=message) as caught:
        call(url)
    assert "\n" not in str(caught.value)


def test_nothing_listening_is_a_failure_naming_the_server():
    dead = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(AiriskActivityFailed, match=f"airisk reset at {dead}: "):
        reset(dead)
    assert feature_status(dead + "/api/chat", {"message": "hi"}, timeout_s=2)["status"] == 0


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.floats(allow_nan=True, allow_infinity=True) | st.integers() | st.text(max_size=5))
def test_any_probability_is_added_or_refused_by_name(url, probability):
    valid = isinstance(probability, int | float) and not isinstance(probability, bool) \
        and math.isfinite(probability) and 0 <= probability <= 1
    if valid:
        assert add_fault(url, "overloaded", probability=probability, lease_s=5)["probability"] == probability
    else:
        with pytest.raises(AiriskActivityFailed, match=r"fault\.probability: must be between 0 and 1"):
            add_fault(url, "overloaded", probability=probability)


REPORT = {"name": "release", "passed": False, "features": [
    {"feature": "chat", "expected": "degrade", "verdict": "degraded", "meets": True},
    {"feature": "description", "expected": "survive", "verdict": "broken", "meets": False},
]}


def test_drill_verdict_reads_a_features_verdict(tmp_path):
    report = tmp_path / "drill.json"
    report.write_text(json.dumps(REPORT))
    assert drill_verdict(str(report), "description") == {
        "feature": "description", "verdict": "broken", "expected": "survive", "meets": False, "passed": False}
    with pytest.raises(AiriskActivityFailed, match=r"feature 'search' is not in this drill \(features: chat, desc"):
        drill_verdict(str(report), "search")


def test_drill_verdict_names_the_file_and_the_problem(tmp_path):
    missing = tmp_path / "none.json"
    with pytest.raises(AiriskActivityFailed, match=f"^{missing}: cannot read the drill report"):
        drill_verdict(str(missing), "chat")
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    with pytest.raises(AiriskActivityFailed, match=f"^{bad}: not JSON"):
        drill_verdict(str(bad), "chat")
    bad.write_text(json.dumps({"features": [{"feature": 3}]}))
    with pytest.raises(AiriskActivityFailed, match=r"features\[0\]\.feature: missing or not a string"):
        drill_verdict(str(bad), "chat")


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=8),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                    max_leaves=12)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=JSON | st.fixed_dictionaries({"features": st.lists(
    st.fixed_dictionaries({"feature": st.sampled_from(["chat", "tags", 3]), "verdict": JSON}), max_size=3)}))
def test_any_json_report_gives_a_verdict_or_one_line_naming_the_file(tmp_path, data):
    report = tmp_path / "drill.json"
    report.write_text(json.dumps(data))
    try:
        out = drill_verdict(str(report), "chat")
    except AiriskActivityFailed as exc:
        assert str(exc).startswith(f"{report}: ") and "\n" not in str(exc)
    else:
        assert out["feature"] == "chat" and (out["verdict"] is None or isinstance(out["verdict"], str))
