"""The wire protocol: every message survives its JSON line unchanged, and a malformed one is refused
(a parent and a worker that disagree must fail loudly, never produce a verdict)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mlflow_version_check import protocol
from mlflow_version_check.errors import AuthenticationFailed, WorkerCrashed
from mlflow_version_check.manifest import FileEntry
from mlflow_version_check.protocol import (
    DownloadPlan,
    LocatedModel,
    LocatedVersion,
    ModelManifest,
    PlannedDownload,
    RegistryVersion,
    Request,
    WantedVersion,
)

text = st.text(max_size=30)
maybe = st.none() | st.text(min_size=1, max_size=20)
versions = st.builds(
    RegistryVersion,
    name=text,
    version=st.integers(1, 10**6).map(str),
    version_or_stage=text,
    resolved_by=st.sampled_from(["version", "alias", "latest", "stage"]),
    source=text,
    run_id=maybe,
    stage=maybe,
    aliases=st.tuples(text, text),
    status=maybe,
    creation_timestamp=st.none() | st.integers(0, 2**53),
    download_uri=text,
)
entries = st.builds(
    FileEntry, size=st.integers(0, 2**40), sha256=st.text("0123456789abcdef", min_size=64, max_size=64)
)


def _line(message: object) -> object:
    """Through a real JSON line and back to a dict, as the pipe carries it."""
    return json.loads(protocol.encode(message))  # type: ignore[arg-type]


@given(
    st.builds(
        Request,
        tracking_uri=text,
        registry_uri=maybe,
        roles=st.sampled_from([("run_model", "reg_model"), ("run_model",), ("reg_model",)]),
        versions=st.lists(st.builds(WantedVersion, text, text, text), max_size=3).map(tuple),
        private_paths=st.lists(text, max_size=2).map(tuple),
    )
)
def test_request_round_trip(request_message: Request) -> None:
    assert Request.from_json(_line(request_message)) == request_message  # type: ignore[arg-type]


@given(versions, st.dictionaries(st.sampled_from(protocol.ROLES), st.builds(LocatedModel, text, text, text)))
def test_located_round_trip(version: RegistryVersion, models: dict[str, LocatedModel]) -> None:
    event = protocol.Located((LocatedVersion("version", version, models, 1.25),))
    assert protocol.decode_event(protocol.encode(event)) == event
    resolved = protocol.Resolved("tracking_server_2", version)
    assert protocol.decode_event(protocol.encode(resolved)) == resolved


@given(st.dictionaries(text, entries, max_size=5), maybe)
def test_downloaded_round_trip(files: dict[str, FileEntry], mlmodel: str | None) -> None:
    event = protocol.Downloaded((ModelManifest("version", "run_model", "/d/run_model", files, mlmodel, 0.5),))
    assert protocol.decode_event(protocol.encode(event)) == event


def test_plan_round_trip_and_abort() -> None:
    plan = DownloadPlan((PlannedDownload("version", "reg_model", "/d/reg_model", "reg_model"),))
    assert DownloadPlan.from_json(_line(plan)) == plan  # type: ignore[arg-type]
    assert DownloadPlan.from_json(_line(DownloadPlan(abort=True))).abort  # type: ignore[arg-type]
    # A closed stdin (no plan line) stops the worker, as an abort does.
    assert DownloadPlan.from_json(None).abort
    # An empty plan is not an abort: the worker ends cleanly without downloading.
    assert DownloadPlan.from_json({"download": []}) == DownloadPlan(())


def test_failure_carries_the_error_fields_and_type() -> None:
    error = AuthenticationFailed("reading 'm' failed", cause="a wrong token", fix="check {option:verbose}.")
    event = protocol.decode_event(protocol.encode(protocol.Failure.of(error)))
    assert isinstance(event, protocol.Failure)
    again = event.error("tracking_server_1")
    assert isinstance(again, AuthenticationFailed)
    assert (
        again.message
        == "tracking_server_1: reading 'm' failed. Likely cause: a wrong token. Fix: check verbose."
    )
    assert again.fix == error.fix
    assert isinstance(protocol.Failure("NotAnError", {"what": "x"}).error(), WorkerCrashed)


@pytest.mark.parametrize(
    "line",
    [
        '{"event": "located"}',
        '{"event": "located", "versions": [{"key": "version"}]}',
        '{"event": "result", "manifests": [{"key": "v", "role": "r"}]}',
        '{"event": "gossip"}',
        "[1, 2]",
    ],
)
def test_a_malformed_event_is_refused(line: str) -> None:
    with pytest.raises(protocol.ProtocolError):
        protocol.decode_event(line)


def test_a_request_with_an_unknown_role_is_refused() -> None:
    with pytest.raises(protocol.ProtocolError, match="unknown roles"):
        Request.from_json({"tracking_uri": "x", "roles": ["everything"], "versions": []})
