"""Remove credentials from text before it reaches a log, a report, a JUnit file or an output.

Two defences, both applied by `redact` to every string (DESIGN.md, "Untrusted text and secrets"):

1. By value. Every secret this process knows is removed wherever it appears, together with the forms
   it takes on the way: percent-encoded, JSON- and repr-escaped, base64 (standard and URL-safe, also
   inside a longer base64 text) and, for a user and password, base64 of `user:password` as HTTP Basic
   sends it. The process knows the values registered with `remember_secrets` and those it derives from
   its environment: the credential variables (`SECRET_VARIABLES`, `USER_PASSWORD_VARIABLES`), the
   userinfo and secret query parameters of MLFLOW_TRACKING_URI / MLFLOW_REGISTRY_URI, and every value
   of the Databricks config file (DATABRICKS_CONFIG_FILE, else ~/.databrickscfg) except those of the
   keys in `NON_SECRET_CONFIG_KEYS`. A worker process inherits these variables, so it knows its
   server's secrets without being told. A derived secret stays known for the life of the process,
   also after its variable or file is gone (the action removes its private HOME before it publishes).
2. By parsing. Credentials the process was never told about are still removed from URIs (the whole
   userinfo, whatever characters a password holds: everything between `://` and the last `@` before
   the host), from secret query parameters (signatures, tokens, keys, X-Amz-*, SAS), from
   Authorization headers and `token: ...` / `"password": "..."` pairs, and token shapes with a known
   prefix (Databricks PATs, JWTs, GitHub tokens).

Secrets shorter than `MIN_SECRET_LENGTH` (4) are not removed by value: a one- to three-character value
("1", "ab", "abc") occurs in versions, sizes, hashes and words, so removing it everywhere would make
every report unreadable (and point at the value by where the holes are), while a secret that short
is guessed in well under a million tries and is not protected by any redaction. Base64 forms of a
secret are removed from 8 characters on, below which they match ordinary text by chance.

The derivation is cached (keyed on the variables' values and the config file's size and mtime), and
strings that can hold nothing to remove take a fast path of a few substring tests, so that redacting
every string of a report costs microseconds per string.
"""

from __future__ import annotations

import base64
import configparser
import functools
import html
import json
import os
import re
import stat
import threading
import urllib.parse
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar, cast

REDACTED = "***"
MIN_SECRET_LENGTH = 4
_MIN_BASE64_FORM = 8
_MAX_CONFIG_BYTES = 1 << 20

# Variables whose whole value is a secret (MLflow, databricks-sdk with its `sensitive` attributes,
# the cloud stores MLflow downloads from, and the runner's own tokens).
SECRET_VARIABLES = (
    "MLFLOW_TRACKING_TOKEN",
    "MLFLOW_TRACKING_PASSWORD",
    "DATABRICKS_TOKEN",
    "DATABRICKS_CLIENT_SECRET",
    "DATABRICKS_PASSWORD",
    "DATABRICKS_AZURE_CLIENT_SECRET",
    "DATABRICKS_METADATA_SERVICE_URL",
    "DATABRICKS_OIDC_TOKEN",
    "ARM_CLIENT_SECRET",
    "GOOGLE_CREDENTIALS",
    "AZURE_CLIENT_SECRET",
    "AZURE_STORAGE_ACCESS_KEY",
    "AZURE_STORAGE_CONNECTION_STRING",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "ACTIONS_RUNTIME_TOKEN",
    "ACTIONS_ID_TOKEN_REQUEST_TOKEN",
    "GITHUB_TOKEN",
)
# (user, password) pairs that clients send as HTTP Basic credentials.
USER_PASSWORD_VARIABLES = (
    ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"),
    ("DATABRICKS_USERNAME", "DATABRICKS_PASSWORD"),
)
URI_VARIABLES = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")
CONFIG_FILE_VARIABLE = "DATABRICKS_CONFIG_FILE"
# The keys of a .databrickscfg profile that are not secret (databricks-sdk's Config attributes that it
# does not mark `sensitive`). Every other key, known or not, is treated as a secret.
NON_SECRET_CONFIG_KEYS = frozenset(
    {
        "host",
        "account_id",
        "workspace_id",
        "auth_type",
        "authorization_details",
        "client_id",
        "username",
        "cluster_id",
        "warehouse_id",
        "serverless_compute_id",
        "group_id",
        "cloud",
        "azure_client_id",
        "azure_environment",
        "azure_tenant_id",
        "azure_use_msi",
        "azure_workspace_resource_id",
        "google_service_account",
        "config_file",
        "profile",
        "databricks_cli_path",
        "discovery_url",
        "oidc_token_env",
        "oidc_token_filepath",
        "token_audience",
        "scopes",
        "skip_verify",
        "debug_headers",
        "debug_truncate_bytes",
        "rate_limit",
        "retry_timeout_seconds",
        "http_timeout_seconds",
        "max_connection_pools",
        "max_connections_per_pool",
        "disable_async_token_refresh",
        "disable_oauth_refresh_token",
        "disable_experimental_files_api_client",
        "experimental_is_unified_host",
        "default_profile",  # in [__settings__]: the name of a profile
        "jobs-api-version",  # the Databricks CLI's
    }
)
# Values that no key of a config can keep secret (flags of keys this module does not know).
_NOT_SECRET_VALUES = frozenset({"true", "false", "yes", "no", "none", "null"})
_WATCHED = (
    *SECRET_VARIABLES,
    *(name for pair in USER_PASSWORD_VARIABLES for name in pair),
    *URI_VARIABLES,
    CONFIG_FILE_VARIABLE,
    "HOME",
)

# -- by parsing -----------------------------------------------------------------------------------

_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*")
# A URI in free text: scheme:// and everything up to the next whitespace.
_URI_IN_TEXT = re.compile(r"(?<![A-Za-z0-9+.\-])([A-Za-z][A-Za-z0-9+.\-]*)://(\S*)")
# MLflow's `dbfs://<profile>@databricks/...` (also runs:, models:) names a profile, not a credential.
_PROFILE_SCHEMES = frozenset({"dbfs", "runs", "models"})
_PROFILE_AUTHORITY = re.compile(r"[A-Za-z0-9_.\-]+(?::[A-Za-z0-9_.\-]+)?@databricks(?=[/?#]|$)")
# Query parameters that are secret whatever their value: short names of signed-URL schemes (Azure
# SAS, OAuth), and any name that contains one of _SECRET_WORDS or starts with a cloud's prefix.
_SECRET_QUERY_NAMES = frozenset(
    {"sig", "signature", "key", "code", "se", "sp", "sv", "sr", "st", "spr", "srt", "ss", "skoid",
     "sktid", "skt", "ske", "sks", "skv", "sdd", "pwd", "pass", "auth", "session"}
)  # fmt: skip
_SECRET_WORDS = (
    "token", "secret", "password", "passwd", "signature", "credential", "apikey", "api_key", "api-key",
    "private_key", "privatekey", "accountkey", "access_key", "accesskey", "sharedaccesskey",
)  # fmt: skip
_SECRET_PREFIXES = ("x-amz-", "x-goog-", "x-databricks-")
# key=value in a query: in free text a value ends at whitespace, `"` or `<>` too (not at `'`: a
# password may hold one; a closing quote may be lost), in a URI only at & ; #.
_QUERY_PAIR = re.compile(r"(?P<lead>[?&;])(?P<key>[A-Za-z0-9_.%\-]+)=(?P<value>[^&;#\s\"<>]*)")
_URI_QUERY_PAIR = re.compile(r"(?P<lead>[?&;])(?P<key>[A-Za-z0-9_.%\-]+)=(?P<value>[^&;#]*)")
# `Bearer x` and `Basic x` (x: base64 of `user:password`), also percent- or form-encoded
# (`Bearer%20x`, `Basic+x`) as a server that echoes a request may write them.
_AUTH_SCHEME = re.compile(
    r"(?P<lead>\b(?P<scheme>Bearer|Basic)(?:\s+|%20|\+))(?P<value>[^\s\"\\<>&]{8,})", re.IGNORECASE
)
_AUTH_HEADER = re.compile(
    r"(?P<lead>\b(?:proxy-)?authorization\\?[\"']?\s*[:=]\s*\\?[\"']?)(?P<value>[^\s\"\\<>,;&]+)",
    re.IGNORECASE,
)
# `token: x`, `"client_secret": "x"`, `password=x`: a key that names a secret, a separator, a value.
# The key ends with the word (`access_token`, `MLFLOW_TRACKING_PASSWORD`, `client_secret`), so that
# `token_type: bearer` or an MLmodel's `tokenizer_type: fast` are left alone.
_SECRET_PAIR = re.compile(
    r"(?P<lead>(?<![A-Za-z0-9_.\-])(?P<key>[A-Za-z0-9_.\-]*(?:"
    r"token|secret|passw(?:or)?d|credentials?|api[_-]?key|private[_-]?key|account[_-]?key|"
    r"access[_-]?key|secret[_-]?key|x-amz-[a-z\-]+|x-goog-[a-z\-]+))\\?[\"']?\s*[:=]\s*\\?[\"']?)"
    r"(?P<value>[^\s\"\\<>,;&)\]}]+)",
    re.IGNORECASE,
)
_TOKEN_SHAPES = re.compile(
    r"\b(?:dapi[0-9a-f]{20,}(?:-\d+)?|dose[0-9a-f]{20,}|gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{30,}"
    r"|eyJ[A-Za-z0-9_\-]{5,}\.eyJ[A-Za-z0-9_\-]{5,}\.[A-Za-z0-9_\-]*)"
)
# Lower-case words without which no rule below can match: a string with none skips the regexes.
_HINTS = (
    "passw", "secret", "token", "credential", "key", "authoriz", "bearer", "basic", "x-amz",
    "x-goog", "dapi", "dose", "eyj", "ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat",
)  # fmt: skip


def _has_hint(text: str) -> bool:
    lowered = text.lower()
    for word in _HINTS:  # noqa: SIM110 - a plain loop: twice as fast as any() over a generator
        if word in lowered:
            return True
    return False


def _secret_query_name(name: str) -> bool:
    lowered = urllib.parse.unquote(name).lower()
    return (
        lowered in _SECRET_QUERY_NAMES
        or any(word in lowered for word in _SECRET_WORDS)
        or lowered.startswith(_SECRET_PREFIXES)
        or lowered.endswith("key")
    )


def _redact_query(query: str) -> str:
    """`a=1&sig=x` -> `a=1&sig=***`; `query` is what follows `?` (without a fragment)."""
    return _URI_QUERY_PAIR.sub(_query_value, "?" + query)[1:]


def _userinfo_end(scheme: str, rest: str) -> int:
    """Where the userinfo of `scheme://rest` ends (the index of its `@`), or -1 when it has none.

    The userinfo is everything up to the last `@`: a password may hold `@`, `/`, `'`, `%`, `?`, `#`
    or anything else, percent-encoded or not. (An `@` in a path or query is taken for one too, and
    more than the credentials is hidden: the safe way to be wrong.)
    """
    if scheme.lower() in _PROFILE_SCHEMES and _PROFILE_AUTHORITY.match(rest):
        return -1
    return rest.rfind("@")


def _split_uri(scheme: str, rest: str) -> tuple[str, str, str | None, str]:
    """`rest` of `scheme://rest` -> (userinfo or "", authority and path, query or None, "#fragment" or "").

    After the userinfo, the split is urllib.parse.urlsplit's (the authority and path end at the
    first `?` or `#`, the query at `#`), done on the string itself so that nothing is normalized.
    """
    end = _userinfo_end(scheme, rest)
    userinfo, remainder = (rest[:end], rest[end + 1 :]) if end >= 0 else ("", rest)
    before, hash_sign, fragment = remainder.partition("#")
    location, question_mark, query = before.partition("?")
    return userinfo, location, query if question_mark else None, hash_sign + fragment


def _redact_uri_structure(scheme: str, rest: str) -> str:
    """`rest` of `scheme://rest` with its userinfo and secret query values replaced."""
    userinfo, location, query, fragment = _split_uri(scheme, rest)
    if not userinfo and query is None:
        return rest
    shown = f"{REDACTED}@{location}" if userinfo else location
    if query is not None:
        shown += "?" + _redact_query(query)
    return shown + fragment


def _redact_by_parsing(text: str) -> str:
    """Credentials found by their shape; a string with none of the hints is returned at once."""
    if "://" in text:
        text = _URI_IN_TEXT.sub(_uri_in_text, text)
    if "=" in text:
        text = _QUERY_PAIR.sub(_query_value, text)
    if _has_hint(text):
        text = _AUTH_SCHEME.sub(_scheme_credential, text)
        text = _AUTH_HEADER.sub(_credential, text)
        text = _SECRET_PAIR.sub(_credential, text)
        text = _TOKEN_SHAPES.sub(REDACTED, text)
    return text


def _uri_in_text(match: re.Match[str]) -> str:
    return f"{match.group(1)}://{_redact_uri_structure(match.group(1), match.group(2))}"


def _query_value(match: re.Match[str]) -> str:
    if not match.group("value") or not _secret_query_name(match.group("key")):
        return match.group(0)
    return f"{match.group('lead')}{match.group('key')}={REDACTED}"


_SCHEME_WORDS = frozenset({"bearer", "basic"})


def _scheme_credential(match: re.Match[str]) -> str:
    """`Bearer <anything>`; `Basic <x>` only where x is base64 of `user:password` (not "basic auth")."""
    value = match.group("value")
    if value.startswith(REDACTED):
        return match.group(0)
    if match.group("scheme").lower() == "basic":
        candidate = urllib.parse.unquote(value)
        try:
            decoded = base64.b64decode(candidate + "=" * (-len(candidate) % 4), validate=True)
        except ValueError:
            return match.group(0)
        if b":" not in decoded:
            return match.group(0)
    return match.group("lead") + REDACTED


def _credential(match: re.Match[str]) -> str:
    """`lead value` -> `lead ***`, unless the value is redacted already or is the scheme word of an
    `Authorization: Bearer ...` (whose credential the scheme rule removed)."""
    value = match.group("value")
    if value.startswith(REDACTED) or value.lower() in _SCHEME_WORDS:
        return match.group(0)
    return match.group("lead") + REDACTED


# -- what a URI or a config holds -----------------------------------------------------------------


def _long_enough(values: Iterable[str]) -> list[str]:
    seen: dict[str, None] = {}
    for value in values:
        if len(value) >= MIN_SECRET_LENGTH:
            seen.setdefault(value, None)
    return list(seen)


def basic_credentials(user: str, password: str) -> list[str]:
    """The Authorization value of HTTP Basic for a user and password (base64 of `user:password`, as
    UTF-8 and, where it differs, as Latin-1, which requests uses), with and without padding."""
    forms: list[str] = []
    for encoding in ("utf-8", "latin-1"):
        try:
            raw = f"{user}:{password}".encode(encoding)
        except UnicodeEncodeError:
            continue
        for encode in (base64.b64encode, base64.urlsafe_b64encode):
            text = encode(raw).decode("ascii")
            forms += [text, text.rstrip("=")]
    return _long_enough(forms)


def secrets_in_uri(uri: str) -> list[str]:
    """The secrets a URI carries: its userinfo (whole, user, password; as written and decoded; and
    the HTTP Basic value of user and password) and the values of its secret query parameters.

    A password may hold an unencoded `@` or `/`: the userinfo is everything between `://` and the
    last `@` before the host. MLflow's `dbfs://<profile>@databricks` names a profile: no secret.
    """
    scheme, separator, rest = uri.strip().partition("://")
    if not separator or not _SCHEME.fullmatch(scheme):
        return []
    userinfo, _, query, _ = _split_uri(scheme, rest)
    found: list[str] = []
    if userinfo:
        user, colon, password = userinfo.partition(":")
        for part in (userinfo, user, password):
            found += [part, urllib.parse.unquote(part)]
        if colon:
            found += basic_credentials(urllib.parse.unquote(user), urllib.parse.unquote(password))
            found += basic_credentials(user, password)
    for match in _URI_QUERY_PAIR.finditer("?" + (query or "")):
        if match.group("value") and _secret_query_name(match.group("key")):
            found += [match.group("value"), urllib.parse.unquote_plus(match.group("value"))]
    return _long_enough(found)


def redact_uri(uri: str) -> str:
    """A URI without credentials: userinfo -> `***`, secret query values -> `***`, known secrets
    removed. The whole string is one URI (a password may hold spaces); a malformed one is handled
    as `secrets_in_uri` does."""
    scheme, separator, rest = uri.partition("://")
    if separator and _SCHEME.fullmatch(scheme):
        uri = f"{scheme}://{_redact_uri_structure(scheme, rest)}"
    return redact(uri)


def _config_parser() -> configparser.RawConfigParser:
    # [DEFAULT] is a profile like any other for databricks-sdk: a default section that cannot occur.
    return configparser.RawConfigParser(
        default_section="\0none\0", strict=False, interpolation=None, allow_no_value=True
    )


def _config_pairs(text: str) -> list[tuple[str, str, str]]:
    """(section, key, value) of a .databrickscfg text as databricks-sdk reads it (configparser:
    `key = value` or `key: value`, indented continuation lines, `#`/`;` comment lines, [DEFAULT] a
    profile like any other), and also every value that a stricter reading would lose or refuse: a
    key given twice, text before the first section, a file configparser rejects."""
    parser = _config_parser()
    pairs: list[tuple[str, str, str]] = []
    try:
        # Keys before the first section (which configparser refuses) go into a section of their own.
        parser.read_string(f"[\0top\0]\n{text}")
    except configparser.Error:
        pass  # the line-by-line reading below still sees every value
    else:
        pairs = [
            (section, key, value)
            for section in parser.sections()
            for key, value in parser.items(section, raw=True)
            if value
        ]
    return pairs + _config_lines(text)


def _config_lines(text: str) -> list[tuple[str, str, str]]:
    """Every `key = value` / `key: value` line on its own (continuation lines belong to the value
    before them and are not keys)."""
    pairs: list[tuple[str, str, str]] = []
    section = ""
    key_indent: int | None = None
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped[0] in "#;":
            continue
        indent = len(line) - len(line.lstrip())
        if key_indent is not None and indent > key_indent:
            continue  # a continuation line: part of the value before it
        key_indent = None
        if stripped.startswith("[") and stripped.endswith("]"):
            section = stripped[1:-1]
            continue
        parts = re.split(r"\s*[=:]\s*", stripped, maxsplit=1)
        if len(parts) == 2:
            key_indent = indent
            if parts[1]:
                pairs.append((section, parts[0].lower(), parts[1]))
    return pairs


def config_secrets(text: str) -> list[str]:
    """Every secret value of a .databrickscfg / databricks-config text: the value of every key that
    is not in NON_SECRET_CONFIG_KEYS (a multi-line value also line by line), the credentials of a
    URI in any value (a host with userinfo), and the HTTP Basic value of a profile's username and
    password."""
    found: list[str] = []
    users: dict[str, set[str]] = {}
    passwords: dict[str, set[str]] = {}
    for section, key, value in _config_pairs(text):
        found += secrets_in_uri(value)
        if key == "username":
            users.setdefault(section, set()).add(value)
        if key in NON_SECRET_CONFIG_KEYS or value.lower() in _NOT_SECRET_VALUES:
            continue
        found.append(value)
        found += [line.strip() for line in value.splitlines()]
        if key == "password":
            passwords.setdefault(section, set()).add(value)
    for section, values in passwords.items():
        for user in users.get(section, ()):
            for password in values:
                found += basic_credentials(user, password)
    return _long_enough(found)


# -- what this process knows ----------------------------------------------------------------------


def secret_forms(secret: str) -> list[str]:
    """The forms a secret takes in text, longest first: as is, percent-encoded (several ways), JSON-,
    repr- and HTML-escaped, and base64 in both alphabets, also the part of it that stays the same
    inside a longer base64 text (three alignments). Empty for a secret shorter than MIN_SECRET_LENGTH."""
    if len(secret) < MIN_SECRET_LENGTH:
        return []
    # As is, stripped, and with its whitespace collapsed (as messages are shown on one line).
    forms = {secret, secret.strip(), " ".join(secret.split())}
    for safe in ("", "/", "!$&'()*+,;=:@"):
        quoted = urllib.parse.quote(secret, safe=safe)
        forms.add(quoted)
        forms.add(re.sub(r"%[0-9A-F]{2}", lambda m: m.group(0).lower(), quoted))
    forms.add(urllib.parse.quote_plus(secret))
    forms.add(json.dumps(secret)[1:-1])
    forms.add(json.dumps(secret, ensure_ascii=False)[1:-1])
    forms.add(repr(secret)[1:-1])
    forms.add(html.escape(secret))
    encoded_forms: set[str] = set()
    raw = secret.encode("utf-8")
    for encode in (base64.b64encode, base64.urlsafe_b64encode):
        encoded = encode(raw).decode("ascii")
        encoded_forms.update((encoded, encoded.rstrip("=")))
        for offset in (0, 1, 2):
            # Inside a longer base64 text the secret starts `offset` bytes into a 3-byte group: the
            # characters made of its own bits alone are the same whatever surrounds it.
            encoded = encode(b"\0" * offset + raw).decode("ascii")
            encoded_forms.add(encoded[-(-8 * offset // 6) : 8 * (offset + len(raw)) // 6])
    chosen = {form for form in forms if len(form) >= MIN_SECRET_LENGTH}
    chosen |= {form for form in encoded_forms if len(form) >= _MIN_BASE64_FORM}
    return sorted(chosen, key=len, reverse=True)


@dataclass(frozen=True, eq=False)
class _Known:
    secrets: frozenset[str]
    forms: tuple[str, ...]  # every form of every secret, longest first


def _build(secrets: Iterable[str]) -> _Known:
    values = frozenset(secrets)
    forms: set[str] = set()
    for value in values:
        forms.update(secret_forms(value))
    return _Known(values, tuple(sorted(forms, key=len, reverse=True)))


class _Registry:
    """What this process knows: registered values, values derived from the environment, and the key
    of the environment they were derived from."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.remembered: set[str] = set()
        self.derived: set[str] = set()
        self.known = _Known(frozenset(), ())
        self.environment_key: tuple[Any, ...] | None = None


_registry = _Registry()


def remember_secrets(values: Iterable[str | None]) -> None:
    """Register secret values (tokens, passwords, client secrets, config values) for every later
    `redact` in this process. Values shorter than MIN_SECRET_LENGTH are ignored."""
    with _registry.lock:
        _registry.remembered.update(value for value in values if value and len(value) >= MIN_SECRET_LENGTH)
        _registry.known = _build(_registry.derived | _registry.remembered)


def forget_secrets() -> None:
    """Forget what was registered and what was derived from the environment (for tests)."""
    with _registry.lock:
        _registry.remembered.clear()
        _registry.derived.clear()
        _registry.known = _Known(frozenset(), ())
        _registry.environment_key = None


def known_secrets() -> frozenset[str]:
    """The secret values this process knows now, registered and derived, without their forms."""
    return _current().secrets


def environment_secrets(environ: Mapping[str, str]) -> list[str]:
    """The secrets an environment names: the credential variables, the Basic value of each user and
    password pair, the URIs' userinfo and secret parameters, and the secret values of the Databricks
    config file (DATABRICKS_CONFIG_FILE, else $HOME/.databrickscfg)."""
    found = [environ.get(name) or "" for name in SECRET_VARIABLES]
    for user_variable, password_variable in USER_PASSWORD_VARIABLES:
        user, password = environ.get(user_variable), environ.get(password_variable)
        if user and password:
            found += basic_credentials(user, password)
    for name in URI_VARIABLES:
        found += secrets_in_uri(environ.get(name) or "")
    data = read_regular_file(databricks_config_path(environ), _MAX_CONFIG_BYTES)
    found += config_secrets(data.decode("utf-8", errors="replace") if data else "")
    return _long_enough(found)


def read_regular_file(path: str | os.PathLike[str], limit: int) -> bytes | None:
    """The first `limit` bytes of a regular file; None for anything else or an error.

    Opened without blocking and checked before reading: a FIFO or a device in place of a config file
    would otherwise block the run (and the one line that reports an interruption) for ever.
    """
    try:
        descriptor = os.open(os.path.expanduser(path), os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return None
    with os.fdopen(descriptor, "rb") as stream:
        if not stat.S_ISREG(os.fstat(descriptor).st_mode):
            return None
        try:
            return stream.read(limit)
        except OSError:
            return None


def databricks_config_path(environ: Mapping[str, str]) -> str:
    """The config file databricks-sdk reads: DATABRICKS_CONFIG_FILE, else $HOME/.databrickscfg."""
    return _config_path_of(environ.get(CONFIG_FILE_VARIABLE), environ.get("HOME"))


@functools.lru_cache(maxsize=8)
def _config_path_of(configured: str | bytes | None, home: str | bytes | None) -> str:
    """databricks_config_path, cached: redact() asks on every call."""
    if configured:
        return os.path.expanduser(os.fsdecode(configured))
    if home:
        return os.path.join(os.fsdecode(home), ".databrickscfg")
    return os.path.expanduser("~/.databrickscfg")


def _file_key(path: str) -> tuple[int, int, int] | None:
    try:
        info = os.stat(path)
    except (OSError, ValueError):
        return None
    return (info.st_ino, info.st_size, info.st_mtime_ns)


def _environment_values() -> tuple[Any, ...]:
    """The watched variables' values. os.environ's own dictionary is read directly where it is one
    (CPython: a lookup costs 50 ns there, 1 us through the mapping), since this runs on every call."""
    data = getattr(os.environ, "_data", None)
    encode = getattr(os.environ, "encodekey", None)
    if isinstance(data, dict) and encode is not None:
        return tuple(map(data.get, _watched_keys(encode)))
    return tuple(map(os.environ.get, _WATCHED))


@functools.cache
def _watched_keys(encode: Any) -> tuple[Any, ...]:
    return tuple(encode(name) for name in _WATCHED)


def _current() -> _Known:
    """The known secrets; derived again only when a watched variable or the config file changed."""
    values = _environment_values()
    key = (values, _file_key(_config_path_of(values[-2], values[-1])))
    if key == _registry.environment_key:
        return _registry.known
    with _registry.lock:
        if key != _registry.environment_key:
            # Union, never replace: a secret stays known after its variable or file is gone.
            _registry.derived.update(environment_secrets(os.environ))
            _registry.known = _build(_registry.derived | _registry.remembered)
            _registry.environment_key = key
        return _registry.known


@functools.lru_cache(maxsize=32)
def _with_extra(known: _Known, extra: tuple[str, ...]) -> tuple[str, ...]:
    forms = set(known.forms)
    for secret in extra:
        forms.update(secret_forms(secret))
    return tuple(sorted(forms, key=len, reverse=True))


def _redact_with(text: str, forms: tuple[str, ...]) -> str:
    for form in forms:
        if form in text:
            text = text.replace(form, REDACTED)
    return _redact_by_parsing(text)


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """`text` without credentials: every known secret (and `secrets`) in any of its forms, URI
    userinfo, secret query parameters, Authorization values, `token: ...` pairs, token shapes."""
    if not text:
        return text
    known = _current()
    extra = tuple(secrets)
    return _redact_with(text, _with_extra(known, extra) if extra else known.forms)


_Tree = TypeVar("_Tree")


def redact_tree(value: _Tree) -> _Tree:
    """A copy of a JSON-like value (dicts, lists, tuples, strings, numbers) with every string, keys
    included, redacted: for reports, summaries and outputs."""
    return cast("_Tree", _TreeRedactor(_current().forms).node(value))


class _TreeRedactor:
    """Redacts the strings of one tree; a string that occurs again (keys, kinds) is looked up."""

    def __init__(self, forms: tuple[str, ...]) -> None:
        self.forms = forms
        self.done: dict[str, str] = {}

    def text(self, value: str) -> str:
        shown = self.done.get(value)
        if shown is None:
            shown = self.done[value] = _redact_with(value, self.forms) if value else value
        return shown

    def node(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, Mapping):
            return {
                (self.text(key) if isinstance(key, str) else key): self.node(item)
                for key, item in value.items()
            }
        if isinstance(value, list):
            return [self.node(item) for item in value]
        if isinstance(value, tuple):
            return tuple(self.node(item) for item in value)
        return value
