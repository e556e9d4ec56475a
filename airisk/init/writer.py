"""Turn a `Scan` into a proposal: targets, features with chains, the environment to route the product through
`airisk proxy`; render it as a commented airisk.yaml and as the report `airisk init` prints."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from airisk.init.families import provider_of_url, proxy_base
from airisk.init.findings import CallSite, Scan, redact_url
from probes.catalog import CATALOG


@dataclass(slots=True)
class TargetProposal:
    name: str
    provider: str
    model: str | None
    key_env: str | None
    base_url: str | None = None
    sites: list[CallSite] = field(default_factory=list)


@dataclass(slots=True)
class FeatureProposal:
    name: str
    comment: str
    chain: list[tuple[str, str, str]]  # ("backend" | "degraded", value, comment)


@dataclass(slots=True)
class Proposal:
    targets: list[TargetProposal]
    features: list[FeatureProposal]
    env: dict[str, str]  # variable -> value routing the product through the proxy
    by_hand: list[str]  # base URLs the product does not read from the environment: change them in code
    undecided: list[str]


def _own_base(site: CallSite) -> str | None:
    """The site's base URL when it is not its provider's (a gateway, an Azure resource): the target needs it."""
    literal = site.base_url.literal
    if not literal or not literal.startswith(("http://", "https://")) or provider_of_url(literal) == site.provider:
        return None
    return redact_url(literal)


def _target_key(site: CallSite) -> tuple[str, str | None, str | None]:
    return site.provider or "", site.model.literal, _own_base(site)


def propose(result: Scan, proxy: str) -> Proposal:
    """Targets per (provider, model), one feature per primary call site, the proxy environment."""
    keyed: dict[tuple[str, str | None], TargetProposal] = {}
    sites = [s for s in result.sites if s.provider in CATALOG]
    for feature in result.features:
        sites += [link.site for link in feature.chain if link.site is not None and link.site.provider in CATALOG]
    for site in sites:
        key = _target_key(site)
        if key not in keyed:
            keyed[key] = TargetProposal("", site.provider or "", site.model.literal, None, key[2])
        target = keyed[key]
        if site not in target.sites:
            target.sites.append(site)
        catalog_key = CATALOG[target.provider].key_env
        if site.key.env and site.key.env != catalog_key and target.key_env is None:
            target.key_env = site.key.env
    per_provider: dict[str, int] = {}
    for target in keyed.values():
        per_provider[target.provider] = per_provider.get(target.provider, 0) + 1
    used: set[str] = set()
    for target in keyed.values():
        name = target.provider
        if per_provider[target.provider] > 1 and target.model:
            name = f"{target.provider}-{re.sub(r'[^a-z0-9.]+', '-', target.model.lower()).strip('-')}"
        elif per_provider[target.provider] > 1 and target.base_url:
            name = f"{target.provider}-{re.sub(r'[^a-z0-9.]+', '-', urlsplit(target.base_url).hostname or '')}"
        target.name = _unique(name, used)
    features: list[FeatureProposal] = []
    undecided = list(result.undecided)
    names: set[str] = set()
    for feature in result.features:
        chain: list[tuple[str, str, str]] = []
        for link in feature.chain:
            if link.site is None:
                chain.append(("degraded", link.degraded or "fallback", link.why))
            elif link.site.provider in CATALOG:
                backend = keyed[_target_key(link.site)].name
                if not any(kind == "backend" and value == backend for kind, value, _ in chain):
                    chain.append(("backend", backend, f"{link.site.where}{'; ' + link.why if link.why else ''}"))
            else:
                undecided.append(f"{link.site.where}: feature {feature.name!r}: a backend with an undecided "
                                 "provider is left out of its chain")
        if not chain or chain[0][0] != "backend":
            undecided.append(f"{feature.path}:{feature.line}: {feature.function}: no AI backend could be decided; "
                             "no feature proposed")
            continue
        where = f"{feature.route} -> " if feature.route else ""
        features.append(FeatureProposal(_unique(feature.name, names),
                                        f"{where}{feature.function}() in {feature.path}", chain))
    env: dict[str, str] = {}
    by_hand: list[str] = []
    for site in sites:
        value = proxy_base(site.provider or "", site.base_url.literal, proxy)
        if (own := _own_base(site)) is not None:
            hint = f"{site.where}: the base URL {own} is not {site.provider}'s: start the proxy with " \
                   f"`airisk proxy --route {site.provider}={own}` so the route reaches it"
            if hint not in undecided:
                undecided.append(hint)
        if site.base_url.env:
            env.setdefault(site.base_url.env, value)
        else:
            literal = redact_url(site.base_url.literal) if site.base_url.literal else "not configurable"
            line = f"{site.where} ({site.function}): base URL {literal} " \
                   f"-> {value} (no environment variable reads it: change it in code or pass base_url)"
            if line not in by_hand:
                by_hand.append(line)
    return Proposal(list(keyed.values()), features, env, by_hand, undecided)


def _unique(name: str, used: set[str]) -> str:
    candidate, n = name, 2
    while candidate in used:
        candidate, n = f"{name}-{n}", n + 1
    used.add(candidate)
    return candidate


def _q(value: str) -> str:
    """A YAML scalar: plain when that reads back as the same string, else a JSON (double-quoted) string."""
    if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.\-/]*", value) and value.lower() not in (
            "yes", "no", "true", "false", "on", "off", "null", "y", "n", "~"):
        return value
    return json.dumps(value)


def _comment(text: str) -> str:
    return " ".join(text.split())  # one line, whatever the source had in it


def render_yaml(result: Scan, proposal: Proposal, proxy: str) -> str:
    out = [
        f"# airisk.yaml proposed by `airisk init` from {_comment(result.root)}: {len(result.sites)} AI call "
        f"site{'s' if len(result.sites) != 1 else ''} in {result.files} Python file{'s' if result.files != 1 else ''}.",
        "# Read it before you use it: features are named from functions and routes, chains from the fallbacks",
        "# the code shows. `airisk validate airisk.yaml` checks it; `airisk probe` probes the targets.",
        "version: 1",
        "",
        "# One target per provider and model the code calls. API keys come from the environment only.",
        "targets:",
    ]
    for target in proposal.targets:
        sites = ", ".join(sorted({s.where for s in target.sites})[:4])
        out.append(f"  # {_comment(sites)}")
        out.append(f"  - name: {_q(target.name)}")
        out.append(f"    provider: {_q(target.provider)}")
        if target.model:
            out.append(f"    model: {_q(target.model)}")
        else:
            out.append(f"    # model: not a literal in the code; the catalog default "
                       f"{CATALOG[target.provider].model} is probed")
        if target.base_url:
            out.append(f"    base_url: {_q(target.base_url)}  # not the provider's own: a gateway or a resource")
        if target.key_env:
            out.append(f"    key_env: {_q(target.key_env)}")
    out += ["", "# One feature per AI call site: the primary backend first, then the fallbacks the code tries."]
    if proposal.features:
        out.append("features:")
        for feature in proposal.features:
            out.append(f"  # {_comment(feature.comment)}")
            out.append(f"  {_q(feature.name)}:")
            out.append("    chain:")
            for kind, value, why in feature.chain:
                out.append(f"      - {kind}: {_q(value)}" + (f"  # {_comment(why)}" if why else ""))
    else:
        out.append("features: {}")
    out += ["", f"# To route the product through `airisk proxy` (at {proxy}), set:"]
    out += [f"#   {name}={value}" for name, value in sorted(proposal.env.items())] or ["#   (no variable found)"]
    if proposal.by_hand:
        out.append("# ... and change these in code:")
        out += [f"#   {_comment(line)}" for line in proposal.by_hand]
    if proposal.undecided:
        out.append("# Not decided (look at these by hand):")
        out += [f"#   {_comment(line)}" for line in proposal.undecided]
    return "\n".join(out) + "\n"


def render_report(result: Scan, proposal: Proposal) -> list[str]:
    """What `airisk init` prints: the call sites, the features, the proxy environment, the open questions."""
    lines = [f"Scanned {result.files} Python file{'s' if result.files != 1 else ''} under {result.root}: "
             f"{len(result.sites)} AI call site{'s' if len(result.sites) != 1 else ''}."]
    for site in result.sites:
        model = site.model.literal or (f"${site.model.env}" if site.model.env else "?")
        base = f"${site.base_url.env}" if site.base_url.env else redact_url(site.base_url.literal or "?")
        key = f"${site.key.env}" if site.key.env else "?"
        route = f" [{site.route}]" if site.route else ""
        lines.append(f"  {site.where}  {site.function}{route}: {site.family} -> {site.provider or '?'} "
                     f"model {model}, base URL {base}, key {key}")
    for feature in proposal.features:
        chain = " -> ".join(value for _, value, _ in feature.chain)
        lines.append(f"  feature {feature.name}: {chain}")
    if proposal.env:
        lines.append("Through `airisk proxy`: " + " ".join(f"{k}={v}" for k, v in sorted(proposal.env.items())))
    lines += [f"Change in code: {line}" for line in proposal.by_hand]
    lines += [f"Not decided: {line}" for line in proposal.undecided]
    lines += [f"Skipped: {line}" for line in result.unreadable]
    return lines
