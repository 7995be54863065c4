"""Remove credentials from URIs and messages before they reach a log, a report or an output."""

from __future__ import annotations

import re

# user:password@ (or token@) in any scheme://authority; not MLflow's `dbfs://<profile>@databricks`,
# where the part before @ names a Databricks profile, not a credential.
_USERINFO = re.compile(
    r"(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*://)(?P<userinfo>[^/@\s'\"]+)@(?!databricks(?:[/:]|$))"
)
# Query parameters that carry signatures or tokens in signed URLs (S3, Azure SAS, GCS, Databricks).
_SECRET_QUERY = re.compile(
    r"(?P<key>[?&](?:sig|signature|token|access_token|x-amz-signature|x-amz-security-token|"
    r"x-goog-signature|x-databricks-[a-z\-]+|se|sp|sv|skoid|sktid|sks|skv|code)=)[^&\s'\"]+",
    re.IGNORECASE,
)
# Bearer/Basic credentials quoted in error messages.
_AUTH_HEADER = re.compile(r"(?P<key>\b(?:Bearer|Basic)\s+)[A-Za-z0-9._~+/=\-]{8,}", re.IGNORECASE)
# Databricks personal access tokens have a fixed prefix.
_DATABRICKS_PAT = re.compile(r"\bdapi[0-9a-f]{20,}(?:-\d+)?\b")

REDACTED = "***"


def redact(text: str, secrets: tuple[str, ...] = ()) -> str:
    """Return text with credentials in URIs, signed URL parameters and known secrets replaced."""
    text = _USERINFO.sub(lambda m: f"{m.group('scheme')}{REDACTED}@", text)
    text = _SECRET_QUERY.sub(lambda m: f"{m.group('key')}{REDACTED}", text)
    text = _AUTH_HEADER.sub(lambda m: f"{m.group('key')}{REDACTED}", text)
    text = _DATABRICKS_PAT.sub(REDACTED, text)
    for secret in sorted((s for s in secrets if len(s) >= 4), key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    return text
