"""Slack incoming webhook: ``text`` (the notification and fallback) plus Block Kit blocks.

The blocks: a header (the title), a section with the targets and details, the runbook line where the
cause has one, one section per hit feature (its status in the text, what serves it, the drill that
verified it, its quality and the cost so far as fields), a context line with what could not be known,
a button to the dashboard's page for the incident, and a closing context line.

Slack's documented limits, kept here (https://api.slack.com/reference/block-kit/blocks,
https://api.slack.com/reference/block-kit/block-elements#button): at most 50 blocks a message; a
section's text at most 3000 characters, at most 10 fields of at most 2000 characters each; a header's
plain text at most 150; a button's text at most 75 and its URL at most 3000; a context block at most
10 elements. Features past the block budget are counted in one last section ("and 3 more features").

An update of a page still open (`monitor.alerts.rules`) is its own message, whose title starts "UPDATE, not
a new page" and names the page: Slack has no alert to fold it into.

The webhook URL is the credential, so it lives only in the environment (``url_env``). Slack
answers 200 "ok", 400 ``invalid_payload``, 403/404/410 for a revoked hook or archived channel
(not retryable), 429 with Retry-After, and 5xx (retryable).
"""

from __future__ import annotations

from typing import Any

import httpx

from monitor.alerts.channels._http import post_json
from monitor.alerts.channels.base import Alert, require_secret
from monitor.alerts.events import AlertEvent
from monitor.alerts.impact import FeatureImpact

SECRET = "url_env"
MAX_BLOCKS = 50
MAX_TEXT = 3000
MAX_FIELDS = 10
MAX_FIELD = 2000
MAX_HEADER = 150
MAX_BUTTON_TEXT = 75
MAX_URL = 3000
_ICON = {"critical": ":red_circle:", "error": ":large_orange_circle:", "warning": ":large_yellow_circle:",
         "info": ":large_green_circle:"}
_STATUS = {"unserved": ":x: nothing serves it", "unverified_fallback": ":warning: unverified fallback",
           "degraded_primary": ":hourglass: primary degraded", "covered": ":white_check_mark: covered by a fallback",
           "exposed": ":shield: primary serves; a fallback is gone"}


def body(alert: Alert) -> dict[str, Any]:
    e = alert.event
    icon = _ICON.get(e.severity, ":white_circle:")
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": _cut(e.title, MAX_HEADER), "emoji": True}},
    ]
    lines = [m.line() for m in e.members] + e.detail_lines()
    if lines:
        blocks.append(_section("\n".join(f"• {_escape(line)}" for line in lines)))
    for r in e.runbook:
        blocks.append(_section(f":book: *Runbook:* {_escape(r.line)}"))
    tail = _tail(e, icon)
    if e.impact is not None:
        features = list(e.impact.features)
        room = MAX_BLOCKS - len(blocks) - len(tail)
        shown = features if len(features) <= room else features[:max(room - 1, 0)]
        blocks += [_feature(f) for f in shown]
        if len(shown) < len(features):
            blocks.append(_section(f"…and {len(features) - len(shown)} more features hit: see the dashboard"))
    blocks += tail
    return {"text": f"{icon} {e.title}", "blocks": blocks[:MAX_BLOCKS]}


def _tail(e: AlertEvent, icon: str) -> list[dict[str, Any]]:
    """The blocks after the features: what is not known, the dashboard button, the closing context."""
    out: list[dict[str, Any]] = []
    impact = e.impact
    if impact is not None and (impact.missing or not impact.features):
        notes = [f"not known: {m}" for m in impact.missing] or ["no declared feature uses these targets"]
        out.append({"type": "context", "elements": [{"type": "mrkdwn", "text": _cut(_escape(n), MAX_TEXT)}
                                                    for n in notes[:10]]})
    if impact is not None and impact.dashboard_url and len(impact.dashboard_url) <= MAX_URL:
        out.append({"type": "actions", "elements": [{
            "type": "button", "action_id": "airisk_dashboard", "url": impact.dashboard_url,
            "text": {"type": "plain_text", "text": "Open in the airisk dashboard"[:MAX_BUTTON_TEXT]}}]})
    cost = impact.cost_minutes if impact is not None else None
    worst = f" · worst criticality {e.worst_criticality}" if e.worst_criticality else ""
    spent = f" · cost so far {cost:.1f} feature-min" if cost is not None else ""
    out.append({"type": "context", "elements": [{"type": "mrkdwn", "text": _cut(
        f"{icon} {e.severity} · {e.rule}{worst}{spent} · {e.at:%Y-%m-%d %H:%M:%S}Z · airisk", MAX_TEXT)}]})
    return out


def _feature(f: FeatureImpact) -> dict[str, Any]:
    """One hit feature: its name, criticality and status as the text; the rest as fields."""
    fields = [("Serving now", f.serving_text())]
    if f.verified_at is not None:
        fields.append(("Verified", f"{f.verified_at:%Y-%m-%d %H:%M}Z" + (f" by drill {f.verified_by}"
                                                                        if f.verified_by else "")))
    if f.quality_text():
        fields.append(("Quality", f.quality_text()))
    if f.cost_minutes is not None:
        fields.append(("Cost so far", f"{f.cost_minutes:.1f} min (down {f.down_minutes or 0:.1f}, degraded "
                                      f"{f.degraded_minutes or 0:.1f})"))
        fields.append(("Value lost while it lasts", f"{f.loss or 0:.0%}"))
    if f.serving_status:
        fields.append(("Risk model", f.serving_status))
    if f.notes:
        fields.append(("Notes", "; ".join(f.notes)))
    text = f"*{_escape(f.feature)}* ({_escape(f.criticality)}) — {_STATUS.get(f.status, f.status)}"
    if f.hit_links:
        text += f"\nhit: {_escape(', '.join(f.hit_links))}"
    block = _section(text)
    block["fields"] = [{"type": "mrkdwn", "text": _cut(f"*{name}*\n{_escape(value)}", MAX_FIELD)}
                       for name, value in fields[:MAX_FIELDS]]
    return block


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": _cut(text, MAX_TEXT)}}


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _escape(text: str) -> str:
    # Slack's mrkdwn reads &, < and > as markup.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


async def send(alert: Alert, *, client: httpx.AsyncClient) -> None:
    url = require_secret(alert)
    await post_json(client, url, body(alert), within=alert.config.timeout, secret=url)
