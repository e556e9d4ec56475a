"""Every dialect x every fault, over the real emulator on loopback -> the expected ErrorKind."""

from __future__ import annotations

import dataclasses

import pytest

from chaos.faults import FAULT_TYPES, Fault
from probes import ErrorKind, Status, probe
from tests.conftest import SHORT

# One catalog provider per wire protocol (Azure is the OpenAI protocol with its own URL and auth).
PROVIDERS = ["openai", "azure-openai", "anthropic", "gemini", "cohere", "ollama"]
ERROR_FAULTS = [name for name, t in FAULT_TYPES.items() if t.expect is not None]
# Ollama has no content filter, so the emulator streams a normal answer there. Where the finish
# reason comes before the end-of-stream marker (OpenAI's [DONE], Anthropic's message_stop), an
# answer without the marker is complete, as the SDKs take it (issue 13); where the marker carries
# the finish reason (Gemini's last chunk, Cohere's message-end, Ollama's done) it is a cut.
NOT_IN_PROTOCOL = {("ollama", "content_filtered")}
FINISH_BEFORE_MARKER = ["openai", "azure-openai", "anthropic"]
NOT_AN_ERROR = NOT_IN_PROTOCOL | {(p, "missing_terminator") for p in FINISH_BEFORE_MARKER}


@pytest.mark.parametrize(("provider", "fault_type"), [
    (p, f) for f in ERROR_FAULTS for p in PROVIDERS if (p, f) not in NOT_AN_ERROR])
async def test_fault_is_classified(emulator, client, provider, fault_type):
    emulator.emu.faults.add(Fault.from_dict({"type": fault_type, "route": provider}))
    result = await probe(emulator.target(provider), client=client)
    assert result.error_kind == FAULT_TYPES[fault_type].expect, result.message
    assert result.status is not Status.UP
    assert result.message


@pytest.mark.parametrize("provider", FINISH_BEFORE_MARKER)
async def test_no_end_marker_after_the_finish_reason_is_a_complete_answer(emulator, client, provider):
    emulator.emu.faults.add(Fault.from_dict({"type": "missing_terminator", "route": provider}))
    result = await probe(emulator.target(provider), client=client)
    assert result.error_kind is ErrorKind.OK, result.message
    assert result.canary_pass is True


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_healthy_probe_measures_the_answer(emulator, client, provider):
    result = await probe(emulator.target(provider), client=client)
    assert result.error_kind is ErrorKind.OK, result.message
    assert result.status is Status.UP
    assert result.canary_pass is True
    assert result.stream_complete is True
    assert result.output_tokens == 8
    # The emulator holds the first token 20 ms and spaces tokens 2 ms apart: the measured
    # figures can be late on a busy machine, never early (bounds are loose on purpose).
    assert 20 <= result.ttft_ms < 2000
    assert result.total_ms >= result.ttft_ms + 7 * 2 - 0.5
    assert result.tokens_per_s and result.tokens_per_s < 550


@pytest.mark.parametrize("status", [500, 502, 503, 504])
@pytest.mark.parametrize("provider", PROVIDERS)
async def test_each_5xx_is_a_server_error_not_overload(emulator, client, provider, status):
    emulator.emu.faults.add(Fault.from_dict({"type": "server_error", "route": provider, "params": {"status": status}}))
    result = await probe(emulator.target(provider), client=client)
    assert result.error_kind is ErrorKind.SERVER_ERROR, result.message
    assert result.http_status == status


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_rate_limit_keeps_retry_after(emulator, client, provider):
    emulator.emu.faults.add(Fault.from_dict({"type": "rate_limited", "route": provider,
                                             "params": {"retry_after": 17}}))
    result = await probe(emulator.target(provider), client=client)
    assert result.error_kind is ErrorKind.RATE_LIMITED
    assert result.retry_after_s == 17


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_first_token_delay_shows_in_ttft_not_as_error(emulator, client, provider):
    emulator.emu.faults.add(Fault.from_dict({"type": "first_token_delay", "route": provider,
                                             "params": {"delay_ms": 300}}))
    # A first-token deadline far from the delay: a slow machine must not turn it into a timeout.
    result = await probe(emulator.target(provider, deadlines=dataclasses.replace(SHORT, first_token=5.0, total=10.0)),
                         client=client)
    assert result.error_kind is ErrorKind.OK
    assert 320 <= result.ttft_ms < 3000


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_slow_tokens_lower_the_token_rate(emulator, client, provider):
    emulator.emu.faults.add(Fault.from_dict({"type": "slow_tokens", "route": provider, "params": {"gap_ms": 40}}))
    result = await probe(emulator.target(provider), client=client)
    assert result.error_kind is ErrorKind.OK
    assert result.tokens_per_s < 26  # one token every 40 ms is 25 tokens/s, at best


async def test_fault_scoped_to_one_route_leaves_others_alone(emulator, client):
    emulator.emu.faults.add(Fault.from_dict({"type": "overloaded", "route": "anthropic"}))
    hit = await probe(emulator.target("anthropic"), client=client)
    spared = await probe(emulator.target("openai"), client=client)
    assert hit.error_kind is ErrorKind.OVERLOADED and hit.http_status == 529
    assert spared.error_kind is ErrorKind.OK


async def test_lapsed_lease_ends_the_fault(emulator, client):
    import time

    emulator.emu.faults.add(Fault.from_dict({"type": "auth", "route": "openai", "for_s": 1}, now=time.time() - 2))
    result = await probe(emulator.target("openai"), client=client)
    assert result.error_kind is ErrorKind.OK
    assert emulator.emu.faults.active() == []


async def test_nothing_listening_is_connection_refused(client):
    import socket

    from probes import Target

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    target = Target.from_provider("openai", base_url=f"http://127.0.0.1:{port}/v1", key_env=None)
    result = await probe(target, client=client)
    assert result.error_kind is ErrorKind.CONNECTION_REFUSED
    assert result.status is Status.DOWN


async def test_unresolvable_host_is_dns(client):
    from probes import Target

    target = Target.from_provider("openai", base_url="http://no-such-host.invalid/v1", key_env=None)
    result = await probe(target, client=client)
    assert result.error_kind is ErrorKind.DNS
