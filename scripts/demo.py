"""`make demo`: local MLflow servers, example models, and `check` and `compare` run as a user would.

Starts two real `mlflow server` processes on free loopback ports, registers a small sklearn model (two
versions, a stage and an alias), a directory-format pyfunc model and a model whose stored file was
tampered with, runs `check` on each; copies the directory model to the second server (equal) and a
tampered copy (different) and runs `compare` on both; shows the summaries and where the reports are,
and stops the servers.
"""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from mvc_testing import models
from mvc_testing.servers import MlflowServer

ROOT = Path(__file__).resolve().parent.parent
OUTPUT = ROOT / "demo-output"
REPORTS = OUTPUT / "reports"
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


def flip_first_weight_byte(model: Path) -> None:
    weights = next((model / "artifacts").rglob("layer1.bin"))
    data = bytearray(weights.read_bytes())
    data[0] ^= 0xFF
    weights.write_bytes(bytes(data))


def checks(server: MlflowServer) -> list[bool]:
    url = server.url
    banner("registering example models")
    first = models.log_sklearn(url, "demo_sklearn", seed=1)
    second = models.log_sklearn(url, "demo_sklearn", seed=2)
    models.set_stage(url, "demo_sklearn", first.version, "Production")
    models.set_alias(url, "demo_sklearn", "champion", second.version)
    print(f"demo_sklearn: version {first.version} in Production, version {second.version} is @champion")
    directory = models.log_directory_flavor(url, "demo_directory")
    print(f"demo_directory: version {directory.version}, a pyfunc model with a nested artifacts/ folder")
    tampered = models.log_sklearn(url, "demo_tampered", seed=3)
    pickled = models.artifact_directory(server.artifacts, url, tampered) / "model.pkl"
    pickled.write_bytes(pickled.read_bytes()[:-8])
    print(f"demo_tampered: version {tampered.version}, then 8 bytes cut from {pickled}")

    common = ["--tracking-uri", url]
    results = []
    banner("check by stage, as the original tool's README does (seed-compatible command)")
    results.append(run(["check-model-version", "--model", "demo_sklearn", "--version-or-stage", "production",
                        *common, "--report-file", str(REPORTS / "check_production.json")], 0))  # fmt: skip
    banner("check by alias, comparing only the native model file")
    results.append(run(["mlflow-version-check", "check", "--model", "demo_sklearn", "--version-or-stage",
                        "@champion", "--native-model", "auto", *common,
                        "--report-file", str(REPORTS / "check_champion.json")], 0))  # fmt: skip
    banner("check the latest version of a directory-format model, keeping the downloads")
    results.append(run(["mlflow-version-check", "check", "--model", "demo_directory", "--version-or-stage",
                        "latest", *common, "--download-dir", str(OUTPUT / "downloads"),
                        "--report-file", str(REPORTS / "check_directory.json")], 0))  # fmt: skip
    banner("check a tampered model: the gate fails with exit 1")
    results.append(run(["mlflow-version-check", "check", "--model", "demo_tampered",
                        "--version-or-stage", "1", *common,
                        "--report-file", str(REPORTS / "check_tampered.json")], 1))  # fmt: skip
    banner("seal the @champion version: its OMS manifest, checksums and root digest, for a later verify")
    results.append(run(["mlflow-version-check", "seal", "--model", "demo_sklearn", "--version-or-stage",
                        "@champion", *common, "--manifest-file", str(OUTPUT / "seal" / "demo.oms.json"),
                        "--checksums-file", str(OUTPUT / "seal" / "SHA256SUMS"),
                        "--report-file", str(REPORTS / "seal_champion.json")], 0))  # fmt: skip
    banner("a model that does not exist: one clear line and exit 3")
    results.append(
        run(["check-model-version", "--model", "no_such_model", "--version-or-stage", "1", *common], 3)
    )
    return results


def compares(server: MlflowServer, prod: MlflowServer) -> list[bool]:
    banner("copy a model to the second server, as an export/import tool does, and a tampered copy")
    directory = models.Registered("demo_directory", "1", "", None)
    copy = models.copy_version(server.url, directory, prod.url, "demo_directory_imported")
    print(f"demo_directory_imported: version {copy.version} on {prod.url}: same files, MLmodel rewritten")
    tampered = models.copy_version(
        server.url, directory, prod.url, "demo_directory_tampered", tamper=flip_first_weight_byte
    )
    print(f"demo_directory_tampered: version {tampered.version}: one byte of a nested weights file flipped")
    configs = OUTPUT / "configs"
    configs.mkdir(parents=True, exist_ok=True)
    for name, target in (("copy", copy), ("tampered", tampered)):
        (configs / f"{name}.yaml").write_text(
            f"tracking_server_1:\n  host: {server.url}\n  model: demo_directory\n  version_or_stage: latest\n"
            f"tracking_server_2:\n  host: {prod.url}\n  model: {target.name}\n"
            f"  version_or_stage: '{target.version}'\n"
        )
    print(f"{configs / 'copy.yaml'}:\n" + (configs / "copy.yaml").read_text())
    results = []
    banner("compare the copy with the original (seed-compatible command): equal, identity fields ignored")
    results.append(run(["compare-model-versions", "--config-file", str(configs / "copy.yaml"),
                        "--report-file", str(REPORTS / "compare_copy.json")], 0))  # fmt: skip
    banner("compare the tampered copy with the original: exit 1, the file is named")
    results.append(run(["mlflow-version-check", "compare", "--config-file", str(configs / "tampered.yaml"),
                        "--report-file", str(REPORTS / "compare_tampered.json")], 1))  # fmt: skip
    manifest = str(OUTPUT / "seal" / "demo_directory.oms.json")
    banner("seal the original; verify the copy against that manifest: same files, identity fields ignored")
    results.append(run(["mlflow-version-check", "seal", "--model", "demo_directory",
                        "--version-or-stage", "1", "--tracking-uri", server.url, "--manifest-file", manifest,
                        "--report-file", str(REPORTS / "seal_directory.json")], 0))  # fmt: skip
    results.append(run(["mlflow-version-check", "verify", "--model", copy.name, "--version-or-stage",
                        copy.version, "--tracking-uri", prod.url, "--manifest-file", manifest,
                        "--report-file", str(REPORTS / "verify_copy.json")], 0))  # fmt: skip
    banner("verify the tampered copy against the same manifest: exit 1, the file is named")
    results.append(run(["mlflow-version-check", "verify", "--model", tampered.name, "--version-or-stage",
                        tampered.version, "--tracking-uri", prod.url, "--manifest-file", manifest,
                        "--report-file", str(REPORTS / "verify_tampered.json")], 1))  # fmt: skip
    return results


def show_reports() -> None:
    banner("reports")
    for path in sorted(REPORTS.glob("*.json")):
        report = json.loads(path.read_text())
        print(f"{path}: status={report['status']} equals={report['equals']}")
    report = json.loads((REPORTS / "compare_copy.json").read_text())
    seed_fields = {
        section: {
            "equals": report[section]["equals"],
            **{
                server: {key: report[section][server][key] for key in ("path", "hash")}
                for server in ("tracking_server_1", "tracking_server_2")
            },
        }
        for section in ("Run_Model_Comparison", "Reg_Model_Comparison")
    }
    seed_fields["Comparison_Summary"] = report["Comparison_Summary"]
    print("\nseed-compatible fields of compare_copy.json:")
    print(json.dumps(seed_fields, indent=2))


def main() -> int:
    if OUTPUT.exists():
        shutil.rmtree(OUTPUT)
    banner("starting two local MLflow tracking servers (think: a test and a prod workspace)")
    with MlflowServer(OUTPUT / "server") as server, MlflowServer(OUTPUT / "server2") as prod:
        print(f"server 1: {server.url} (store and artifacts in {server.root})")
        print(f"server 2: {prod.url} (store and artifacts in {prod.root})")
        results = checks(server) + compares(server, prod)
    show_reports()
    banner("servers stopped; demo " + ("succeeded" if all(results) else "FAILED"))
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
