"""What the action's image holds (no installer, byte code for what runs import, a size budget) and
how its local base is made (scripts/ci/base-image.sh takes its Debian mirror from apt alone)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mvc_testing import models
from mvc_testing.models import unique
from mvc_testing.servers import MlflowServer
from tests.test_container import BASE_IMAGE, image, run_container

# The image fixture of tests.test_container (the action's image from the local base), shared here.
__all__ = ["image"]

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
BASE_IMAGE_SCRIPT = ROOT / "scripts" / "ci" / "base-image.sh"
# Issue 14: the layers above the base image at most 120 MB (docker's decimal megabytes).
BUDGET_ABOVE_BASE = 120_000_000


def _in_image(tag: str, entrypoint: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["docker", "run", "--rm", "--entrypoint", entrypoint, tag, *args],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


@pytest.mark.docker
def test_image_holds_no_installer_and_runs(image: str) -> None:
    """pip, setuptools and wheel are not in the image's venv (not importable, no metadata, no
    scripts), while the program and every library it imports load and its CLI answers."""
    probe = _in_image(
        image, "/opt/venv/bin/python", "-c",
        "import importlib.metadata as m, importlib.util as u, json, pathlib; "
        "names = ['pip', 'setuptools', 'wheel', 'pkg_resources', '_distutils_hack']; "
        "print(json.dumps({"
        "'modules': [n for n in names if u.find_spec(n)], "
        "'distributions': sorted(d.metadata['Name'].lower() for d in m.distributions()), "
        "'scripts': sorted(p.name for p in pathlib.Path('/opt/venv/bin').glob('pip*'))}))",
    )  # fmt: skip
    assert probe.returncode == 0, probe.stderr
    found = json.loads(probe.stdout)
    assert found["modules"] == [] and found["scripts"] == []
    assert not {"pip", "setuptools", "wheel"} & set(found["distributions"])
    wanted = {"mlflow-version-check", "mlflow-skinny", "model-signing", "pyopenssl"}
    assert wanted <= set(found["distributions"])
    imported = "import mlflow, model_signing, OpenSSL, typer, yaml, mlflow_version_check.cli"
    imports = _in_image(image, "/opt/venv/bin/python", "-c", imported)
    assert imports.returncode == 0, imports.stderr
    helped = _in_image(image, "mlflow-version-check", "--help")
    assert helped.returncode == 0, helped.stderr
    assert "check" in helped.stdout and "verify" in helped.stdout


@pytest.mark.docker
def test_image_layers_above_base_within_budget(image: str) -> None:
    """The layers the Dockerfile adds to the base weigh at most 120 MB (a byte count: the same pins on
    the same base give the same bytes; bench/container.py says what the bytes are)."""
    sizes = {}
    for tag in (image, BASE_IMAGE):
        inspected = subprocess.run(
            ["docker", "image", "inspect", "--format", "{{.Size}}", tag],
            capture_output=True, text=True, check=True, timeout=60,
        )  # fmt: skip
        sizes[tag] = int(inspected.stdout)
    above = sizes[image] - sizes[BASE_IMAGE]
    assert above <= BUDGET_ABOVE_BASE, (
        f"the image adds {above:,} bytes to {BASE_IMAGE}, over the budget of {BUDGET_ABOVE_BASE:,}: "
        "run bench/container.py for what they are"
    )


# A sitecustomize module the runs below load (PYTHONPATH reaches the workers too): it logs each
# Python process and each module it had to compile from source because no valid .pyc was there.
# It watches the import system only; the program runs unchanged.
COMPILE_PROBE = """
import importlib.machinery, os
_log = os.environ["MVC_COMPILED_LOG"]
with open(_log, "a") as _out:
    _out.write(f"process {os.getpid()}\\n")
_source_to_code = importlib.machinery.SourceFileLoader.source_to_code
def _logged(self, data, path, *, _optimize=-1):
    with open(_log, "a") as out:
        out.write(f"compiled {path}\\n")
    return _source_to_code(self, data, path, _optimize=_optimize)
importlib.machinery.SourceFileLoader.source_to_code = _logged
"""


@pytest.mark.docker
def test_real_runs_import_only_byte_code(image: str, mlflow_server: MlflowServer, tmp_path: Path) -> None:
    """The Dockerfile drops the .pyc of modules no run imports: check, seal and verify --signature
    against a loopback server, a check against a Databricks workspace double and --help find every
    module of /opt/venv they import compiled already (each worker too), so none pays for compiling."""
    from tests.databricks_double import WorkspaceDouble
    from tests.test_databricks import seed
    from tests.test_oms import run_model_signing, write_key_pair

    workspace = tmp_path / "workspace"
    probe = workspace / ".probe"
    probe.mkdir(parents=True)
    (probe / "sitecustomize.py").write_text(COMPILE_PROBE)
    probe_env = {"PYTHONPATH": "/github/workspace/.probe"}
    version = models.log_sklearn(mlflow_server.url, unique("bytecode"))
    store = models.artifact_directory(mlflow_server.artifacts, mlflow_server.url, version)
    private, public = write_key_pair(tmp_path / "keys")
    signed = run_model_signing(
        "sign", "key", store, "--private_key", private, "--signature", workspace / "model.sig", cwd=tmp_path
    )
    assert signed.returncode == 0, signed.stderr
    shutil.copy(public, workspace / "key.pub")
    served = {"model": version.name, "version-or-stage": "1", "tracking-uri": mlflow_server.url,
              "upload-artifact": "false"}  # fmt: skip
    logs = {}
    with WorkspaceDouble() as databricks_workspace:
        seed(databricks_workspace, "Wine", stage="Staging")
        runs = {
            "check": served,
            "seal": {**served, "command": "seal"},
            "verify --signature": {**served, "command": "verify", "signature-file": "model.sig",
                                   "public-key": "key.pub"},
            "databricks check": {"model": "Wine", "version-or-stage": "staging", "tracking-uri": "databricks",
                                 "databricks-host": databricks_workspace.url,
                                 "databricks-token": databricks_workspace.token, "upload-artifact": "false"},
        }  # fmt: skip
        for name, inputs in runs.items():
            log = probe / f"{name.replace(' ', '-')}.log"
            logged_to = {"MVC_COMPILED_LOG": f"/github/workspace/.probe/{log.name}"}
            code, output, _ = run_container(image, workspace, inputs, {**probe_env, **logged_to})
            assert code == 0, f"{name}: {output}"
            logs[name] = log.read_text().splitlines()
    helped = subprocess.run(
        ["docker", "run", "--rm", "-v", f"{probe}:/probe", "-e", "PYTHONPATH=/probe",
         "-e", "MVC_COMPILED_LOG=/probe/help.log", "--entrypoint", "mlflow-version-check", image, "--help"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert helped.returncode == 0, helped.stderr
    logs["--help"] = (probe / "help.log").read_text().splitlines()
    for name, lines in logs.items():
        processes = [line for line in lines if line.startswith("process ")]
        assert len(processes) >= (1 if name == "--help" else 2), f"{name}: the probe saw {processes}"
        compiled = [line.split(" ", 1)[1] for line in lines if line.startswith("compiled /opt/venv/")]
        assert compiled == [], (
            f"{name} compiled these from source (add their modules to the Dockerfile's byte code list): "
            f"{compiled}"
        )


# scripts/ci/base-image.sh: tests point apt at a temporary configuration through APT_CONFIG.


def _apt_config(tmp_path: Path, files: dict[str, str]) -> dict[str, str]:
    """An environment whose apt reads its sources only from tmp_path/etc (holding `files`)."""
    etc = tmp_path / "etc"
    (etc / "sources.list.d").mkdir(parents=True)
    (etc / "apt.conf.d").mkdir()
    for relative, text in files.items():
        (etc / relative).write_text(text)
    config = tmp_path / "apt.conf"
    config.write_text(f'Dir::Etc "{etc}";\n')
    return {**os.environ, "APT_CONFIG": str(config)}


def _run_script(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BASE_IMAGE_SCRIPT), *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )


needs_apt = pytest.mark.skipif(shutil.which("apt-config") is None, reason="no apt-config (Debian's apt)")


@needs_apt
def test_base_image_without_apt_source_fails_in_one_line(tmp_path: Path) -> None:
    """No Debian source in the apt configuration: one line (what, cause, fix) and exit 2, before any
    build starts: the image was not made and nothing but the line was printed."""
    missing_tag = f"mvc-base-missing:{unique('t').lower()}"
    env = {**_apt_config(tmp_path, {}), "BASE_IMAGE_TAG": missing_tag}
    completed = _run_script(env)
    assert completed.returncode == 2
    assert completed.stdout == ""
    (line,) = completed.stderr.splitlines()
    assert f"cannot build {missing_tag}: no enabled apt source for Debian 'bookworm main'" in line
    assert "Likely cause:" in line and "Fix: add the machine's Debian mirror" in line
    assert str(tmp_path / "etc" / "sources.list") in line, "the line names where it looked"
    if shutil.which("docker"):
        made = subprocess.run(["docker", "image", "inspect", missing_tag], capture_output=True, check=False)
        assert made.returncode != 0


DEB822_SOURCES = """\
Types: deb
URIs: https://deb.nodesource.com/node_20.x
Suites: nodistro
Components: main

Types: deb
URIs: http://security.mirror.test/debian-security
Suites: bookworm-security
Components: main

# turned off, so not used
Types: deb
URIs: http://disabled.mirror.test/debian
Suites: bookworm
Components: main
Enabled: no

types: deb-src deb
uris:
 http://archive.mirror.test/debian/
 http://second.mirror.test/debian
suites: bookworm bookworm-updates
components: contrib main
"""


@needs_apt
@pytest.mark.parametrize(
    ("files", "expected"),
    [
        pytest.param({"sources.list.d/debian.sources": DEB822_SOURCES}, "http://archive.mirror.test/debian",
                     id="deb822-skips-other-suites-and-disabled"),
        pytest.param(
            {"sources.list": "# deb http://old.mirror.test/debian bookworm main\n"
                             "deb-src http://src.mirror.test/debian bookworm main\n"
                             "deb [arch=amd64 signed-by=/k] http://one.mirror.test/debian bookworm main\n"
                             "deb http://two.mirror.test/debian bookworm main\n"},
            "http://one.mirror.test/debian", id="one-line-with-options",
        ),
        pytest.param(
            {"sources.list.d/a.list": "deb http://list.mirror.test/debian bookworm contrib\n",
             "sources.list.d/b.sources.disabled": DEB822_SOURCES,
             "sources.list.d/c.sources": DEB822_SOURCES.replace("archive.mirror.test", "parts.mirror.test")},
            "http://parts.mirror.test/debian", id="parts-in-apt-order-skipping-other-extensions",
        ),
        pytest.param(
            {"sources.list.d/a.sources": "".join(
                f"Types: deb\nURIs: http://{value.strip()}.mirror.test/debian\nSuites: bookworm\n"
                f"Components: main\nEnabled: {value}\n\n"
                for value in ("false", "Off", "0", " no ", "disable", "without"))
             + "Types: deb\nURIs: http://on.mirror.test/debian\nSuites: bookworm\nComponents: main\n"
             "Enabled: yes\n"},
            "http://on.mirror.test/debian", id="every-way-apt-spells-disabled",
        ),
    ],
)  # fmt: skip
def test_base_image_takes_mirror_from_apt_sources(
    tmp_path: Path, files: dict[str, str], expected: str
) -> None:
    """--print-mirror names the first enabled `deb` source for 'bookworm main' in apt's own files."""
    completed = _run_script(_apt_config(tmp_path, files), "--print-mirror")
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout == f"{expected}\n"


@needs_apt
@pytest.mark.docker
def test_existing_base_image_needs_no_apt_source(tmp_path: Path) -> None:
    """An existing base image is reused as before: no mirror lookup, so no apt source is needed."""

    def base_exists() -> bool:
        inspected = subprocess.run(
            ["docker", "image", "inspect", BASE_IMAGE], capture_output=True, check=False
        )
        return inspected.returncode == 0

    if shutil.which("docker") is None or not base_exists():
        message = f"no Docker engine or no base image {BASE_IMAGE} (run scripts/ci/base-image.sh)"
        if os.environ.get("CI"):
            pytest.fail(message)  # CI installs both, as for tests/test_container.py
        pytest.skip(message)
    completed = _run_script({**_apt_config(tmp_path, {}), "BASE_IMAGE_TAG": BASE_IMAGE})
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout == f"base image {BASE_IMAGE} exists\n"
