"""Start-up of the action step under act: `image: Dockerfile` (main) against the pinned prebuilt image
a release's action.yml names (`docker://<registry>/mlflow-version-check@sha256:...`). Run by hand,
as root on the CI machine kind (not in CI, not in `make bench`): `.venv/bin/python bench/startup.py
[ROUNDS]` (default 1 round, about 3 minutes).

Per variant, act runs a one-step workflow twice: cold, then warm. The step is a real `check` of a
small model on a loopback MLflow server, so its time is image preparation plus the check.

- Dockerfile, cold: the copy's Dockerfile starts FROM a fresh label-only child of the local base
  image, so no layer of the engine's shared build cache matches and every RUN executes, pip
  downloads included (the engine's cache is left alone: other sessions build on it). Warm: the same
  again, now with this build's own layers cached (act rebuilds a local action's image every run).
- Pinned, cold: the image the cold run built is pushed to a loopback registry (Debian's
  docker-registry, on 127.0.0.1, own config) and removed from the engine; action.yml is rewritten by
  scripts/release/pin_action_image.py to its digest, so act pulls it. Warm: the image is present.
  Both variants start with the base layer present (the fresh base shares it), as act's -P image.

On GitHub's hosted runners every job starts without images or cache: the cold figures are the ones
users see there; warm is a self-hosted runner that kept its images. The real repository is never
changed: the action runs from a copy of the committed tree (HEAD) in a temporary directory. Every
image, container, process and directory the bench made is removed at the end. Results:
bench/out/startup.json; bench/RESULTS.md records them.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from harness import write_results
from mvc_testing import models
from mvc_testing.servers import MlflowServer, free_port

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
BASE_IMAGE = os.environ.get("BASE_IMAGE_TAG", "mvc-base:bookworm")
PIN_SCRIPT = ROOT / "scripts" / "release" / "pin_action_image.py"
STEP_NAME = "Action under test"
# act names a local action's image after its folder: a folder of our own keeps this image apart from
# the `act-dockeraction:latest` of other act runs (`uses: ./`) on the same engine.
ACTION_FOLDER = "mvc-startup-action"
ACT_IMAGE = f"act-{ACTION_FOLDER}-dockeraction:latest"
LABEL = "mvc-startup-bench"
# act names a job's container act-<workflow>-<job>-<hash>: the workflow below is named for this bench.
ACT_CONTAINER_PREFIX = "act-mvc-startup-bench-bench-"


def run(
    command: list[str],
    *,
    cwd: Path | None = None,
    stdin: str | None = None,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run a set-up command; stop the bench with its error output when it fails."""
    completed = subprocess.run(
        command, cwd=cwd, input=stdin, env=env, capture_output=True, text=True, check=False
    )
    if completed.returncode != 0:
        raise SystemExit(
            f"{' '.join(command[:4])} ... exited {completed.returncode}: {completed.stderr[-2000:]}"
        )
    return completed


def registry_binary() -> str:
    """Debian's docker-registry, installed when missing. Its packaged service must not start (it
    listens on every interface): the machine's policy-rc.d has to forbid service starts."""
    if found := shutil.which("docker-registry"):
        return found
    policy = Path("/usr/sbin/policy-rc.d")
    if (
        not policy.is_file()
        or subprocess.run([str(policy), "docker-registry", "start"], check=False).returncode != 101
    ):
        raise SystemExit(
            "docker-registry is not installed and this machine would start its packaged service on install "
            "(no policy-rc.d that forbids it). Install it yourself with services disabled, then run again."
        )
    environment = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    install = ["apt-get", "install", "-y", "-qq", "docker-registry"]
    if subprocess.run(install, env=environment, capture_output=True, check=False).returncode != 0:
        run(["apt-get", "update", "-qq"])
        run(install, env=environment)
    return shutil.which("docker-registry") or "/usr/bin/docker-registry"


@contextmanager
def loopback_registry(work: Path) -> Iterator[str]:
    """A registry on 127.0.0.1 with storage in work/ (never the packaged config); stopped by PID."""
    port = free_port()
    config = work / "registry.yml"
    config.write_text(
        "version: 0.1\n"
        "log:\n  level: warn\n"
        f"storage:\n  filesystem:\n    rootdirectory: {work / 'registry-storage'}\n"
        f"http:\n  addr: 127.0.0.1:{port}\n"
    )
    with open(work / "registry.log", "wb") as log:
        process = subprocess.Popen(
            [registry_binary(), "serve", str(config)], stdout=log, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=2):
                    break
            except (urllib.error.URLError, ConnectionError):
                if process.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(
                        f"registry did not start: {(work / 'registry.log').read_text()[-2000:]}"
                    ) from None
                time.sleep(0.2)
        yield f"127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def copy_action(destination: Path) -> None:
    """The committed tree (HEAD): unfinished edits in the working tree do not enter the image."""
    destination.mkdir(parents=True)
    archive = subprocess.run(["git", "archive", "HEAD"], cwd=ROOT, capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(destination)], input=archive, check=True)


WORKFLOW = """\
name: mvc-startup-bench
on: push
jobs:
  bench:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v4
      - name: <step>
        id: check
        uses: ./<folder>
        with:
          model: <model>
          version-or-stage: "1"
          tracking-uri: <server>
      - name: Assert the check passed
        env:
          PASSED: ${{ steps.check.outputs.passed }}
        run: test "$PASSED" = true
"""


def workspace(work: Path, name: str, server_url: str, model: str) -> Path:
    """A throwaway repository: the action in ACTION_FOLDER and a workflow whose one step uses it."""
    tree = work / name
    copy_action(tree / ACTION_FOLDER)
    workflow = tree / ".github" / "workflows" / "startup.yml"
    workflow.parent.mkdir(parents=True)
    workflow.write_text(
        WORKFLOW.replace("<step>", STEP_NAME)
        .replace("<folder>", ACTION_FOLDER)
        .replace("<model>", model)
        .replace("<server>", server_url)
    )
    run(["git", "init", "--quiet", str(tree)])
    run(["git", "-C", str(tree), "add", "."])
    run(["git", "-C", str(tree), "-c", "user.name=bench", "-c", "user.email=bench@localhost",
         "commit", "--quiet", "-m", "startup bench"])  # fmt: skip
    return tree


GO_DURATION_PART = re.compile(r"([0-9.]+)(h|ms|µs|us|ns|m|s)")
UNIT_SECONDS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "µs": 1e-6, "us": 1e-6, "ns": 1e-9}


def act_run(tree: Path, work: Path) -> dict[str, object]:
    """Run the workflow with act as the tests do; the action step's time as act reports it, and the
    wall time of the whole act run."""
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    completed = subprocess.run(
        [str(BIN / "act"), "push", "-W", ".github/workflows/startup.yml",
         "-P", f"ubuntu-latest={BASE_IMAGE}", "--pull=false", "--network", "host",
         "--artifact-server-path", str(work / "artifacts"), "--artifact-server-addr", "127.0.0.1",
         "--artifact-server-port", str(free_port()), "--cache-server-addr", "127.0.0.1"],
        cwd=tree, capture_output=True, text=True, timeout=1800, check=False,
    )  # fmt: skip
    wall = time.perf_counter() - started
    log = completed.stdout + completed.stderr
    step = re.search(rf"Success - Main {re.escape(STEP_NAME)} \[([^\]]+)\]", log)
    if completed.returncode != 0 or step is None:
        raise SystemExit(f"act failed ({completed.returncode}):\n{log[-4000:]}")
    step_seconds = sum(float(value) * UNIT_SECONDS[unit] for value, unit in GO_DURATION_PART.findall(step[1]))
    lines = [line.strip() for line in log.splitlines()]
    first = next(index for index, line in enumerate(lines) if f"Run Main {STEP_NAME}" in line)
    step_lines = lines[first : first + 1 + next(i for i, line in enumerate(lines[first:]) if step[0] in line)]
    return {
        "act_step_lines": step_lines,
        "step_s": round(step_seconds, 2),
        "act_wall_s": round(wall, 2),
        "load_1min_before": round(load_before, 2),
        "load_1min_after": round(os.getloadavg()[0], 2),
    }


def succeeds(command: list[str]) -> bool:
    return subprocess.run(command, capture_output=True, check=False).returncode == 0


def image_present(reference: str) -> bool:
    return succeeds(["docker", "image", "inspect", reference])


def pushed_layers_mb(registry: str, repo_digest: str) -> dict[str, float]:
    """The compressed size of the pushed image in MB: all of it (what a runner without the base
    pulls) and the layers above the base (what the cold run here pulled)."""
    request = urllib.request.Request(
        f"http://{registry}/v2/mlflow-version-check/manifests/{repo_digest.split('@', 1)[1]}",
        headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"},
    )
    with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310 - the loopback registry
        sizes = [int(layer["size"]) for layer in json.loads(answer.read())["layers"]]
    base_layers = len(
        json.loads(run(["docker", "image", "inspect", BASE_IMAGE]).stdout)[0]["RootFS"]["Layers"]
    )
    return {"all_mb": round(sum(sizes) / 1e6, 1), "above_base_mb": round(sum(sizes[base_layers:]) / 1e6, 1)}


def remove_own_containers(fresh_base: str) -> None:
    """act's job containers of this workflow, and containers a failed build left from our images."""
    for selector in (f"name={ACT_CONTAINER_PREFIX}", f"ancestor={fresh_base}"):
        listed = subprocess.run(
            ["docker", "ps", "-aq", "--no-trunc", "--filter", selector],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.split()
        for container in listed:
            succeeds(["docker", "rm", "-f", container])


def remove_own_images(nonce: str) -> None:
    """Remove every image this run made: each carries the fresh base's label (builds inherit it);
    children before parents, so repeat while some go."""
    while True:
        listed = subprocess.run(
            ["docker", "images", "-q", "--no-trunc", "--filter", f"label={LABEL}={nonce}"],
            capture_output=True, text=True, check=False,
        ).stdout.split()  # fmt: skip
        removed = [image for image in dict.fromkeys(listed) if succeeds(["docker", "rmi", "-f", image])]
        if not listed or not removed:
            return


def one_round(work: Path, registry: str, server_url: str, model: str) -> dict[str, Any]:
    """Both variants, cold then warm, with images of this round's own (removed at its end)."""
    nonce = uuid.uuid4().hex[:12]
    fresh_base = f"mvc-startup-base:{nonce}"
    work = work / nonce
    results: dict[str, Any] = {}
    try:
        # A child of the base with a label only: the same files, a new image id, so no cached layer fits.
        run(["docker", "build", "--quiet", "--label", f"{LABEL}={nonce}", "-t", fresh_base, "-"],
            stdin=f"FROM {BASE_IMAGE}\n")  # fmt: skip
        dockerfile_tree = workspace(work, "dockerfile", server_url, model)
        dockerfile = dockerfile_tree / ACTION_FOLDER / "Dockerfile"
        dockerfile.write_text(dockerfile.read_text().replace(
            "ARG BASE_IMAGE=python:3.12-slim", f"ARG BASE_IMAGE={fresh_base}", 1))  # fmt: skip
        if f"ARG BASE_IMAGE={fresh_base}" not in dockerfile.read_text():
            raise SystemExit(
                "the Dockerfile no longer starts with ARG BASE_IMAGE=python:3.12-slim: adapt the bench"
            )
        results["dockerfile_cold"] = act_run(dockerfile_tree, work)
        results["dockerfile_warm"] = act_run(dockerfile_tree, work)

        # The image the Dockerfile runs built, pushed and then removed here: the pinned run pulls it.
        pushed_tag = f"{registry}/mlflow-version-check:startup-{nonce}"
        run(["docker", "tag", ACT_IMAGE, pushed_tag])
        run(["docker", "push", pushed_tag])
        repo_digest = run(["docker", "inspect", "-f", "{{index .RepoDigests 0}}", pushed_tag]).stdout.strip()
        run(["docker", "rmi", pushed_tag, ACT_IMAGE])
        if image_present(repo_digest):
            raise SystemExit(f"{repo_digest} is still in the engine: the pinned cold run would not pull")
        results["pushed_compressed"] = pushed_layers_mb(registry, repo_digest)

        pinned_tree = workspace(work, "pinned", server_url, model)
        action_file = pinned_tree / ACTION_FOLDER / "action.yml"
        pinned = run([sys.executable, str(PIN_SCRIPT), repo_digest, "--action-file", str(action_file)])
        results["pinned_image"] = pinned.stdout.strip().split("runs.image is ", 1)[1]
        run(["git", "-C", str(pinned_tree), "-c", "user.name=bench", "-c", "user.email=bench@localhost",
             "commit", "--quiet", "-am", "pin"])  # fmt: skip
        results["pinned_cold"] = act_run(pinned_tree, work)
        if not image_present(repo_digest):
            raise SystemExit("act ran the pinned action without pulling its image")
        results["pinned_warm"] = act_run(pinned_tree, work)
    finally:
        remove_own_containers(fresh_base)
        remove_own_images(nonce)
    return results


def main(argv: list[str]) -> int:
    """`startup.py [ROUNDS]` (default 1): each round measures both variants cold and warm."""
    rounds = int(argv[0]) if argv else 1
    work = Path(tempfile.mkdtemp(prefix="mvc-startup-"))
    results: dict[str, object] = {"cpus": os.cpu_count(), "base_image": BASE_IMAGE}
    try:
        with loopback_registry(work) as registry, MlflowServer(work / "mlflow") as server:
            model = models.log_sklearn(server.url, f"startup_{uuid.uuid4().hex[:12]}")
            measured = [one_round(work, registry, server.url, model.name) for _ in range(rounds)]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    results["rounds"] = measured
    results["step_s"] = {
        variant: [round_[variant]["step_s"] for round_ in measured]
        for variant in ("dockerfile_cold", "dockerfile_warm", "pinned_cold", "pinned_warm")
    }
    write_results("startup", results)
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
