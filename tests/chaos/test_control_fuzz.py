"""Fuzz both control APIs over real loopback HTTP: any JSON, any bytes, any content type, to every
endpoint, gets a 2xx or 4xx (never a 5xx), and the servers keep serving afterwards."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chaos.faults import FAULT_TYPES
from tests.chaos.control_fuzz import BODY_ENDPOINTS, ENDPOINTS, ControlServers

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

scalars = (st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70)
           | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=30))
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=12), inner, max_size=4), max_leaves=20)
param_names = sorted({p for t in FAULT_TYPES.values() for p in t.params})
# Shaped like a fault, with each field any value: reaches the checks past "type".
fault_like = st.fixed_dictionaries(
    {"type": st.sampled_from(sorted(FAULT_TYPES)) | json_values},
    optional={"params": st.dictionaries(st.sampled_from(param_names), json_values, max_size=3) | json_values,
              "probability": json_values, "for_s": json_values, "expires_at": json_values, "id": json_values,
              "route": st.sampled_from(["openai", "anthropic"]) | json_values, "model": json_values,
              "feature": json_values, "method": json_values, "path": json_values, "scope": json_values})
step_like = st.fixed_dictionaries({"at": st.integers(0, 3) | json_values},
                                  optional={"add": fault_like, "remove": json_values, "clear": json_values,
                                            "status": json_values, "profile": json_values})
timeline_like = st.fixed_dictionaries({"steps": st.lists(step_like, max_size=4)},
                                      optional={"repeat": json_values, "period": json_values})
profile_like = st.dictionaries(st.sampled_from(["ttft_ms", "ttft_sigma", "token_gap_ms", "tokens", "x"]),
                               json_values, max_size=3)
status_like = st.dictionaries(st.sampled_from(["name", "impact", "stage", "body", "resolve"]), json_values,
                              max_size=4)
bodies = json_values | fault_like | timeline_like | profile_like | status_like | st.fixed_dictionaries(
    {"for_s": json_values})
content_types = st.sampled_from(["application/json", "application/json; charset=utf-8", "text/plain",
                                 "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", ""])
targets = st.sampled_from([(server, method, path) for server, eps in BODY_ENDPOINTS.items() for method, path in eps])


@pytest.fixture(scope="module")
def servers():
    with ControlServers() as running:
        yield running


@SETTINGS
@given(target=targets, body=bodies)
def test_any_json_to_any_endpoint_is_never_a_server_error(servers, target, body):
    server, method, path = target
    status = servers.send(server, method, path, json.dumps(body).encode())
    assert 200 <= status < 500, (server, method, path, body, status)
    servers.reset()


@SETTINGS
@given(target=targets, body=st.binary(max_size=300), content_type=content_types)
def test_any_bytes_with_any_content_type_is_never_a_server_error(servers, target, body, content_type):
    server, method, path = target
    status = servers.send(server, method, path, body, content_type or None)
    assert 200 <= status < 500, (server, method, path, body, content_type, status)
    if content_type not in ("application/json", "application/json; charset=utf-8") and body:
        assert status == 415  # the body was refused unread
    servers.reset()


@settings(max_examples=60, deadline=None)
@given(target=st.sampled_from([(s, m, p) for s, eps in ENDPOINTS.items() for m, p in eps]),
       query=st.text(max_size=20))
def test_any_query_to_any_endpoint_is_never_a_server_error(servers, target, query):
    server, method, path = target
    status = servers.http.request(method, servers.urls[server] + path, params={"limit": query, "after": query},
                                  headers={"content-type": "application/json"}).status_code
    assert 200 <= status < 500, (server, method, path, query, status)
    servers.reset()


def test_servers_still_serve_after_the_fuzz(servers):
    # runs after the fuzz tests above (file order): whatever they sent, both servers answer
    assert servers.still_serving()


def test_the_serving_probe_goes_through_the_proxy_to_the_emulator(servers):
    # a fault at the emulator shows through the proxy: the probe of `still_serving` really crosses both
    servers.http.post(servers.urls["emulator"] + "/_airisk/faults", json={"type": "server_error"})
    assert servers.http.post(servers.urls["proxy"] + "/openai/chat/completions",
                             json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
                             ).status_code == 500
    assert servers.still_serving()  # reset first, then probe
