"""The parent's orchestration in its two phases, without servers: the plan (pure), the assembly of
results (pure), and the pool driving worker processes of tests/worker_double.py, which speak the
real protocol."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlflow_version_check.core import assemble
from mlflow_version_check.errors import ModelNotFound, VersionCheckError, WorkerCrashed
from mlflow_version_check.pool import ServerSpec, Wanted, WorkerPool, plan_downloads
from mlflow_version_check.protocol import LocatedModel, LocatedVersion, RegistryVersion
from tests.worker_double import digest_of

ROLES = ("run_model", "reg_model")
DOUBLE = "tests.worker_double"
SERVER_1 = ServerSpec("http://127.0.0.1:1")
SERVER_2 = ServerSpec("http://127.0.0.1:2")


def _version(name: str) -> RegistryVersion:
    return RegistryVersion(
        name=name,
        version="1",
        version_or_stage="1",
        resolved_by="version",
        source="runs:/r/m",
        run_id=None,
        stage=None,
        aliases=(),
        status="READY",
    )


def _located(key: str, run_key: str, reg_key: str) -> LocatedVersion:
    models = {
        "run_model": LocatedModel(f"{key}-run", f"store/{key}/run", run_key),
        "reg_model": LocatedModel(f"{key}-reg", f"store/{key}/reg", reg_key),
    }
    return LocatedVersion(key, _version(key), models, 0.1)


def _destination(key: str, role: str) -> str:
    return f"/downloads/{role}/{key}"


def test_one_download_per_storage_location_across_roles_and_servers() -> None:
    located = {
        "tracking_server_1": _located("tracking_server_1", "A", "A"),  # one location for both roles
        "tracking_server_2": _located("tracking_server_2", "A", "B"),  # its run model is A too
    }
    plan = plan_downloads(located, list(located), ROLES, _destination)
    assert [(item.key, item.role) for item in plan.downloads] == [
        ("tracking_server_1", "run_model"),
        ("tracking_server_2", "reg_model"),
    ]
    assert plan.owner("tracking_server_2", "run_model") == ("tracking_server_1", "run_model")
    assert plan.owner("tracking_server_1", "reg_model") == ("tracking_server_1", "run_model")
    assert plan.owner("tracking_server_2", "reg_model") == ("tracking_server_2", "reg_model")
    assert plan.downloads[1].destination == "/downloads/reg_model/tracking_server_2"
    assert plan.downloads[1].label == "reg_model of tracking_server_2"


def test_distinct_locations_are_each_downloaded() -> None:
    located = {"version": _located("version", "run-key", "reg-key")}
    plan = plan_downloads(located, ["version"], ROLES, _destination)
    assert [(item.role, item.label) for item in plan.downloads] == [
        ("run_model", "run_model"),
        ("reg_model", "reg_model"),
    ]
    assert not plan.shared


def _pool(*wanted: Wanted) -> WorkerPool:
    return WorkerPool(list(wanted), ROLES, worker_module=DOUBLE)


def test_two_phases_route_each_plan_part_to_its_server(tmp_path: Path) -> None:
    wanted = [
        Wanted("tracking_server_1", SERVER_1, "m", "same-1"),
        Wanted("tracking_server_2", SERVER_2, "m", "2"),
    ]
    progress: list[object] = []
    with WorkerPool(wanted, ROLES, worker_module=DOUBLE, on_progress=progress.append) as pool:
        located = pool.locate_all()
        assert set(located) == {"tracking_server_1", "tracking_server_2"}
        assert located["tracking_server_2"].models["reg_model"].location_key == "2/reg_model"
        plan = plan_downloads(located, [w.key for w in wanted], ROLES, lambda k, r: str(tmp_path / r / k))
        manifests = pool.download_all(plan)
    # Server 1 stores both roles at one location: three downloads, each answered by its own worker.
    assert sorted(manifests) == [
        ("tracking_server_1", "run_model"),
        ("tracking_server_2", "reg_model"),
        ("tracking_server_2", "run_model"),
    ]
    for (key, role), manifest in manifests.items():
        assert manifest.files["model.pkl"].sha256 == digest_of(key, role)
        assert manifest.local_path == str(tmp_path / role / key)
    inspection = assemble(wanted, ROLES, located, plan, manifests)
    shared = inspection.models["tracking_server_1"]["reg_model"]
    assert shared.shared_with == "run_model of tracking_server_1"
    assert shared.download_seconds == 0.0
    assert shared.manifest["model.pkl"].sha256 == digest_of("tracking_server_1", "run_model")
    assert shared.uri == "tracking_server_1:reg_model"  # its own URI, the owner's files
    assert inspection.versions["tracking_server_2"].tracking_uri == SERVER_2.tracking_uri
    assert inspection.timings["download_seconds"] == 0.5


def test_a_failure_keeps_its_type_names_its_server_and_carries_what_the_others_resolved() -> None:
    wanted = [
        Wanted("tracking_server_1", SERVER_1, "good", "1"),
        Wanted("tracking_server_2", SERVER_2, "fail-ModelNotFound", "1"),
    ]
    with pytest.raises(ModelNotFound) as caught, _pool(*wanted) as pool:
        pool.locate_all()
    assert caught.value.message == "tracking_server_2: tracking_server_2 failed"
    assert set(caught.value.resolved) == {"tracking_server_1"}
    assert caught.value.resolved["tracking_server_1"].name == "good"


def test_an_unknown_error_name_is_an_internal_error_not_a_verdict() -> None:
    with pytest.raises(WorkerCrashed), _pool(Wanted("version", SERVER_1, "fail-NoSuchError", "1")) as pool:
        pool.locate_all()


def test_a_worker_that_ends_without_an_answer_is_a_crash_with_its_last_line() -> None:
    with pytest.raises(WorkerCrashed) as caught, _pool(Wanted("version", SERVER_1, "crash", "1")) as pool:
        pool.locate_all()
    assert "the double crashes on purpose" in caught.value.message
    assert "exit code 3" in caught.value.message


def test_an_event_out_of_turn_is_refused() -> None:
    out_of_turn = _pool(Wanted("version", SERVER_1, "out-of-turn", "1"))
    with pytest.raises(VersionCheckError, match="out of turn"), out_of_turn as pool:
        pool.locate_all()


def test_an_event_of_the_wrong_types_ends_as_a_crash_not_a_hang() -> None:
    wrong = _pool(Wanted("version", SERVER_1, "wrong-types", "1"))
    with pytest.raises(WorkerCrashed, match="no answer"), wrong as pool:
        pool.locate_all()
