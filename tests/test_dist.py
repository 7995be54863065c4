"""The installed package: its data files ship beside its code, and the wheel matrix tests the wheel.

scripts/ci/dist_matrix.py runs this module first in each virtualenv it makes from the built wheel,
with MVC_DIST_SITE_PACKAGES naming that virtualenv's site-packages. The checks it makes of the wheel
are tested here on small wheels made for the purpose: each check can fail.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tarfile
import tomllib
import zipfile
from importlib import metadata, resources
from pathlib import Path
from typing import Any

import pytest

import mlflow_version_check
from tests.conftest import load_script

REPOSITORY = Path(__file__).resolve().parents[1]
SITE_PACKAGES = os.environ.get("MVC_DIST_SITE_PACKAGES", "")
in_wheel_matrix = pytest.mark.skipif(
    not SITE_PACKAGES,
    reason="only in the wheel matrix (scripts/ci/dist_matrix.py sets MVC_DIST_SITE_PACKAGES)",
)


def test_schema_and_type_marker_ship_with_the_package() -> None:
    """The report schema (valid JSON) and py.typed are package data next to the imported modules."""
    package = resources.files("mlflow_version_check")
    schema = json.loads((package / "schema" / "report.schema.json").read_text(encoding="utf-8"))
    assert schema["$schema"].startswith("https://json-schema.org/")
    assert (package / "py.typed").is_file()


def test_version_is_the_distribution_version() -> None:
    """`__version__` (what --version prints) is the version pip installed."""
    assert mlflow_version_check.__version__ == metadata.version("mlflow-version-check")


@in_wheel_matrix
def test_package_comes_from_the_installed_wheel() -> None:
    """The package, and the worker a separate process imports, come from site-packages, not src/."""
    site_packages = Path(SITE_PACKAGES).resolve()
    assert Path(mlflow_version_check.__file__).resolve().is_relative_to(site_packages)
    worker = subprocess.run(
        [sys.executable, "-c", "import mlflow_version_check.worker as w; print(w.__file__)"],
        cwd=REPOSITORY,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert Path(worker).resolve().is_relative_to(site_packages)
    assert not any(Path(entry or ".").resolve() == REPOSITORY / "src" for entry in sys.path)


@in_wheel_matrix
def test_installed_from_a_wheel_file_not_editable() -> None:
    """pip recorded a wheel archive as the origin (direct_url.json), not an editable source tree."""
    origin = json.loads(metadata.distribution("mlflow-version-check").read_text("direct_url.json") or "{}")
    assert origin["url"].endswith(".whl")
    assert "archive_info" in origin
    assert "dir_info" not in origin


dist_matrix = load_script(REPOSITORY / "scripts" / "ci" / "dist_matrix.py")
PACKAGE_FILES = {
    "__init__.py": b"__version__ = '1'\n",
    "py.typed": b"",
    "schema/report.schema.json": b"{}",
    "worker/__main__.py": b"",
}
SCRIPTS = tomllib.loads((REPOSITORY / "pyproject.toml").read_text())["project"]["scripts"]


def _wheel(tmp_path: Path, members: dict[str, bytes]) -> Any:
    """A wheel of `members` (package files plus dist-info), as the matrix's Built record names it."""
    wheel = tmp_path / "mlflow_version_check-1-py3-none-any.whl"
    entry_points = "[console_scripts]\n" + "".join(f"{name} = {target}\n" for name, target in SCRIPTS.items())
    with zipfile.ZipFile(wheel, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
        archive.writestr("mlflow_version_check-1.dist-info/entry_points.txt", entry_points)
    return dist_matrix.Built(tmp_path / "unused.tar.gz", wheel, tmp_path / "unused.whl", PACKAGE_FILES)


def _packaged(files: dict[str, bytes]) -> dict[str, bytes]:
    return {f"mlflow_version_check/{name}": data for name, data in files.items()}


def test_wheel_check_passes_a_complete_wheel(tmp_path: Path) -> None:
    """A wheel holding every package file byte for byte, and the declared scripts, passes."""
    members = dist_matrix.check_wheel(_wheel(tmp_path, _packaged(PACKAGE_FILES)))
    assert "mlflow_version_check/schema/report.schema.json" in members


@pytest.mark.parametrize("missing", ["py.typed", "schema/report.schema.json", "worker/__main__.py"])
def test_wheel_check_names_a_missing_data_file(tmp_path: Path, missing: str) -> None:
    """A wheel without the schema, py.typed or the worker fails, naming the file and the setting."""
    files = {name: data for name, data in PACKAGE_FILES.items() if name != missing}
    with pytest.raises(
        dist_matrix.MatrixError, match=f"lacks mlflow_version_check/{re.escape(missing)}.*package-data"
    ):
        dist_matrix.check_wheel(_wheel(tmp_path, _packaged(files)))


@pytest.mark.parametrize(
    "members",
    [
        pytest.param({"tests/conftest.py": b""}, id="stray-package"),
        pytest.param({"mlflow_version_check/stale.py": b""}, id="file-not-in-sources"),
        pytest.param({"mlflow_version_check/__init__.py": b"changed"}, id="changed-bytes"),
    ],
)
def test_wheel_check_refuses_what_the_sources_do_not_hold(tmp_path: Path, members: dict[str, bytes]) -> None:
    """Anything in the wheel beyond the package's own files, or a file that differs, fails the check."""
    with pytest.raises(dist_matrix.MatrixError, match="does not match src/mlflow_version_check"):
        dist_matrix.check_wheel(_wheel(tmp_path, {**_packaged(PACKAGE_FILES), **members}))


def _sdist(tmp_path: Path, files: dict[str, bytes]) -> Any:
    """An sdist of `files` (paths under its root folder) for a Built record with PACKAGE_FILES."""
    sdist = tmp_path / "mlflow_version_check-1.tar.gz"
    with tarfile.open(sdist, "w:gz") as archive:
        for name, data in files.items():
            (tmp_path / "member").write_bytes(data)
            archive.add(tmp_path / "member", arcname=f"mlflow_version_check-1/{name}")
    return dist_matrix.Built(sdist, tmp_path / "unused.whl", tmp_path / "unused.whl", PACKAGE_FILES)


def test_sdist_check_needs_every_package_file_and_the_project_files(tmp_path: Path) -> None:
    """An sdist passes with src/, pyproject.toml and README.md; without py.typed it fails, naming it."""
    complete = {
        "pyproject.toml": b"",
        "README.md": b"",
        **{f"src/mlflow_version_check/{name}": data for name, data in PACKAGE_FILES.items()},
    }
    dist_matrix.check_sdist(_sdist(tmp_path, complete))
    without = {name: data for name, data in complete.items() if not name.endswith("py.typed")}
    with pytest.raises(dist_matrix.MatrixError, match=r"src/mlflow_version_check/py\.typed"):
        dist_matrix.check_sdist(_sdist(tmp_path, without))


def test_floor_constraints_pin_the_floors_pyproject_declares() -> None:
    """testing/constraints-floor.txt pins each dependency at pyproject's lower bound; a stale pin fails."""
    from packaging.requirements import Requirement

    declared = tomllib.loads((REPOSITORY / "pyproject.toml").read_text())["project"]["dependencies"]
    floors = dist_matrix.lowest_versions([Requirement(text) for text in declared])
    assert set(floors) == {"mlflow-skinny", "pyyaml", "typer"}
    dist_matrix.check_floor_pins(floors)
    with pytest.raises(dist_matrix.MatrixError, match="--lock-floors"):
        dist_matrix.check_floor_pins({**floors, "mlflow-skinny": "3.0"})


def test_interpreter_choice_is_the_earliest_311_and_the_newest_release() -> None:
    """3.11 with its lowest patch release found (closest to the floor) and the newest minor found."""
    found = [
        dist_matrix.Interpreter((3, 11, 7), "/a/python3.11"),
        dist_matrix.Interpreter((3, 11, 2), "/b/python3.11"),
        dist_matrix.Interpreter((3, 13, 0), "/c/python3.13"),
        dist_matrix.Interpreter((3, 12, 9), "/d/python3.12"),
    ]
    lowest, newest = dist_matrix.pick_interpreters(found)
    assert (lowest.path, newest.path) == ("/b/python3.11", "/c/python3.13")
    assert dist_matrix.pick_interpreters(found[:2])[1] is None
