"""The operator's RBAC (manifests/rbac) on the real API server, checked with
SubjectAccessReviews as its ServiceAccount: everything the operator does is allowed,
and a sample of what it must never do is denied."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client
from kubernetes.client.rest import ApiException

pytestmark = pytest.mark.integration
RBAC_DIR = Path(__file__).resolve().parents[2] / "manifests" / "rbac"
SA_NAMESPACE, SA_NAME = "backlog-operator", "backlog-operator"
USER = f"system:serviceaccount:{SA_NAMESPACE}:{SA_NAME}"
GROUPS = [
    "system:serviceaccounts",
    f"system:serviceaccounts:{SA_NAMESPACE}",
    "system:authenticated",
]

# (verb, group, resource, subresource, namespaced)
ALLOWED = [
    ("get", "backlog.dev", "backlogscalers", "", True),
    ("list", "backlog.dev", "backlogscalers", "", False),
    ("watch", "backlog.dev", "backlogscalers", "", False),
    ("patch", "backlog.dev", "backlogscalers", "", True),
    ("patch", "backlog.dev", "backlogscalers", "status", True),
    ("get", "kopf.dev", "clusterkopfpeerings", "", False),
    ("list", "kopf.dev", "clusterkopfpeerings", "", False),
    ("watch", "kopf.dev", "clusterkopfpeerings", "", False),
    ("patch", "kopf.dev", "clusterkopfpeerings", "", False),
    ("patch", "kopf.dev", "kopfpeerings", "", True),
    ("list", "apiextensions.k8s.io", "customresourcedefinitions", "", False),
    ("watch", "apiextensions.k8s.io", "customresourcedefinitions", "", False),
    ("list", "", "namespaces", "", False),
    ("watch", "", "namespaces", "", False),
    ("get", "apps", "deployments", "", True),
    ("list", "apps", "deployments", "", False),
    ("watch", "apps", "statefulsets", "", False),
    ("get", "apps", "deployments", "scale", True),
    ("patch", "apps", "deployments", "scale", True),
    ("update", "apps", "deployments", "scale", True),
    ("get", "apps", "statefulsets", "scale", True),
    ("patch", "apps", "statefulsets", "scale", True),
    ("list", "", "pods", "", True),
    ("watch", "", "pods", "", True),
    ("patch", "", "pods", "", True),
    ("get", "", "secrets", "", True),
    ("create", "", "events", "", True),
    ("patch", "", "events", "", True),
]

DENIED = [
    ("delete", "apps", "deployments", "", True),
    ("create", "apps", "deployments", "", True),
    ("update", "apps", "deployments", "", True),
    ("patch", "apps", "deployments", "", True),  # only through /scale
    ("patch", "apps", "daemonsets", "", True),
    ("create", "", "secrets", "", True),
    ("list", "", "secrets", "", True),
    ("list", "", "secrets", "", False),
    ("watch", "", "secrets", "", False),
    ("update", "", "secrets", "", True),
    ("delete", "", "pods", "", True),
    ("create", "", "pods", "", True),
    ("create", "", "pods", "exec", True),
    ("get", "", "configmaps", "", True),
    ("delete", "backlog.dev", "backlogscalers", "", True),
    ("create", "backlog.dev", "backlogscalers", "", True),
    ("update", "backlog.dev", "backlogscalers", "", True),
    ("create", "kopf.dev", "clusterkopfpeerings", "", False),
    ("delete", "", "namespaces", "", False),
    ("create", "apiextensions.k8s.io", "customresourcedefinitions", "", False),
    ("create", "rbac.authorization.k8s.io", "clusterrolebindings", "", False),
    ("escalate", "rbac.authorization.k8s.io", "clusterroles", "", False),
    ("get", "", "nodes", "", False),
    ("delete", "", "events", "", True),
]


def _apply(api: client.ApiClient, doc: dict[str, Any]) -> None:
    kind = doc["kind"]
    rbac, core = client.RbacAuthorizationV1Api(api), client.CoreV1Api(api)
    name = doc["metadata"]["name"]
    create, replace = {
        "ServiceAccount": (
            lambda: core.create_namespaced_service_account(SA_NAMESPACE, doc),
            lambda: core.replace_namespaced_service_account(name, SA_NAMESPACE, doc),
        ),
        "ClusterRole": (
            lambda: rbac.create_cluster_role(doc),
            lambda: rbac.replace_cluster_role(name, doc),
        ),
        "ClusterRoleBinding": (
            lambda: rbac.create_cluster_role_binding(doc),
            lambda: rbac.replace_cluster_role_binding(name, doc),
        ),
    }[kind]
    try:
        create()
    except ApiException as exc:
        if exc.status != 409:
            raise
        replace()


@pytest.fixture
def rbac_applied(kube_api: client.ApiClient) -> None:
    core = client.CoreV1Api(kube_api)
    try:
        core.create_namespace({"metadata": {"name": SA_NAMESPACE}})
    except ApiException as exc:
        if exc.status != 409:
            raise
    for path in sorted(RBAC_DIR.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                _apply(kube_api, doc)


def _allowed(
    api: client.ApiClient, verb: str, group: str, resource: str, sub: str, namespaced: bool
) -> bool:
    attributes: dict[str, Any] = {"verb": verb, "group": group, "resource": resource}
    if sub:
        attributes["subresource"] = sub
    if namespaced:
        attributes["namespace"] = "uploads"
    review = {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SubjectAccessReview",
        "spec": {"user": USER, "groups": GROUPS, "resourceAttributes": attributes},
    }
    result = client.AuthorizationV1Api(api).create_subject_access_review(review)
    return bool(result.status.allowed)


def test_operator_needs_are_allowed(kube_api: client.ApiClient, rbac_applied: None) -> None:
    refused = [rule for rule in ALLOWED if not _allowed(kube_api, *rule)]
    assert refused == []


def test_everything_else_sampled_is_denied(kube_api: client.ApiClient, rbac_applied: None) -> None:
    granted = [rule for rule in DENIED if _allowed(kube_api, *rule)]
    assert granted == []


def test_an_unbound_service_account_is_denied(kube_api: client.ApiClient) -> None:
    # Guards the test itself: SubjectAccessReview must not allow everything.
    review = {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SubjectAccessReview",
        "spec": {
            "user": "system:serviceaccount:nowhere:nobody",
            "groups": ["system:serviceaccounts", "system:authenticated"],
            "resourceAttributes": {
                "verb": "patch",
                "group": "apps",
                "resource": "deployments",
                "subresource": "scale",
                "namespace": "uploads",
            },
        },
    }
    result = client.AuthorizationV1Api(kube_api).create_subject_access_review(review)
    assert result.status.allowed is False
