"""Faults only from who may set them: both control APIs refuse web pages, rebinding hosts, bodies
that are not JSON, and (served beyond loopback) callers without the token; over real HTTP."""

from __future__ import annotations

import json

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from chaos.controlguard import MAX_BODY, TOKEN_ENV, ControlGuard, ControlGuardError
from chaos.emulator import Emulator, bound_port, serve
from chaos.proxy import FaultProxy
from chaos.proxyserve import serve_proxy
from chaos.routes import catalog_routes

FAULT = json.dumps({"type": "overloaded", "route": "openai"}).encode()
TOKEN = "s3cret-token"


@pytest.fixture(params=["emulator", "proxy"])
async def control(request, emulator):
    """(base URL, a function that lists the faults in force) of the emulator's or the proxy's control API."""
    if request.param == "emulator":
        yield emulator.url, emulator.emu.faults.active
        return
    running = await serve_proxy(FaultProxy(catalog_routes(emulator.url)), port=0)
    try:
        yield running.url, running.proxy.faults.active
    finally:
        await running.stop()


@pytest.fixture(params=["emulator", "proxy"])
async def tokened(request):
    """A control API that needs the bearer token, on loopback: (base URL, faults in force)."""
    guard = ControlGuard(token=TOKEN)
    if request.param == "emulator":
        emu = Emulator(seed=1)
        runner = await serve(emu, port=0, guard=guard)
        try:
            yield f"http://127.0.0.1:{bound_port(runner)}", emu.faults.active
        finally:
            await runner.cleanup()
        return
    running = await serve_proxy(FaultProxy({}), port=0, guard=guard)
    try:
        yield running.url, running.proxy.faults.active
    finally:
        await running.stop()


async def test_a_page_posting_text_plain_from_another_site_adds_no_fault(control):
    url, active = control
    async with httpx.AsyncClient() as c:
        # what a page's fetch(..., {method: "POST", mode: "no-cors", body}) sends: no preflight
        page = await c.post(f"{url}/_airisk/faults", content=FAULT,
                            headers={"content-type": "text/plain;charset=UTF-8", "origin": "https://evil.example"})
        plain = await c.post(f"{url}/_airisk/faults", content=FAULT, headers={"content-type": "text/plain"})
        form = await c.post(f"{url}/_airisk/reset", headers={"origin": "null"})
    assert page.status_code == 403 and page.json()["error"].startswith("Origin: 'https://evil.example' is another site")
    assert plain.status_code == 415 and plain.json()["error"].startswith("Content-Type: must be application/json")
    assert form.status_code == 403 and form.json()["error"].startswith("Origin: 'null'")
    assert active() == []


async def test_a_rebinding_page_cannot_read_the_log_or_add_faults(control):
    url, active = control
    async with httpx.AsyncClient() as c:
        # DNS rebinding: the browser reaches 127.0.0.1 but names the attacker's domain
        read = await c.get(f"{url}/_airisk/log", headers={"host": "attacker.example:8480"})
        add = await c.post(f"{url}/_airisk/faults", content=FAULT,
                           headers={"host": "attacker.example", "content-type": "application/json",
                                    "origin": "http://attacker.example"})
    assert read.status_code == 403 and read.json()["error"].startswith("Host: 'attacker.example:8480' is not")
    assert add.status_code == 403
    assert active() == []


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "LOCALHOST:9", "[::1]:8480", "127.0.0.2"])
async def test_loopback_callers_and_pages_still_work(control, host):
    url, active = control
    async with httpx.AsyncClient() as c:
        added = await c.post(f"{url}/_airisk/faults", content=FAULT,
                             headers={"host": host, "origin": f"http://{host}", "content-type": "application/json"})
        bare = await c.post(f"{url}/_airisk/reset", headers={"host": host})  # no body, no content type
    assert added.status_code == 201, added.text
    assert bare.status_code == 200 and active() == []


async def test_a_body_over_the_cap_is_413(control):
    url, active = control
    big = b'{"type": "overloaded", "pad": "' + b"x" * MAX_BODY + b'"}'
    async with httpx.AsyncClient() as c:
        told = await c.post(f"{url}/_airisk/faults", content=big, headers={"content-type": "application/json"})

        async def chunks():  # no Content-Length: the cap must hold while reading
            for i in range(0, len(big), 65536):
                yield big[i:i + 65536]

        streamed = await c.post(f"{url}/_airisk/timeline", content=chunks(),
                                headers={"content-type": "application/json"})
        after = await c.get(f"{url}/_airisk/health")
    assert told.status_code == 413 and told.json()["error"] == f"body: larger than {MAX_BODY} bytes"
    assert streamed.status_code == 413  # (the proxy has no timeline: refused before it looks)
    assert after.status_code == 200 and active() == []


async def test_the_token_is_required_when_set(tokened):
    url, active = tokened
    async with httpx.AsyncClient() as c:
        none = await c.post(f"{url}/_airisk/faults", json={"type": "overloaded"})
        wrong = await c.get(f"{url}/_airisk/log", headers={"authorization": "Bearer s3cret-tokem"})
        basic = await c.get(f"{url}/_airisk/faults", headers={"authorization": f"Basic {TOKEN}"})
        right = await c.post(f"{url}/_airisk/faults", json={"type": "overloaded"},
                             headers={"authorization": f"Bearer {TOKEN}"})
    assert none.status_code == 401 and none.headers["www-authenticate"].startswith("Bearer")
    assert none.json()["error"].startswith("Authorization: this control API needs 'Authorization: Bearer <token>'")
    assert TOKEN not in none.text
    assert wrong.status_code == basic.status_code == 401
    assert right.status_code == 201 and len(active()) == 1


def test_external_without_a_token_is_refused_in_one_line():
    with pytest.raises(ControlGuardError, match=f"--allow-external: set {TOKEN_ENV}") as raised:
        ControlGuard.for_server("0.0.0.0", allow_external=True, environ={})
    assert "\n" not in str(raised.value)
    assert ControlGuard.for_server("0.0.0.0", allow_external=False, environ={}) == ControlGuard()


def test_external_names_the_bound_host_or_any_with_a_wildcard():
    named = ControlGuard.for_server("box.lan", allow_external=True, environ={TOKEN_ENV: TOKEN})
    auth = f"Bearer {TOKEN}"
    assert named.check(host="box.lan:8480", origin=None, content_type=None, authorization=auth, has_body=False) is None
    assert named.check(host="other.lan", origin=None, content_type=None, authorization=auth,
                       has_body=False).status == 403
    wild = ControlGuard.for_server("0.0.0.0", allow_external=True, environ={TOKEN_ENV: TOKEN})
    assert wild.check(host="10.1.2.3:8480", origin=None, content_type=None, authorization=auth, has_body=False) is None
    assert wild.check(host="10.1.2.3", origin=None, content_type=None, authorization=None, has_body=False).status == 401


headers = st.none() | st.text(max_size=40) | st.sampled_from(
    ["127.0.0.1:1", "[::1]", "[::1]:x", "[", "a:b:c", "localhost.", "http://127.0.0.1", "null", "Bearer x"])


@given(host=headers, origin=headers, content_type=headers, authorization=headers, has_body=st.booleans(),
       token=st.none() | st.text(min_size=1, max_size=8))
def test_the_check_never_raises_and_always_says_why(host, origin, content_type, authorization, has_body, token):
    refusal = ControlGuard(token=token).check(host=host, origin=origin, content_type=content_type,
                                              authorization=authorization, has_body=has_body)
    if refusal is not None:
        assert refusal.status in (401, 403, 415)
        assert refusal.message.split(":")[0] in ("Host", "Origin", "Authorization", "Content-Type")
        assert "\n" not in refusal.message
