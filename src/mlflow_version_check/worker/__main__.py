"""`python -m mlflow_version_check.worker <fd> <parent pid>`: how pool.py starts a worker."""

import sys

from .session import exit_now, main

if __name__ == "__main__":
    exit_now(main(sys.argv))
