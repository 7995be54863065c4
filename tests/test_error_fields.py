"""Named errors carry what / cause / fix / server as data, and render as the one line they always were.

Each test builds one real error of a module (through the function that raises it, fed real
exceptions where it translates them) and checks the three renderings: the CLI's is the exact text the
tool has always printed, the Python API's names parameters (never `--option`), the action's names its
inputs.
"""

from __future__ import annotations

import errno
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from mlflow_version_check import databricks
from mlflow_version_check.comparison import narrow_both
from mlflow_version_check.errors import (
    ACTION_NAMES,
    API_NAMES,
    CLI_NAMES,
    ArtifactDownloadError,
    ArtifactNotFound,
    AuthenticationFailed,
    InvalidOption,
    NativeModelNotFound,
    RegistryError,
    ServerUnreachable,
    StagesUnsupported,
    UnsafeArtifactPath,
    VersionCheckError,
)
from mlflow_version_check.manifest import FileEntry
from mlflow_version_check.worker.downloads import download_tree
from mlflow_version_check.worker.failures import download_error, raise_common, registry_call
from mlflow_version_check.worker.locations import locate
from mlflow_version_check.worker.server import Server
from mlflow_version_check.worker.session import Session
from mlflow_version_check.worker.versions import resolve_version

# Functions that refuse before they reach the registry never call the client.
NO_CLIENT: Any = None
REMOTE = Server(tracking_uri="http://mlflow.example:5000", registry_uri="http://registry.example:5000")


@pytest.fixture
def refusing_port() -> Iterator[int]:
    """A loopback port that refuses connections: bound, never listening."""
    with socket.socket() as bound:
        bound.bind(("127.0.0.1", 0))
        yield bound.getsockname()[1]


def assert_same_everywhere(error: VersionCheckError, text: str) -> None:
    """A message that names no option reads the same in every front end."""
    assert error.render(CLI_NAMES) == text
    assert error.render(API_NAMES) == text
    assert error.render(ACTION_NAMES) == text
    assert str(error) == text


def test_raise_common_connection_refused(refusing_port: int) -> None:
    """A refused connection (a real requests error) is ServerUnreachable naming the server and --timeout."""
    uri = f"http://127.0.0.1:{refusing_port}"
    with pytest.raises(requests.exceptions.ConnectionError) as refused:
        requests.get(uri, timeout=5)
    with pytest.raises(ServerUnreachable) as caught:
        raise_common(
            refused.value, Server(tracking_uri=uri, registry_uri=uri), "reading registered model 'm'"
        )
    error = caught.value
    assert error.render(CLI_NAMES) == (
        f"reading registered model 'm' failed: no answer from {uri} (connection refused). Likely cause: "
        "the server is down, the URI or port is wrong, or a proxy blocks it. Fix: check the tracking URI "
        "and that the server answers, or raise --timeout."
    )
    assert error.cause == "the server is down, the URI or port is wrong, or a proxy blocks it"
    assert error.server == uri
    assert error.render(API_NAMES).endswith("or raise timeout.")
    assert "--" not in error.render(API_NAMES)
    # The action has no timeout input: its message keeps the CLI's name for what would help.
    assert error.render(ACTION_NAMES) == error.render(CLI_NAMES)


def _http_error(status: int) -> requests.HTTPError:
    response = requests.Response()
    response.status_code = status
    return requests.HTTPError(f"{status} Server Error", response=response)


def test_registry_call_unexpected_answer() -> None:
    """A 500 from the registry is RegistryError telling to rerun verbosely, in each front end's words."""
    with (
        pytest.raises(RegistryError) as caught,
        registry_call(REMOTE, "reading 'm'", lambda: ArtifactNotFound("x")),
    ):
        raise _http_error(500)
    error = caught.value
    assert error.render(CLI_NAMES) == (
        "reading 'm' failed: the server answered 500 Server Error. Likely cause: a server-side problem or "
        "an MLflow version the server does not support. Fix: rerun with --verbose and check the server's log."
    )
    assert error.fix == "rerun with {option:verbose} and check the server's log."
    assert error.server == "http://mlflow.example:5000"
    assert "--" not in error.render(API_NAMES)
    assert "rerun with verbose and" in error.render(API_NAMES)


def test_registry_call_refused_token() -> None:
    """A 401 is AuthenticationFailed with the MLflow token fix (no option in it)."""
    with (
        pytest.raises(AuthenticationFailed) as caught,
        registry_call(REMOTE, "reading 'm'", lambda: ArtifactNotFound("x")),
    ):
        raise _http_error(401)
    assert_same_everywhere(
        caught.value,
        "reading 'm' failed: http://mlflow.example:5000 refused the credentials (authentication failed). "
        "Likely cause: a missing, expired or wrong token, or no access to this model. Fix: check "
        "MLFLOW_TRACKING_TOKEN, or MLFLOW_TRACKING_USERNAME and PASSWORD.",
    )
    assert caught.value.server == "http://mlflow.example:5000"


def test_download_error_disk_full() -> None:
    """A full disk names the download directory option: --download-dir, download_dir, the action's input."""
    with pytest.raises(ArtifactDownloadError) as caught:
        download_error(OSError(errno.ENOSPC, "No space left on device"), REMOTE, "s3://bucket/m", "model.pkl")
    error = caught.value
    what = (
        "downloading model.pkl of s3://bucket/m failed: no space left on the device of the download directory"
    )
    assert (
        error.render(CLI_NAMES) == what + ". Fix: free space or give --download-dir on a larger file system."
    )
    assert error.render(API_NAMES) == what + ". Fix: free space or give download_dir on a larger file system."
    assert error.render(ACTION_NAMES) == (
        what + ". Fix: free space or give the download-dir input on a larger file system."
    )
    assert (error.cause, error.server) == (None, None)


def test_versions_stage_on_unity_catalog() -> None:
    """A stage on Unity Catalog is refused before any registry call, naming the registry."""
    server = Server(tracking_uri="databricks://p", registry_uri="databricks-uc://p")
    with pytest.raises(StagesUnsupported) as caught:
        resolve_version(NO_CLIENT, server, "cat.sch.m", "Production")
    assert_same_everywhere(
        caught.value,
        "stage 'Production' cannot be used with Unity Catalog (databricks-uc://p): it has no stages. "
        "Fix: use an alias ('@champion') or a version number.",
    )
    assert caught.value.server == "databricks-uc://p"


def test_locations_local_path_from_a_remote_registry() -> None:
    """A remote registry naming a local path: what, cause and fix split, and the registry as server."""
    with pytest.raises(UnsafeArtifactPath) as caught:
        locate(NO_CLIENT, REMOTE, "/srv/models/m")
    error = caught.value
    assert_same_everywhere(
        error,
        "the registry http://registry.example:5000 names a path on this machine, /srv/models/m, as the "
        "model's storage; it was not read. Likely cause: the version was registered from a local path on "
        "another machine, or a hostile server. Fix: register the model from the server's artifact store "
        "(runs:/ or mlflow-artifacts:/), or check it against a tracking URI on this machine (file:, "
        "sqlite:, http://127.0.0.1).",
    )
    assert error.what.endswith("as the model's storage; it was not read")
    assert error.server == "http://registry.example:5000"


def test_locations_self_reference() -> None:
    """A message with only a fix keeps its words: what. Fix: fix."""
    with pytest.raises(ArtifactNotFound) as caught:
        locate(NO_CLIENT, REMOTE, "models:/m/1", depth=4)
    assert_same_everywhere(caught.value, "cannot resolve models:/m/1: it refers to itself. Fix: report this.")
    assert (caught.value.cause, caught.value.fix) == (None, "report this.")


def test_downloads_empty_location(tmp_path: Path) -> None:
    """An empty storage location (a real local store) is ArtifactNotFound with its cause and fix."""
    empty = tmp_path / "store"
    empty.mkdir()
    with pytest.raises(ArtifactNotFound) as caught:
        download_tree(REMOTE, str(empty), tmp_path / "downloads", "run_model", lambda event: None)
    assert_same_everywhere(
        caught.value,
        f"no files at {empty} (run_model). Likely cause: the model's artifacts were deleted or never "
        "uploaded, or the version points at the wrong path. Fix: check the version's source in the registry.",
    )


def test_session_workspace_refuses_connections(
    tmp_path: Path, refusing_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A profile's workspace that refuses connections fails at once, naming the workspace as server."""
    config = tmp_path / "databrickscfg"
    config.write_text(f"[p]\nhost = http://127.0.0.1:{refusing_port}\ntoken = not-a-real-token\n")
    monkeypatch.setenv("DATABRICKS_CONFIG_FILE", str(config))
    with pytest.raises(ServerUnreachable) as caught:
        Session.open("databricks://p", None)
    host = f"http://127.0.0.1:{refusing_port}"
    assert_same_everywhere(
        caught.value,
        f"no answer from the Databricks workspace {host} of databricks://p (connection refused). Likely "
        "cause: a wrong host in the profile, the workspace is down, or a network rule blocks it. Fix: check "
        "the profile's host and that the workspace answers.",
    )
    assert caught.value.server == host


def test_databricks_two_profiles() -> None:
    """Two profiles for one server: what and fix, no server named."""
    with pytest.raises(InvalidOption) as caught:
        databricks.worker_environment("databricks://a", "databricks-uc://b", {})
    assert_same_everywhere(
        caught.value,
        "tracking and registry URIs name two profiles (a, b). Fix: use one profile per server (the "
        "registry of a workspace is reached with its own profile).",
    )
    assert caught.value.server is None


def test_databricks_missing_profile(tmp_path: Path) -> None:
    """A profile missing from the config names the tracking URI as the server."""
    config = tmp_path / "databrickscfg"
    config.write_text("[other]\nhost = https://example.cloud.databricks.com\n")
    with pytest.raises(InvalidOption) as caught:
        databricks.host_of("databricks://missing", {"DATABRICKS_CONFIG_FILE": str(config)})
    assert_same_everywhere(
        caught.value,
        f"profile 'missing' of databricks://missing is not in {config}. Fix: add a [missing] section with "
        "host and token (or client_id and client_secret), or correct the URI.",
    )
    assert caught.value.server == "databricks://missing"


def test_comparison_native_model_in_neither_model() -> None:
    """A native path in neither model keeps its one sentence and its fix."""
    files = {"model.pkl": FileEntry(size=1, sha256="0" * 64)}
    with pytest.raises(NativeModelNotFound) as caught:
        narrow_both(files, files, "nope.pkl", left_mlmodel=None, right_mlmodel=None)
    assert_same_everywhere(
        caught.value,
        "native model path 'nope.pkl' is in neither model: the path is relative to the model root and "
        "names a file or folder of it. Fix: check the path against the model's files (e.g. model.pkl, "
        "data/), or use 'auto'.",
    )


def test_untrusted_text_is_never_rewritten_as_an_option_name() -> None:
    """A model, file or server text that holds a placeholder is shown as it is, in every front end."""
    from mlflow_version_check.errors import ACTION_NAMES, API_NAMES, CLI_NAMES, ModelNotFound

    error = ModelNotFound("registered model 'x{option:timeout}y' not found", fix="check {option:model}.")
    for names in (CLI_NAMES, ACTION_NAMES, API_NAMES):
        assert "'x{option:timeout}y'" in error.render(names)
    assert error.render(CLI_NAMES).endswith("Fix: check --model.")


def test_a_secret_holding_a_placeholder_is_still_redacted_in_the_action() -> None:
    """The option names are put in after the fact only in this tool's own text, so a URI whose password
    holds a placeholder is still recognised (and redacted) as one URI."""
    from mlflow_version_check.core import resolve_server_uris
    from mlflow_version_check.errors import ACTION_NAMES, InvalidOption
    from mlflow_version_check.redact import redact

    with pytest.raises(InvalidOption) as caught:
        resolve_server_uris("'https://alice:hunter{option:model}2pass@mlflow.example.com'", None)
    shown = redact(caught.value.render(ACTION_NAMES))
    assert "hunter" not in shown and "2pass" not in shown and "alice" not in shown
