"""Where the fault proxy sends each route: ``/<route>/...`` -> that route's upstream base URL.

A route's upstream is the base URL the provider's own SDK uses, so a product changes only
its base URL to put the proxy in front: OpenAI-compatible SDKs take a base ending in
``/v1`` (``openai`` -> ``https://api.openai.com/v1``), Anthropic's SDK appends
``/v1/messages`` to ``https://api.anthropic.com``, Google's ``/v1beta/models/...`` to
``https://generativelanguage.googleapis.com``, Cohere's ``/v2/chat`` to
``https://api.cohere.com``. Every catalog provider is a route; ``--route`` adds or
overrides one (``NAME=URL``, or ``NAME:DIALECT=URL`` for a name the catalog lacks).
"""

from __future__ import annotations

from dataclasses import dataclass

from chaos.speakers import SPEAKERS
from probes.catalog import CATALOG
from probes.dialects import DIALECTS


@dataclass(frozen=True, slots=True)
class Route:
    name: str
    upstream: str  # base URL, no trailing slash
    dialect: str
    local: bool = False  # owned (the local model) rather than outsourced


def sdk_base(dialect: str, base: str) -> str:
    """``base`` without the version segment the dialect's SDK adds itself (`Speaker.sdk_suffix`), which the
    catalog's base URL includes."""
    base = base.rstrip("/")
    speaker = SPEAKERS.get(dialect)
    suffix = speaker.sdk_suffix if speaker is not None else ""
    return base[: -len(suffix)] if suffix and base.endswith(suffix) else base


def catalog_routes(emulator: str | None = None) -> dict[str, Route]:
    """A route per catalog provider: to the real API, or with ``emulator`` to `airisk emulate` there."""
    routes = {}
    for p in CATALOG.values():
        base = emulator.rstrip("/") + p.emulator_prefix if emulator else p.base_url
        routes[p.name] = Route(p.name, sdk_base(p.dialect, base), p.dialect, p.local)
    return routes


def parse_route(spec: str) -> Route:
    """``NAME=URL`` or ``NAME:DIALECT=URL``; ValueError names the problem."""
    name, sep, url = spec.partition("=")
    if not sep or not name or not url:
        raise ValueError(f"--route {spec!r}: expected NAME=URL or NAME:DIALECT=URL")
    name, _, dialect = name.partition(":")
    known = CATALOG.get(name)
    dialect = dialect or (known.dialect if known else "openai")
    if dialect not in DIALECTS:
        raise ValueError(f"--route {spec!r}: unknown dialect {dialect!r} (known: {', '.join(sorted(DIALECTS))})")
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"--route {spec!r}: the URL must start with http:// or https://")
    if "/" in name or name.startswith("_"):
        raise ValueError(f"--route {spec!r}: a route name has no '/' and does not start with '_'")
    return Route(name, url.rstrip("/"), dialect, known.local if known else False)
