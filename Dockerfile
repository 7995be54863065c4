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

# The run-time virtualenv is built in a stage of its own and the final image copies /opt/venv alone:
# the installer (pip, and the setuptools that Python 3.11's venv adds) is needed to build it, not to
# run it (22 MB). The venv's own pip installs, checks and then uninstalls itself, rather than the
# base's pip with --python: that pip differs between bases (Debian's, python:3.12-slim's) or is
# absent. The copy lands at the same path on the same base, so the venv's links to python3 hold.
FROM ${BASE_IMAGE} AS venv
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
COPY constraints.txt /opt/constraints.txt
# The runtime dependencies of pyproject.toml, pinned; the wheel's own install below checks them again.
RUN python3 -m venv /opt/venv \
    && /opt/venv/bin/python -m pip install -c /opt/constraints.txt mlflow-skinny pyyaml typer \
        model-signing pyopenssl
COPY --from=wheel /dist/ /opt/dist/
# --no-index: every dependency, the extra's too, is already installed from the layer above.
# `pip check` runs after setuptools is gone: it proves that no installed package declares a need for it.
RUN /opt/venv/bin/python -m pip install --no-index --find-links /opt/dist -c /opt/constraints.txt \
        "mlflow-version-check[signing]" \
    && /opt/venv/bin/python -m pip uninstall --yes setuptools wheel \
    && /opt/venv/bin/python -m pip check \
    && /opt/venv/bin/python -m pip uninstall --yes pip
# Byte code. pip compiled all ~4,300 modules (64 MB of .pyc); a run imports ~1,300 of them. Their
# .pyc stay: with PYTHONDONTWRITEBYTECODE=1 nothing is cached at run time, and without them
# `import mlflow` takes 3.0 s instead of 1.0 s in every worker (bench/RESULTS.md, session 6). The
# others (MLflow's flavors, server and GenAI code, pygments, ...) lose theirs and still import,
# compiled when needed. "What a run imports" is found by importing, with the code each import loads
# recorded: every module the program's source names (read from its syntax tree, so a new import
# needs no edit here), plus the modules that MLflow, the Databricks SDK and typer import inside the
# functions the program calls (the arguments below). tests/test_image_build.py runs the program in
# the image and names any module that a run had to compile. The program's own .pyc all stay; .pyi
# stubs go (only type checkers read them).
RUN /opt/venv/bin/python -c "$(printf '%s\n' \
        'import ast, importlib, importlib.machinery, importlib.util, pathlib, sys' \
        'loader = importlib.machinery.SourceFileLoader' \
        'get_code = loader.get_code' \
        'loaded = set()' \
        'def recording(self, name):' \
        '    loaded.add(importlib.util.cache_from_source(self.path))' \
        '    return get_code(self, name)' \
        'loader.get_code = recording' \
        'own = pathlib.Path(importlib.util.find_spec("mlflow_version_check").origin).parent' \
        'named = set(sys.argv[1:])' \
        'for source in own.rglob("*.py"):' \
        '    for node in ast.walk(ast.parse(source.read_text())):' \
        '        if isinstance(node, ast.Import):' \
        '            named.update(alias.name for alias in node.names)' \
        '        elif isinstance(node, ast.ImportFrom) and node.level == 0:' \
        '            named.add(node.module)' \
        'for name in sorted(named):' \
        '    try:' \
        '        importlib.import_module(name)' \
        '    except ImportError as error:  # an optional import: a run tries it as well' \
        '        print(f"optional import {name} failed here as in a run ({error}); its .pyc stays")' \
        'loaded.update(getattr(module, "__cached__", None) for module in list(sys.modules.values()))' \
        'for path in pathlib.Path(sys.prefix).rglob("*.py[ci]"):' \
        '    if path.suffix == ".pyi" or (str(path) not in loaded and own not in path.parents):' \
        '        path.unlink()' \
    )" \
        databricks.sdk \
        importlib_metadata._adapters \
        mlflow.data.huggingface_dataset mlflow.data.meta_dataset mlflow.data.numpy_dataset \
        mlflow.data.pandas_dataset mlflow.data.polars_dataset mlflow.data.spark_dataset \
        mlflow.data.tensorflow_dataset \
        mlflow.models.signature \
        mlflow.tracing.export.utils mlflow.tracing.processor.base_mlflow mlflow.tracing.processor.otel \
        mlflow.tracing.utils.environment \
        mlflow.tracking.request_header.registry \
        typer._adapters typer._click._textwrap typer._click.decorators

FROM ${BASE_IMAGE}
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PATH=/opt/venv/bin:$PATH
COPY --from=venv /opt/venv /opt/venv
COPY entrypoint.py /opt/entrypoint.py
ENTRYPOINT ["/opt/venv/bin/python", "/opt/entrypoint.py"]
