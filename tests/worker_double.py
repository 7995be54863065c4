"""A TEST DOUBLE of the worker process: it speaks the real wire protocol (protocol.py) but talks to
no server, so the parent's orchestration (pool.py) can be tested for its phases, its routing of the
plan and its failure paths without MLflow.

Run as `python -m tests.worker_double <fd> <parent pid>`, as pool.Worker runs the real worker. What
it does for a version is written in its model name:
- "fail-<ErrorName>": after resolving the versions before it, reports that named error;
- "crash": prints a line and exits without an answer (the parent must call it a crash);
- "out-of-turn": sends a `Downloaded` event before `Located`;
- "wrong-types": sends a `Located` event whose fields have the wrong JSON types;
- anything else: resolved and located; each role is stored at "<version_or_stage>/<role>", or at
  "<version_or_stage>" for both roles when version_or_stage starts with "same" (one storage location).
A planned download "downloads" one file, `model.pkl`, whose digest names the version and role, so a
test can tell whose files a model got.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys

from mlflow_version_check import protocol
from mlflow_version_check.manifest import FileEntry
from mlflow_version_check.protocol import (
    DownloadPlan,
    LocatedModel,
    LocatedVersion,
    ModelManifest,
    RegistryVersion,
    Request,
)


def digest_of(key: str, role: str) -> str:
    return hashlib.sha256(f"{key}/{role}".encode()).hexdigest()


def main() -> int:
    channel = os.fdopen(int(sys.argv[1]), "w", encoding="utf-8", buffering=1)

    def emit(event: protocol.Event) -> None:
        channel.write(protocol.encode(event) + "\n")

    request = Request.from_json(json.loads(sys.stdin.readline()))
    located = []
    for wanted in request.versions:
        if wanted.model == "crash":
            print("the double crashes on purpose", flush=True)
            return 3
        if wanted.model.startswith("fail-"):
            emit(protocol.Failure(wanted.model.removeprefix("fail-"), {"what": f"{wanted.key} failed"}))
            return 0
        if wanted.model == "wrong-types":
            channel.write(json.dumps({"event": "located", "versions": [{"key": 1, "models": []}]}) + "\n")
            return 0
        if wanted.model == "out-of-turn":
            emit(protocol.Downloaded(()))
            return 0
        version = RegistryVersion(
            name=wanted.model,
            version="1",
            version_or_stage=wanted.version_or_stage,
            resolved_by="version",
            source=f"runs:/{wanted.key}/model",
            run_id=None,
            stage=None,
            aliases=(),
            status="READY",
            creation_timestamp=None,
            download_uri=f"models:/{wanted.model}/1",
        )
        emit(protocol.Resolved(wanted.key, version))
        place = wanted.version_or_stage
        models = {
            role: LocatedModel(
                uri=f"{wanted.key}:{role}",
                location=f"store/{wanted.key}/{role}",
                location_key=place if place.startswith("same") else f"{place}/{role}",
            )
            for role in request.roles
        }
        located.append(LocatedVersion(wanted.key, version, models, 0.01))
    emit(protocol.Located(tuple(located)))
    plan = DownloadPlan.from_json(json.loads(sys.stdin.readline() or "null"))
    if plan.abort:
        return 0
    emit(
        protocol.Downloaded(
            tuple(
                ModelManifest(
                    key=item.key,
                    role=item.role,
                    local_path=item.destination,
                    files={"model.pkl": FileEntry(3, digest_of(item.key, item.role))},
                    mlmodel_text=None,
                    download_seconds=0.5,
                )
                for item in plan.downloads
            )
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
