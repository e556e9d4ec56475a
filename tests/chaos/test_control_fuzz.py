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

# Values that broke a check somewhere once (NaN, Infinity, a bool for a number, a huge number,
# a string for a number, a container for a string), mixed into any JSON.
odd = st.sampled_from([float("nan"), float("inf"), float("-inf"), -1, 0, 0.5, 1e300, 2**64, True, False, None,
                       "soon", "", [], {}, ["openai"], {"a": 1}])
scalars = (odd | st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70)
           | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=30))
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=12), inner, max_size=4), max_leaves=20)
param_names = sorted({p for t in FAULT_TYPES.values() for p in t.params})
# Shaped like a fault, with each field any value: reaches the checks past "type".
fault_like = st.fixed_dictionaries(
    {"type": st.sampled_from(sorted(FAULT_TYPES)) | json_values},
    optional={"params": st.dictionaries(st.sampled_from(param_names), odd | json_values, max_size=3) | json_values,
              "probability": odd | json_values, "for_s": odd | json_values, "expires_at": odd | json_values,
              "id": odd | json_values, "route": st.sampled_from(["openai", "anthropic"]) | json_values,
              "model": odd | json_values, "feature": odd | json_values, "method": odd | json_values,
              "path": odd | json_values,
              "scope": st.dictionaries(st.sampled_from(["route", "model", "feature", "method", "path", "x"]),
                                       odd | json_values, max_size=3) | odd | json_values})
profile_like = st.dictionaries(st.sampled_from(["ttft_ms", "ttft_sigma", "token_gap_ms", "tokens", "x"]),
                               odd | json_values, max_size=3)
status_like = st.dictionaries(st.sampled_from(["name", "impact", "stage", "body", "resolve"]), odd | json_values,
                              max_size=4)
step_like = st.fixed_dictionaries({"at": st.integers(0, 3) | odd | json_values},
                                  optional={"add": fault_like, "remove": odd | json_values, "clear": odd | json_values,
                                            "status": st.builds(lambda d, p: {**d, "provider": p}, status_like,
                                                                st.sampled_from(["openai", "nowhere"])) | json_values,
                                            "profile": st.builds(lambda d, r: {**d, "route": r}, profile_like,
                                                                 st.sampled_from(["*", "openai", "nowhere"]))
                                            | json_values})
timeline_like = st.fixed_dictionaries({"steps": st.lists(step_like, max_size=4)},
                                      optional={"repeat": odd | json_values, "period": odd | json_values})
renew_like = st.fixed_dictionaries({"for_s": odd | json_values})
bodies = json_values | fault_like | timeline_like | profile_like | status_like | renew_like
content_types = st.sampled_from(["application/json", "application/json; charset=utf-8", "text/plain",
                                 "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", ""])
targets = st.sampled_from([(server, method, path) for server, eps in BODY_ENDPOINTS.items() for method, path in eps])


def _shaped(path: str):
    """The body shape an endpoint reads, or any JSON."""
    for part, shape in (("/renew", renew_like), ("/faults", fault_like), ("/timeline", timeline_like),
                        ("/profiles", profile_like), ("/status", status_like)):
        if part in path:
            return shape | json_values
    return json_values


# (target, body) with the body shaped for its endpoint: reaches each endpoint's own checks.
requests = st.one_of([st.tuples(st.just((server, method, path)), _shaped(path))
                      for server, eps in BODY_ENDPOINTS.items() for method, path in eps])


@pytest.fixture(scope="module")
def servers():
    with ControlServers() as running:
        yield running


@SETTINGS
@given(request=requests)
def test_any_json_to_any_endpoint_is_never_a_server_error(servers, request):
    (server, method, path), body = request
    status = servers.send(server, method, path, json.dumps(body).encode())
    assert 200 <= status < 500, (server, method, path, body, status)
    servers.reset()


@SETTINGS
@given(target=targets, body=bodies)
def test_any_json_shape_to_any_endpoint_is_never_a_server_error(servers, target, body):
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
        assert status == 415, status  # refused unread: a page's text/plain or form POST changes nothing
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
