"""The provider catalog: one entry per provider, everything a probe needs to reach it.

Adding a provider that speaks a known protocol is one entry here. Prices are USD per
million tokens for the cheap default model, from each provider's public price list
(late 2025); a target may override any field, prices included.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any


@dataclass(frozen=True, slots=True)
class Provider:
    name: str
    dialect: str  # a key of probes.dialects.DIALECTS
    base_url: str
    key_env: str | None  # environment variable holding the API key; None for keyless local servers
    model: str  # cheap default model
    status_page: str | None  # the vendor's public status page
    price_in: float = 0.0  # USD per million input tokens
    price_out: float = 0.0  # USD per million output tokens
    local: bool = False  # owned (runs on our machines) rather than outsourced
    options: dict[str, Any] = field(default_factory=dict)  # dialect-specific, e.g. Azure's api_version
    emulator_prefix: str = ""  # where `airisk emulate` serves this provider's protocol

    def with_overrides(self, **overrides: Any) -> Provider:
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})


def _p(*args: Any, **kwargs: Any) -> tuple[str, Provider]:
    provider = Provider(*args, **kwargs)
    return provider.name, provider


CATALOG: dict[str, Provider] = dict(
    [
        _p("openai", "openai", "https://api.openai.com/v1", "OPENAI_API_KEY", "gpt-4o-mini",
           "https://status.openai.com", 0.15, 0.60, emulator_prefix="/openai/v1"),
        _p("azure-openai", "openai", "https://YOUR-RESOURCE.openai.azure.com", "AZURE_OPENAI_API_KEY",
           "gpt-4o-mini", "https://azure.status.microsoft/en-us/status", 0.15, 0.60,
           options={"azure": True, "api_version": "2024-10-21"}, emulator_prefix="/azure-openai"),
        _p("anthropic", "anthropic", "https://api.anthropic.com/v1", "ANTHROPIC_API_KEY",
           "claude-haiku-4-5", "https://status.anthropic.com", 1.00, 5.00, emulator_prefix="/anthropic/v1"),
        _p("gemini", "gemini", "https://generativelanguage.googleapis.com/v1beta", "GEMINI_API_KEY",
           "gemini-2.5-flash-lite", "https://aistudio.google.com/status", 0.10, 0.40,
           emulator_prefix="/gemini/v1beta"),
        _p("mistral", "openai", "https://api.mistral.ai/v1", "MISTRAL_API_KEY", "mistral-small-latest",
           "https://status.mistral.ai", 0.10, 0.30, emulator_prefix="/mistral/v1"),
        _p("groq", "openai", "https://api.groq.com/openai/v1", "GROQ_API_KEY", "llama-3.1-8b-instant",
           "https://groqstatus.com", 0.05, 0.08, emulator_prefix="/groq/v1"),
        _p("together", "openai", "https://api.together.xyz/v1", "TOGETHER_API_KEY",
           "meta-llama/Llama-3.2-3B-Instruct-Turbo", "https://status.together.ai", 0.06, 0.06,
           emulator_prefix="/together/v1"),
        _p("deepseek", "openai", "https://api.deepseek.com/v1", "DEEPSEEK_API_KEY", "deepseek-chat",
           "https://status.deepseek.com", 0.27, 1.10, emulator_prefix="/deepseek/v1"),
        _p("openrouter", "openai", "https://openrouter.ai/api/v1", "OPENROUTER_API_KEY",
           "meta-llama/llama-3.2-3b-instruct", "https://status.openrouter.ai", 0.02, 0.02,
           emulator_prefix="/openrouter/v1"),
        _p("fireworks", "openai", "https://api.fireworks.ai/inference/v1", "FIREWORKS_API_KEY",
           "accounts/fireworks/models/llama-v3p1-8b-instruct", "https://status.fireworks.ai", 0.20, 0.20,
           emulator_prefix="/fireworks/v1"),
        _p("cohere", "cohere", "https://api.cohere.com/v2", "CO_API_KEY", "command-r7b-12-2024",
           "https://status.cohere.com", 0.0375, 0.15, emulator_prefix="/cohere/v2"),
        _p("ollama", "ollama", "http://127.0.0.1:11434", None, "llama3.2:1b", None, local=True,
           emulator_prefix="/ollama"),
        _p("vllm", "openai", "http://127.0.0.1:8000/v1", "VLLM_API_KEY", "Qwen/Qwen2.5-0.5B-Instruct", None,
           local=True, emulator_prefix="/vllm/v1"),
        _p("local", "openai", "http://127.0.0.1:8011/v1", None, "gemma-3-270m", None, local=True,
           options={"mode": "completions"}, emulator_prefix="/local/v1"),
        _p("tgi", "openai", "http://127.0.0.1:3000/v1", None, "tgi", None, local=True,
           emulator_prefix="/tgi/v1"),
        _p("llamacpp", "openai", "http://127.0.0.1:8080/v1", None, "gemma-3-270m", None, local=True,
           emulator_prefix="/llamacpp/v1"),
    ]
)


def get_provider(name: str) -> Provider:
    """The catalog entry for ``name``; KeyError naming the known providers otherwise."""
    try:
        return CATALOG[name]
    except KeyError:
        known = ", ".join(sorted(CATALOG))
        raise KeyError(f"unknown provider {name!r} (known: {known})") from None
