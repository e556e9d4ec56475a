"""Dependency discovery: the feature -> provider map the proxy saw, against the one declared.

The fault proxy logs each request's ``X-AIRisk-Feature`` header and route; drills store that
log. Compared with ``features:`` in `airisk.yaml` it tells the engineering lead what they did
not know: a feature calling a provider it does not declare (an undeclared dependency, or a
feature not declared at all), and a declared fallback never seen to answer (it may not work).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from monitor.config.features import FeatureConfig
from monitor.store.proxylog import ObservedEdge


@dataclass(slots=True)
class FeatureDeps:
    feature: str
    declared: list[str]  # providers of the chain's AI backends, in chain order
    observed: dict[str, tuple[int, int]] = field(default_factory=dict)  # route -> (requests, answered)
    undeclared: list[str] = field(default_factory=list)  # routes seen but not in the chain
    unseen_fallbacks: list[str] = field(default_factory=list)  # fallbacks never seen answering
    declared_feature: bool = True


def compare(features: Mapping[str, FeatureConfig], provider_of: Callable[[str], str],
            edges: Iterable[ObservedEdge]) -> list[FeatureDeps]:
    """One entry per declared or observed feature, declared ones first, in name order."""
    out: dict[str, FeatureDeps] = {}
    for name, feature in sorted(features.items()):
        out[name] = FeatureDeps(name, [provider_of(link.backend) for link in feature.chain if link.backend])
    for edge in edges:
        deps = out.setdefault(edge.feature, FeatureDeps(edge.feature, [], declared_feature=False))
        deps.observed[edge.route] = (edge.requests, edge.answered)
    for deps in out.values():
        deps.undeclared = sorted(route for route in deps.observed if route not in deps.declared)
        deps.unseen_fallbacks = [p for p in deps.declared[1:] if deps.observed.get(p, (0, 0))[1] == 0]
    return list(out.values())
