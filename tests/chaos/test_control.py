"""The emulator's control API, its status pages and its timeline, over real HTTP."""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import pytest

from probes import ErrorKind, probe
from tests.conftest import until


def raw_json(body) -> dict:
    """Request arguments for a JSON body as Python writes it: NaN and Infinity included (httpx's
    ``json=`` refuses them, a hostile client does not)."""
    return {"content": json.dumps(body).encode(), "headers": {"content-type": "application/json"}}


@pytest.fixture
async def api(emulator):
    async with httpx.AsyncClient(base_url=emulator.url + "/_airisk") as c:
        yield c


async def test_fault_added_over_http_breaks_only_its_route(emulator, client, api):
    response = await api.post("/faults", json={"type": "rate_limited", "route": "gemini",
                                               "params": {"retry_after": 26}})
    assert response.status_code == 201
    fault = response.json()
    assert fault["type"] == "rate_limited" and fault["scope"] == {"route": "gemini"}
    hit = await probe(emulator.target("gemini"), client=client)
    assert hit.error_kind is ErrorKind.RATE_LIMITED and hit.retry_after_s == 26 and hit.http_status == 429
    assert (await probe(emulator.target("cohere"), client=client)).ok
    assert [f["id"] for f in (await api.get("/faults")).json()] == [fault["id"]]


@pytest.mark.parametrize(("body", "message"), [
    ({"type": "explode"}, "fault.type: unknown fault 'explode'"),
    ({"type": "hang", "params": {"delay": 1}}, "fault.params.delay: hang takes no such parameter (takes: seconds)"),
    ({"type": "overloaded", "probability": 2}, "fault.probability: must be between 0 and 1, got 2"),
    ({"type": "overloaded", "route": "openia"}, "fault.route: unknown route 'openia'"),
    ({"type": "overloaded", "for_s": -5}, "fault.for_s: must be a positive number of seconds, at most 86400, got -5"),
    ({"type": "slow_tokens", "params": {"gap_ms": "fast"}}, "fault.params.gap_ms: must be a number, got 'fast'"),
    ({"type": "overloaded", "scope": {"region": "eu"}}, "fault.scope: unknown field 'region'"),
    # what a client could once set and break every request with, or never see lapse
    ({"type": "auth", "expires_at": "soon"}, "fault.expires_at: set by the server; give for_s"),
    ({"type": "auth", "expires_at": 1e300}, "fault.expires_at: set by the server"),
    ({"type": "overloaded", "for_s": float("inf")}, "fault.for_s: must be a positive number of seconds, at most 86400"),
    ({"type": "overloaded", "for_s": 86401}, "fault.for_s: must be a positive number of seconds, at most 86400"),
    ({"type": "overloaded", "for_s": True}, "fault.for_s: must be a positive number"),
    ({"type": "first_token_delay", "params": {"delay_ms": float("nan")}}, "fault.params.delay_ms: must be a number"),
    ({"type": "hang", "params": {"seconds": float("inf")}}, "fault.params.seconds: must be a number"),
    ({"type": "hang", "params": {"seconds": 10 ** 9}}, "fault.params.seconds: must be between 0 and 86400"),
    ({"type": "stream_cut", "params": {"after_chunks": 1.5}}, "fault.params.after_chunks: must be a whole number"),
    ({"type": "server_error", "params": {"status": 99}}, "fault.params.status: must be between 400 and 599"),
    ({"type": "stream_error", "params": {"error": 7}}, "fault.params.error: must be a string"),
    ({"type": "overloaded", "probability": float("nan")}, "fault.probability: must be between 0 and 1"),
    ({"type": "overloaded", "method": 5}, "fault.method: must be a string"),
    ({"type": "overloaded", "scope": {"path": ["/v1"]}}, "fault.path: must be a string"),
    ({"type": "overloaded", "scope": "everything"}, "fault.scope: must be an object"),
    ({"type": "overloaded", "id": {"a": 1}}, "fault.id: 1 to 128 letters"),
])
async def test_bad_fault_is_refused_naming_the_field(emulator, client, api, body, message):
    response = await api.post("/faults", **raw_json(body))
    assert response.status_code == 400
    assert response.json()["error"].startswith(message)
    assert (await api.get("/faults")).json() == []
    assert (await api.get("/health")).status_code == 200  # and it keeps serving
    assert (await probe(emulator.target("openai"), client=client)).ok


async def test_not_json_is_refused(api):
    response = await api.post("/faults", content=b"{nope", headers={"content-type": "application/json"})
    assert response.status_code == 400
    assert response.json() == {"error": "body: not valid JSON"}


async def test_a_fault_without_a_lease_lapses_within_a_day(api):
    before = time.time()
    added = (await api.post("/faults", json={"type": "auth", "route": "openai"})).json()
    assert before + 86400 <= added["expires_at"] <= time.time() + 86400


async def test_renew_extends_the_lease_up_to_a_day(api):
    fault = (await api.post("/faults", json={"type": "auth", "route": "openai", "for_s": 5})).json()
    renewed = await api.post(f"/faults/{fault['id']}/renew", json={"for_s": 600})
    assert renewed.status_code == 200 and renewed.json()["expires_at"] >= fault["expires_at"] + 590
    too_long = await api.post(f"/faults/{fault['id']}/renew", json={"for_s": 86400 * 2})
    assert too_long.status_code == 400 and too_long.json()["error"].startswith("for_s: must be a positive number")
    assert (await api.post("/faults/f404/renew", json={"for_s": 5})).status_code == 404
    assert (await api.post(f"/faults/{fault['id']}/renew", json=[1])).status_code == 400


@pytest.mark.parametrize(("body", "message"), [
    ({"ttft_ms": float("inf")}, "profile.ttft_ms: must be a number from 0 to 3.6e+06, got inf"),
    ({"ttft_sigma": 1e300}, "profile.ttft_sigma: must be a number from 0 to 5"),
    ({"tokens": float("nan")}, "profile.tokens: must be a number from 0 to 100000"),
    ({"tokens": 2.5}, "profile.tokens: must be a whole number"),
    ({"token_gap_ms": True}, "profile.token_gap_ms: must be a number"),
    ({"ttft_ms": 50, "tokens": -1}, "profile.tokens: must be a number from 0"),
])
async def test_bad_profile_is_refused_whole(emulator, client, api, body, message):
    response = await api.put("/profiles/*", **raw_json(body))
    assert response.status_code == 400 and response.json()["error"].startswith(message)
    assert (await api.get("/profiles")).json()["*"]["ttft_ms"] == 20  # nothing of it applied
    assert (await probe(emulator.target("openai"), client=client)).ok


async def test_remove_one_and_clear_all(emulator, client, api):
    first = (await api.post("/faults", json={"type": "auth", "route": "openai"})).json()["id"]
    await api.post("/faults", json={"type": "auth", "route": "anthropic"})
    assert (await api.delete(f"/faults/{first}")).status_code == 200
    assert (await api.delete(f"/faults/{first}")).status_code == 404
    assert (await probe(emulator.target("openai"), client=client)).ok
    assert (await api.delete("/faults")).json() == {"removed": 1}
    assert (await probe(emulator.target("anthropic"), client=client)).ok


async def test_fault_lease_expires_by_itself(emulator, client, api):
    added = (await api.post("/faults", json={"type": "server_error", "route": "openai", "for_s": 2})).json()
    assert (await probe(emulator.target("openai"), client=client)).error_kind is ErrorKind.SERVER_ERROR
    deadline = time.monotonic() + 10
    while not (await probe(emulator.target("openai"), client=client)).ok:
        assert time.monotonic() < deadline, "the fault outlived its 2 s lease by 8 s"
        await asyncio.sleep(0.05)
    assert time.time() >= added["expires_at"]  # not before its lease was up
    assert (await api.get("/faults")).json() == []


async def test_probability_rolls_per_request(emulator, client, api):
    await api.post("/faults", json={"type": "server_error", "route": "openai", "probability": 0.5})
    kinds = [(await probe(emulator.target("openai"), client=client)).error_kind for _ in range(40)]
    assert ErrorKind.OK in kinds and ErrorKind.SERVER_ERROR in kinds  # seeded: both happen


async def test_fault_scoped_by_feature_header_and_model(emulator, client, api):
    await api.post("/faults", json={"type": "overloaded", "feature": "support-chat"})
    await api.post("/faults", json={"type": "model_not_found", "model": "gpt-3.5-turbo"})
    chat = emulator.target("anthropic", headers={"X-AIRisk-Feature": "support-chat"})
    assert (await probe(chat, client=client)).error_kind is ErrorKind.OVERLOADED
    assert (await probe(emulator.target("anthropic"), client=client)).ok
    old = emulator.target("openai", model="gpt-3.5-turbo")
    assert (await probe(old, client=client)).error_kind is ErrorKind.MODEL_NOT_FOUND
    assert (await probe(emulator.target("openai"), client=client)).ok


async def test_profile_changes_latency_per_route(emulator, client, api):
    # 500 ms: ~480 ms above the default profile's 20 ms for a slow machine, and as far below the
    # probe's 1 s first-token deadline (conftest SHORT)
    response = await api.put("/profiles/groq", json={"ttft_ms": 500})
    assert response.json()["ttft_ms"] == 500
    slow = await probe(emulator.target("groq"), client=client)
    fast = await probe(emulator.target("mistral"), client=client)
    assert slow.ttft_ms >= 500 > fast.ttft_ms
    assert (await api.put("/profiles/groq", json={"ttft": 1})).json()["error"].startswith("profile.ttft: unknown")


async def test_timeline_applies_steps_in_time(emulator, client, api):
    steps = [{"at": 0, "add": {"id": "x", "type": "overloaded", "route": "anthropic"}},
             {"at": 3, "remove": "x"}]
    posted = time.monotonic()
    assert (await api.post("/timeline", json={"steps": steps})).status_code == 202
    while (await probe(emulator.target("anthropic"), client=client)).error_kind is not ErrorKind.OVERLOADED:
        assert time.monotonic() < posted + 3, "the step at 0 s was not in force before the one at 3 s"
        await asyncio.sleep(0.05)
    while not (await probe(emulator.target("anthropic"), client=client)).ok:
        assert time.monotonic() < posted + 10, "the step at 3 s had not removed the fault 10 s in"
        await asyncio.sleep(0.05)
    assert time.monotonic() >= posted + 3  # removed at its time, not before


async def test_bad_timeline_names_the_step(api):
    response = await api.post("/timeline", json={"steps": [{"at": 1, "clear": True}, {"at": -1, "clear": True}]})
    assert response.status_code == 400
    assert response.json()["error"] == "timeline.steps[1].at: seconds from the start, a number >= 0"


@pytest.mark.parametrize(("step", "message"), [
    ({"at": 0, "status": {"provider": "openai", "name": "x", "impact": "apocalyptic"}},
     "timeline.steps[1].status: status.impact: one of none, minor, major, critical"),
    ({"at": 0, "status": {"provider": "nowhere", "name": "x"}}, "timeline.steps[1].status: status.provider: unknown"),
    ({"at": 0, "status": ["openai"]}, "timeline.steps[1].status: must be an object"),
    ({"at": 0, "profile": {"route": "openai", "ttft_ms": "slow"}}, "timeline.steps[1].profile: profile.ttft_ms: must"),
    ({"at": 0, "profile": {"route": "openia"}}, "timeline.steps[1].profile: profile.route: unknown route 'openia'"),
    ({"at": 0, "remove": {"id": "x"}}, "timeline.steps[1].remove: the id of a fault"),
    ({"at": 0, "clear": "yes"}, "timeline.steps[1].clear: must be true"),
    ({"at": float("nan"), "clear": True}, "timeline.steps[1].at: seconds from the start"),
    ({"at": 0, "add": {"type": "auth", "expires_at": "soon"}}, "timeline.steps[1].add: fault.expires_at: set by"),
])
async def test_every_timeline_action_is_checked_before_any_runs(emulator, client, api, step, message):
    first = {"at": 0, "add": {"type": "auth", "route": "openai"}}
    response = await api.post("/timeline", **raw_json({"steps": [first, step]}))
    assert response.status_code == 400 and response.json()["error"].startswith(message)
    assert emulator.emu.timeline is None and (await api.get("/faults")).json() == []
    assert (await probe(emulator.target("openai"), client=client)).ok


@pytest.mark.parametrize("script", [
    {"steps": [{"at": 0, "add": {"type": "auth"}}, {"at": 0, "clear": True}], "repeat": True},
    {"steps": [{"at": 0, "add": {"type": "auth"}}], "repeat": True, "period": 0.5},
    {"steps": [{"at": 0.2, "add": {"type": "auth"}}], "repeat": True},
])
async def test_a_repeating_timeline_needs_a_period_of_a_second(api, script):
    response = await api.post("/timeline", json=script)
    assert response.status_code == 400
    assert response.json()["error"].startswith("timeline.period: a repeating timeline needs a period of at least 1 s")


async def test_a_repeating_timeline_replaces_its_fault_each_round(emulator, api):
    script = {"steps": [{"at": 0, "add": {"type": "auth", "route": "openai", "for_s": 60}}], "repeat": True,
              "period": 1}
    assert (await api.post("/timeline", json=script)).status_code == 202
    first = await _wait_for_fault(api)
    await until(lambda: emulator.emu.faults.active() and emulator.emu.faults.active()[0].created_at > first,
                20, "a second round")
    assert len(emulator.emu.faults.active()) == 1  # one fault, renewed each round, not one more per round


async def _wait_for_fault(api) -> float:
    for _ in range(500):
        faults = (await api.get("/faults")).json()
        if faults:
            return faults[0]["created_at"]
        await asyncio.sleep(0.02)
    raise AssertionError("the timeline's first step added no fault")


async def test_status_history_stays_bounded(emulator, api):
    from chaos.control import MAX_INCIDENTS, MAX_UPDATES

    for i in range(MAX_INCIDENTS + 20):
        await api.post("/status/openai", json={"name": f"incident {i}", "impact": "minor"})
        await api.post("/status/openai", json={"resolve": True})
    for _ in range(MAX_UPDATES + 20):
        await api.post("/status/openai", json={"name": "long one", "stage": "identified"})
    page = emulator.emu.pages["openai"]
    assert len(page.incidents) == MAX_INCIDENTS
    assert page.incidents[0].name == "long one" and len(page.incidents[0].updates) == MAX_UPDATES
    assert page.incidents[-1].name == "incident 21"  # the oldest went first


async def test_status_page_speaks_statuspage_v2(emulator, api):
    async with httpx.AsyncClient(base_url=emulator.url) as c:
        calm = (await c.get("/status/openai/api/v2/summary.json")).json()
        assert calm["status"] == {"indicator": "none", "description": "All Systems Operational"}
        assert calm["incidents"] == []
        posted = await api.post("/status/openai", json={"name": "Elevated error rates", "impact": "major"})
        assert posted.status_code == 200
        await api.post("/status/openai", json={"name": "Elevated error rates", "impact": "major",
                                               "stage": "identified", "body": "A fix is rolling out."})
        summary = (await c.get("/status/openai/api/v2/summary.json")).json()
        assert summary["status"]["indicator"] == "major"
        assert summary["components"][0]["status"] == "partial_outage"
        [incident] = summary["incidents"]
        assert incident["status"] == "identified"
        assert [u["status"] for u in incident["incident_updates"]] == ["identified", "investigating"]
        assert incident["incident_updates"][0]["body"] == "A fix is rolling out."
        await api.post("/status/openai", json={"resolve": True})
        after = (await c.get("/status/openai/api/v2/incidents.json")).json()
        assert after["incidents"][0]["status"] == "resolved" and after["incidents"][0]["resolved_at"]
        assert (await c.get("/status/openai/api/v2/summary.json")).json()["status"]["indicator"] == "none"
        bad = await api.post("/status/openai", json={"name": "x", "impact": "apocalyptic"})
        assert bad.json()["error"].startswith("status.impact: one of none, minor, major, critical")


async def test_log_records_route_feature_and_fault(emulator, client, api):
    await api.post("/faults", json={"type": "slow_tokens", "route": "cohere", "params": {"gap_ms": 1}})
    await probe(emulator.target("cohere", headers={"X-AIRisk-Feature": "search"}), client=client)
    [entry] = (await api.get("/log", params={"limit": 1})).json()
    assert entry["route"] == "cohere" and entry["feature"] == "search"
    assert entry["faults"] == ["slow_tokens"] and entry["status"] == 200 and entry["ttft_ms"] > 0


async def test_reset_clears_faults_profiles_and_incidents(emulator, client, api):
    await api.post("/faults", json={"type": "hang"})
    await api.put("/profiles/openai", json={"ttft_ms": 900})
    await api.post("/status/openai", json={"name": "Outage", "impact": "critical"})
    assert (await api.post("/reset")).json() == {"reset": True, "removed": 1}
    assert (await api.get("/faults")).json() == []
    assert set((await api.get("/profiles")).json()) == {"*"}
    assert (await probe(emulator.target("openai"), client=client)).ok


async def test_fault_types_lists_the_catalogue(api):
    types = {t["type"]: t for t in (await api.get("/fault-types")).json()}
    assert types["rate_limited"]["params"] == {"retry_after": 5}
    assert types["overloaded"]["expect"] == "overloaded"


async def test_models_listing_per_protocol(emulator):
    async with httpx.AsyncClient(base_url=emulator.url) as c:
        assert (await c.get("/openai/v1/models")).json()["data"][0]["id"] == "gpt-4o-mini"
        assert (await c.get("/anthropic/v1/models")).json()["data"][0]["id"] == "claude-haiku-4-5"
        assert (await c.get("/gemini/v1beta/models")).json()["models"][0]["name"] == "models/gemini-2.5-flash-lite"
        assert (await c.get("/ollama/api/tags")).json()["models"][0]["name"] == "llama3.2:1b"
        assert (await c.get("/cohere/v1/models")).json()["models"][0]["name"] == "command-r7b-12-2024"


async def test_malformed_request_gets_the_providers_400(emulator):
    async with httpx.AsyncClient(base_url=emulator.url) as c:
        r = await c.post("/anthropic/v1/messages", json={"model": "claude-haiku-4-5", "messages": []})
        assert r.status_code == 400
        assert r.json()["error"]["type"] == "invalid_request_error"
        assert "max_tokens" in r.json()["error"]["message"]
        r = await c.post("/azure-openai/openai/deployments/gpt/chat/completions",
                         json={"messages": [{"role": "user", "content": "hi"}]})
        assert r.status_code == 400 and "api-version" in r.json()["error"]["message"]
