"""Fault input, as any client may send it: refused with a one-line error naming the field, or a
fault that can be planned for any request, listed as strict JSON, and lapses within a day."""

from __future__ import annotations

import json
import math

from hypothesis import given, settings
from hypothesis import strategies as st

from chaos.control import validate_script
from chaos.emulator import Profile
from chaos.faults import MAX_LEASE_S, Fault, FaultError, FaultSet, RequestInfo
from tests.chaos.test_control_fuzz import fault_like, json_values, profile_like, timeline_like

NOW = 1_700_000_000.0
requests = st.builds(RequestInfo, route=st.sampled_from(["openai", "anthropic", "x"]),
                     method=st.sampled_from(["POST", "GET", "post"]), path=st.text(max_size=20),
                     model=st.none() | st.text(max_size=10), feature=st.none() | st.text(max_size=10))


@settings(max_examples=200)
@given(data=fault_like | json_values, request=requests)
def test_a_fault_is_refused_in_one_line_or_safe_to_plan(data, request):
    try:
        fault = Fault.from_dict(data, now=NOW, routes={"openai", "anthropic"})
    except FaultError as exc:
        message = str(exc)
        assert message.startswith(("fault", "for_s")) and "\n" not in message and len(message) < 600
        return
    assert NOW < fault.expires_at <= NOW + MAX_LEASE_S  # never without a lease, never past a day
    json.dumps(fault.to_dict(), allow_nan=False)  # strict JSON: no NaN or Infinity to list
    faults = FaultSet()
    faults.add(fault)
    for at in (NOW, NOW + 1, NOW + 3600):
        plan = faults.plan(request, now=at)  # never raises, whatever the scope's values
        assert math.isfinite(plan.first_token_delay_s) and plan.first_token_delay_s <= 2 * MAX_LEASE_S
        assert plan.token_gap_s is None or math.isfinite(plan.token_gap_s)


@given(for_s=json_values)
def test_a_renewal_is_finite_and_within_a_day(for_s):
    fault = Fault.from_dict({"type": "auth"}, now=NOW)
    try:
        fault.renew(for_s, now=NOW)
    except FaultError as exc:
        assert str(exc).startswith("for_s: must be a positive number of seconds, at most 86400")
        return
    assert NOW < fault.expires_at <= NOW + MAX_LEASE_S


@given(data=profile_like)
def test_a_profile_change_applies_whole_or_not_at_all(data):
    profile = Profile()
    before = Profile()
    try:
        profile.update(data)
    except ValueError as exc:
        assert str(exc).startswith("profile.") and profile == before
        return
    assert all(math.isfinite(getattr(profile, k)) for k in ("ttft_ms", "ttft_sigma", "token_gap_ms"))


@settings(max_examples=200)
@given(data=timeline_like | json_values)
def test_a_timeline_is_refused_naming_the_step_or_safe_to_run(data):
    try:
        script = validate_script(data)
    except ValueError as exc:
        assert str(exc).startswith("timeline") and "\n" not in str(exc)
        return
    assert not script.repeat or script.period >= 1
    assert [s["at"] for s in script.steps] == sorted(s["at"] for s in script.steps)
