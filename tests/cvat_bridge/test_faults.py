"""The web service under storage and client faults, over real HTTP: a SQLite file locked by
another process, a Redis paused with SIGSTOP, clients that send their bodies slowly or not
at all, signed bodies that are malformed, event names that only look like CVAT's, and status
reads without credentials. Every answer comes within CVAT's 10 s webhook timeout."""

from __future__ import annotations

import json
import logging
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.cvat_bridge.harness import (
    SECRET,
    InProcessBridge,
    RedisServer,
    bridge_settings,
    event_body,
    make_job,
    post_event,
)
from tests.fake_cvat import FakeCvatServer

CVAT_TIMEOUT = 10.0
FAST = 1.0  # request_timeout for these tests (3 s by default: same path, longer waits)
LOCKER = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
time.sleep(120)
"""


@contextmanager
def locked(path: Path) -> Iterator[None]:
    """Another process holds ``BEGIN EXCLUSIVE`` on the SQLite file ``path``."""
    locker = subprocess.Popen([sys.executable, "-c", LOCKER, str(path)], stdout=subprocess.PIPE)
    try:
        assert locker.stdout.readline().strip() == b"locked"
        yield
    finally:
        locker.kill()
        locker.wait(10)


def timed(call) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    answer = call()
    return answer, time.monotonic() - started


def in_progress_body(cvat: FakeCvatServer, labels: list[str]) -> tuple[bytes, object]:
    _, _, job = make_job(cvat.state, labels)
    cvat.state.set_job(job, state="in progress")
    return event_body(cvat.job_event(job)), job


def test_a_locked_queue_file_is_refused_in_time_and_the_retry_queues_the_run(
    cvat: FakeCvatServer, unloaded_registry: Path, tmp_path: Path, colony_labels
) -> None:
    settings = bridge_settings(
        cvat.url, unloaded_registry, tmp_path / "cache", request_timeout=FAST
    )
    with InProcessBridge(settings, worker=False) as bridge:
        body, job = in_progress_body(cvat, colony_labels)
        assert bridge.queue.size() == 0  # the queue's file exists
        with locked(Path(settings.effective_queue_url)):
            refused, seconds = timed(lambda: post_event(bridge.url, body, timeout=30))
            assert refused.status_code == 503, refused.text
            assert seconds < CVAT_TIMEOUT / 2
            assert "locked" in refused.json()["detail"]
            ready, seconds = timed(lambda: httpx.get(f"{bridge.url}/ready", timeout=30))
            assert ready.status_code == 503 and seconds < CVAT_TIMEOUT / 2
            assert ready.json()["queue"] == "locked by another process"
            assert ready.json()["records"] == "ok"  # the right cause, not a wrong one
        # the run was recorded, its queue message not sent: CVAT's retry sends it
        (run,) = bridge.state.runs_of_job(job.id)
        assert run["status"] == "queued" and not run["enqueued"]
        # a retry sends it once the recording request has surely ended (3 request timeouts)
        time.sleep(max(0.0, 3 * FAST - (time.time() - run["queued_at"])) + 0.1)
        retried = post_event(bridge.url, body)
        assert retried.status_code == 202, retried.text
        assert retried.json()["run_id"] == run["run_id"]
        assert bridge.queue.size() == 1 and bridge.state.run(run["run_id"])["enqueued"]
        again = post_event(bridge.url, body)  # once sent, a repeat sends nothing more
        assert again.status_code == 200 and bridge.queue.size() == 1


def test_a_locked_records_file_is_refused_in_time(
    cvat: FakeCvatServer, unloaded_registry: Path, tmp_path: Path, colony_labels
) -> None:
    settings = bridge_settings(
        cvat.url, unloaded_registry, tmp_path / "cache", request_timeout=FAST
    )
    with InProcessBridge(settings, worker=False) as bridge:
        body, _ = in_progress_body(cvat, colony_labels)
        records = Path(bridge.state.store.path)
        with locked(records):
            refused, seconds = timed(lambda: post_event(bridge.url, body, timeout=30))
            assert refused.status_code == 503 and seconds < CVAT_TIMEOUT / 2
            assert str(records) in refused.json()["detail"]
            ready, seconds = timed(lambda: httpx.get(f"{bridge.url}/ready", timeout=30))
            assert ready.status_code == 503 and seconds < CVAT_TIMEOUT / 2
            assert "locked by another process" in ready.json()["records"]
        assert post_event(bridge.url, body).status_code == 202


def test_a_paused_redis_is_refused_in_time(
    cvat: FakeCvatServer, unloaded_registry: Path, tmp_path: Path, colony_labels,
    redis_server: RedisServer,
) -> None:  # fmt: skip
    settings = bridge_settings(
        cvat.url,
        unloaded_registry,
        tmp_path / "cache",
        queue_url=redis_server.url,
        request_timeout=FAST,
    )
    with InProcessBridge(settings, worker=False) as bridge:
        body, _ = in_progress_body(cvat, colony_labels)
        redis_server.pause()
        try:
            refused, seconds = timed(lambda: post_event(bridge.url, body, timeout=30))
            assert refused.status_code == 503 and seconds < CVAT_TIMEOUT / 2, refused.text
            ready, seconds = timed(lambda: httpx.get(f"{bridge.url}/ready", timeout=30))
            assert ready.status_code == 503 and seconds < CVAT_TIMEOUT / 2
            assert ready.json()["records"] == "not answering in time"
        finally:
            redis_server.resume()
        accepted = post_event(bridge.url, body)
        assert accepted.status_code == 202, accepted.text
        assert bridge.queue.size() == 1


def _half_sent(port: int, path: str, declared: int, sent: bytes) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    head = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {declared}\r\n\r\n").encode()  # fmt: skip
    sock.sendall(head + sent)
    return sock


def test_slow_bodies_time_out_and_each_refusal_is_one_log_line(
    cvat: FakeCvatServer, unloaded_registry: Path, tmp_path: Path, caplog
) -> None:
    settings = bridge_settings(cvat.url, unloaded_registry, tmp_path / "cache", body_timeout=1.0)
    caplog.set_level(logging.INFO)
    with InProcessBridge(settings, worker=False) as bridge:
        path = "/detect-model-webhook?model_name=tiny-coral"
        slow = [_half_sent(bridge.port, path, 1000, b'{"event": ') for _ in range(20)]
        started = time.monotonic()
        for sock in slow:
            answer = sock.recv(4096)
            assert answer.startswith(b"HTTP/1.1 408"), answer[:80]
        assert time.monotonic() - started < 1.0 + 3.0  # held for the body timeout, no longer
        for sock in slow:
            sock.close()
        aborted = [_half_sent(bridge.port, path, 1000, b'{"event": ') for _ in range(20)]
        for sock in aborted:
            sock.close()  # the client goes away half-way through its body
        time.sleep(1.5)
        health = httpx.get(f"{bridge.url}/health")
        assert health.status_code == 200
    refusals = [r for r in caplog.records if r.getMessage().startswith("refused ")]
    assert len(refusals) == 40 and all(r.exc_info is None for r in refusals)
    assert "Traceback" not in caplog.text
    assert len(caplog.records) <= 40 + 5  # one line per refused request, plus start and stop


def test_malformed_signed_bodies_are_400_and_change_nothing(
    cvat: FakeCvatServer, unloaded_registry: Path, tmp_path: Path, colony_labels
) -> None:
    settings = bridge_settings(cvat.url, unloaded_registry, tmp_path / "cache")
    with InProcessBridge(settings, worker=False) as bridge:
        body, job = in_progress_body(cvat, colony_labels)
        event = json.loads(body)
        deep = b'{"event": "update:job", "job": ' + b"[" * 1000 + b"]" * 1000 + b"}"
        huge_id = body.replace(f'"id": {job.id},'.encode(), b'"id": 1e999,', 1)
        assert huge_id != body
        bodies = [
            deep,
            b"[" * 100_000 + b"]" * 100_000,
            huge_id,
            event_body({**event, "job": {**event["job"], "id": True}}),
            event_body({**event, "job": {**event["job"], "task_id": 2.5}}),
            event_body({**event, "job": {**event["job"], "updated_date": "soon"}}),
            event_body({**event, "webhook_id": "x"}),
        ]
        for bad in bodies:
            answer = post_event(bridge.url, bad)
            assert answer.status_code == 400, (bad[:60], answer.text)
        assert bridge.state.open_runs() == [] and bridge.queue.size() == 0


def test_only_cvat_job_events_and_run_status_needs_credentials(
    cvat: FakeCvatServer, unloaded_registry: Path, tmp_path: Path, colony_labels
) -> None:
    settings = bridge_settings(
        cvat.url, unloaded_registry, tmp_path / "cache", status_token="status-token"
    )
    with InProcessBridge(settings, worker=False) as bridge:
        body, job = in_progress_body(cvat, colony_labels)
        event = json.loads(body)
        for name in ("evil:job", "delete:job", "update:jobs"):
            answer = post_event(bridge.url, event_body({**event, "event": name}))
            assert answer.status_code == 200 and answer.json()["status"] == "ignored"
        assert bridge.state.job(job.id) is None and bridge.state.open_runs() == []
        assert (
            post_event(bridge.url, event_body({**event, "event": "create:job"})).status_code == 202
        )

        status = f"{bridge.url}/runs/{job.id}"
        assert httpx.get(status).status_code == 401
        assert httpx.get(status, headers={"Authorization": "Bearer guessed"}).status_code == 401
        for token in ("status-token", SECRET):
            answer = httpx.get(status, headers={"Authorization": f"Bearer {token}"})
            assert answer.status_code == 200 and answer.json()["runs"][0]["status"] == "queued"
