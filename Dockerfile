# One image for every role of scaleout-edge: `scaleout api|combiner|client|init …`.
#   docker build -t scaleout-edge .
#   docker build -t scaleout-edge:torch --build-arg EXTRA_PIP_PACKAGES="torch --index-url https://download.pytorch.org/whl/cpu" .
# No secrets are baked in: credentials and tokens come from the environment at run time.
ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS builder
# Extra pip arguments installed into the same venv, e.g. torch for examples/mnist-pytorch.
ARG EXTRA_PIP_PACKAGES=""
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/venv/bin:$PATH
RUN python -m venv /opt/venv
WORKDIR /src
# Only what the distribution is built from (pyproject.toml maps these folders into `scaleout`).
COPY pyproject.toml README.md ./
# The pins `make test` ran with on this Python (constraints/, rewritten by `make lock`).
COPY constraints/py3.11.txt ./constraints.txt
COPY scaleout ./scaleout
COPY scaleoututil ./scaleoututil
COPY proto ./proto
COPY controller ./controller
COPY aggregation ./aggregation
COPY combiner ./combiner
COPY client ./client
COPY api ./api
COPY store ./store
# Non-editable: the venv holds the installed project, not a link back to /src.
RUN pip install -c constraints.txt ".[examples]" \
    && if [ -n "$EXTRA_PIP_PACKAGES" ]; then pip install $EXTRA_PIP_PACKAGES; fi

FROM ${PYTHON_IMAGE} AS runtime
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
# uid 10001: outside the range of host users, so files it writes to volumes belong to nobody there.
# /var/lib/scaleout is the work dir (.scaleout/ of each role); partitions/ is where client replicas
# claim their data partitions, certs/ where compose's `certs` service writes the TLS certificates,
# enrollment/ where `init` writes the clients' enrollment secret (named volumes in docker-compose.yaml
# take this owner when created).
RUN groupadd --gid 10001 scaleout \
    && useradd --uid 10001 --gid 10001 --create-home --home-dir /home/scaleout --shell /usr/sbin/nologin scaleout \
    && mkdir -p /var/lib/scaleout/partitions /var/lib/scaleout/certs /var/lib/scaleout/enrollment \
    && chown -R 10001:10001 /var/lib/scaleout
COPY --from=builder /opt/venv /opt/venv
# The examples are the user's sample workspace: writable, as a local package writes its data next to it.
COPY --chown=10001:10001 examples /app/examples
WORKDIR /var/lib/scaleout
USER 10001:10001
ENTRYPOINT ["scaleout"]
CMD ["--help"]
