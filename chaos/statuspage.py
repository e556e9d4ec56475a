"""An emulated vendor status page in Atlassian Statuspage's public v2 JSON format.

Format from Statuspage's public API docs (``/api/v2/summary.json``,
``/api/v2/incidents.json``, as every hosted page documents at ``<page>/api``):
``page``, ``status.indicator`` (none | minor | major | critical) with a
``description``, ``components[]`` (operational | degraded_performance | partial_outage |
major_outage), ``incidents[]`` (unresolved only in the summary) each with
``incident_updates[]`` (investigating | identified | monitoring | resolved).

The vendor's texts here are our own words; what is emulated is *when* a vendor
speaks, so detection lead time can be measured against it.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

INDICATORS = ("none", "minor", "major", "critical")
STAGES = ("investigating", "identified", "monitoring", "resolved")
_COMPONENT_STATUS = {
    "none": "operational", "minor": "degraded_performance", "major": "partial_outage", "critical": "major_outage",
}
_DESCRIPTION = {
    "none": "All Systems Operational", "minor": "Minor Service Outage",
    "major": "Partial System Outage", "critical": "Major System Outage",
}
_ids = itertools.count(1)


def _iso(when: datetime) -> str:
    return when.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(slots=True)
class Incident:
    name: str
    impact: str
    updates: list[tuple[str, str, datetime]] = field(default_factory=list)  # stage, body, when
    id: str = field(default_factory=lambda: f"inc{next(_ids):04d}")
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def stage(self) -> str:
        return self.updates[-1][0] if self.updates else "investigating"

    def to_dict(self, page_id: str) -> dict[str, Any]:
        resolved = next((w for s, _, w in self.updates if s == "resolved"), None)
        updated = self.updates[-1][2] if self.updates else self.created_at
        return {
            "id": self.id, "name": self.name, "status": self.stage, "impact": self.impact, "page_id": page_id,
            "created_at": _iso(self.created_at), "updated_at": _iso(updated),
            "started_at": _iso(self.created_at), "resolved_at": _iso(resolved) if resolved else None,
            "shortlink": f"https://stspg.io/{self.id}",
            "incident_updates": [
                {"id": f"{self.id}u{i}", "status": s, "body": b, "created_at": _iso(w), "updated_at": _iso(w),
                 "display_at": _iso(w), "incident_id": self.id}
                for i, (s, b, w) in reversed(list(enumerate(self.updates)))
            ],
        }


class StatusPage:
    """One vendor's page: the incidents it has posted, newest first."""

    def __init__(self, provider: str, components: tuple[str, ...] = ("API",)) -> None:
        self.provider = provider
        self.page_id = f"emu-{provider}"
        self.components = components
        self.incidents: list[Incident] = []
        self.updated_at = datetime.now(UTC)

    def post(self, *, name: str, impact: str = "major", stage: str = "investigating", body: str = "") -> Incident:
        """Open an incident, or add an update to the open one with the same name."""
        if impact not in INDICATORS:
            raise ValueError(f"status.impact: one of {', '.join(INDICATORS)}, got {impact!r}")
        if stage not in STAGES:
            raise ValueError(f"status.stage: one of {', '.join(STAGES)}, got {stage!r}")
        now = datetime.now(UTC)
        incident = next((i for i in self.open_incidents() if i.name == name), None)
        if incident is None:
            incident = Incident(name=name, impact=impact, created_at=now)
            self.incidents.insert(0, incident)
        incident.impact = impact
        incident.updates.append((stage, body or f"We are {stage} this issue.", now))
        self.updated_at = now
        return incident

    def resolve_all(self, body: str = "This incident has been resolved.") -> int:
        open_ = self.open_incidents()
        for incident in open_:
            incident.updates.append(("resolved", body, datetime.now(UTC)))
        self.updated_at = datetime.now(UTC)
        return len(open_)

    def open_incidents(self) -> list[Incident]:
        return [i for i in self.incidents if i.stage != "resolved"]

    def indicator(self) -> str:
        open_ = self.open_incidents()
        return max((i.impact for i in open_), key=INDICATORS.index, default="none")

    def _page(self) -> dict[str, Any]:
        return {"id": self.page_id, "name": f"{self.provider} (emulated)", "url": f"/status/{self.provider}",
                "time_zone": "Etc/UTC", "updated_at": _iso(self.updated_at)}

    def summary(self) -> dict[str, Any]:
        indicator = self.indicator()
        components = [
            {"id": f"{self.page_id}-c{i}", "name": name, "status": _COMPONENT_STATUS[indicator],
             "created_at": "2024-01-01T00:00:00.000Z", "updated_at": _iso(self.updated_at), "position": i,
             "description": None, "showcase": True, "group_id": None, "page_id": self.page_id, "group": False,
             "only_show_if_degraded": False}
            for i, name in enumerate(self.components, 1)
        ]
        return {
            "page": self._page(),
            "status": {"indicator": indicator, "description": _DESCRIPTION[indicator]},
            "components": components,
            "incidents": [i.to_dict(self.page_id) for i in self.open_incidents()],
            "scheduled_maintenances": [],
        }

    def incidents_json(self) -> dict[str, Any]:
        return {"page": self._page(), "incidents": [i.to_dict(self.page_id) for i in self.incidents[:50]]}
