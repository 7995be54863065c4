"""The bad-input matrix: every way an invocation, a config file, a reference file (a manifest, a key,
a signature, a shard report), the action's inputs or a server can be wrong, in one table (CASES),
each run as the installed program in its own sandbox.

A sandbox is a fresh directory that is the program's working directory and holds its HOME, its TMPDIR,
its download directory and its report path. Every case asserts:
- the documented exit code;
- one clear line on stderr (what, likely cause, fix) and no traceback anywhere;
- an error report valid against the shipped schema where one could be written, and no report file at
  all where it could not (the options did not parse, or the report path is the problem): never half
  a report;
- nothing written or deleted in the sandbox outside the download directory and the report path, and
  nothing left in TMPDIR (the private temporary downloads and credential copies are removed).

The runs happen at the same time, on threads (matrix_runs); each case is still its own test, which
checks its own run.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import pytest
import yaml

from mvc_testing import models
from mvc_testing.models import unique
from mvc_testing.servers import MlflowServer, free_port
from tests.conftest import BIN, load_valid_report
from tests.databricks_double import WorkspaceDouble
from tests.fault_proxy import FaultProxy
from tests.prefix_proxy import PrefixProxy
from tests.runner_commands import RunnerLog
from tests.silent_server import SilentServer

pytestmark = pytest.mark.server
ROOT = Path(__file__).resolve().parent.parent
LISTING = r"/api/2.0/mlflow-artifacts/artifacts\?"
ARTIFACT_FILES = r"/api/2.0/mlflow-artifacts/artifacts/.+"
# Nothing listens on the discard port: a case on this URI must fail before it asks any server.
NEVER_ASKED = "http://127.0.0.1:9"
GOOD_SIDE = {"host": NEVER_ASKED, "model": "m", "version_or_stage": "1"}
ZERO_DIGEST = "sha256:" + "0" * 64  # well-formed, and the root digest of no model
DBX_MLMODEL = {
    "artifact_path": "model", "run_id": "0" * 32,
    "flavors": {"python_function": {"loader_module": "mlflow.sklearn", "model_path": "model.pkl"}},
}  # fmt: skip
# Registered in the module's workspace double before any case runs (the cases only read it, at the
# same time): a workspace-registry model with one version in Production, and a Unity Catalog model
# whose only alias is champion.
WORKSPACE_MODEL, WORKSPACE_MODEL_VERSION = "Matrix_Wine", "1"
WORKSPACE_UC_MODEL = "main.ml.matrix"


# ---------------------------------------------------------------------------------------------
# What a case runs, and the sandbox it runs in.


@dataclass
class Invocation:
    """A console script with arguments, or the action's entrypoint with inputs."""

    program: str  # a console script name, or "action" for entrypoint.py
    args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    stdin: str | None = None


@dataclass
class Outcome:
    exit_code: int
    stdout: str
    stderr: str
    report: dict[str, Any] | None
    outputs: dict[str, str]
    elapsed: float
    # The lines that report a failure: stderr, and for the action also its stdout, where the CLI's
    # stderr goes inside the stop-commands fence (action.run_fenced).
    error_lines: list[str] = field(default_factory=list)


class Sandbox:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.work, self.home, self.tmp = root / "work", root / "home", root / "tmp"
        self.downloads = root / "downloads"
        self.report = root / "reports" / "report.json"
        self.github = root / "github"
        for directory in (self.work, self.home, self.tmp, self.report.parent, self.github):
            directory.mkdir(parents=True)
        (self.github / "output").write_text("")
        (self.github / "summary").write_text("")
        # Something to lose: a file next to everything the program may touch.
        for directory in (self.root, self.work, self.home, self.report.parent):
            (directory / "keep.txt").write_text("must survive every case\n")

    def allowed(self) -> list[Path]:
        """Where a run may write: its downloads, its report, the runner's file commands."""
        return [self.downloads, self.report, self.github / "output", self.github / "summary"]


Snapshot = dict[str, tuple[Any, ...]]


def snapshot(root: Path, allowed: list[Path]) -> Snapshot:
    """Every path under root but the allowed ones: kind, mode, size and SHA-256 (links not followed)."""
    state: Snapshot = {}
    for directory, subdirectories, files in os.walk(root):
        here = Path(directory)
        subdirectories[:] = [name for name in subdirectories if here / name not in allowed]
        for name in [*subdirectories, *files]:
            path = here / name
            if path in allowed:
                continue
            info = path.lstat()
            key = str(path.relative_to(root))
            if stat.S_ISLNK(info.st_mode):
                state[key] = ("link", os.readlink(path))
            elif stat.S_ISDIR(info.st_mode):
                state[key] = ("dir", stat.S_IMODE(info.st_mode))
            elif not stat.S_ISREG(info.st_mode):  # a FIFO or socket: reading it would block
                state[key] = ("special", stat.S_IFMT(info.st_mode), stat.S_IMODE(info.st_mode))
            else:
                digest = hashlib.sha256(path.read_bytes()).hexdigest()
                state[key] = ("file", stat.S_IMODE(info.st_mode), info.st_size, digest)
    return state


@dataclass
class Context:
    """What a case's builder may use; servers and doubles start only when a case asks for them.
    The fixtures are looked up once (cached): a case's checks may read them after the builds."""

    sandbox: Sandbox
    request: pytest.FixtureRequest
    stack: contextlib.ExitStack
    proxy: FaultProxy | None = None

    @cached_property
    def server(self) -> MlflowServer:
        server: MlflowServer = self.request.getfixturevalue("mlflow_server")
        return server

    @cached_property
    def model(self) -> models.Registered:
        """An sklearn model, version 1 of its name, on the session server (no aliases, no stages)."""
        model: models.Registered = self.request.getfixturevalue("matrix_model")
        return model

    def workspace_with_profiles(self) -> WorkspaceDouble:
        """The workspace double, and the sandbox's .databrickscfg with profiles ws (valid), wrong,
        wrong-oauth (refused credentials) and dead (a port that refuses connections)."""
        workspace: WorkspaceDouble = self.request.getfixturevalue("matrix_workspace")
        (self.sandbox.home / ".databrickscfg").write_text(
            f"[ws]\nhost = {workspace.url}\ntoken = {workspace.token}\n\n"
            f"[wrong]\nhost = {workspace.url}\ntoken = dapi00000000000000000000000000000000\n\n"
            f"[wrong-oauth]\nhost = {workspace.url}\nclient_id = mvc-client\nclient_secret = wrong-canary\n\n"
            f"[dead]\nhost = http://127.0.0.1:{free_port()}\ntoken = dapi11111111111111111111111111111111\n"
        )
        return workspace

    def faulty(self, *faults: tuple[str, str, dict[str, Any]]) -> str:
        """A fault-injecting proxy in front of the session server; returns its URL."""
        self.proxy = self.stack.enter_context(FaultProxy(self.server.url))
        for pattern, kind, options in faults:
            self.proxy.add(pattern, kind, **options)
        return self.proxy.url

    def check(self, *args: str, tracking_uri: str | None = None, downloads: bool = True) -> Invocation:
        """check-model-version of the session model (override with --model / --version-or-stage)."""
        return self._one_version(["check-model-version"], args, tracking_uri, downloads=downloads)

    def seal(
        self, *args: str, tracking_uri: str | None = None, ends_before_server: bool = False
    ) -> Invocation:
        """seal of the session model, its manifest at work/seal/model.oms.json unless args name one:
        outside the allowed paths, so that a seal that fails and writes it all the same shows."""
        manifest = self.sandbox.work / "seal" / "model.oms.json"
        named = [] if "--manifest-file" in args else ["--manifest-file", str(manifest)]
        command = ["mlflow-version-check", "seal"]
        return self._one_version(
            command, (*named, *args), tracking_uri, ends_before_server=ends_before_server
        )

    def verify(self, *args: str, ends_before_server: bool = False) -> Invocation:
        """verify of the session model against the reference that args give (or none)."""
        command = ["mlflow-version-check", "verify"]
        return self._one_version(command, args, None, ends_before_server=ends_before_server)

    def _one_version(
        self,
        command: list[str],
        args: tuple[str, ...],
        tracking_uri: str | None,
        *,
        downloads: bool = True,
        ends_before_server: bool = False,
    ) -> Invocation:
        """A one-version command (check, seal, verify): the session model and server unless args or
        tracking_uri name others. A case that ends_before_server names model m, version 1, on a URI
        where nothing answers: it must fail before it asks any server (and starts none)."""
        given = set(args)
        defaults: list[str] = []
        if "--model" not in given:
            defaults += ["--model", "m" if ends_before_server else self.model.name]
        if "--version-or-stage" not in given:
            defaults += ["--version-or-stage", "1" if ends_before_server else self.model.version]
        if "--tracking-uri" not in given:
            server = NEVER_ASKED if ends_before_server else tracking_uri or self.server.url
            defaults += ["--tracking-uri", server]
        if downloads:
            defaults += ["--download-dir", str(self.sandbox.downloads)]
        report = ["--report-file", str(self.sandbox.report)]
        program, *subcommand = command
        return Invocation(program, [*subcommand, *defaults, *args, *report])

    def audit(
        self, *args: str, tracking_uri: str | None = None, ends_before_server: bool = False
    ) -> Invocation:
        """audit of the session model (unless args name --model or --filter) on the session server
        (unless tracking_uri names another); see _one_version for ends_before_server."""
        defaults: list[str] = []
        if not {"--model", "--filter"} & set(args):
            defaults += ["--model", "m" if ends_before_server else self.model.name]
        defaults += ["--tracking-uri", NEVER_ASKED if ends_before_server else tracking_uri or self.server.url]
        report = ["--report-file", str(self.sandbox.report)]
        return Invocation("mlflow-version-check", ["audit", *defaults, *args, *report])

    def audit_merge(self, *reports: Path) -> Invocation:
        return Invocation(
            "mlflow-version-check",
            ["audit", "merge", *map(str, reports), "--report-file", str(self.sandbox.report)],
        )

    def shard_reports(self, *shards: str) -> list[Path]:
        """Copies in the sandbox's work folder of the reports of these shards ("1/2", "2/2", "1/3")
        of the session audit (matrix_shard_reports)."""
        reports: dict[str, Path] = self.request.getfixturevalue("matrix_shard_reports")
        copies = [self.sandbox.work / reports[shard].name for shard in shards]
        for shard, copy in zip(shards, copies, strict=True):
            shutil.copyfile(reports[shard], copy)
        return copies

    def key_pair(self) -> tuple[Path, Path]:
        """A new EC P-256 key pair in the sandbox's work folder (as `model_signing sign key` takes
        one): the private and the public key's PEM files."""
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ec

        key = ec.generate_private_key(ec.SECP256R1())
        private, public = self.sandbox.work / "signing-key.pem", self.sandbox.work / "signing-key.pub"
        pem = serialization.Encoding.PEM
        unencrypted = serialization.NoEncryption()
        private.write_bytes(key.private_bytes(pem, serialization.PrivateFormat.PKCS8, unencrypted))
        public.write_bytes(
            key.public_key().public_bytes(pem, serialization.PublicFormat.SubjectPublicKeyInfo)
        )
        return private, public

    def bare_check(self, *args: str, env: dict[str, str] | None = None) -> Invocation:
        """check-model-version with exactly these options, the report in the sandbox."""
        return Invocation(
            "check-model-version", [*args, "--report-file", str(self.sandbox.report)], env=env or {}
        )

    def compare(self, config_text: str | None, *args: str, stdin: str | None = None) -> Invocation:
        config = self.sandbox.work / "config.yaml"
        if config_text is not None:
            config.write_text(config_text)
        return Invocation(
            "compare-model-versions",
            ["--config-file", "-" if stdin is not None else str(config), *args,
             "--download-dir", str(self.sandbox.downloads), "--report-file", str(self.sandbox.report)],
            stdin=stdin,
        )  # fmt: skip

    def action(self, env: dict[str, str] | None = None, **inputs: str) -> Invocation:
        variables = {f"INPUT_{name.replace('_', '-').upper()}": value for name, value in inputs.items()}
        variables.setdefault("INPUT_REPORT-FILE", str(self.sandbox.report))
        variables.setdefault("INPUT_DOWNLOAD-DIR", str(self.sandbox.downloads))
        return Invocation("action", env={**variables, **(env or {})})

    def local_store(self, name: str) -> tuple[str, Path, str]:
        """Model `name` in a SQLite tracking store with a file: artifact store inside the sandbox;
        returns (tracking URI, the version's model folder, version)."""
        tracking_uri = f"sqlite:///{self.sandbox.root / 'store' / 'mlflow.db'}"
        (self.sandbox.root / "store").mkdir(exist_ok=True)
        client = models._client(tracking_uri)
        experiment = client.create_experiment(
            name, artifact_location=(self.sandbox.root / "store" / "artifacts").as_uri()
        )
        version = models.register_run_artifacts(
            tracking_uri, name, source_form="location", experiment_id=experiment
        )
        return tracking_uri, Path(version.source.removeprefix("file://")), version.version

    def tiny_filesystem(self, mount_point: Path) -> Path:
        """A 64 KiB tmpfs at mount_point (root, as in CI)."""
        mount_point.mkdir(exist_ok=True)
        mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount_point)],
                                 capture_output=True, check=False)  # fmt: skip
        if mounted.returncode != 0:
            if os.environ.get("CI"):
                pytest.fail(f"cannot mount a tmpfs: {mounted.stderr!r}")
            pytest.skip("cannot mount a tmpfs here")
        self.stack.callback(subprocess.run, ["umount", str(mount_point)], check=False)
        return mount_point


def run(invocation: Invocation, sandbox: Sandbox, environ: Mapping[str, str]) -> Outcome:
    """Run the program as a user or a runner would, confined to the sandbox, from a copy of the
    test process's environment (taken on the main thread: runs happen on other threads)."""
    env = {
        key: value
        for key, value in environ.items()
        if not key.startswith(("MLFLOW_", "DATABRICKS_", "INPUT_", "GITHUB_", "MVC_", "ACTIONS_"))
        # Not a test or CI run to the program: MLflow keeps its telemetry off under either, which
        # would hide from the snapshot a write to HOME that a user's run makes.
        and key not in ("PYTEST_CURRENT_TEST", "CI")
    }
    env.update(HOME=str(sandbox.home), TMPDIR=str(sandbox.tmp))
    if invocation.program == "action":
        command = [sys.executable, str(ROOT / "entrypoint.py")]
        env.update(
            GITHUB_ACTIONS="true",
            GITHUB_WORKSPACE=str(sandbox.work),
            GITHUB_OUTPUT=str(sandbox.github / "output"),
            GITHUB_STEP_SUMMARY=str(sandbox.github / "summary"),
        )
    else:
        command = [str(BIN / invocation.program), *invocation.args]
    env.update(invocation.env)
    started = time.monotonic()
    completed = subprocess.run(
        command, cwd=sandbox.work, env=env, input=invocation.stdin or "", capture_output=True,
        text=True, timeout=300, check=False,
    )  # fmt: skip
    outputs: dict[str, str] = {}
    if invocation.program == "action":
        from mlflow_version_check.ci.workflow_commands import parse_outputs

        outputs = parse_outputs((sandbox.github / "output").read_text())
    report = load_valid_report(sandbox.report) if sandbox.report.is_file() else None
    elapsed = time.monotonic() - started
    lines = [line for line in completed.stderr.splitlines() if line.strip()]
    if invocation.program == "action":
        lines += [line for line in completed.stdout.splitlines() if line.startswith("error:")]
    return Outcome(completed.returncode, completed.stdout, completed.stderr, report, outputs, elapsed, lines)


# ---------------------------------------------------------------------------------------------
# The cases.

Build = Callable[[Context], Invocation]
More = Callable[[Outcome, Context], None]


@dataclass(frozen=True)
class Case:
    id: str
    exit_code: int
    words: str  # in the one error line (empty for a case that must pass)
    report: bool  # an error report must exist (True) or no report file at all (False)
    build: Build
    more: More | None = None
    # The run waits on purpose (a timeout, retries with back-off): it starts before the others, so
    # that its waiting overlaps their work.
    waits: bool = False


def _config(side_1: Any, side_2: Any, **extra: Any) -> str:
    return yaml.safe_dump({"tracking_server_1": side_1, "tracking_server_2": side_2, **extra})


def _add_listing_entry(hostile: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    def add(listing: dict[str, Any]) -> dict[str, Any]:
        listing.setdefault("files", []).append({"path": hostile, "is_dir": False, "file_size": 3})
        return listing

    return add


def _side(ctx: Context) -> dict[str, Any]:
    return {"host": ctx.server.url, "model": ctx.model.name, "version_or_stage": ctx.model.version}


def _api_answers(status: int, kind: str = "status") -> Build:
    """Every tracking API call answered with this status (the retries cannot help)."""
    return lambda c: c.check(
        "--retries", "1", tracking_uri=c.faulty(("/api/2.0/mlflow/", kind, {"status": status}))
    )


def _hostile_listing(entry: Callable[[Context], str]) -> Build:
    """The model's artifact listing gains one entry that points outside the model."""
    return lambda c: c.check(
        tracking_uri=c.faulty((LISTING, "rewrite", {"rewrite": _add_listing_entry(entry(c)), "times": 1}))
    )


def _deleted_artifacts(ctx: Context) -> Invocation:
    version = models.log_sklearn(ctx.server.url, unique("matrix_deleted"))
    shutil.rmtree(models.artifact_directory(ctx.server.artifacts, ctx.server.url, version))
    return ctx.check("--model", version.name, "--version-or-stage", "latest")


def _keeps_resolved_version(outcome: Outcome, ctx: Context) -> None:
    assert outcome.report is not None
    assert outcome.report["error"]["type"] == "ArtifactNotFound"
    assert outcome.report["Model_Version"]["resolved_by"] == "latest"
    assert outcome.report["Model_Version"]["version"] == "1"


def _full_filesystem(ctx: Context) -> Invocation:
    big = ctx.request.getfixturevalue("matrix_big_model")
    ctx.tiny_filesystem(ctx.sandbox.downloads)
    return ctx.check("--model", big.name, "--version-or-stage", big.version)


def _full_report_filesystem(ctx: Context) -> Invocation:
    """The report's directory is a tmpfs filled to the last byte: the verdict cannot be saved."""
    filler = ctx.tiny_filesystem(ctx.sandbox.report.parent) / "filler"
    with contextlib.suppress(OSError), open(filler, "wb") as stream:
        while True:
            stream.write(b"\0" * 4096)
            stream.flush()
    return ctx.check()


def _symlinked_file(ctx: Context) -> Invocation:
    name = unique("matrix_link")
    tracking_uri, model_dir, version = ctx.local_store(name)
    secret = ctx.sandbox.root / "outside-secret.txt"
    secret.write_text("bytes that are not the model's\n")
    (model_dir / "weights.bin").symlink_to(secret)
    return ctx.check("--model", name, "--version-or-stage", version, tracking_uri=tracking_uri)


def _symlink_loop(ctx: Context) -> Invocation:
    name = unique("matrix_loop")
    tracking_uri, model_dir, version = ctx.local_store(name)
    (model_dir / "loop").symlink_to(model_dir, target_is_directory=True)
    return ctx.check("--model", name, "--version-or-stage", version, tracking_uri=tracking_uri)


def _type_is(name: str) -> More:
    def more(outcome: Outcome, ctx: Context) -> None:
        assert outcome.report is not None and outcome.report["error"]["type"] == name

    return more


def _retried(outcome: Outcome, ctx: Context) -> None:
    assert ctx.proxy is not None
    assert sum("model-versions/get?" in path for path in ctx.proxy.seen) >= 3


def _bounded(seconds: float) -> More:
    def more(outcome: Outcome, ctx: Context) -> None:
        # A generous bound: "times out" must mean seconds, not the minutes of the clients' defaults.
        assert outcome.elapsed < seconds

    return more


def _first_side_kept(outcome: Outcome, ctx: Context) -> None:
    assert outcome.report is not None
    first = outcome.report["Model_Versions"]["tracking_server_1"]
    assert (first["name"], first["version"]) == (ctx.model.name, ctx.model.version)
    assert outcome.report["Model_Versions"]["tracking_server_2"] is None


def _run_with_model(workspace: WorkspaceDouble) -> str:
    """A run in the workspace double with a small model under `model/`; returns the run id."""
    run_id = workspace.create_run("42")
    workspace.put_files(
        workspace.run_path(run_id, "model"),
        {"MLmodel": yaml.safe_dump(DBX_MLMODEL).encode(), "model.pkl": b"pickle"},
    )
    return run_id


def _uc_alias(ctx: Context) -> Invocation:
    ctx.workspace_with_profiles()
    return ctx.check(
        "--model", WORKSPACE_UC_MODEL, "--version-or-stage", "@nope", tracking_uri="databricks://ws"
    )


def _seeded_workspace(ctx: Context, profile: str) -> Invocation:
    ctx.workspace_with_profiles()
    return ctx.check("--model", WORKSPACE_MODEL, "--version-or-stage", WORKSPACE_MODEL_VERSION,
                     tracking_uri=f"databricks://{profile}")  # fmt: skip


def _on_workspace(*args: str, profile: str = "ws", env: dict[str, str] | None = None) -> Build:
    """check against the workspace double through a profile of the sandbox's .databrickscfg."""

    def build(ctx: Context) -> Invocation:
        ctx.workspace_with_profiles()
        invocation = ctx.check(*args, tracking_uri=f"databricks://{profile}")
        invocation.env.update(env or {})
        return invocation

    return build


def _report_at(make: Callable[[Path], object], *, junit: bool = False) -> Build:
    """check with --report-file (or --junit-file) at a target that `make` creates in the sandbox."""

    def build(ctx: Context) -> Invocation:
        target = ctx.sandbox.work / "target"
        make(target)
        option = "--junit-file" if junit else "--report-file"
        invocation = ctx.check()
        if junit:
            invocation.args += [option, str(target)]
        else:
            index = invocation.args.index("--report-file")
            invocation.args[index + 1] = str(target)
        return invocation

    return build


def _unix_socket(path: Path) -> None:
    import socket

    server = socket.socket(socket.AF_UNIX)
    server.bind(str(path))
    server.close()  # the socket file stays


def _report_into(path: str, *, junit: bool = False) -> Build:
    """check with --report-file (or --junit-file) at a device path outside the sandbox."""

    def build(ctx: Context) -> Invocation:
        invocation = ctx.check()
        if junit:
            invocation.args += ["--junit-file", path]
        else:
            invocation.args[invocation.args.index("--report-file") + 1] = path
        return invocation

    return build


def _still_a(kind: Callable[[int], bool]) -> More:
    def more(outcome: Outcome, ctx: Context) -> None:
        assert kind((ctx.sandbox.work / "target").lstat().st_mode), "the target was replaced"

    return more


def _dev_null_untouched(outcome: Outcome, ctx: Context) -> None:
    assert stat.S_ISCHR(os.lstat("/dev/null").st_mode), "/dev/null was replaced by a regular file"


HOSTILE_ERROR = "x\n::add-mask::mvcforged ##[error]mvcforged \x1b[31m"


def _no_command_in_any_stream(outcome: Outcome, ctx: Context) -> None:
    assert RunnerLog().feed(outcome.stdout).processed == []
    assert RunnerLog().feed(outcome.stderr).processed == []
    assert "\x1b" not in outcome.stdout + outcome.stderr


def _remote_server_names_a_local_file(ctx: Context) -> Invocation:
    """The session server reached at 127.0.0.2 (not this machine's own name), serving a version whose
    source is a file: folder in the sandbox."""
    name = unique("matrix_local")
    client = models._client(ctx.server.url)
    secret_root = ctx.sandbox.root / "local-secret"
    experiment = client.create_experiment(name, artifact_location=secret_root.as_uri())
    version = models.register_run_artifacts(
        ctx.server.url, name, source_form="location", experiment_id=experiment
    )
    remote = ctx.stack.enter_context(PrefixProxy({"": ctx.server.url}, host="127.0.0.2"))
    return ctx.check("--model", name, "--version-or-stage", version.version, tracking_uri=remote.url)


SPACED_PASSWORD = "Kx7 Qm2  Vb9\tLp4-Canary"  # noqa: S105 - a canary


def _server_echoes_a_spaced_password(ctx: Context) -> Invocation:
    """A server whose error repeats the password, which holds a tab and two spaces in a row."""
    url = ctx.faulty(
        (r"model-versions/get\?", "status", {"status": 400, "message": f"wrong password {SPACED_PASSWORD}"})
    )
    invocation = ctx.check("--retries", "0", tracking_uri=url)
    invocation.env.update(MLFLOW_TRACKING_USERNAME="mvc-user", MLFLOW_TRACKING_PASSWORD=SPACED_PASSWORD)
    return invocation


def _no_spaced_password(outcome: Outcome, ctx: Context) -> None:
    shown = outcome.stdout + outcome.stderr + json.dumps(outcome.report)
    for form in (SPACED_PASSWORD, " ".join(SPACED_PASSWORD.split()), "Lp4-Canary"):
        assert form not in shown, form


def _symlinked_report_folder(ctx: Context) -> Invocation:
    """A folder of the workspace that is a symlink to a place outside it (committed in a pull request)."""
    elsewhere = ctx.sandbox.root / "elsewhere"
    elsewhere.mkdir()
    (ctx.sandbox.work / "reports").symlink_to(elsewhere, target_is_directory=True)
    return ctx.action(model=ctx.model.name, version_or_stage="1", tracking_uri=ctx.server.url,
                      report_file="reports/r.json", junit_file="reports/j.xml")  # fmt: skip


def _symlinked_report_folder_absolute(ctx: Context) -> Invocation:
    """The same, named as `${{ github.workspace }}/reports/...` (an absolute path into the workspace)."""
    invocation = _symlinked_report_folder(ctx)
    invocation.env["INPUT_REPORT-FILE"] = str(ctx.sandbox.work / "reports" / "r.json")
    invocation.env["INPUT_DOWNLOAD-DIR"] = str(ctx.sandbox.work / "reports" / "dl")
    return invocation


def _nothing_elsewhere(outcome: Outcome, ctx: Context) -> None:
    assert list((ctx.sandbox.root / "elsewhere").iterdir()) == []
    assert outcome.outputs["passed"] == "false" and outcome.outputs["report-path"] == ""


def _fifo_config(ctx: Context) -> None:
    os.mkfifo(ctx.sandbox.home / ".databrickscfg")


def _hung_named_profile(ctx: Context) -> Invocation:
    """A named profile whose workspace accepts connections and never answers."""
    silent = ctx.stack.enter_context(SilentServer())
    (ctx.sandbox.home / ".databrickscfg").write_text(
        f"[hang]\nhost = {silent.url}\ntoken = dapi22222222222222222222222222222222\n"
    )
    return ctx.check("--timeout", "2", "--retries", "0", tracking_uri="databricks://hang")


def _binary_config(ctx: Context) -> Invocation:
    (ctx.sandbox.work / "config.yaml").write_bytes(b"\xff\xfe\x00not text")
    return ctx.compare(None)


def _no_secret_in_output(secret: str) -> More:
    def more(outcome: Outcome, ctx: Context) -> None:
        assert secret not in outcome.stdout + outcome.stderr + json.dumps(outcome.report)

    return more


def _no_token_in_line(outcome: Outcome, ctx: Context) -> None:
    assert "dapi0000" not in outcome.stderr + json.dumps(outcome.report)


def _action_outputs(outcome: Outcome, ctx: Context) -> None:
    assert outcome.outputs["passed"] == "false"
    assert outcome.outputs["report-path"] == (str(ctx.sandbox.report) if outcome.report else "")


# The two files of the statements the manifest cases edit (the server is never asked for them).
STATEMENT_FILES = {"MLmodel": b"flavors: {}\n", "model.pkl": b"weights"}


def _statement() -> dict[str, Any]:
    """An OMS v1.0 statement of STATEMENT_FILES, as seal writes one (valid: see the harness test)."""
    digests = {name: hashlib.sha256(data).hexdigest() for name, data in sorted(STATEMENT_FILES.items())}
    root = hashlib.sha256(b"".join(bytes.fromhex(digest) for digest in digests.values())).hexdigest()
    return {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": "models:/m/1", "digest": {"sha256": root}}],
        "predicateType": "https://model_signing/signature/v1.0",
        "predicate": {
            "serialization": {"method": "files", "hash_type": "sha256", "allow_symlinks": False},
            "resources": [{"name": name, "algorithm": "sha256", "digest": digest}
                          for name, digest in digests.items()],
        },
    }  # fmt: skip


def _edited_manifest(edit: Callable[[dict[str, Any]], object]) -> Build:
    """verify against _statement() as `edit` changed it: refused before any server is asked."""

    def build(ctx: Context) -> Invocation:
        statement = _statement()
        edit(statement)
        manifest = ctx.sandbox.work / "model.oms.json"
        manifest.write_text(json.dumps(statement))
        return ctx.verify("--manifest-file", str(manifest), ends_before_server=True)

    return build


def _set_resource(index: int, key: str, value: str) -> Callable[[dict[str, Any]], object]:
    return lambda statement: statement["predicate"]["resources"][index].update({key: value})


def _manifest_text(text: str) -> Build:
    def build(ctx: Context) -> Invocation:
        (ctx.sandbox.work / "model.oms.json").write_text(text)
        return ctx.verify(
            "--manifest-file", str(ctx.sandbox.work / "model.oms.json"), ends_before_server=True
        )

    return build


def _public_key_is_the_private_key(ctx: Context) -> Invocation:
    private, _ = ctx.key_pair()
    (ctx.sandbox.work / "model.sig").write_text("{}")
    return ctx.verify("--signature", str(ctx.sandbox.work / "model.sig"), "--public-key", str(private),
                      ends_before_server=True)  # fmt: skip


def _private_key_not_shown(outcome: Outcome, ctx: Context) -> None:
    shown = outcome.stdout + outcome.stderr + json.dumps(outcome.report)
    body = (ctx.sandbox.work / "signing-key.pem").read_text().splitlines()[1:-1]
    assert body and not any(line in shown for line in body)


def _signature_not_a_bundle(ctx: Context) -> Invocation:
    _, public = ctx.key_pair()
    (ctx.sandbox.work / "model.sig").write_text('{"mediaType": "text/plain"}')
    return ctx.verify("--signature", str(ctx.sandbox.work / "model.sig"), "--public-key", str(public),
                      ends_before_server=True)  # fmt: skip


def _verify_report_over_its_manifest(ctx: Context) -> Invocation:
    """verify whose --report-file is its --manifest-file (a file of the work folder: it must stay)."""
    manifest = ctx.sandbox.work / "model.oms.json"
    manifest.write_text(json.dumps(_statement()))
    invocation = ctx.verify("--manifest-file", str(manifest), ends_before_server=True)
    invocation.args[invocation.args.index("--report-file") + 1] = str(manifest)
    return invocation


def _seal_outputs(manifest: Callable[[Sandbox], Path], report: Callable[[Sandbox], Path]) -> Build:
    """seal with its manifest and its report at these paths of the sandbox."""

    def build(ctx: Context) -> Invocation:
        invocation = ctx.seal("--manifest-file", str(manifest(ctx.sandbox)), ends_before_server=True)
        invocation.args[invocation.args.index("--report-file") + 1] = str(report(ctx.sandbox))
        return invocation

    return build


def _no_seal_tag(outcome: Outcome, ctx: Context) -> None:
    from mlflow_version_check.oms import SEAL_TAG

    version = models._client(ctx.server.url).get_model_version(ctx.model.name, ctx.model.version)
    assert SEAL_TAG not in version.tags


def _edited_shards(edit: Callable[[dict[str, Any], dict[str, Any]], object]) -> Build:
    """audit merge of shards 1/2 and 2/2, edited by edit(holder, other): holder is the shard report
    that lists the session model's one version, other the shard report that lists none."""

    def build(ctx: Context) -> Invocation:
        paths = ctx.shard_reports("1/2", "2/2")
        reports = [json.loads(path.read_text()) for path in paths]
        holder = 0 if reports[0]["Audit"]["versions"] else 1
        edit(reports[holder], reports[1 - holder])
        for path, report in zip(paths, reports, strict=True):
            path.write_text(json.dumps(report))
        return ctx.audit_merge(*paths)

    return build


def _failure_marked_passed(holder: dict[str, Any], other: dict[str, Any]) -> None:
    """The shard's version failed; its verdict was edited to passed."""
    holder["Audit"]["versions"][0]["status"] = "failed"
    holder["Audit"]["summary"].update(passed=0, failed=1)


def _version_moved_to_the_other_shard(holder: dict[str, Any], other: dict[str, Any]) -> None:
    """The version and its counts moved to the other shard report, each report consistent."""
    holder["Audit"], other["Audit"] = (
        {**holder["Audit"], "versions": [], "summary": other["Audit"]["summary"]},
        {**other["Audit"], "versions": holder["Audit"]["versions"], "summary": holder["Audit"]["summary"]},
    )


def _shard_given_twice(ctx: Context) -> Invocation:
    first, second = ctx.shard_reports("1/2", "2/2")
    again = first.with_name("shard-1-of-2-again.json")
    shutil.copyfile(first, again)
    return ctx.audit_merge(first, again, second)


def _merge_over_a_shard(ctx: Context) -> Invocation:
    """audit merge whose --report-file is one of the shard reports it reads (which must stay)."""
    first, second = ctx.shard_reports("1/2", "2/2")
    invocation = ctx.audit_merge(first, second)
    invocation.args[invocation.args.index("--report-file") + 1] = str(first)
    return invocation


def _audit_in_a_gitlab_parallel_job(*, index: str, total: str) -> Build:
    """audit --shard auto where GitLab's parallel: set CI_NODE_INDEX and CI_NODE_TOTAL."""

    def build(ctx: Context) -> Invocation:
        invocation = ctx.audit("--shard", "auto", ends_before_server=True)
        invocation.env.update(CI_NODE_INDEX=index, CI_NODE_TOTAL=total)
        return invocation

    return build


def _merge_not_json(ctx: Context) -> Invocation:
    (ctx.sandbox.work / "shard.json").write_text("not a report\n")
    return ctx.audit_merge(ctx.sandbox.work / "shard.json")


CLI_OPTIONS = [
    Case("missing-model-option", 2, "Missing option '--model'", False,
         lambda c: c.bare_check("--version-or-stage", "1", "--tracking-uri", c.server.url)),
    Case("missing-version-option", 2, "Missing option '--version-or-stage'", False,
         lambda c: c.bare_check("--model", "m", "--tracking-uri", c.server.url)),
    Case("retries-not-a-number", 2, "'--retries'", False, lambda c: c.check("--retries", "x")),
    Case("timeout-not-a-number", 2, "'--timeout'", False, lambda c: c.check("--timeout", "abc")),
    Case("timeout-negative", 2, "--timeout", False, lambda c: c.check("--timeout", "-1")),
    Case("unknown-option", 2, "No such option: --bogus", False, lambda c: c.check("--bogus")),
    Case("unknown-command", 2, "No such command 'promote'", False,
         lambda c: Invocation("mlflow-version-check", ["promote", "--model", "m"])),
    Case("blank-model-name", 2, "model name is empty", True, lambda c: c.check("--model", "  ")),
    Case("bare-at-sign", 2, "names no alias", True, lambda c: c.check("--version-or-stage", "@")),
    Case("empty-version", 2, "version or stage is empty", True, lambda c: c.check("--version-or-stage", "")),
    Case("no-tracking-server", 2, "MLFLOW_TRACKING_URI", True,
         lambda c: c.bare_check("--model", "m", "--version-or-stage", "1")),
    Case("tracking-uri-without-scheme", 2, "'localhost:5000' is not a tracking URI", True,
         lambda c: c.check(tracking_uri="localhost:5000")),
    Case("registry-uri-unknown-scheme", 2, "'ftp://example.invalid' is not a tracking URI", True,
         lambda c: c.check("--registry-uri", "ftp://example.invalid")),
    Case("tracking-uri-from-environment-empty", 2, "MLFLOW_TRACKING_URI", True,
         lambda c: c.bare_check("--model", "m", "--version-or-stage", "1", env={"MLFLOW_TRACKING_URI": " "})),
    Case("report-file-is-a-directory", 2, "is a directory", False,
         lambda c: Invocation("check-model-version", ["--model", "m", "--version-or-stage", "1",
                              "--tracking-uri", c.server.url, "--report-file", str(c.sandbox.work)])),
    Case("report-path-under-a-file", 2, "cannot be written", False,
         lambda c: Invocation("check-model-version", ["--model", "m", "--version-or-stage", "1",
                              "--tracking-uri", c.server.url,
                              "--report-file", str(c.sandbox.work / "keep.txt" / "report.json")])),
    Case("report-file-is-dev-null", 2, "is a character device", False, _report_into("/dev/null"),
         _dev_null_untouched),
    Case("junit-file-is-dev-null", 2, "is a character device", False, _report_into("/dev/null", junit=True),
         _dev_null_untouched),
    Case("report-file-is-dev-stdout", 2, "is a symlink", False, _report_into("/dev/stdout")),
    Case("report-file-is-a-fifo", 2, "is a FIFO", False, _report_at(os.mkfifo), _still_a(stat.S_ISFIFO)),
    Case("junit-file-is-a-socket", 2, "is a socket", False, _report_at(_unix_socket, junit=True),
         _still_a(stat.S_ISSOCK)),
    Case("report-file-is-a-symlink", 2, "is a symlink", False,
         _report_at(lambda target: target.symlink_to(target.parent / "keep.txt")), _still_a(stat.S_ISLNK)),
    Case("download-dir-is-a-file", 2, "is a file", True,
         lambda c: c.check("--download-dir", str(c.sandbox.work / "keep.txt"), downloads=False)),
    Case("native-model-empty", 2, "--native-model is empty", True, lambda c: c.check("--native-model", "")),
    Case("native-model-not-in-the-model", 2, "nope.pkl", True,
         lambda c: c.check("--native-model", "nope.pkl")),
    Case("seal-missing-model-option", 2, "Missing option '--model'", False,
         lambda c: Invocation("mlflow-version-check", ["seal", "--version-or-stage", "1", "--tracking-uri",
                              NEVER_ASKED, "--manifest-file", str(c.sandbox.work / "m.json"),
                              "--report-file", str(c.sandbox.report)])),
    Case("seal-manifest-is-the-report", 2, "--report-file and --manifest-file name the same path", False,
         _seal_outputs(lambda s: s.report, lambda s: s.report)),
    Case("seal-manifest-copy-of-mlmodel-is-the-report", 2,
         "--report-file and the MLmodel copy of --manifest-file name the same path", False,
         _seal_outputs(lambda s: s.work / "m.json", lambda s: s.work / "m.json.MLmodel")),
    Case("seal-manifest-is-the-download-dir", 2,
         "--manifest-file and --download-dir name the same path, or the downloads would lie inside", False,
         lambda c: c.seal("--manifest-file", str(c.sandbox.downloads), ends_before_server=True)),
    Case("seal-checksums-file-is-the-manifest", 2, "--manifest-file and --checksums-file name the same path",
         False, lambda c: c.seal("--manifest-file", str(c.sandbox.work / "m.json"), "--checksums-file",
                                 str(c.sandbox.work / "m.json"), ends_before_server=True)),
    Case("verify-without-reference", 2, "verify needs exactly one reference, got none", True,
         lambda c: c.verify(ends_before_server=True)),
    Case("verify-with-two-references", 2, "got --expect-digest and --recorded-tag", True,
         lambda c: c.verify("--expect-digest", ZERO_DIGEST, "--recorded-tag", ends_before_server=True)),
    Case("verify-signature-without-public-key", 2, "go together; --public-key is missing", True,
         lambda c: c.verify("--signature", str(c.sandbox.work / "model.sig"), ends_before_server=True)),
    Case("verify-public-key-alone", 2, "go together; --signature is missing", True,
         lambda c: c.verify("--public-key", str(c.sandbox.work / "key.pub"), ends_before_server=True)),
    Case("verify-public-key-without-signature", 2, "go together; --signature is missing", True,
         lambda c: c.verify("--expect-digest", ZERO_DIGEST, "--public-key", str(c.sandbox.work / "key.pub"),
                            ends_before_server=True)),
    Case("verify-expect-digest-not-sha256-hex", 2, "'SHA256:AB' is not 'sha256:' followed by 64 lowercase",
         True, lambda c: c.verify("--expect-digest", "SHA256:AB", ends_before_server=True)),
    Case("verify-report-is-the-manifest", 2, "--report-file is --manifest-file", False,
         _verify_report_over_its_manifest),
    Case("audit-shard-zero", 2, "--shard '0/2' is not I/N with 1 <= I <= N", True,
         lambda c: c.audit("--shard", "0/2", ends_before_server=True)),
    Case("audit-shard-past-the-last", 2, "--shard '3/2' is not I/N", True,
         lambda c: c.audit("--shard", "3/2", ends_before_server=True)),
    Case("audit-shard-not-numbers", 2, "--shard 'x/y' is not I/N", True,
         lambda c: c.audit("--shard", "x/y", ends_before_server=True)),
    Case("audit-shard-auto-index-past-the-total", 2,
         "--shard '3/2' (auto: CI_NODE_INDEX='3', CI_NODE_TOTAL='2') is not I/N", True,
         _audit_in_a_gitlab_parallel_job(index="3", total="2")),
    Case("audit-jobs-zero", 2, "Invalid value for '--jobs'", False,
         lambda c: c.audit("--jobs", "0", ends_before_server=True)),
    Case("audit-versions-unknown", 2, "--versions 'some' is not one of all, aliased, latest", True,
         lambda c: c.audit("--versions", "some", ends_before_server=True)),
    Case("audit-model-and-filter", 2, "--model and --filter both select models", True,
         lambda c: c.audit("--model", "m", "--filter", "name = 'm'", ends_before_server=True)),
    Case("audit-shard-with-thousands-of-digits", 2, "--shard '1/99999999999999999999999999999999999...' "
         "is not I/N", True, lambda c: c.audit("--shard", "1/" + "9" * 5000, ends_before_server=True)),
    Case("audit-shard-in-arabic-indic-digits", 2, "is not I/N", True,
         lambda c: c.audit("--shard", "\u0661/\u0662", ends_before_server=True)),
    Case("audit-model-name-empty", 2, "a --model name is empty", True,
         lambda c: c.audit("--model", " ", ends_before_server=True)),
    Case("seal-manifest-file-empty", 2, "--manifest-file is empty", True,
         lambda c: c.seal("--manifest-file", "", ends_before_server=True)),
    Case("seal-manifest-file-blank", 2, "--manifest-file is empty", True,
         lambda c: c.seal("--manifest-file", "  ", ends_before_server=True)),
    Case("verify-manifest-file-empty", 2, "--manifest-file is empty", True,
         lambda c: c.verify("--manifest-file", "", ends_before_server=True)),
    Case("check-download-dir-empty", 2, "--download-dir is empty", True,
         lambda c: c.bare_check("--model", "m", "--version-or-stage", "1", "--tracking-uri", NEVER_ASKED,
                                "--download-dir", "")),
]  # fmt: skip

CONFIG_FILES = [
    Case("config-unparseable-yaml", 2, "line 1", True, lambda c: c.compare("tracking_server_1: [unclosed\n")),
    Case("config-empty-file", 2, "is empty", True, lambda c: c.compare("")),
    Case("config-not-utf8", 2, "UTF-8", True, _binary_config),
    Case("config-not-a-mapping", 2, "top level: must be a mapping", True, lambda c: c.compare("- a\n- b\n")),
    Case("config-missing-server", 2, "tracking_server_2: is missing", True,
         lambda c: c.compare(yaml.safe_dump({"tracking_server_1": GOOD_SIDE}))),
    Case("config-unknown-server-key", 2, "tracking_server_3: unknown key", True,
         lambda c: c.compare(_config(GOOD_SIDE, GOOD_SIDE, tracking_server_3=GOOD_SIDE))),
    Case("config-typo-key", 2, "tracking_server_2.modle: unknown key (did you mean 'model'?)", True,
         lambda c: c.compare(_config(GOOD_SIDE, {**GOOD_SIDE, "modle": "x"}))),
    Case("config-missing-key", 2, "tracking_server_1.version_or_stage: is missing", True,
         lambda c: c.compare(_config({"host": "http://x:1", "model": "m"}, GOOD_SIDE))),
    Case("config-list-for-text", 2, "tracking_server_1.model: must be a text value, not a list", True,
         lambda c: c.compare(_config({**GOOD_SIDE, "model": ["a"]}, GOOD_SIDE))),
    Case("config-bool-version", 2, "tracking_server_2.version_or_stage: must be a text value, not bool", True,
         lambda c: c.compare(_config(GOOD_SIDE, {**GOOD_SIDE, "version_or_stage": True}))),
    Case("config-empty-value", 2, "tracking_server_1.model: is empty", True,
         lambda c: c.compare(_config({**GOOD_SIDE, "model": "  "}, GOOD_SIDE))),
    Case("config-host-without-scheme", 2, "tracking_server_1.host: 'localhost:5000' is not", True,
         lambda c: c.compare(_config({**GOOD_SIDE, "host": "localhost:5000"}, GOOD_SIDE))),
    Case("config-server-not-a-mapping", 2, "tracking_server_1: must be a mapping", True,
         lambda c: c.compare(_config("http://x", GOOD_SIDE))),
    Case("config-empty-optional", 2, "tracking_server_2.native_model: is empty", True,
         lambda c: c.compare(_config(GOOD_SIDE, {**GOOD_SIDE, "native_model": ""}))),
    Case("config-file-missing", 2, "no such file", True,
         lambda c: Invocation("compare-model-versions", ["--config-file", str(c.sandbox.work / "nope.yaml"),
                                                         "--report-file", str(c.sandbox.report)])),
    Case("config-file-is-a-directory", 2, "is a directory", True,
         lambda c: Invocation("compare-model-versions", ["--config-file", str(c.sandbox.work),
                                                         "--report-file", str(c.sandbox.report)])),
    Case("config-empty-standard-input", 2, "is empty", True, lambda c: c.compare(None, stdin="")),
]  # fmt: skip

# The files seal's, verify's and audit merge's references are read from: manifests, keys, signature
# bundles, shard reports.
REFERENCE_FILES = [
    Case("verify-manifest-missing", 2, "cannot read the manifest file", True,
         lambda c: c.verify("--manifest-file", str(c.sandbox.work / "nope.json"), ends_before_server=True)),
    Case("verify-manifest-is-a-directory", 2, "is not a regular file", True,
         lambda c: c.verify("--manifest-file", str(c.sandbox.work), ends_before_server=True)),
    Case("verify-manifest-not-json", 2, "is not a valid OMS v1.0 statement: it is not JSON", True,
         _manifest_text("{ not json")),
    Case("verify-manifest-digest-not-hex", 2, "predicate.resources[1].digest is 'xyz', not 64 lowercase hex",
         True, _edited_manifest(_set_resource(1, "digest", "xyz"))),
    Case("verify-manifest-root-does-not-match", 2, "but the resources hash to", True,
         _edited_manifest(_set_resource(1, "digest", "0" * 64))),
    Case("verify-manifest-names-a-parent-folder", 2, "'../model.pkl' is not a safe relative POSIX path", True,
         _edited_manifest(_set_resource(1, "name", "../model.pkl"))),
    Case("verify-public-key-is-a-private-key", 2, "is not a PEM public key", True,
         _public_key_is_the_private_key, _private_key_not_shown),
    Case("verify-signature-not-a-key-bundle", 2, "is not an OMS signature made with a key", True,
         _signature_not_a_bundle),
    Case("audit-merge-no-reports", 2, "Missing argument 'reports'", False, lambda c: c.audit_merge()),
    Case("audit-merge-report-not-json", 2, "cannot read the shard report", True, _merge_not_json),
    Case("audit-merge-shards-of-different-audits", 2, "the reports are shards of different audits", True,
         lambda c: c.audit_merge(*c.shard_reports("1/2", "1/3"))),
    Case("audit-merge-shard-given-twice", 2, "shard 1/2 is given twice", True, _shard_given_twice),
    Case("audit-merge-shard-missing", 2, "1 of 2 shards missing (2/2): only 1/2 given", True,
         lambda c: c.audit_merge(*c.shard_reports("1/2"))),
    Case("audit-merge-shard-verdict-edited-to-passed", 2, "says status 'passed', but its versions make it "
         "'failed'", True, _edited_shards(_failure_marked_passed)),
    Case("audit-merge-version-in-another-shard", 2, "which belongs to shard", True,
         _edited_shards(_version_moved_to_the_other_shard)),
    Case("audit-merge-shard-with-thousands-of-digits", 2, "names its shard '1/999999999", True,
         _edited_shards(lambda holder, other: holder["Audit"].update(shard="1/" + "9" * 5000))),
    Case("audit-merge-report-is-a-shard", 2, "--report-file is a REPORT argument", False,
         _merge_over_a_shard),
]  # fmt: skip

ACTION_INPUTS = [
    Case("action-unknown-command", 2, "input command is 'bogus'", True,
         lambda c: c.action(command="bogus"), _action_outputs),
    Case("action-check-without-version", 2, "needs the model and version-or-stage", True,
         lambda c: c.action(model="m"), _action_outputs),
    Case("action-compare-without-config", 2, "needs the config-file input", True,
         lambda c: c.action(command="compare"), _action_outputs),
    Case("action-strict-not-a-boolean", 2, "input strict is 'maybe'", True,
         lambda c: c.action(model="m", version_or_stage="1", strict="maybe"), _action_outputs),
    Case("action-fail-on-difference-not-a-boolean", 2, "input fail-on-difference is 'sometimes'", True,
         lambda c: c.action(model="m", version_or_stage="1", fail_on_difference="sometimes"),
         _action_outputs),
    Case("action-ambient-databricks-token", 2, "DATABRICKS_TOKEN set in the environment", True,
         lambda c: c.action({"DATABRICKS_TOKEN": "ambient-canary"}, model="m", version_or_stage="1",
                            tracking_uri="databricks://prod",
                            databricks_config="[prod]\nhost = https://x.invalid\ntoken = abc\n"),
         _action_outputs),
    Case("action-config-file-missing", 2, "no such file", True,
         lambda c: c.action(command="compare", config_file="missing.yaml"), _action_outputs),
    Case("action-report-folder-is-a-symlink-out-of-the-workspace", 2, "leads outside the workspace", False,
         _symlinked_report_folder, _nothing_elsewhere),
    Case("action-absolute-report-folder-is-a-symlink-out-of-the-workspace", 2, "leads outside the workspace",
         False, _symlinked_report_folder_absolute, _nothing_elsewhere),
    Case("action-report-file-is-a-directory", 2, "is a directory", False,
         lambda c: c.action(model="m", version_or_stage="1", tracking_uri=c.server.url,
                            report_file=str(c.sandbox.work)), _action_outputs),
    Case("action-verify-without-reference", 2, "command verify needs a reference to verify against", True,
         lambda c: c.action(command="verify", model="m", version_or_stage="1", tracking_uri=NEVER_ASKED),
         _action_outputs),
    Case("action-verify-with-two-references", 2, "command verify got 2 references (expect-digest, "
         "recorded-tag)", True,
         lambda c: c.action(command="verify", model="m", version_or_stage="1", tracking_uri=NEVER_ASKED,
                            expect_digest=ZERO_DIGEST, recorded_tag="true"), _action_outputs),
    Case("action-record-tag-on-check", 2, "input record-tag does not apply to command check", True,
         lambda c: c.action(model="m", version_or_stage="1", tracking_uri=NEVER_ASKED, record_tag="true"),
         _action_outputs),
    Case("action-audit-given-model-not-models", 2, "input model does not apply to command audit", True,
         lambda c: c.action(command="audit", model="m", tracking_uri=NEVER_ASKED, download_dir=""),
         _action_outputs),
    Case("action-audit-merge-without-reports", 2, "command audit-merge needs the reports input", True,
         lambda c: c.action(command="audit-merge", download_dir=""), _action_outputs),
    Case("action-audit-merge-reports-match-nothing", 2, "input reports 'shards/*.json' matches no file", True,
         lambda c: c.action(command="audit-merge", reports="shards/*.json", download_dir=""),
         _action_outputs),
]  # fmt: skip

SERVER_ANSWERS = [
    Case("model-not-found", 3, "not found", True, lambda c: c.check("--model", "no_such_model")),
    Case("version-not-found", 3, "version 99", True, lambda c: c.check("--version-or-stage", "99")),
    Case("alias-not-found", 3, "no alias 'nosuchalias'", True,
         lambda c: c.check("--version-or-stage", "@nosuchalias")),
    Case("alias-that-looks-like-a-number", 3, "no alias '1'", True,
         lambda c: c.check("--version-or-stage", "@1")),  # version 1 exists; @1 is never it
    Case("stage-with-no-version", 3, "no version in stage Archived", True,
         lambda c: c.check("--version-or-stage", "archived")),
    Case("artifacts-deleted", 3, "no files at", True, _deleted_artifacts, _keeps_resolved_version),
    Case("server-refuses-connections", 3, "no answer", True,
         lambda c: c.check(tracking_uri=f"http://127.0.0.1:{free_port()}"), _type_is("ServerUnreachable"),
         waits=True),
    Case("500-then-200-is-retried", 0, "", False,
         lambda c: c.check(tracking_uri=c.faulty((r"model-versions/get\?", "status",
                                                  {"status": 500, "times": 2}))), _retried, waits=True),
    Case("server-always-500", 3, "failed", True, _api_answers(500)),
    Case("server-always-503", 3, "failed", True, _api_answers(503)),
    Case("server-hangs", 3, "timed out", True,
         lambda c: c.check("--timeout", "2", "--retries", "0",
                           tracking_uri=c.faulty((r"model-versions/get\?", "hang", {}))), _bounded(18),
         waits=True),
    Case("connection-dropped-mid-download", 3, "model.pkl", True,
         lambda c: c.check("--retries", "0",
                           tracking_uri=c.faulty((ARTIFACT_FILES + "model.pkl", "cut", {}))),
         _type_is("ArtifactDownloadError")),
    Case("401-json", 3, "refused the credentials (authentication failed)", True, _api_answers(401)),
    Case("401-plain-text", 3, "refused the credentials (authentication failed)", True,
         _api_answers(401, "text-status")),
    Case("403", 3, "refused the permission (authentication failed)", True, _api_answers(403)),
    Case("listing-with-dot-dot", 3, "unsafe path", True, _hostile_listing(lambda c: "../x.txt"),
         _type_is("UnsafeArtifactPath")),
    Case("listing-with-absolute-path", 3, "unsafe path", True,
         _hostile_listing(lambda c: f"{c.sandbox.root}/abs.txt"), _type_is("UnsafeArtifactPath")),
    Case("listing-with-nested-dot-dot", 3, "unsafe path", True,
         _hostile_listing(lambda c: "a/../../../keep.txt"), _type_is("UnsafeArtifactPath")),
    Case("empty-model", 3, "no files at", True,
         lambda c: c.check(tracking_uri=c.faulty((LISTING, "rewrite", {"rewrite": lambda listing: {}})))),
    Case("download-dir-on-a-full-file-system", 3, "no space left", True, _full_filesystem,
         _type_is("ArtifactDownloadError")),
    Case("report-on-a-full-file-system", 2, "writing --report-file", False, _full_report_filesystem),
    Case("symlinked-file-in-a-local-store", 3, "is a symlink", True, _symlinked_file,
         _type_is("UnsafeArtifactPath")),
    Case("symlink-loop-in-a-local-store", 3, "is a symlink", True, _symlink_loop,
         _type_is("UnsafeArtifactPath")),
    Case("server-error-body-forges-commands", 3, "mvcforged", True,
         lambda c: c.check("--retries", "0", tracking_uri=c.faulty(
             (r"model-versions/get\?", "status", {"status": 400, "message": HOSTILE_ERROR}))),
         _no_command_in_any_stream),
    Case("remote-server-names-a-local-file", 3, "names a path on this machine", True,
         _remote_server_names_a_local_file, _type_is("UnsafeArtifactPath")),
    Case("server-echoes-a-password-with-whitespace", 3, "wrong password", True,
         _server_echoes_a_spaced_password, _no_spaced_password),
    Case("fifo-databricks-config-does-not-block-a-plain-check", 0, "", False,
         lambda c: (_fifo_config(c), c.check())[1], _bounded(120)),
    Case("compare-second-server-refuses", 3, "tracking_server_2: ", True,
         lambda c: c.compare(_config(_side(c),
                                     {"host": f"http://127.0.0.1:{free_port()}", "model": "m",
                                      "version_or_stage": "1"})), _first_side_kept, waits=True),
    Case("compare-version-missing-on-one-side", 3, "version 77", True,
         lambda c: c.compare(_config({**_side(c), "version_or_stage": "77"}, _side(c)))),
    Case("seal-record-tag-on-an-empty-stage", 3, "no version in stage Production", True,
         lambda c: c.seal("--record-tag", "--version-or-stage", "production"), _no_seal_tag),
    Case("verify-recorded-tag-never-recorded", 2, "has no tag mlflow_version_check.seal.root_digest", True,
         lambda c: c.verify("--recorded-tag")),
    Case("audit-server-refuses-connections", 3, "no answer", True,
         lambda c: c.audit(tracking_uri=f"http://127.0.0.1:{free_port()}"), _type_is("ServerUnreachable"),
         waits=True),
    Case("audit-model-not-found", 3, "registered model 'no_such_model' not found", True,
         lambda c: c.audit("--model", "no_such_model"), _type_is("ModelNotFound")),
    Case("audit-filter-refused-by-the-registry", 2, "the registry refused the filter 'name LIKE'", True,
         lambda c: c.audit("--filter", "name LIKE")),
]  # fmt: skip

DATABRICKS = [
    Case("stage-on-unity-catalog", 3, "cannot be used with Unity Catalog", True,
         _on_workspace("--model", "main.default.wine", "--version-or-stage", "Production")),
    Case("unity-catalog-unknown-alias", 3, "no alias 'nope'", True, _uc_alias),
    Case("databricks-profile-missing", 2, "profile 'nosuch'", True, _on_workspace(profile="nosuch")),
    Case("databricks-token-refused", 3, "authentication failed", True,
         lambda c: _seeded_workspace(c, "wrong"), _no_token_in_line),
    Case("databricks-oauth-secret-refused", 3, "authentication failed: invalid_client", True,
         lambda c: _seeded_workspace(c, "wrong-oauth"), _no_secret_in_output("wrong-canary")),
    Case("databricks-host-refuses-connections", 3, "no answer from the Databricks workspace", True,
         lambda c: _seeded_workspace(c, "dead")),
    Case("databricks-named-profile-hangs", 3, "no answer", True, _hung_named_profile, _bounded(60),
         waits=True),
    Case("databricks-config-is-a-fifo", 2, "not a readable regular file", True,
         lambda c: (_fifo_config(c), c.check(tracking_uri="databricks://ws"))[1]),
    Case("databricks-ambient-token", 2, "DATABRICKS_TOKEN set in the environment would silently", True,
         _on_workspace(env={"DATABRICKS_TOKEN": "ambient-canary"})),
]  # fmt: skip

CASES = [*CLI_OPTIONS, *CONFIG_FILES, *REFERENCE_FILES, *ACTION_INPUTS, *SERVER_ANSWERS, *DATABRICKS]


def test_the_matrix_is_large_and_distinct() -> None:
    """Issue 6 asks for at least 40 distinct cases across options, configs, inputs and server answers."""
    assert len(CASES) >= 40
    assert len({case.id for case in CASES}) == len(CASES)
    groups = (CLI_OPTIONS, CONFIG_FILES, REFERENCE_FILES, ACTION_INPUTS, SERVER_ANSWERS, DATABRICKS)
    assert all(group for group in groups)


def test_the_manifest_cases_edit_a_valid_statement() -> None:
    """The statement the manifest cases edit is one verify accepts: each case's edit is its one fault."""
    from mlflow_version_check.oms import read_statement

    reference = read_statement(json.dumps(_statement()))
    assert reference.files is not None and sorted(reference.files) == sorted(STATEMENT_FILES)


def test_the_sandbox_snapshot_sees_every_kind_of_change(tmp_path: Path) -> None:
    """The harness itself: a write, a deletion, a change of bytes or mode, or a new link outside the
    allowed paths all show; writes inside the allowed paths do not."""
    sandbox = Sandbox(tmp_path / "s")
    (sandbox.work / "model.bin").write_bytes(b"abc")
    baseline = snapshot(sandbox.root, sandbox.allowed())
    changes: list[Callable[[], object]] = [
        lambda: (sandbox.work / "new.txt").write_text("x"),
        (sandbox.home / "keep.txt").unlink,
        lambda: (sandbox.work / "model.bin").write_bytes(b"abd"),
        lambda: (sandbox.work / "model.bin").chmod(0o600),
        (sandbox.tmp / "left-over").mkdir,
        lambda: (sandbox.root / "link").symlink_to("/etc"),
    ]
    for change in changes:
        shutil.rmtree(sandbox.root)
        sandbox = Sandbox(tmp_path / "s")
        (sandbox.work / "model.bin").write_bytes(b"abc")
        (sandbox.work / "model.bin").chmod(0o644)
        assert snapshot(sandbox.root, sandbox.allowed()) == baseline
        change()
        assert snapshot(sandbox.root, sandbox.allowed()) != baseline
    (sandbox.downloads / "run").mkdir(parents=True)
    (sandbox.downloads / "run" / "f").write_text("allowed")
    sandbox.report.write_text("{}")
    (sandbox.github / "output").write_text("passed=false")
    after = snapshot(sandbox.root, sandbox.allowed())
    assert "downloads" not in after and "reports/report.json" not in after


# ---------------------------------------------------------------------------------------------
# Fixtures and the one test.

# How many programs run at once: one per core, at most 8 (one MLflow server answers them all). They
# are mostly CPU-bound (Python and MLflow starting); on 2 cores, 3 or 4 at once were no faster than
# 2, only more contended. The cases that wait on purpose have as many threads again, of their own:
# waiting, a run uses no core, and holds up no other run. Not more: a case that proves a time bound
# must not spend it starting among too many others.
CONCURRENT_RUNS = min(os.cpu_count() or 2, 8)


def _start_order(cases: list[Case]) -> list[Case]:
    """The order in which the cases are built and their runs started (the longest first, so that
    the last ones to end are short): the config-file and action-input cases, most of which need no
    server, while the session's server starts; the cases that wait on purpose; the server answers
    and Databricks cases (each starts a worker that imports MLflow: a second or two of CPU); the
    reference-file cases, whose shard reports come from audits run on this thread while the runs
    started before keep the pool busy; the CLI option cases, most of which end at option parsing."""
    waits = [case for case in CASES if case.waits]
    groups = [[*CONFIG_FILES, *ACTION_INPUTS], waits, [*SERVER_ANSWERS, *DATABRICKS], REFERENCE_FILES,
              CLI_OPTIONS]  # fmt: skip
    rank: dict[str, int] = {}
    for index, group in enumerate(groups):
        for case in group:
            rank.setdefault(case.id, index)  # a case that waits is in its first group
    return sorted(cases, key=lambda case: rank[case.id])


CASES_IN_START_ORDER = _start_order(CASES)


@pytest.fixture(scope="module")
def matrix_model(mlflow_server: MlflowServer) -> models.Registered:
    return models.log_sklearn(mlflow_server.url, unique("matrix"))


@pytest.fixture(scope="module")
def matrix_big_model(mlflow_server: MlflowServer) -> models.Registered:
    """Larger than the 64 KiB tmpfs of the full-file-system case."""
    return models.log_directory_flavor(
        mlflow_server.url, unique("matrix_big"), files={"w/big.bin": os.urandom(200_000)}
    )


@pytest.fixture(scope="module")
def matrix_shard_reports(
    mlflow_server: MlflowServer, matrix_model: models.Registered, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Path]:
    """The reports of shards 1/2, 2/2 and 1/3 of an audit of the matrix model, as the CLI writes
    them: the merge cases' inputs (their audits run at once, not one after another)."""
    folder = tmp_path_factory.mktemp("matrix_shards")
    reports = {shard: folder / f"shard-{shard.replace('/', '-of-')}.json" for shard in ("1/2", "2/2", "1/3")}
    env = {key: value for key, value in os.environ.items() if not key.startswith(("MLFLOW_", "CI_NODE_"))}
    program = str(BIN / "mlflow-version-check")
    target = ["--model", matrix_model.name, "--tracking-uri", mlflow_server.url]
    audits = [
        subprocess.Popen(
            [program, "audit", *target, "--shard", shard, "--report-file", str(path)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for shard, path in reports.items()
    ]
    for audit in audits:
        _, stderr = audit.communicate(timeout=300)
        assert audit.returncode == 0, stderr
    return reports


@pytest.fixture(scope="module")
def matrix_workspace() -> Iterator[WorkspaceDouble]:
    """The workspace double with WORKSPACE_MODEL and WORKSPACE_UC_MODEL, seeded before the first case
    runs: the double's handlers read its files without a lock, so nothing may add any while runs
    are under way."""
    with WorkspaceDouble(oauth_clients={"mvc-client": "the-right-secret"}) as workspace:
        version = workspace.register(WORKSPACE_MODEL, _run_with_model(workspace), stage="Production")
        assert version == WORKSPACE_MODEL_VERSION
        workspace.register_uc(WORKSPACE_UC_MODEL, _run_with_model(workspace), aliases=("champion",))
        yield workspace


@dataclass
class Started:
    """A case built in its sandbox, and its run under way (or the error its build raised)."""

    ctx: Context
    before: Snapshot = field(default_factory=dict)
    run: Future[tuple[Outcome, Snapshot]] | None = None
    build_error: BaseException | None = None

    def result(self) -> tuple[Snapshot, Outcome, Snapshot]:
        """The sandbox before the run, the outcome, the sandbox after; raises what the build or the
        run raised."""
        if self.build_error is not None:
            raise self.build_error
        assert self.run is not None
        outcome, after = self.run.result()
        return self.before, outcome, after


def _run_and_look(
    invocation: Invocation, sandbox: Sandbox, environ: Mapping[str, str]
) -> tuple[Outcome, Snapshot]:
    """The run, and the sandbox as the run left it."""
    outcome = run(invocation, sandbox, environ)
    return outcome, snapshot(sandbox.root, sandbox.allowed())


@pytest.fixture(scope="module")
def matrix_runs(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Started]]:
    """The selected cases, built one after another on this thread (the builds share the fixtures
    and MLflow's client), each run started on a thread pool as soon as its case is built, so that
    runs overlap. Each case's own test waits for its run and checks it; a build that fails fails
    only its own case's test."""
    selected = {
        item.callspec.params["case"].id
        for item in request.session.items
        if isinstance(item, pytest.Function)
        and item.parent is request.node
        and item.originalname == "test_bad_input"
    }
    ordered = [case for case in CASES_IN_START_ORDER if case.id in selected]
    started: dict[str, Started] = {}
    with contextlib.ExitStack() as stacks:
        working = ThreadPoolExecutor(max_workers=CONCURRENT_RUNS, thread_name_prefix="bad-input")
        waiting = ThreadPoolExecutor(max_workers=CONCURRENT_RUNS, thread_name_prefix="bad-input-waits")
        try:
            for case in ordered:
                sandbox = Sandbox(tmp_path_factory.mktemp(case.id[:30]) / "sandbox")
                ctx = Context(sandbox, request, stacks.enter_context(contextlib.ExitStack()))
                started[case.id] = Started(ctx)
                try:
                    invocation = case.build(ctx)
                except (Exception, pytest.skip.Exception, pytest.fail.Exception) as error:  # noqa: BLE001 - raised again by the case's own test
                    started[case.id].build_error = error
                    continue
                started[case.id].before = snapshot(sandbox.root, sandbox.allowed())
                pool = waiting if case.waits else working
                started[case.id].run = pool.submit(_run_and_look, invocation, sandbox, dict(os.environ))
            yield started
        finally:
            # Runs no test waited for (pytest -x stopped early): those not begun are dropped.
            for pool in (working, waiting):
                pool.shutdown(wait=True, cancel_futures=True)


# In the order the runs start, so that each test waits only for a run begun before the later ones,
# and stopping a case's doubles overlaps the runs still under way.
@pytest.mark.parametrize("case", CASES_IN_START_ORDER, ids=[case.id for case in CASES_IN_START_ORDER])
def test_bad_input(case: Case, matrix_runs: dict[str, Started]) -> None:
    """The case's run ends with its exit code, its one error line and its report, and leaves the
    sandbox and TMPDIR as they were."""
    started = matrix_runs[case.id]
    ctx, sandbox = started.ctx, started.ctx.sandbox
    with ctx.stack:
        before, outcome, after = started.result()

        detail = f"{case.id}: exit {outcome.exit_code} after {outcome.elapsed:.1f}s\n{outcome.stderr}"
        assert outcome.exit_code == case.exit_code, detail
        assert "Traceback" not in outcome.stdout + outcome.stderr, detail
        lines = outcome.error_lines
        if case.exit_code == 0:
            assert not any(line.startswith("error:") for line in lines), detail
            assert outcome.report is not None and outcome.report["status"] == "passed"
        else:
            assert len(lines) == 1, detail
            line = lines[0]
            assert line.startswith("error: ") and "Fix" in line and case.words in line, detail
            assert "{option:" not in line, f"an option placeholder left unnamed\n{detail}"
            if case.report:
                assert outcome.report is not None, f"{case.id}: no error report\n{detail}"
                assert outcome.report["status"] == "error"
                assert outcome.report["error"]["exit_code"] == case.exit_code
            else:
                assert not sandbox.report.exists(), f"{case.id}: a report where none could be written"
        changed = {key for key in before.keys() | after.keys() if before.get(key) != after.get(key)}
        assert not changed, f"{case.id}: changed outside the download and report paths: {sorted(changed)}"
        assert list(sandbox.report.parent.glob("*.tmp*")) == [], "no temporary report left behind"
        if case.more is not None:
            case.more(outcome, ctx)
