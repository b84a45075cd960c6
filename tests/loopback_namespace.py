"""Running a command in network and PID namespaces of its own, with only loopback.

Ray looks for the machine's address by probing a public DNS server and then advertises the
machine's interface address. In a namespace where only ``lo`` exists it falls back to
127.0.0.1, so the Ray tests send nothing beyond the machine; every process they start ends
with the namespace. This needs root and ``unshare``; the tests skip with a reason otherwise.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def require_ray_namespace() -> None:
    """Skip the calling test, with the reason, where the namespace or Ray is not available."""
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("a private network namespace needs root and unshare")
    ray_command = Path(sys.executable).parent / "ray"  # ``ray start`` for multi-node tests
    if importlib.util.find_spec("ray") is None or not ray_command.exists():
        pytest.skip("Ray is not installed (pip install 'coralseg[ray]')")


@contextlib.contextmanager
def ray_workdir() -> Iterator[Path]:
    """A fresh folder under /tmp (Ray's socket paths must be short), removed afterwards."""
    work = Path(tempfile.mkdtemp(prefix="ray", dir="/tmp"))
    try:
        yield work
    finally:
        shutil.rmtree(work, ignore_errors=True)


def ray_environment(work: Path, **extra: str) -> dict[str, str]:
    """This process's environment for a command using Ray in ``work``, plus ``extra``."""
    env = dict(os.environ, PYTHONPATH=str(REPO), RAY_TMPDIR=str(work), **extra)
    # Token authentication guards a cluster reachable from a network; this one is not.
    env["RAY_AUTH_MODE"] = "disabled"
    return env


def run_in_loopback_namespace(
    command: str, env: dict[str, str], *, timeout: float, cwd: Path
) -> subprocess.CompletedProcess:
    """The shell ``command`` run in the namespace (``lo`` brought up first), its output
    captured as text."""
    return subprocess.run(
        ["unshare", "--net", "--pid", "--fork", "--mount-proc", "bash", "-c",
         f"ip link set lo up && {command}"],
        env=env, capture_output=True, text=True, timeout=timeout, cwd=cwd,
    )  # fmt: skip
