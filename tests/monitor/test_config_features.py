"""The ``features:`` section: chains of backends, checked against the targets and the catalog."""

from __future__ import annotations

import pytest

from monitor.config import ConfigError, parse_config

BASE = """
targets:
  - provider: openai
    name: gpt
features:
"""


def test_a_feature_chain_with_fallbacks_and_a_degraded_mode():
    config = parse_config(BASE + """
  chat:
    criticality: high
    latency_budget: {first_token: 2s, total: 10s}
    chain:
      - backend: anthropic
      - backend: local
      - degraded: canned
        quality: 0.3
  description:
    chain: [{backend: gpt}]
""", environ={})
    chat = config.features["chat"]
    assert [link.backend or link.degraded for link in chat.chain] == ["anthropic", "local", "canned"]
    assert chat.chain[2].quality == 0.3 and chat.latency_budget.total == 10.0
    assert config.features["description"].criticality == "medium"
    assert config.backend_provider("gpt") == "openai" and config.backend_provider("anthropic") == "anthropic"


@pytest.mark.parametrize(("body", "problem"), [
    ("  f:\n    chain: [{backend: locl}]\n", "features.f.chain[0].backend: unknown backend 'locl'"),
    ("  f:\n    chain: [{degraded: cache}]\n", "features.f.chain[0]: the primary must be an AI backend"),
    ("  f:\n    chain: [{backend: gpt, degraded: x}]\n", "features.f.chain[0]: give exactly one of"),
    ("  f:\n    chain: [{backend: gpt, quality: 0.5}]\n", "'quality' is for a degraded mode"),
    ("  f:\n    chain: []\n", "features.f.chain: List should have at least 1 item"),
    ("  f:\n    chain: [{backend: gpt}]\n    criticallity: high\n", "did you mean 'criticality'?"),
])
def test_each_problem_names_its_line_and_field(body, problem):
    with pytest.raises(ConfigError) as caught:
        parse_config(BASE + body, source="airisk.yaml", environ={})
    assert len(caught.value.problems) == 1
    line = str(caught.value.problems[0])
    assert problem in line and line.startswith("airisk.yaml:")
