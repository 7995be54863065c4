"""Build the sdist and wheel, check them, and run the CLI and server tests on the installed wheel.

What it proves (issue 14, part 3), in this order:

1. `python -m build` makes the sdist and then the wheel *from that sdist*; `twine check --strict`
   passes on both; the wheel and the sdist hold every file of src/mlflow_version_check byte for byte
   (the report schema, py.typed, the worker package among them) and the wheel nothing else; the
   wheel's console scripts are the ones pyproject.toml declares.
2. The wheel (never the source tree, never editable) and the test support package (a wheel too) go
   into fresh virtualenvs:
   - py311: the lowest Python that `requires-python` admits, with the pinned constraints.txt;
   - newest: the newest CPython release found on this machine, with the same pins;
   - floors: Python 3.11 with the lowest version each run-time dependency admits, read from the
     wheel (`mlflow-skinny>=3.15` gives mlflow-skinny==3.15.0, and the tests' server comes from
     mlflow==3.15.0), everything else pinned by testing/constraints-floor.txt.
3. Each environment runs tests/test_dist.py (which asserts the package comes from that environment's
   site-packages, not src/) and the CLI and server tests, from the repository root: src/ is not on
   sys.path there, so only the installed wheel can be imported.

The environments run at the same time (`--jobs`); their tests start servers on free loopback ports.

    scripts/ci/dist_matrix.py                            everything above; exit 0 when all passed
    scripts/ci/dist_matrix.py --only floors              one environment (repeatable)
    scripts/ci/dist_matrix.py --lock-floors              re-pin testing/constraints-floor.txt afresh
    scripts/ci/dist_matrix.py -- tests/test_cli.py -x    other pytest arguments (default: DEFAULT_TESTS)

Run it with the project's virtualenv (it needs `build`, `twine` and `packaging`: the dev extra).
Exit codes: 0 passed; 1 a check or a test failed; 2 the machine lacks an interpreter or a tool.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import tomllib
import xml.etree.ElementTree as ET
import zipfile
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from email.parser import Parser
from pathlib import Path

try:
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name
    from packaging.version import Version
except ImportError:
    print(
        f"error: packaging is not installed beside {sys.executable}; run this with the project's virtualenv"
    )
    sys.exit(2)

REPOSITORY = Path(__file__).resolve().parents[2]
PACKAGE = "mlflow_version_check"
CONSTRAINTS = REPOSITORY / "constraints.txt"
FLOOR_CONSTRAINTS = REPOSITORY / "testing" / "constraints-floor.txt"
# Representative of what users run: every command's CLI surface, check and compare against real
# servers (two of them), the worker processes, the JSON report against the shipped schema.
DEFAULT_TESTS = (
    "tests/test_dist.py",
    "tests/test_cli.py",
    "tests/test_check_server.py",
    "tests/test_compare.py",
)
NOT_HERE = "not docker and not act"
# Files a user of the wheel relies on beyond the modules; named so a failure says which one is missing.
MUST_SHIP = ("schema/report.schema.json", "py.typed", "worker/__main__.py")
LOWEST_MINOR = 11


class MatrixError(Exception):
    """A check failed: the message is one line saying what, the likely cause and the fix."""


class MachineError(Exception):
    """The machine lacks what the matrix needs (an interpreter, a tool)."""


_print_lock = threading.Lock()


def say(message: str) -> None:
    with _print_lock:
        print(message, flush=True)


def run(
    command: Sequence[str | Path], *, log: Path, cwd: Path = REPOSITORY, env: dict[str, str] | None = None
) -> None:
    """Run a command with its output appended to `log`; raise MatrixError naming the log on failure."""
    with log.open("a", encoding="utf-8") as stream:
        stream.write(f"$ {' '.join(map(str, command))}\n")
        stream.flush()
        completed = subprocess.run(
            [str(part) for part in command],
            cwd=cwd,
            env=env,
            stdout=stream,
            stderr=subprocess.STDOUT,
            check=False,
        )
    if completed.returncode != 0:
        raise MatrixError(
            f"`{' '.join(map(str, command[:4]))} ...` exited {completed.returncode}; its output is in {log}"
        )


def output_of(
    command: Sequence[str | Path], *, cwd: Path = REPOSITORY, env: dict[str, str] | None = None
) -> str:
    return subprocess.run(
        [str(part) for part in command], cwd=cwd, env=env, capture_output=True, text=True, check=True
    ).stdout.strip()


# --- the sdist and the wheel -------------------------------------------------------------------------


@dataclass(frozen=True)
class Built:
    sdist: Path
    wheel: Path
    testing_wheel: Path
    package_files: dict[str, bytes]  # path under src/mlflow_version_check -> contents


def stage_sources(destination: Path) -> None:
    """Copy the files git tracks or would track (untracked, not ignored) so the build sees no local debris."""
    try:
        listed = output_of(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"])
    except (OSError, subprocess.CalledProcessError) as failure:
        raise MachineError(f"cannot list the sources with git ({failure}); run this in a clone") from failure
    for name in listed.split("\0"):
        source = REPOSITORY / name
        if name and source.is_file():  # a tracked file deleted in the work tree is left out
            target = destination / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)


def build(work: Path) -> Built:
    staged = work / "source"
    stage_sources(staged)
    log = work / "build.log"
    dist = work / "dist"
    # Without --sdist/--wheel, build makes the sdist and then the wheel from the unpacked sdist: a
    # wheel here proves the sdist is complete enough to build one.
    run([sys.executable, "-m", "build", "--outdir", dist, staged], log=log)
    run(
        [sys.executable, "-m", "build", "--wheel", "--outdir", work / "testing-dist", staged / "testing"],
        log=log,
    )
    run([sys.executable, "-m", "twine", "check", "--strict", *sorted(dist.iterdir())], log=log)
    sdists, wheels = sorted(dist.glob("*.tar.gz")), sorted(dist.glob("*.whl"))
    if len(sdists) != 1 or len(wheels) != 1:
        raise MatrixError(
            f"expected one sdist and one wheel in {dist}, found {[p.name for p in dist.iterdir()]}"
        )
    package_root = staged / "src" / PACKAGE
    package_files = {
        path.relative_to(package_root).as_posix(): path.read_bytes()
        for path in sorted(package_root.rglob("*"))
        if path.is_file() and "__pycache__" not in path.parts
    }
    return Built(sdists[0], wheels[0], next((work / "testing-dist").glob("*.whl")), package_files)


def check_wheel(built: Built) -> list[str]:
    """Fail unless the wheel holds exactly the package's files, byte for byte, and the declared scripts."""
    with zipfile.ZipFile(built.wheel) as wheel:
        members = {name: wheel.read(name) for name in wheel.namelist() if not name.endswith("/")}
    dist_info = next(name.split("/")[0] for name in members if name.split("/")[0].endswith(".dist-info"))
    for required in MUST_SHIP:
        if f"{PACKAGE}/{required}" not in members:
            raise MatrixError(
                f"the wheel lacks {PACKAGE}/{required}; likely cause: [tool.setuptools.package-data] "
                f"no longer covers it; fix: list it there"
            )
    missing = [name for name in built.package_files if f"{PACKAGE}/{name}" not in members]
    differs = [
        name for name, data in built.package_files.items() if members.get(f"{PACKAGE}/{name}", data) != data
    ]
    strays = [name for name in members if name.split("/")[0] not in (PACKAGE, dist_info)]
    extras = [
        name
        for name in members
        if name.startswith(f"{PACKAGE}/") and name.removeprefix(f"{PACKAGE}/") not in built.package_files
    ]
    if missing or differs or strays or extras:
        raise MatrixError(
            f"the wheel does not match src/{PACKAGE}: missing {missing}, different {differs}, outside the "
            f"package {strays}, not in the sources {extras}; fix the package-data or packages.find settings"
        )
    json.loads(members[f"{PACKAGE}/schema/report.schema.json"])
    declared = tomllib.loads((REPOSITORY / "pyproject.toml").read_text())["project"]["scripts"]
    entry_points = members[f"{dist_info}/entry_points.txt"].decode()
    shipped = dict(re.findall(r"^(\S+) = (\S+)$", entry_points, flags=re.MULTILINE))
    if shipped != declared:
        raise MatrixError(f"the wheel's console scripts {shipped} are not pyproject's {declared}")
    return sorted(members)


def check_sdist(built: Built) -> None:
    """Fail unless the sdist holds every package file byte for byte, pyproject.toml and the README."""
    with tarfile.open(built.sdist) as sdist:
        root = sdist.getnames()[0].split("/")[0]
        needed = {f"src/{PACKAGE}/{name}": data for name, data in built.package_files.items()}
        found: dict[str, bytes] = {}
        for member in sdist.getmembers():
            relative = member.name.removeprefix(f"{root}/")
            if member.isfile() and (relative in needed or relative in ("pyproject.toml", "README.md")):
                extracted = sdist.extractfile(member)
                found[relative] = extracted.read() if extracted else b""
    missing = sorted(set(needed) - set(found)) + [
        name for name in ("pyproject.toml", "README.md") if name not in found
    ]
    differs = sorted(name for name, data in needed.items() if found.get(name, data) != data)
    if missing or differs:
        raise MatrixError(
            f"the sdist lacks {missing} or has different {differs}: check MANIFEST rules and package-data"
        )


def wheel_metadata(wheel: Path) -> tuple[str, list[Requirement]]:
    with zipfile.ZipFile(wheel) as archive:
        name = next(member for member in archive.namelist() if member.endswith(".dist-info/METADATA"))
        metadata = Parser().parsestr(archive.read(name).decode())
    return metadata["Requires-Python"] or "", [
        Requirement(text) for text in metadata.get_all("Requires-Dist") or []
    ]


def lowest_versions(requirements: list[Requirement]) -> dict[str, str]:
    """The lowest version each run-time dependency admits (its `>=` bound), by canonical name."""
    floors: dict[str, str] = {}
    for requirement in requirements:
        if requirement.marker is not None:  # extras and platform-only dependencies
            continue
        bounds = [spec.version for spec in requirement.specifier if spec.operator in (">=", "==", "~=")]
        if not bounds:
            raise MatrixError(
                f"dependency {requirement} has no lower bound, so no floor can be tested; fix: give it one "
                f"in pyproject.toml"
            )
        floors[canonicalize_name(requirement.name)] = max(bounds, key=Version)
    return floors


def check_floor_pins(floors: dict[str, str]) -> None:
    """Fail early, with the fix, when testing/constraints-floor.txt pins other floors than the wheel's."""
    if not FLOOR_CONSTRAINTS.exists():
        return  # --lock-floors is about to write it
    pinned = dict(line.split("==", 1) for line in FLOOR_CONSTRAINTS.read_text().splitlines() if "==" in line)
    stale = {
        name: pinned.get(name)
        for name, version in floors.items()
        if Version(pinned.get(name, "0")) != Version(version)
    }
    if stale:
        raise MatrixError(
            f"{FLOOR_CONSTRAINTS.relative_to(REPOSITORY)} pins {stale}, but the lowest versions "
            f"pyproject.toml admits are {floors}; fix: scripts/ci/dist_matrix.py --lock-floors"
        )


def extra_requirements(requirements: list[Requirement], extra: str) -> list[Requirement]:
    return [req for req in requirements if req.marker is not None and req.marker.evaluate({"extra": extra})]


# --- interpreters ------------------------------------------------------------------------------------


@dataclass(frozen=True, order=True)
class Interpreter:
    version: tuple[int, int, int]
    path: str = field(compare=False)

    @property
    def label(self) -> str:
        return ".".join(map(str, self.version))


def candidate_paths() -> Iterator[Path]:
    """Every python3 and python3.N in each PATH directory, then every pyenv version's python3."""
    for directory in filter(None, os.environ.get("PATH", "").split(os.pathsep)):
        yield from sorted(Path(directory).glob("python3"))
        yield from sorted(Path(directory).glob("python3.[0-9]*"))
    roots = [os.environ.get("PYENV_ROOT", ""), str(Path.home() / ".pyenv")]
    if pyenv := shutil.which("pyenv"):
        located = subprocess.run([pyenv, "root"], capture_output=True, text=True, check=False)
        roots.append(located.stdout.strip())
    for root in filter(None, roots):
        yield from sorted(Path(root).glob("versions/*/bin/python3"))


# The base interpreter, so a virtualenv's python on PATH counts as the Python it was made from.
PROBE = (
    "import sys, ensurepip, venv; "
    "print(sys.implementation.name, sys.version_info.releaselevel, *sys.version_info[:3], "
    "sys._base_executable)"
)


def find_interpreters() -> list[Interpreter]:
    """Every CPython release (no pre-release) of 3.11 or newer on this machine that can make a virtualenv."""
    found: dict[str, Interpreter] = {}
    for path in candidate_paths():
        if not (path.is_file() and os.access(path, os.X_OK)) or path.name.endswith("-config"):
            continue
        try:
            probe = subprocess.run(
                [path, "-c", PROBE], capture_output=True, text=True, timeout=30, check=False
            )
        except (OSError, subprocess.TimeoutExpired):
            continue
        fields = probe.stdout.split(maxsplit=5)
        if probe.returncode != 0 or len(fields) != 6 or fields[:2] != ["cpython", "final"]:
            continue  # a pyenv shim of a version not selected, a pre-release, or no ensurepip
        version = (int(fields[2]), int(fields[3]), int(fields[4]))
        executable = os.path.realpath(fields[5].strip())
        if version >= (3, LOWEST_MINOR) and executable not in found:
            found[executable] = Interpreter(version, executable)
    return sorted(found.values())


def pick_interpreters(interpreters: list[Interpreter]) -> tuple[Interpreter | None, Interpreter | None]:
    """The lowest admitted minor (its earliest patch release here) and the newest release found."""
    lowest = [item for item in interpreters if item.version[:2] == (3, LOWEST_MINOR)]
    newer = [item for item in interpreters if item.version[:2] > (3, LOWEST_MINOR)]
    return (min(lowest) if lowest else None), (max(newer) if newer else None)


# --- the environments --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Environment:
    name: str
    python: Interpreter
    requirements: list[str]
    constraints: Path | None
    expected: dict[str, str]  # canonical name -> version the environment must end up with


@dataclass
class Outcome:
    name: str
    python: str
    install_seconds: float = 0.0
    test_seconds: float = 0.0
    counts: dict[str, int] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    imported_from: str = ""
    error: str = ""


def clean_environment(venv: Path) -> dict[str, str]:
    """The caller's environment as an activated `venv` would see it, with nothing that adds to sys.path."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "VIRTUAL_ENV", "PYTHONUSERBASE")
    }
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env["VIRTUAL_ENV"] = str(venv)
    env["PYTHONDONTWRITEBYTECODE"] = "1"  # leave no byte code of other Pythons in the work tree
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


def install(environment: Environment, venv: Path, log: Path) -> None:
    """A fresh venv filled by this interpreter's pip (`pip --python`): one pip version for every Python."""
    # With its own pip all the same: MLflow records the pip version in the models the tests log.
    run([environment.python.path, "-m", "venv", venv], log=log)
    constraints: list[str | Path] = ["-c", environment.constraints] if environment.constraints else []
    pip: list[str | Path] = [sys.executable, "-m", "pip", "--python", venv / "bin" / "python"]
    run(
        [*pip, "install", "--no-input", *constraints, *environment.requirements],
        log=log,
        env=clean_environment(venv),
    )
    run([*pip, "check"], log=log, env=clean_environment(venv))


def installed_versions(venv: Path) -> dict[str, str]:
    listing = output_of(
        [sys.executable, "-m", "pip", "--python", venv / "bin" / "python", "list", "--format", "json"],
        env=clean_environment(venv),
    )
    return {canonicalize_name(item["name"]): item["version"] for item in json.loads(listing)}


SITE_PACKAGES_PROBE = "import sysconfig; print(sysconfig.get_path('purelib'))"
IMPORT_PROBE = f"import {PACKAGE}; print({PACKAGE}.__file__)"


def prove_installed_import(venv: Path) -> tuple[str, str]:
    """Import the package from the repository root as the tests will; it must come from site-packages."""
    env = clean_environment(venv)
    site_packages = output_of([venv / "bin" / "python", "-c", SITE_PACKAGES_PROBE], env=env)
    imported = output_of([venv / "bin" / "python", "-c", IMPORT_PROBE], env=env)
    if not Path(imported).resolve().is_relative_to(Path(site_packages).resolve()):
        raise MatrixError(
            f"{PACKAGE} was imported from {imported}, not from {site_packages}: the tests would not "
            f"test the wheel; likely cause: PYTHONPATH or a .pth file names the source tree"
        )
    return site_packages, imported


def count_results(junit: Path) -> dict[str, int]:
    root = ET.parse(junit).getroot()  # noqa: S314 - pytest's own file, written a moment ago
    suite = root if root.tag == "testsuite" else root.find("testsuite")
    if suite is None:
        raise MatrixError(f"{junit} has no test suite")
    counts = {key: int(suite.get(key, "0")) for key in ("tests", "failures", "errors", "skipped")}
    counts["passed"] = counts["tests"] - counts["failures"] - counts["errors"] - counts["skipped"]
    return counts


def run_environment(environment: Environment, work: Path, pytest_args: Sequence[str]) -> Outcome:
    outcome = Outcome(environment.name, environment.python.label)
    home = work / environment.name
    home.mkdir()
    venv, log = home / "venv", home / "log.txt"
    try:
        say(f"[{environment.name}] installing the wheel for Python {environment.python.label}")
        started = time.monotonic()
        install(environment, venv, log)
        outcome.install_seconds = time.monotonic() - started
        outcome.versions = installed_versions(venv)
        (home / "freeze.json").write_text(json.dumps(outcome.versions, indent=1, sort_keys=True))
        wrong = {
            name: outcome.versions.get(name)
            for name, version in environment.expected.items()
            if Version(outcome.versions.get(name, "0")) != Version(version)
        }
        if wrong:
            raise MatrixError(
                f"installed {wrong}, expected {environment.expected}: the resolver moved a floor"
            )
        site_packages, outcome.imported_from = prove_installed_import(venv)
        seconds = outcome.install_seconds
        say(f"[{environment.name}] installed in {seconds:.0f} s; imports {outcome.imported_from}")
        env = clean_environment(venv)
        env["MVC_DIST_SITE_PACKAGES"] = site_packages
        junit = home / "junit.xml"
        started = time.monotonic()
        command: list[str | Path] = [
            venv / "bin" / "pytest", "-p", "no:cacheprovider", "-m", NOT_HERE,
            "--basetemp", home / "pytest", "--junitxml", junit, *pytest_args,
        ]  # fmt: skip
        try:
            run(command, log=log, env=env)
        finally:
            outcome.test_seconds = time.monotonic() - started
            if junit.exists():
                outcome.counts = count_results(junit)
    except (MatrixError, subprocess.CalledProcessError, OSError) as failure:
        outcome.error = str(failure)
        with log.open(encoding="utf-8", errors="replace") as stream:
            tail = stream.readlines()[-40:]
        say(
            f"[{environment.name}] FAILED: {outcome.error}\n"
            + "".join(f"[{environment.name}] | {line}" for line in tail)
        )
    else:
        say(f"[{environment.name}] tests passed in {outcome.test_seconds:.0f} s: {outcome.counts}")
    return outcome


def environments(
    built: Built,
    only: set[str],
    pytest_python: Interpreter | None,
    newest: Interpreter | None,
    *,
    locking: bool = False,
) -> list[Environment]:
    requires_python, requirements = wheel_metadata(built.wheel)
    if requires_python != f">=3.{LOWEST_MINOR}":
        raise MatrixError(
            f"the wheel says Requires-Python {requires_python!r}; update LOWEST_MINOR in {__file__} with it"
        )
    floors = lowest_versions(requirements)
    if "mlflow-skinny" not in floors:
        raise MatrixError(
            "the wheel no longer depends on mlflow-skinny; update the floor environment in this script"
        )
    if not locking and (not only or "floors" in only):
        check_floor_pins(floors)
    # The server the tests start comes from the full mlflow of the same release as the client floor.
    floor_tests = [
        f"mlflow=={floors['mlflow-skinny']}"
        if canonicalize_name(req.name) == "mlflow"
        else f"{req.name}{req.specifier}"
        for req in extra_requirements(requirements, "test")
    ]
    test_extra = f"{built.wheel}[test]"
    planned: list[Environment] = []
    if pytest_python:
        planned.append(
            Environment("py311", pytest_python, [test_extra, str(built.testing_wheel)], CONSTRAINTS, {})
        )
        planned.append(
            Environment(
                "floors",
                pytest_python,
                [
                    str(built.wheel),
                    *(f"{name}=={version}" for name, version in floors.items()),
                    *floor_tests,
                    str(built.testing_wheel),
                ],
                FLOOR_CONSTRAINTS if FLOOR_CONSTRAINTS.exists() else None,
                {**floors, "mlflow": floors["mlflow-skinny"]},
            )
        )
    if newest:
        planned.append(Environment("newest", newest, [test_extra, str(built.testing_wheel)], CONSTRAINTS, {}))
    return [item for item in planned if not only or item.name in only]


def lock_floors(environment: Environment, work: Path) -> None:
    """Resolve the floor environment afresh (no constraints) and pin what it installed."""
    venv, log = work / "lock-venv", work / "lock.log"
    unpinned = Environment(
        environment.name, environment.python, environment.requirements, None, environment.expected
    )
    install(unpinned, venv, log)
    versions = installed_versions(venv)
    # The project's own two packages, and the venv's installer, which pip -c need not pin.
    own = {"mlflow-version-check", "mlflow-version-check-testing", "pip", "setuptools", "wheel"}
    lines = [
        "# Pinned versions of the floor environment of scripts/ci/dist_matrix.py (pip -c): the lowest",
        "# version of each dependency pyproject.toml admits, everything else as resolved on the day.",
        "# Regenerate with 'scripts/ci/dist_matrix.py --lock-floors' after changing a floor.",
        *(f"{name}=={version}" for name, version in sorted(versions.items()) if name not in own),
    ]
    FLOOR_CONSTRAINTS.write_text("\n".join(lines) + "\n")
    say(f"wrote {FLOOR_CONSTRAINTS.relative_to(REPOSITORY)} ({len(lines) - 3} pins)")


# --- main --------------------------------------------------------------------------------------------


def summarize(outcomes: list[Outcome], work: Path, *, keep: bool, elapsed: float) -> int:
    """Print a line per environment and the totals; remove the work directory when all passed."""
    say(f"\n{'env':8} {'python':8} {'install':>8} {'tests':>7}  result")
    for outcome in outcomes:
        counts = ", ".join(
            f"{value} {key}" for key, value in outcome.counts.items() if key != "tests" and value
        )
        floors = ", ".join(
            f"{name} {outcome.versions.get(name, '?')}" for name in ("mlflow-skinny", "typer", "pyyaml")
        )
        say(
            f"{outcome.name:8} {outcome.python:8} "
            f"{outcome.install_seconds:7.0f}s {outcome.test_seconds:6.0f}s  "
            f"{'FAILED: ' + outcome.error if outcome.error else 'ok'} ({counts}; {floors})"
        )
    failed = [outcome.name for outcome in outcomes if outcome.error]
    say(f"{len(outcomes) - len(failed)} of {len(outcomes)} environments passed in {elapsed:.0f} s")
    if failed or not outcomes:
        say(f"the builds and logs are in {work}")
    elif not keep:
        shutil.rmtree(work, ignore_errors=True)
    # Last, in the form CI reads as a test run's closing line: the tests of every environment.
    tests_passed = sum(outcome.counts.get("passed", 0) for outcome in outcomes)
    tests_failed = sum(
        outcome.counts.get("failures", 0) + outcome.counts.get("errors", 0) for outcome in outcomes
    )
    say(f"dist_matrix: {tests_passed} passed, {tests_failed} failed")
    return 1 if failed or not outcomes else 0


def parse_arguments(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--only", action="append", default=[], choices=["py311", "newest", "floors"])
    parser.add_argument("--jobs", type=int, default=3, help="environments at once (default 3)")
    parser.add_argument("--keep", type=Path, help="keep the work directory (builds, venvs, logs) here")
    parser.add_argument("--lock-floors", action="store_true", help=f"re-pin {FLOOR_CONSTRAINTS.name}")
    parser.add_argument(
        "pytest_args", nargs="*", help="after --: arguments for pytest (default: the CLI and server tests)"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str]) -> int:
    arguments = parse_arguments(argv)
    ci = os.environ.get("CI", "").lower() == "true"
    work = arguments.keep or Path(tempfile.mkdtemp(prefix="mvc-dist-matrix-"))
    if arguments.keep:
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
    started = time.monotonic()
    try:
        lowest, newest = pick_interpreters(find_interpreters())
        say(f"Python 3.{LOWEST_MINOR}: {lowest.label + ' ' + lowest.path if lowest else 'none found'}")
        say(f"newest CPython: {newest.label + ' ' + newest.path if newest else 'none newer than 3.11 found'}")
        wanted = set(arguments.only) or {"py311", "newest", "floors"}
        if lowest is None and wanted & {"py311", "floors"}:
            raise MachineError(
                f"no CPython 3.{LOWEST_MINOR} on PATH or under pyenv; install it (pyenv install 3.11)"
            )
        if newest is None and "newest" in wanted:
            if ci or arguments.only:
                raise MachineError(
                    "no CPython newer than 3.11 on PATH or under pyenv; install one (pyenv install 3.13)"
                )
            say("warning: no CPython newer than 3.11 here, so the newest environment is left out")
        missing_tools = [tool for tool in ("build", "twine") if importlib.util.find_spec(tool) is None]
        if missing_tools:
            raise MachineError(
                f"{' and '.join(missing_tools)} not installed beside {sys.executable}; run it with the "
                f"project's virtualenv (make venv installs the dev extra)"
            )
        built = build(work)
        members = check_wheel(built)
        check_sdist(built)
        say(
            f"built {built.sdist.name} and {built.wheel.name} (from the sdist); twine check passed; "
            f"the wheel holds all {len(built.package_files)} package files ({', '.join(MUST_SHIP)} "
            f"among them) in {len(members)} members"
        )
        if arguments.lock_floors:
            lock_floors(environments(built, {"floors"}, lowest, None, locking=True)[0], work)
            if not arguments.keep:
                shutil.rmtree(work, ignore_errors=True)
            return 0
        planned = environments(built, set(arguments.only), lowest, newest)
        tests = arguments.pytest_args or list(DEFAULT_TESTS)
        with ThreadPoolExecutor(max_workers=max(1, arguments.jobs)) as pool:
            outcomes = list(pool.map(lambda item: run_environment(item, work, tests), planned))
    except MachineError as failure:
        say(f"error: {failure}")
        if not arguments.keep:
            shutil.rmtree(work, ignore_errors=True)
        return 2
    except MatrixError as failure:
        say(f"error: {failure}")
        say(f"the builds and logs are in {work}")
        return 1
    return summarize(outcomes, work, keep=arguments.keep is not None, elapsed=time.monotonic() - started)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
