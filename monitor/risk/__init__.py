"""Feature risk: expected AI-caused downtime minutes a month per feature, a grade and every term behind it.

`monitor.risk.model` is the arithmetic (pure: plain inputs in, a breakdown out), with
`monitor.risk.proven` (which links count, and for how much: drills, probes, measured quality and
capacity against the feature's traffic), `monitor.risk.chain` (a chain's expected loss and who shares
it), `monitor.risk.grade` (minutes to a letter and a score, and the constants: thresholds, weights)
and `monitor.risk.breakdown` (the JSON of every term); `monitor.risk.load` gathers the inputs from
`airisk.yaml` and the store. `docs/RISK_MODEL.md` explains every term.
"""

from monitor.risk.chain import ChainOutcome, Term, all_down, chain_outcome
from monitor.risk.grade import grade_for, score_for
from monitor.risk.load import RiskError, WhatIf, feature_inputs, resolve_backend, score_features
from monitor.risk.model import (
    FeatureInput,
    FeatureRisk,
    Link,
    LinkRisk,
    Measurement,
    RiskReport,
    assess,
    what_if,
    worst_first,
)

__all__ = [
    "ChainOutcome",
    "FeatureInput",
    "FeatureRisk",
    "Link",
    "LinkRisk",
    "Measurement",
    "RiskError",
    "RiskReport",
    "Term",
    "WhatIf",
    "all_down",
    "assess",
    "chain_outcome",
    "feature_inputs",
    "grade_for",
    "resolve_backend",
    "score_features",
    "score_for",
    "what_if",
    "worst_first",
]
