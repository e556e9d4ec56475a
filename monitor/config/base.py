"""Building blocks shared by every config section: `Section`, field types, secret rules, paths."""

from __future__ import annotations

import difflib
import re
from typing import Annotated
from urllib.parse import parse_qsl, urlsplit

from annotated_types import Ge, Interval, MinLen
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
)

from probes.catalog import CATALOG

Loc = tuple[str | int, ...]

# Field names (lower case, "-" as "_") that can only mean a secret typed into the file.
_SECRET_FIELDS = {"api_key", "apikey", "key", "token", "access_token", "auth_token", "secret",
                  "client_secret", "password"}
_CREDENTIAL_HEADERS = {"authorization", "proxy-authorization", "x-api-key", "api-key", "x-goog-api-key",
                       "cookie"}


def _no_secrets(what: str) -> str:
    where = "put the key in an environment variable and name it with key_env"
    return f"{what} are not read from the config file: {where}"


# --- field types -------------------------------------------------------------------------------


def _known_provider(name: str) -> str:
    if name in CATALOG:
        return name
    close = difflib.get_close_matches(name.lower(), CATALOG, n=1, cutoff=0.6)
    hint = f"did you mean {close[0]!r}? " if close else ""
    raise ValueError(f"unknown provider {name!r} ({hint}known: {', '.join(sorted(CATALOG))})")


def _http_url(url: str) -> str:
    # The value is never quoted back: a URL can carry a key (`?key=` is Gemini's own style).
    try:
        parts = urlsplit(url)
        ok = parts.scheme in ("http", "https") and bool(parts.hostname) and (parts.port or 0) >= 0
    except ValueError:  # e.g. a port that is not a number
        ok = False
    if not ok:
        raise ValueError("must be an http:// or https:// URL")
    query_names = {name.lower().replace("-", "_") for name, _ in parse_qsl(parts.query)}
    if parts.username or parts.password or query_names & _SECRET_FIELDS:
        raise ValueError(_no_secrets("credentials in a URL"))
    return url


def _env_name(name: str) -> str:
    # Not quoted back either: the likeliest mistake here is pasting the key itself.
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        raise ValueError("must be the name of an environment variable (letters, digits and _, "
                         "e.g. OPENAI_API_KEY), not the key itself")
    return name


Text = Annotated[str, MinLen(1)]
HttpUrl = Annotated[str, AfterValidator(_http_url)]
EnvName = Annotated[str, AfterValidator(_env_name)]
Price = Annotated[float, Ge(0), Field(allow_inf_nan=False)]
MaxTokens = Annotated[int, Interval(ge=1, le=4096)]
Provider = Annotated[str, AfterValidator(_known_provider), Field(json_schema_extra={"enum": sorted(CATALOG)})]

# --- the model ---------------------------------------------------------------------------------


class Section(BaseModel):
    """Base of every model in the file."""

    # Unknown keys are errors because they are nearly always typos; field docstrings become the JSON
    # Schema's descriptions; pydantic's own error text never shows the input, which may be a secret.
    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True, hide_input_in_errors=True)


def format_path(loc: Loc) -> str:
    """``("targets", 0, "deadlines", "total")`` -> ``targets[0].deadlines.total``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif re.fullmatch(r"[A-Za-z_][\w-]*", str(part)):
            out += f".{part}" if out else str(part)
        else:
            out += f"[{str(part)!r}]"
    return out



# Set in the validation context by the loader: the models then skip their cross-field checks,
# which the loader runs itself on the parts that are valid, so they are reported with lines.
DEFER_CROSS_CHECKS = "airisk.defer_cross_checks"
