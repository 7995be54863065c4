"""Container entry point of the mlflow-version-check action (GitHub, GitLab CI, Jenkins, Azure).

Thin on purpose: the logic lives in mlflow_version_check.ci.action, which the tests call directly.
"""

import sys

from mlflow_version_check.ci.action import main

if __name__ == "__main__":
    sys.exit(main())
