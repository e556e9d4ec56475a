"""Several vantage points, one voice: the verdict over every region's view of one target.

Each `airisk monitor --region R` judges a target on its own (`monitor.detect`). This module
turns the regions' states into one: whether the target is globally DOWN or DEGRADED (an
incident that pages), seen failing from too few regions (a regional incident: the dashboard,
and only the alert rules with ``regional: true``), or fine. Pure functions, no I/O: the
monitor (`monitor.service`), the alert-noise benchmark and the tests all ask the same
questions of the same code.

The rules, with ``needed = needed(quorum, len(alive))``:

- Only alive regions count (those whose monitor's heartbeat is recent, `monitor.vantage`). A
  dead monitor's last word stays whatever it was when it died: counting it could page for an
  outage long over, or (counting it as up) keep a real outage below the quorum.
- The global state is the worst state held by at least ``needed`` alive regions. DOWN counts
  towards DEGRADED too: one region DOWN and one DEGRADED are two regions seeing trouble, so
  with a quorum of 2 the target is globally DEGRADED (not DOWN: only one saw it down).
- An alive region with no sighting (it has not judged the target yet) counts as not seeing
  trouble: it makes the majority larger but never adds to the count.
- Short of the quorum, a target that some alive region sees DOWN or DEGRADED is a regional
  verdict: the worst of those states, scope ``"regional"``.

A quorum larger than the alive regions asks for what cannot happen: with ``quorum: 3`` and one
of three monitors dead, no outage would ever page again, and the dead monitor would have
silenced every real outage. So ``needed`` is capped at the alive regions: every alive region
must agree. The cap never goes below one, so a lone survivor speaks alone, as a single
monitor always has. With no alive region there is nobody to see anything: the verdict is
``none``.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

__all__ = ["NONE", "SEVERITY", "Sighting", "Verdict", "needed", "verdict"]

Quorum = int | Literal["majority"]
Scope = Literal["global", "regional", "none"]

SEVERITY = {"up": 0, "degraded": 1, "down": 2}
"""How bad each state is; a verdict takes the worst."""
_SCOPES = {"none": 0, "regional": 1, "global": 2}


@dataclass(frozen=True, slots=True)
class Sighting:
    """One region's current view of a target: its detector's state and since when it holds."""

    region: str
    state: str  # "up" | "degraded" | "down"
    since: datetime

    def __post_init__(self) -> None:
        if self.state not in SEVERITY:
            raise ValueError(f"sighting of region {self.region!r}: state must be up, degraded or down, "
                             f"got {self.state!r}")


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the regions say together.

    ``state`` is ``"up"`` only with scope ``"none"``. ``regions`` are the alive regions behind
    the verdict, sorted: for a global DOWN those seeing DOWN, for a global DEGRADED those seeing
    DEGRADED or DOWN, for a regional one every alive region seeing trouble. ``since`` is when
    the verdict began as far as the sightings tell: for a global one the moment the
    ``needed``-th region joined (each region's ``since`` is when its own state began, so a
    region that went DEGRADED and then DOWN joins a DEGRADED quorum at its DOWN time: late,
    never early); for a regional one the earliest of its regions; ``None`` for ``none``.
    """

    state: str
    scope: Scope
    regions: tuple[str, ...] = ()
    since: datetime | None = None

    @property
    def rank(self) -> tuple[int, int]:
        """An order on verdicts, worst last: by scope, then by state (global DEGRADED is worse than
        regional DOWN: the former pages)."""
        return _SCOPES[self.scope], SEVERITY[self.state]


NONE = Verdict(state="up", scope="none")


def needed(quorum: Quorum, alive_regions: int) -> int:
    """How many alive regions must see a state for it to be the global state.

    ``"majority"``: more than half of the alive regions (1 of 1, 2 of 2, 2 of 3, 3 of 4). An
    integer: that many, but never more than the alive regions (module docstring: a quorum no
    one can reach would let dead monitors silence a real outage), and never fewer than one.
    """
    if alive_regions < 0:
        raise ValueError(f"alive_regions must be 0 or more, got {alive_regions}")
    if quorum == "majority":
        return alive_regions // 2 + 1
    if isinstance(quorum, bool) or not isinstance(quorum, int) or quorum < 1:
        raise ValueError(f"quorum must be a positive integer or 'majority', got {quorum!r}")
    return max(1, min(quorum, alive_regions))


def verdict(sightings: Iterable[Sighting], *, quorum: Quorum, alive: Collection[str]) -> Verdict:
    """The global (or regional) verdict on one target from its regions' sightings.

    Sightings of regions not in ``alive`` are ignored. Should one region appear more than once,
    its worst state counts (with the earliest ``since`` among those of that state).
    """
    alive_set = set(alive)
    current: dict[str, Sighting] = {}
    for s in sightings:
        if s.region not in alive_set:
            continue
        held = current.get(s.region)
        if held is None or (SEVERITY[s.state], held.since) > (SEVERITY[held.state], s.since):
            current[s.region] = s
    if not current:
        return NONE
    need = needed(quorum, len(alive_set))
    for state in ("down", "degraded"):
        seeing = [s for s in current.values() if SEVERITY[s.state] >= SEVERITY[state]]
        if len(seeing) >= need:
            joined = sorted(s.since for s in seeing)[need - 1]
            return Verdict(state=state, scope="global", regions=tuple(sorted(s.region for s in seeing)),
                           since=joined)
    trouble = [s for s in current.values() if s.state != "up"]
    if not trouble:
        return NONE
    worst = max(SEVERITY[s.state] for s in trouble)
    return Verdict(state="down" if worst == 2 else "degraded", scope="regional",
                   regions=tuple(sorted(s.region for s in trouble)), since=min(s.since for s in trouble))
