"""A feature's eval set: a JSONL file, one `Case` a line.

A case is what the feature sends and what its answer must do::

    {"id": "desc-07", "system": "You write product copy.",
     "messages": [{"role": "user", "content": "Describe: trail running shoes"}],
     "params": {"max_tokens": 120, "temperature": 0},
     "http": {"method": "POST", "path": "/api/description", "json": {"product": "trail running shoes"}},
     "checks": [{"type": "contains", "value": "shoes"}, {"type": "length", "max_words": 80}],
     "reference": "Trail running shoes with ..."}

``messages`` (with ``system`` and ``params``) is the request the feature sends its model: `airisk eval`
runs it against every backend of the chain. ``http`` is the product's own request: drills send it
through the product and check the product's answer (``answer`` names its field, default ``text``).
A case has one or both. ``checks`` (at least one) come from the registry (`monitor.quality.checks`).

Bad input is one line each, ``file:line: field: problem``, every problem of the file at once.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, Self

from annotated_types import Interval, MaxLen, MinLen
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from monitor.quality.checks import Check, parse_check

MAX_FILE_BYTES = 64 * 1024 * 1024
MAX_CASES = 100_000
MAX_LINE_BYTES = 1024 * 1024
NonEmpty = Annotated[str, MinLen(1)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Message(_Strict):
    role: Literal["system", "user", "assistant"]
    content: Annotated[str, MinLen(1), MaxLen(MAX_LINE_BYTES)]


class Params(_Strict):
    """Generation parameters the feature sends (each dialect maps them to its own names)."""

    max_tokens: Annotated[int, Interval(ge=1, le=32_768)] = 256
    temperature: Annotated[float, Interval(ge=0, le=2), Field(allow_inf_nan=False)] | None = None
    top_p: Annotated[float, Interval(gt=0, le=1), Field(allow_inf_nan=False)] | None = None
    stop: Annotated[list[NonEmpty], MaxLen(4)] | None = None


class HttpCall(_Strict):
    """The product's own request, for end-to-end runs (drills): sent to the product's base URL."""

    method: Literal["GET", "POST", "PUT", "PATCH"] = "POST"
    path: Annotated[str, MinLen(1), MaxLen(2048)]
    json_body: Any = Field(default=None, alias="json")
    answer: NonEmpty = "text"
    """The field of the product's JSON answer that holds the answer text (dots for nesting)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @field_validator("path")
    @classmethod
    def _absolute(cls, path: str) -> str:
        if not path.startswith("/") or any(c < " " or c == "\x7f" for c in path):
            raise ValueError("must start with / and hold no control characters")
        return path


class _CaseModel(_Strict):
    id: Annotated[str, MinLen(1), MaxLen(200)] | None = None
    system: Annotated[str, MinLen(1)] | None = None
    messages: Annotated[list[Message], MinLen(1)] | None = None
    params: Params = Field(default_factory=Params)
    http: HttpCall | None = None
    checks: Annotated[list[Any], MinLen(1)]
    reference: str | None = None
    tags: list[NonEmpty] = Field(default_factory=list)

    @model_validator(mode="after")
    def _something_to_send(self) -> Self:
        if self.messages is None and self.http is None:
            raise ValueError("give 'messages' (what the feature sends its model), 'http' (the product's own "
                             "request), or both")
        if self.messages is not None and self.messages[-1].role != "user":
            raise ValueError("messages: the last message must be the user's")
        return self


@dataclass(frozen=True, slots=True)
class Case:
    id: str
    source: str  # "file:line"
    checks: tuple[Check, ...]
    messages: tuple[Message, ...] = ()
    system: str | None = None
    params: Params = field(default_factory=Params)
    http: HttpCall | None = None
    reference: str | None = None
    tags: tuple[str, ...] = ()

    @property
    def prompt(self) -> str:
        """The last user message: what a one-line listing shows."""
        return self.messages[-1].content if self.messages else (self.http.path if self.http else "")


class CaseError(ValueError):
    """Every problem of an eval file, one ``file:line: field: problem`` line each."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


def load_cases(path: str | os.PathLike[str]) -> list[Case]:
    """The cases of a JSONL eval file, or `CaseError` naming every bad line."""
    return read_cases(path)[1]


def read_cases(path: str | os.PathLike[str]) -> tuple[bytes, list[Case]]:
    """The eval file's bytes (a run is tied to them by their hash) and its cases; `CaseError` if bad."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise CaseError([f"{path}: {size} bytes, more than an eval file may hold ({MAX_FILE_BYTES})"])
        raw = path.read_bytes()
    except OSError as exc:
        raise CaseError([f"{path}: cannot be read: {exc.strerror or exc}"]) from None
    return raw, parse_cases(raw, source=str(path))


def parse_cases(raw: bytes | str, *, source: str = "<cases>") -> list[Case]:
    data = raw.encode() if isinstance(raw, str) else raw
    problems: list[str] = []
    cases: list[Case] = []
    seen: dict[str, int] = {}
    for number, line in enumerate(data.split(b"\n"), start=1):
        if not line.strip():
            continue
        where = f"{source}:{number}"
        if len(cases) + len(problems) >= MAX_CASES:
            problems.append(f"{where}: more than {MAX_CASES} cases in one file")
            break
        case = _case(line, where, number, problems)
        if case is None:
            continue
        if case.id in seen:
            problems.append(f"{where}: id: {case.id!r} is already the case on line {seen[case.id]}")
            continue
        seen[case.id] = number
        cases.append(case)
    if not cases and not problems:
        problems.append(f"{source}: no cases (one JSON object a line)")
    if problems:
        raise CaseError(problems)
    return cases


def _case(line: bytes, where: str, number: int, problems: list[str]) -> Case | None:
    if len(line) > MAX_LINE_BYTES:
        problems.append(f"{where}: {len(line)} bytes on one line, more than a case may hold ({MAX_LINE_BYTES})")
        return None
    try:
        obj = json.loads(line)
    except (ValueError, RecursionError) as exc:
        problems.append(f"{where}: not JSON: {str(exc).splitlines()[0][:120] if str(exc) else 'too deeply nested'}")
        return None
    if not isinstance(obj, dict):
        problems.append(f"{where}: a case is a JSON object, got {type(obj).__name__}")
        return None
    try:
        model = _CaseModel.model_validate(obj)
    except ValidationError as exc:
        problems.extend(f"{where}: {_loc(e['loc'])}: {_msg(e)}" for e in exc.errors())
        return None
    checks: list[Check] = []
    for i, entry in enumerate(model.checks):
        try:
            checks.append(parse_check(entry))
        except ValidationError as exc:
            problems.extend(f"{where}: {_loc(('checks', i, *e['loc']))}: {_msg(e)}" for e in exc.errors())
        except ValueError as exc:
            problems.append(f"{where}: checks.{i}: {exc}")
    if len(checks) != len(model.checks):
        return None
    return Case(id=model.id or f"line-{number}", source=where, checks=tuple(checks),
                messages=tuple(model.messages or ()), system=model.system, params=model.params, http=model.http,
                reference=model.reference, tags=tuple(model.tags))


def _loc(loc: tuple[Any, ...]) -> str:
    return ".".join(str(p) for p in loc if not (isinstance(p, str) and p.startswith("function-"))) or "(case)"


def _msg(error: dict[str, Any]) -> str:
    message = str(error.get("msg", "invalid"))
    return message.removeprefix("Value error, ")[:200]
