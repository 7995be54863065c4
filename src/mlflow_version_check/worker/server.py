"""The one server a worker serves, and the one spelling of a URI that reaches it.

`Server.identity` (the normalized tracking and registry URIs and the Databricks workspace) is the
server's part of every storage location key (locations.location_key). The normalizers rewrite only
spellings that are provably the same (the package docstring lists them).
"""

from __future__ import annotations

import hashlib
import posixpath
import re
import urllib.parse
from dataclasses import dataclass

from ..redact import redact


@dataclass(frozen=True)
class Server:
    """The one server this worker talks to (URIs as given, for messages)."""

    tracking_uri: str
    registry_uri: str
    # For messages: the tracking URI, with the workspace URL of a Databricks profile.
    display: str = ""
    # The Databricks workspace URL(s) the tracking and registry URIs reach ("" when not Databricks).
    workspace: str = ""

    @property
    def shown(self) -> str:
        return redact(self.display or self.tracking_uri)

    @property
    def is_unity_catalog(self) -> bool:
        return urllib.parse.urlparse(self.registry_uri).scheme == "databricks-uc"

    @property
    def identity(self) -> list[str]:
        """What tells this server apart from every other: see `locations.location_key`."""
        return [_normal_uri(self.tracking_uri), _normal_uri(self.registry_uri), self.workspace]


DEFAULT_PORTS = {"http": 80, "https": 443}


def _credentials_digest(userinfo: str) -> str:
    """Credentials of a URI, as part of a key: a different user may be a different view, so they
    count, but never in clear."""
    return "sha256:" + hashlib.sha256(userinfo.encode("utf-8", "surrogatepass")).hexdigest() + "@"


def _normal_http_path(path: str) -> str:
    """An HTTP path without duplicate slashes, dot segments (urllib3 removes them before sending) or a
    trailing slash."""
    collapsed = re.sub("/+", "/", path)
    normal = posixpath.normpath(collapsed) if collapsed else ""
    return "" if normal in (".", "/") else normal.rstrip("/")


def normal_http(uri: str) -> str:
    """An http(s) URL in the one spelling of what it reaches: lower-case scheme and host, no default
    port, a normal path (see _normal_http_path); query kept exactly; the fragment (never sent) dropped."""
    parsed = urllib.parse.urlsplit(uri)
    scheme = parsed.scheme.lower()
    try:
        port = parsed.port
    except ValueError:
        return uri  # not a URL MLflow can use either: kept exactly, so it matches only itself
    userinfo = parsed.netloc.rpartition("@")[0] if "@" in parsed.netloc else ""
    host = parsed.hostname or ""
    netloc = (_credentials_digest(userinfo) if userinfo else "") + (f"[{host}]" if ":" in host else host)
    if port is not None and port != DEFAULT_PORTS.get(scheme):
        netloc += f":{port}"
    return urllib.parse.urlunsplit((scheme, netloc, _normal_http_path(parsed.path), parsed.query, ""))


def _normal_uri(uri: str) -> str:
    """A tracking or registry URI in the one spelling of the server it reaches.

    http(s): see normal_http. Others (databricks://profile, sqlite:, file:, database URIs): the
    scheme lower-cased, credentials as a digest, everything else exactly as given: `sqlite:///a`
    and `sqlite:////a` are different files, and profile names are case-sensitive.
    """
    if not uri:
        return ""
    parsed = urllib.parse.urlsplit(uri)
    scheme = parsed.scheme.lower()
    if scheme in ("http", "https"):
        return normal_http(uri)
    if not scheme:
        return uri
    rest = uri[len(parsed.scheme) :]
    if "@" in parsed.netloc:
        userinfo, _, host = parsed.netloc.rpartition("@")
        rest = rest.replace(parsed.netloc, _credentials_digest(userinfo) + host, 1)
    return scheme + rest
