"""The ``lifecycle`` section of `airisk.yaml`: watching the models targets and features use before they go away.

```yaml
lifecycle:
  enabled: true
  interval: 6h        # how often each provider's model listing is read (once per distinct endpoint)
  warn_before: 30d    # the first warning; later ones at 7d and 1d, and on the day
targets:
  - {provider: anthropic, model: claude-3-opus-20240229, retires: 2026-01-05}   # a date you were told
```

`monitor.lifecycle.LifecycleWatcher` applies it. A retirement date comes from the target's own
``retires:``, else the provider's listing (where it states one: Azure OpenAI), else the dates airisk
ships (`monitor/retirements.json`, each with the page that published it).
"""

from __future__ import annotations

from typing import Annotated

from annotated_types import Interval

from monitor.config.base import Section
from monitor.durations import Duration

DAY = 86400.0
STEPS_DAYS = (7, 1)
"""Warnings after the first (``warn_before``): one at each of these many days left, when below it."""


class LifecycleConfig(Section):
    """How model retirements and removals are watched."""

    enabled: bool = True
    """False: no listing is read and no lifecycle notice is raised."""
    interval: Annotated[Duration, Interval(ge=60, le=7 * DAY)] = 6 * 3600.0
    """Time between two reads of each provider's model listing (1m to 7d)."""
    warn_before: Annotated[Duration, Interval(ge=DAY, le=365 * DAY)] = 30 * DAY
    """How long before a retirement the first warning goes out (1d to 365d); then at 7d and 1d left."""

    def thresholds(self) -> tuple[int, ...]:
        """The days-left marks at which a warning goes out, largest first (e.g. 30, 7, 1)."""
        first = int(self.warn_before // DAY)
        return (first, *(d for d in STEPS_DAYS if d < first))
