"""OMS statements against the real model-signing package: its library, its CLI, its signatures."""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from hypothesis import given, settings
from hypothesis import strategies as st

from mlflow_version_check.errors import EXIT_DIFFERENT, EXIT_USAGE, ManifestError, SignatureMismatch
from mlflow_version_check.manifest import FileEntry, manifest_of_directory
from mlflow_version_check.oms import (
    BUNDLE_MEDIA_TYPE,
    DEFAULT_IGNORE_PATHS,
    PAYLOAD_TYPE,
    PREDICATE_TYPE,
    STATEMENT_TYPE,
    Reference,
    checksums_text,
    is_ignored,
    ordered_names,
    read_digest,
    read_statement,
    root_digest,
    statement,
    statement_json,
    verify_signature,
    without_ignored,
)

MODEL_SIGNING = Path(sys.executable).parent / "model_signing"

# A model tree with what trips a reimplementation: folders beside files whose names sort between a
# folder's name and its `/` (`model/...` vs `model.pkl`, `a b/`, `a-b`), an empty file, unicode,
# a backslash, a newline and a carriage return in names, a file over the 1 MiB read chunk, and the
# git paths model_signing leaves out by default (only at the top: `sub/.gitignore` stays).
MODEL_FILES: dict[str, bytes] = {
    "MLmodel": b"flavors:\n  python_function:\n    loader_module: mlflow.sklearn\n",
    "model.pkl": bytes(range(256)) * 6000,
    "model/weights.bin": b"\x00\x01" * 1000,
    "model-card.md": b"# card\n",
    "a b/c d.txt": b"spaces",
    "a-b": b"dash",
    "a/z": b"folder a",
    "empty": b"",
    "Upper.txt": b"capital letters sort first",
    "ünïcødé/数据.json": '{"ключ": "значение"}'.encode(),
    "deep/1/2/3/leaf": b"leaf",
    "back\\slash.txt": b"backslash",
    "new\nline.txt": b"newline",
    "carriage\rreturn.txt": b"carriage return",
    "sub/.gitignore": b"not at the top: hashed\n",
    ".gitignore": b"ignored\n",
    ".gitattributes": b"ignored\n",
    ".git/HEAD": b"ref: refs/heads/main\n",
    ".github/workflows/ci.yml": b"on: push\n",
}


def write_tree(root: Path, tree: dict[str, bytes]) -> Path:
    for relative, data in tree.items():
        target = root / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    return root


@pytest.fixture
def model(tmp_path: Path) -> Path:
    """The model tree above, in a folder named like a downloaded model."""
    return write_tree(tmp_path / "my-model", MODEL_FILES)


def write_key_pair(folder: Path, curve: ec.EllipticCurve | None = None) -> tuple[Path, Path]:
    """A fresh EC key pair as PEM files: (private, public)."""
    folder.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(curve or ec.SECP256R1())
    private, public = folder / "key.pem", folder / "key.pub"
    private.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    public.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return private, public


@pytest.fixture
def keys(tmp_path: Path) -> tuple[Path, Path]:
    return write_key_pair(tmp_path / "keys")


def run_model_signing(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    """The reference tool's CLI, as a user runs it."""
    return subprocess.run(
        [str(MODEL_SIGNING), *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=120,
        check=False,
    )


def signed_payload(bundle: Path) -> dict[str, Any]:
    envelope = json.loads(bundle.read_text())["dsseEnvelope"]
    payload: dict[str, Any] = json.loads(base64.b64decode(envelope["payload"]))
    return payload


def with_sorted_ignore_paths(document: dict[str, Any]) -> dict[str, Any]:
    """model_signing writes ignore_paths in a set's order; we write them sorted."""
    normalized = copy.deepcopy(document)
    serialization = normalized["predicate"]["serialization"]
    if "ignore_paths" in serialization:
        serialization["ignore_paths"] = sorted(serialization["ignore_paths"])
    return normalized


def library_statement(model_path: Path) -> dict[str, Any]:
    """The payload model_signing's library builds for a directory, as its signers serialize it."""
    from google.protobuf import json_format
    from model_signing import hashing
    from model_signing._signing.signing import Payload

    payload = Payload(hashing.Config().hash(model_path))
    document: dict[str, Any] = json.loads(json_format.MessageToJson(payload.statement.pb))
    return document


def canonical(document: dict[str, Any]) -> str:
    return json.dumps(with_sorted_ignore_paths(document), sort_keys=True)


def test_statement_equals_model_signing_library(model: Path) -> None:
    """Our resources, order, root and whole statement equal model_signing's library, byte for byte."""
    theirs = library_statement(model)
    ours = statement(manifest_of_directory(model), "my-model", DEFAULT_IGNORE_PATHS)
    # Same names, digests and order; model_signing's key order inside an object is protobuf's map order.
    assert json.dumps(ours["predicate"]["resources"], sort_keys=True) == json.dumps(
        theirs["predicate"]["resources"], sort_keys=True
    )
    assert ours["subject"] == theirs["subject"]
    assert canonical(ours) == canonical(theirs)
    names = [resource["name"] for resource in theirs["predicate"]["resources"]]
    # The traps did their work: component order, not string order; git paths only at the top.
    assert names.index("model/weights.bin") < names.index("model-card.md") < names.index("model.pkl")
    assert "sub/.gitignore" in names and ".gitignore" not in names and ".git/HEAD" not in names


def test_statement_equals_model_signing_cli_payload(
    model: Path, keys: tuple[Path, Path], tmp_path: Path
) -> None:
    """`model_signing sign key` signs the statement we compute; read_statement reads its payload."""
    private, _ = keys
    bundle = tmp_path / "model.sig"
    signed = run_model_signing(
        "sign", "key", model, "--private_key", private, "--signature", bundle, cwd=tmp_path
    )
    assert signed.returncode == 0, signed.stderr
    payload = signed_payload(bundle)
    files = manifest_of_directory(model)
    assert canonical(statement(files, "my-model", DEFAULT_IGNORE_PATHS)) == canonical(payload)

    reference = read_statement(json.dumps(payload))
    listed = without_ignored(files, DEFAULT_IGNORE_PATHS)
    assert reference.files == {name: entry.sha256 for name, entry in listed.items()}
    assert list(reference.files) == ordered_names(listed)
    assert reference.root == root_digest(listed) == payload["subject"][0]["digest"]["sha256"]
    assert reference.subject_name == "my-model"
    assert reference.ignore_paths == tuple(sorted(DEFAULT_IGNORE_PATHS))


def test_verify_signature_accepts_the_signing_key_and_refuses_another(
    model: Path, keys: tuple[Path, Path], tmp_path: Path
) -> None:
    """A `model_signing sign key` bundle verifies with its public key and is refused with another."""
    private, public = keys
    bundle = tmp_path / "model.sig"
    signed = run_model_signing(
        "sign", "key", model, "--private_key", private, "--signature", bundle, cwd=tmp_path
    )
    assert signed.returncode == 0, signed.stderr

    reference = verify_signature(bundle, public)
    expected = read_statement(statement_json(manifest_of_directory(model), "my-model", DEFAULT_IGNORE_PATHS))
    assert reference == expected

    _, other_public = write_key_pair(tmp_path / "other")
    with pytest.raises(SignatureMismatch) as refused:
        verify_signature(bundle, other_public)
    assert refused.value.exit_code == EXIT_DIFFERENT
    assert "does not verify with the public key" in refused.value.what
    # The reference tool agrees on both.
    assert (
        run_model_signing(
            "verify", "key", model, "--signature", bundle, "--public_key", public, cwd=tmp_path
        ).returncode
        == 0
    )
    assert (
        run_model_signing(
            "verify", "key", model, "--signature", bundle, "--public_key", other_public, cwd=tmp_path
        ).returncode
        != 0
    )


def dsse_bundle(payload: bytes, private_key: Path) -> dict[str, Any]:
    """A Sigstore v0.3 bundle with a DSSE envelope over `payload`, as `model_signing sign key` makes."""
    key = serialization.load_pem_private_key(private_key.read_bytes(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    # DSSE v1 pre-authentication encoding: what the signature covers.
    pae = b"DSSEv1 %d %b %d %b" % (len(PAYLOAD_TYPE), PAYLOAD_TYPE.encode(), len(payload), payload)
    signature = key.sign(pae, ec.ECDSA(ec_hash(key.curve)))
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return {
        "mediaType": BUNDLE_MEDIA_TYPE,
        "verificationMaterial": {
            "publicKey": {"hint": hashlib.sha256(public_pem).hexdigest()},
            "tlogEntries": [],
        },
        "dsseEnvelope": {
            "payload": base64.b64encode(payload).decode(),
            "payloadType": PAYLOAD_TYPE,
            "signatures": [{"sig": base64.b64encode(signature).decode(), "keyid": ""}],
        },
    }


def ec_hash(curve: ec.EllipticCurve) -> Any:
    from cryptography.hazmat.primitives import hashes

    return {256: hashes.SHA256(), 384: hashes.SHA384(), 521: hashes.SHA512()}[curve.key_size]


def test_model_signing_verifies_our_statement_once_signed(
    model: Path, keys: tuple[Path, Path], tmp_path: Path
) -> None:
    """Our statement file, signed as a DSSE payload, passes `model_signing verify key`, and ours."""
    private, public = keys
    text = statement_json(manifest_of_directory(model), "my-model", DEFAULT_IGNORE_PATHS)
    bundle = tmp_path / "ours.sig"
    bundle.write_text(json.dumps(dsse_bundle(text.encode(), private)))
    verified = run_model_signing(
        "verify", "key", model, "--signature", bundle, "--public_key", public, cwd=tmp_path
    )
    assert verified.returncode == 0, verified.stderr
    assert verify_signature(bundle, public) == read_statement(text)

    (model / "model.pkl").write_bytes(b"\xff" * len(MODEL_FILES["model.pkl"]))  # same size, other bytes
    tampered = run_model_signing(
        "verify", "key", model, "--signature", bundle, "--public_key", public, cwd=tmp_path
    )
    assert tampered.returncode != 0 and "model.pkl" in tampered.stderr


def test_verify_signature_accepts_a_bundle_without_key_hint_quietly(
    keys: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An older bundle without a key hint verifies; the library's notice does not reach stdout."""
    private, public = keys
    text = statement_json({"weights.bin": FileEntry(1, hashlib.sha256(b"1").hexdigest())}, "m")
    document = dsse_bundle(text.encode(), private)
    del document["verificationMaterial"]["publicKey"]["hint"]
    bundle = write_json(tmp_path / "old.sig", document)
    assert verify_signature(bundle, public) == read_statement(text)
    assert capsys.readouterr().out == ""


def test_verify_signature_refuses_a_changed_statement(keys: tuple[Path, Path], tmp_path: Path) -> None:
    """A bundle whose statement was edited after signing does not verify (exit 1)."""
    private, public = keys
    files = {"weights.bin": FileEntry(1, hashlib.sha256(b"1").hexdigest())}
    document = dsse_bundle(statement_json(files, "m").encode(), private)
    forged = statement_json({"weights.bin": FileEntry(1, hashlib.sha256(b"2").hexdigest())}, "m").encode()
    document["dsseEnvelope"]["payload"] = base64.b64encode(forged).decode()
    bundle = tmp_path / "forged.sig"
    bundle.write_text(json.dumps(document))
    with pytest.raises(SignatureMismatch):
        verify_signature(bundle, public)


def test_verify_signature_reads_the_signed_statement_strictly(
    keys: tuple[Path, Path], tmp_path: Path
) -> None:
    """A correctly signed but malformed statement is refused as malformed (exit 2), naming the fault."""
    private, public = keys
    files = {name: FileEntry(1, hashlib.sha256(name.encode()).hexdigest()) for name in ("a.txt", "a/b")}
    document = json.loads(statement_json(files, "m"))
    document["predicate"]["resources"].reverse()  # string order: a.txt before a/b
    bundle = tmp_path / "unsorted.sig"
    bundle.write_text(json.dumps(dsse_bundle(json.dumps(document).encode(), private)))
    with pytest.raises(ManifestError) as refused:
        verify_signature(bundle, public)
    assert refused.value.exit_code == EXIT_USAGE
    assert "model_signing's order" in refused.value.what
    assert str(bundle) in refused.value.what


def write_rsa_public_key(path: Path) -> Path:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return path


@pytest.mark.parametrize(
    ("make_bundle", "make_key", "expected"),
    [
        pytest.param(
            lambda folder, private: folder / "absent.sig",
            None,
            "cannot read the signature bundle",
            id="no-bundle",
        ),
        pytest.param(
            lambda folder, private: write_text(folder / "b.sig", "[]"),
            None,
            "is not a Sigstore bundle",
            id="bundle-a-list",
        ),
        pytest.param(
            lambda folder, private: write_text(folder / "b.sig", "{}"),
            None,
            "is not a Sigstore bundle (no verificationMaterial field)",
            id="bundle-empty-object",
        ),
        pytest.param(
            lambda folder, private: write_text(folder / "b.sig", "not json"),
            None,
            "is not a Sigstore bundle",
            id="bundle-not-json",
        ),
        pytest.param(
            lambda folder, private: write_text(
                folder / "b.sig", '{"mediaType": "x", "verificationMaterial": {}}'
            ),
            None,
            "is not a Sigstore bundle (mediaType: Input should be",
            id="bundle-not-a-bundle",
        ),
        pytest.param(
            lambda folder, private: write_json(
                folder / "b.sig",
                {
                    **dsse_bundle(b"{}", private),
                    "mediaType": "application/vnd.dev.sigstore.bundle+json;version=0.2",
                },
            ),
            None,
            "its media type is",
            id="bundle-other-media-type",
        ),
        pytest.param(
            lambda folder, private: write_json(
                folder / "b.sig",
                {
                    **dsse_bundle(b"{}", private),
                    "dsseEnvelope": {
                        **dsse_bundle(b"{}", private)["dsseEnvelope"],
                        "payloadType": "text/plain",
                    },
                },
            ),
            None,
            "its payload type is",
            id="bundle-other-payload-type",
        ),
        pytest.param(
            lambda folder, private: write_json(
                folder / "b.sig",
                {
                    **dsse_bundle(b"{}", private),
                    "verificationMaterial": {"tlogEntries": [], "certificate": {"rawBytes": "AAAA"}},
                },
            ),
            None,
            "it names no public key",
            id="bundle-without-public-key",
        ),
        pytest.param(
            lambda folder, private: write_json(
                folder / "b.sig",
                {
                    **dsse_bundle(b"{}", private),
                    "dsseEnvelope": {
                        **dsse_bundle(b"{}", private)["dsseEnvelope"],
                        "signatures": dsse_bundle(b"{}", private)["dsseEnvelope"]["signatures"] * 2,
                    },
                },
            ),
            None,
            "its envelope holds 2 signatures",
            id="bundle-two-signatures",
        ),
        pytest.param(
            lambda folder, private: write_json(folder / "b.sig", dsse_bundle(b"{}", private)),
            lambda folder: folder / "absent.pub",
            "cannot read the public key",
            id="no-key",
        ),
        pytest.param(
            lambda folder, private: write_json(folder / "b.sig", dsse_bundle(b"{}", private)),
            lambda folder: write_text(folder / "k.pub", "not a key"),
            "is not a PEM public key",
            id="key-not-pem",
        ),
        pytest.param(
            lambda folder, private: write_json(folder / "b.sig", dsse_bundle(b"{}", private)),
            lambda folder: write_rsa_public_key(folder / "rsa.pub"),
            "not an elliptic-curve key on P-256, P-384 or P-521",
            id="key-rsa",
        ),
        pytest.param(
            lambda folder, private: write_json(folder / "b.sig", dsse_bundle(b"{}", private)),
            lambda folder: write_key_pair(folder / "p224", ec.SECP224R1())[1],
            "secp224r1",
            id="key-unsupported-curve",
        ),
        pytest.param(
            lambda folder, private: write_json(folder / "b.sig", dsse_bundle(b"not json", private)),
            None,
            "is not a valid OMS v1.0 statement: it is not JSON",
            id="signed-payload-not-json",
        ),
    ],
)
def test_verify_signature_refuses_unreadable_inputs(
    make_bundle: Callable[[Path, Path], Path],
    make_key: Callable[[Path], Path] | None,
    expected: str,
    keys: tuple[Path, Path],
    tmp_path: Path,
) -> None:
    """A bundle or key that is missing, of another kind or malformed is a ManifestError (exit 2)."""
    private, public = keys
    bundle = make_bundle(tmp_path, private)
    key = make_key(tmp_path) if make_key else public
    with pytest.raises(ManifestError) as refused:
        verify_signature(bundle, key)
    assert refused.value.exit_code == EXIT_USAGE
    assert expected in refused.value.what, refused.value.what
    assert refused.value.cause and refused.value.fix


def write_text(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def write_json(path: Path, document: object) -> Path:
    return write_text(path, json.dumps(document))


def test_verify_signature_without_the_library_says_what_to_install(
    keys: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without the `signing` extra, verify_signature asks for it by name."""
    private, public = keys
    bundle = write_json(tmp_path / "b.sig", dsse_bundle(b"{}", private))
    monkeypatch.setitem(sys.modules, "model_signing", None)
    monkeypatch.setitem(sys.modules, "model_signing._signing", None)
    with pytest.raises(ManifestError) as refused:
        verify_signature(bundle, public)
    assert "mlflow-version-check[signing]" in refused.value.message


def test_importing_oms_imports_neither_mlflow_nor_model_signing() -> None:
    """The module is cheap to import: MLflow and model_signing load only where they are used."""
    probe = (
        "import sys, mlflow_version_check.oms; "
        "loaded = {m.split('.')[0] for m in sys.modules}; "
        "print(sorted(loaded & {'mlflow', 'model_signing', 'cryptography'}))"
    )
    completed = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert completed.stdout.strip() == "[]"


def test_checksums_pass_sha256sum_and_match_its_format(model: Path) -> None:
    """checksums_text is what GNU sha256sum writes for the same names, and `sha256sum -c` passes."""
    files = manifest_of_directory(model)
    text = checksums_text(files)
    names = ordered_names(files)
    written = subprocess.run(["sha256sum", "--", *names], cwd=model, capture_output=True, check=True)
    assert text.encode() == written.stdout
    assert any(line.startswith("\\") for line in text.splitlines())  # the escaped names are in there

    checked = subprocess.run(
        ["sha256sum", "-c", "--strict", "-"], cwd=model, input=text.encode(), capture_output=True, check=False
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr

    (model / "new\nline.txt").write_bytes(b"NEWLINE")  # same size, other bytes
    tampered = subprocess.run(
        ["sha256sum", "-c", "-"], cwd=model, input=text.encode(), capture_output=True, check=False
    )
    assert tampered.returncode == 1 and b"FAILED" in tampered.stdout


# Names as a model may hold them: characters that sort around `/` (space, `-`, `.`), capitals,
# unicode; `.git` to meet the default ignore paths.
COMPONENT = st.text(alphabet="ab .-_Zé数", min_size=1, max_size=5).filter(
    lambda part: part not in {".", ".."}
) | st.just(".git")
NAME = st.lists(COMPONENT, min_size=1, max_size=3).map("/".join)
TREE = st.dictionaries(NAME, st.binary(max_size=64), min_size=1, max_size=10).filter(
    # A path may not be both a file and a folder.
    lambda tree: not any(other.startswith(path + "/") for path in tree for other in tree)
)
HEX = st.binary(min_size=32, max_size=32).map(bytes.hex)


@settings(max_examples=40, deadline=None)
@given(tree=TREE)
def test_random_trees_equal_model_signing_library(tree: dict[str, bytes]) -> None:
    """Over random trees on disk, our statement equals model_signing's library statement."""
    with tempfile.TemporaryDirectory() as scratch:
        root = write_tree(Path(scratch) / "m", tree)
        ours = statement(manifest_of_directory(root), "m", DEFAULT_IGNORE_PATHS)
        assert canonical(ours) == canonical(library_statement(root))


@given(names=st.sets(NAME, max_size=30))
def test_resource_order_is_model_signings_path_order(names: set[str]) -> None:
    """ordered_names sorts as model_signing sorts its PurePosixPath keys."""
    assert ordered_names(names) == [str(path) for path in sorted(PurePosixPath(name) for name in names)]


@given(
    digests=st.dictionaries(NAME, HEX, max_size=20),
    subject=st.text(max_size=20),
    ignore=st.lists(st.sampled_from([*DEFAULT_IGNORE_PATHS, "model.sig"]), max_size=5),
)
def test_statement_round_trips_through_read_statement(
    digests: dict[str, str], subject: str, ignore: list[str]
) -> None:
    """What statement_json writes, read_statement reads back: files, root, subject, ignore paths."""
    files = {name: FileEntry(0, digest) for name, digest in digests.items()}
    text = statement_json(files, subject, ignore)
    assert text.endswith("}\n") and text.isascii()
    reference = read_statement(text)
    listed = {name: entry for name, entry in files.items() if not is_ignored(name, ignore)}
    assert reference == Reference(
        files={name: listed[name].sha256 for name in ordered_names(listed)},
        root=root_digest(listed),
        subject_name=subject,
        ignore_paths=tuple(sorted(set(ignore))),
    )
    assert list(reference.files or ()) == ordered_names(listed)


def test_root_digest_is_sha256_of_the_raw_digests_in_order() -> None:
    """The root is SHA-256 over the concatenated raw digests, in resource order; no files, no bytes."""
    digests = {name: hashlib.sha256(name.encode()).hexdigest() for name in ("a.txt", "a/b", "B")}
    files = {name: FileEntry(1, digest) for name, digest in digests.items()}
    raw = b"".join(bytes.fromhex(digests[name]) for name in ("B", "a/b", "a.txt"))
    assert root_digest(files) == hashlib.sha256(raw).hexdigest()
    assert root_digest({}) == hashlib.sha256(b"").hexdigest()


def valid_statement() -> dict[str, Any]:
    files = {
        "MLmodel": FileEntry(3, hashlib.sha256(b"one").hexdigest()),
        "model/model.pkl": FileEntry(3, hashlib.sha256(b"two").hexdigest()),
        "model.txt": FileEntry(5, hashlib.sha256(b"three").hexdigest()),
    }
    document: dict[str, Any] = json.loads(statement_json(files, "m", DEFAULT_IGNORE_PATHS))
    return document


def edited(change: Callable[[dict[str, Any]], object]) -> str:
    document = valid_statement()
    change(document)
    return json.dumps(document)


def resource(document: dict[str, Any], index: int = 0) -> dict[str, Any]:
    item: dict[str, Any] = document["predicate"]["resources"][index]
    return item


def serialization_of(document: dict[str, Any]) -> dict[str, Any]:
    item: dict[str, Any] = document["predicate"]["serialization"]
    return item


def set_first_name(name: str) -> Callable[[dict[str, Any]], object]:
    return lambda document: resource(document).update(name=name)


SUBJECT_DIGEST = "subject[0].digest.sha256"

MALFORMED = [
    pytest.param("{", "it is not JSON", id="not-json"),
    pytest.param("[]", "its top level is a list, not an object", id="top-level-list"),
    pytest.param(
        json.dumps(valid_statement())[:-1] + ', "_type": "again"}',
        "names the key '_type' twice",
        id="duplicate-key",
    ),
    pytest.param(edited(lambda d: d.pop("_type")), "_type is missing", id="no-type"),
    pytest.param(
        edited(lambda d: d.update(_type="https://in-toto.io/Statement/v0.1")),
        f"not {STATEMENT_TYPE!r}",
        id="type",
    ),
    pytest.param(
        edited(lambda d: d.update(predicateType="https://model_signing/Digests/v0.1")),
        f"not {PREDICATE_TYPE!r}",
        id="predicate-type",
    ),
    pytest.param(edited(lambda d: d.update(subject=[])), "subject has 0 entries", id="no-subject"),
    pytest.param(
        edited(lambda d: d["subject"].append(d["subject"][0])), "subject has 2 entries", id="two-subjects"
    ),
    pytest.param(
        edited(lambda d: d["subject"][0].update(name=7)), "subject[0].name is the number 7", id="subject-name"
    ),
    pytest.param(
        edited(lambda d: d["subject"][0].update(digest={"sha512": "00"})),
        f"{SUBJECT_DIGEST} is missing",
        id="subject-no-sha256",
    ),
    pytest.param(
        edited(
            lambda d: d["subject"][0]["digest"].update(sha256=d["subject"][0]["digest"]["sha256"].upper())
        ),
        "not 64 lowercase hex digits",
        id="subject-uppercase",
    ),
    pytest.param(
        edited(lambda d: d["subject"][0]["digest"].update(sha256="0" * 64)),
        "but the resources hash to",
        id="subject-not-root",
    ),
    pytest.param(
        edited(lambda d: d.update(predicate=[])), "predicate is a list, not an object", id="predicate"
    ),
    pytest.param(
        edited(lambda d: d["predicate"].pop("serialization")),
        "predicate.serialization is missing",
        id="no-serialization",
    ),
    pytest.param(
        edited(lambda d: serialization_of(d).update(method="shards", shard_size=1000)),
        "method is 'shards', not 'files'",
        id="shards",
    ),
    pytest.param(
        edited(lambda d: serialization_of(d).update(hash_type="blake3")), "hash_type is 'blake3'", id="blake3"
    ),
    pytest.param(
        edited(lambda d: serialization_of(d).update(allow_symlinks="false")),
        "allow_symlinks is 'false', not true or false",
        id="allow-symlinks-string",
    ),
    pytest.param(
        edited(lambda d: serialization_of(d).pop("allow_symlinks")),
        "allow_symlinks is missing",
        id="no-allow-symlinks",
    ),
    pytest.param(
        edited(lambda d: serialization_of(d).update(ignore_paths=".git")),
        "ignore_paths is '.git', not a list",
        id="ignore-paths-string",
    ),
    pytest.param(
        edited(lambda d: serialization_of(d).update(ignore_paths=["../x"])),
        "ignore_paths[0] '../x' is not a safe relative POSIX path",
        id="ignore-path-unsafe",
    ),
    pytest.param(
        edited(lambda d: d["predicate"].pop("resources")), "predicate.resources is missing", id="no-resources"
    ),
    pytest.param(
        edited(lambda d: d["predicate"]["resources"].append("x")),
        "predicate.resources[3] is 'x', not an object",
        id="resource-not-object",
    ),
    pytest.param(edited(lambda d: resource(d).pop("name")), "resources[0].name is missing", id="no-name"),
    pytest.param(edited(set_first_name("")), "it is empty", id="name-empty"),
    pytest.param(edited(set_first_name("/MLmodel")), "it is absolute", id="name-absolute"),
    pytest.param(edited(set_first_name("../MLmodel")), "'..' component", id="name-parent"),
    pytest.param(edited(set_first_name("./MLmodel")), "'.' or '..' component", id="name-dot"),
    pytest.param(edited(set_first_name("a//MLmodel")), "an empty", id="name-empty-component"),
    pytest.param(edited(set_first_name("folder/")), "an empty", id="name-trailing-slash"),
    pytest.param(edited(set_first_name("ML\0model")), "NUL", id="name-nul"),
    pytest.param(edited(set_first_name("ML\udcffmodel")), "lone surrogate", id="name-surrogate"),
    pytest.param(
        edited(set_first_name(".git/config")), "lies under one of the ignore_paths", id="name-ignored"
    ),
    pytest.param(
        edited(lambda d: resource(d).update(algorithm="sha512")),
        "resources[0].algorithm is 'sha512'",
        id="algorithm",
    ),
    pytest.param(
        edited(lambda d: resource(d).update(digest=resource(d)["digest"][:-1])),
        "resources[0].digest is",
        id="digest-short",
    ),
    pytest.param(
        edited(lambda d: resource(d).update(digest=resource(d)["digest"].upper())),
        "not 64 lowercase hex digits",
        id="digest-uppercase",
    ),
    pytest.param(
        edited(lambda d: d["predicate"]["resources"].insert(1, dict(resource(d)))),
        "resources[1].name 'MLmodel' is listed twice",
        id="duplicate-name",
    ),
    pytest.param(
        edited(lambda d: d["predicate"]["resources"].sort(key=lambda item: item["name"])),
        "'model/model.pkl' comes after 'model.txt'",
        id="string-order",
    ),
]


@pytest.mark.parametrize(("text", "expected"), MALFORMED)
def test_malformed_statements_are_refused(text: str, expected: str) -> None:
    """Each broken rule of a statement is a ManifestError (exit 2) that names the field and fault."""
    with pytest.raises(ManifestError) as refused:
        read_statement(text, source="the manifest file m.json")
    assert refused.value.exit_code == EXIT_USAGE
    assert refused.value.what.startswith("the manifest file m.json is not a valid OMS v1.0 statement: ")
    assert expected in refused.value.what, refused.value.what
    assert refused.value.cause and refused.value.fix


def test_read_statement_ignores_fields_producers_may_add() -> None:
    """Fields the in-toto and OMS specs let producers add are ignored, as they tell verifiers to."""
    document = valid_statement()
    document["predicate"]["note"] = "added by a later version"
    document["subject"][0]["digest"]["sha512"] = "00"
    resource(document)["uri"] = "https://example.invalid/MLmodel"
    serialization_of(document).pop("ignore_paths")
    reference = read_statement(json.dumps(document))
    assert reference.ignore_paths == ()
    assert reference.files is not None and list(reference.files) == [
        "MLmodel",
        "model/model.pkl",
        "model.txt",
    ]


def test_read_digest_takes_sha256_hex_only() -> None:
    """An expected digest is `sha256:` and 64 lowercase hex digits; anything else is a ManifestError."""
    digest = hashlib.sha256(b"x").hexdigest()
    assert read_digest(f"sha256:{digest}") == digest
    for text in (
        "",
        digest,
        f"sha512:{digest}",
        f"sha256:{digest.upper()}",
        f"sha256:{digest[:-1]}",
        f" sha256:{digest}",
        f"sha256:{digest}\n",
        f"SHA256:{digest}",
    ):
        with pytest.raises(ManifestError) as refused:
            read_digest(text)
        assert refused.value.exit_code == EXIT_USAGE
