"""Keeping channel secrets (webhook URLs, routing keys, passwords) out of errors and logs.

A webhook URL is a bearer credential, and the libraries that carry it log it: httpx logs every
request URL at INFO, requests/urllib3 and apprise log URLs and paths at DEBUG. Filters on those
loggers would miss child loggers and new libraries, so `protect` installs a log-record factory that
redacts every record, from any logger, that holds a registered secret. Messages we build ourselves
go through `redact` too, before they are logged or stored (``AlertOutbox.last_error``).
"""

from __future__ import annotations

import logging
import re
import threading
import traceback
from collections.abc import Iterable
from urllib.parse import parse_qsl, urlsplit

MASK = "[redacted]"
_lock = threading.Lock()
_fragments: list[str] = []  # longest first, so a URL is masked whole before its parts
_installed = False


def fragments(secret: str) -> set[str]:
    """The pieces of ``secret`` that must not appear anywhere: itself and, for a URL, what a library
    may print on its own (the URL without its scheme, as apprise rewrites ``json://`` to ``http://``;
    its path or query alone; any host, user, password, path segment or query value long enough to
    be key material)."""
    out = {secret} if secret else set()
    if "://" not in secret:
        return out
    try:
        parts = urlsplit(secret)
        pieces = [parts.username, parts.password, parts.hostname, *parts.path.split("/"),
                  *(v for _, v in parse_qsl(parts.query))]
    except ValueError:
        return out
    # Whole parts of 12+ characters (urllib3 logs the path alone), and single pieces of 12+ with a
    # digit: tokens, not words such as "services" or "hooks.slack.com".
    out |= {p for p in (secret.split("://", 1)[1], parts.path, parts.query) if len(p) >= 12}
    out |= {p for p in pieces if p and len(p) >= 12 and re.search(r"\d", p)}
    return out


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with every fragment of ``secrets`` and of every `protect`-ed secret masked."""
    extra = {f for s in secrets for f in fragments(s)}
    for fragment in sorted(extra, key=len, reverse=True) + _fragments:
        if fragment in text:
            text = text.replace(fragment, MASK)
    return text


def protect(secrets: Iterable[str]) -> None:
    """Registers ``secrets`` for redaction in every log record from now on (process-wide).

    Fragments under 8 characters are left out (as the config loader does): masking them in every
    record would garble unrelated messages, and nothing of ours logs a secret in the first place.
    """
    global _installed
    with _lock:
        new = {f for s in secrets if s for f in fragments(s) if len(f) >= 8} | set(_fragments)
        _fragments[:] = sorted(new, key=len, reverse=True)
        if not _installed and _fragments:
            logging.setLogRecordFactory(_redacting(logging.getLogRecordFactory()))
            _installed = True


def _redacting(factory):
    def make(*args, **kwargs) -> logging.LogRecord:
        record = factory(*args, **kwargs)
        if not _fragments:
            return record
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: leave it for logging's own error report
            return record
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and record.exc_info[1] is not None:
            # Formatted now, while we can still mask it: the formatter would use exc_text as is.
            text = "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
            record.exc_text = redact(text)
        return record

    return make
