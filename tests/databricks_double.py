"""A TEST DOUBLE of a Databricks workspace, speaking its HTTP API on 127.0.0.1.

No Databricks workspace can be reached from the test machines, so this double implements what the
real MLflow (3.17) and databricks-sdk (0.162) client code calls for the flows the project uses. The
endpoints were found by running those clients against the double (it records every request in
`requests`) and reading their source (mlflow/store/artifact/*databricks*, dbfs_artifact_repo.py,
databricks/sdk/config.py, credentials_provider.py); ../shared/DATABRICKS_API.md maps them too.

Authentication
  GET  /.well-known/databricks-config                 404, or {oidc_endpoint} when OAuth is enabled
  GET  /oidc/.well-known/oauth-authorization-server   {token_endpoint}
  POST /oidc/v1/token                                  client_credentials (Basic id:secret) -> token
  Every other call needs `Authorization: Bearer <PAT or issued token>`; else 401 UNAUTHENTICATED.
Workspace model registry and tracking (/api/2.0/mlflow/...)
  GET  registered-models/get, model-versions/get, model-versions/get-download-uri,
       model-versions/search, runs/get, logged-models/{id}
Unity Catalog (/api/2.0/mlflow/unity-catalog/...)
  GET  registered-models/get, registered-models/alias, model-versions/get,
       model-versions/get-download-uri, model-versions/search; registered-models:is-databricks-sdk-
       models-artifact-repository-enabled (404: false); POST model-versions/generate-temporary-
       credentials (DEFAULT_STORAGE) -> files under /Models/<catalog>/<schema>/<model>/<version> by
       GET /api/2.0/fs/directories/Models/... and POST /api/2.0/fs/create-download-url {path}
  POST registered-models/get-latest-versions, logged-models/search
Files of runs and logged models (SDK Files API, /WorkspaceInternal/Mlflow/Artifacts/<exp>/Runs/<run>/...
and .../<exp>/LoggedModels/<id>/...)
  HEAD/GET /api/2.0/fs/directories<path>, POST /api/2.0/fs/create-download-url (-> a one-time URL
  on this double), GET /api/2.0/fs/files<path>
Files of registry copies (DBFS REST, dbfs:/databricks/mlflow-registry/...)
  GET /api/2.0/dbfs/get-status, GET /api/2.0/dbfs/list, GET /dbfs<path>

Registering a version copies the run's model files to dbfs:/databricks/mlflow-registry/<id>/models/
<name>, a physically separate copy, as the workspace registry does. Tests seed and tamper with the
workspace through the back door (`create_run`, `put_files`, `register`, `files`); every check goes
through the project's code and MLflow's.
"""

from __future__ import annotations

import base64
import json
import secrets
import threading
import time
import urllib.parse
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.loopback import LoopbackServer

TRACKING_ROOT = "/databricks/mlflow-tracking"
REGISTRY_ROOT = "/databricks/mlflow-registry"
SDK_RUNS_ROOT = "/WorkspaceInternal/Mlflow/Artifacts"


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


@dataclass
class WorkspaceDouble(LoopbackServer):
    """One workspace. `tokens` are valid PATs; `oauth_clients` maps client id -> secret."""

    tokens: set[str] = field(default_factory=lambda: {f"dapi{secrets.token_hex(16)}"})
    oauth_clients: dict[str, str] = field(default_factory=dict)
    files: dict[str, bytes] = field(default_factory=dict)  # DBFS path -> bytes
    runs: dict[str, dict[str, str]] = field(default_factory=dict)
    models: dict[str, dict[str, Any]] = field(default_factory=dict)
    uc_models: dict[str, dict[str, Any]] = field(default_factory=dict)
    logged_models: dict[str, dict[str, str]] = field(default_factory=dict)
    requests: list[str] = field(default_factory=list)
    _issued: set[str] = field(default_factory=set)
    _download_urls: dict[str, str] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # -- back door for tests -------------------------------------------------------------------

    @property
    def token(self) -> str:
        return sorted(self.tokens)[0]

    def create_run(self, experiment_id: str = "1") -> str:
        run_id = uuid.uuid4().hex
        self.runs[run_id] = {
            "experiment_id": experiment_id,
            "artifact_uri": f"dbfs:{TRACKING_ROOT}/{experiment_id}/{run_id}/artifacts",
        }
        return run_id

    def run_path(self, run_id: str, relative: str = "") -> str:
        run = self.runs[run_id]
        base = run["artifact_uri"][len("dbfs:") :]
        return f"{base}/{relative}".rstrip("/")

    def create_logged_model(self, experiment_id: str, contents: Mapping[str, bytes], run_id: str = "") -> str:
        """An MLflow 3 logged model (`models:/m-<id>`) with its files under logged_models/<id>/artifacts."""
        model_id = f"m-{uuid.uuid4().hex}"
        artifact_path = f"{TRACKING_ROOT}/{experiment_id}/logged_models/{model_id}/artifacts"
        self.logged_models[model_id] = {
            "model_id": model_id,
            "experiment_id": experiment_id,
            "name": "model",
            "artifact_uri": f"dbfs:{artifact_path}",
            "status": "LOGGED_MODEL_READY",
            "source_run_id": run_id,
        }
        self.put_files(artifact_path, contents)
        return model_id

    def put_files(self, base_path: str, contents: Mapping[str, bytes]) -> None:
        for relative, data in contents.items():
            self.files[f"{base_path.rstrip('/')}/{relative}"] = data

    def register(
        self, name: str, run_id: str, model_path: str = "model", stage: str = "None", logged_model: str = ""
    ) -> str:
        """Create a version from a run's model (or a logged model); the registry copies its files."""
        model = self.models.setdefault(name, {"id": uuid.uuid4().hex, "versions": {}})
        version = str(len(model["versions"]) + 1)
        if logged_model:
            source_path = self.logged_models[logged_model]["artifact_uri"][len("dbfs:") :]
        else:
            source_path = self.run_path(run_id, model_path)
        registry_path = f"{REGISTRY_ROOT}/{uuid.uuid4().hex}/models/{model_path}"
        for path, data in list(self.files.items()):
            if path.startswith(source_path + "/"):
                self.files[registry_path + path[len(source_path) :]] = data
        now = int(time.time() * 1000)
        model["versions"][version] = {
            "name": name,
            "version": version,
            "source": f"models:/{logged_model}" if logged_model else f"dbfs:{source_path}",
            "run_id": run_id,
            "status": "READY",
            "current_stage": stage,
            "creation_timestamp": now,
            "last_updated_timestamp": now,
            "user_id": "double@example.com",
            "tags": [],
            "_registry_path": registry_path,
        }
        return version

    def register_uc(
        self, full_name: str, run_id: str, model_path: str = "model", aliases: tuple[str, ...] = ()
    ) -> str:
        """A Unity Catalog version: its own copy under /Models/<catalog>/<schema>/<model>/<version>."""
        model = self.uc_models.setdefault(full_name, {"versions": {}, "aliases": {}})
        version = str(len(model["versions"]) + 1)
        source_path = self.run_path(run_id, model_path)
        storage_path = f"/Models/{full_name.replace('.', '/')}/{version}"
        for path, data in list(self.files.items()):
            if path.startswith(source_path + "/"):
                self.files[storage_path + path[len(source_path) :]] = data
        for alias in aliases:
            model["aliases"][alias] = version
        now = int(time.time() * 1000)
        model["versions"][version] = {
            "name": full_name,
            "version": version,
            "source": f"dbfs:{source_path}",
            "run_id": run_id,
            "status": "READY",
            "storage_location": f"s3://double-uc-bucket/models/{uuid.uuid4().hex}/versions/{version}",
            "creation_timestamp": now,
            "last_updated_timestamp": now,
            "_storage_path": storage_path,
        }
        return version

    def uc_storage_path(self, full_name: str, version: str) -> str:
        path: str = self.uc_models[full_name]["versions"][version]["_storage_path"]
        return path

    def registry_path(self, name: str, version: str) -> str:
        path: str = self.models[name]["versions"][version]["_registry_path"]
        return path

    # -- HTTP ----------------------------------------------------------------------------------

    def __enter__(self) -> WorkspaceDouble:
        double = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass

            def _send(self, status: int, body: bytes, content_type: str = "application/json") -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def _json(self, status: int, payload: Mapping[str, Any]) -> None:
                self._send(status, json.dumps(payload).encode())

            def _handle(self) -> None:
                parsed = urllib.parse.urlparse(self.path)
                query = {key: values[0] for key, values in urllib.parse.parse_qs(parsed.query).items()}
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                with double._lock:
                    double.requests.append(f"{self.command} {self.path}")
                try:
                    status, payload = double._route(
                        self.command, parsed.path, query, body, dict(self.headers)
                    )
                except ApiError as error:
                    self._json(error.status, {"error_code": error.code, "message": error.message})
                    return
                if isinstance(payload, bytes):
                    self._send(status, payload, "application/octet-stream")
                else:
                    self._json(status, payload)

            do_GET = do_POST = do_HEAD = do_PUT = _handle

        self._serve(Handler)
        return self

    # -- routing -------------------------------------------------------------------------------

    def _authorized(self, headers: Mapping[str, str]) -> None:
        header = headers.get("Authorization", "")
        token = header[len("Bearer ") :] if header.startswith("Bearer ") else ""
        if token not in self.tokens and token not in self._issued:
            raise ApiError(401, "UNAUTHENTICATED", "Invalid access token.")

    def _route(  # noqa: PLR0911, PLR0912 - one branch per endpoint keeps the map readable
        self, method: str, path: str, query: dict[str, str], body: bytes, headers: Mapping[str, str]
    ) -> tuple[int, Mapping[str, Any] | bytes]:
        if path == "/.well-known/databricks-config":
            if not self.oauth_clients:
                raise ApiError(404, "NOT_FOUND", "not found")
            return 200, {"oidc_endpoint": f"{self.url}/oidc"}
        if path == "/oidc/.well-known/oauth-authorization-server":
            return 200, {
                "issuer": f"{self.url}/oidc",
                "token_endpoint": f"{self.url}/oidc/v1/token",
                "authorization_endpoint": f"{self.url}/oidc/v1/authorize",
            }
        if path == "/oidc/v1/token" and method == "POST":
            return self._token(body, headers)
        if path.startswith("/download/"):
            return self._one_time_download(path)
        self._authorized(headers)
        request = (
            json.loads(body)
            if body and headers.get("Content-Type", "").startswith("application/json")
            else {}
        )
        if "is-databricks-sdk-models-artifact-repository-enabled" in path:
            raise ApiError(404, "ENDPOINT_NOT_FOUND", "not enabled")  # false: the presigned-URL path
        uc_prefix = "/api/2.0/mlflow/unity-catalog/"
        if path.startswith(uc_prefix):
            return 200, self._unity_catalog(method, path[len(uc_prefix) :], query, request)
        prefix = "/api/2.0/mlflow/"
        if path.startswith(prefix):
            return 200, self._mlflow(method, path[len(prefix) :], query, request)
        if path.startswith("/api/2.0/fs/directories"):
            return self._fs_directory(method, path[len("/api/2.0/fs/directories") :])
        if path == "/api/2.0/fs/create-download-url":
            target = query.get("path") or request.get("path", "")
            self._dbfs_file(self._from_sdk_path(target))
            ticket = secrets.token_urlsafe(12)
            self._download_urls[ticket] = target
            return 200, {"url": f"{self.url}/download/{ticket}", "headers": []}
        if path.startswith("/api/2.0/fs/files"):
            return 200, self._dbfs_file(self._from_sdk_path(path[len("/api/2.0/fs/files") :]))
        if path == "/api/2.0/dbfs/get-status":
            return 200, self._dbfs_status(query["path"])
        if path == "/api/2.0/dbfs/list":
            return 200, self._dbfs_list(query["path"])
        if path.startswith("/dbfs/"):
            return 200, self._dbfs_file(path[len("/dbfs") :])
        raise ApiError(404, "ENDPOINT_NOT_FOUND", f"No API found for '{method} {path}'")

    def _token(self, body: bytes, headers: Mapping[str, str]) -> tuple[int, Mapping[str, Any]]:
        form = dict(urllib.parse.parse_qsl(body.decode()))
        header = headers.get("Authorization", "")
        client_id = client_secret = ""
        if header.startswith("Basic "):
            client_id, _, client_secret = base64.b64decode(header[6:]).decode().partition(":")
        client_id = client_id or form.get("client_id", "")
        client_secret = client_secret or form.get("client_secret", "")
        if (
            form.get("grant_type") != "client_credentials"
            or self.oauth_clients.get(client_id) != client_secret
        ):
            # The OIDC token endpoint answers in OAuth 2.0's error format (RFC 6749 5.2), not the REST API's.
            return 401, {"error": "invalid_client", "error_description": "Client authentication failed"}
        token = f"oauth-{secrets.token_hex(16)}"
        self._issued.add(token)
        return 200, {"access_token": token, "token_type": "Bearer", "expires_in": 3600, "scope": "all-apis"}

    def _one_time_download(self, path: str) -> tuple[int, bytes]:
        target = self._download_urls.pop(path[len("/download/") :], None)
        if target is None:
            raise ApiError(403, "PERMISSION_DENIED", "download URL expired")
        return 200, self._dbfs_file(self._from_sdk_path(target))

    # -- storage -------------------------------------------------------------------------------

    def _from_sdk_path(self, sdk_path: str) -> str:
        """/WorkspaceInternal/Mlflow/Artifacts/<exp>/Runs/<run>/<rest> -> its DBFS path; /Models/... as is."""
        if sdk_path.startswith("/Models/"):
            return sdk_path.rstrip("/")
        parts = sdk_path.strip("/").split("/")
        if sdk_path.startswith(SDK_RUNS_ROOT) and len(parts) >= 6 and parts[4] == "Runs":
            experiment_id, run_id, rest = parts[3], parts[5], "/".join(parts[6:])
            return f"{TRACKING_ROOT}/{experiment_id}/{run_id}/{rest}".rstrip("/")
        if sdk_path.startswith(SDK_RUNS_ROOT) and len(parts) >= 6 and parts[4] == "LoggedModels":
            experiment_id, model_id, rest = parts[3], parts[5], "/".join(parts[6:])
            return f"{TRACKING_ROOT}/{experiment_id}/logged_models/{model_id}/{rest}".rstrip("/")
        raise ApiError(404, "NOT_FOUND", f"path {sdk_path} not found")

    def _children(self, directory: str) -> list[tuple[str, bool, int]]:
        directory = directory.rstrip("/")
        entries: dict[str, tuple[bool, int]] = {}
        for path, data in self.files.items():
            if path.startswith(directory + "/"):
                head = path[len(directory) + 1 :].split("/", 1)
                child = f"{directory}/{head[0]}"
                entries[child] = (True, 0) if len(head) > 1 else (False, len(data))
        return sorted((path, is_dir, size) for path, (is_dir, size) in entries.items())

    def _dbfs_file(self, path: str) -> bytes:
        if path not in self.files:
            raise ApiError(404, "NOT_FOUND", f"file {path} does not exist")
        return self.files[path]

    def _dbfs_status(self, path: str) -> Mapping[str, Any]:
        path = path.rstrip("/")
        if path in self.files:
            return {"path": path, "is_dir": False, "file_size": len(self.files[path])}
        if self._children(path):
            return {"path": path, "is_dir": True, "file_size": 0}
        raise ApiError(404, "RESOURCE_DOES_NOT_EXIST", f"No file or directory exists on path {path}.")

    def _dbfs_list(self, path: str) -> Mapping[str, Any]:
        self._dbfs_status(path)
        children = self._children(path)
        if not children:
            return {}
        return {"files": [{"path": p, "is_dir": d, "file_size": s} for p, d, s in children]}

    def _fs_directory(self, method: str, sdk_path: str) -> tuple[int, Mapping[str, Any]]:
        directory = self._from_sdk_path(sdk_path)
        children = self._children(directory)
        if not children:
            raise ApiError(404, "NOT_FOUND", f"directory {sdk_path} not found")
        if method == "HEAD":
            return 200, {}
        root = sdk_path.rstrip("/")
        contents = [
            {"path": f"{root}/{child.rsplit('/', 1)[1]}", "is_directory": is_dir, "file_size": size,
             "name": child.rsplit("/", 1)[1]}
            for child, is_dir, size in children
        ]  # fmt: skip
        return 200, {"contents": contents}

    # -- MLflow REST ---------------------------------------------------------------------------

    def _version(self, name: str, version: str) -> dict[str, Any]:
        if name not in self.models:
            raise ApiError(404, "RESOURCE_DOES_NOT_EXIST", f"Registered model '{name}' does not exist.")
        found = self.models[name]["versions"].get(str(version))
        if found is None:
            raise ApiError(404, "RESOURCE_DOES_NOT_EXIST", f"Model version {name}/{version} does not exist.")
        return {key: value for key, value in found.items() if not key.startswith("_")}

    def _mlflow(  # noqa: PLR0911, PLR0912 - one branch per endpoint keeps the map readable
        self, method: str, endpoint: str, query: dict[str, str], request: dict[str, Any]
    ) -> Mapping[str, Any]:
        if endpoint == "registered-models/get":
            name = query["name"]
            if name not in self.models:
                raise ApiError(404, "RESOURCE_DOES_NOT_EXIST", f"Registered model '{name}' does not exist.")
            return {"registered_model": {"name": name, "latest_versions": []}}
        if endpoint == "model-versions/get":
            return {"model_version": self._version(query["name"], query["version"])}
        if endpoint == "model-versions/get-download-uri":
            self._version(query["name"], query["version"])
            path = self.models[query["name"]]["versions"][query["version"]]["_registry_path"]
            return {"artifact_uri": f"dbfs:{path}"}
        if endpoint == "registered-models/get-latest-versions":
            name = request["name"]
            if name not in self.models:
                raise ApiError(404, "RESOURCE_DOES_NOT_EXIST", f"Registered model '{name}' does not exist.")
            stages = [stage.lower() for stage in request.get("stages") or []]
            latest: dict[str, dict[str, Any]] = {}
            for version in self.models[name]["versions"].values():
                stage = version["current_stage"]
                if stages and stage.lower() not in stages:
                    continue
                if stage not in latest or int(version["version"]) > int(latest[stage]["version"]):
                    latest[stage] = version
            return {"model_versions": [self._version(name, v["version"]) for v in latest.values()]}
        if endpoint == "model-versions/search":
            name = query.get("filter", "").split("=", 1)[-1].strip().strip("'\"")
            versions = self.models.get(name, {}).get("versions", {})
            return {"model_versions": [self._version(name, v) for v in versions]}
        if endpoint == "runs/get":
            run = self.runs.get(query["run_id"])
            if run is None:
                raise ApiError(404, "RESOURCE_DOES_NOT_EXIST", f"Run '{query['run_id']}' not found.")
            info = {
                "run_id": query["run_id"],
                "run_uuid": query["run_id"],
                "experiment_id": run["experiment_id"],
                "artifact_uri": run["artifact_uri"],
                "status": "FINISHED",
                "lifecycle_stage": "active",
            }
            return {"run": {"info": info, "data": {}}}
        if endpoint == "logged-models/search":
            return {"models": []}
        if endpoint.startswith("logged-models/") and method == "GET":
            found = self.logged_models.get(endpoint[len("logged-models/") :])
            if found is None:
                raise ApiError(404, "RESOURCE_DOES_NOT_EXIST", f"Logged model {endpoint} not found.")
            return {"model": {"info": dict(found), "data": {}}}
        raise ApiError(404, "ENDPOINT_NOT_FOUND", f"No API found for '{method} /api/2.0/mlflow/{endpoint}'")

    # -- Unity Catalog ---------------------------------------------------------------------------

    def _uc_version(self, name: str, version: str) -> dict[str, Any]:
        model = self.uc_models.get(name)
        if model is None:
            raise ApiError(404, "RESOURCE_DOES_NOT_EXIST", f"Registered model '{name}' does not exist.")
        found = model["versions"].get(str(version))
        if found is None:
            raise ApiError(404, "RESOURCE_DOES_NOT_EXIST", f"Model version {name}/{version} does not exist.")
        aliases = [{"alias": a, "version": v} for a, v in model["aliases"].items() if v == str(version)]
        return {**{k: v for k, v in found.items() if not k.startswith("_")}, "aliases": aliases}

    def _unity_catalog(
        self, method: str, endpoint: str, query: dict[str, str], request: dict[str, Any]
    ) -> Mapping[str, Any]:
        if endpoint == "registered-models/get":
            name = query["name"]
            if name not in self.uc_models:
                raise ApiError(404, "RESOURCE_DOES_NOT_EXIST", f"Registered model '{name}' does not exist.")
            aliases = [{"alias": a, "version": v} for a, v in self.uc_models[name]["aliases"].items()]
            return {"registered_model": {"name": name, "aliases": aliases}}
        if endpoint == "model-versions/get":
            return {"model_version": self._uc_version(query["name"], query["version"])}
        if endpoint == "registered-models/alias":
            name, alias = query["name"], query["alias"]
            version = self.uc_models.get(name, {}).get("aliases", {}).get(alias)
            if version is None:
                raise ApiError(404, "RESOURCE_DOES_NOT_EXIST", f"Alias {alias} of {name} does not exist.")
            return {"model_version": self._uc_version(name, version)}
        if endpoint == "model-versions/get-download-uri":
            return {"artifact_uri": self._uc_version(query["name"], query["version"])["storage_location"]}
        if endpoint == "model-versions/search":
            name = query.get("filter", "").split("=", 1)[-1].strip().strip("'\"")
            versions = self.uc_models.get(name, {}).get("versions", {})
            return {"model_versions": [self._uc_version(name, v) for v in versions]}
        if endpoint == "model-versions/generate-temporary-credentials":
            self._uc_version(request["name"], request["version"])
            return {
                "credentials": {
                    "storage_mode": "DEFAULT_STORAGE",
                    "expiration_time": int(time.time() + 900) * 1000,
                }
            }
        raise ApiError(404, "ENDPOINT_NOT_FOUND", f"No API found for '{method} unity-catalog/{endpoint}'")
