"""Start an MLflow server for the action's self-test workflow and register its example models.

Leaves the server running (its own session) for the later steps of the job, and writes `url` to
GITHUB_OUTPUT and a compare config to selftest-config.yaml in the workspace. Runs in a virtualenv
with the test support package installed (`pip install -c constraints.txt ./testing`).
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

from mvc_testing import models
from mvc_testing.servers import MlflowServer


def main() -> int:
    server = MlflowServer(Path(tempfile.mkdtemp(prefix="selftest-server-"))).start()
    url = server.url
    good = models.log_sklearn(url, "selftest_model", seed=1)
    models.set_alias(url, good.name, "champion", good.version)
    copy = models.copy_version(url, good, url, "selftest_model_copy")
    tampered = models.log_sklearn(url, "selftest_tampered", seed=2)
    pickled = models.artifact_directory(server.artifacts, url, tampered) / "model.pkl"
    pickled.write_bytes(pickled.read_bytes()[:-8])
    (Path.cwd() / "selftest-config.yaml").write_text(
        f"tracking_server_1:\n  host: {url}\n  model: {good.name}\n  version_or_stage: '@champion'\n"
        f"tracking_server_2:\n  host: {url}\n  model: {copy.name}\n  version_or_stage: '{copy.version}'\n"
    )
    if output := os.environ.get("GITHUB_OUTPUT"):
        with open(output, "a", encoding="utf-8") as stream:
            stream.write(f"url={url}\n")
    print(f"MLflow server {url} (pid {server.process.pid if server.process else '?'}) with selftest models")
    return 0


if __name__ == "__main__":
    sys.exit(main())
