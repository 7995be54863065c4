"""`make demo`: a local MLflow server, example models, and `check` run on them as a user would.

Starts a real `mlflow server` on a free loopback port, registers a small sklearn model (two versions,
a stage and an alias), a directory-format pyfunc model and a model whose stored file was tampered
with, runs the CLI on each, shows the summaries and where the reports are, and stops the server.
"""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests import models  # noqa: E402 - after the path is set
from tests.servers import MlflowServer  # noqa: E402

OUTPUT = ROOT / "demo-output"
BIN = Path(sys.executable).parent


def banner(text: str) -> None:
    print(f"\n\033[1m== {text}\033[0m", flush=True)


def run(args: list[str], expected_exit: int) -> bool:
    print(f"$ {shlex.join(args)}", flush=True)
    completed = subprocess.run([str(BIN / args[0]), *args[1:]], check=False)
    ok = completed.returncode == expected_exit
    print(
        f"-> exit {completed.returncode} ({'as expected' if ok else f'EXPECTED {expected_exit}'})", flush=True
    )
    return ok


def main() -> int:
    if OUTPUT.exists():
        shutil.rmtree(OUTPUT)
    reports = OUTPUT / "reports"
    banner("starting a local MLflow tracking server")
    with MlflowServer(OUTPUT / "server") as server:
        url = server.url
        print(f"server: {url} (store and artifacts in {server.root})")

        banner("registering example models")
        first = models.log_sklearn(url, "demo_sklearn", seed=1)
        second = models.log_sklearn(url, "demo_sklearn", seed=2)
        models.set_stage(url, "demo_sklearn", first.version, "Production")
        models.set_alias(url, "demo_sklearn", "champion", second.version)
        print(f"demo_sklearn: version {first.version} in Production, version {second.version} is @champion")
        directory = models.log_directory_flavor(url, "demo_directory")
        print(f"demo_directory: version {directory.version}, a pyfunc model with a nested artifacts/ folder")
        tampered = models.log_sklearn(url, "demo_tampered", seed=3)
        stored = models.artifact_directory(server.artifacts, url, tampered)
        pickled = stored / "model.pkl"
        pickled.write_bytes(pickled.read_bytes()[:-8])
        print(f"demo_tampered: version {tampered.version}, then 8 bytes cut from {pickled}")

        common = ["--tracking-uri", url]
        results = []
        banner("check by stage, as the original tool's README does (seed-compatible command)")
        results.append(
            run(
                [
                    "check-model-version",
                    "--model",
                    "demo_sklearn",
                    "--version-or-stage",
                    "production",
                    *common,
                    "--report-file",
                    str(reports / "check_production.json"),
                ],
                0,
            )
        )
        banner("check by alias, comparing only the native model file")
        results.append(
            run(
                [
                    "mlflow-version-check",
                    "check",
                    "--model",
                    "demo_sklearn",
                    "--version-or-stage",
                    "@champion",
                    "--native-model",
                    "auto",
                    *common,
                    "--report-file",
                    str(reports / "check_champion.json"),
                ],
                0,
            )
        )
        banner("check the latest version of a directory-format model, keeping the downloads")
        results.append(
            run(
                [
                    "mlflow-version-check",
                    "check",
                    "--model",
                    "demo_directory",
                    "--version-or-stage",
                    "latest",
                    *common,
                    "--download-dir",
                    str(OUTPUT / "downloads"),
                    "--report-file",
                    str(reports / "check_directory.json"),
                ],
                0,
            )
        )
        banner("check a tampered model: the gate fails with exit 1")
        results.append(
            run(
                [
                    "mlflow-version-check",
                    "check",
                    "--model",
                    "demo_tampered",
                    "--version-or-stage",
                    "1",
                    *common,
                    "--report-file",
                    str(reports / "check_tampered.json"),
                ],
                1,
            )
        )
        banner("a model that does not exist: one clear line and exit 3")
        results.append(
            run(["check-model-version", "--model", "no_such_model", "--version-or-stage", "1", *common], 3)
        )
    banner("reports")
    for path in sorted(reports.glob("*.json")):
        report = json.loads(path.read_text())
        print(f"{path}: status={report['status']} equals={report['equals']}")
    comparison = json.loads((reports / "check_production.json").read_text())["Comparison"]
    print("\nseed-compatible fields of check_production.json:")
    print(json.dumps({"Comparison": {k: comparison[k] for k in ("equals", "same_location")} | {
        role: {"download_uri": comparison[role]["download_uri"], "local_path": comparison[role]["local_path"]}
        for role in ("run_model", "reg_model")
    }}, indent=2))  # fmt: skip
    banner("server stopped; demo " + ("succeeded" if all(results) else "FAILED"))
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
