"""Alerts: what the outbox sent, when, to which channel, and whether it was delivered."""

from __future__ import annotations

from datetime import datetime

import pandas as pd
from sqlmodel import Session

from dashboard.queries.common import frame
from dashboard.windows import Window
from monitor.store.queries import alert_log

ALERT_COLUMNS = ("created_at", "channel", "rule", "action", "title", "target", "state", "delivered", "attempts",
                 "sent_at", "delay_s", "last_error", "severity", "id")
DELIVERY = {"sent": "delivered", "pending": "pending (retrying)", "dead": "not delivered"}


def alert_table(*, session: Session, now: datetime, window: Window, limit: int = 2000) -> pd.DataFrame:
    """Alerts raised in ``window`` (the newest ``limit``), newest first; ``delivered`` in words, ``delay_s``
    from raising to delivery."""
    since, until = window.bounds(now)
    rows = [{**a, "delivered": DELIVERY.get(a["state"], a["state"]),
             "delay_s": (a["sent_at"] - a["created_at"]).total_seconds() if a["sent_at"] else None}
            for a in alert_log(session=session, since=since, until=until, limit=limit)]
    return frame(rows, ALERT_COLUMNS)


def delivery_counts(alerts: pd.DataFrame) -> pd.DataFrame:
    """Alerts per channel and delivery state (``channel, delivered, count``)."""
    if alerts.empty:
        return frame([], ("channel", "delivered", "count"))
    return (alerts.groupby(["channel", "delivered"], as_index=False).size().rename(columns={"size": "count"})
            .sort_values(["channel", "delivered"], ignore_index=True))
