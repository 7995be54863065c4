"""Turning MLflow's, requests' and databricks-sdk's exceptions into the named errors.

One place per kind of call: `registry_call` for a registry or tracking call, `download_error` for
the download of one file; `raise_common` holds what a failure means whatever the call.
"""

from __future__ import annotations

import os
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import NoReturn

from ..errors import (
    ArtifactDownloadError,
    ArtifactNotFound,
    AuthenticationFailed,
    RegistryError,
    ServerUnreachable,
    UnsafeArtifactPath,
    VersionCheckError,
)
from ..redact import redact
from .server import Server


def _exception_chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _is_connection_failure(exc: BaseException) -> bool:
    import requests

    # databricks-sdk raises the builtin TimeoutError when its retry budget runs out.
    kinds = (requests.exceptions.ConnectionError, requests.exceptions.Timeout, TimeoutError, ConnectionError)
    return any(isinstance(link, kinds) for link in _exception_chain(exc))


def _connection_reason(exc: BaseException) -> str:
    """The root cause of a connection failure in a few words, not urllib3's paragraph."""
    text = " ".join(str(link) for link in _exception_chain(exc)).lower()
    for needle, reason in (
        ("refused", "connection refused"),
        ("timed out", "timed out"),
        ("timeout", "timed out"),
        ("name or service not known", "host name not found"),
        ("nodename nor servname", "host name not found"),
        ("temporary failure in name resolution", "host name not found"),
        ("certificate verify failed", "TLS certificate not trusted"),
        ("ssl", "TLS handshake failed"),
        ("connection reset", "connection reset"),
        ("remote end closed", "connection closed by the server"),
    ):
        if needle in text:
            return reason
    return type(list(_exception_chain(exc))[-1]).__name__


def _http_status(exc: BaseException) -> int | None:
    import requests

    for link in _exception_chain(exc):
        if isinstance(link, requests.HTTPError) and link.response is not None:
            return int(link.response.status_code)
    return None


def error_code(exc: BaseException) -> str | None:
    from mlflow.exceptions import MlflowException

    for link in _exception_chain(exc):
        if isinstance(link, MlflowException):
            return str(link.error_code)
    return None


def short(exc: BaseException) -> str:
    # Redacted before its whitespace is collapsed (a secret with a tab or two spaces would no longer
    # match itself) and before it is cut (a cut through a secret would leave its start in clear).
    text = " ".join(redact(str(exc)).split())
    return text if len(text) <= 300 else text[:297] + "..."


def _from_databricks_sdk(exc: BaseException) -> bool:
    """A ValueError raised inside databricks-sdk: how it reports refused or missing credentials
    (an OAuth token request answered 401, no usable auth method), not a bug of this tool."""
    if not isinstance(exc, ValueError):
        return False
    frames = traceback.extract_tb(exc.__traceback__)
    return any(f"{os.sep}databricks{os.sep}sdk{os.sep}" in frame.filename for frame in frames)


_DATABRICKS_CREDENTIALS_FIX = (
    "check the profile's token (or client_id and client_secret) in .databrickscfg, or the "
    "DATABRICKS_* variables."
)


def raise_common(exc: BaseException, server: Server, doing: str) -> None:
    """Raise the named error for failures that mean the same whatever the call."""
    if isinstance(exc, ValueError):
        if not _from_databricks_sdk(exc):
            raise exc  # a bug, not a server's answer: the worker ends and the parent says so
        raise AuthenticationFailed(
            f"{doing} failed: {server.shown} refused the credentials (authentication failed: {short(exc)})",
            cause="a wrong or expired client secret or token",
            fix=_DATABRICKS_CREDENTIALS_FIX,
            server=server.shown,
        ) from exc
    code = error_code(exc)
    status = _http_status(exc)
    if _is_connection_failure(exc):
        raise ServerUnreachable(
            f"{doing} failed: no answer from {server.shown} ({_connection_reason(exc)})",
            cause="the server is down, the URI or port is wrong, or a proxy blocks it",
            fix="check the tracking URI and that the server answers, or raise {option:timeout}.",
            server=server.shown,
        ) from exc
    if code in ("UNAUTHENTICATED", "PERMISSION_DENIED") or status in (401, 403):
        kind = (
            "refused the permission"
            if code == "PERMISSION_DENIED" or status == 403
            else ("refused the credentials")
        )
        raise AuthenticationFailed(
            f"{doing} failed: {server.shown} {kind} (authentication failed)",
            cause="a missing, expired or wrong token, or no access to this model",
            fix=(
                _DATABRICKS_CREDENTIALS_FIX
                if server.display.startswith("the workspace")
                else "check MLFLOW_TRACKING_TOKEN, or MLFLOW_TRACKING_USERNAME and PASSWORD."
            ),
            server=server.shown,
        ) from exc


def means_not_found(exc: BaseException) -> bool:
    return error_code(exc) in ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND") or _http_status(exc) == 404


@contextmanager
def registry_call(
    server: Server,
    doing: str,
    not_found: Callable[[], VersionCheckError],
    means_not_found: Callable[[BaseException], bool] = means_not_found,
) -> Iterator[None]:
    """Translate failures of one registry/tracking call; `not_found` builds the 404 error."""
    import requests
    from mlflow.exceptions import MlflowException

    try:
        yield
    except (MlflowException, requests.RequestException, TimeoutError, ConnectionError, ValueError) as exc:
        raise_common(exc, server, doing)
        if means_not_found(exc):
            raise not_found() from exc
        raise RegistryError(
            f"{doing} failed: the server answered {short(exc)}",
            cause="a server-side problem or an MLflow version the server does not support",
            fix="rerun with {option:verbose} and check the server's log.",
            server=server.shown,
        ) from exc


def download_error(exc: BaseException, server: Server, location: str, path: str) -> NoReturn:
    if isinstance(exc, OSError) and getattr(exc, "errno", None) == 28:
        raise ArtifactDownloadError(
            f"downloading {path} of {redact(location)} failed: no space left on the device of the "
            "download directory",
            fix="free space or give {option:download_dir} on a larger file system.",
        ) from exc
    raise_common(exc, server, f"downloading {path} of {redact(location)}")
    if "invalid path" in str(exc).lower():
        # MLflow's own check: the file resolves outside the store (a link or a changed tree).
        raise UnsafeArtifactPath(
            f"{path} of {redact(location)} resolves outside the artifact store ({short(exc)})",
            # The cause's sentence is followed by what was done, as the message has always said it.
            cause="a link or a hostile store. Nothing was written for it",
            fix="inspect the model's storage.",
        ) from exc
    if _http_status(exc) == 404:
        raise ArtifactNotFound(
            f"{path} of {redact(location)} is listed but cannot be read (404)",
            cause="the model is being deleted or the store is inconsistent",
            fix="check the model's storage.",
        ) from exc
    raise ArtifactDownloadError(
        f"downloading {path} of {redact(location)} failed: {short(exc)}",
        cause="the connection dropped or the store refused the read",
        fix="rerun; if it persists, check the server's artifact store.",
    ) from exc
