"""Read one key of a Secret: the DSN named by spec.database.dsnSecretRef.

The value is returned to the caller and nowhere else: never logged, never put
in an exception message or in status (errors name the Secret and key only).
Called by scaler.loop when a BacklogScaler starts or its secret ref changes.
"""

from __future__ import annotations

import base64
from urllib.parse import quote

from kubernetes import client

from backlog_operator.kube import rest


class SecretError(LookupError):
    """The Secret or its key is missing or unreadable; the message names them, not the value."""


def read_secret_value(api: client.ApiClient, namespace: str, name: str, key: str) -> str:
    """The decoded value of `key` in Secret `namespace/name`."""
    try:
        body = rest.request(api, "GET", f"/api/v1/namespaces/{namespace}/secrets/{quote(name)}")
    except client.ApiException as error:
        raise SecretError(f"cannot read Secret {namespace}/{name}: HTTP {error.status}") from None
    data = body.get("data") or {}
    if key not in data:
        raise SecretError(f"Secret {namespace}/{name} has no key {key!r}")
    try:
        return base64.b64decode(data[key]).decode("utf-8").strip()
    except (ValueError, UnicodeDecodeError):
        raise SecretError(f"Secret {namespace}/{name} key {key!r} is not UTF-8") from None
