"""OpenSSF Model Signing (OMS) v1.0 statements: write them, read them, verify a signed one.

An OMS statement is an in-toto Statement v1 whose predicate lists every file of a model with its
SHA-256 (`resources`) and whose one subject carries the model's root digest: SHA-256 over the
resources' raw digests in their listed order. `statement` and `root_digest` compute what the
reference implementation, the `model-signing` package (1.1.1), computes for the same files;
`read_statement` parses one (ours, or the payload `model_signing` signed) strictly into a
`Reference`; `verify_signature` checks a Sigstore bundle signed with a key (`model_signing sign key`)
with that library and returns the reference it signed; `checksums_text` writes the same digests for
`sha256sum -c`.

What model-signing 1.1.1 does, and this module follows:

- resources are sorted by path component (it sorts `PurePosixPath`s), not as plain strings: `a/b`
  comes before `a-b` and `a.txt`, because `a` < `a-b`, where string order puts `/` after ` `, `-`, `.`;
- each resource is `{name, algorithm: "sha256", digest}`, the name relative to the model root in
  POSIX form; only regular files are listed (a symlink fails its `files` serialization);
- the subject is `{name, digest: {sha256: <root>}}`, its name the model directory's last component
  (informative only: its verifier never compares it);
- `serialization` is `{method: "files", hash_type: "sha256", allow_symlinks: false}`, plus
  `ignore_paths` when any path is ignored, which is always with its defaults: `.git`,
  `.gitattributes`, `.github` and `.gitignore` at the model's top level (DEFAULT_IGNORE_PATHS), and
  its CLI adds the signature file when it lies inside the model. Its files under an ignore path are
  left out of `resources`.

Importing this module imports neither MLflow nor model_signing (an optional extra, `signing`).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from .errors import ManifestError, SignatureMismatch
from .manifest import FileEntry

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://model_signing/signature/v1.0"
# The DSSE payload type of a signed statement, and the bundle format `model_signing sign key` writes.
PAYLOAD_TYPE = "application/vnd.in-toto+json"
BUNDLE_MEDIA_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json"
# What model_signing ignores unless told otherwise (`--no-ignore-git-paths`), as it writes them.
DEFAULT_IGNORE_PATHS = (".git", ".gitattributes", ".github", ".gitignore")
DIGEST_PREFIX = "sha256:"
# The model version tag `seal --record-tag` sets to the root digest and `verify --recorded-tag` reads.
SEAL_TAG = "mlflow_version_check.seal.root_digest"
# A seal keeps a copy of the sealed MLmodel next to its manifest, `<manifest>.MLmodel`: the manifest
# lists only its digest, and a copy of the version (new run id, new timestamps) verifies by content.
SEALED_MLMODEL_SUFFIX = ".MLmodel"
# The curves model_signing signs and verifies with (its sign_ec_key module).
SIGNING_CURVES = frozenset({"secp256r1", "secp384r1", "secp521r1"})

_HEX_DIGEST = re.compile(r"[0-9a-f]{64}")
_SHOWN_CHARACTERS = 100

_MALFORMED_CAUSE = "it was not written by `seal` or `model_signing`, or it was edited or cut short since"
_MALFORMED_FIX = "use the statement as `seal` wrote it, or the bundle as `model_signing` signed it."
_INSTALL_FIX = "install the optional extra: pip install 'mlflow-version-check[signing]'."


def resource_order(name: str) -> tuple[str, ...]:
    """Sort key of a resource name: by path component, as model_signing orders its resources."""
    return tuple(name.split("/"))


def ordered_names(names: Iterable[str]) -> list[str]:
    """Names in the order of an OMS statement's resources (see resource_order)."""
    return sorted(names, key=resource_order)


def is_ignored(name: str, ignore_paths: Iterable[str]) -> bool:
    """Whether model_signing leaves `name` out: it is an ignore path, or lies in an ignored folder."""
    return any(name == path or name.startswith(path + "/") for path in ignore_paths)


def without_ignored(files: Mapping[str, FileEntry], ignore_paths: Iterable[str]) -> dict[str, FileEntry]:
    """The files model_signing would list: those under no ignore path."""
    ignored = tuple(ignore_paths)
    return {name: entry for name, entry in files.items() if not is_ignored(name, ignored)}


def _root_of(digests: Iterable[str]) -> str:
    root = hashlib.sha256()
    for digest in digests:
        root.update(bytes.fromhex(digest))
    return root.hexdigest()


def root_digest(files: Mapping[str, FileEntry]) -> str:
    """The OMS root digest of exactly these files (hex): SHA-256 of their raw digests in order."""
    return _root_of(files[name].sha256 for name in ordered_names(files))


def _unsafe_reason(name: str) -> str | None:
    """Why `name` is not a safe relative POSIX path, or None when it is one."""
    if not name:
        return "it is empty"
    if "\0" in name:
        return "it holds a NUL character"
    if name.startswith("/"):
        return "it is absolute"
    if any(part in ("", ".", "..") for part in name.split("/")):
        return "it has an empty, '.' or '..' component"
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return "it holds a lone surrogate, which is not text"
    return None


def _ignore_list(ignore_paths: Iterable[str]) -> list[str]:
    paths = sorted(set(ignore_paths))
    for path in paths:
        if reason := _unsafe_reason(path):
            raise ValueError(f"ignore path {path!r} is not a relative POSIX path: {reason}")
    return paths


def statement(
    files: Mapping[str, FileEntry], subject_name: str, ignore_paths: Sequence[str] = ()
) -> dict[str, object]:
    """The unsigned OMS v1.0 statement of `files`, as model_signing builds its payload.

    Files under an ignore path are left out, as model_signing leaves them out; pass
    DEFAULT_IGNORE_PATHS to describe what `model_signing sign` computes by default (and use
    `without_ignored` to report which files that leaves out). `ignore_paths` are written sorted and
    once each (model_signing writes them in set order) and omitted when empty, as model_signing
    omits them. A name that is not UTF-8 is written in the manifest's escaped form (`\\xNN`);
    model_signing cannot sign such a file at all.
    """
    ignored = _ignore_list(ignore_paths)
    listed = without_ignored(files, ignored)
    names = ordered_names(listed)
    serialization: dict[str, object] = {"method": "files", "hash_type": "sha256", "allow_symlinks": False}
    if ignored:
        serialization["ignore_paths"] = ignored
    return {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": subject_name, "digest": {"sha256": root_digest(listed)}}],
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "serialization": serialization,
            "resources": [
                {"name": name, "algorithm": "sha256", "digest": listed[name].sha256} for name in names
            ],
        },
    }


def statement_json(
    files: Mapping[str, FileEntry], subject_name: str, ignore_paths: Sequence[str] = ()
) -> str:
    """The statement's text as written to a file: JSON, keys sorted, indented by 2, ASCII, final newline.

    model_signing's own text of its payload (protobuf's MessageToJson) is not canonical: the key
    order inside the predicate follows protobuf's map iteration and `ignore_paths` a set's. So the
    statement is written in one canonical form of our own; any JSON reader, and model_signing's
    verifier once the text is signed as a DSSE payload, reads the same statement from it.
    """
    text = json.dumps(
        statement(files, subject_name, ignore_paths), indent=2, sort_keys=True, ensure_ascii=True
    )
    return text + "\n"


def _checksum_name(name: str) -> tuple[str, str]:
    """GNU sha256sum's escape: a name holding `\\`, LF or CR is written escaped, its line led by `\\`."""
    if not any(character in name for character in "\\\n\r"):
        return "", name
    escaped = name.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r")
    return "\\", escaped


def checksums_text(files: Mapping[str, FileEntry]) -> str:
    """The files' digests in `sha256sum` format, `<hex>  <path>` per line, in resource order.

    As GNU sha256sum (coreutils 9) writes them: a path holding a backslash, a newline or a carriage
    return is written with `\\\\`, `\\n` and `\\r` for them, and its line starts with a backslash;
    `sha256sum -c` reads such lines back. (A name that is not UTF-8 appears in the manifest's
    escaped form, `\\xNN`, which `sha256sum -c` cannot find.)
    """
    lines = []
    for name in ordered_names(files):
        lead, shown = _checksum_name(name)
        lines.append(f"{lead}{files[name].sha256}  {shown}\n")
    return "".join(lines)


@dataclass(frozen=True)
class Reference:
    """What a model is checked against: its files' digests, or a root digest alone (`files` None)."""

    files: Mapping[str, str] | None
    """Resource name -> hex SHA-256, in resource order."""
    root: str
    """The OMS root digest, hex."""
    subject_name: str | None = None
    ignore_paths: tuple[str, ...] = ()
    """Paths whose files the reference leaves out (is_ignored): the model's are not compared either."""


def _shown(value: object) -> str:
    """A value from the statement as a message shows it: short, quoted, its type when not text."""
    if isinstance(value, str):
        return repr(value) if len(value) <= _SHOWN_CHARACTERS else repr(value[:_SHOWN_CHARACTERS]) + "..."
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return f"the number {value}"
    if isinstance(value, list):
        return "a list"
    return "an object"


class _DuplicateKey(Exception):
    """A JSON object names one key twice (raised out of json.loads, turned into ManifestError)."""

    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _object_without_duplicates(pairs: list[tuple[str, object]]) -> dict[str, object]:
    # JSON readers disagree on which of two equal keys wins: such a statement means two things.
    result: dict[str, object] = {}
    for key, value in pairs:
        if key in result:
            raise _DuplicateKey(key)
        result[key] = value
    return result


class _Reader:
    """Field-by-field checks of one statement; each failure names its field."""

    def __init__(self, source: str) -> None:
        self.source = source

    def malformed(self, problem: str) -> ManifestError:
        return ManifestError(
            f"{self.source} is not a valid OMS v1.0 statement: {problem}",
            cause=_MALFORMED_CAUSE,
            fix=_MALFORMED_FIX,
        )

    def as_object(self, value: object, where: str) -> dict[str, object]:
        if not isinstance(value, dict):
            raise self.malformed(f"{where} is {_shown(value)}, not an object")
        return value

    def as_list(self, value: object, where: str) -> list[object]:
        if not isinstance(value, list):
            raise self.malformed(f"{where} is {_shown(value)}, not a list")
        return value

    def as_string(self, value: object, where: str) -> str:
        if not isinstance(value, str):
            raise self.malformed(f"{where} is {_shown(value)}, not a string")
        return value

    def field(self, parent: dict[str, object], key: str, where: str = "") -> object:
        if key not in parent:
            raise self.malformed(f"{where}.{key} is missing" if where else f"{key} is missing")
        return parent[key]

    def constant(self, parent: dict[str, object], key: str, where: str, expected: str) -> None:
        value = self.field(parent, key, where)
        if value != expected:
            shown_where = f"{where}.{key}" if where else key
            raise self.malformed(f"{shown_where} is {_shown(value)}, not {expected!r}")

    def digest(self, value: object, where: str) -> str:
        text = self.as_string(value, where)
        if not _HEX_DIGEST.fullmatch(text):
            raise self.malformed(f"{where} is {_shown(text)}, not 64 lowercase hex digits")
        return text

    def path(self, value: object, where: str) -> str:
        text = self.as_string(value, where)
        if reason := _unsafe_reason(text):
            raise self.malformed(f"{where} {_shown(text)} is not a safe relative POSIX path: {reason}")
        return text

    def document(self, text: str) -> dict[str, object]:
        try:
            document = json.loads(text, object_pairs_hook=_object_without_duplicates)
        except json.JSONDecodeError as error:
            raise self.malformed(
                f"it is not JSON ({error.msg} at line {error.lineno} column {error.colno})"
            ) from error
        except _DuplicateKey as error:
            raise self.malformed(f"a JSON object names the key {_shown(error.key)} twice") from error
        except RecursionError as error:
            raise self.malformed("it nests JSON too deeply") from error
        top = self.as_object(document, "its top level")
        self.constant(top, "_type", "", STATEMENT_TYPE)
        self.constant(top, "predicateType", "", PREDICATE_TYPE)
        return top

    def subject(self, top: dict[str, object]) -> tuple[str, str]:
        """The one subject's name and sha256 digest."""
        subjects = self.as_list(self.field(top, "subject"), "subject")
        if len(subjects) != 1:
            raise self.malformed(f"subject has {len(subjects)} entries, not exactly one")
        subject = self.as_object(subjects[0], "subject[0]")
        name = self.as_string(self.field(subject, "name", "subject[0]"), "subject[0].name")
        digests = self.as_object(self.field(subject, "digest", "subject[0]"), "subject[0].digest")
        root = self.digest(self.field(digests, "sha256", "subject[0].digest"), "subject[0].digest.sha256")
        return name, root

    def ignore_paths(self, predicate: dict[str, object]) -> tuple[str, ...]:
        """The serialization's ignore paths, once checked that it is model_signing's `files` method."""
        where = "predicate.serialization"
        serialization = self.as_object(self.field(predicate, "serialization", "predicate"), where)
        method = self.field(serialization, "method", where)
        if method != "files":
            raise self.malformed(
                f"{where}.method is {_shown(method)}, not 'files' (shards are not supported)"
            )
        self.constant(serialization, "hash_type", where, "sha256")
        allow_symlinks = self.field(serialization, "allow_symlinks", where)
        if not isinstance(allow_symlinks, bool):
            raise self.malformed(f"{where}.allow_symlinks is {_shown(allow_symlinks)}, not true or false")
        if "ignore_paths" not in serialization:
            return ()
        listed = self.as_list(serialization["ignore_paths"], f"{where}.ignore_paths")
        paths = {self.path(path, f"{where}.ignore_paths[{index}]") for index, path in enumerate(listed)}
        return tuple(sorted(paths))

    def resources(self, predicate: dict[str, object], ignore_paths: tuple[str, ...]) -> dict[str, str]:
        """Resource name -> digest, in the statement's order, once checked unique, ordered, not ignored."""
        resources = self.as_list(self.field(predicate, "resources", "predicate"), "predicate.resources")
        files: dict[str, str] = {}
        previous: str | None = None
        for index, item in enumerate(resources):
            where = f"predicate.resources[{index}]"
            resource = self.as_object(item, where)
            name = self.path(self.field(resource, "name", where), f"{where}.name")
            self.constant(resource, "algorithm", where, "sha256")
            digest = self.digest(self.field(resource, "digest", where), f"{where}.digest")
            if name in files:
                raise self.malformed(f"{where}.name {_shown(name)} is listed twice")
            if is_ignored(name, ignore_paths):
                raise self.malformed(f"{where}.name {_shown(name)} lies under one of the ignore_paths")
            if previous is not None and resource_order(name) < resource_order(previous):
                raise self.malformed(
                    f"{where}.name {_shown(name)} comes after {_shown(previous)}: the resources are not "
                    "in model_signing's order (sorted by path component)"
                )
            files[name] = digest
            previous = name
        return files


def read_statement(text: str, source: str = "the OMS statement") -> Reference:
    """Parse an OMS v1.0 statement and check its shape; ManifestError names the first fault.

    Checked: `_type` is in-toto Statement v1, `predicateType` OMS v1.0, exactly one subject with a
    name and a sha256 digest, `serialization` method `files` with hash_type `sha256` and a boolean
    allow_symlinks, ignore_paths (if any) safe relative paths; each resource has a safe relative
    POSIX name under no ignore path, algorithm `sha256` and a 64-digit lowercase hex digest; no name
    twice; resources in model_signing's order; the subject's digest equals the root computed from
    the resources. No JSON object may repeat a key. Fields the in-toto and OMS specifications let
    producers add (other keys, other subject digests) are ignored, as those specifications tell
    verifiers to.
    `source` names the text in messages ("the manifest file x.json").
    """
    reader = _Reader(source)
    top = reader.document(text)
    subject_name, declared_root = reader.subject(top)
    predicate = reader.as_object(reader.field(top, "predicate"), "predicate")
    ignore_paths = reader.ignore_paths(predicate)
    files = reader.resources(predicate, ignore_paths)
    computed_root = _root_of(files.values())
    if computed_root != declared_root:
        raise reader.malformed(
            f"subject[0].digest.sha256 is {declared_root}, but the resources hash to {computed_root}"
        )
    return Reference(files=files, root=declared_root, subject_name=subject_name, ignore_paths=ignore_paths)


def read_digest(text: str) -> str:
    """The hex root digest of an expected-digest value `sha256:<64 lowercase hex digits>`."""
    hex_digest = text.removeprefix(DIGEST_PREFIX)
    if not text.startswith(DIGEST_PREFIX) or not _HEX_DIGEST.fullmatch(hex_digest):
        raise ManifestError(
            f"the expected digest {_shown(text)} is not 'sha256:' followed by 64 lowercase hex digits",
            cause="a digest of another kind, or one cut short or changed in copying",
            fix="give the root digest as `seal` printed it (sha256:<hex>).",
        )
    return hex_digest


def verify_signature(
    bundle_path: str | os.PathLike[str], public_key_path: str | os.PathLike[str]
) -> Reference:
    """Verify an OMS Sigstore bundle signed with a key; return the statement it signed.

    The model-signing library (the `signing` extra, imported here) reads the bundle and verifies its
    DSSE signature over the statement with the public key, as `model_signing verify key` does before
    it hashes the model. The files are not hashed here: model-signing's public `verify` would hash
    the model a second time and return no statement, so this calls the verifier's step that checks
    the signature and hands back the signed payload, which `read_statement` then reads strictly.
    The caller compares the returned reference with the files it hashed, ignoring those under
    `ignore_paths`.

    Raises ManifestError (exit 2) when the library is missing, the key or the bundle cannot be read
    or is not of the kind `model_signing sign key` makes, or the signed statement is malformed;
    SignatureMismatch (exit 1) when the signature does not verify with this key.
    """
    try:
        # A private module: 1.1.1's public API verifies only signature and files together.
        from model_signing._signing import sign_ec_key, sign_sigstore_pb
    except ImportError as error:
        raise ManifestError(
            f"verifying an OMS signature needs the model-signing library, which cannot be imported ({error})",
            cause="the optional extra `signing` (model-signing and pyopenssl) is not installed",
            fix=_INSTALL_FIX,
        ) from error
    from cryptography.exceptions import InvalidSignature
    from pydantic import ValidationError

    _check_public_key(public_key_path)
    verifier = sign_ec_key.Verifier(Path(public_key_path))
    try:
        signature = sign_sigstore_pb.Signature.read(Path(bundle_path))
    except OSError as error:
        raise ManifestError(
            f"cannot read the signature bundle {bundle_path}: {error.strerror or error}",
            cause="a wrong path, or a file the job cannot read",
            fix="give the path of the bundle `model_signing sign key` wrote.",
        ) from error
    except ValidationError as error:
        # The bundle's models (sigstore-models) are pydantic's: name the first field that fails.
        first = error.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or "its top level"
        raise _not_a_key_bundle(
            bundle_path, f"it is not a Sigstore bundle ({field}: {first['msg']})"
        ) from error
    except KeyError as error:
        raise _not_a_key_bundle(
            bundle_path, f"it is not a Sigstore bundle (no {error.args[0]} field)"
        ) from error
    except (ValueError, TypeError) as error:
        # Not UTF-8, not JSON, or JSON of another shape.
        raise _not_a_key_bundle(bundle_path, f"it is not a Sigstore bundle ({_first_line(error)})") from error

    bundle = signature.bundle
    envelope = bundle.dsse_envelope
    if bundle.media_type != BUNDLE_MEDIA_TYPE:
        raise _not_a_key_bundle(bundle_path, f"its media type is {_shown(bundle.media_type)}")
    if bundle.verification_material.public_key is None:
        raise _not_a_key_bundle(
            bundle_path, "it names no public key (a certificate or Sigstore keyless signature)"
        )
    if envelope is None:
        raise _not_a_key_bundle(bundle_path, "it holds a message signature, not a DSSE envelope")
    if len(envelope.signatures) != 1:
        raise _not_a_key_bundle(bundle_path, f"its envelope holds {len(envelope.signatures)} signatures")
    if envelope.payload_type != PAYLOAD_TYPE:
        raise _not_a_key_bundle(bundle_path, f"its payload type is {_shown(envelope.payload_type)}")

    try:
        # The verifier prints a notice to stdout for bundles without a key hint (written by older
        # model_signing); stdout may carry our report, and the signature is verified all the same.
        with contextlib.redirect_stdout(io.StringIO()):
            _, payload = verifier._verify_signed_content(signature)
    except (ValueError, InvalidSignature) as error:
        raise SignatureMismatch(
            f"the OMS signature {bundle_path} does not verify with the public key {public_key_path}",
            cause="the model was signed with another key, or the bundle was changed after signing"
            + (f" ({_first_line(error)})" if str(error) else ""),
            fix="give the public key paired with the private key that signed, or sign the model again.",
        ) from error

    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as error:
        raise _not_a_key_bundle(bundle_path, "its signed payload is not UTF-8 text") from error
    return read_statement(text, source=f"the statement signed in {bundle_path}")


def _first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


def _not_a_key_bundle(bundle_path: str | os.PathLike[str], problem: str) -> ManifestError:
    return ManifestError(
        f"the signature bundle {bundle_path} is not an OMS signature made with a key: {problem}",
        cause="a file other than the bundle `model_signing sign key` wrote, or one changed since",
        fix="give the bundle `model_signing sign key` wrote for this model.",
    )


def _check_public_key(public_key_path: str | os.PathLike[str]) -> None:
    """Refuse, with a clear message, a key file model_signing could not verify with."""
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    try:
        pem = Path(public_key_path).read_bytes()
    except OSError as error:
        raise ManifestError(
            f"cannot read the public key {public_key_path}: {error.strerror or error}",
            cause="a wrong path, or a file the job cannot read",
            fix="give the path of the PEM public key paired with the signing key.",
        ) from error
    try:
        key = load_pem_public_key(pem)
    except (ValueError, UnsupportedAlgorithm) as error:
        raise ManifestError(
            f"the public key {public_key_path} is not a PEM public key ({_first_line(error)})",
            cause="a private key, a certificate, or a key in another encoding",
            fix="give the public key as PEM ('-----BEGIN PUBLIC KEY-----'), paired with the signing key.",
        ) from error
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name not in SIGNING_CURVES:
        kind = key.curve.name if isinstance(key, ec.EllipticCurvePublicKey) else type(key).__name__
        raise ManifestError(
            f"the public key {public_key_path} is of kind {kind}, not an elliptic-curve key on P-256, "
            "P-384 or P-521",
            cause="model_signing signs with elliptic-curve keys on those curves only",
            fix="give the public key paired with the private key that `model_signing sign key` used.",
        )
