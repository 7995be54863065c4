# One task runner. The README names `make demo` and `make test`; each creates .venv itself.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
MLFLOW2_STAMP := .venv-mlflow2/.installed-stamp

.PHONY: venv mlflow2-venv dist-matrix test lint typecheck unit demo bench bench-quick lock clean image

venv: $(STAMP)

# testing/ is the test support package (servers, example models) that tests, bench and the demo import.
$(STAMP): pyproject.toml testing/pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is needed (set PYTHON=python3.11)")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]' -e ./testing
	touch $(STAMP)

# An MLflow 2.22 server and client and databricks-mlflow-export-import, in their own virtualenv, for
# the tests against MLflow 2.x servers (tests/test_mlflow2_server.py, tests/test_export_import.py).
mlflow2-venv: $(MLFLOW2_STAMP)

$(MLFLOW2_STAMP): scripts/ci/mlflow2-venv.sh testing/constraints-mlflow2.txt
	PYTHON=$(PYTHON) scripts/ci/mlflow2-venv.sh

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/hadolint Dockerfile
	$(BIN)/actionlint .github/workflows/*.yml
	$(BIN)/check-jsonschema --builtin-schema vendor.github-actions action.yml
	$(BIN)/zizmor --offline --config .github/zizmor.yml .github/workflows/

typecheck: venv
	$(BIN)/mypy

unit: venv mlflow2-venv
	$(BIN)/pytest

test: lint typecheck unit

# The sdist and wheel as users get them (twine check, contents), then the wheel alone in fresh
# virtualenvs: Python 3.11, the newest CPython here, and the lowest dependency versions pyproject
# admits, each running the CLI and server tests (the three at once). .ci/run runs it after `make test`.
dist-matrix: venv
	$(BIN)/python scripts/ci/dist_matrix.py

# The action's image from the local Debian base (no Docker Hub here); CI builds it the same way.
image:
	scripts/ci/base-image.sh
	docker build --build-arg BASE_IMAGE=$${BASE_IMAGE_TAG:-mvc-base:bookworm} -t mlflow-version-check:local .

demo: venv
	$(BIN)/python scripts/demo.py

# Figures, not tests: start-up, small and 256 MiB checks, compare concurrency, then the large
# synthetic models (1 GiB file, 5,000 files, 300 MiB mixed: several minutes, ~3 GiB of disk), the
# registry audit, then the image's size by layer and package, cold build and start-up time.
# `make bench-quick` runs only the first part.
bench: bench-quick
	$(BIN)/python bench/large.py
	$(BIN)/python bench/audit.py
	$(BIN)/python bench/container.py

bench-quick: venv
	$(BIN)/python bench/run.py

# Re-pin after a dependency change: a fresh environment from pyproject.toml alone, frozen.
lock:
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv
	.lock-venv/bin/python -m pip install --quiet --upgrade pip
	.lock-venv/bin/python -m pip install --quiet '.[dev]'
	{ echo "# Pinned versions of every package the project, its tests and its image install (pip -c)."; \
	  echo "# Regenerate with 'make lock' after changing dependencies in pyproject.toml."; \
	  .lock-venv/bin/python -m pip freeze --exclude-editable | grep -v '^mlflow-version-check'; } > constraints.txt
	rm -rf .lock-venv

clean:
	rm -rf $(VENV) .venv-mlflow2 build dist src/*.egg-info testing/src/*.egg-info .pytest_cache .mypy_cache .ruff_cache demo-output
