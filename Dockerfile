# The action's image. It installs the same wheel pip users get, with the pinned constraints, and
# mlflow-skinny (the client) instead of full mlflow. Dependencies come before the sources so that a
# code change rebuilds only the last layers. The `signing` extra (model-signing, pyopenssl) is in the
# image so that `verify --signature` works in the container as it does for pip users who add it.
ARG BASE_IMAGE=python:3.12-slim

FROM ${BASE_IMAGE} AS wheel
WORKDIR /build
RUN python3 -m venv /opt/build \
    && /opt/build/bin/python -m pip install --no-cache-dir --disable-pip-version-check "setuptools>=69" wheel
COPY pyproject.toml README.md ./
COPY src ./src
RUN /opt/build/bin/python -m pip wheel --no-cache-dir --disable-pip-version-check --no-build-isolation \
        --no-deps --wheel-dir /dist .

FROM ${BASE_IMAGE}
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PATH=/opt/venv/bin:$PATH
COPY constraints.txt /opt/constraints.txt
# The runtime dependencies of pyproject.toml, pinned; the wheel's own install below checks them again.
RUN python3 -m venv /opt/venv \
    && /opt/venv/bin/python -m pip install -c /opt/constraints.txt mlflow-skinny pyyaml typer \
        model-signing pyopenssl
COPY --from=wheel /dist/ /opt/dist/
# --no-index: every dependency, the extra's too, is already installed from the layer above.
RUN /opt/venv/bin/python -m pip install --no-index --find-links /opt/dist -c /opt/constraints.txt \
        "mlflow-version-check[signing]" \
    && /opt/venv/bin/python -m pip check \
    && rm -rf /opt/dist
COPY entrypoint.py /opt/entrypoint.py
ENTRYPOINT ["/opt/venv/bin/python", "/opt/entrypoint.py"]
