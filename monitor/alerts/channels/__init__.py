"""Alert channels: one small module per kind, registered by type name in `registry`.

Adding a channel is one module here (``SECRET`` and ``send``; see `base`), one entry below, and
its type and fields in `monitor.config.alerts`.
"""

from monitor.alerts.channels import apprise_channel, email, pagerduty, slack, webhook
from monitor.alerts.channels.base import Alert, ChannelModule, DeliveryError

registry: dict[str, ChannelModule] = {
    "apprise": apprise_channel,
    "email": email,
    "pagerduty": pagerduty,
    "slack": slack,
    "webhook": webhook,
}

__all__ = ["Alert", "ChannelModule", "DeliveryError", "registry"]
