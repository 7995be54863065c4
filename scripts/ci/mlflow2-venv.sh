#!/usr/bin/env bash
# Create .venv-mlflow2: an MLflow 2.22 server and client, and databricks-mlflow-export-import, for the
# tests against the MLflow 2.x servers many teams still run (tests/test_mlflow2_server.py,
# tests/test_export_import.py). Its own virtualenv: the project's .venv has MLflow 3. Every package
# is pinned by testing/constraints-mlflow2.txt; the tests find the interpreter through
# $MVC_MLFLOW2_PYTHON, else .venv-mlflow2/bin/python.
#
#   scripts/ci/mlflow2-venv.sh          create it, or bring it up to date (nothing to do when it is)
#   scripts/ci/mlflow2-venv.sh --lock   re-pin testing/constraints-mlflow2.txt from a fresh resolution
#
# PYTHON names the interpreter that creates it (default python3). Exit codes: 0 done; 2 unknown option.
set -euo pipefail
cd "$(dirname "$0")/../.."
python="${PYTHON:-python3}"
venv=.venv-mlflow2
constraints=testing/constraints-mlflow2.txt
stamp="$venv/.installed-stamp"
# MLflow 2.22 does not import with SQLAlchemy 2.0.41 or newer.
requirements=("mlflow==2.22.5" "sqlalchemy<2.0.41" "databricks-mlflow-export-import==1.2.1")

case "${1:-}" in
  "")
    if [[ -x "$venv/bin/python" && "$stamp" -nt "$constraints" && "$stamp" -nt "$0" ]]; then
      echo "$venv is up to date"
      exit 0
    fi
    [[ -x "$venv/bin/python" ]] || "$python" -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -c "$constraints" "${requirements[@]}"
    touch "$stamp"
    echo "$venv: $("$venv/bin/python" -m mlflow --version)"
    ;;
  --lock)
    scratch=$(mktemp -d)
    trap 'rm -rf "$scratch"' EXIT
    "$python" -m venv "$scratch/venv"
    "$scratch/venv/bin/python" -m pip install --quiet --disable-pip-version-check "${requirements[@]}"
    {
      echo "# Pinned versions of every package in .venv-mlflow2 (pip -c), see scripts/ci/mlflow2-venv.sh."
      echo "# Regenerate with 'scripts/ci/mlflow2-venv.sh --lock' after changing its requirements."
      "$scratch/venv/bin/python" -m pip freeze --disable-pip-version-check
    } > "$constraints"
    echo "wrote $constraints"
    ;;
  *)
    echo "unknown option $1: use no option to create $venv, or --lock to re-pin $constraints" >&2
    exit 2
    ;;
esac
