"""Alerts: detection transitions -> rules -> the outbox -> the dispatcher -> channels.

```
Transition ──rules.events_for──> AlertEvent ──outbox.enqueue──> alert_outbox (pending)
                                                                    │ Dispatcher.run_once:
   webhook · slack · pagerduty · email · apprise  <──send── claim_due (lease, SKIP LOCKED)
                                                                    └─> sent | retry (backoff) | dead
```

Rules are pure functions; the outbox is written in the transaction that records the cause, so an
alert is never lost to a crash or to a channel that is down; the dispatcher delivers each row once.
"""

from monitor.alerts.channels import Alert, DeliveryError, registry
from monitor.alerts.dispatch import Dispatcher
from monitor.alerts.events import AlertEvent, IncidentLike, Member, Transition, incident_key
from monitor.alerts.outbox import claim_due, enqueue, mark_failed, mark_sent, release
from monitor.alerts.redact import protect, redact
from monitor.alerts.rules import Grouper, clusters, events_for, kind_of, reminders
from monitor.alerts.slo import Availability, slo_events

__all__ = [
    "Alert",
    "AlertEvent",
    "Availability",
    "DeliveryError",
    "Dispatcher",
    "Grouper",
    "IncidentLike",
    "Member",
    "Transition",
    "claim_due",
    "clusters",
    "enqueue",
    "events_for",
    "incident_key",
    "kind_of",
    "mark_failed",
    "mark_sent",
    "protect",
    "redact",
    "registry",
    "release",
    "reminders",
    "slo_events",
]
