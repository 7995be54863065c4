"""`python -m mlflow_version_check.worker <fd> <parent pid>`: how pool.py starts a worker."""

import sys

# The worker reads registries and downloads files; it never loads a model, so it never uses the
# data libraries that mlflow-skinny (the image's MLflow) does not install. Where the full `mlflow`
# package is installed, `import mlflow` imports them anyway (0.5-1.4 s here, most of the worker's
# start-up). Marking them absent makes MLflow take the path it takes under mlflow-skinny; a module
# that truly needed one would fail with ImportError (an error, exit 3), never with a verdict.
# (pyarrow stays: MLflow's HDFS artifact repository needs it.)
for _unused in ("pandas", "numpy", "scipy"):
    sys.modules.setdefault(_unused, None)  # type: ignore[arg-type]

from .session import exit_now, main  # noqa: E402 - after the modules above are marked absent

if __name__ == "__main__":
    exit_now(main(sys.argv))
