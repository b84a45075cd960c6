"""The bridge's web service (FastAPI).

* ``GET /health`` -- the process answers (liveness).
* ``GET /ready`` -- run records and queue reachable, CVAT reachable, and at least one live
  worker with the registry's models loaded; 503 with the failing checks otherwise.
* ``POST /detect-model-webhook?model_name=NAME&conv_mask_to_poly=true`` -- CVAT's webhook.
  The body (at most ``max_body_bytes``) must carry a valid ``X-Signature-256`` (401 without
  one, 403 for a wrong one; nothing is recorded then). A ``create:job`` or ``update:job``
  that starts a run (:mod:`.triggers`) is recorded and queued durably, then answered with 202
  -- in milliseconds, far inside CVAT's 10 s read timeout. Other events get 200 with the
  reason nothing was done; an unknown ``model_name`` gets 400 with a sentence (CVAT does not
  retry a 4xx).
* ``GET /runs/{job_id}`` -- the job's last seen state and its runs (status, frames done and
  failed, shapes written and removed, errors).
"""

from __future__ import annotations

import logging
import time
import urllib.error
import urllib.request
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from cvat_bridge import signature
from cvat_bridge.events import BadEventError, job_event, parse_body
from cvat_bridge.queue import BridgeQueue
from cvat_bridge.registry import ModelRegistry, UnknownModelError
from cvat_bridge.settings import BridgeSettings
from cvat_bridge.state import BridgeState, ModelChoice, summary

log = logging.getLogger(__name__)
WEBHOOK_PATH = "/detect-model-webhook"
TRUE, FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off")


def _error(status: int, detail: str) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status)


class _BodyTooLargeError(Exception):
    pass


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _BodyTooLargeError
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _BodyTooLargeError
        chunks.append(chunk)
    return b"".join(chunks)


class _CvatProbe:
    """Is CVAT reachable? (``GET /api/server/about``, remembered for a few seconds.)"""

    def __init__(self, url: str, ttl: float = 10.0) -> None:
        self.url = url
        self.ttl = ttl
        self._checked = (0.0, "not checked")

    def __call__(self) -> str:
        at, answer = self._checked
        if time.monotonic() - at < self.ttl:
            return answer
        try:
            with urllib.request.urlopen(f"{self.url}/api/server/about", timeout=3.0) as response:
                answer = "ok" if response.status == 200 else f"HTTP {response.status}"
        except urllib.error.HTTPError as err:
            answer = f"HTTP {err.code}"
        except (urllib.error.URLError, OSError) as err:
            answer = f"unreachable ({type(err).__name__})"
        self._checked = (time.monotonic(), answer)
        return answer


def create_app(
    settings: BridgeSettings,
    registry: ModelRegistry,
    state: BridgeState,
    queue: BridgeQueue,
    worker_heartbeat_within: float | None = None,
) -> FastAPI:
    """The web service over shared records and queue (the workers run elsewhere)."""
    app = FastAPI(title="coralseg CVAT bridge", docs_url=None, redoc_url=None)
    probe = _CvatProbe(settings.cvat_url)
    within = worker_heartbeat_within or max(30.0, 3 * settings.recover_interval)

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/ready")
    def ready() -> JSONResponse:
        checks: dict[str, Any] = {}
        try:
            state.store.ping()
            queue.ping()
            checks["queue"] = "ok"
        except Exception as err:
            checks["queue"] = f"unreachable ({type(err).__name__})"
        checks["cvat"] = probe() if settings.cvat_url else "CVAT_URL not set"
        workers = state.live_workers(within) if checks["queue"] == "ok" else []
        wanted = set(registry.names)
        loaded = [w for w in workers if wanted <= set(w.get("models", []))]
        checks["workers"] = len(workers)
        checks["models"] = "ok" if loaded else f"no live worker has loaded {sorted(wanted)}"
        good = checks["queue"] == "ok" and checks["cvat"] == "ok" and bool(loaded)
        return JSONResponse({"ready": good, **checks}, status_code=200 if good else 503)

    @app.post(WEBHOOK_PATH)
    async def webhook(request: Request) -> JSONResponse:
        started = time.perf_counter()
        try:
            body = await _read_body(request, settings.max_body_bytes)
        except _BodyTooLargeError:
            return _error(413, f"the body is larger than {settings.max_body_bytes} bytes")
        if settings.webhook_secret:
            check = signature.verify(
                settings.webhook_secret, body, request.headers.get(signature.HEADER)
            )
            if check is signature.Check.MISSING:
                log.warning("webhook refused: no %s header", signature.HEADER)
                return _error(401, f"the request is not signed ({signature.HEADER} missing)")
            if check is signature.Check.INVALID:
                log.warning("webhook refused: wrong signature")
                return _error(403, "the signature does not match the webhook secret")
        params = request.query_params
        model_name = params.get("model_name", "")
        if not model_name:
            return _error(400, "the webhook URL needs ?model_name=<a model of the registry>")
        conv_text = params.get("conv_mask_to_poly", "false").lower()
        if conv_text not in TRUE + FALSE:
            return _error(400, f"conv_mask_to_poly must be true or false, not {conv_text!r}")
        try:
            spec = registry.spec(model_name)
            data = parse_body(body)
            if data["event"] == "ping":
                return JSONResponse({"status": "pong", "model_name": model_name})
            if not data["event"].endswith(":job") or data["event"].startswith("delete"):
                return JSONResponse({"status": "ignored", "reason": f"{data['event']} event"})
            event = job_event(data)
        except (UnknownModelError, BadEventError) as err:
            return _error(400, str(err))
        model = ModelChoice(
            spec.name, await run_in_threadpool(lambda: spec.version), conv_text in TRUE, spec.stages
        )

        def record() -> Any:
            state.subscribe(event.project_id, model, event.organization_id)
            decision = state.observe(event, model)
            if decision.action == "queued":
                queue.enqueue(decision.run_id)
            return decision

        try:
            decision = await run_in_threadpool(record)
        except Exception:
            log.exception("could not record the event of job %s", event.job_id)
            return _error(503, "the bridge could not record the event; CVAT will deliver it again")
        log.info(
            "job %s %s (%s): %s, %s [%.0f ms]",
            event.job_id,
            event.state,
            event.event,
            decision.action,
            decision.reason,
            1000 * (time.perf_counter() - started),
        )
        answer = {"status": decision.action, "reason": decision.reason, "run_id": decision.run_id}
        return JSONResponse(answer, status_code=202 if decision.action == "queued" else 200)

    @app.get("/runs/{job_id}")
    def runs(job_id: int) -> JSONResponse:
        runs = state.runs_of_job(job_id)
        job = state.job(job_id)
        if job is None and not runs:
            return _error(404, f"the bridge has not heard of job {job_id}")
        return JSONResponse(
            {"job_id": job_id, "job": job, "runs": [summary(run) for run in reversed(runs)]}
        )

    return app
