"""How the load generator reads one product response, kept apart from Locust (which patches the
standard library with gevent at import) so the runner and the tests can use it as it is.

`judge_response` says whether an answer is full, degraded or failed, by the drill file's rules;
`Keeper` says which full answers carry their body to the runner to be checked (see
`chaos.drill.loadgen`).
"""

from __future__ import annotations

import json
from typing import Any

MAX_BODY = 64 * 1024  # bytes of an answer kept for judging; a longer one is left for the next in its slot


def dig(data: Any, field: str) -> Any:
    """``data[a][b]`` for the field ``a.b`` (None where there is no such thing)."""
    for part in field.split("."):
        if not isinstance(data, dict):
            return None
        data = data.get(part)
    return data


def judge_response(feature: dict, answer: str | None, status: int, body: bytes
           ) -> tuple[bool, bool, str | None, str | None, dict | None]:
    """(full answer, degraded answer, error kind, backend, the JSON answer) for one response.
    ``answer``: the field that must hold the answer (the drill's ``expect.field``, or the case's)."""
    expect = feature["expect"]
    if status != expect["status"]:
        return False, False, f"http_{status}", None, None
    data = None
    if answer or feature.get("degraded_when"):
        try:
            data = json.loads(body)
        except ValueError:
            return False, False, "bad_json", None, None
        if not isinstance(data, dict):
            return False, False, "bad_json", None, None
    backend = data.get("backend") if isinstance(data, dict) else None
    backend = backend if isinstance(backend, str) else None
    if answer and dig(data, answer) in (None, "", [], {}):
        return False, False, "bad_answer", backend, data
    degraded_when = feature.get("degraded_when")
    degraded = bool(degraded_when) and data.get(degraded_when["field"]) == degraded_when.get("equals", True)
    return not degraded, degraded, None, backend, data


class Keeper:
    """Which full answers carry their body to the runner: the first to end in each slot of
    ``slot`` seconds, per feature (a grid of wall-clock time, the same in every process)."""

    def __init__(self, slots: dict[str, float | None], max_body: int = MAX_BODY) -> None:
        self.slots = slots
        self.max_body = max_body
        self._last: dict[str, int] = {}

    def take(self, feature: str, ended: float, size: int) -> bool:
        slot = self.slots.get(feature)
        if not slot or size > self.max_body:
            return False
        index = int(ended // slot)
        if self._last.get(feature) == index:
            return False
        self._last[feature] = index
        return True
