"""Build the `kubernetes.client.ApiClient` the operator writes with.

In a pod: the in-cluster service-account config; elsewhere: $KUBECONFIG or
~/.kube/config (the tests start the operator with KUBECONFIG pointing at the
local cluster). Called once by scaler.handlers at startup.
"""

from __future__ import annotations

from kubernetes import client, config


def load_api_client(pool_size: int = 16) -> client.ApiClient:
    """An ApiClient with a connection pool sized for the scaler threads."""
    configuration = client.Configuration()
    try:
        config.load_incluster_config(client_configuration=configuration)
    except config.ConfigException:
        config.load_kube_config(client_configuration=configuration)
    configuration.connection_pool_maxsize = pool_size
    return client.ApiClient(configuration)
