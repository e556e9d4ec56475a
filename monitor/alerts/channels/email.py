"""Email over SMTP: stdlib smtplib in a worker thread; TLS by STARTTLS (port 587) or from the first
byte (SMTPS, port 465); login optional, and only ever over TLS (the config refuses it otherwise,
and so does `send`, in case a config was built around the validation).

``timeout`` bounds the whole delivery, not each socket call: smtplib's timeout restarts with
every byte, so a server trickling its replies would otherwise hold the send past the outbox
row's lease. At the deadline the socket is shut, which ends whatever smtplib waits on.

Retryable: connection errors, timeouts and 4xx SMTP replies (the server's "try again later").
Not retryable: 5xx replies (a refused sender or recipient, a failed login), a server without
STARTTLS when it is asked for, and a login configured without TLS. A message some recipients
accepted counts as delivered: sending it again would reach the others twice. Each message's
Message-ID derives from the event key and its References from the incident, so mail clients
thread an incident's alerts together.

A message is multipart/alternative (RFC 2046 §5.1.4): a text/plain part (the alert's lines) first and a
text/html part (the same, with the hit features as a table and a link to the dashboard) last, the one
mail clients prefer. Every value in the HTML is escaped: a target name, a cause or a provider's error
text is data, never markup.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import html
import smtplib
import socket
import ssl
import threading
from email.message import EmailMessage
from email.utils import formatdate

import httpx

from monitor.alerts.channels.base import Alert, DeliveryError
from monitor.alerts.events import AlertEvent
from monitor.alerts.redact import redact

SECRET = "password_env"


def message(alert: Alert) -> EmailMessage:
    e, cfg = alert.event, alert.config
    msg = EmailMessage()
    msg["Subject"] = f"[airisk {e.severity}] {e.title}"
    msg["From"] = cfg.from_addr
    msg["To"] = ", ".join(cfg.to_addrs or [])
    msg["Date"] = formatdate(usegmt=True)
    msg["Message-ID"] = f"<{_digest(e.event_key)}@airisk>"
    msg["References"] = f"<{_digest(e.dedup_key)}@airisk>"
    msg["X-Airisk-Event-Key"] = e.event_key
    msg["X-Airisk-Dedup-Key"] = e.dedup_key
    text = "\n".join(e.lines())
    msg.set_content(f"{text}\n\nrule: {e.rule} ({e.action}), severity: {e.severity}\nat: {e.at.isoformat()}\n")
    msg.add_alternative(html_body(e), subtype="html")
    return msg


def html_body(e: AlertEvent) -> str:
    """The alert as an HTML document; every value escaped."""
    h = html.escape
    parts = [f"<h2>{h(e.title)}</h2>", "<ul>", *(f"<li>{h(m.line())}</li>" for m in e.members), "</ul>"]
    parts += [f"<p><b>Runbook:</b> {h(r.line)}</p>" for r in e.runbook]
    impact = e.impact
    if impact is not None:
        if impact.features:
            head = ("feature", "criticality", "serving now", "verified", "quality", "cost so far")
            parts += ["<table border=\"1\" cellpadding=\"4\" cellspacing=\"0\">",
                      "<tr>" + "".join(f"<th>{h(c)}</th>" for c in head) + "</tr>"]
            for f in impact.features:
                verified = (f"{f.verified_at:%Y-%m-%d %H:%M}Z" + (f" by drill {f.verified_by}" if f.verified_by else "")
                            if f.verified_at else "")
                cells = (f.feature, f.criticality, f.serving_text(), verified, f.quality_text(), f.cost_text())
                parts.append("<tr>" + "".join(f"<td>{h(c)}</td>" for c in cells) + "</tr>")
            parts.append("</table>")
        else:
            parts.append("<p>No declared feature uses these targets.</p>")
        parts += [f"<p><i>Not known: {h(m)}</i></p>" for m in impact.missing]
        if impact.dashboard_url:
            parts.append(f'<p><a href="{h(impact.dashboard_url, quote=True)}">Open this incident in the airisk '
                         f"dashboard</a></p>")
    if e.details:
        parts += ["<ul>", *(f"<li>{h(line)}</li>" for line in e.detail_lines()), "</ul>"]
    parts.append(f"<p><small>rule {h(e.rule)} ({h(e.action)}), severity {h(e.severity)}, at "
                 f"{h(e.at.isoformat())}</small></p>")
    return "<!DOCTYPE html>\n<html><body>\n" + "\n".join(parts) + "\n</body></html>\n"


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()[:32]


class _Deadline:
    """Shuts ``smtp``'s socket once ``within`` seconds have passed (from a timer thread), so a
    blocked read or write in the worker thread ends with an OSError; `expired` says it was us."""

    def __init__(self, smtp: smtplib.SMTP, within: float) -> None:
        self.smtp = smtp
        self.expired = False
        self._timer = threading.Timer(within, self._expire)
        self._timer.daemon = True

    def _expire(self) -> None:
        self.expired = True
        sock = self.smtp.sock
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def __enter__(self) -> _Deadline:
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._timer.cancel()


def _deliver(alert: Alert, msg: EmailMessage) -> None:
    cfg = alert.config
    assert cfg.smtp_host is not None  # the config requires it for an email channel
    if cfg.username and not cfg.tls:
        raise _PlainLogin
    context = ssl.create_default_context()
    smtp = (smtplib.SMTP_SSL(timeout=cfg.timeout, context=context) if cfg.use_smtps
            else smtplib.SMTP(timeout=cfg.timeout))
    # The certificate is checked against _host, which smtplib sets only when the constructor
    # connects; we connect after it, with the deadline already running.
    smtp._host = cfg.smtp_host
    deadline = _Deadline(smtp, cfg.timeout)
    try:
        with deadline, smtp:
            smtp.connect(cfg.smtp_host, cfg.smtp_port_or_default)
            if cfg.use_starttls:
                smtp.starttls(context=context)
            if cfg.username:
                smtp.login(cfg.username, alert.secret or "")
            smtp.send_message(msg)
    except (smtplib.SMTPServerDisconnected, OSError):
        if deadline.expired:
            raise TimeoutError from None
        raise


class _PlainLogin(Exception):
    pass


async def send(alert: Alert, *, client: httpx.AsyncClient) -> None:
    """Sends the alert as one message to every ``to_addrs`` (``client`` is not used)."""
    secrets = [alert.secret] if alert.secret else []
    try:
        await asyncio.to_thread(_deliver, alert, message(alert))
    except _PlainLogin:
        raise DeliveryError(False, f"channel {alert.config.name!r}: refusing to log in to the SMTP server without "
                                   "TLS (set starttls: true, or smtps: true for port 465)") from None
    except smtplib.SMTPRecipientsRefused as exc:
        codes = [code for code, _ in exc.recipients.values()]
        retryable = all(400 <= code < 500 for code in codes)
        raise DeliveryError(retryable, f"every recipient refused (SMTP {', '.join(map(str, codes))})") from None
    except smtplib.SMTPNotSupportedError as exc:
        raise DeliveryError(False, redact(f"the SMTP server does not support it: {exc}", secrets)) from None
    except smtplib.SMTPResponseException as exc:
        text = exc.smtp_error.decode(errors="replace") if isinstance(exc.smtp_error, bytes) else str(exc.smtp_error)
        raise DeliveryError(400 <= exc.smtp_code < 500, redact(f"SMTP {exc.smtp_code}: {text}", secrets)) from None
    except TimeoutError:
        raise DeliveryError(True, f"no answer within {alert.config.timeout:g}s") from None
    except (smtplib.SMTPException, OSError) as exc:  # disconnects, refused connections, TLS failures
        raise DeliveryError(True, redact(f"{type(exc).__name__}: {exc}", secrets)) from None
