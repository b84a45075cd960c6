"""Running the bridge: the web service in this process, workers as supervised child processes.

``serve(settings, host, port, workers)`` checks the configuration and the storage (each
problem a sentence naming the file or server and what to do; a Redis that keeps nothing over
a restart is refused unless ``CORALSEG_ALLOW_VOLATILE_STORE=1``), starts ``workers``
processes of ``python -m cvat_bridge.worker`` under a :class:`~.supervisor.Supervisor`
(a dead one is restarted with backoff and its runs go back to the queue), then uvicorn in
the foreground. Stopping (Ctrl-C, SIGTERM) stops uvicorn, then asks the workers to stop: a
run in progress goes back to the queue between two frames and is resumed by the next
worker. Workers exit by themselves if this process dies.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from collections.abc import Callable

import uvicorn

from coral_core.errors import CoralsegError
from cvat_bridge.app import create_app
from cvat_bridge.registry import ModelRegistry
from cvat_bridge.settings import BridgeSettings
from cvat_bridge.state import BridgeState
from cvat_bridge.storage import check_durable, open_storage
from cvat_bridge.supervisor import Supervisor

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


def worker_command(lazy: bool = False) -> Callable[[str], list[str]]:
    """The command line of a worker process with a given id, watching this process."""

    def command(worker_id: str) -> list[str]:
        line = [sys.executable, "-m", "cvat_bridge.worker", "--parent-pid", str(os.getpid()),
                "--worker-id", worker_id]  # fmt: skip
        return [*line, "--lazy"] if lazy else line

    return command


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
    store, queue = open_storage(settings, settings.request_timeout)
    check_durable(store, settings)
    log.info("coralseg bridge: %s", settings.describe())
    state = BridgeState(store)
    supervisor = Supervisor(worker_command(lazy), workers, state, queue).start()
    try:
        if web:
            # uvicorn raises the SIGTERM it stopped on again once it has shut down; by
            # default that kills this process before the workers are asked to stop
            signal.signal(signal.SIGTERM, _interrupt)
            app = create_app(settings, registry, state, queue, supervisor=supervisor)
            uvicorn.run(app, host=host, port=port, log_level="info", access_log=False)
        else:
            stopping = threading.Event()
            signal.signal(signal.SIGTERM, lambda *_: stopping.set())
            while not stopping.wait(1.0):
                pass
    except KeyboardInterrupt:
        pass
    finally:
        stop_workers(supervisor)
    return 0


def stop_workers(supervisor: Supervisor) -> None:
    """Stop the workers; meanwhile a second Ctrl-C or SIGTERM kills them at once instead of
    ending this process in a traceback with its workers left running. The signal handlers
    are restored afterwards."""
    previous = {}
    try:
        for signum in (signal.SIGINT, signal.SIGTERM):
            previous[signum] = signal.signal(signum, lambda *_: supervisor.kill())
    except ValueError:
        pass  # not the main thread: no handlers to set (the workers are still stopped)
    try:
        supervisor.stop()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _interrupt(signum: int, frame: object) -> None:
    """SIGTERM as Ctrl-C: :func:`serve` stops its workers and returns 0."""
    raise KeyboardInterrupt
