"""Chaos Toolkit probes: what a provider, a product feature and a drill say now.

- `probe_target`: one airisk probe of a provider's API (``airisk probe`` for one target), through
  the fault proxy or straight to it: status, error kind, HTTP status, timings;
- `feature_status`: one request to a product's feature endpoint, and what it answered (the storefront
  says which backend answered and whether it was degraded, as `examples/storefront` documents);
- `drill_verdict`: a feature's verdict in a drill's JSON report (``airisk drill run --json FILE``).

Each returns a JSON object, so a steady-state tolerance can read one field of it
(``{"type": "jsonpath", "path": "$.status", "expect": 200}``).
"""

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx

from chaosairisk.errors import AiriskActivityFailed

__all__ = ["drill_verdict", "feature_status", "probe_target"]


def probe_target(provider: str, base_url: str = "", proxy_url: str = "", model: str = "", key_env: str = "",
                 timeout_s: float = 20.0) -> dict:
    """Probe ``provider`` once and return the probe's result: ``status`` (up / degraded / down),
    ``error_kind``, ``http_status``, ``ttft_ms``, ``total_ms``, ``message``...

    Where: ``proxy_url``, the fault proxy's root (``http://127.0.0.1:8480``), to probe the provider
    through it; or ``base_url`` as a target in airisk.yaml takes it (the catalog's form:
    ``https://api.anthropic.com/v1``); neither: the provider's real API. ``key_env`` names the environment
    variable holding the API key (empty: send none); the key itself never appears in the result."""
    from chaos.routes import sdk_base
    from probes import Deadlines, Target, make_client
    from probes.catalog import CATALOG
    from probes.runner import probe

    known = CATALOG.get(provider)
    if known is None:
        raise AiriskActivityFailed(f"provider: unknown {provider!r} (known: {', '.join(sorted(CATALOG))})")
    if base_url and proxy_url:
        raise AiriskActivityFailed("base_url, proxy_url: give one of them, not both")
    for name, value in (("base_url", base_url), ("proxy_url", proxy_url)):
        if value and not value.startswith(("http://", "https://")):
            raise AiriskActivityFailed(f"{name}: must start with http:// or https://, got {value!r}")
    if proxy_url:  # the proxy serves /<route>/ and adds the upstream's base; the SDK's own suffix follows
        prefix = known.emulator_prefix
        base_url = f"{proxy_url.rstrip('/')}/{provider}{prefix[len(sdk_base(known.dialect, prefix)):]}"
    overrides: dict[str, Any] = {"key_env": key_env or None,
                                 "deadlines": Deadlines(connect=min(5.0, timeout_s), first_token=timeout_s,
                                                        total=timeout_s, stall=timeout_s)}
    if base_url:
        overrides["base_url"] = base_url.rstrip("/")
    if model:
        overrides["model"] = model
    target = Target.from_provider(provider, **overrides)

    async def once() -> dict:
        async with make_client() as client:
            return (await probe(target, client=client)).to_dict()

    result = asyncio.run(once())
    result.pop("answer", None)
    return result


def feature_status(url: str, body: dict = None, method: str = "POST",  # noqa: RUF013
                   timeout_s: float = 10.0) -> dict:
    """Send ``body`` (JSON) to a product's feature endpoint ``url`` and return ``status`` (the HTTP status,
    0 when nothing answered), ``up`` (a 2xx), and from a JSON answer ``backend``, ``degraded`` and
    ``error`` when it has them. Never raises for an answer the product gives: a 503 is a status to check."""
    if not url.startswith(("http://", "https://")):
        raise AiriskActivityFailed(f"url: must start with http:// or https://, got {url!r}")
    try:
        response = httpx.request(method, url, json=body, timeout=timeout_s)
    except httpx.HTTPError as exc:
        return {"url": url, "status": 0, "up": False, "backend": None, "degraded": None,
                "error": f"{type(exc).__name__}: {exc}"[:300]}
    try:
        answer = response.json()
    except ValueError:
        answer = None
    answer = answer if isinstance(answer, dict) else {}
    return {"url": url, "status": response.status_code, "up": response.is_success,
            "backend": answer.get("backend"), "degraded": answer.get("degraded"), "error": answer.get("error")}


def drill_verdict(report: str, feature: str) -> dict:
    """``feature``'s result in the drill report ``report`` (a file written by ``airisk drill run --json``):
    ``verdict`` (resilient / degraded / broken, or None when no request reached it during the faults),
    ``expected``, ``meets``, and the drill's ``passed``."""
    path = Path(report)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise AiriskActivityFailed(f"{report}: cannot read the drill report: {exc.strerror or exc}") from None
    except (ValueError, UnicodeDecodeError):
        raise AiriskActivityFailed(f"{report}: not JSON (write it with airisk drill run --json FILE)") from None
    features = data.get("features") if isinstance(data, dict) else None
    if not isinstance(features, list):
        raise AiriskActivityFailed(f"{report}: features: missing or not a list (not an airisk drill report)")
    for index, entry in enumerate(features):
        if not isinstance(entry, dict) or not isinstance(entry.get("feature"), str):
            raise AiriskActivityFailed(f"{report}: features[{index}].feature: missing or not a string")
        if entry["feature"] == feature:
            verdict = entry.get("verdict")
            if verdict is not None and not isinstance(verdict, str):
                raise AiriskActivityFailed(f"{report}: features[{index}].verdict: not a string")
            return {"feature": feature, "verdict": verdict, "expected": entry.get("expected"),
                    "meets": entry.get("meets") is True, "passed": data.get("passed") is True}
    known = ", ".join(e["feature"] for e in features) or "none"
    raise AiriskActivityFailed(f"{report}: feature {feature!r} is not in this drill (features: {known})")
