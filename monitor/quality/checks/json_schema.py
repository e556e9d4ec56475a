"""``json_schema``: the answer is JSON that a JSON Schema accepts (the ``jsonschema`` library).

The JSON is read from a fenced block (```json ... ```) when the answer has one, else from the whole
answer, else from its first ``{...}`` or ``[...]`` span, as models wrap JSON in prose. The schema is
checked against its own meta-schema when the eval file loads.
"""

from __future__ import annotations

import json
import re
from typing import Any, Literal

from jsonschema import exceptions, validators
from pydantic import Field, PrivateAttr, field_validator

from monitor.quality.checks._text import quote
from monitor.quality.checks.base import Check, Context, Verdict, register

_FENCE = re.compile(r"```[ \t]*(?:json[c5]?)?[ \t]*\r?\n(.*?)```", re.DOTALL | re.IGNORECASE)
_STARTS = 8  # `{`/`[` positions tried for a span: enough for prose around JSON, bounded for garbage


class NoJson(ValueError):
    pass


def read_json(answer: str) -> Any:
    """The JSON value an answer holds (see the module's docstring); `NoJson` saying why there is none."""
    fence = _FENCE.search(answer)
    text = fence.group(1) if fence else answer
    decoder = json.JSONDecoder()
    first_error = None
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:
        first_error = exc
    starts = [i for i, c in enumerate(text) if c in "{["][:_STARTS]
    for start in starts:
        try:
            return decoder.raw_decode(text, start)[0]
        except (ValueError, RecursionError):
            continue
    if not starts:
        raise NoJson("no JSON object or array in the answer")
    reason = str(first_error).splitlines()[0][:120] if isinstance(first_error, ValueError) else "nested too deeply"
    raise NoJson(f"not JSON: {reason}")


def _validator_class(schema: dict[str, Any]) -> Any:
    """The validator of the draft ``$schema`` names (the latest without one); ValueError for a draft
    jsonschema does not know (which it would otherwise only warn about, and validate as the latest)."""
    if "$schema" not in schema:
        return validators.validator_for(schema)
    uri = schema["$schema"]
    if not isinstance(uri, str):
        raise ValueError(f"$schema must be a draft's URI, got {type(uri).__name__}")
    try:
        found = validators.validator_for(schema, default=None)
    except Exception:  # jsonschema parses the URI: whatever it raises, the draft is not one it knows
        found = None
    if found is None:
        raise ValueError(f"$schema {quote(uri)} names no JSON Schema draft jsonschema knows")
    return found


@register
class JsonSchema(Check):
    name = "json_schema"
    type: Literal["json_schema"] = "json_schema"
    schema_: dict[str, Any] = Field(alias="schema")
    """The JSON Schema (any draft; ``$schema`` picks it, else the latest)."""
    _validator: Any = PrivateAttr()

    @field_validator("schema_")
    @classmethod
    def _valid_schema(cls, schema: dict[str, Any]) -> dict[str, Any]:
        validator = _validator_class(schema)
        try:
            validator.check_schema(schema)
        except exceptions.SchemaError as exc:
            where = exc.json_path if exc.path else "the top"
            raise ValueError(f"not a valid JSON Schema: {exc.message[:160]} (at {where})") from None
        except Exception as exc:  # a third-party library on the file's input: any failure is a bad schema
            raise ValueError(f"not a valid JSON Schema: {type(exc).__name__}") from None
        return schema

    def model_post_init(self, context: Any) -> None:
        self._validator = _validator_class(self.schema_)(self.schema_)

    def run(self, answer: str, ctx: Context) -> Verdict:
        try:
            document = read_json(answer)
        except NoJson as exc:
            return Verdict.fail(f"{exc} ({quote(answer, 40)})")
        try:
            error = exceptions.best_match(self._validator.iter_errors(document))
        except RecursionError:
            return Verdict.fail("JSON nested too deeply to validate")
        except Exception as exc:  # a $ref the schema cannot resolve: the file's fault, not the answer's
            return Verdict.unjudged(f"json_schema: the schema could not be applied: {type(exc).__name__}: "
                                    f"{str(exc).splitlines()[0][:120] if str(exc) else ''}")
        if error is None:
            return Verdict.ok(f"valid JSON ({type(document).__name__}) for the schema")
        return Verdict.fail(f"at {error.json_path}: {error.message[:160]}")
