"""Secrets leave by value, not only by pattern (issue 10, point 3).

End to end: the installed `check-model-version` talks to a misbehaving tracking server (a loopback
double, tests/echo_server.py) that echoes the credentials it was sent in its error bodies; no form
of the secret (as is, percent-encoded, base64, HTTP Basic) may reach stdout, stderr, the report or
the JUnit file. Then redact.py's functions, with passwords that hold `@ ' ! $ % : /`.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import urllib.parse
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from mlflow_version_check import redact as redaction
from tests.conftest import BIN, Run
from tests.echo_server import EchoServer

TOKEN = "mvc-canary-token!$'7Hq2xZ"  # noqa: S105 - canaries for leak checks, not credentials
USER = "alice"
PASSWORD = "p@ss'w!rd$%:/x-Canary9"  # noqa: S105
# Statuses and body kinds of the echo: refused (401, 403), not found as text, a bad request as
# MLflow's JSON error, a server error.
ECHOES = ((401, True), (403, True), (404, False), (400, True), (500, False))


def b64(text: str) -> list[str]:
    raw = text.encode()
    return [base64.b64encode(raw).decode(), base64.urlsafe_b64encode(raw).decode().rstrip("=")]


def forms(secret: str, user: str | None = None) -> list[str]:
    """The forms of a secret that must not appear anywhere."""
    found = [secret, urllib.parse.quote(secret, safe=""), urllib.parse.quote(secret), *b64(secret)]
    if user is not None:
        found += b64(f"{user}:{secret}")
    return found


@dataclass(frozen=True)
class Credentials:
    env: dict[str, str]
    userinfo: str | None  # written into the tracking URI
    authorization: str  # what the client must send (and the echo send back)
    secrets: list[str]


SUB_DELIMS_AS_IS = urllib.parse.quote(PASSWORD, safe="!$'")
CASES = {
    "tracking-token": Credentials({"MLFLOW_TRACKING_TOKEN": TOKEN}, None, f"Bearer {TOKEN}", forms(TOKEN)),
    "username-password": Credentials(
        {"MLFLOW_TRACKING_USERNAME": USER, "MLFLOW_TRACKING_PASSWORD": PASSWORD}, None,
        f"Basic {b64(f'{USER}:{PASSWORD}')[0]}", forms(PASSWORD, USER),
    ),
    "uri-userinfo-percent-encoded": Credentials(
        {}, f"{USER}:{urllib.parse.quote(PASSWORD, safe='')}",
        f"Basic {b64(f'{USER}:{PASSWORD}')[0]}", forms(PASSWORD, USER),
    ),
    # ' ! $ are legal in a userinfo: a user who encodes only what must be encoded writes them as is.
    "uri-userinfo-sub-delims-as-is": Credentials(
        {}, f"{USER}:{SUB_DELIMS_AS_IS}", f"Basic {b64(f'{USER}:{PASSWORD}')[0]}",
        [*forms(PASSWORD, USER), SUB_DELIMS_AS_IS],
    ),
}  # fmt: skip


def run_check(tracking_uri: str, env: dict[str, str], directory: Path) -> tuple[Run, str]:
    """check-model-version --verbose with report and JUnit; returns the run and everything it wrote."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "DATABRICKS_"))}
    report, junit = directory / "report.json", directory / "junit.xml"
    completed = subprocess.run(
        [str(BIN / "check-model-version"), "--model", "m", "--version-or-stage", "1",
         "--tracking-uri", tracking_uri, "--report-file", str(report), "--junit-file", str(junit),
         "--retries", "0", "--timeout", "10", "--verbose"],
        capture_output=True, text=True, timeout=180, check=False,
        env={**clean, "HOME": str(directory), **env},
    )  # fmt: skip
    run = Run(completed.returncode, completed.stdout, completed.stderr)
    written = "".join(path.read_text() for path in (report, junit) if path.exists())
    return run, run.stdout + run.stderr + written


def assert_no_secret(everything: str, secrets: list[str], where: str) -> None:
    leaked = [secret for secret in secrets if secret in everything]
    assert not leaked, f"{where}: {leaked} in\n{everything[:3000]}"


@pytest.mark.parametrize("case", list(CASES))
def test_echoed_credentials_never_leave(case: str, tmp_path: Path) -> None:
    """A server that echoes the credentials it refused, whatever its status: none reaches an output."""
    credentials = CASES[case]

    def one(status: int, json_body: bool) -> None:
        directory = tmp_path / f"{status}"
        directory.mkdir()
        with EchoServer(status=status, json_body=json_body) as server:
            uri = server.url
            if credentials.userinfo:
                uri = uri.replace("http://", f"http://{credentials.userinfo}@")
            run, everything = run_check(uri, credentials.env, directory)
        where = f"{case}, status {status}"
        assert server.echoed, f"{where}: the server echoed nothing"
        assert set(server.echoed) == {credentials.authorization}, f"{where}: {server.echoed}"
        assert run.exit_code == 3, f"{where}: {run.stderr}"
        assert_no_secret(everything, credentials.secrets, where)

    with ThreadPoolExecutor(max_workers=2) as pool:
        for future in [pool.submit(one, status, json_body) for status, json_body in ECHOES]:
            future.result()


def test_malformed_uri_password_never_leaves(tmp_path: Path) -> None:
    """A password with an unencoded `/` breaks the URI (no request is sent): still no output shows it."""
    encoded = urllib.parse.quote(PASSWORD)  # leaves "/" as is
    run, everything = run_check(f"http://{USER}:{encoded}@127.0.0.1:9/", {}, tmp_path)
    assert run.exit_code == 3, run.stderr
    assert_no_secret(everything, [*forms(PASSWORD, USER), encoded, encoded.split("/")[1]], "malformed URI")


# ---------------------------------------------------------------------------------------------
# redact.py's functions.

HOSTILE = ["p@ss'w!rd$%:/x-Canary9", "a/b@c'd!e$f%g:h", "%41%zz@@//''", 'quo"te\\back#frag?q=1&x']
ENCODINGS = {
    "as is": lambda p: p,
    "percent-encoded": lambda p: urllib.parse.quote(p, safe=""),
    "encoded but /": urllib.parse.quote,
    "encoded but sub-delims": lambda p: urllib.parse.quote(p, safe="!$'"),
}


@pytest.fixture
def fresh() -> Iterator[None]:
    """No secret registered before or after the test (the registry is process-wide)."""
    redaction.forget_secrets()
    yield
    redaction.forget_secrets()


@pytest.mark.parametrize("encoding", list(ENCODINGS))
@pytest.mark.parametrize("password", HOSTILE)
def test_redact_uri_removes_any_userinfo(password: str, encoding: str, fresh: None) -> None:
    """userinfo with @ ' ! $ % : / (encoded or not) is removed whole, host, path and query are kept."""
    written = ENCODINGS[encoding](password)
    uri = f"https://{USER}:{written}@host.example:5000/api/2.0?name=m"
    assert redaction.redact_uri(uri) == "https://***@host.example:5000/api/2.0?name=m"
    shown = redaction.redact(f"request to '{uri}' failed; retrying {uri}\n")
    assert shown == "request to 'https://***@host.example:5000/api/2.0?name=m' failed; retrying " \
                    "https://***@host.example:5000/api/2.0?name=m\n"  # fmt: skip
    secrets = redaction.secrets_in_uri(uri)
    assert {password, written, f"{USER}:{password}", b64(f"{USER}:{password}")[0]} <= set(secrets)


def test_redact_uri_takes_the_whole_string(fresh: None) -> None:
    """A URI whose password holds a space (only redact_uri knows where such a URI ends)."""
    assert redaction.redact_uri("https://u:pass word@h/x") == "https://***@h/x"
    assert "pass word" in redaction.secrets_in_uri("https://u:pass word@h/x")


def test_uris_without_credentials_are_kept(fresh: None) -> None:
    """A Databricks profile before @databricks is no credential; URIs without userinfo stay as they are."""
    for uri in ("dbfs://ws1@databricks/databricks/mlflow-registry/1/models/m", "databricks://prod_env",
                "http://127.0.0.1:5000", "mlflow-artifacts:/1/models/m-1/artifacts", "models:/m@champion",
                "https://host/api/2.0/mlflow/model-versions/get?name=m&version=1"):  # fmt: skip
        assert redaction.redact_uri(uri) == uri
        assert redaction.redact(f"at {uri} now") == f"at {uri} now"
        assert redaction.secrets_in_uri(uri) == []


def test_secret_query_parameters_are_removed(fresh: None) -> None:
    """Signed URLs (S3, Azure SAS, GCS) and token/password/key parameters lose their values only."""
    s3 = ("https://b.s3.amazonaws.com/m/model.pkl?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential="
          "AKIA%2F20260101&X-Amz-Security-Token=Fw%2B%27x&X-Amz-Signature=9f86d0&versionId=3")  # fmt: skip
    assert redaction.redact_uri(s3) == (
        "https://b.s3.amazonaws.com/m/model.pkl?X-Amz-Algorithm=***&X-Amz-Credential=***"
        "&X-Amz-Security-Token=***&X-Amz-Signature=***&versionId=3"
    )
    sas = "https://a.blob.core.windows.net/c/f?sv=2024&se=2026&sr=b&sp=r&sig=Ab%2Bc%3D#part"
    assert redaction.redact(f"GET {sas} 403") == (
        "GET https://a.blob.core.windows.net/c/f?sv=***&se=***&sr=***&sp=***&sig=***#part 403"
    )
    assert redaction.secrets_in_uri("https://h/x?token=t0k'en&page=2&api_key=k3y!") == [
        "t0k'en", "k3y!"
    ]  # fmt: skip
    assert redaction.redact("form: grant_type=client_credentials&client_secret=s3cr'et") == (
        "form: grant_type=client_credentials&client_secret=***"
    )


PROSE = "use basic auth or a bearer token; tokenizer_type: fast; token_type: bearer"


def test_unknown_credentials_are_removed_by_their_shape(fresh: None) -> None:
    """Never told the value: Authorization values (also form-encoded), Basic credentials, secret
    pairs in JSON, forms and variables; prose and MLmodel keys that only look alike are kept."""
    basic = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    cases = {
        f"Authorization: Bearer {TOKEN} next": "Authorization: Bearer *** next",
        f"authorization={urllib.parse.quote_plus('Basic ' + basic)}&host=h": "authorization=***&host=h",
        f'{{"access_token": "{TOKEN}", "token_type": "bearer"}}':
            '{"access_token": "***", "token_type": "bearer"}',
        f"MLFLOW_TRACKING_PASSWORD={PASSWORD} rest": "MLFLOW_TRACKING_PASSWORD=*** rest",
        PROSE: PROSE,
        f"token dapi{'0a' * 16} and dose{'1b' * 16}": "token *** and ***",
    }  # fmt: skip
    for text, expected in cases.items():
        assert redaction.redact(text) == expected, text


def test_remembered_secret_is_removed_in_every_form(fresh: None) -> None:
    """A registered password goes as is, percent-encoded, escaped, base64 (also inside a longer base64
    text, at each alignment) and as the HTTP Basic value of any user."""
    redaction.remember_secrets([PASSWORD])
    basic_of_other_user = base64.b64encode(f"bob:{PASSWORD}".encode()).decode()
    shown = {
        form: redaction.redact(f"<{form}>")
        for form in [
            *forms(PASSWORD),
            urllib.parse.quote_plus(PASSWORD),
            json.dumps(PASSWORD),
            repr(PASSWORD),
            basic_of_other_user,
            *(base64.b64encode(f"{prefix}{PASSWORD}tail".encode()).decode() for prefix in ("x", "xy", "xyz")),
        ]
    }  # fmt: skip
    for form, text in shown.items():
        assert redaction.REDACTED in text, form
        assert PASSWORD not in text and "ss'w!rd" not in text
        # What is left of a base64 form is at most the characters that mix in the neighbours' bits.
        assert len(text.replace(redaction.REDACTED, "")) <= len("<>") + 2 * 3 + len("dGFpbA=="), (form, text)


def test_old_signature_and_short_values(fresh: None) -> None:
    """redact(text, secrets) still works; values shorter than MIN_SECRET_LENGTH are left alone."""
    assert redaction.redact("a b@c'd x", ("b@c'd",)) == "a *** x"
    assert redaction.redact(f"x {base64.b64encode(b'b@c-d-e').decode()} y", ["b@c-d-e"]) == "x *** y"
    redaction.remember_secrets(["abc", None, ""])
    assert redaction.MIN_SECRET_LENGTH == 4
    assert redaction.redact("abc abcd") == "abc abcd"
    assert redaction.known_secrets() == frozenset()


def test_config_secrets_reads_like_configparser(fresh: None) -> None:
    """Every value of a .databrickscfg but the allow-listed keys, `=` or `:`, [DEFAULT], continuation
    lines, duplicates, text before the first section; a profile's Basic credentials."""
    text = (
        "token = before-any-section\n"
        "[DEFAULT]\nhost = https://default.example\ntoken = dapi-default-secret\n\n"
        "[prod_env]\nhost: https://prod.example\nclient_id: my-client\nclient_secret: s3cr'et:with=signs\n"
        "azure_tenant_id = tenant-1234\nretry_timeout_seconds = 300\n\n"
        "[basic]\nhost = https://user:inline-pass@basic.example\nusername = bob\npassword = first line\n"
        "  second line\n; a comment = not a value\n# token = commented-out\n\n"
        "[prod_env]\ntoken = duplicate-section-token\ntoken = duplicate-key-token\n"
        "[custom]\nsome_future_key = unknown-is-secret\n"
    )
    secrets = redaction.config_secrets(text)
    for secret in ["before-any-section", "dapi-default-secret", "s3cr'et:with=signs",
                   "first line\nsecond line", "first line", "second line", "duplicate-section-token",
                   "duplicate-key-token", "unknown-is-secret", "inline-pass",
                   b64("bob:first line\nsecond line")[0]]:  # fmt: skip
        assert secret in secrets, secret
    for kept in ["https://default.example", "https://prod.example", "my-client", "tenant-1234", "300", "bob",
                 "not a value", "commented-out"]:  # fmt: skip
        assert kept not in secrets, kept


def test_redact_tree_copies_and_redacts_keys_and_values(fresh: None) -> None:
    """Every string of a report, keys included, nested in dicts, lists and tuples; the input is unchanged."""
    redaction.remember_secrets([TOKEN])
    report = {
        "error": {"message": f"refused {TOKEN}", "exit_code": 3},
        "Options": {"tracking_uri": f"https://{USER}:{urllib.parse.quote(PASSWORD)}@h:5000"},
        f"key {TOKEN}": [f"{TOKEN}", 1, 2.5, True, None, ("x", f"{TOKEN}")],
    }
    before = json.dumps(report, sort_keys=True)
    shown = redaction.redact_tree(report)
    assert shown == {
        "error": {"message": "refused ***", "exit_code": 3},
        "Options": {"tracking_uri": "https://***@h:5000"},
        "key ***": ["***", 1, 2.5, True, None, ("x", "***")],
    }
    assert json.dumps(report, sort_keys=True) == before


SNIPPET = """
import os, sys
from pathlib import Path
from mlflow_version_check.redact import redact
text = sys.stdin.read()
print(redact(text))
os.environ["MLFLOW_TRACKING_TOKEN"] = "second-token-" + "9" * 8
Path(os.environ["DATABRICKS_CONFIG_FILE"]).unlink()
del os.environ["MLFLOW_TRACKING_PASSWORD"]
print(redact(text + " second-token-99999999"))
"""


def test_environment_secrets_are_known_without_being_told(tmp_path: Path) -> None:
    """A process knows the secrets of its variables, URIs and Databricks config file, notices changes,
    and keeps knowing a secret after its variable or file is gone."""
    config = tmp_path / "databrickscfg"
    config.write_text("[ws]\nhost = https://ws.example\ntoken: cfg-token-1234\nclient_secret = cfg-s3cr'et\n")
    env = {
        "MLFLOW_TRACKING_TOKEN": TOKEN,
        "MLFLOW_TRACKING_USERNAME": USER, "MLFLOW_TRACKING_PASSWORD": PASSWORD,
        "MLFLOW_TRACKING_URI": f"https://carol:{urllib.parse.quote(PASSWORD[::-1], safe='')}@h:5000",
        "DATABRICKS_CONFIG_FILE": str(config), "DATABRICKS_CLIENT_SECRET": "env-client-secret",
    }  # fmt: skip
    secrets = [*forms(TOKEN), *forms(PASSWORD, USER), *forms(PASSWORD[::-1], "carol"), "cfg-token-1234",
               "cfg-s3cr'et", "env-client-secret", "second-token-99999999"]  # fmt: skip
    text = " | ".join(secrets)
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "DATABRICKS_"))}
    completed = subprocess.run(
        [sys.executable, "-c", SNIPPET], input=text, capture_output=True, text=True, check=True,
        env={**clean, "HOME": str(tmp_path), **env}, timeout=60,
    )  # fmt: skip
    first, second = completed.stdout.splitlines()
    assert_no_secret(first, secrets[:-1], "first call")
    assert "second-token-99999999" in first, "not a secret yet"
    assert_no_secret(second, secrets, "after the environment changed")
    assert second.count(redaction.REDACTED) == len(secrets) + 1


def test_home_databrickscfg_is_read_when_no_file_is_named(tmp_path: Path) -> None:
    """Without DATABRICKS_CONFIG_FILE the secrets of $HOME/.databrickscfg are known."""
    (tmp_path / ".databrickscfg").write_text("[DEFAULT]\nhost = https://h.example\ntoken = home-token-5678\n")
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "DATABRICKS_"))}
    script = "import sys; from mlflow_version_check.redact import redact; print(redact(sys.argv[1]))"
    completed = subprocess.run(
        [sys.executable, "-c", script, "token home-token-5678 at https://h.example"],
        capture_output=True, text=True, check=True, env={**clean, "HOME": str(tmp_path)}, timeout=60,
    )  # fmt: skip
    assert completed.stdout.strip() == "token *** at https://h.example"
