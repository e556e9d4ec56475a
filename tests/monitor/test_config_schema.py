"""The JSON Schema published for editors (`airisk validate --schema`) is a valid JSON Schema of the draft it
names, checked against that draft's meta-schema, and agrees with the loader on real files."""

from __future__ import annotations

import copy
import json
import textwrap

import jsonschema
import pytest
import yaml
from click.testing import CliRunner

from airisk.cli import main
from monitor.config import AiriskConfig, parse_config
from tests.dashboard.seed import CONFIG as DASHBOARD_CONFIG

DRAFT = "https://json-schema.org/draft/2020-12/schema"

VALID = [DASHBOARD_CONFIG, textwrap.dedent("""\
    version: 1
    defaults: {interval: 30s, region: eu-west, max_tokens: 8, deadlines: {total: 90s, stall: 10s}}
    targets:
      - {provider: azure-openai, base_url: "https://acme.openai.azure.com", options: {api_version: "2025-01-01"}}
      - {provider: ollama, name: local-llama, interval: 1m30s, base_url: "http://127.0.0.1:11434", local: true}
    local_model: {port: 8123, alias: tiny, interval: 10s}
    storage: {raw_days: 7}
    features:
      chat:
        criticality: high
        latency_budget: {first_token: 2s}
        chain: [{backend: azure-openai}, {backend: local-llama}, {degraded: canned, quality: 0.3}]
    """)]


def checked(schema: dict) -> type:
    """The validator for the draft ``schema`` names, after checking ``schema`` against that draft's meta-schema
    (`jsonschema.exceptions.SchemaError` if it is not a valid schema)."""
    validator = jsonschema.validators.validator_for(schema, default=None)
    assert validator is not None, f"unknown $schema {schema.get('$schema')!r}"
    validator.check_schema(schema)
    return validator


def test_the_schema_is_valid_under_the_meta_schema_of_its_draft():
    schema = AiriskConfig.json_schema()
    assert schema["$schema"] == DRAFT
    assert checked(schema) is jsonschema.Draft202012Validator


def test_airisk_validate_schema_prints_that_valid_schema():
    result = CliRunner().invoke(main, ["validate", "--schema"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert checked(json.loads(result.stdout)) is jsonschema.Draft202012Validator


@pytest.mark.parametrize(("where", "bad"), [(("properties", "targets", "type"), "mapping"),
                                            (("required",), "targets"),
                                            (("additionalProperties",), "no")])
def test_the_check_refuses_a_schema_that_is_not_valid(where: tuple[str, ...], bad: object):
    """The check above can fail: the same schema with one keyword given a value its draft forbids."""
    schema = copy.deepcopy(AiriskConfig.json_schema())
    node = schema
    for key in where[:-1]:
        node = node[key]
    node[where[-1]] = bad
    with pytest.raises(jsonschema.exceptions.SchemaError):
        checked(schema)


@pytest.mark.parametrize("text", VALID)
def test_a_file_the_loader_accepts_is_valid_under_the_schema(text: str):
    parse_config(text, environ={})
    schema = AiriskConfig.json_schema()
    assert list(checked(schema)(schema).iter_errors(yaml.safe_load(text))) == []


@pytest.mark.parametrize("text", ["targets: [{provider: opneai}]\n", "targets: [{provider: openai, modle: x}]\n",
                                  "targets: []\nstorage: {raw_days: 0}\n", "defaults: {}\n"])
def test_a_file_the_loader_refuses_for_its_shape_is_refused_by_the_schema_too(text: str):
    schema = AiriskConfig.json_schema()
    assert list(checked(schema)(schema).iter_errors(yaml.safe_load(text)))
