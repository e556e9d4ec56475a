"""How each provider behaves when nothing is wrong, and what fails when something is: `HistoryTarget`."""

from __future__ import annotations

from dataclasses import dataclass

from probes.catalog import CATALOG
from probes.result import ErrorKind


@dataclass(frozen=True, slots=True)
class Profile:
    """How a provider typically behaves: median TTFT, tokens/s, what fails at random and in outages."""

    ttft_ms: float
    tps: float
    noise: dict[ErrorKind, float]
    outage: dict[ErrorKind, float]
    overloaded_http: int = 503


_HOSTED_NOISE = {ErrorKind.SERVER_ERROR: 0.4, ErrorKind.CONNECTION_RESET: 0.2, ErrorKind.STREAM_CUT: 0.15,
                 ErrorKind.RATE_LIMITED: 0.15, ErrorKind.FIRST_TOKEN_TIMEOUT: 0.05, ErrorKind.CONNECT_TIMEOUT: 0.05}
_GENERIC_OUTAGE = {ErrorKind.SERVER_ERROR: 0.6, ErrorKind.OVERLOADED: 0.15, ErrorKind.FIRST_TOKEN_TIMEOUT: 0.1,
                   ErrorKind.CONNECTION_RESET: 0.1, ErrorKind.CONNECT_TIMEOUT: 0.05}
PROFILES = {
    "openai": Profile(450, 85, _HOSTED_NOISE, {ErrorKind.SERVER_ERROR: 0.55, ErrorKind.RATE_LIMITED: 0.2,
                                                ErrorKind.FIRST_TOKEN_TIMEOUT: 0.1, ErrorKind.STREAM_CUT: 0.1,
                                                ErrorKind.CONNECTION_RESET: 0.05}),
    "azure-openai": Profile(520, 75, _HOSTED_NOISE, {ErrorKind.SERVER_ERROR: 0.6, ErrorKind.RATE_LIMITED: 0.25,
                                                      ErrorKind.FIRST_TOKEN_TIMEOUT: 0.15}),
    "anthropic": Profile(650, 70, {**_HOSTED_NOISE, ErrorKind.OVERLOADED: 0.3},
                          {ErrorKind.OVERLOADED: 0.7, ErrorKind.SERVER_ERROR: 0.2, ErrorKind.FIRST_TOKEN_TIMEOUT: 0.1},
                          overloaded_http=529),
    "gemini": Profile(380, 150, _HOSTED_NOISE, {ErrorKind.OVERLOADED: 0.5, ErrorKind.RATE_LIMITED: 0.3,
                                                 ErrorKind.SERVER_ERROR: 0.2}),
    "mistral": Profile(350, 110, _HOSTED_NOISE, _GENERIC_OUTAGE),
    "groq": Profile(220, 450, _HOSTED_NOISE, {ErrorKind.RATE_LIMITED: 0.5, ErrorKind.SERVER_ERROR: 0.4,
                                               ErrorKind.CONNECTION_RESET: 0.1}),
    "together": Profile(420, 120, _HOSTED_NOISE, _GENERIC_OUTAGE),
    "deepseek": Profile(900, 40, _HOSTED_NOISE, {ErrorKind.SERVER_ERROR: 0.5, ErrorKind.FIRST_TOKEN_TIMEOUT: 0.3,
                                                  ErrorKind.CONNECT_TIMEOUT: 0.2}),
    "openrouter": Profile(550, 90, _HOSTED_NOISE, _GENERIC_OUTAGE),
    "fireworks": Profile(300, 160, _HOSTED_NOISE, _GENERIC_OUTAGE),
    "cohere": Profile(400, 100, _HOSTED_NOISE, _GENERIC_OUTAGE),
}
_HOSTED = Profile(500, 90, _HOSTED_NOISE, _GENERIC_OUTAGE)
_LOCAL = Profile(150, 60, {ErrorKind.STREAM_CUT: 0.5, ErrorKind.FIRST_TOKEN_TIMEOUT: 0.5},
                  {ErrorKind.CONNECTION_REFUSED: 0.85, ErrorKind.FIRST_TOKEN_TIMEOUT: 0.15})


def profile_of(provider: str, local: bool) -> Profile:
    return _LOCAL if local else PROFILES.get(provider, _HOSTED)


@dataclass(frozen=True, slots=True)
class HistoryTarget:
    """One target to emulate. Unset figures take the provider's typical ones (`PROFILES`): hosted
    providers a median TTFT of 220-900 ms (lognormal, slower in the afternoon UTC), local servers ~150 ms."""

    name: str
    provider: str
    model: str = ""
    """Default: the catalog's model for the provider."""
    local: bool = False
    """Owned (runs on our machines); a catalog provider marked local (ollama, vllm, ...) is local anyway."""
    ttft_ms: float | None = None
    """Median time to first token outside outages."""
    total_ms: float | None = None
    """Median total time of an answer (~12 output tokens); default from the provider's tokens/s."""
    base_error_rate: float | None = None
    """Share of probes failing at random outside outages; default 0.3 % hosted, 0.05 % local."""

    def __post_init__(self) -> None:
        entry = CATALOG.get(self.provider)
        local = self.local or bool(entry and entry.local)
        prof = profile_of(self.provider, local)
        ttft = self.ttft_ms if self.ttft_ms is not None else prof.ttft_ms
        defaults = {
            "model": self.model or (entry.model if entry else self.provider), "local": local, "ttft_ms": ttft,
            "total_ms": self.total_ms if self.total_ms is not None else ttft + 11_000 / prof.tps,
            "base_error_rate": self.base_error_rate if self.base_error_rate is not None else (
                0.0005 if local else 0.003),
        }
        for name, value in defaults.items():
            object.__setattr__(self, name, value)
        if self.total_ms <= self.ttft_ms:
            raise ValueError(f"{self.name}: total_ms ({self.total_ms:g}) must be above ttft_ms ({self.ttft_ms:g})")
