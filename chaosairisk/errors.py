"""The one error an airisk activity raises, so Chaos Toolkit records it as the activity's failure."""

from chaoslib.exceptions import ActivityFailed


class AiriskActivityFailed(ActivityFailed):
    """An activity that could not do its job; the message is one line naming what and why."""


__all__ = ["AiriskActivityFailed"]
