"""cvat_bridge.service on its own: the registry check and the worker command line, refusals
before anything is started or written, and ``serve`` as a process -- web service over
loopback, one supervised worker that heartbeats into the records, and SIGTERM stopping
both with status 0."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import httpx
import pytest

from coral_core.errors import CoralsegError
from cvat_bridge.kv import open_store
from cvat_bridge.service import load_registry, serve, worker_command
from cvat_bridge.settings import BridgeSettings
from cvat_bridge.state import BridgeState
from tests.cvat_bridge.harness import REPO, bridge_settings, free_port, settings_env, wait_for
from tests.fake_cvat import FakeCvatServer


def test_the_registry_must_be_given_and_its_files_exist(
    unloaded_registry: Path, tmp_path: Path
) -> None:
    with pytest.raises(CoralsegError, match=r"^CORALSEG_MODELS is not set: give the model"):
        load_registry(BridgeSettings())
    registry = load_registry(BridgeSettings(models_file=unloaded_registry, device="cpu"))
    assert registry.names == ["tiny-coral"] and registry.device == "cpu"
    (tmp_path / "unloaded.pth").unlink()
    with pytest.raises(CoralsegError) as err:
        load_registry(BridgeSettings(models_file=unloaded_registry))
    assert str(err.value) == (
        f"model 'tiny-coral': its weights {tmp_path / 'unloaded.pth'} does not exist"
    )


def test_the_worker_command_names_its_parent_and_id() -> None:
    eager, lazy = worker_command()("host:1:w0:aa"), worker_command(lazy=True)("host:1:w1:bb")
    assert eager == [sys.executable, "-m", "cvat_bridge.worker", "--parent-pid",
                     str(os.getpid()), "--worker-id", "host:1:w0:aa"]  # fmt: skip
    assert lazy[-3:] == ["--worker-id", "host:1:w1:bb", "--lazy"]


def test_serve_refuses_before_starting_or_writing_anything(
    unloaded_registry: Path, redis_url: str, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    complete = bridge_settings("http://127.0.0.1:9", unloaded_registry, cache)
    for settings, said in (
        (replace(complete, cvat_url=""), "CVAT_URL is not set"),
        (replace(complete, cvat_password=""), "no CVAT credentials"),
        (replace(complete, models_file=None), "CORALSEG_MODELS is not set"),
        (replace(complete, models_file=tmp_path / "nowhere.yaml"), "nowhere.yaml"),
    ):
        with pytest.raises(CoralsegError, match=said):
            serve(settings, "127.0.0.1", free_port(), workers=1)
    assert not cache.exists()  # no state file was created by a refused start
    unreachable = replace(complete, queue_url=f"redis://127.0.0.1:{free_port()}/0")
    with pytest.raises(CoralsegError, match="unreachable"):
        serve(unreachable, "127.0.0.1", free_port(), workers=1)


def test_serve_runs_web_and_worker_and_sigterm_stops_both(
    cvat: FakeCvatServer, unloaded_registry: Path, tmp_path: Path
) -> None:
    settings = bridge_settings(cvat.url, unloaded_registry, tmp_path / "cache")
    port = free_port()
    script = (
        "import sys; from cvat_bridge.service import serve; "
        "from cvat_bridge.settings import BridgeSettings; "
        f"sys.exit(serve(BridgeSettings.from_env(dotenv=None), '127.0.0.1', {port}, "
        "workers=1, lazy=True))"
    )
    env = {**os.environ, **settings_env(settings), "PYTHONPATH": str(REPO)}
    log = tmp_path / "serve.log"
    with log.open("w") as out:
        process = subprocess.Popen([sys.executable, "-c", script], cwd=REPO, env=env,
                                   stdout=out, stderr=subprocess.STDOUT)  # fmt: skip
    try:

        def health() -> dict | None:
            if process.poll() is not None:
                raise RuntimeError(f"serve exited with {process.returncode}: {log.read_text()}")
            try:
                answer = httpx.get(f"http://127.0.0.1:{port}/health", timeout=2)
            except httpx.HTTPError:
                return None
            return answer.json() if answer.status_code == 200 else None

        workers = wait_for(health, 60, "the bridge's web service")["workers"]
        assert (workers["wanted"], workers["running"], workers["restarts"]) == (1, 1, 0)
        (worker_pid,) = workers["pids"]
        records = BridgeState(open_store(settings.effective_queue_url, 5.0))
        live = wait_for(lambda: records.live_workers(60), 60, "the worker's heartbeat")
        assert [w["pid"] for w in live] == [worker_pid]
        process.send_signal(signal.SIGTERM)
        assert process.wait(60) == 0
        deadline = time.monotonic() + 30  # the worker stops too (and is reaped)
        while Path(f"/proc/{worker_pid}").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not Path(f"/proc/{worker_pid}").exists()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
