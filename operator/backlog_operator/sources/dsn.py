"""Keep DSNs out of logs, exceptions, metrics and status.

A DSN carries a password. Every place in sources/ that turns an exception or a
database into text goes through `scrub`, and every label uses `dsn_id`, a short
stable hash. Called by pool.py, listener.py and hub.py; the scaler handlers may
use `dsn_id` to label metrics.
"""

from __future__ import annotations

import hashlib
import re

from psycopg import conninfo

_REDACTED = "<redacted>"
# key=value pairs whose value is secret, in libpq keyword/value strings and URL queries.
_SECRET_KV = re.compile(r"(?i)\b(password|passfile|sslpassword)\s*=\s*('(?:[^'\\]|\\.)*'|[^\s&]+)")
# user:password@ in postgresql:// URLs.
_URL_PASSWORD = re.compile(r"(?i)(postgres(?:ql)?://[^:/@\s]*:)[^@\s]*@")


def dsn_id(dsn: str) -> str:
    """A short, stable, non-reversible name for a DSN, e.g. ``db-1a2b3c4d``."""
    return "db-" + hashlib.sha256(dsn.encode()).hexdigest()[:8]


def _secrets(dsn: str) -> list[str]:
    """The literal substrings of `dsn` that must never be shown."""
    found = [dsn]
    try:
        parts = conninfo.conninfo_to_dict(dsn)
    except Exception:  # an unparsable DSN is still scrubbed as a whole
        parts = {}
    for key in ("password", "sslpassword"):
        value = parts.get(key)
        if isinstance(value, str) and len(value) >= 3:  # short ones would redact noise
            found.append(value)
    return found


def scrub(text: str, dsn: str | None = None) -> str:
    """`text` with the DSN, its password and any DSN-shaped secret replaced."""
    if dsn:
        for secret in sorted(_secrets(dsn), key=len, reverse=True):
            text = text.replace(secret, _REDACTED)
    text = _URL_PASSWORD.sub(lambda m: m.group(1) + _REDACTED + "@", text)
    return _SECRET_KV.sub(lambda m: m.group(1) + "=" + _REDACTED, text)


def describe_error(exc: BaseException, dsn: str | None = None) -> str:
    """One line for status and logs: the exception's class and scrubbed message."""
    message = " ".join(str(exc).split()) or exc.__class__.__name__
    return f"{exc.__class__.__name__}: {scrub(message, dsn)}"[:1000]
