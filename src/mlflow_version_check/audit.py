"""Registry audit: every selected version checked (and verified against its recorded seal) by one
worker, one report; a stable partition into shards for a CI job matrix; shard reports merged.

`audit_registry` lists the selection through the worker, keeps this shard's versions, and judges
each version as its event arrives: what `check` does (run model against registry copy, or the
completeness of one location) and, when the version carries the tag `seal --record-tag` wrote, its
root digest against that tag. Like the core it never prints and never exits.

Shards: a version belongs to shard `1 + H(name, version) mod N`, H the first 64 bits of a SHA-256,
so the same version lands in the same shard whatever order the server lists versions in and
whichever job asks. Every shard report records the whole selection's size and fingerprint (a
SHA-256 of its sorted `name NUL version` lines), which is how `merge_audit_reports` knows the shards
are of one selection and that together they cover it exactly once.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from . import databricks, oms, protocol
from .comparison import MLmodel, without_registry_meta
from .core import (
    compare_pair,
    download_area,
    parse_and_judge,
    resolve_server_uris,
    server_spec,
    validate_timeouts,
)
from .errors import (
    AuditMergeError,
    InvalidOption,
    ManifestError,
    ModelVersionNotFound,
    VersionCheckError,
    WorkerCrashed,
)
from .integrity import IntegrityReport
from .pool import PRIVATE_PATHS, LogCallback, Worker
from .protocol import AUDIT_VERSIONS, AuditItem, AuditPlan, AuditRequest, ListedVersion, Selection
from .results import AuditEntry, AuditResult, CheckResult, DownloadedModel, ModelVersionInfo

DEFAULT_JOBS = 4  # downloads wait on the network far more than on the 2 cores hashing them
MAX_JOBS = 64
# ASCII digits, at most 9 of each: `\d` also takes other scripts' digits, and int() of thousands of
# digits raises instead of answering.
_SHARD = re.compile(r"\s*([0-9]{1,9})\s*/\s*([0-9]{1,9})\s*", re.ASCII)


def parse_shard(text: str | None, environ: Mapping[str, str] | None = None) -> tuple[int, int] | None:
    """`I/N` (1-based), or `auto`: GitLab's CI_NODE_INDEX / CI_NODE_TOTAL (none set: no sharding)."""
    if text is None or not text.strip():
        return None
    environ = os.environ if environ is None else environ
    source = ""
    if text.strip().lower() == "auto":
        index, total = environ.get("CI_NODE_INDEX", "").strip(), environ.get("CI_NODE_TOTAL", "").strip()
        if not index and total in ("", "1"):
            return None  # not a parallel job (GitLab sets CI_NODE_TOTAL=1 there): the whole selection
        text = f"{index}/{total}"
        source = f" (auto: CI_NODE_INDEX={index!r}, CI_NODE_TOTAL={total!r})"
    found = _SHARD.fullmatch(text)
    if not found or not 1 <= int(found[1]) <= int(found[2]):
        raise InvalidOption(
            f"{{option:shard}} {_clipped(text)!r}{source} is not I/N with 1 <= I <= N",
            fix="give e.g. 2/4 (the second of four shards), or auto under GitLab's parallel:.",
            what_names_options=True,
        )
    return int(found[1]), int(found[2])


def _clipped(shard: str) -> str:
    """A shard as given, cut to 40 characters for an error line (it may be thousands long)."""
    return shard if len(shard) <= 40 else f"{shard[:37]}..."


def shard_of(name: str, version: str, total: int) -> int:
    """The 1-based shard a version belongs to among `total` (see the module docstring)."""
    digest = hashlib.sha256(f"{name}\0{version}".encode("utf-8", "surrogatepass")).digest()
    return 1 + int.from_bytes(digest[:8], "big") % total


def fingerprint(versions: Iterable[tuple[str, str]]) -> str:
    """SHA-256 of the sorted `name NUL version LF` lines of a selection, as `sha256:<hex>`."""
    digest = hashlib.sha256()
    for name, version in sorted(set(versions)):
        digest.update(f"{name}\0{version}\n".encode("utf-8", "surrogatepass"))
    return "sha256:" + digest.hexdigest()


def narrowed(listed: Sequence[ListedVersion], versions: str) -> list[ListedVersion]:
    """The listed versions that `versions` keeps (all; aliased: an alias or a stage other than
    None; latest: each model's highest version number), one each, in (name, version) order."""
    unique = {(item.name, item.version): item for item in listed}
    kept = list(unique.values())
    if versions == "aliased":
        kept = [item for item in kept if item.aliases or (item.stage not in (None, "None"))]
    elif versions == "latest":
        newest: dict[str, ListedVersion] = {}
        for item in kept:
            if item.name not in newest or _number(item.version) > _number(newest[item.name].version):
                newest[item.name] = item
        kept = list(newest.values())
    return sorted(kept, key=lambda item: (item.name, _number(item.version)))


def _number(version: str) -> int:
    return int(version) if version.isdigit() else -1


def validate_selection(models: Sequence[str], filter_expression: str | None, versions: str) -> Selection:
    names = tuple(name.strip() for name in models)
    if any(not name for name in names):
        raise InvalidOption(
            "a {option:models} name is empty", fix="give registered model names.", what_names_options=True
        )
    if names and filter_expression:
        raise InvalidOption(
            "{option:models} and {option:filter} both select models",
            fix="give the names, or a filter (e.g. name IN ('a', 'b')), not both.",
            what_names_options=True,
        )
    if versions not in AUDIT_VERSIONS:
        raise InvalidOption(
            f"{{option:versions}} {versions!r} is not one of {', '.join(AUDIT_VERSIONS)}",
            fix="give all, aliased or latest.",
            what_names_options=True,
        )
    return Selection(
        models=tuple(sorted(set(names))),
        filter=(filter_expression or "").strip() or None,
        versions=versions,
    )


def audit_registry(
    *,
    tracking_uri: str | None = None,
    registry_uri: str | None = None,
    models: Sequence[str] = (),
    filter_expression: str | None = None,
    versions: str = "all",
    shard: str | tuple[int, int] | None = None,
    jobs: int = DEFAULT_JOBS,
    timeout: float = 30.0,
    retries: int = 2,
    on_version: Callable[[AuditEntry, int, int], None] | None = None,
    on_log: LogCallback | None = None,
) -> AuditResult:
    """Audit every selected version of one registry: check each (and verify it against the root
    digest `seal --record-tag` recorded, when it has one); `shard` (`I/N`, `auto` or a tuple) audits
    that part of the selection only. One version's failure never stops the others: it is an `error`
    entry. `on_version(entry, done, planned)` is called as each version is judged.
    Raises a VersionCheckError when the selection cannot be listed, or names no version.
    """
    selection = validate_selection(models, filter_expression, versions)
    part = shard if isinstance(shard, tuple) or shard is None else parse_shard(shard)
    if isinstance(part, tuple) and not 1 <= part[0] <= part[1]:
        raise InvalidOption(
            f"{{option:shard}} {part[0]}/{part[1]} is not I/N with 1 <= I <= N", what_names_options=True
        )
    validate_timeouts(timeout, retries)
    if not 1 <= jobs <= MAX_JOBS:
        raise InvalidOption(
            f"{{option:jobs}} must be between 1 and {MAX_JOBS}, not {jobs}.", what_names_options=True
        )
    tracking, registry = resolve_server_uris(tracking_uri, registry_uri)
    server = server_spec(tracking, registry, "", timeout=timeout, retries=retries)
    started = time.monotonic()
    with contextlib.ExitStack() as stack:
        run_env: dict[str, str] = {}
        if databricks.uses_databricks(server.tracking_uri) or databricks.uses_databricks(
            server.registry_uri or ""
        ):
            run_env = stack.enter_context(databricks.bounded_config(timeout, os.environ))
        area = stack.enter_context(download_area(None, "audit"))
        private = [*PRIVATE_PATHS, str(area.path)]
        if run_env:
            private.append(str(Path(run_env["DATABRICKS_CONFIG_FILE"]).parent))
        worker = Worker(
            server,
            AuditRequest(tracking, registry, selection, tuple(private)),
            on_log=on_log,
            run_env=run_env,
        )
        stack.callback(worker.kill)
        worker.start()
        listed: protocol.Listed = worker.wait_for(protocol.Listed)
        chosen = narrowed(listed.versions, selection.versions)
        if not chosen:
            worker.send(AuditPlan(abort=True))
            raise ModelVersionNotFound(
                "the selection names no model version",
                cause="no registered model matches, or none of their versions is "
                + {"all": "registered", "aliased": "aliased or in a stage", "latest": "registered"}[
                    selection.versions
                ],
                fix="check {option:models} / {option:filter} / {option:versions} and the tracking URI.",
            )
        mine = [
            item for item in chosen if part is None or shard_of(item.name, item.version, part[1]) == part[0]
        ]
        listed_seconds = time.monotonic() - started
        items = tuple(
            AuditItem(str(index), item.name, item.version, str(area.path / f"v{index}"))
            for index, item in enumerate(mine)
        )
        worker.send(AuditPlan(items, jobs=jobs))
        entries = _collect(worker, items, tracking, registry, on_version)
    ordered = sorted(entries.values(), key=lambda entry: (entry.model, _number(entry.version)))
    return AuditResult(
        tracking_uri=tracking,
        registry_uri=registry,
        selection=selection,
        shard=part,
        total=len(chosen),
        fingerprint=fingerprint((item.name, item.version) for item in chosen),
        entries=tuple(ordered),
        jobs=jobs,
        timings={"list_seconds": listed_seconds, "total_seconds": time.monotonic() - started},
    )


def _collect(
    worker: Worker,
    items: Sequence[AuditItem],
    tracking: str,
    registry: str | None,
    on_version: Callable[[AuditEntry, int, int], None] | None,
) -> dict[str, AuditEntry]:
    """Each version's entry, judged as its event arrives, until the worker says it is done."""
    entries: dict[str, AuditEntry] = {}
    by_key = {item.key: item for item in items}
    while True:
        try:
            event = worker.wait_for((protocol.VersionAudited, protocol.VersionFailed, protocol.AuditDone))
        except WorkerCrashed as crash:
            # The verdicts reached stay; the versions not yet reported could not be checked.
            for item in items:
                if item.key not in entries:
                    entries[item.key] = failed_entry(
                        item, protocol.VersionFailed(item.key, None, protocol.Failure.of(crash))
                    )
            return entries
        if isinstance(event, protocol.AuditDone):
            break
        key = event.located.key if isinstance(event, protocol.VersionAudited) else event.key
        if key not in by_key or key in entries:
            raise WorkerCrashed(f"internal error: the worker answered for version key {key!r} out of turn")
        if isinstance(event, protocol.VersionAudited):
            entries[key] = judged(event, tracking, registry)
        else:
            entries[key] = failed_entry(by_key[key], event)
        if on_version is not None:
            on_version(entries[key], len(entries), len(items))
    worker.finish()
    missing = [item for item in items if item.key not in entries]
    if missing:  # the worker said it was done: a disagreement, never a silent gap in the report
        raise WorkerCrashed(f"internal error: the worker ended the audit without {len(missing)} version(s)")
    return entries


def _downloaded(
    role: str,
    event: protocol.VersionAudited,
    manifest: protocol.ModelManifest,
    parsed: tuple[MLmodel, IntegrityReport],
) -> DownloadedModel:
    where = event.located.models[role]
    mlmodel, integrity = parsed
    return DownloadedModel(
        role=role,
        uri=where.uri,
        location=where.location,
        local_path=manifest.local_path,
        manifest=manifest.files,
        mlmodel_text=manifest.mlmodel_text,
        integrity=integrity,
        download_seconds=0.0,
        shared_with=None if manifest.role == role else manifest.role,
        mlmodel=mlmodel,
    )


def judged(event: protocol.VersionAudited, tracking_uri: str, registry_uri: str | None) -> AuditEntry:
    """One downloaded version, judged as `check` judges it, then against its recorded seal."""
    by_role = {manifest.role: manifest for manifest in event.manifests}
    run_manifest = by_role["run_model"]
    reg_manifest = by_role.get("reg_model", run_manifest)  # one location: one download
    models = event.located.models
    one_location = models["run_model"].location_key == models["reg_model"].location_key
    if one_location != (reg_manifest is run_manifest) or (
        not one_location and run_manifest.local_path == reg_manifest.local_path
    ):
        # Judged as one location, two models would never be compared: never take that on trust.
        raise WorkerCrashed(
            f"internal error: the worker's downloads of {event.located.version.name} version "
            f"{event.located.version.version} do not match its storage locations"
        )
    run_parsed = parse_and_judge(run_manifest)
    # One location is one download: its MLmodel is parsed and judged once for both roles.
    reg_parsed = run_parsed if reg_manifest is run_manifest else parse_and_judge(reg_manifest)
    run_model = _downloaded("run_model", event, run_manifest, run_parsed)
    reg_model = _downloaded("reg_model", event, reg_manifest, reg_parsed)
    version = ModelVersionInfo.of(event.located.version, tracking_uri, registry_uri)
    pair = compare_pair("check", run_model, reg_model, strict=False, left_native=None)
    check = CheckResult(
        version, pair, native_model=None, strict=False, download_dir="", download_dir_kept=False
    )
    problems = list(run_model.integrity.problems) if check.same_location else []
    sealed_files = without_registry_meta(reg_model.manifest)[0]
    root = oms.root_digest(sealed_files)
    seal_verified: bool | None = None
    error: VersionCheckError | None = None
    if version.seal_tag is not None:
        try:
            recorded = oms.read_digest(version.seal_tag.strip())
        except ManifestError as exc:
            exc.what = f"the tag {oms.SEAL_TAG}: {exc.what}"
            error = exc
        else:
            seal_verified = recorded == root
            if not seal_verified:
                problems.append(
                    f"the registry model's root digest sha256:{root} is not the one seal recorded "
                    f"(sha256:{recorded}): its files changed since the seal"
                )
    if not check.equals or seal_verified is False:
        status = "failed"  # a failure stays one, whatever else is wrong (a malformed tag included)
        if error is not None:
            problems.append(error.render({}))
            error = None
    else:
        status = "error" if error else "passed"
    return AuditEntry(
        model=version.name,
        version=version.version,
        aliases=version.aliases,
        stage=version.stage,
        status=status,
        same_location=check.same_location,
        root_digest=root,
        seal_tag=version.seal_tag,
        seal_verified=seal_verified,
        differences=check.comparison.differences if check.comparison else (),
        problems=tuple(problems),
        files=len(sealed_files),
        bytes=sum(entry.size for entry in sealed_files.values()),
        error=error,
    )


def failed_entry(item: AuditItem, event: protocol.VersionFailed) -> AuditEntry:
    version = event.version
    return AuditEntry(
        model=item.name,
        version=item.version,
        aliases=version.aliases if version else (),
        stage=version.stage if version else None,
        status="error",
        same_location=None,
        root_digest=None,
        seal_tag=version.seal_tag if version else None,
        seal_verified=None,
        differences=(),
        problems=(),
        files=None,
        bytes=None,
        error=event.failure.error(),
    )


_STATUSES = ("passed", "failed", "error")
_FINGERPRINT = re.compile(r"sha256:[0-9a-f]{64}")


class _ShardReport:
    """One shard report, read strictly: every field the merge uses has its type, and what the
    shard concluded (its status, its counts) is what its versions say. A report that is not
    consistent with itself is refused, never repaired: a merge must not pass what a shard failed."""

    def __init__(self, name: str, report: Any) -> None:
        self.name = name
        if not isinstance(report, Mapping):
            raise self.refused("is not a JSON object")
        system = report.get("System")
        if not isinstance(system, Mapping) or system.get("command") != "audit":
            raise AuditMergeError(
                f"{name} is not an audit report",
                cause="another file matched the reports given",
                fix="give only the audit reports of this run's shards.",
            )
        section = report.get("Audit")
        if not isinstance(section, Mapping):
            raise AuditMergeError(
                f"{name} is the report of an audit that did not run",
                cause="that shard's job failed before it listed the registry",
                fix="rerun the failed shard.",
            )
        self.section = section
        self.selection = self.mapping(section, "selection")
        self.total_versions = self.integer(self.selection, "total")
        self.fingerprint = self.text(self.selection, "fingerprint")
        if not _FINGERPRINT.fullmatch(self.fingerprint):
            raise self.refused("has no sha256 fingerprint of its selection")
        self.index, self.shards = _report_shard(name, section)
        self.versions = [
            self.version(item, number) for number, item in enumerate(self.list(section, "versions"))
        ]
        counts = {status: sum(item["status"] == status for item in self.versions) for status in _STATUSES}
        summary = self.mapping(section, "summary")
        if any(summary.get(status) != counts[status] for status in _STATUSES) or summary.get("total") != len(
            self.versions
        ):
            raise self.refused(f"counts {dict(summary)}, but its versions count {counts}")
        expected = "failed" if counts["failed"] else "error" if counts["error"] else "passed"
        if report.get("status") != expected:
            raise self.refused(f"says status {report.get('status')!r}, but its versions make it {expected!r}")
        timings = report.get("Timings")
        seconds = timings.get("total_seconds", 0.0) if isinstance(timings, Mapping) else None
        if not isinstance(seconds, (int, float)) or isinstance(seconds, bool):
            raise self.refused("has no Timings.total_seconds number")
        self.seconds = float(seconds)

    def refused(self, problem: str) -> AuditMergeError:
        return AuditMergeError(
            f"{self.name} {problem}",
            cause="a report edited, cut short or written by another tool",
            fix="give the reports as the shards wrote them, or rerun the shards.",
        )

    def mapping(self, parent: Mapping[str, Any], key: str) -> Mapping[str, Any]:
        value = parent.get(key)
        if not isinstance(value, Mapping):
            raise self.refused(f"has no {key} object")
        return value

    def list(self, parent: Mapping[str, Any], key: str) -> list[Any]:
        value = parent.get(key)
        if not isinstance(value, list):
            raise self.refused(f"has no {key} list")
        return value

    def text(self, parent: Mapping[str, Any], key: str) -> str:
        value = parent.get(key)
        if not isinstance(value, str):
            raise self.refused(f"has no {key} text")
        return value

    def integer(self, parent: Mapping[str, Any], key: str) -> int:
        value = parent.get(key)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise self.refused(f"has no {key} count")
        return value

    def version(self, item: Any, number: int) -> Mapping[str, Any]:
        where = f"version {number + 1} of its list"
        if not isinstance(item, Mapping):
            raise self.refused(f"lists {where} as something other than an object")
        for key in ("model", "version"):
            if not isinstance(item.get(key), str):
                raise self.refused(f"lists {where} without a {key} name")
        status = item.get("status")
        if status not in _STATUSES:
            raise self.refused(f"gives {item['model']} version {item['version']} the status {status!r}")
        for key in ("problems", "differences"):
            if not isinstance(item.get(key), list):
                raise self.refused(f"gives {item['model']} version {item['version']} no {key} list")
        error = item.get("error")
        if status == "passed" and (
            item["problems"] or item["differences"] or error or item.get("seal_verified") is False
        ):
            raise self.refused(
                f"marks {item['model']} version {item['version']} passed, with problems, differences, an "
                "error or a seal that no longer matches"
            )
        if status == "error" and not isinstance(error, Mapping):
            raise self.refused(f"marks {item['model']} version {item['version']} error, without its error")
        return item

    def same_audit(self) -> str:
        """What every shard of one audit shares, canonically (key order and model order aside)."""
        selection = dict(self.selection)
        models = selection.get("models")
        selection["models"] = sorted(models) if isinstance(models, list) else models
        server = self.mapping(self.section, "server")
        return json.dumps([selection, dict(server), self.shards], sort_keys=True)


def merge_audit_reports(
    reports: Sequence[tuple[str, Mapping[str, Any]]], options: Mapping[str, Any]
) -> dict[str, Any]:
    """One audit report from the reports of every shard of one selection (`(file, report)` pairs):
    the same versions, verdict and exit code as an unsharded audit of that selection.

    Refused (AuditMergeError, exit 2), naming the files: a report that is not an audit, whose
    audit did not run, or that is not consistent with itself (its status and counts are not what
    its versions say; a version passed with problems); shards of different selections or shard
    counts; a shard missing or given twice; a version in the wrong shard or in two; or shards that
    do not cover the selection. A merge checks that the reports fit together, not who wrote them: a
    report forged whole and consistently is beyond what it can tell (sign or attest the reports
    where that matters).
    """
    from .report.document import audit_envelope

    if not reports:
        raise AuditMergeError("no shard report to merge", fix="give the report files of every shard.")
    shards = [_ShardReport(name, report) for name, report in reports]
    first = shards[0]
    if len({shard.same_audit() for shard in shards}) > 1:
        raise AuditMergeError(
            "the reports are shards of different audits: "
            + ", ".join(
                f"{shard.name} ({shard.index}/{shard.shards}, {shard.fingerprint[:19]})" for shard in shards
            ),
            cause="reports of another run, another selection or another shard count",
            fix="give the reports of one run's shards only.",
        )
    total = first.shards
    seen: dict[int, str] = {}
    for shard in shards:
        if shard.index in seen:
            raise AuditMergeError(
                f"shard {shard.index}/{total} is given twice: {seen[shard.index]} and {shard.name}",
                fix="give each shard's report once.",
            )
        seen[shard.index] = shard.name
    if len(seen) != total:  # before listing what is missing: a forged count must not cost memory
        shown = ", ".join(f"{index}/{total}" for index in sorted(seen))
        missing = (
            [f"{index}/{total}" for index in range(1, total + 1) if index not in seen]
            if total <= 1000
            else []
        )
        raise AuditMergeError(
            f"{total - len(seen)} of {total} shards missing"
            + (f" ({', '.join(missing[:20])}{', ...' if len(missing) > 20 else ''})" if missing else "")
            + f": only {shown} given",
            cause="a shard's job failed or its artifact was not downloaded",
            fix="rerun the missing shards, and give every shard's report.",
        )
    versions: dict[tuple[str, str], Mapping[str, Any]] = {}
    for shard in shards:
        for item in shard.versions:
            key = (item["model"], item["version"])
            if key in versions:
                raise AuditMergeError(
                    f"{key[0]} version {key[1]} is in two shard reports (one is {shard.name})",
                    fix="give the reports of one run's shards only.",
                )
            if total > 1 and shard_of(key[0], key[1], total) != shard.index:
                raise AuditMergeError(
                    f"{shard.name} lists {key[0]} version {key[1]}, which belongs to shard "
                    f"{shard_of(key[0], key[1], total)}/{total}, not {shard.index}/{total}",
                    cause="a report edited or written by another tool",
                    fix="give the reports as the shards wrote them.",
                )
            versions[key] = item
    if len(versions) != first.total_versions or fingerprint(versions) != first.fingerprint:
        raise AuditMergeError(
            f"the shards list {len(versions)} versions, but the selection had {first.total_versions} "
            f"(fingerprint {first.fingerprint})",
            cause="a shard that could not audit every version it was given, or an edited report",
            fix="rerun the shards of this audit.",
        )
    ordered = [versions[key] for key in sorted(versions, key=lambda key: (key[0], _number(key[1])))]
    section = {
        "server": dict(first.mapping(first.section, "server")),
        "selection": dict(first.selection),
        "shard": None,
        "merged_from": [
            f"{shard.index}/{total}: {shard.name}" for shard in sorted(shards, key=lambda shard: shard.index)
        ],
        "jobs": None,
    }
    report = audit_envelope([dict(item) for item in ordered], options, section)
    report["Timings"] = {"total_seconds": max(shard.seconds for shard in shards)}
    return report


def _report_shard(name: str, section: Mapping[str, Any]) -> tuple[int, int]:
    """(index, total) of a shard report; an unsharded report is 1/1."""
    shard = section.get("shard")
    if shard is None:
        return 1, 1
    found = _SHARD.fullmatch(str(shard))
    if not found or not 1 <= int(found[1]) <= int(found[2]):
        raise AuditMergeError(
            f"{name} names its shard {_clipped(str(shard))!r}, not I/N",
            fix="give the reports as the shards wrote them.",
        )
    return int(found[1]), int(found[2])
