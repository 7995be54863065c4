"""Version resolution: what a `version_or_stage` names, in the order of DESIGN.md."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from ..errors import AliasNotFound, ModelNotFound, ModelVersionNotFound, StagesUnsupported, VersionCheckError
from ..oms import SEAL_TAG
from ..protocol import RegistryVersion
from ..redact import redact
from .failures import error_code, means_not_found, registry_call
from .server import Server

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

STAGES = {"none": "None", "staging": "Staging", "production": "Production", "archived": "Archived"}


def version_info(mv: ModelVersion, resolved_by: str, version_or_stage: str) -> RegistryVersion:
    """The registry's record of a version (its download URI is read separately, after it)."""
    return RegistryVersion(
        name=mv.name,
        version=str(mv.version),
        version_or_stage=version_or_stage,
        resolved_by=resolved_by,
        source=mv.source or "",
        run_id=mv.run_id or None,
        stage=getattr(mv, "current_stage", None) or None,
        aliases=tuple(sorted(getattr(mv, "aliases", None) or [])),
        status=str(mv.status) if mv.status is not None else None,
        creation_timestamp=mv.creation_timestamp,
        seal_tag=(getattr(mv, "tags", None) or {}).get(SEAL_TAG),
    )


def _not_found_model(name: str, server: Server) -> Callable[[], VersionCheckError]:
    registry = redact(server.registry_uri)
    return lambda: ModelNotFound(
        f"registered model '{name}' not found on {registry}",
        cause="a typo in the name or the wrong server/workspace",
        fix="check the name (it is case-sensitive) and the tracking/registry URI.",
        server=registry,
    )


def filter_literal(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def resolve_version(
    client: MlflowClient, server: Server, name: str, version_or_stage: str
) -> tuple[ModelVersion, str]:
    """Find the model version that version_or_stage names; return it and how it was resolved."""
    spec = version_or_stage.strip()

    def model_must_exist() -> None:
        # Asked only after a look-up found nothing, to tell "no such model" apart from "no such
        # version/alias" (one registry call fewer for every version that exists).
        if not server.is_unity_catalog:
            with registry_call(server, f"reading registered model '{name}'", _not_found_model(name, server)):
                client.get_registered_model(name)

    def by_alias(alias: str) -> tuple[ModelVersion, str]:
        def missing() -> VersionCheckError:
            model_must_exist()
            return AliasNotFound(
                f"registered model '{name}' has no alias '{alias}'",
                cause="a typo, or the alias was never set or was moved",
                fix="set it (MlflowClient.set_registered_model_alias) or give a version number, "
                "'latest' or a stage.",
            )

        def alias_missing(exc: BaseException) -> bool:
            # Open-source servers answer an unknown alias with INVALID_PARAMETER_VALUE.
            return means_not_found(exc) or (
                error_code(exc) == "INVALID_PARAMETER_VALUE" and "alias" in str(exc).lower()
            )

        with registry_call(server, f"resolving alias '{alias}' of '{name}'", missing, alias_missing):
            return client.get_model_version_by_alias(name, alias), "alias"

    if spec.startswith("@"):  # a bare "@" is refused before any worker starts (core.py)
        return by_alias(spec[1:])
    if spec.isdigit():

        def missing_version() -> VersionCheckError:
            model_must_exist()
            return ModelVersionNotFound(
                f"version {spec} of registered model '{name}' not found",
                cause="the version was deleted or never registered here",
                fix="give an existing version, 'latest', a stage or '@alias'.",
            )

        with registry_call(server, f"reading version {spec} of '{name}'", missing_version):
            return client.get_model_version(name, spec), "version"
    if spec.lower() == "latest":
        versions: list[ModelVersion] = []
        with registry_call(server, f"listing versions of '{name}'", _not_found_model(name, server)):
            token: str | None = None
            while True:
                page = client.search_model_versions(
                    filter_string=f"name={filter_literal(name)}", max_results=1000, page_token=token
                )
                versions.extend(page)
                token = page.token
                if not token:
                    break
        if not versions:
            model_must_exist()
            raise ModelVersionNotFound(
                f"registered model '{name}' has no versions", fix="register a version first."
            )
        return max(versions, key=lambda mv: int(mv.version)), "latest"
    if spec.lower() in STAGES:
        stage = STAGES[spec.lower()]
        if server.is_unity_catalog:
            registry = redact(server.registry_uri)
            raise StagesUnsupported(
                f"stage '{spec}' cannot be used with Unity Catalog ({registry}): it has no stages",
                fix="use an alias ('@champion') or a version number.",
                server=registry,
            )
        with registry_call(
            server, f"finding the {stage} version of '{name}'", _not_found_model(name, server)
        ):
            found = client.get_latest_versions(name, stages=[stage])
        if not found:
            raise ModelVersionNotFound(
                f"registered model '{name}' has no version in stage {stage}",
                cause="no version was transitioned to it",
                fix="give a version number, 'latest' or '@alias'.",
            )
        return max(found, key=lambda mv: int(mv.version)), "stage"
    return by_alias(spec)
