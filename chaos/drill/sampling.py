"""Which of the product's answers a drill checks: a bounded sample, spread over each phase.

The load generator hands on few answers with their bodies (the first full answer to a case to end
in each slot of `slot_seconds`, a fixed grid of time: see `chaos.drill.responses.Keeper`); of those,
`AnswerSample` keeps at most ``sample`` per feature and phase: the phase's planned duration is cut
into ``sample`` equal strata by the time each answer ended, and the first to arrive in a stratum is
kept. So the sample covers the phase from its start to its end (not its first seconds only), and
the runner holds at most ``sample`` bodies per feature and phase, however long the drill runs.
"""

from __future__ import annotations

from typing import Any

from chaos.drill.spec import DrillSpec

MIN_SLOT = 0.05  # seconds: the load generator hands on at most 20 bodies a second per feature and process


def slot_seconds(spec: DrillSpec, feature: str) -> float | None:
    """How often the load generator keeps a body of ``feature``'s answers: two candidates for each
    stratum of the shortest phase. None: the feature is not judged."""
    judging = spec.features[feature].judging
    if judging is None:
        return None
    return max(MIN_SLOT, min(p.duration for p in spec.phases) / (2 * judging.sample))


class AnswerSample:
    """At most ``sizes[feature]`` answers per feature and phase, spread over the phase (see the module)."""

    def __init__(self, sizes: dict[str, int], durations: dict[str, float]) -> None:
        self.sizes = sizes
        self.durations = durations
        self._kept: dict[tuple[str, str], dict[int, dict[str, Any]]] = {}
        self.offered: dict[tuple[str, str], int] = {}

    def offer(self, feature: str, phase: str, start: float, record: dict[str, Any]) -> bool:
        """Keeps ``record`` (one with an answer, in the phase that began at ``start``) if its stratum has
        none yet; True if kept."""
        size = self.sizes.get(feature)
        if not size:
            return False
        key = (feature, phase)
        self.offered[key] = self.offered.get(key, 0) + 1
        width = self.durations[phase] / size
        ended = record["t"] + record["ms"] / 1000
        stratum = min(size - 1, max(0, int((ended - start) / width))) if width > 0 else 0
        kept = self._kept.setdefault(key, {})
        if stratum in kept:
            return False
        kept[stratum] = record
        return True

    def items(self) -> list[tuple[str, str, dict[str, Any]]]:
        """(feature, phase, record) of every kept answer, each phase's in time order."""
        return [(feature, phase, kept[s]) for (feature, phase), kept in self._kept.items() for s in sorted(kept)]

    def __len__(self) -> int:
        return sum(len(kept) for kept in self._kept.values())
