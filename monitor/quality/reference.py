"""`airisk eval reference`: the primary's answers become the cases' ``reference``, written into the eval
file line for line.

Only the ``reference`` member of a case's line changes (added after its last member, or its value
replaced with ``--force``); every other byte of every line, and the order of the lines, stay as they
were, so a reviewer's diff shows references and nothing else.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from json.decoder import scanstring
from pathlib import Path
from typing import TYPE_CHECKING

from probes import generate

if TYPE_CHECKING:
    import httpx

    from monitor.quality.runner import Plan
    from probes import Target

_WS = " \t\n\r"


class LineError(ValueError):
    """A line that cannot be edited in place (not one JSON object)."""


@dataclass(frozen=True, slots=True)
class References:
    """What a reference run found: the new references by line number, and what it could not get."""

    texts: dict[int, str]
    """Line number (1-based) -> the reference to write there."""
    failed: dict[str, str]
    """Case id -> why it has no reference (the backend's error kind, an empty answer)."""
    kept: int
    """Cases that already had a reference and kept it (no --force)."""


async def collect(plan: Plan, target: Target, *, client: httpx.AsyncClient, concurrency: int = 4,
                  force: bool = False, progress=None) -> References:
    """Asks ``target`` each case of ``plan`` that needs a reference (all with ``force``), ``concurrency`` at once."""
    wanted = [i for i, c in enumerate(plan.cases) if force or c.reference is None]
    texts: dict[int, str] = {}
    failed: dict[str, str] = {}
    pending = iter(wanted)

    async def worker() -> None:
        for index in pending:
            case = plan.cases[index]
            generation = await generate(target, plan.conversations[index], client=client)
            text = generation.text.strip()
            if not generation.ok:
                failed[case.id] = str(generation.result.error_kind)
            elif not text:
                failed[case.id] = "empty answer"
            else:
                texts[line_number(case.source)] = text
            if progress is not None:
                progress(case.id, generation.ok and bool(text))

    async with asyncio.TaskGroup() as group:
        for _ in range(min(concurrency, len(wanted))):
            group.create_task(worker())
    return References(texts=texts, failed=failed, kept=len(plan.cases) - len(wanted))


def line_number(source: str) -> int:
    """The line of a case's ``file:line`` source."""
    return int(source.rsplit(":", 1)[1])


def with_references(raw: bytes, texts: Mapping[int, str]) -> bytes:
    """``raw`` (an eval file) with ``texts[n]`` as the reference of line ``n``; other lines byte for byte."""
    lines = raw.split(b"\n")
    for number, text in texts.items():
        line = lines[number - 1].decode("utf-8")
        lines[number - 1] = set_reference(line, text).encode("utf-8")
    return b"\n".join(lines)


def set_reference(line: str, text: str) -> str:
    """``line`` (one JSON object) with its ``reference`` member set to ``text``: the last one's value replaced
    when there is one, else a member added after the last, in the line's own spacing."""
    members, close = _members(line)
    value = json.dumps(text, ensure_ascii=False)
    for m in reversed(members):
        if m.key == "reference":
            return line[:m.value_start] + value + line[m.value_end:]
    if not members:
        return line[:close] + f'"reference": {value}' + line[close:]
    first = members[0]
    colon = line[first.key_end:first.value_start]  # as the line writes it: ":" or ": "
    # ... and its comma: as between its first two members, else "," followed by the colon's spacing
    comma = (line[first.value_end:members[1].key_start] if len(members) > 1
             else "," + colon[colon.index(":") + 1:])
    last = members[-1].value_end
    return line[:last] + comma + '"reference"' + colon + value + line[last:]


@dataclass(frozen=True, slots=True)
class _Member:
    key: str
    key_start: int
    key_end: int  # after the key's closing quote
    value_start: int
    value_end: int


def _members(line: str) -> tuple[list[_Member], int]:
    """The top-level members of the object on ``line``, and where its closing brace is."""
    decoder = json.JSONDecoder()
    i = _skip(line, 0)
    if i >= len(line) or line[i] != "{":
        raise LineError("not a JSON object")
    i = _skip(line, i + 1)
    members: list[_Member] = []
    if i < len(line) and line[i] == "}":
        return members, _closed(line, i)
    while True:
        if i >= len(line) or line[i] != '"':
            raise LineError("a member's key is not a string")
        try:
            key, key_end = scanstring(line, i + 1)
        except ValueError as exc:
            raise LineError(str(exc)) from None
        j = _skip(line, key_end)
        if j >= len(line) or line[j] != ":":
            raise LineError("no ':' after a key")
        start = _skip(line, j + 1)
        try:
            _, end = decoder.raw_decode(line, start)
        except (ValueError, RecursionError) as exc:
            raise LineError(str(exc) or "too deeply nested") from None
        members.append(_Member(key, i, key_end, start, end))
        k = _skip(line, end)
        if k < len(line) and line[k] == ",":
            i = _skip(line, k + 1)
            continue
        if k < len(line) and line[k] == "}":
            return members, _closed(line, k)
        raise LineError("the object does not close")


def _closed(line: str, close: int) -> int:
    if _skip(line, close + 1) != len(line):
        raise LineError("more after the object")
    return close


def _skip(line: str, i: int) -> int:
    while i < len(line) and line[i] in _WS:
        i += 1
    return i


def write_atomically(path: Path, data: bytes, *, backup: bool) -> None:
    """``data`` to ``path`` in one rename (a reader sees the old file or the new, never half); the old file
    kept as ``path.bak`` first when ``backup``."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        if path.exists():
            shutil.copymode(path, tmp)
            if backup:
                shutil.copy2(path, path.with_name(path.name + ".bak"))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
