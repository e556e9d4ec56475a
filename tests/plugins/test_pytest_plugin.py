"""airisk's pytest plugin, run the way a user's suite runs it: small test files under pytester, over the
real emulator and fault proxy on loopback ports, asserting each file's outcomes."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from airisk.pytest_plugin import AiriskPluginError, Faults

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parents[2]
# Once the pytest11 entry point is installed pytest loads the plugin by itself; before, name it.
INSTALLED = any(ep.value == "airisk.pytest_plugin" for ep in importlib.metadata.entry_points(group="pytest11"))
PLUGIN = [] if INSTALLED else ["-p", "airisk.pytest_plugin"]

CALL = '''
import httpx, pytest

def ask(base):
    return httpx.post(base + "/chat/completions", timeout=5,
                      json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]})
'''


@pytest.fixture(autouse=True)
def _quiet_ini(pytester: pytest.Pytester) -> None:
    # pytest-asyncio warns when its loop scope is unset; the in-process runs import the plugin already
    # imported by this suite, which pytest cannot rewrite again: neither concerns what is tested here.
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n"
                     "filterwarnings = ignore::pytest.PytestAssertRewriteWarning\n")


def run(pytester: pytest.Pytester, source: str, *args: str) -> pytest.RunResult:
    pytester.makepyfile(test_user=CALL + source)
    return pytester.runpytest(*PLUGIN, "-p", "no:cacheprovider", *args)


def test_the_marker_breaks_a_provider_through_the_transport_for_one_test_only(pytester):
    result = run(pytester, '''
@pytest.mark.airisk_fault("openai", "overloaded", probability=1)
def test_broken(airisk_emulator, airisk_faults):
    with httpx.Client(transport=airisk_faults.transport) as client:
        answer = client.post(airisk_emulator.base_url("openai") + "/chat/completions",
                             json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]})
    assert answer.status_code == 503
    assert [e["faults"] for e in airisk_faults.log.requests("openai")] == [["overloaded"]]
    airisk_faults.log.assert_answered_by(None)

def test_healthy_after(airisk_emulator, airisk_faults):
    with httpx.Client(transport=airisk_faults.transport) as client:
        answer = client.post(airisk_emulator.base_url("openai") + "/chat/completions",
                             json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]})
    assert answer.status_code == 200
    airisk_faults.log.assert_answered_by("openai")
''')
    result.assert_outcomes(passed=2)


def test_the_marker_breaks_a_provider_through_the_proxy_and_teardown_removes_it(pytester):
    result = run(pytester, '''
@pytest.mark.airisk_fault("openai", "server_error", via="proxy", status=502)
def test_broken(airisk_proxy, airisk_faults):
    assert ask(airisk_proxy.base_url("openai")).status_code == 502
    assert [e["status"] for e in airisk_faults.log.requests("openai")] == [502]

def test_healthy_after(airisk_proxy, airisk_faults):
    assert airisk_proxy.control.faults() == []
    assert ask(airisk_proxy.base_url("openai")).status_code == 200
    airisk_faults.add("anthropic", "overloaded", via="proxy")
    assert [f["type"] for f in airisk_proxy.control.faults()] == ["overloaded"]

def test_none_left(airisk_proxy):
    assert airisk_proxy.control.faults() == []
''')
    result.assert_outcomes(passed=3)


def test_an_async_test_uses_the_transport_and_the_session_servers(pytester):
    result = run(pytester, '''
@pytest.mark.asyncio
@pytest.mark.airisk_fault("anthropic", "rate_limited", retry_after=7)
async def test_async(airisk_emulator, airisk_faults):
    async with httpx.AsyncClient(transport=airisk_faults.transport) as client:
        answer = await client.post(airisk_emulator.base_url("anthropic") + "/v1/messages",
                                   json={"model": "claude-haiku-4-5", "max_tokens": 5,
                                         "messages": [{"role": "user", "content": "hi"}]})
    assert (answer.status_code, answer.headers["retry-after"]) == (429, "7")
    airisk_faults.log.assert_retries("anthropic", 0)
''')
    result.assert_outcomes(passed=1)


def test_the_log_helpers_count_retries_and_check_retry_after(pytester):
    result = run(pytester, '''
import time

@pytest.mark.airisk_fault("openai", "rate_limited", via="proxy", retry_after=0.3)
def test_patient(airisk_proxy, airisk_faults):
    for _ in range(3):
        answer = ask(airisk_proxy.base_url("openai"))
        assert answer.status_code == 429
        time.sleep(float(answer.headers["retry-after"]))
    airisk_faults.log.assert_retries("openai", 2)
    airisk_faults.log.assert_retry_after_honoured("openai", 0.3)

@pytest.mark.airisk_fault("openai", "rate_limited", via="proxy", retry_after=0.3)
def test_impatient(airisk_proxy, airisk_faults):
    ask(airisk_proxy.base_url("openai"))
    ask(airisk_proxy.base_url("openai"))
    airisk_faults.log.assert_retry_after_honoured("openai", 0.3)

@pytest.mark.airisk_fault("openai", "overloaded")
def test_wrong_count(airisk_emulator, airisk_faults):
    with httpx.Client(transport=airisk_faults.transport) as client:
        client.post(airisk_emulator.base_url("openai") + "/chat/completions", json={"model": "m", "messages": []})
    airisk_faults.log.assert_retries("openai", 3)
''')
    result.assert_outcomes(passed=1, failed=2)
    result.stdout.fnmatch_lines(["*openai: retried 0.0*s after a 429 with Retry-After 0.3s*",
                                 "*openai: expected 3 retries, the code made 0 (openai 503)*"])


def test_a_bad_marker_is_an_error_naming_the_problem(pytester):
    result = run(pytester, '''
@pytest.mark.airisk_fault("openai", "no_such_fault")
def test_typo():
    pass

@pytest.mark.airisk_fault("openai")
def test_missing():
    pass
''')
    result.assert_outcomes(errors=2)
    result.stdout.fnmatch_lines(["*airisk fault openai no_such_fault: fault.type: unknown fault*",
                                 "*airisk_fault takes a provider and a fault type*"])


def test_a_suite_that_does_not_use_it_is_untouched(pytester, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(ROOT))  # a fresh interpreter, importing this checkout's airisk
    pytester.makepyfile(test_plain='''
import sys, threading

def test_nothing_started():
    assert not [m for m in sys.modules if m == "chaos" or m.startswith("chaos.")]
    assert not [t for t in threading.enumerate() if t.name.startswith("airisk")]
''')
    result = pytester.runpytest_subprocess(*PLUGIN, "-p", "no:cacheprovider", "--strict-markers")
    result.assert_outcomes(passed=1)


def test_the_storefront_example_fails_on_the_missing_fallback_as_documented(pytester):
    example = ROOT / "examples" / "storefront" / "tests" / "test_outages.py"
    pytester.makepyfile(test_storefront_outages=example.read_text())  # not the name the example has in this run
    result = pytester.runpytest(*PLUGIN, "-p", "no:cacheprovider")
    result.assert_outcomes(passed=3, failed=1)
    result.stdout.fnmatch_lines(["*AssertionError: openai: HTTP 503*",
                                 "FAILED test_storefront_outages.py::test_description_survives_an_openai_outage*"])


class _NoRequest:
    def getfixturevalue(self, name: str):
        raise AssertionError("the transport path needs no fixture")


@given(st.floats(allow_nan=True, allow_infinity=True))
def test_a_probability_outside_0_1_is_refused_naming_the_field(probability):
    faults = Faults(_NoRequest())
    try:
        if 0 <= probability <= 1:
            assert faults.add("openai", "overloaded", probability=probability)["probability"] == probability
        else:
            with pytest.raises(AiriskPluginError, match=r"airisk fault openai overloaded: fault\.probability"):
                faults.add("openai", "overloaded", probability=probability)
    finally:
        faults.transport.close()


@given(st.text(max_size=20))
def test_an_unknown_via_is_refused(via):
    faults = Faults(_NoRequest())
    if via not in ("transport", "proxy"):
        with pytest.raises(AiriskPluginError, match="via="):
            faults.add("openai", "overloaded", via=via)
