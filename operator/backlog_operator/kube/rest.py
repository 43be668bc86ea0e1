"""Untyped JSON requests to the Kubernetes API through a `kubernetes.client.ApiClient`.

The generated typed clients need a Python method per resource; the /scale
subresource of an arbitrary `scaleTargetRef`, API discovery and the
status of our custom resources are easier as plain JSON. Used by the kube
modules (scale, resources, events, ...) and scaletest's reads and chaos; raises
`kubernetes.client.ApiException` on any non-2xx answer, like the typed clients do.
"""

from __future__ import annotations

import json
from typing import Any

from kubernetes import client

MERGE_PATCH = "application/merge-patch+json"
# Every call has a deadline: a hung API server must not hang a scaler forever.
DEFAULT_TIMEOUT_S = 10.0


def request(
    api: client.ApiClient,
    method: str,
    path: str,
    *,
    body: dict[str, Any] | None = None,
    content_type: str = "application/json",
    query: list[tuple[str, str]] | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> dict[str, Any]:
    """Send one request; return the decoded JSON object (an empty dict for an empty body)."""
    headers = {"Accept": "application/json"}
    if body is not None:
        headers["Content-Type"] = content_type
    _method, url, header_params, serialized, _post = api.param_serialize(
        method=method,
        resource_path=path,
        query_params=query or [],
        header_params=headers,
        body=body,
        auth_settings=["BearerToken"],
    )
    response = api.call_api(
        _method, url, header_params=header_params, body=serialized, _request_timeout=timeout_s
    )
    data = response.read()
    if not 200 <= response.status <= 299:
        raise client.ApiException(http_resp=response)
    if not data:
        return {}
    decoded: dict[str, Any] = json.loads(data)
    return decoded
