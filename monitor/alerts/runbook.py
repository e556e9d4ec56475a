"""What an on-call engineer should do about a cause: error kind -> (title wording, runbook line).

Most outages pass by themselves and the page only has to say what is hurt. A few causes never pass
by themselves, and retrying them only burns time; the page says so, in its title where the fix
needs a person, and in a runbook line in every channel::

    DOWN, and nothing will change until someone acts
    ├── quota_exhausted   spent quota or credit balance: a human with a credit card  (own title)
    ├── auth              the key was rejected: a human with access to the key
    └── model_not_found   the model is gone: a config change
    DOWN or DEGRADED, and it passes by itself
    ├── rate_limited      our own traffic is over the limit: spread it, or raise the limit
    └── overloaded        the provider sheds load: wait, or lean on the fallbacks

A cause names its error kinds as detection writes them (`monitor.detect`): ``kinds`` (kind ->
count, most common first) or a single ``error_kind``. A cause's kind is its most common one: one
stray error among many overloads does not make a quota outage.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Runbook:
    """What to say about one error kind."""

    line: str
    """The runbook line every channel shows: what to do, in one sentence."""
    title: str | None = None
    """Replaces the title's "is DOWN" when the fix needs a person ("openai: <title>"); None: the usual title."""


QUOTA_TITLE = "quota/credit exhausted — needs a human with a credit card, retrying will not help"

RUNBOOK: dict[str, Runbook] = {
    "quota_exhausted": Runbook(
        "Spent quota or credit balance: top up the account or raise its spend limit in the provider's billing "
        "console (the probe's detail says which); the target stays DOWN until then, whatever is retried.",
        QUOTA_TITLE),
    "auth": Runbook("The provider rejects the API key: check that the key in the target's key variable is current "
                    "and not revoked, and that the account is in good standing."),
    "model_not_found": Runbook("The provider no longer serves this model: move the target (and the features "
                               "whose chain names it) to a model it lists."),
    "rate_limited": Runbook("Rate limited: our own traffic is over the provider's limit; it passes as load falls. "
                            "Spread the load or ask the provider for a higher limit."),
    "overloaded": Runbook("The provider is shedding load; it usually passes within minutes. Lean on the fallbacks "
                          "and watch its status page."),
}
"""Error kind (`probes.result.ErrorKind` value) -> what to do about it."""


def cause_kind(cause: Mapping[str, Any]) -> str | None:
    """The cause's error kind: the most common of ``kinds``, else ``error_kind``; None when it names none."""
    kinds = cause.get("kinds")
    if isinstance(kinds, Mapping) and kinds:
        counted = [(k, n) for k, n in kinds.items() if isinstance(n, int | float) and not isinstance(n, bool)]
        if counted:
            return str(max(counted, key=lambda kn: kn[1])[0])  # max keeps the first of equals: detection's order
    kind = cause.get("error_kind")
    return kind if isinstance(kind, str) and kind else None


def runbook_for(causes: Iterable[Mapping[str, Any]]) -> list[Runbook]:
    """The runbook entries of ``causes``' kinds, each once, in the order the causes come."""
    seen: dict[str, Runbook] = {}
    for cause in causes:
        kind = cause_kind(cause) if isinstance(cause, Mapping) else None
        if kind in RUNBOOK and kind not in seen:
            seen[kind] = RUNBOOK[kind]
    return list(seen.values())


def title_wording(causes: Iterable[Mapping[str, Any]]) -> str | None:
    """The title wording of the first cause whose kind has one (a spent quota), else None."""
    return next((r.title for r in runbook_for(causes) if r.title), None)
