"""The per-server worker process: resolve a model version, locate and download its models, hash them.

It runs as `python -m mlflow_version_check.worker <fd> <parent pid>` with an environment that names
exactly one server (DESIGN.md, "one worker process per server"), because several MLflow code paths
read the process-wide tracking URI or default credentials whatever URI they are given. Inside this
process the process-wide settings are therefore safe. The messages are the types of protocol.py: the
request comes as a JSON line on stdin; events go as JSON lines on the file descriptor <fd>, so that
anything MLflow prints on stdout cannot corrupt the protocol.

The protocol has two phases, so that the parent can see where every model of every server is stored
before anything is downloaded, and download each storage location once:

1. stdin: a `Request` -> a `Resolved` event per version, then `Located` (each version's registry
   record, and each model's URI, shown location and storage location key).
2. stdin: a `DownloadPlan` (or an abort) -> `DownloadProgress` events, then `Downloaded` (a
   `ModelManifest` per planned download).

A `Failure` (the named error's fields, secrets removed) ends the conversation at any point.

Rules this process keeps:

- Storage location keys. The parent downloads a location once when two models report the same
  `location_key`, and then reports them as one location (`same_location`): a key is a promise of the
  same bytes in the same store. It is this server's identity (the normalized tracking URI with its
  path, the normalized registry URI, the Databricks workspace host) plus the normalized storage URI
  (`mlflow-artifacts:` resolved to the URL MLflow requests). Only spellings that are provably the
  same are normalized (scheme and host case, a default port, trailing and duplicate slashes and dot
  segments in an HTTP path, a local path's real path); never `localhost` vs `127.0.0.1`. Credentials
  in a URI enter a key only as a SHA-256 digest, and keys never reach a report.
- Local files. A `file:` (or bare path) location is read only when the URI that supplied it is this
  machine's own store (see `locations.is_local_uri`): a remote tracking server or registry must not
  be able to make this tool read, hash and name files of the machine it runs on.
- File names. Manifest keys are the listed relative paths, as text. A byte of a local file name that
  is not UTF-8 (Python's surrogateescape, U+DC80..U+DCFF) is written as the four characters `\\xNN`,
  and any other lone surrogate as `\\uNNNN` (lower-case hex), so that every name survives JSON and
  UTF-8 and two different names never share a key: listing entries with a backslash are refused as
  unsafe, so a backslash in a key is always such an escape. Control characters are kept as they are
  (JSON escapes them; the front ends neutralize them on their text outputs).
- Parent. The parent passes its pid; within a second of the parent's death, even a SIGKILL, a
  watchdog thread (or a failed write to the parent) removes the run's private directories named in
  the request and ends this process with its process group, so that no worker blocked on a silent
  server lives on and no credential copy or download is left behind.

Where each part lives (callers import a name from the module that holds it):

- `session`: the protocol loop (`serve`), the one server's MLflow client (`Session`), `main` and
  `exit_now`; `__main__` only calls them.
- `versions`: what a `version_or_stage` names (`resolve_version`).
- `locations`: from a version's URIs to storage locations (`locate`), `is_local_uri`, `location_key`.
- `downloads`: listing, downloading and hashing a location's files (`download_tree`).
- `failures`: MLflow's, requests' and databricks-sdk's exceptions as the named errors
  (`registry_call`, `download_error`).
- `server`: the one server (`Server`) and the URI normalizers behind its identity.
- `parent`: the parent watchdog, `ORPHANED` and the removal of the run's private directories.

Importing this package, or any of its modules, does not import MLflow: each function imports what
it calls.
"""
