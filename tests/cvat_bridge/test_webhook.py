"""The web service over real HTTP, with bodies shaped and signed as CVAT sends them: what it
refuses (and that a refusal changes nothing), what it ignores, health and readiness."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx

from cvat_bridge.signature import sign
from tests.cvat_bridge.harness import (
    MODEL,
    SECRET,
    STATUS_HEADERS,
    InProcessBridge,
    bridge_settings,
    event_body,
    make_job,
    post_event,
    wait_for,
)
from tests.fake_cvat import FakeCvatServer


def test_refusals_change_nothing(
    cvat: FakeCvatServer, registry_file: Path, tmp_path: Path, colony_labels
) -> None:
    settings = bridge_settings(cvat.url, registry_file, tmp_path / "cache")
    with InProcessBridge(settings, worker=False) as bridge:
        _, _, job = make_job(cvat.state, colony_labels)
        cvat.state.set_job(job, state="in progress")
        body = event_body(cvat.job_event(job))

        unsigned = post_event(bridge.url, body, secret=None)
        assert unsigned.status_code == 401 and "not signed" in unsigned.json()["detail"]
        forged = post_event(bridge.url, body, secret="guessed")
        assert forged.status_code == 403
        tampered = body.replace(b'"in progress"', b'"completed"')
        assert tampered != body
        assert post_event(bridge.url, tampered, signature=sign(SECRET, body)).status_code == 403
        zeros = post_event(bridge.url, body, signature="sha256=" + "0" * 64)
        assert zeros.status_code == 403
        # nothing was recorded or queued by the refused requests
        assert bridge.state.job(job.id) is None
        assert bridge.state.open_runs() == []
        assert bridge.queue.size() == 0
        assert httpx.get(f"{bridge.url}/runs/{job.id}", headers=STATUS_HEADERS).status_code == 404

        unknown = post_event(bridge.url, body, path="/detect-model-webhook?model_name=nope")
        assert unknown.status_code == 400
        assert "unknown model_name 'nope'" in unknown.json()["detail"]
        assert MODEL in unknown.json()["detail"]
        no_model = post_event(bridge.url, body, path="/detect-model-webhook")
        assert no_model.status_code == 400 and "model_name" in no_model.json()["detail"]
        big = b'{"event": "update:job", "pad": "' + b"x" * settings.max_body_bytes + b'"}'
        assert post_event(bridge.url, big).status_code == 413
        not_json = post_event(bridge.url, b"<xml/>")
        assert not_json.status_code == 400 and "not JSON" in not_json.json()["detail"]
        assert bridge.state.open_runs() == [] and bridge.queue.size() == 0

        # the same body, signed: accepted, recorded and queued before the answer
        accepted = post_event(bridge.url, body)
        assert accepted.status_code == 202, accepted.text
        run_id = accepted.json()["run_id"]
        assert [r["run_id"] for r in bridge.state.open_runs()] == [run_id]
        assert bridge.queue.size() == 1
        runs = httpx.get(f"{bridge.url}/runs/{job.id}", headers=STATUS_HEADERS).json()
        assert runs["job"]["state"] == "in progress"
        assert [(r["run_id"], r["status"]) for r in runs["runs"]] == [(run_id, "queued")]


def test_ping_other_events_health_and_readiness(
    cvat: FakeCvatServer, registry_file: Path, tmp_path: Path, loaded_models
) -> None:
    settings = bridge_settings(cvat.url, registry_file, tmp_path / "cache")
    with InProcessBridge(settings, worker=False) as bridge:
        assert httpx.get(f"{bridge.url}/health").json() == {"status": "ok"}
        ping = {"event": "ping", "webhook": {"id": 1, "target_url": bridge.url}, "sender": None}
        answer = post_event(bridge.url, event_body(ping))
        assert answer.status_code == 200 and answer.json()["status"] == "pong"
        task_event = {"event": "update:task", "task": {"id": 1}, "webhook_id": 1, "sender": None}
        assert post_event(bridge.url, event_body(task_event)).json()["status"] == "ignored"
        not_ready = httpx.get(f"{bridge.url}/ready")
        assert not_ready.status_code == 503
        assert not_ready.json()["cvat"] == "ok" and not_ready.json()["queue"] == "ok"
        assert "no live worker" in not_ready.json()["models"]
    with InProcessBridge(settings, models=loaded_models) as bridge:
        ready = wait_for(lambda: httpx.get(f"{bridge.url}/ready").status_code == 200, 30, "ready")
        assert ready
    cvat.stop()
    with InProcessBridge(settings, models=loaded_models) as bridge:
        time.sleep(0.5)
        answer = httpx.get(f"{bridge.url}/ready")
        assert answer.status_code == 503 and answer.json()["cvat"].startswith("unreachable")


def test_answers_are_recorded_before_they_are_sent(
    cvat: FakeCvatServer, registry_file: Path, tmp_path: Path, colony_labels
) -> None:
    """A 202 means the run is in the records and in the queue: a new bridge process (new
    store and queue objects over the same files) sees it."""
    settings = bridge_settings(cvat.url, registry_file, tmp_path / "cache")
    with InProcessBridge(settings, worker=False) as bridge:
        _, _, job = make_job(cvat.state, colony_labels)
        cvat.state.set_job(job, state="in progress")
        started = time.perf_counter()
        answer = post_event(bridge.url, event_body(cvat.job_event(job)))
        assert answer.status_code == 202
        assert time.perf_counter() - started < 1.0
    with InProcessBridge(settings, worker=False, web=False) as other:
        assert [r["run_id"] for r in other.state.open_runs()] == [answer.json()["run_id"]]
        assert other.queue.size() == 1
        assert (
            json.loads(json.dumps(other.state.run(answer.json()["run_id"])))["trigger"] == "webhook"
        )
