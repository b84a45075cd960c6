"""Shared fixtures: the real-data folder and an isolated FiftyOne database.

FiftyOne reads its configuration when first imported, so no test module imports fiftyone
at module level: they ask for the ``fiftyone`` fixture, which starts a private mongod on a
free loopback port, points FiftyOne at it, and stops it after the session.
"""

from __future__ import annotations

import atexit
import importlib.util
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("CORALSEG_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))

# No analytics calls from tests, and no user config leaking in.
os.environ["FIFTYONE_DO_NOT_TRACK"] = "true"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data (EilatMixx and quadrat photos); skips where a clone has none."""
    if not (SHARED_DATA / "eilat_train").is_dir():
        pytest.skip(
            f"real reef data not found at {SHARED_DATA} (it sits beside the repository on "
            "the team's machines; set CORALSEG_SHARED_DATA to point elsewhere)"
        )
    return SHARED_DATA


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for_port(port: int, process: subprocess.Popen, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"mongod exited with code {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"mongod did not listen on port {port} within {timeout:.0f}s")


def _mongod_path() -> str:
    """FiftyOne's mongod, found without importing fiftyone (which would read its config)."""
    spec = importlib.util.find_spec("fiftyone")
    if spec is None or spec.origin is None:
        raise RuntimeError("fiftyone is not installed; run ./setup.sh")
    return str(Path(spec.origin).parent / "db" / "bin" / "mongod")


@pytest.fixture(scope="session")
def fiftyone(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """The real ``fiftyone`` module, on a private mongod that is stopped afterwards."""
    if "fiftyone" in sys.modules:
        raise RuntimeError("fiftyone was imported before the isolated database was set up")
    db_dir = tmp_path_factory.mktemp("mongo")
    port = _free_port()
    log = (db_dir / "mongod.log").open("w")
    process = subprocess.Popen(
        [
            _mongod_path(),
            "--dbpath",
            str(db_dir),
            "--port",
            str(port),
            "--bind_ip",
            "127.0.0.1",
            "--nounixsocket",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        _wait_for_port(port, process)
        os.environ["FIFTYONE_DATABASE_URI"] = f"mongodb://127.0.0.1:{port}"
        os.environ["FIFTYONE_DATABASE_NAME"] = "coralseg-tests"
        os.environ["FIFTYONE_DATABASE_ADMIN"] = "true"
        import fiftyone as fo

        yield fo
    finally:
        if "fiftyone" in sys.modules:
            # FiftyOne's exit handler cleans non-persistent datasets; with the server gone it
            # would wait 30 s for pymongo's timeout. The database is deleted below anyway.
            import fiftyone.core.odm.database as fodb

            atexit.unregister(fodb._delete_non_persistent_datasets_if_allowed)
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
        shutil.rmtree(db_dir, ignore_errors=True)
