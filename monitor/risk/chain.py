"""A chain's expected loss: which link serves a request, and who is to blame when none serves in full.

Each counted link is a `Term`: availability a (up for a request when the shared draw of its failure
domain is below a), effectiveness e (serves when up and reached), value v (1 for an AI backend, the
quality of a degraded mode). Domains are independent; the members of one fail together, the least
available first (the most pessimistic coupling: P(some member up) is only the largest a).
"""

from __future__ import annotations

import itertools
import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Term:
    """A counted link reduced to what the arithmetic needs."""

    availability: float
    domain: str
    value: float = 1.0
    effectiveness: float = 1.0


@dataclass(frozen=True, slots=True)
class ChainOutcome:
    unavailability: float
    blame: tuple[float, ...]  # per term: its share of the unavailability (they sum to it)
    served: tuple[float, ...]  # per term: the share of requests it serves
    unserved: float  # share of requests no term serves


def all_down(terms: Sequence[Term]) -> float:
    """P(every term fails a request): domains independent; within one, the members fail together.

    Within a domain a shared uniform U decides: member j is up when U < a_j (so the least available
    member fails first), and then serves with probability e_j (independently).
    """
    by_domain: dict[str, list[Term]] = defaultdict(list)
    for t in terms:
        by_domain[t.domain].append(t)
    p = 1.0
    for members in by_domain.values():
        cuts = sorted({0.0, 1.0, *(_unit(t.availability) for t in members)})
        p *= sum((hi - lo) * math.prod(1.0 - _unit(t.effectiveness) for t in members if _unit(t.availability) >= hi)
                 for lo, hi in itertools.pairwise(cuts))
    return p


def chain_outcome(terms: Sequence[Term]) -> ChainOutcome:
    """Expected loss of a chain, the share each term serves, and each term's share of the loss.

    The loss of a request served by term i (1 - value_i), or of one no term serves (1), is shared
    equally by the failure domains of the terms before it (all of which failed it), and within a
    domain equally by its terms there: the Shapley value of a loss that needed every one of them.
    """
    down = [all_down(terms[:k]) for k in range(len(terms) + 1)]
    blame = [0.0] * len(terms)
    served = []
    total = 0.0
    for i, t in enumerate(terms):
        p = max(0.0, down[i] - down[i + 1])
        served.append(p)
        loss = p * (1.0 - _unit(t.value))
        total += loss
        _share(blame, terms, i, loss)
    _share(blame, terms, len(terms), down[-1])
    total += down[-1]
    return ChainOutcome(min(1.0, total), tuple(blame), tuple(served), down[-1])


def _share(blame: list[float], terms: Sequence[Term], upto: int, loss: float) -> None:
    if loss <= 0 or upto == 0:
        return
    members: dict[str, list[int]] = defaultdict(list)
    for j in range(upto):
        members[terms[j].domain].append(j)
    for indices in members.values():
        for j in indices:
            blame[j] += loss / len(members) / len(indices)


def _unit(x: float) -> float:
    return min(1.0, max(0.0, x))
