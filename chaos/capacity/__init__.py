"""Capacity: the highest request rate a backend holds for a feature (`airisk eval capacity`).

Where things go (one look):

- ``search.py``: the search, pure: grow the rate geometrically until a step fails, then bisect between the
  last good and the first bad rate to 10%, over any ``measure(rate) -> Step``.
- ``load.py``: open-loop arrivals (a fixed rate, not N users looping: a closed loop hides queueing), and
  why they are asyncio here, not Locust.
- ``step.py``: one step: the feature's eval cases at one rate over `probes.generate`, its p95 against the
  latency budget, the checks of a bounded sample of its answers, the verdict.
- ``run.py``: the command's work: what to judge (budget, the pass rate to keep), the search, the stored figure.
"""

from chaos.capacity.load import Arrival, OpenLoop
from chaos.capacity.run import CapacityError, Setup, criteria_for, figure_of, find_capacity, prepare
from chaos.capacity.search import Capacity, Step, plan, search, search_async
from chaos.capacity.step import Criteria, Meter, allowed_late

__all__ = [
    "Arrival",
    "Capacity",
    "CapacityError",
    "Criteria",
    "Meter",
    "OpenLoop",
    "Setup",
    "Step",
    "allowed_late",
    "criteria_for",
    "figure_of",
    "find_capacity",
    "plan",
    "prepare",
    "search",
    "search_async",
]
