"""Running the bridge: the web service in this process, workers as child processes.

``serve(settings, host, port, workers)`` starts ``workers`` processes of
``python -m cvat_bridge.worker`` (they read the same environment), then uvicorn in the
foreground. Stopping (Ctrl-C, SIGTERM) stops uvicorn, then asks the workers to stop: a run in
progress goes back to the queue between two frames and is resumed by the next worker.
Workers exit by themselves if this process dies.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys

import uvicorn

from coral_core.errors import CoralsegError
from cvat_bridge.app import create_app
from cvat_bridge.kv import open_store
from cvat_bridge.queue import BridgeQueue
from cvat_bridge.registry import ModelRegistry
from cvat_bridge.settings import BridgeSettings
from cvat_bridge.state import BridgeState

log = logging.getLogger("cvat_bridge")


def load_registry(settings: BridgeSettings) -> ModelRegistry:
    if settings.models_file is None:
        raise CoralsegError(
            "CORALSEG_MODELS is not set: give the model registry file (YAML mapping each "
            "model_name to its config, weights and SAM checkpoint)"
        )
    registry = ModelRegistry.from_file(settings.models_file, device=settings.device)
    for name in registry.names:
        registry.spec(name).check_files()
    return registry


def start_workers(count: int, lazy: bool = False) -> list[subprocess.Popen]:
    command = [sys.executable, "-m", "cvat_bridge.worker", "--parent-pid", str(os.getpid())]
    if lazy:
        command.append("--lazy")
    return [subprocess.Popen(command) for _ in range(count)]


def stop_workers(processes: list[subprocess.Popen], timeout: float = 60.0) -> None:
    for process in processes:
        if process.poll() is None:
            process.terminate()
    for process in processes:
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def serve(
    settings: BridgeSettings,
    host: str = "0.0.0.0",
    port: int = 8000,
    workers: int = 1,
    web: bool = True,
    lazy: bool = False,
) -> int:
    """Run the bridge until stopped; returns the exit status."""
    settings.check_cvat()
    registry = load_registry(settings)
    store = open_store(settings.effective_queue_url)
    queue = BridgeQueue(settings.effective_queue_url)
    try:
        store.ping()
        queue.ping()
    except Exception as err:
        raise CoralsegError(
            f"the queue at {settings.describe()['queue']} cannot be reached ({err}); start "
            "Redis or fix CORALSEG_QUEUE_URL"
        ) from None
    log.info("coralseg bridge: %s", settings.describe())
    processes = start_workers(workers, lazy=lazy)
    try:
        if web:
            app = create_app(settings, registry, BridgeState(store), queue)
            uvicorn.run(app, host=host, port=port, log_level="info", access_log=False)
        else:
            for process in processes:
                process.wait()
    except KeyboardInterrupt:
        pass
    finally:
        stop_workers(processes)
    return 0
