"""The parent's death: the watchdog, and the removal of the run's private directories.

ORPHANED and the list of private paths (filled from the request by session.serve) live here once,
for the session and the downloads alike.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import stat
import tempfile
import threading
import time
from typing import NoReturn

PARENT_POLL_SECONDS = 0.5
EXIT_ORPHANED = 70


# What a private path of this tool is called (tempfile prefixes in core, databricks and action).
PRIVATE_PREFIXES = ("mlflow-version-check-", "mvc-databricks-", "mvc-home-")
# Set once the parent is found gone: no download starts after it, and cleanup runs once.
ORPHANED = threading.Event()
PRIVATE_PATHS: list[str] = []  # from the request: this run's private directories
_CLEANUP = threading.Lock()


def _is_private(entry: str) -> bool:
    """Only a directory this run made: a tool prefix, in the temporary directory, ours, mode 0700."""
    try:
        info = os.lstat(entry)
    except OSError:
        return False
    return (
        os.path.isabs(entry)
        and os.path.basename(entry).startswith(PRIVATE_PREFIXES)
        and os.path.dirname(os.path.normpath(entry)) == os.path.normpath(tempfile.gettempdir())
        and stat.S_ISDIR(info.st_mode)
        and info.st_uid == os.geteuid()
        and stat.S_IMODE(info.st_mode) & 0o077 == 0
    )


def remove_private_paths() -> None:
    """Remove the run's private directories when the parent cannot: it was killed.

    The parent names them in its request (never the environment, which anyone could fill): the
    private Databricks config copy and the action's HOME hold credentials in clear, the temporary
    downloads hold the model. Credentials first; then the downloads, again after a moment, since a
    download already under way may still create its folder (no new one starts: ORPHANED).
    """
    with _CLEANUP:
        # Credential copies first, the downloads (the first prefix) last.
        ordered = sorted(
            PRIVATE_PATHS, key=lambda entry: os.path.basename(entry).startswith(PRIVATE_PREFIXES[0])
        )
        for attempt in range(3):
            for entry in ordered:
                if _is_private(entry):
                    shutil.rmtree(entry, ignore_errors=True)
            if attempt < 2:
                time.sleep(0.3)


def orphaned() -> NoReturn:
    """The parent is gone: stop downloading, remove the private directories, end with every child
    process of this worker (its process group: e.g. a `databricks auth token` it started)."""
    ORPHANED.set()
    remove_private_paths()
    logging.shutdown()
    try:
        if os.getpgid(0) == os.getpid():  # it leads its own group (pool.py), never the parent's
            os.killpg(os.getpid(), signal.SIGKILL)
    finally:
        os._exit(EXIT_ORPHANED)


def watch_parent(parent_pid: int) -> threading.Thread:
    """End this process as soon as the parent that started it is gone.

    A worker may sit in a network call for its whole timeout, and a parent killed by SIGKILL (a
    cancelled CI job) cannot stop it. When the parent dies the worker is re-parented (to init or a
    subreaper), so os.getppid() stops being the pid the parent passed: that works on Linux and
    macOS alike, unlike prctl(PR_SET_PDEATHSIG), which is Linux-only and fires when the *thread*
    that started the worker ends, a short-lived thread of a parent that is still alive. A failed
    write to the parent (main's emit) leads here too, whichever notices first.
    """

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(PARENT_POLL_SECONDS)
        orphaned()

    thread = threading.Thread(target=watch, name="parent-watchdog", daemon=True)
    thread.start()
    return thread
