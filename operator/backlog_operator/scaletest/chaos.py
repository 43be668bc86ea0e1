"""Chaos during Loading: delete `podsPerRound` pods matching a selector every period.

`selector_string(selector)` (pure) turns a LabelSelector into the API's query
syntax; `pick(pods, count, rng)` chooses victims among running pods not already
terminating. `run(...)` is the loop the daemon starts on entering Loading and
cancels when Loading ends; it returns how many pods it deleted. Pod deletion
goes through the core/v1 API with the pods' own grace period (SIGTERM, then
SIGKILL), which is what a node failure or a scale-in looks like to a worker.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from urllib.parse import quote

from kubernetes import client

from backlog_operator.kube import rest

log = logging.getLogger(__name__)


def selector_string(selector: Mapping[str, Any]) -> str:
    """`app=parse-worker,tier in (a,b),!legacy` from a LabelSelector mapping."""
    parts = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
    for expr in selector.get("matchExpressions") or ():
        key, operator = expr["key"], expr["operator"]
        values = ",".join(expr.get("values") or ())
        if operator == "In":
            parts.append(f"{key} in ({values})")
        elif operator == "NotIn":
            parts.append(f"{key} notin ({values})")
        elif operator == "Exists":
            parts.append(key)
        elif operator == "DoesNotExist":
            parts.append(f"!{key}")
    return ",".join(parts)


def pick(pods: Sequence[Mapping[str, Any]], count: int, rng: random.Random) -> list[str]:
    """Names of up to `count` running pods that are not already being deleted."""
    alive = sorted(
        p["metadata"]["name"]
        for p in pods
        if not p["metadata"].get("deletionTimestamp")
        and (p.get("status") or {}).get("phase") in ("Running", "Pending")
    )
    return rng.sample(alive, min(count, len(alive)))


def delete_round(
    api: client.ApiClient, namespace: str, selector: str, count: int, rng: random.Random
) -> list[str]:
    """One round (blocking; run it in a thread): list, pick, delete. Returns deleted names."""
    body = rest.request(
        api, "GET", f"/api/v1/namespaces/{namespace}/pods", query=[("labelSelector", selector)]
    )
    victims = pick(body.get("items") or [], count, rng)
    deleted = []
    for name in victims:
        try:
            rest.request(api, "DELETE", f"/api/v1/namespaces/{namespace}/pods/{quote(name)}")
            deleted.append(name)
        except client.ApiException as error:
            if error.status != 404:  # gone already: not ours to count
                raise
    return deleted


async def run(
    api: client.ApiClient,
    namespace: str,
    selector: Mapping[str, Any],
    *,
    every_seconds: float,
    pods_per_round: int,
    seed: str,
    on_deleted: Callable[[list[str]], None],
) -> None:
    """Delete pods every `every_seconds` until cancelled; errors are logged, not fatal."""
    rng = random.Random(seed)
    query = selector_string(selector)
    while True:
        await asyncio.sleep(every_seconds)
        try:
            deleted = await asyncio.to_thread(
                delete_round, api, namespace, query, pods_per_round, rng
            )
        except client.ApiException as error:
            log.warning("chaos round failed: HTTP %s", error.status)
            continue
        if deleted:
            log.info("chaos deleted pods %s", ", ".join(deleted))
            on_deleted(deleted)
