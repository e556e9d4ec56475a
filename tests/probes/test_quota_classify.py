"""A spent quota or credit balance is QUOTA_EXHAUSTED (a human with a card), never RATE_LIMITED (a retry).

Each case goes through the real probe (`probes.make_client`, the timed backend) to a loopback server
answering the provider's error as it sends it: the real transcripts from ``../shared/transcripts/``
where one exists (skipped without that folder, required under CI), and bodies of our own in the
documented shapes where none does (Anthropic's credit-balance 400, Gemini's per-day quota).
"""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from probes import ErrorKind, Target, classify, make_client, probe
from probes.dialects import DIALECTS
from probes.dialects.base import ProviderError
from tests.probes.loopback import Canned, serving
from tests.probes.shared_data import TRANSCRIPTS, require_dir


def _transcript(name: str) -> tuple[int, bytes]:
    require_dir(TRANSCRIPTS, "wire transcripts")
    raw = (TRANSCRIPTS / name).read_bytes()
    header, _, body = raw.partition(b"\n\n")
    status = re.search(rb"^#\s*status:\s*(\d{3})\b", header, re.MULTILINE)
    return int(status.group(1)), body


async def _probe(provider: str, status: int, body: bytes):
    async with serving(Canned(status=status, content_type="application/json", chunks=[body])) as url:
        base = {"anthropic": "/v1", "gemini": "/v1beta", "cohere": "/v2"}.get(provider, "/v1")
        target = Target.from_provider(provider, base_url=url + base, key_env=None)
        async with make_client() as client:
            return await probe(target, client=client)


def _error(provider: str, status: int, body: bytes) -> ProviderError:
    import httpx

    return DIALECTS[Target.from_provider(provider).dialect].parse_error(status, httpx.Headers(), body)


# Ours, in the documented shapes (docs.claude.com/en/api/errors; Anthropic returns 400
# invalid_request_error when the prepaid balance is spent).
ANTHROPIC_CREDIT = json.dumps({
    "type": "error",
    "error": {"type": "invalid_request_error",
              "message": "Your credit balance is too low to access the Anthropic API. "
                         "Please go to Plans & Billing to upgrade or purchase credits."},
    "request_id": "req_011CreditSpent"}).encode()


def _gemini_429(quota_id: str, retry: str | None = "26s") -> bytes:
    details = [{"@type": "type.googleapis.com/google.rpc.QuotaFailure",
                "violations": [{"quotaMetric": "generativelanguage.googleapis.com/generate_content_free_tier_requests",
                                "quotaId": quota_id, "quotaDimensions": {"location": "global",
                                                                         "model": "gemini-2.5-flash"},
                                "quotaValue": "250"}]}]
    if retry:
        details.append({"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": retry})
    return json.dumps({"error": {"code": 429, "status": "RESOURCE_EXHAUSTED", "details": details,
                                 "message": "You exceeded your current quota, please check your plan and billing "
                                            "details."}}, indent=2).encode()


@pytest.mark.parametrize(("name", "provider", "kind", "detail"), [
    ("openai__error_429_insufficient_quota.txt", "openai", ErrorKind.QUOTA_EXHAUSTED, "billing quota"),
    ("anthropic__error_429_spend_limit_docs.txt", "anthropic", ErrorKind.QUOTA_EXHAUSTED, "spend limit"),
    ("gemini__error_429_free_tier_retryinfo.txt", "gemini", ErrorKind.RATE_LIMITED, None),  # PerMinute
    ("gemini__error_429_resource_exhausted.txt", "gemini", ErrorKind.RATE_LIMITED, None),  # PerMinute, older form
    ("openai__error_429_rate_limit_tokens.txt", "openai", ErrorKind.RATE_LIMITED, None),
    ("anthropic__error_429_rate_limit_live.txt", "anthropic", ErrorKind.RATE_LIMITED, None),
])
async def test_real_transcripts_through_the_probe(name, provider, kind, detail):
    status, body = _transcript(name)
    result = await _probe(provider, status, body)
    assert result.error_kind is kind, result.message
    assert result.http_status == status
    if detail is not None:
        assert classify.quota_detail(_error(provider, status, body)) == detail


async def test_anthropic_credit_balance_400_is_a_spent_balance_not_a_bad_request():
    result = await _probe("anthropic", 400, ANTHROPIC_CREDIT)
    assert result.error_kind is ErrorKind.QUOTA_EXHAUSTED
    assert "credit balance" in result.message
    assert classify.quota_detail(_error("anthropic", 400, ANTHROPIC_CREDIT)) == "credit balance"


async def test_an_ordinary_anthropic_400_stays_a_bad_request():
    status, body = _transcript("anthropic__error_400_invalid_request_live.txt")
    assert (await _probe("anthropic", status, body)).error_kind is ErrorKind.BAD_REQUEST


async def test_gemini_per_day_quota_is_exhausted_even_with_a_retry_hint():
    body = _gemini_429("GenerateRequestsPerDayPerProjectPerModel-FreeTier")
    result = await _probe("gemini", 429, body)
    assert result.error_kind is ErrorKind.QUOTA_EXHAUSTED
    assert "PerDay" in result.message  # the window the page names
    assert classify.quota_detail(_error("gemini", 429, body)) == "daily quota"


async def test_gemini_per_minute_quota_without_a_retry_hint_is_still_a_rate_limit():
    body = _gemini_429("GenerateRequestsPerMinutePerProjectPerModel-FreeTier", retry=None)
    assert (await _probe("gemini", 429, body)).error_kind is ErrorKind.RATE_LIMITED


async def test_gemini_names_the_day_when_both_windows_ran_out():
    data = json.loads(_gemini_429("GenerateRequestsPerMinutePerProjectPerModel-FreeTier"))
    data["error"]["details"][0]["violations"].append({"quotaId": "GenerateRequestsPerDayPerProjectPerModel"})
    result = await _probe("gemini", 429, json.dumps(data).encode())
    assert result.error_kind is ErrorKind.QUOTA_EXHAUSTED


@pytest.mark.parametrize(("provider", "status", "body", "kind", "detail"), [
    # Cohere's trial key: a monthly call budget, 429 (docs.cohere.com: Rate Limits, trial keys).
    ("cohere", 429, {"id": "x", "message": "You are using a Trial key, which is limited to 1000 API calls / month."},
     ErrorKind.QUOTA_EXHAUSTED, "monthly quota"),
    ("cohere", 429, {"id": "x", "message": "You are using a Trial key, which is limited to 20 API calls / minute."},
     ErrorKind.RATE_LIMITED, None),
    ("cohere", 402, {"id": "x", "message": "Please add or update your payment method to continue."},
     ErrorKind.QUOTA_EXHAUSTED, "payment required"),
    # Groq states its per-day token limit as rate_limit_exceeded with a wait: a rate limit, as it says.
    ("groq", 429, {"error": {"message": "Rate limit reached for model `llama-3.1-8b-instant` on tokens per day "
                                        "(TPD): Limit 500000, Used 499990, Requested 50. Please try again in 7.2s.",
                             "type": "tokens", "code": "rate_limit_exceeded"}}, ErrorKind.RATE_LIMITED, None),
    ("mistral", 429, {"object": "error", "message": "Requests rate limit exceeded", "type": "rate_limited",
                      "code": "1300"}, ErrorKind.RATE_LIMITED, None),
])
async def test_other_providers_in_their_own_forms(provider, status, body, kind, detail):
    raw = json.dumps(body).encode()
    result = await _probe(provider, status, raw)
    assert result.error_kind is kind, result.message
    if detail is not None:
        assert classify.quota_detail(_error(provider, status, raw)) == detail


@settings(max_examples=200, deadline=None)
@given(quota=st.one_of(st.none(), st.text(max_size=200)), message=st.text(max_size=400),
       status=st.sampled_from([400, 402, 429, 500]),
       etype=st.sampled_from([None, "RESOURCE_EXHAUSTED", "rate_limit_error", "invalid_request_error",
                              "insufficient_quota"]))
def test_quota_reading_takes_any_words(quota, message, status, etype):
    err = ProviderError(http_status=status, type=etype, message=message, quota=quota)
    for dialect in ("openai", "anthropic", "gemini", "cohere"):
        kind = classify.from_provider_error(dialect, err)
        assert kind is not ErrorKind.OK
    assert classify.quota_detail(err) in {"credit balance", "spend limit", "daily quota", "monthly quota",
                                          "billing quota", "payment required", "quota"}


@settings(max_examples=200, deadline=None)
@given(details=st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=50),
                            lambda inner: st.lists(inner, max_size=4)
                            | st.dictionaries(st.sampled_from(["violations", "quotaId", "metadata", "quota_limit",
                                                               "@type", "retryDelay", "reason"]), inner, max_size=4),
                            max_leaves=30))
def test_gemini_quota_details_of_any_shape_never_break_the_reading(details):
    import httpx

    body = json.dumps({"error": {"code": 429, "status": "RESOURCE_EXHAUSTED", "message": "m",
                                 "details": details}}).encode()
    err = DIALECTS["gemini"].parse_error(429, httpx.Headers(), body)
    assert err.quota is None or (isinstance(err.quota, str) and len(err.quota) <= 120)
    assert classify.from_provider_error("gemini", err) in (ErrorKind.RATE_LIMITED, ErrorKind.QUOTA_EXHAUSTED)


# -- the emulator's presets, in each provider's shape, through the real probe ----------------------------

@pytest.mark.parametrize("provider", ["openai", "azure-openai", "anthropic", "gemini", "cohere", "ollama", "groq"])
@pytest.mark.parametrize("fault", ["credit_exhausted", "daily_quota", "quota_exhausted"])
async def test_emulated_spent_money_is_quota_exhausted_everywhere(emulator, client, provider, fault):
    from chaos.faults import Fault

    emulator.emu.faults.add(Fault.from_dict({"type": fault, "route": provider}))
    result = await probe(emulator.target(provider), client=client)
    assert result.error_kind is ErrorKind.QUOTA_EXHAUSTED, result.message


async def test_emulated_anthropic_credit_balance_is_its_400(emulator, client):
    from chaos.faults import Fault

    emulator.emu.faults.add(Fault.from_dict({"type": "credit_exhausted", "route": "anthropic"}))
    result = await probe(emulator.target("anthropic"), client=client)
    assert result.http_status == 400 and "credit balance is too low" in result.message


async def test_emulated_gemini_daily_quota_names_the_day_despite_its_retry_hint(emulator, client):
    from chaos.faults import Fault

    emulator.emu.faults.add(Fault.from_dict({"type": "daily_quota", "route": "gemini"}))
    result = await probe(emulator.target("gemini"), client=client)
    assert result.http_status == 429 and result.retry_after_s == 26
    assert "GenerateRequestsPerDayPerProjectPerModel-FreeTier" in result.message
    emulator.emu.faults.clear()
    emulator.emu.faults.add(Fault.from_dict({"type": "rate_limited", "route": "gemini"}))
    assert (await probe(emulator.target("gemini"), client=client)).error_kind is ErrorKind.RATE_LIMITED
