"""The emulator's fault scripts (``POST /_airisk/timeline``, ``airisk emulate --timeline``): checked
whole by `validate_script` before any step runs, then run by `run_timeline` step by step.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
from typing import Any

from chaos.control.changes import Emulator, apply_add, apply_profile, apply_status, check_profile, check_status
from chaos.faults import MAX_LEASE_S, Fault
from probes.catalog import CATALOG

log = logging.getLogger(__name__)
_timelines = itertools.count(1)
_STEP_ACTIONS = ("add", "remove", "clear", "status", "profile")
MIN_REPEAT_PERIOD_S = 1.0  # a repeating timeline adds its faults at most once a second
MAX_STEPS = 10_000


class Script:
    """A validated timeline: steps sorted by time, and how it repeats."""

    __slots__ = ("period", "repeat", "steps")

    def __init__(self, steps: list[dict[str, Any]], repeat: bool, period: float) -> None:
        self.steps, self.repeat, self.period = steps, repeat, period


def validate_timeline(data: Any) -> list[dict[str, Any]]:
    """The steps of a timeline, each action checked as it will be applied (`validate_script`)."""
    return validate_script(data).steps


def validate_script(data: Any) -> Script:
    """Check a whole timeline before any of it runs: every step's time and action, and, for a
    repeating one, a period of at least `MIN_REPEAT_PERIOD_S` (steps all at 0 would otherwise
    add faults in a busy loop)."""
    if not isinstance(data, dict) or not isinstance(data.get("steps"), list):
        raise ValueError("timeline.steps: required, a list of steps")
    unknown = set(map(str, data)) - {"steps", "repeat", "period"}
    if unknown:
        raise ValueError(f"timeline: unknown field {sorted(unknown)[0][:60]!r} (known: steps, repeat, period)")
    if len(data["steps"]) > MAX_STEPS:
        raise ValueError(f"timeline.steps: at most {MAX_STEPS} steps")
    repeat = data.get("repeat", False)
    if not isinstance(repeat, bool):
        raise ValueError("timeline.repeat: must be true or false")
    steps = []
    for i, step in enumerate(data["steps"]):
        where = f"timeline.steps[{i}]"
        if not isinstance(step, dict):
            raise ValueError(f"{where}: must be an object")
        at = step.get("at")
        if not _seconds(at) or at < 0:
            raise ValueError(f"{where}.at: seconds from the start, a number >= 0")
        actions = [a for a in _STEP_ACTIONS if a in step]
        if len(actions) != 1 or set(map(str, step)) - {"at", *_STEP_ACTIONS}:
            raise ValueError(f"{where}: exactly one of {', '.join(_STEP_ACTIONS)} besides 'at'")
        try:
            _check_action(actions[0], step[actions[0]])
        except ValueError as exc:
            raise ValueError(f"{where}.{actions[0]}: {exc}") from None
        steps.append(step)
    steps.sort(key=lambda s: s["at"])
    last = steps[-1]["at"] if steps else 0.0
    period = data.get("period", last)
    if not _seconds(period) or period < last:
        raise ValueError(f"timeline.period: seconds, at least the last step's time ({last:g})")
    if repeat and period < MIN_REPEAT_PERIOD_S:
        raise ValueError(f"timeline.period: a repeating timeline needs a period of at least "
                         f"{MIN_REPEAT_PERIOD_S:g} s (give 'period', or a last step at >= {MIN_REPEAT_PERIOD_S:g} s)")
    return Script(steps, repeat, float(period))


def _seconds(value: Any) -> bool:
    return (isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
            and value <= MAX_LEASE_S)


def _check_action(action: str, value: Any) -> None:
    if action == "add":
        Fault.from_dict(value, routes=CATALOG)
    elif action == "remove":
        if not isinstance(value, str) or not value:
            raise ValueError("the id of a fault to remove (a step's add.id, or a fault's id)")
    elif action == "clear":
        if value is not True:
            raise ValueError("must be true")
    elif action == "status":
        if not isinstance(value, dict):
            raise ValueError("must be an object with a 'provider'")
        rest = {k: v for k, v in value.items() if k != "provider"}
        check_status(value.get("provider"), rest)
    elif action == "profile":
        if not isinstance(value, dict):
            raise ValueError("must be an object")
        rest = {k: v for k, v in value.items() if k != "route"}
        check_profile(value.get("route", "*"), rest)


async def run_timeline(emu: Emulator, steps: list[dict[str, Any]], *, repeat: bool = False,
                       period: float | None = None) -> None:
    """Apply each step of a validated script at its time; a step's faults are tagged so later steps
    can remove them. Each round of a repeating one starts ``period`` after the last (at least
    `MIN_REPEAT_PERIOD_S`); an add without an id keeps the same id every round, so repeating
    replaces the round before's fault rather than piling up more."""
    loop = asyncio.get_running_loop()
    last = steps[-1]["at"] if steps else 0.0
    period = max(last if period is None else period, MIN_REPEAT_PERIOD_S if repeat else 0.0)
    tag = f"t{next(_timelines)}"
    while True:
        start = loop.time()
        added: dict[str, str] = {}
        for index, step in enumerate(steps):
            await asyncio.sleep(max(0.0, start + step["at"] - loop.time()))
            try:
                _apply_step(emu, step, added, f"{tag}s{index}")
            except ValueError as exc:  # validated; this is a bug, and the next step still runs
                log.error("timeline step %d (%s): %s", index, step, exc)
        if not repeat or not steps:
            return
        await asyncio.sleep(max(0.0, start + period - loop.time()))


def _apply_step(emu: Emulator, step: dict[str, Any], added: dict[str, str], own_id: str) -> None:
    if "add" in step:
        given = step["add"].get("id")
        fault = apply_add(emu, {**step["add"], "id": given or own_id})
        added[str(given or own_id)] = fault.id
    elif "remove" in step:
        emu.faults.remove(added.get(str(step["remove"]), str(step["remove"])))
    elif "clear" in step:
        emu.faults.clear()
    elif "status" in step:
        status = dict(step["status"])
        apply_status(emu, str(status.pop("provider", "")), status)
    elif "profile" in step:
        profile = dict(step["profile"])
        apply_profile(emu, str(profile.pop("route", "*")), profile)
