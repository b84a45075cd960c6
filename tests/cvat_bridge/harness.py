"""Running the bridge for tests, and small helpers over the fake CVAT.

* :class:`InProcessBridge` -- the web service on a free loopback port (uvicorn thread) and a
  :class:`~cvat_bridge.worker.Worker` in threads, sharing this process's model copy.
* :class:`BridgeProcess` -- ``python -m coralseg.cli bridge`` in its own process group,
  which a test can SIGKILL as a whole.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from cvat_bridge.app import create_app
from cvat_bridge.kv import open_store
from cvat_bridge.queue import BridgeQueue
from cvat_bridge.registry import ModelRegistry
from cvat_bridge.settings import BridgeSettings
from cvat_bridge.signature import sign
from cvat_bridge.state import BridgeState
from cvat_bridge.worker import Worker
from tests.fake_cvat import FakeCvatState, make_frame

REPO = Path(__file__).resolve().parents[2]
USERNAME, PASSWORD = "alice", "secret"
SECRET = "webhook-secret-for-tests"
MODEL = "tiny-coral"
WEBHOOK_PATH = f"/detect-model-webhook?model_name={MODEL}&conv_mask_to_poly=true"
STATUS_HEADERS = {"Authorization": f"Bearer {SECRET}"}  # GET /runs needs the secret


def bridge_settings(cvat_url: str, registry: Path, cache: Path, **changes: Any) -> BridgeSettings:
    """Settings for tests: short leases and retries, no periodic reconciliation."""
    settings = BridgeSettings(
        cvat_url=cvat_url,
        cvat_username=USERNAME,
        cvat_password=PASSWORD,
        webhook_secret=SECRET,
        cache_dir=cache,
        models_file=registry,
        run_lease=5.0,  # generous: heartbeats come late on a busy 2-core machine
        recover_interval=0.3,
        reconcile_interval=0.0,
        cvat_retries=5,
        cvat_timeout=5.0,
        retry_base_delay=0.05,
        upload_batch_frames=2,
    )
    return replace(settings, **changes)


def settings_env(settings: BridgeSettings) -> dict[str, str]:
    """The environment that gives ``settings`` to a bridge subprocess."""
    return {
        "CVAT_URL": settings.cvat_url,
        "CVAT_USERNAME": settings.cvat_username,
        "CVAT_PASSWORD": settings.cvat_password,
        "WEBHOOK_SECRET": settings.webhook_secret,
        "CACHE_DIR": str(settings.cache_dir),
        "CORALSEG_QUEUE_URL": settings.queue_url,
        "CORALSEG_MODELS": str(settings.models_file),
        "CORALSEG_RUN_LEASE": str(settings.run_lease),
        "CORALSEG_RECOVER_INTERVAL": str(settings.recover_interval),
        "CORALSEG_RECONCILE_INTERVAL": str(settings.reconcile_interval),
        "CORALSEG_CVAT_RETRIES": str(settings.cvat_retries),
        "CORALSEG_CVAT_TIMEOUT": str(settings.cvat_timeout),
        "CORALSEG_RETRY_BASE_DELAY": str(settings.retry_base_delay),
        "CORALSEG_UPLOAD_BATCH_FRAMES": str(settings.upload_batch_frames),
    }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(condition: Callable[[], Any], timeout: float = 60.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.05)


def finished_runs(bridge: Any, job_id: int, count: int = 1) -> list[dict] | None:
    """The runs of ``job_id`` once ``count`` of them have ended and none is open, else None
    (for :func:`wait_for`); ``bridge`` answers ``runs(job_id)`` over HTTP."""
    runs = bridge.runs(job_id)
    done = [r for r in runs if r["status"] in ("done", "failed")]
    return runs if len(done) >= count and len(done) == len(runs) else None


class InProcessBridge:
    """Web service + one worker in this process; ``url`` is the webhook base."""

    def __init__(
        self,
        settings: BridgeSettings,
        worker: bool = True,
        web: bool = True,
        models: ModelRegistry | None = None,
        supervisor: Any = None,
    ) -> None:
        self.settings = settings
        self.registry = ModelRegistry.from_file(settings.models_file)
        if models is not None:  # reuse the predictors another registry has loaded
            self.registry._predictors = models._predictors
        # the web service's records and queue, with its short request-path timeouts
        self.state = BridgeState(open_store(settings.effective_queue_url, settings.request_timeout))
        self.queue = BridgeQueue(settings.effective_queue_url, settings.request_timeout)
        self.worker = Worker(settings, self.registry) if worker else None
        self.web = web
        self.supervisor = supervisor
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.port = free_port()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> InProcessBridge:
        if self.web:
            app = create_app(
                self.settings, self.registry, self.state, self.queue, supervisor=self.supervisor
            )
            config = uvicorn.Config(
                app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="off"
            )
            self._server = uvicorn.Server(config)
            self._thread = threading.Thread(target=self._server.run, daemon=True)
            self._thread.start()
            wait_for(lambda: self._server.started, 20, "the bridge web service")
        if self.worker is not None:
            self.worker.start()
        return self

    def stop(self) -> None:
        if self.worker is not None:
            self.worker.stop()
        if self._server is not None:
            self._server.should_exit = True
            self._thread.join(10)

    def __enter__(self) -> InProcessBridge:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def runs(self, job_id: int) -> list[dict]:
        response = httpx.get(f"{self.url}/runs/{job_id}", headers=STATUS_HEADERS, timeout=10)
        return response.json()["runs"] if response.status_code == 200 else []


class BridgeProcess:
    """``coralseg bridge`` as a subprocess (own process group) with ``settings``."""

    def __init__(
        self, settings: BridgeSettings, *args: str, log: Path, port: int | None = None
    ) -> None:
        self.settings = settings
        self.port = port or free_port()
        self.args = args
        self.log = log
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, wait_ready: bool = True) -> BridgeProcess:
        env = {**os.environ, **settings_env(self.settings), "PYTHONUNBUFFERED": "1"}
        command = [sys.executable, "-m", "coralseg.cli", "bridge", "--host", "127.0.0.1",
                   "--port", str(self.port), *self.args]  # fmt: skip
        with self.log.open("a") as out:
            self.process = subprocess.Popen(
                command, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        if wait_ready and "--no-server" not in self.args:
            wait_for(self._ready, 180, f"the bridge to be ready (log: {self.log})")
        return self

    def _ready(self) -> bool:
        if self.process.poll() is not None:
            raise RuntimeError(f"the bridge exited with {self.process.returncode}: {self.log}")
        try:
            return httpx.get(f"{self.url}/ready", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def kill(self) -> None:
        """SIGKILL the bridge and its workers at once."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.kill()

    def runs(self, job_id: int) -> list[dict]:
        try:
            response = httpx.get(f"{self.url}/runs/{job_id}", headers=STATUS_HEADERS, timeout=10)
        except httpx.HTTPError:
            return []
        return response.json()["runs"] if response.status_code == 200 else []


class RedisServer:
    """A private ``redis-server`` on a free loopback port, durable (append-only file) unless
    ``durable=False``, which a test can pause (SIGSTOP), resume, or restart empty."""

    def __init__(self, folder: Path, durable: bool = True) -> None:
        self.folder = folder
        self.durable = durable
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        self.folder.mkdir(parents=True, exist_ok=True)
        persistence = ["--appendonly", "yes"] if self.durable else ["--appendonly", "no"]
        self.process = subprocess.Popen(
            [shutil.which("redis-server"), "--port", str(self.port), "--bind", "127.0.0.1",
             "--save", "", *persistence, "--dir", str(self.folder)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 20
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return self
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("redis-server did not start") from None
                time.sleep(0.05)

    def pause(self) -> None:
        os.kill(self.process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.kill(self.process.pid, signal.SIGCONT)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.resume()
            self.process.terminate()
            self.process.wait(10)

    def restart_empty(self) -> None:
        """Stop it, delete its files, start it again on the same port: all data gone."""
        self.stop()
        shutil.rmtree(self.folder)
        self.start()


# --- the fake CVAT side ----------------------------------------------------------------


def make_job(state: FakeCvatState, labels: list[str], frames: int = 4, name: str = "quadrats"):
    """A project (created once, with ``labels``) and a task of ``frames`` frames, one job."""
    project = next(iter(state.projects.values()), None) or state.add_project("reef", labels)
    images = [
        make_frame(f"{name}-{i}.jpg", 64 + 8 * (i % 3), 48, color=(20 + 37 * i % 200, 120, 160))
        for i in range(frames)
    ]
    task = state.add_task(project, name, images)
    return project, task, task.jobs[0]


def post_event(bridge_url: str, body: bytes, secret: str | None = SECRET, path: str = WEBHOOK_PATH,
               signature: str | None = None, timeout: float = 10.0) -> httpx.Response:  # fmt: skip
    """POST ``body`` as CVAT does (JSON, signed with ``secret`` unless None)."""
    headers = {"Content-Type": "application/json"}
    if signature is not None:
        headers["X-Signature-256"] = signature
    elif secret is not None:
        headers["X-Signature-256"] = sign(secret, body)
    return httpx.post(bridge_url + path, content=body, headers=headers, timeout=timeout)


def event_body(payload: dict) -> bytes:
    """CVAT's body: ``json.dumps(payload)`` with the default separators."""
    return json.dumps(payload).encode("utf-8")


def shapes_by_frame(state: FakeCvatState, task) -> dict[int, list]:
    with state.lock:
        found: dict[int, list] = {}
        for shape in task.shapes:
            found.setdefault(shape.frame, []).append(shape)
        return found
