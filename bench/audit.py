"""Registry audit (issue 13): `audit` of many small versions on one server, next to what it replaces
and to the least it must do (part of `make bench`).

One local server; NAMES registered models, each a small sklearn model logged once (as `runs:/`, as a
run artifact location, or as an MLflow 3 logged model: the three source forms users register) and
registered again and again from the same run (create_model_version is fast, logging is not), so
that every version is a complete model that audit passes. With VERSIONS (100) versions, measured in
ROUNDS rounds (medians reported), the commands of a round one after the other:
- `audit`: mlflow-version-check audit of every version, with its report (every version must pass);
- the loop it replaces: one `check` process per version, one after the other (LOOP_ROUNDS rounds:
  about two minutes each);
- the in-process floor: one Python process, MLflow imported once, that lists the versions, then for
  each in turn downloads its source and (when it is another location) its registry download URI
  with mlflow.artifacts.download_artifacts and hashes every file with SHA-256;
- shards: `--shard 1/2` and `2/2` at once, and `1/4` to `4/4` at once (the wall time of the set);
- the same audit at --jobs 1 and 8 (the default is 4), and its report's own timings (listing,
  including the worker's start, and the whole audit), to show where the time goes.
Then the registry grows to LARGE_VERSIONS (1,000) versions and `audit` runs again (ROUNDS times):
peak RSS for 100 and 1,000 versions.

Peak RSS: the largest single process of the command (parent CLI or its worker), from the kernel's
rusage of a small wrapper's children, and the largest sum over the command's whole process tree,
sampled from /proc every SAMPLE_SECONDS. Where the time goes: the CPU seconds of the command's
processes and of the server meanwhile (on 2 cores they compete), and the requests the server
answered, from its access log, by path. Results: bench/out/audit.json; bench/RESULTS.md records them.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from harness import write_results
from mvc_testing import models
from mvc_testing.servers import MlflowServer

BIN = Path(sys.executable).parent
CLI = str(BIN / "mlflow-version-check")
NAMES = 10
VERSIONS = int(os.environ.get("BENCH_AUDIT_VERSIONS", "100"))
LARGE_VERSIONS = int(os.environ.get("BENCH_AUDIT_LARGE_VERSIONS", "1000"))
# Medians of 3 rounds (the loopback server varies by +-20 % between runs); the loop of `check`
# processes takes ~2 minutes a round.
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
LOOP_ROUNDS = int(os.environ.get("BENCH_AUDIT_LOOP_ROUNDS", str(ROUNDS)))
SAMPLE_SECONDS = 0.025
PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")

# The goals.
GOAL_AUDIT_OVER_LOOP = 0.15
GOAL_AUDIT_OVER_FLOOR = 1.0
GOAL_PEAK_RSS_MIB = 300
GOAL_RSS_GROWTH = 1.1  # "flat": the 1,000-version peak within 10 % of the 100-version one

# The least an audit must do, in one Python process: list the versions, then for each in turn
# MLflow's own download of its source and, when that is another location, of its registry download
# URI, and SHA-256 of every file (each version's folder removed once hashed, as audit does).
# argv: tracking URI, scratch folder, a file to write the number of versions and of downloads to.
FLOOR = """
import hashlib, os, shutil, sys, mlflow
from mlflow import MlflowClient
tracking_uri, scratch, counts = sys.argv[1:4]
client = MlflowClient(tracking_uri, registry_uri=tracking_uri)
listed, token = [], None
while True:
    page = client.search_model_versions(max_results=1000, page_token=token,
                                        order_by=["name ASC", "version_number ASC"])
    listed += [(mv.name, mv.version) for mv in page]
    token = page.token
    if not token:
        break

def location(uri):
    if uri.startswith("runs:/"):
        run_id, _, sub = uri[len("runs:/"):].partition("/")
        return client.get_run(run_id).info.artifact_uri.rstrip("/") + "/" + sub
    if uri.startswith("models:/m-"):
        return client.get_logged_model(uri[len("models:/"):].split("/")[0]).artifact_location
    return uri.rstrip("/")

downloads = 0
for number, (name, version) in enumerate(listed):
    source = client.get_model_version(name, version).source
    download_uri = client.get_model_version_download_uri(name, version)
    uris = [source]
    if download_uri != source and location(download_uri) != location(source):
        uris.append(download_uri)
    for index, uri in enumerate(uris):
        destination = os.path.join(scratch, f"v{number}-{index}")
        os.makedirs(destination)
        path = mlflow.artifacts.download_artifacts(artifact_uri=uri, tracking_uri=tracking_uri,
                                                   dst_path=destination)
        downloads += 1
        for root, _, files in os.walk(path):
            for file_name in files:
                digest = hashlib.sha256()
                with open(os.path.join(root, file_name), "rb") as stream:
                    while chunk := stream.read(1 << 20):
                        digest.update(chunk)
        shutil.rmtree(destination)
with open(counts, "w") as stream:
    stream.write(f"{len(listed)} {downloads}")
"""


def _children(pid: int) -> list[int]:
    found: list[int] = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as stream:
                found += [int(child) for child in stream.read().split()]
    except (FileNotFoundError, ProcessLookupError):
        pass  # the process ended between two reads
    return found


def _tree_sum(roots: Sequence[int], measure: Callable[[int], float]) -> float:
    """measure(pid) summed over the processes `roots` and all their descendants, now; a process
    that ended meanwhile counts nothing, and neither do its children."""
    total, pending = 0.0, list(roots)
    while pending:
        pid = pending.pop()
        try:
            total += measure(pid)
        except (FileNotFoundError, ProcessLookupError):
            continue
        pending += _children(pid)
    return total


def _rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/statm") as stream:
        return int(stream.read().split()[1]) * PAGE_BYTES


def _tree_rss_bytes(roots: Sequence[int]) -> int:
    """The summed resident set of the processes `roots` and all their descendants, now."""
    return int(_tree_sum(roots, _rss_bytes))


# Runs one command and prints its wall time, the peak RSS of its largest process, the CPU seconds
# of its process tree and its exit code.
# A small wrapper, not this process: a child forked from a process that imported MLflow inherits
# that process's high-water RSS (the kernel keeps it across exec), so the bench's own ~240 MiB would
# show as every command's peak.
WRAPPER = (
    "import resource, subprocess, sys, time; t = time.perf_counter(); "
    "r = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE); "
    "w = time.perf_counter() - t; sys.stderr.buffer.write(r.stderr[-2000:]); "
    "u = resource.getrusage(resource.RUSAGE_CHILDREN); "
    "print(w, u.ru_maxrss, u.ru_utime + u.ru_stime, r.returncode)"
)


def _process_cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stream:
        fields = stream.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime


def _cpu_seconds(roots: Sequence[int]) -> float:
    """The CPU time (user + system) the processes `roots` and their descendants have used so far."""
    return _tree_sum(roots, _process_cpu_seconds)


def _requests(log: Path, offset: int) -> Counter[str]:
    """The HTTP requests the server logged after `offset`, by method and path (IDs and file names
    folded)."""
    time.sleep(0.2)  # the access log line is written as the answer is sent
    with open(log, "rb") as stream:
        stream.seek(offset)
        lines = stream.read().decode(errors="replace").splitlines()
    found: Counter[str] = Counter()
    for line in lines:
        request = _REQUEST.search(line)
        if request:
            found[_ARTIFACT_FILE.sub("/<file>", _IDS.sub("<id>", request[1]))] += 1
    return found


_REQUEST = re.compile(r'"((?:GET|POST|PUT|PATCH|DELETE) [^ ?"]+)')
_IDS = re.compile(r"(?<=/)(?:m-)?[0-9a-f]{32}|(?<=artifacts/)\d+(?=/)")
_ARTIFACT_FILE = re.compile(r"(?<=/artifacts/<id>/<id>/artifacts)/.+|(?<=/models/<id>/artifacts)/.+")


def measured_together(
    commands: Sequence[Sequence[str]], expected: int = 0, server: MlflowServer | None = None
) -> dict[str, Any]:
    """Run the commands at once; the wall time until the last ends (one command: as its wrapper
    timed it; several: as this process did, ~30 ms of wrapper start-up included), the peak RSS of
    their largest single process (the kernel's count, exact) and the peak of their trees' summed
    RSS (sampled, the wrappers left out). With `server`: the server's CPU seconds meanwhile and the
    requests it answered."""
    server_pids = [server.process.pid] if server and server.process else []
    server_cpu = _cpu_seconds(server_pids)
    log_offset = server.log_path.stat().st_size if server else 0
    started = time.perf_counter()
    wrappers = [
        subprocess.Popen(
            [sys.executable, "-c", WRAPPER, *command],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for command in commands
    ]
    tree_peak = 0
    while any(wrapper.poll() is None for wrapper in wrappers):
        commands_now = [child for wrapper in wrappers for child in _children(wrapper.pid)]
        tree_peak = max(tree_peak, _tree_rss_bytes(commands_now))
        time.sleep(SAMPLE_SECONDS)
    wall = time.perf_counter() - started
    server_cpu = _cpu_seconds(server_pids) - server_cpu
    largest_kib, cpu, failures = 0, 0.0, []
    for command, wrapper in zip(commands, wrappers, strict=True):
        stdout, stderr = wrapper.communicate()
        own_wall, peak_kib, own_cpu, code = stdout.split()
        largest_kib = max(largest_kib, int(peak_kib))
        cpu += float(own_cpu)
        if len(commands) == 1:
            wall = float(own_wall)
        if int(code) != expected:
            failures.append(f"{list(command)[:4]} exited {code}, not {expected}: {stderr[-2000:]}")
    if failures:
        raise SystemExit("\n".join(failures))
    figures: dict[str, Any] = {
        "wall_s": round(wall, 3),
        "peak_rss_mib": round(largest_kib / 1024, 1),
        "peak_tree_rss_mib": round(tree_peak / 2**20, 1),
        "cpu_s": round(cpu, 2),
    }
    if server:
        requests = _requests(server.log_path, log_offset)
        figures.update(server_cpu_s=round(server_cpu, 2), requests=sum(requests.values()))
        figures["requests_by_path"] = dict(requests.most_common())
    return figures


def measured(command: Sequence[str], expected: int = 0, server: MlflowServer | None = None) -> dict[str, Any]:
    return measured_together([command], expected, server)


def populate(server_url: str, per_model: int) -> list[tuple[str, str]]:
    """Register versions until each of the NAMES models has `per_model`; every (name, version)."""
    from mlflow import MlflowClient

    client = MlflowClient(server_url, registry_uri=server_url)
    registered: list[tuple[str, str]] = []
    for index in range(NAMES):
        name = f"audit_bench_{index:02d}"
        existing = client.search_model_versions(f"name='{name}'", max_results=1000)
        if existing:
            first = client.get_model_version(name, "1")
        else:
            first_registered = _first_version(server_url, name, index)
            first = client.get_model_version(name, first_registered.version)
        source = str(first.source)
        # An MLflow 3 logged model's version names its model (the server may not return model_id).
        model_id = source.removeprefix("models:/").split("/")[0] if source.startswith("models:/") else None
        for _ in range(per_model - max(1, len(existing))):
            client.create_model_version(
                name, source, run_id=first.run_id, model_id=model_id, await_creation_for=0
            )
        registered += [(name, str(number)) for number in range(1, per_model + 1)]
    return registered


def _first_version(server_url: str, name: str, index: int) -> models.Registered:
    """The model's first version, in one of the three source forms users register."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        form = index % 3
        if form == 2:
            return models.log_sklearn(server_url, name, seed=index)
        return models.register_run_artifacts(
            server_url, name, source_form="runs" if form == 0 else "location", seed=index
        )


def audited(report: Path, total: int) -> dict[str, Any]:
    """The report's figures, once it says every version passed (anything else stops the bench)."""
    document = json.loads(report.read_text())
    summary = document["Audit"]["summary"]
    if document["status"] != "passed" or summary["total"] != total or summary["passed"] != total:
        raise SystemExit(f"{report}: audit did not pass {total} versions: {summary}")
    return {
        "versions": summary["total"],
        "same_location": sum(bool(item["same_location"]) for item in document["Audit"]["versions"]),
        **{f"report_{key}": round(value, 3) for key, value in document["Timings"].items()},
    }


def audit_command(url: str, report: Path, *options: str) -> list[str]:
    return [CLI, "audit", "--tracking-uri", url, "--report-file", str(report), *options]


def audit_once(server: MlflowServer, scratch: Path, total: int, *options: str) -> dict[str, Any]:
    report = scratch / "audit.json"
    figures: dict[str, Any] = measured(audit_command(server.url, report, *options), server=server)
    figures.update(audited(report, total))
    report.unlink()
    return figures


def sharded(server: MlflowServer, scratch: Path, total: int, shards: int) -> dict[str, Any]:
    """`--shard i/N` for every i at once: the set's wall time, and together they cover every version."""
    reports = [scratch / f"shard{index}.json" for index in range(1, shards + 1)]
    figures: dict[str, Any] = measured_together(
        [
            audit_command(server.url, report, "--shard", f"{i}/{shards}")
            for i, report in enumerate(reports, 1)
        ],
        server=server,
    )
    covered = 0
    for report in reports:
        document = json.loads(report.read_text())
        if document["status"] != "passed":
            raise SystemExit(f"{report}: a shard did not pass: {document['Audit']['summary']}")
        covered += document["Audit"]["summary"]["total"]
        report.unlink()
    if covered != total:
        raise SystemExit(f"{shards} shards covered {covered} versions, not {total}")
    return figures


def check_loop(server: MlflowServer, versions: Sequence[tuple[str, str]]) -> dict[str, Any]:
    """One `check` process per version, one after the other, as a script would call them."""
    server_pids = [server.process.pid] if server.process else []
    server_cpu = _cpu_seconds(server_pids)
    log_offset = server.log_path.stat().st_size
    started = time.perf_counter()
    walls, peak, cpu = [], 0.0, 0.0
    for name, version in versions:
        figures = measured(
            [CLI, "check", "--model", name, "--version-or-stage", version, "--tracking-uri", server.url]
        )
        walls.append(figures["wall_s"])
        peak = max(peak, figures["peak_rss_mib"])
        cpu += figures["cpu_s"]
    wall = time.perf_counter() - started
    server_cpu = _cpu_seconds(server_pids) - server_cpu
    return {
        "wall_s": round(wall, 3),
        "per_check_median_s": round(statistics.median(walls), 3),
        "peak_rss_mib": peak,
        "cpu_s": round(cpu, 2),
        "server_cpu_s": round(server_cpu, 2),
        "requests": sum(_requests(server.log_path, log_offset).values()),
    }


def floor(server: MlflowServer, scratch: Path, total: int) -> dict[str, Any]:
    folder = Path(tempfile.mkdtemp(dir=scratch))
    counts = scratch / "floor.counts"
    figures: dict[str, Any] = measured(
        [sys.executable, "-c", FLOOR, server.url, str(folder), str(counts)], server=server
    )
    shutil.rmtree(folder)
    listed, downloads = (int(word) for word in counts.read_text().split())
    if listed != total:
        raise SystemExit(f"the floor listed {listed} versions, not {total}")
    return {**figures, "downloads": downloads}


def medians(runs: list[dict[str, Any]]) -> dict[str, float]:
    """The median of each figure over the rounds."""
    figures: dict[str, list[float]] = {}
    for run in runs:
        for key, value in run.items():
            for inner, number in value.items() if isinstance(value, dict) else [("", value)]:
                if isinstance(number, (int, float)):
                    figures.setdefault(f"{key}.{inner}" if inner else key, []).append(number)
    return {key: round(statistics.median(values), 3) for key, values in figures.items()}


def main() -> int:
    results: dict[str, Any] = {"names": NAMES, "versions": VERSIONS, "large_versions": LARGE_VERSIONS}
    with tempfile.TemporaryDirectory() as scratch_dir, MlflowServer(Path(scratch_dir) / "server") as server:
        scratch = Path(scratch_dir)
        url = server.url
        started = time.perf_counter()
        versions = populate(url, VERSIONS // NAMES)
        total = len(versions)
        results["populate_s"] = round(time.perf_counter() - started, 1)
        audit_once(server, scratch, total)  # warm the server's caches and the file cache
        runs = []
        for round_number in range(ROUNDS):
            # Other work on the machine shows here (2 cores: the server and the audit use both).
            figures: dict[str, Any] = {"load_average_1min": os.getloadavg()[0]}
            # The floor just before the audit measured against it: one run of either varies by up
            # to 20 % here.
            figures["floor"] = floor(server, scratch, total)
            figures["audit"] = audit_once(server, scratch, total)
            figures["audit_over_floor"] = round(figures["audit"]["wall_s"] / figures["floor"]["wall_s"], 3)
            figures["shards_2"] = sharded(server, scratch, total, 2)
            figures["shards_4"] = sharded(server, scratch, total, 4)
            figures["audit_jobs_1"] = audit_once(server, scratch, total, "--jobs", "1")
            figures["audit_jobs_8"] = audit_once(server, scratch, total, "--jobs", "8")
            if round_number < LOOP_ROUNDS:
                figures["check_loop"] = check_loop(server, versions)
            runs.append(figures)
            print(json.dumps({"round": round_number + 1, **figures}), flush=True)
        median = medians(runs)
        results["median"] = median
        results["runs"] = runs
        results["ratios"] = {
            "audit_over_loop": round(median["audit.wall_s"] / median["check_loop.wall_s"], 3),
            "audit_over_floor": round(median["audit.wall_s"] / median["floor.wall_s"], 3),
            "shards_2_over_unsharded": round(median["shards_2.wall_s"] / median["audit.wall_s"], 3),
            "shards_4_over_unsharded": round(median["shards_4.wall_s"] / median["audit.wall_s"], 3),
        }
        started = time.perf_counter()
        large_total = len(populate(url, LARGE_VERSIONS // NAMES))
        results["populate_large_s"] = round(time.perf_counter() - started, 1)
        large = [audit_once(server, scratch, large_total) for _ in range(ROUNDS)]
        results["large"] = {"median": medians([{"audit": run} for run in large]), "runs": large}
        peaks = (median["audit.peak_tree_rss_mib"], results["large"]["median"]["audit.peak_tree_rss_mib"])
        results["goals"] = {
            f"audit <= {GOAL_AUDIT_OVER_LOOP} x loop": results["ratios"]["audit_over_loop"]
            <= GOAL_AUDIT_OVER_LOOP,
            f"audit <= {GOAL_AUDIT_OVER_FLOOR} x floor": results["ratios"]["audit_over_floor"]
            <= GOAL_AUDIT_OVER_FLOOR,
            f"peak RSS (tree) < {GOAL_PEAK_RSS_MIB} MiB at {total} and {large_total}": max(peaks)
            < GOAL_PEAK_RSS_MIB,
            f"peak RSS flat: {large_total} within {GOAL_RSS_GROWTH} x {total}": peaks[1]
            <= GOAL_RSS_GROWTH * peaks[0],
        }
    write_results("audit", results)
    print(json.dumps({key: value for key, value in results.items() if key != "runs"}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
