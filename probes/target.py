"""`Target`: one backend to probe, fully resolved (catalog entry plus overrides)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from probes.catalog import Provider, get_provider


@dataclass(frozen=True, slots=True)
class Deadlines:
    """Separate budgets, seconds. A hang is told from a slow stream by which one runs out."""

    connect: float = 5.0  # DNS + TCP + TLS
    first_token: float = 20.0  # request start to the first byte of answer text
    total: float = 60.0  # request start to the end of the stream
    stall: float = 15.0  # longest silence between two chunks once the answer has started


@dataclass(frozen=True, slots=True)
class Target:
    name: str
    provider: str
    dialect: str
    base_url: str
    model: str
    key_env: str | None = None
    price_in: float = 0.0
    price_out: float = 0.0
    status_page: str | None = None
    region: str | None = None
    local: bool = False
    max_tokens: int = 16
    deadlines: Deadlines = field(default_factory=Deadlines)
    options: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)  # extra, non-secret request headers
    # The key itself is never stored on the target: it is read from the environment at
    # request time, so a Target can be logged, stored and shown without leaking it.

    @classmethod
    def from_provider(cls, provider: Provider | str, *, name: str | None = None, **overrides: Any) -> Target:
        """A target for a catalog provider; any field may be overridden.

        ``None`` keeps the catalog's value, except for ``key_env``: an explicit ``key_env=None``
        means "send no key" (an emulator, a keyless local server), so a real key in the
        environment is never sent where it was not meant to go.
        """
        if isinstance(provider, str):
            provider = get_provider(provider)
        base = {
            "name": name or provider.name,
            "provider": provider.name,
            "dialect": provider.dialect,
            "base_url": provider.base_url,
            "model": provider.model,
            "key_env": provider.key_env,
            "price_in": provider.price_in,
            "price_out": provider.price_out,
            "status_page": provider.status_page,
            "local": provider.local,
            "options": dict(provider.options),
        }
        options = overrides.pop("options", None) or {}
        base.update({k: v for k, v in overrides.items() if v is not None or k == "key_env"})
        base["options"].update(options)
        return cls(**base)

    def api_key(self) -> str | None:
        """The secret, from the environment; ``None`` when the provider needs none or it is unset."""
        return os.environ.get(self.key_env) if self.key_env else None

    def cost(self, input_tokens: int | None, output_tokens: int | None) -> float | None:
        if input_tokens is None and output_tokens is None:
            return None
        return ((input_tokens or 0) * self.price_in + (output_tokens or 0) * self.price_out) / 1_000_000
