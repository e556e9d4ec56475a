"""The emulator's control API, its status pages and its timeline, over real HTTP."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from probes import ErrorKind, probe


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
    ({"type": "overloaded", "for_s": -5}, "fault.for_s: must be a positive number of seconds, got -5"),
    ({"type": "slow_tokens", "params": {"gap_ms": "fast"}}, "fault.params.gap_ms: must be a number, got 'fast'"),
    ({"type": "overloaded", "scope": {"region": "eu"}}, "fault.scope: unknown field 'region'"),
])
async def test_bad_fault_is_refused_naming_the_field(api, body, message):
    response = await api.post("/faults", json=body)
    assert response.status_code == 400
    assert response.json()["error"].startswith(message)
    assert (await api.get("/faults")).json() == []


async def test_not_json_is_refused(api):
    response = await api.post("/faults", content=b"{nope")
    assert response.status_code == 400
    assert response.json() == {"error": "body: not valid JSON"}


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
    assert (await api.post("/reset")).json() == {"reset": True}
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
