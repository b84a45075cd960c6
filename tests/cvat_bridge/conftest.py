"""Fixtures of the bridge tests: a tiny random-weight model and its registry file, a fake CVAT
with a project, a Redis server, and the bridge itself -- in this process (web service in a
uvicorn thread, worker in threads: fast) or as ``coralseg bridge`` subprocesses (for
SIGKILL and scale-out)."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from cvat_bridge.registry import ModelRegistry
from tests.cvat_bridge.harness import (
    PASSWORD,
    SECRET,
    USERNAME,
    WEBHOOK_PATH,
    InProcessBridge,
    RedisServer,
    bridge_settings,
    finished_runs,
    make_job,
    wait_for,
)
from tests.fake_cvat import FakeCvatServer, FakeCvatState
from tests.model_fixtures import TINY, save_tiny_checkpoint


@pytest.fixture(scope="session")
def model_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A tiny families model with random weights, at native resolution: the fake CVAT's small
    frames stay one window."""
    from coral_core.labels.taxonomy import FAMILIES, MaskEncoding

    path = tmp_path_factory.mktemp("bridge-model") / "tiny.pth"
    return TINY, save_tiny_checkpoint(path, MaskEncoding(FAMILIES), native_resolution=True)


@pytest.fixture(scope="session")
def colony_labels() -> list[str]:
    from coral_core.labels.taxonomy import FAMILIES, MaskEncoding

    encoding = MaskEncoding(FAMILIES)
    return [encoding.label_names[v] for v in encoding.colony_values]


def write_registry(path: Path, model_files: tuple[Path, Path], version: str = "1") -> Path:
    config, weights = model_files
    path.write_text(
        "models:\n"
        "  tiny-coral:\n"
        f"    config: {config}\n"
        f"    weights: {weights}\n"
        f"    version: '{version}'\n"
        "    min_threshold: 0.0\n"
        "    unsure_threshold: 0.0\n"
        "    min_area: 4\n",
        encoding="utf-8",
    )
    return path


@pytest.fixture
def registry_file(tmp_path: Path, model_files) -> Path:
    return write_registry(tmp_path / "models.yaml", model_files)


@pytest.fixture
def unloaded_registry(tmp_path: Path) -> Path:
    """A registry whose model files exist but are never loaded: for the web service alone
    (no worker), without building a model."""
    config, weights = tmp_path / "unloaded.py", tmp_path / "unloaded.pth"
    config.write_text("# never loaded\n")
    weights.write_bytes(b"")
    return write_registry(tmp_path / "unloaded.yaml", (config, weights))


@pytest.fixture
def cvat() -> Iterator[FakeCvatServer]:
    """A fake CVAT with the bridge's user; tests add projects, tasks and the webhook."""
    state = FakeCvatState()
    state.add_user(USERNAME, PASSWORD, email="alice@example.org")
    with FakeCvatServer(state) as server:
        yield server


@pytest.fixture(scope="session")
def loaded_models(model_files, tmp_path_factory: pytest.TempPathFactory) -> ModelRegistry:
    """The test registry with its model loaded once per session (predictors are shared)."""
    path = write_registry(tmp_path_factory.mktemp("registry") / "models.yaml", model_files)
    registry = ModelRegistry.from_file(path)
    registry.predictor("tiny-coral")
    return registry


@pytest.fixture
def bridge(
    cvat: FakeCvatServer, registry_file: Path, tmp_path: Path, loaded_models
) -> Iterator[InProcessBridge]:
    """The bridge in this process: embedded SQLite queue, one worker thread."""
    settings = bridge_settings(cvat.url, registry_file, tmp_path / "cache")
    with InProcessBridge(settings, models=loaded_models) as running:
        yield running


@dataclass(frozen=True)
class AnnotatedJob:
    """A job the bridge pre-annotated, and its finished run (as ``GET /runs/{job}`` shows it)."""

    project: Any
    task: Any
    job: Any
    run: dict


@pytest.fixture
def annotate_job(
    cvat: FakeCvatServer, bridge: InProcessBridge, colony_labels
) -> Callable[..., AnnotatedJob]:
    """``annotate_job(frames=4, path=WEBHOOK_PATH, prepare=None)``: a new job of ``frames``
    frames in a project whose webhook calls the bridge at ``path``; ``prepare(task)`` may
    change the task first (frames, a person's shapes); then the annotator starts the job
    ("in progress") and the bridge's run is awaited."""

    def annotate(
        frames: int = 4,
        path: str = WEBHOOK_PATH,
        prepare: Callable[[Any], None] | None = None,
    ) -> AnnotatedJob:
        project, task, job = make_job(cvat.state, colony_labels, frames=frames)
        cvat.state.add_webhook(project, bridge.url + path, SECRET)
        if prepare is not None:
            prepare(task)
        cvat.state.set_job(job, state="in progress")
        (run,) = wait_for(lambda: finished_runs(bridge, job.id), 180, "the run")
        return AnnotatedJob(project, task, job, run)

    return annotate


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A private redis-server (append-only file on) on a free loopback port; a test may
    pause it (SIGSTOP) or restart it empty."""
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed (Debian: apt-get install redis-server)")
    server = RedisServer(tmp_path / "redis").start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    return redis_server.url


@pytest.fixture
def secret() -> str:
    return SECRET
