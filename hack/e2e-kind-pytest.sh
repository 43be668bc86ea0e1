#!/usr/bin/env bash
# The e2e suite against a given cluster (kind in CI) that already runs the chart's operator
# (`make deploy`) and the example PostgreSQL (manifests/examples/postgresql.yaml).
# e2e-kind.yml and `make e2e-kind` both run this, so they cannot disagree on the contract
# with the suite (tests/fixtures/e2e.py):
#   - E2E_CLUSTER=kubeconfig: use $KUBECONFIG, start no cluster and no operator;
#   - E2E_IMAGE: the image worker pods run (`args: [worker, ...]`);
#   - E2E_DATABASE_DSN: PostgreSQL for the test process, through a port-forward to its
#     Service (the test creates and drops a database per test there);
#   - E2E_DATABASE_CLUSTER_DSN: the same server as the operator and worker pods reach it
#     (the Service's DNS name): what goes into each test's `db` Secret.
# Arguments are passed to pytest (default: tests/e2e).
set -euo pipefail

: "${KUBECONFIG:?KUBECONFIG must name the kubeconfig of the cluster}"
PG_NAMESPACE=${PG_NAMESPACE:-uploads}
PG_SERVICE=${PG_SERVICE:-postgresql}
PG_USER=${PG_USER:-uploads}
PG_PASSWORD=${PG_PASSWORD:-uploads}  # manifests/examples/postgresql.yaml (a superuser)
PG_DATABASE=${PG_DATABASE:-uploads}
PG_LOCAL_PORT=${PG_LOCAL_PORT:-15432}
PY=${PY:-.venv/bin/python}
KUBECTL=${KUBECTL:-kubectl}

export E2E_CLUSTER=kubeconfig
export E2E_IMAGE=${E2E_IMAGE:-backlog-operator:e2e}
export E2E_DATABASE_DSN="postgresql://${PG_USER}:${PG_PASSWORD}@127.0.0.1:${PG_LOCAL_PORT}/${PG_DATABASE}?sslmode=disable"
export E2E_DATABASE_CLUSTER_DSN="postgresql://${PG_USER}:${PG_PASSWORD}@${PG_SERVICE}.${PG_NAMESPACE}.svc:5432/${PG_DATABASE}?sslmode=disable"

# kubectl port-forward exits when a forwarded connection breaks: keep restarting it. Job
# control gives the loop its own process group, so the trap stops the loop and kubectl.
forward_log=$(mktemp)
set -m
(
  while true; do
    "$KUBECTL" -n "$PG_NAMESPACE" port-forward "svc/$PG_SERVICE" "$PG_LOCAL_PORT:5432" \
      >>"$forward_log" 2>&1 || true
    sleep 1
  done
) &
forwarder=$!
set +m
trap 'kill -- "-$forwarder" 2>/dev/null || true' EXIT

ready=0
for _ in $(seq 60); do
  if "$PY" -c 'import os, psycopg; psycopg.connect(os.environ["E2E_DATABASE_DSN"], connect_timeout=3).close()' 2>/dev/null; then
    ready=1
    break
  fi
  sleep 1
done
if [ "$ready" != 1 ]; then
  echo "PostgreSQL not reachable through the port-forward on 127.0.0.1:$PG_LOCAL_PORT:" >&2
  cat "$forward_log" >&2
  exit 1
fi

status=0
"$PY" -m pytest "${@:-tests/e2e}" || status=$?
if [ "$status" != 0 ]; then
  echo "---- port-forward log (tail) ----"
  tail -20 "$forward_log"
fi
exit "$status"
