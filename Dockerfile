# syntax=docker/dockerfile:1
# One image for the operator and the reference worker (docs/decisions/0025):
#   docker run IMAGE run --all-namespaces        # the operator
#   docker run IMAGE worker --stages parsing      # the reference worker
# Build: make docker-build (IMAGE=backlog-operator:dev). Lint: make lint (hadolint).

ARG PYTHON_IMAGE=python:3.11.14-slim-trixie

# --- build: wheels for the package and every runtime dependency -------------------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
# Only what the wheel needs: a change to tests or docs does not rebuild this layer.
COPY pyproject.toml README.md ./
COPY operator ./operator
# The operator image carries no dev, report or bench extras (matplotlib stays out).
RUN pip wheel --wheel-dir /wheels .

# --- runtime: the installed wheel, no compilers, no pip cache, non-root ---------
FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="backlog-operator" \
      org.opencontainers.image.description="Scales PostgreSQL job-pipeline workers to their backlog; load-tests the pipeline." \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/backlog-dev/backlog-operator"
ENV PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 HOME=/tmp
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-index --find-links /wheels /wheels/backlog_operator-*.whl \
    && backlog-operator --version
# 65532: the conventional "nonroot" uid/gid; numeric so runAsNonRoot can verify it.
USER 65532:65532
WORKDIR /tmp
# 8080 /metrics, 8081 kopf /healthz (operator); 9090 /metrics /healthz /readyz (worker).
EXPOSE 8080 8081 9090
ENTRYPOINT ["backlog-operator"]
CMD ["run", "--all-namespaces"]
