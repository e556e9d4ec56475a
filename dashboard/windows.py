"""The time windows a user can pick, and how finely each is charted."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from monitor.store.queries import RAW_MAX


@dataclass(frozen=True, slots=True)
class Window:
    label: str
    span: timedelta
    step: timedelta
    """Bin width of the charts over time: about a hundred points whatever the span."""

    def bounds(self, now: datetime) -> tuple[datetime, datetime]:
        return now - self.span, now

    @property
    def all_targets_source(self) -> str | None:
        """The table every-target queries read: raw rows (the store's choice) up to two hours, else the
        hour rollups, so a long window over many targets reads thousands of rows, not millions."""
        return None if self.span <= RAW_MAX else "hour"


WINDOWS: dict[str, Window] = {w.label: w for w in (
    Window("1 h", timedelta(hours=1), timedelta(minutes=1)),
    Window("6 h", timedelta(hours=6), timedelta(minutes=5)),
    Window("24 h", timedelta(hours=24), timedelta(minutes=15)),
    Window("7 d", timedelta(days=7), timedelta(hours=2)),
    Window("30 d", timedelta(days=30), timedelta(hours=6)),
)}
DEFAULT_WINDOW = "24 h"
