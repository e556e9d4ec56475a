"""Slack incoming webhook: ``text`` (the notification and fallback) plus Block Kit blocks.

The webhook URL is the credential, so it lives only in the environment (``url_env``). Slack
answers 200 "ok", 400 ``invalid_payload``, 403/404/410 for a revoked hook or archived channel
(not retryable), 429 with Retry-After, and 5xx (retryable).
"""

from __future__ import annotations

from typing import Any

import httpx

from monitor.alerts.channels._http import post_json
from monitor.alerts.channels.base import Alert, require_secret

SECRET = "url_env"
_ICON = {"critical": ":red_circle:", "error": ":large_orange_circle:", "warning": ":large_yellow_circle:",
         "info": ":large_green_circle:"}


def body(alert: Alert) -> dict[str, Any]:
    e = alert.event
    icon = _ICON.get(e.severity, ":white_circle:")
    lines = e.lines()[1:]
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": e.title[:150], "emoji": True}},
    ]
    if lines:
        # A section's text is capped at 3000 characters by Slack.
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(
            f"• {_escape(line)}" for line in lines)[:3000]}})
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": (
        f"{icon} {e.severity} · {e.rule} · {e.at:%Y-%m-%d %H:%M:%S}Z · airisk")}]})
    return {"text": f"{icon} {e.title}", "blocks": blocks}


def _escape(text: str) -> str:
    # Slack's mrkdwn reads &, < and > as markup.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


async def send(alert: Alert, *, client: httpx.AsyncClient) -> None:
    url = require_secret(alert)
    await post_json(client, url, body(alert), within=alert.config.timeout, secret=url)
