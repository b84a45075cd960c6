"""The bridge's web service (FastAPI).

* ``GET /health`` -- liveness: 200 while the process answers and every worker it supervises
  runs; 503 ``degraded`` while a dead worker waits for its restart.
* ``GET /ready`` -- run records and queue reachable (a locked file or a Redis that does not
  answer is named), CVAT reachable, and at least one live worker with the registry's models
  loaded; 503 with the failing checks otherwise. Every check is bounded by
  ``request_timeout``, so the answer comes within seconds in any storage fault.
* ``POST /detect-model-webhook?model_name=NAME&conv_mask_to_poly=true`` -- CVAT's webhook.
  The body (at most ``max_body_bytes``, sent within ``body_timeout`` s: 413 and 408
  otherwise) must carry a valid ``X-Signature-256`` (401 without one, 403 for a wrong one;
  nothing is recorded then). A malformed body gets 400 (CVAT does not retry a 4xx), however
  it is malformed. A ``create:job`` or ``update:job`` that starts a run (:mod:`.triggers`:
  a job created, assigned, or set "in progress") is recorded, queued and marked queued, then
  answered with 202 -- in milliseconds. If the records or the queue fail (locked, not
  answering), the answer is 503 within CVAT's 10 s read timeout, and CVAT's retry queues a
  run that was recorded but not queued. Other events get 200 with the reason nothing was
  done; an unknown ``model_name`` gets 400. Every refused request is logged in one line.
* ``GET /runs/{job_id}`` -- the job's last seen state and its runs (status, frames done and
  failed, shapes written, removed and skipped, errors, worker). It needs ``Authorization:
  Bearer`` with ``CORALSEG_STATUS_TOKEN`` or the webhook secret (401 otherwise), when either
  is set.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
import urllib.error
import urllib.request
from typing import Any, Protocol

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from cvat_bridge import signature
from cvat_bridge.events import JOB_EVENTS, BadEventError, job_event, parse_body
from cvat_bridge.kv import storage_problem
from cvat_bridge.queue import BridgeQueue
from cvat_bridge.registry import ModelRegistry, UnknownModelError
from cvat_bridge.settings import BridgeSettings
from cvat_bridge.state import BridgeState, Decision, ModelChoice, summary

log = logging.getLogger(__name__)
WEBHOOK_PATH = "/detect-model-webhook"
TRUE, FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off")
CVAT_READ_TIMEOUT = 10.0  # CVAT's webhook delivery gives up after this


class WorkerReport(Protocol):
    """What the process supervising local workers tells ``/health``."""

    def report(self) -> dict[str, Any]: ...


def _error(status: int, detail: str) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status)


def _refuse(request: Request, status: int, detail: str) -> JSONResponse:
    """A refusal, logged in one line (no traceback: refusals are what strangers cause)."""
    client = request.client.host if request.client else "?"
    log.warning("refused %s %s from %s: %d %s", request.method, request.url.path, client,
                status, detail)  # fmt: skip
    return _error(status, detail)


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

    def __init__(self, url: str, ttl: float = 10.0, timeout: float = 3.0) -> None:
        self.url = url
        self.ttl = ttl
        self.timeout = timeout
        self._checked = (0.0, "not checked")

    def __call__(self) -> str:
        at, answer = self._checked
        if time.monotonic() - at < self.ttl:
            return answer
        try:
            with urllib.request.urlopen(
                f"{self.url}/api/server/about", timeout=self.timeout
            ) as response:
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
    supervisor: WorkerReport | None = None,
) -> FastAPI:
    """The web service over shared records and queue (the workers run elsewhere). ``state``
    and ``queue`` should be opened with ``settings.request_timeout``; ``supervisor`` reports
    on the workers this process runs."""
    app = FastAPI(title="coralseg CVAT bridge", docs_url=None, redoc_url=None)
    probe = _CvatProbe(settings.cvat_url, timeout=min(3.0, settings.request_timeout + 1))
    within = worker_heartbeat_within or max(3.0, 3 * settings.recover_interval)
    # the web service's whole answer, from the request's arrival, must beat CVAT's read
    # timeout whatever storage does
    deadline = min(CVAT_READ_TIMEOUT - 2.0, 3 * settings.request_timeout + 1.0)
    readers = {t for t in (settings.status_token, settings.webhook_secret) if t}
    # a repeated event sends a recorded run's queue message only once the request that
    # recorded it has surely ended (each of its storage calls is bounded by request_timeout)
    resend_after = 3 * settings.request_timeout

    @app.get("/health")
    def health() -> JSONResponse:
        if supervisor is None:
            return JSONResponse({"status": "ok"})
        workers = supervisor.report()
        good = workers["running"] >= workers["wanted"]
        answer = {"status": "ok" if good else "degraded", "workers": workers}
        return JSONResponse(answer, status_code=200 if good else 503)

    @app.get("/ready")
    def ready() -> JSONResponse:
        checks: dict[str, Any] = {}
        for name, ping in (("records", state.store.ping), ("queue", queue.ping)):
            if name == "queue" and settings.uses_redis and checks["records"] != "ok":
                checks[name] = checks["records"]  # the same server: do not wait twice
                continue
            try:
                ping()
                checks[name] = "ok"
            except Exception as err:
                checks[name] = storage_problem(err)
        reachable = checks["records"] == "ok"
        checks["cvat"] = probe() if settings.cvat_url else "CVAT_URL not set"
        workers = state.live_workers(within) if reachable else []
        wanted = set(registry.names)
        loaded = [w for w in workers if wanted <= set(w.get("models", []))]
        checks["workers"] = len(workers)
        if not reachable:
            checks["models"] = "unknown: the records cannot be read"
        else:
            checks["models"] = "ok" if loaded else f"no live worker has loaded {sorted(wanted)}"
        good = reachable and checks["queue"] == "ok" and checks["cvat"] == "ok" and bool(loaded)
        return JSONResponse({"ready": good, **checks}, status_code=200 if good else 503)

    @app.post(WEBHOOK_PATH)
    async def webhook(request: Request) -> JSONResponse:
        started = time.perf_counter()
        try:
            body = await asyncio.wait_for(
                _read_body(request, settings.max_body_bytes), settings.body_timeout
            )
        except _BodyTooLargeError:
            return _refuse(request, 413, f"the body is larger than {settings.max_body_bytes} bytes")
        except TimeoutError:
            return _refuse(
                request, 408, f"the body did not arrive within {settings.body_timeout:.0f} s"
            )
        except ClientDisconnect:
            return _refuse(request, 400, "the client closed the connection before its body ended")
        if settings.webhook_secret:
            check = signature.verify(
                settings.webhook_secret, body, request.headers.get(signature.HEADER)
            )
            if check is signature.Check.MISSING:
                return _refuse(
                    request, 401, f"the request is not signed ({signature.HEADER} missing)"
                )
            if check is signature.Check.INVALID:
                return _refuse(request, 403, "the signature does not match the webhook secret")
        params = request.query_params
        model_name = params.get("model_name", "")
        if not model_name:
            return _refuse(
                request, 400, "the webhook URL needs ?model_name=<a model of the registry>"
            )
        conv_text = params.get("conv_mask_to_poly", "false").lower()
        if conv_text not in TRUE + FALSE:
            return _refuse(
                request, 400, f"conv_mask_to_poly must be true or false, not {conv_text!r}"
            )
        try:
            spec = registry.spec(model_name)
            data = parse_body(body)
            if data["event"] == "ping":
                return JSONResponse({"status": "pong", "model_name": model_name})
            if data["event"] not in JOB_EVENTS:
                return JSONResponse(
                    {"status": "ignored", "reason": f"{data['event'][:80]!r} event"}
                )
            event = job_event(data)
        except (UnknownModelError, BadEventError) as err:
            return _refuse(request, 400, str(err))

        def record() -> Decision:
            model = ModelChoice(spec.name, spec.version, conv_text in TRUE, spec.stages)
            state.subscribe(event.project_id, model, event.organization_id)
            decision = state.observe(event, model, resend_after=resend_after)
            to_send = decision.run_id if decision.action == "queued" else decision.requeue
            if to_send is None:
                return decision
            queue.enqueue(to_send)
            try:
                state.mark_enqueued(to_send)
            except Exception as err:  # queued all the same: a duplicate message is harmless
                log.warning("run %s queued, not marked so (%s)", to_send, storage_problem(err))
            if decision.action != "queued":
                return Decision("queued", "recorded earlier, queued now", to_send)
            return decision

        try:
            left = max(0.5, deadline - (time.perf_counter() - started))
            decision = await asyncio.wait_for(run_in_threadpool(record), left)
        except Exception as err:
            cause = "not answering in time" if isinstance(err, TimeoutError) else None
            cause = cause or storage_problem(err)
            return _refuse(
                request,
                503,
                f"the bridge could not record the event of job {event.job_id} (its records "
                f"or queue: {cause}); CVAT will deliver it again",
            )
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
    def runs(job_id: int, request: Request) -> JSONResponse:
        if readers:
            given = request.headers.get("authorization", "")
            token = given[7:].strip() if given[:7].lower() == "bearer " else ""
            if not any(hmac.compare_digest(token.encode(), r.encode()) for r in readers):
                return _refuse(
                    request,
                    401,
                    "GET /runs needs 'Authorization: Bearer <CORALSEG_STATUS_TOKEN or the "
                    "webhook secret>'",
                )
        runs = state.runs_of_job(job_id)
        job = state.job(job_id)
        if job is None and not runs:
            return _error(404, f"the bridge has not heard of job {job_id}")
        return JSONResponse(
            {"job_id": job_id, "job": job, "runs": [summary(run) for run in reversed(runs)]}
        )

    return app
