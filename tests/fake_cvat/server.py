"""A fake CVAT server: a FastAPI app over a :class:`~.state.FakeCvatState`, run by uvicorn in
a background thread on a free loopback port.

Its answers follow the REST schema of CVAT 2.80 (the OpenAPI document ``cvat/schema.yml``
that ``cvat-sdk`` 2.80.0 is generated from) closely enough that the real SDK deserializes and
type-checks them: every required field is present with its declared type, and so are the
optional fields a client is likely to read. Paths are answered with and without a trailing
slash (the SDK uses ``/api/tasks/{id}/annotations/`` but ``/api/jobs/{id}/data``).

Endpoints
---------
Public (no authentication, as in CVAT):

* ``GET  /api/server/about``                      About (``version`` = the state's version)
* ``POST /api/auth/login``                        ``{username|email, password}`` -> ``{key}``,
  sets the ``sessionid`` and ``csrftoken`` cookies; wrong credentials: 400, as CVAT answers

Authenticated, by ``Authorization: Bearer PAT`` (personal access token), ``Token KEY`` (the
legacy key login returns), ``Basic`` or the session cookie (unsafe methods then need the
``X-CSRFToken`` header). Missing credentials: 401; bad token: 401; bad CSRF: 403.

* ``POST /api/auth/logout``
* ``GET  /api/users/self``, ``GET /api/users``
* ``GET  /api/projects``, ``GET /api/projects/{id}``, ``GET /api/projects/{id}/preview``
* ``GET  /api/tasks``, ``GET|PATCH /api/tasks/{id}``, ``GET /api/tasks/{id}/preview``
* ``GET  /api/tasks/{id}/data/?type=frame|chunk&number=N&quality=original|compressed``
  (a frame: the original file's bytes; a chunk: a zip of ``{frame:06d}{ext}`` files)
* ``GET  /api/tasks/{id}/data/meta``
* ``GET|PUT|PATCH|DELETE /api/tasks/{id}/annotations/`` (PATCH takes
  ``?action=create|update|delete``)
* ``GET  /api/jobs``, ``GET|PATCH /api/jobs/{id}`` (PATCH: ``stage``, ``state``, ``assignee``)
* ``GET  /api/jobs/{id}/data?type=frame|chunk&number=N|index=I``, ``GET /api/jobs/{id}/data/meta``
* ``GET|PUT|PATCH|DELETE /api/jobs/{id}/annotations/``
* ``GET  /api/jobs/{id}/preview``
* ``GET  /api/labels``, ``GET /api/labels/{id}``

Lists are paginated like CVAT (``page``, ``page_size``, default 10; ``next`` is an absolute
URL or null) and take exact-match filters on their simple fields (``project_id``,
``task_id``, ``job_id``, ``name``, ``status``, ``subset``, ``stage``, ``state``, ...),
``search`` (case-insensitive substring of the name), ``sort`` (comma-separated fields,
``-`` for descending) and ``filter`` (CVAT's JSON Logic: ``var``, ``==``, ``!=``, ``!``,
``and``, ``or``, ``in``, ``<``, ``<=``, ``>``, ``>=``). The job list is filtered by the
caller's context (``org`` slug, ``org_id`` or the ``X-Organization`` header) as
``cvat/apps/engine/rules/jobs.rego`` filters it (:func:`_visible_jobs`); other lists and
single objects are not permission-checked. No cloud storages, tracks editing or exports.

Frames are served as CVAT's chunks hold them (:func:`_frame_file`): EXIF rotation baked
into the original quality, the compressed quality re-encoded as JPEG at the task's image
quality. ``GET /api/jobs/{id}/validation_layout`` gives a job's honeypot frames
(``state.set_honeypots``). A task created with ``data_ready=False`` has size 0 and refuses
its data until ``state.finish_data(task)``.

Every answered request is appended to ``state.requests`` so tests can count downloads.

Webhooks: ``state.add_webhook(project, url, secret, events)`` makes the running server post
``update:job`` to ``url`` whenever a job of the project is saved (a stage/state/assignee
change or an annotation save) and ``create:job`` for each job of a new task, signed and
retried as CVAT does (:mod:`.webhooks`); ``FakeCvatState(older_server=True)`` posts as CVAT
did before mid-2026 (``before_update`` in the body, no retry, no validation layouts); the
deliveries are in
``server.webhook_sender.deliveries``, and :meth:`FakeCvatServer.job_event` gives the payload
CVAT would send about a job now.

Faults: ``state.add_fault("GET", r"/api/jobs/1/data", status=503, delay=2.0, times=3,
after=False, skip=0)`` makes matching requests slow and/or fail (``after=True``: the request
is carried out and only its answer is delayed or lost); see :class:`~.state.Fault`.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import io
import itertools
import json
import secrets
import socket
import threading
import time
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import numpy as np
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from PIL import Image, ImageOps

from .state import (
    JOB_STAGES,
    JOB_STATES,
    SHAPE_TYPES,
    FakeCvatError,
    FakeCvatState,
    Job,
    Label,
    Organization,
    Project,
    RequestRecord,
    Shape,
    Task,
    User,
)
from .webhooks import WebhookSender

_EXTENSIONS = {"JPEG": ".jpg", "PNG": ".png", "TIFF": ".tif", "WEBP": ".webp", "BMP": ".bmp"}
PUBLIC_PATHS = frozenset({"/api/server/about", "/api/auth/login"})
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
DEFAULT_PAGE_SIZE = 10
# Exact-match query parameters of the list endpoints (CVAT's "simple filters").
TASK_FILTERS = ("project_id", "project_name", "name", "status", "subset", "mode", "dimension",
                "owner", "assignee")  # fmt: skip
JOB_FILTERS = ("task_id", "task_name", "project_id", "project_name", "stage", "state", "type",
               "assignee")  # fmt: skip


class HttpError(Exception):
    """Answer with ``status`` and ``{"detail": detail}``."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


def _not_found() -> HttpError:
    return HttpError(404, "Not found.")


# --- serialization -------------------------------------------------------------------------


def _date(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat().replace("+00:00", "Z")


class _Serializer:
    """Turns state objects into CVAT's JSON, with absolute URLs under ``base``."""

    def __init__(self, state: FakeCvatState, base: str) -> None:
        self.state = state
        self.base = base

    def user_brief(self, user_id: int | None) -> dict[str, Any] | None:
        if user_id is None:
            return None
        user = self.state.users[user_id]
        return {
            "url": f"{self.base}/api/users/{user.id}",
            "id": user.id,
            "username": user.username,
            "first_name": user.first_name,
            "last_name": user.last_name,
        }

    def user_full(self, user: User) -> dict[str, Any]:
        return {
            **self.user_brief(user.id),
            "email": user.email,
            "groups": ["admin"] if user.is_superuser else ["user"],
            "is_staff": user.is_superuser,
            "is_superuser": user.is_superuser,
            "is_active": True,
            "last_login": None,
            "date_joined": "2000-01-01T00:00:00Z",
            "has_analytics_access": False,
        }

    def project(self, project: Project) -> dict[str, Any]:
        tasks = [t for t in self.state.tasks.values() if t.project_id == project.id]
        return {
            "url": f"{self.base}/api/projects/{project.id}",
            "id": project.id,
            "name": project.name,
            "owner": self.user_brief(project.owner_id),
            "assignee": self.user_brief(project.assignee_id),
            "guide_id": None,
            "bug_tracker": project.bug_tracker,
            "task_subsets": sorted({t.subset for t in tasks if t.subset}),
            "created_date": _date(project.created_date),
            "updated_date": _date(project.updated_date),
            "status": "annotation",
            "dimension": "2d" if tasks else None,
            "organization": project.organization_id,
            "organization_id": project.organization_id,
            "target_storage": None,
            "source_storage": None,
            "assignee_updated_date": None,
            "tasks": {"count": len(tasks), "url": f"{self.base}/api/tasks?project_id={project.id}"},
            "labels": {"url": f"{self.base}/api/labels?project_id={project.id}"},
        }

    def task(self, task: Task) -> dict[str, Any]:
        project = self.state.projects.get(task.project_id) if task.project_id else None
        annotation_jobs = [j for j in task.jobs if j.type == "annotation"]
        return {
            "url": f"{self.base}/api/tasks/{task.id}",
            "id": task.id,
            "name": task.name,
            "project_id": task.project_id,
            "project_name": project.name if project else None,
            "mode": "annotation",
            "owner": self.user_brief(task.owner_id),
            "assignee": self.user_brief(task.assignee_id),
            "bug_tracker": task.bug_tracker,
            "created_date": _date(task.created_date),
            "updated_date": _date(task.updated_date),
            "overlap": 0,
            "segment_size": task.segment_size or task.size,
            "initial_replicas": 0,
            "status": task.status,
            "data_chunk_size": task.chunk_size,
            "data_compressed_chunk_type": "imageset",
            "data_original_chunk_type": "imageset",
            "data_cloud_storage_id": None,
            "guide_id": None,
            "size": task.size,
            "image_quality": task.image_quality,
            "data": task.id if task.data_ready else None,
            "dimension": "2d",
            "media_type": "image",
            "subset": task.subset,
            "organization": _org_id(self.state, task),
            "organization_id": _org_id(self.state, task),
            "target_storage": None,
            "source_storage": None,
            "assignee_updated_date": None,
            "validation_mode": None,
            "jobs": {
                "count": len(annotation_jobs),
                "completed": sum(j.status == "completed" for j in annotation_jobs),
                "validation": sum(j.stage == "validation" for j in annotation_jobs),
                "url": f"{self.base}/api/jobs?task_id={task.id}",
            },
            "labels": {"url": f"{self.base}/api/labels?task_id={task.id}"},
        }

    def job(self, job: Job) -> dict[str, Any]:
        task = self.state.tasks[job.task_id]
        project = self.state.projects.get(task.project_id) if task.project_id else None
        return {
            "url": f"{self.base}/api/jobs/{job.id}",
            "id": job.id,
            "task_id": task.id,
            "task_name": task.name,
            "project_id": task.project_id,
            "project_name": project.name if project else None,
            "assignee": self.user_brief(job.assignee_id),
            "guide_id": None,
            "dimension": "2d",
            "mode": "annotation",
            "media_type": "image",
            "bug_tracker": task.bug_tracker or (project.bug_tracker if project else None) or None,
            "status": job.status,
            "stage": job.stage,
            "state": job.state,
            "frame_count": job.frame_count,
            "start_frame": job.start_frame,
            "stop_frame": job.stop_frame,
            "data_chunk_size": task.chunk_size,
            "data_compressed_chunk_type": "imageset",
            "data_original_chunk_type": "imageset",
            "created_date": _date(job.created_date),
            "updated_date": _date(job.updated_date),
            "type": job.type,
            "organization": _org_id(self.state, task),
            "target_storage": None,
            "source_storage": None,
            "assignee_updated_date": None,
            "parent_job_id": None,
            "replicas_count": 0,
            "issues": {"url": f"{self.base}/api/issues?job_id={job.id}", "count": 0},
            "labels": {"url": f"{self.base}/api/labels?job_id={job.id}"},
        }

    def label(self, label: Label) -> dict[str, Any]:
        return {
            "id": label.id,
            "name": label.name,
            "color": label.color,
            "attributes": [
                {
                    "id": spec.id,
                    "name": spec.name,
                    "mutable": spec.mutable,
                    "input_type": spec.input_type,
                    "default_value": spec.default_value,
                    "values": list(spec.values),
                }
                for spec in label.attributes
            ],
            "type": label.type,
            "svg": "",
            "sublabels": [],
            "project_id": label.project_id,
            "task_id": label.task_id,
            "parent_id": None,
            "has_parent": False,
        }

    @staticmethod
    def shape(shape: Shape) -> dict[str, Any]:
        data = {
            "type": shape.type,
            "occluded": shape.occluded,
            "outside": shape.outside,
            "z_order": shape.z_order,
            "rotation": float(shape.rotation),
            "points": [float(p) for p in shape.points],
            "id": shape.id,
            "frame": shape.frame,
            "label_id": shape.label_id,
            "group": shape.group,
            "source": shape.source,
            "attributes": [dict(a) for a in shape.attributes],
            "elements": [dict(e) for e in shape.elements],
        }
        if shape.score is not None:
            data["score"] = float(shape.score)
        return data

    def webhook_payload(
        self, webhook_id: int, job: Job, event: str = "update:job", before: dict | None = None
    ) -> dict:
        """The body CVAT posts for a job event (keys in CVAT's order); an older server adds
        ``before_update`` (the changed fields' old values) to ``update:`` events."""
        sender = self.state.tasks[job.task_id].owner_id
        payload = {
            "event": event,
            "webhook_id": webhook_id,
            "job": self.job(job),
            "sender": self.user_brief(sender),
        }
        if self.state.older_server and event.startswith("update:"):
            old = dict(before or {})
            if "assignee" in old:
                old["assignee"] = self.user_brief(old["assignee"])
            payload["before_update"] = old
        return payload

    def meta(self, task: Task, start: int, stop: int) -> dict[str, Any]:
        frames = task.frames[start : stop + 1]
        return {
            "chunk_size": task.chunk_size,
            "size": len(frames),
            "image_quality": task.image_quality,
            "start_frame": start,
            "stop_frame": stop,
            "frame_filter": "",
            "frames": [
                {
                    "width": f.width,
                    "height": f.height,
                    "name": f.name,
                    "related_files": 0,
                    "has_related_context": False,
                }
                for f in frames
            ],
            "deleted_frames": [f for f in task.deleted_frames if start <= f <= stop],
            "included_frames": None,
            "chunks_updated_date": _date(task.created_date),
            "storage": "local",
            "cloud_storage_id": None,
            "chapters": None,
        }


# --- query helpers -------------------------------------------------------------------------


def _json_logic(expr: Any, data: dict[str, Any]) -> Any:
    """Evaluate the subset of JSON Logic that CVAT's ``filter`` parameter uses."""
    if isinstance(expr, list):
        return [_json_logic(item, data) for item in expr]
    if not isinstance(expr, dict):
        return expr
    if len(expr) != 1:
        raise HttpError(400, f"invalid filter node {expr!r}")
    ((op, args),) = expr.items()
    args = args if isinstance(args, list) else [args]
    if op == "var":
        return data.get(args[0])
    if op == "and":
        return all(_json_logic(a, data) for a in args)
    if op == "or":
        return any(_json_logic(a, data) for a in args)
    if op == "!":
        return not _json_logic(args[0], data)
    values = [_json_logic(a, data) for a in args]
    try:
        if op == "==":
            return values[0] == values[1]
        if op == "!=":
            return values[0] != values[1]
        if op == "in":
            return values[0] in values[1]
        if op in ("<", "<=", ">", ">="):
            compare: dict[str, Callable[[Any, Any], bool]] = {
                "<": lambda a, b: a < b,
                "<=": lambda a, b: a <= b,
                ">": lambda a, b: a > b,
                ">=": lambda a, b: a >= b,
            }
            return all(compare[op](a, b) for a, b in itertools.pairwise(values))
    except TypeError:  # comparing with a missing (None) value
        return False
    raise HttpError(400, f"unsupported filter operator {op!r}")


def _select(
    request: Request,
    items: list[Any],
    view: Callable[[Any], dict[str, Any]],
    simple: tuple[str, ...],
) -> list[Any]:
    """Apply CVAT's list query parameters to ``items`` (``view`` gives filterable values)."""
    params = request.query_params
    rows = [(item, view(item)) for item in items]
    for name in simple:
        if name in params:
            wanted = params[name]
            rows = [(i, v) for i, v in rows if v.get(name) is not None and str(v[name]) == wanted]
    if params.get("search"):
        needle = params["search"].casefold()
        rows = [(i, v) for i, v in rows if needle in str(v.get("name", "")).casefold()]
    if params.get("filter"):
        try:
            expr = json.loads(params["filter"])
        except ValueError:
            raise HttpError(400, "filter is not valid JSON") from None
        rows = [(i, v) for i, v in rows if _json_logic(expr, v)]
    for key in reversed([k for k in params.get("sort", "").split(",") if k]):
        field = key.lstrip("-")
        rows.sort(
            key=lambda row, f=field: _sort_key(row[1].get(f)),
            reverse=key.startswith("-"),
        )
    return [item for item, _ in rows]


def _sort_key(value: Any) -> tuple[bool, Any]:
    """Missing values last; the others compare among themselves (one type per field)."""
    return (value is None, 0 if value is None else value)


def _page(request: Request, results: list[dict[str, Any]]) -> dict[str, Any]:
    try:
        page = int(request.query_params.get("page", 1))
        size = int(request.query_params.get("page_size", DEFAULT_PAGE_SIZE))
    except ValueError:
        raise HttpError(404, "Invalid page.") from None
    start = (page - 1) * size
    if page < 1 or size < 1 or (page > 1 and start >= len(results)):
        raise HttpError(404, "Invalid page.")
    more = start + size < len(results)
    return {
        "count": len(results),
        "next": str(request.url.include_query_params(page=page + 1)) if more else None,
        "previous": str(request.url.include_query_params(page=page - 1)) if page > 1 else None,
        "results": results[start : start + size],
    }


def _int_param(request: Request, name: str) -> int | None:
    value = request.query_params.get(name)
    if value in (None, ""):
        return None
    try:
        return int(value)
    except ValueError:
        raise HttpError(400, f"{name} must be an integer, not {value!r}") from None


def _org_id(state: FakeCvatState, task: Task) -> int | None:
    org = state.organization_of(task)
    return None if org is None else org.id


def _org_context(state: FakeCvatState, request: Request) -> Organization | None:
    """The organization a request acts in: ``org`` (slug), ``org_id`` or ``X-Organization``
    (slug); None for the personal workspace (CVAT's "sandbox")."""
    slug = request.query_params.get("org") or request.headers.get("x-organization")
    org_id = _int_param(request, "org_id")
    for org in state.organizations.values():
        if org.id == org_id or (slug and org.slug == slug):
            return org
    if slug or org_id is not None:
        raise HttpError(404, "The organization does not exist.")
    return None


def _visible_jobs(state: FakeCvatState, user: User, org: Organization | None) -> list[Job]:
    """The jobs a list shows, as ``filter`` of ``cvat/apps/engine/rules/jobs.rego`` (read at
    cvat-ai/cvat commit 11eb1d62): an admin sees all (or the organization's), a maintainer
    or owner the organization's, anyone else only the jobs they own, are assigned or whose
    task or project they own or are assigned -- without an organization context, a
    non-admin member does not see an organization's jobs they have no part in."""
    role = None if org is None else org.members.get(user.id)
    if org is not None and role is None and not user.is_superuser:
        raise HttpError(403, "You do not have permission to perform this action.")
    found = []
    for task in state.tasks.values():
        project = state.projects.get(task.project_id) if task.project_id else None
        in_org = org is None or _org_id(state, task) == org.id
        for job in task.jobs:
            staff = user.id in (
                job.assignee_id,
                task.owner_id,
                task.assignee_id,
                project.owner_id if project else None,
                project.assignee_id if project else None,
            )
            if not in_org:
                continue
            if user.is_superuser or role in ("owner", "maintainer") or staff:
                found.append(job)
    return found


# --- authentication ------------------------------------------------------------------------


def _authenticate(state: FakeCvatState, request: Request) -> User:
    scheme, _, credential = request.headers.get("authorization", "").partition(" ")
    scheme = scheme.lower()
    if scheme == "bearer":
        user_id = state.access_tokens.get(credential.strip())
        if user_id is None:
            raise HttpError(401, "Invalid token.")
        return state.users[user_id]
    if scheme == "token":
        user_id = state.api_keys.get(credential.strip())
        if user_id is None:
            raise HttpError(401, "Invalid token.")
        return state.users[user_id]
    if scheme == "basic":
        try:
            username, _, password = base64.b64decode(credential).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            raise HttpError(401, "Invalid basic header.") from None
        user = state.user_by_login(username, None)
        if user is None or user.password != password:
            raise HttpError(401, "Invalid username/password.")
        return user
    session = state.sessions.get(request.cookies.get("sessionid", ""))
    if session is not None:
        user_id, csrf = session
        if request.method not in SAFE_METHODS and request.headers.get("x-csrftoken") != csrf:
            raise HttpError(403, "CSRF Failed: CSRF token missing or incorrect.")
        return state.users[user_id]
    raise HttpError(401, "Authentication credentials were not provided.")


# --- the app -------------------------------------------------------------------------------


def create_app(state: FakeCvatState) -> FastAPI:
    """The FastAPI app answering CVAT's REST API from ``state``."""
    app = FastAPI(title="fake CVAT", redirect_slashes=False, openapi_url=None, docs_url=None)

    def route(path: str, *methods: str) -> Callable[[Callable], Callable]:
        def register(handler: Callable) -> Callable:
            bare = path.rstrip("/")
            for variant in (bare, bare + "/"):
                app.add_api_route(variant, handler, methods=list(methods))
            return handler

        return register

    def ser(request: Request) -> _Serializer:
        return _Serializer(state, str(request.base_url).rstrip("/"))

    @app.middleware("http")
    async def authenticate_and_log(request: Request, call_next: Callable) -> Response:
        path = request.url.path.rstrip("/")
        fault = state.take_fault(request.method, request.url.path)
        try:
            if fault is not None and not fault.after:
                await asyncio.sleep(fault.delay)
                if fault.status is not None:
                    raise HttpError(fault.status, "injected failure")
            if path.startswith("/api/") and path not in PUBLIC_PATHS:
                with state.lock:
                    request.state.user = _authenticate(state, request)
            response = await call_next(request)
            if fault is not None and fault.after:
                await asyncio.sleep(fault.delay)
                if fault.status is not None:
                    raise HttpError(fault.status, "injected failure after the change was made")
        except HttpError as err:
            response = JSONResponse({"detail": err.detail}, status_code=err.status)
        with state.lock:
            state.requests.append(
                RequestRecord(
                    request.method, request.url.path, request.url.query, response.status_code
                )
            )
        return response

    @app.exception_handler(HttpError)
    async def http_error(request: Request, err: HttpError) -> JSONResponse:
        return JSONResponse({"detail": err.detail}, status_code=err.status)

    @app.exception_handler(FakeCvatError)
    async def bad_request(request: Request, err: FakeCvatError) -> JSONResponse:
        return JSONResponse({"detail": str(err)}, status_code=400)

    # --- server and auth ---

    @route("/api/server/about", "GET")
    def about() -> dict[str, Any]:
        return {
            "name": "Computer Vision Annotation Tool",
            "description": "CVAT is free, online, interactive video and image annotation tool "
            "for computer vision (fake server for tests)",
            "version": state.version,
            "logo_url": "",
            "subtitle": "Fake CVAT for tests",
        }

    @route("/api/auth/login", "POST")
    async def login(request: Request) -> Response:
        try:
            body = await request.json()
        except ValueError:
            body = {}
        with state.lock:
            user = state.user_by_login(body.get("username"), body.get("email"))
            if user is None or user.password != body.get("password"):
                # dj-rest-auth answers a failed login with 400, not 401.
                return JSONResponse(
                    {"non_field_errors": ["Unable to log in with provided credentials."]},
                    status_code=400,
                )
            key = secrets.token_hex(20)
            session, csrf = secrets.token_hex(16), secrets.token_hex(16)
            state.api_keys[key] = user.id
            state.sessions[session] = (user.id, csrf)
        response = JSONResponse({"key": key})
        response.set_cookie("sessionid", session, httponly=True, samesite="lax")
        response.set_cookie("csrftoken", csrf, samesite="lax")
        return response

    @route("/api/auth/logout", "POST")
    def logout(request: Request) -> Response:
        with state.lock:
            state.sessions.pop(request.cookies.get("sessionid", ""), None)
        response = JSONResponse({"detail": "Successfully logged out."})
        response.delete_cookie("sessionid")
        response.delete_cookie("csrftoken")
        return response

    @route("/api/users/self", "GET")
    def users_self(request: Request) -> dict[str, Any]:
        with state.lock:
            return ser(request).user_full(request.state.user)

    @route("/api/users", "GET")
    def users_list(request: Request) -> dict[str, Any]:
        with state.lock:
            users = _select(
                request,
                list(state.users.values()),
                lambda u: {"id": u.id, "username": u.username, "name": u.username},
                ("username",),
            )
            return _page(request, [ser(request).user_full(u) for u in users])

    # --- projects ---

    def get_project(project_id: int) -> Project:
        project = state.projects.get(project_id)
        if project is None:
            raise _not_found()
        return project

    def project_view(project: Project) -> dict[str, Any]:
        return {
            "id": project.id,
            "name": project.name,
            "owner": state.users[project.owner_id].username,
            "status": "annotation",
            "updated_date": _date(project.updated_date),
        }

    @route("/api/projects", "GET")
    def projects_list(request: Request) -> dict[str, Any]:
        with state.lock:
            projects = _select(
                request, list(state.projects.values()), project_view, ("name", "owner", "status")
            )
            return _page(request, [ser(request).project(p) for p in projects])

    @route("/api/projects/{project_id}", "GET")
    def projects_retrieve(request: Request, project_id: int) -> dict[str, Any]:
        with state.lock:
            return ser(request).project(get_project(project_id))

    @route("/api/projects/{project_id}/preview", "GET")
    def projects_preview(project_id: int) -> Response:
        with state.lock:
            get_project(project_id)
            tasks = [t for t in state.tasks.values() if t.project_id == project_id]
            if not tasks:
                raise _not_found()
            return _frame_response(tasks[0], 0)

    # --- tasks ---

    def get_task(task_id: int) -> Task:
        task = state.tasks.get(task_id)
        if task is None:
            raise _not_found()
        return task

    def task_view(task: Task) -> dict[str, Any]:
        project = state.projects.get(task.project_id) if task.project_id else None
        return {
            "id": task.id,
            "name": task.name,
            "project_id": task.project_id,
            "project_name": project.name if project else None,
            "status": task.status,
            "subset": task.subset,
            "mode": "annotation",
            "dimension": "2d",
            "owner": state.users[task.owner_id].username,
            "assignee": state.users[task.assignee_id].username if task.assignee_id else None,
            "updated_date": _date(task.updated_date),
        }

    @route("/api/tasks", "GET")
    def tasks_list(request: Request) -> dict[str, Any]:
        with state.lock:
            tasks = _select(
                request,
                list(state.tasks.values()),
                task_view,
                TASK_FILTERS,
            )
            return _page(request, [ser(request).task(t) for t in tasks])

    @route("/api/tasks/{task_id}", "GET")
    def tasks_retrieve(request: Request, task_id: int) -> dict[str, Any]:
        with state.lock:
            return ser(request).task(get_task(task_id))

    @route("/api/tasks/{task_id}", "PATCH")
    async def tasks_update(request: Request, task_id: int) -> dict[str, Any]:
        body = await _json_body(request)
        with state.lock:
            task = get_task(task_id)
            for key in ("name", "subset", "bug_tracker"):
                if key in body:
                    setattr(task, key, str(body[key]))
            if "assignee_id" in body:
                task.assignee_id = _existing_user(state, body["assignee_id"])
            task.updated_date = state.now()
            return ser(request).task(task)

    @route("/api/tasks/{task_id}/preview", "GET")
    def tasks_preview(task_id: int) -> Response:
        with state.lock:
            return _frame_response(get_task(task_id), 0)

    @route("/api/tasks/{task_id}/data", "GET")
    def tasks_data(request: Request, task_id: int) -> Response:
        with state.lock:
            task = get_task(task_id)
            return _data_response(request, task, 0, task.size - 1, index_base=None)

    @route("/api/tasks/{task_id}/data/meta", "GET")
    def tasks_data_meta(request: Request, task_id: int) -> dict[str, Any]:
        with state.lock:
            task = get_task(task_id)
            return ser(request).meta(task, 0, task.size - 1)

    @route("/api/tasks/{task_id}/annotations", "GET")
    def tasks_annotations(task_id: int) -> dict[str, Any]:
        with state.lock:
            task = get_task(task_id)
            return _annotations(task, task.jobs)

    @route("/api/tasks/{task_id}/annotations", "PUT", "PATCH", "DELETE")
    async def tasks_annotations_write(request: Request, task_id: int) -> Response:
        body = await _json_body(request) if request.method != "DELETE" else {}
        with state.lock:
            task = get_task(task_id)
            return _write_annotations(state, request, body, task, task.jobs)

    # --- jobs ---

    def get_job(job_id: int) -> Job:
        job = state.job(job_id)
        if job is None:
            raise _not_found()
        return job

    def job_view(job: Job) -> dict[str, Any]:
        task = state.tasks[job.task_id]
        project = state.projects.get(task.project_id) if task.project_id else None
        return {
            "id": job.id,
            "task_id": job.task_id,
            "task_name": task.name,
            "project_id": task.project_id,
            "project_name": project.name if project else None,
            "stage": job.stage,
            "state": job.state,
            "type": job.type,
            "assignee": state.users[job.assignee_id].username if job.assignee_id else None,
            "updated_date": _date(job.updated_date),
        }

    @route("/api/jobs", "GET")
    def jobs_list(request: Request) -> dict[str, Any]:
        with state.lock:
            org = _org_context(state, request)
            jobs = _visible_jobs(state, request.state.user, org)
            jobs = _select(
                request,
                jobs,
                job_view,
                JOB_FILTERS,
            )
            return _page(request, [ser(request).job(j) for j in jobs])

    @route("/api/jobs/{job_id}", "GET")
    def jobs_retrieve(request: Request, job_id: int) -> dict[str, Any]:
        with state.lock:
            return ser(request).job(get_job(job_id))

    @route("/api/jobs/{job_id}", "PATCH")
    async def jobs_update(request: Request, job_id: int) -> dict[str, Any]:
        body = await _json_body(request)
        with state.lock:
            job = get_job(job_id)
            stage, job_state = body.get("stage"), body.get("state")
            if stage is not None and stage not in JOB_STAGES:
                raise HttpError(400, f"stage must be one of {', '.join(JOB_STAGES)}")
            if job_state is not None and job_state not in JOB_STATES:
                raise HttpError(400, f"state must be one of {', '.join(JOB_STATES)}")
            changes: dict[str, Any] = {}
            if "assignee" in body:
                user_id = _existing_user(state, body["assignee"])
                changes["assignee"] = None if user_id is None else state.users[user_id]
            state.set_job(job, stage=stage, state=job_state, **changes)
            return ser(request).job(job)

    @route("/api/jobs/{job_id}/validation_layout", "GET")
    def jobs_validation_layout(job_id: int) -> dict[str, Any]:
        """``JobValidationLayoutReadSerializer``: {} without a layout; with a GT pool, the
        job's honeypot frames and the pool frames they show."""
        with state.lock:
            job = get_job(job_id)
            task = state.tasks[job.task_id]
            if state.older_server:  # the endpoint came with CVAT 2.20
                raise _not_found()
            if not task.honeypots:
                return {}
            frames = sorted(f for f in task.honeypots if job.contains(f))
            return {
                "honeypot_count": len(frames),
                "honeypot_frames": frames,
                "honeypot_real_frames": [task.honeypots[f] for f in frames],
            }

    @route("/api/jobs/{job_id}/preview", "GET")
    def jobs_preview(job_id: int) -> Response:
        with state.lock:
            job = get_job(job_id)
            return _frame_response(state.tasks[job.task_id], job.start_frame)

    @route("/api/jobs/{job_id}/data", "GET")
    def jobs_data(request: Request, job_id: int) -> Response:
        with state.lock:
            job = get_job(job_id)
            task = state.tasks[job.task_id]
            return _data_response(request, task, job.start_frame, job.stop_frame, job.start_frame)

    @route("/api/jobs/{job_id}/data/meta", "GET")
    def jobs_data_meta(request: Request, job_id: int) -> dict[str, Any]:
        with state.lock:
            job = get_job(job_id)
            if not state.tasks[job.task_id].data_ready:
                raise HttpError(400, "The task's data is still being prepared")
            return ser(request).meta(state.tasks[job.task_id], job.start_frame, job.stop_frame)

    @route("/api/jobs/{job_id}/annotations", "GET")
    def jobs_annotations(job_id: int) -> dict[str, Any]:
        with state.lock:
            job = get_job(job_id)
            return _annotations(state.tasks[job.task_id], [job])

    @route("/api/jobs/{job_id}/annotations", "PUT", "PATCH", "DELETE")
    async def jobs_annotations_write(request: Request, job_id: int) -> Response:
        body = await _json_body(request) if request.method != "DELETE" else {}
        with state.lock:
            job = get_job(job_id)
            return _write_annotations(state, request, body, state.tasks[job.task_id], [job])

    # --- labels ---

    @route("/api/labels", "GET")
    def labels_list(request: Request) -> dict[str, Any]:
        with state.lock:
            labels: list[Label]
            if (project_id := _int_param(request, "project_id")) is not None:
                labels = list(get_project(project_id).labels)
            elif (task_id := _int_param(request, "task_id")) is not None:
                labels = state.labels_of(get_task(task_id))
            elif (job_id := _int_param(request, "job_id")) is not None:
                labels = state.labels_of(state.tasks[get_job(job_id).task_id])
            else:
                labels = [label for p in state.projects.values() for label in p.labels]
            labels = _select(
                request,
                labels,
                lambda label: {"id": label.id, "name": label.name, "type": label.type},
                ("name", "type"),
            )
            return _page(request, [ser(request).label(label) for label in labels])

    @route("/api/labels/{label_id}", "GET")
    def labels_retrieve(request: Request, label_id: int) -> dict[str, Any]:
        with state.lock:
            for project in state.projects.values():
                for label in project.labels:
                    if label.id == label_id:
                        return ser(request).label(label)
            raise _not_found()

    return app


async def _json_body(request: Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        raise HttpError(400, "the request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise HttpError(400, "the request body must be a JSON object")
    return body


def _existing_user(state: FakeCvatState, user_id: Any) -> int | None:
    if user_id is None:
        return None
    if user_id not in state.users:
        raise HttpError(400, f"user {user_id} does not exist")
    return int(user_id)


# --- frames --------------------------------------------------------------------------------


def _frame_response(task: Task, number: int, quality: str = "original") -> Response:
    data, mime_type, _ = _frame_file(task, number, quality)
    return Response(data, media_type=mime_type)


def _frame_file(task: Task, number: int, quality: str) -> tuple[bytes, str, str]:
    """A frame as CVAT's chunks hold it: ``(bytes, mime type, extension)``.

    ``cvat/apps/engine/media_extractors.py`` (cvat-ai/cvat develop, 2025-2026): the
    original chunk keeps the uploaded file, except that an image with an EXIF rotation (or
    a TIFF) is stored rotated, re-encoded in its own format at quality 100 without chroma
    subsampling and without the tag (``ZipChunkWriter.save_as_chunk``); the compressed
    chunk is the rotated image as a JPEG at the task's image quality, 16-bit gray
    stretched to its range and equalized first (``IChunkWriter._compress_image``). A file
    Pillow cannot read (a corrupt frame a test planted) is served as stored.
    """
    frame = task.frames[number]
    try:
        with Image.open(io.BytesIO(frame.data)) as image:
            image.load()
    except (OSError, SyntaxError, ValueError):  # a corrupt file a test planted: as stored
        return frame.data, frame.mime_type, ".jpg"
    if quality == "original":
        with Image.open(io.BytesIO(frame.data)) as image:
            rotated = image.getexif().get(0x0112, 1) != 1
            if not rotated and image.format != "TIFF":
                return frame.data, frame.mime_type, _EXTENSIONS.get(image.format, ".jpg")
            image_format = image.format or "JPEG"
            upright = ImageOps.exif_transpose(image)
        buffer = io.BytesIO()
        if image_format == "TIFF":
            upright.save(buffer, format="TIFF", compression="tiff_lzw")
        else:
            upright.save(buffer, format=image_format, quality=100, subsampling=0)
        return buffer.getvalue(), f"image/{image_format.lower()}", _EXTENSIONS[image_format]
    with Image.open(io.BytesIO(frame.data)) as image:
        upright = ImageOps.exif_transpose(image)
    if upright.mode == "I;16":
        samples = np.asarray(upright, dtype=np.float64)
        samples -= samples.min()
        samples *= 255 / max(samples.max(), 1.0)
        upright = ImageOps.equalize(Image.fromarray(samples.astype(np.uint8), mode="L"))
    if upright.mode not in ("RGB", "L"):
        upright = upright.convert("RGB")
    buffer = io.BytesIO()
    upright.save(buffer, format="JPEG", quality=task.image_quality, optimize=True)
    return buffer.getvalue(), "image/jpeg", ".jpeg"


def _data_response(
    request: Request, task: Task, start: int, stop: int, index_base: int | None
) -> Response:
    """``type=frame``: one frame by ``number`` (task frame) or, for jobs, ``index`` (position
    in the job); ``type=chunk``: chunk ``number`` (of ``chunk_size`` frames, counted from
    ``start``) as a zip; ``quality`` original or compressed (see :func:`_frame_file`)."""
    kind = request.query_params.get("type")
    quality = request.query_params.get("quality", "compressed")
    if quality not in ("original", "compressed"):
        raise HttpError(400, f"quality must be original or compressed, not {quality!r}")
    if not task.data_ready:
        raise HttpError(400, "The task's data is still being prepared")
    number = _int_param(request, "number")
    if kind == "frame":
        index = _int_param(request, "index")
        if number is None and index is not None and index_base is not None:
            number = index_base + index
        if number is None or not start <= number <= stop:
            raise HttpError(400, f"The frame number should be in the [{start}, {stop}] range")
        return _frame_response(task, number, quality)
    if kind == "chunk":
        first = start + (number or 0) * task.chunk_size
        if number is None or number < 0 or first > stop:
            raise HttpError(
                400,
                f"The chunk number should be in the [0, {(stop - start) // task.chunk_size}] range",
            )
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            for frame_number in range(first, min(first + task.chunk_size - 1, stop) + 1):
                data, _, ext = _frame_file(task, frame_number, quality)
                archive.writestr(f"{frame_number:06d}{ext}", data)
        return Response(buffer.getvalue(), media_type="application/zip")
    raise HttpError(400, f"data type must be frame or chunk, not {kind!r}")


# --- annotations ---------------------------------------------------------------------------


def _annotations(task: Task, jobs: list[Job]) -> dict[str, Any]:
    def inside(frame: int) -> bool:
        return any(job.contains(frame) for job in jobs)

    return {
        "version": max((job.version for job in jobs), default=0),
        "tags": [dict(t) for t in task.tags if inside(t["frame"])],
        "shapes": [_Serializer.shape(s) for s in task.shapes if inside(s.frame)],
        "tracks": [dict(t) for t in task.tracks if inside(t["frame"])],
        "intervals": [],
    }


def _parse_shape(state: FakeCvatState, task: Task, jobs: list[Job], data: Any) -> Shape:
    if not isinstance(data, dict):
        raise HttpError(400, "each shape must be a JSON object")
    missing = [key for key in ("type", "frame", "label_id") if key not in data]
    if missing:
        raise HttpError(400, f"a shape lacks the required field(s) {', '.join(missing)}")
    if data["type"] not in SHAPE_TYPES:
        raise HttpError(400, f'"{data["type"]}" is not a valid choice.')
    frame = int(data["frame"])
    if not any(job.contains(frame) for job in jobs):
        raise HttpError(400, f"frame {frame} is outside the annotated range")
    if int(data["label_id"]) not in {label.id for label in state.labels_of(task)}:
        raise HttpError(400, f"label {data['label_id']} is not a label of task {task.id}")
    return Shape(
        id=int(data.get("id") or state.next_id("shape")),
        type=data["type"],
        frame=frame,
        label_id=int(data["label_id"]),
        points=[float(p) for p in data.get("points", [])],
        occluded=bool(data.get("occluded", False)),
        outside=bool(data.get("outside", False)),
        z_order=int(data.get("z_order", 0)),
        rotation=float(data.get("rotation", 0.0)),
        group=int(data.get("group") or 0),
        source=str(data.get("source", "manual")),
        attributes=[dict(a) for a in data.get("attributes", [])],
        elements=[dict(e) for e in data.get("elements", [])],
        score=None if data.get("score") is None else float(data["score"]),
    )


def _write_annotations(
    state: FakeCvatState, request: Request, body: dict[str, Any], task: Task, jobs: list[Job]
) -> Response:
    """PUT replaces the annotations of ``jobs``' frames (new shapes get new ids, as CVAT
    recreates them), PATCH ``?action=create|update|delete`` edits them, DELETE clears them."""

    def inside(frame: int) -> bool:
        return any(job.contains(frame) for job in jobs)

    action = request.query_params.get("action") if request.method == "PATCH" else None
    if request.method == "PATCH" and action not in ("create", "update", "delete"):
        raise HttpError(400, "action must be one of create, update, delete")
    incoming = body.get("shapes", []) or []
    touched_frames: set[int] = set()
    if request.method in ("PUT", "DELETE"):
        touched_frames |= {s.frame for s in task.shapes if inside(s.frame)}
        task.shapes = [s for s in task.shapes if not inside(s.frame)]
        task.tags = [t for t in task.tags if not inside(t["frame"])]
        task.tracks = [t for t in task.tracks if not inside(t["frame"])]
        for data in incoming:
            shape = _parse_shape(state, task, jobs, {**data, "id": None})
            task.shapes.append(shape)
            touched_frames.add(shape.frame)
        for kind in ("tags", "tracks"):
            for item in body.get(kind, []) or []:
                getattr(task, kind).append({**item, "id": state.next_id(kind)})
        written = [s for s in task.shapes if inside(s.frame)]
    elif action == "create":
        written = [_parse_shape(state, task, jobs, {**data, "id": None}) for data in incoming]
        task.shapes.extend(written)
        touched_frames |= {s.frame for s in written}
    elif action == "update":
        written = []
        for data in incoming:
            shape = _parse_shape(state, task, jobs, data)
            old = state.shape(task, shape.id)
            touched_frames |= {old.frame, shape.frame}
            task.shapes[task.shapes.index(old)] = shape
            written.append(shape)
    else:
        ids = {int(data["id"]) for data in incoming if isinstance(data, dict) and "id" in data}
        written = [s for s in task.shapes if s.id in ids]
        touched_frames |= {s.frame for s in written}
        task.shapes = [s for s in task.shapes if s.id not in ids]
    job_ids = {job.id for job in jobs if request.method in ("PUT", "DELETE")}
    job_ids |= {task.job_of(frame).id for frame in touched_frames}
    state.touch_annotations(task, job_ids)
    if request.method == "DELETE":
        return Response(status_code=204)
    return JSONResponse(
        {
            "version": max(job.version for job in jobs),
            "tags": [],
            "shapes": [_Serializer.shape(s) for s in written],
            "tracks": [],
            "intervals": [],
        }
    )


# --- running it ----------------------------------------------------------------------------


class FakeCvatServer:
    """Runs :func:`create_app` with uvicorn in a daemon thread on ``127.0.0.1:<free port>``.

    Use as a context manager, or call :meth:`start` and :meth:`stop`; :attr:`url` is the
    base URL to give ``cvat_sdk.make_client``.
    """

    def __init__(self, state: FakeCvatState | None = None) -> None:
        self.state = state or FakeCvatState()
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None
        self.webhook_sender: WebhookSender | None = None

    @property
    def url(self) -> str:
        if self._socket is None:
            raise RuntimeError("the fake CVAT server is not running")
        host, port = self._socket.getsockname()[:2]
        return f"http://{host}:{port}"

    def start(self, timeout: float = 10.0) -> FakeCvatServer:
        if self._thread is not None:
            raise RuntimeError("the fake CVAT server is already running")
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind(("127.0.0.1", 0))
        config = uvicorn.Config(
            create_app(self.state),
            log_level="warning",
            access_log=False,
            lifespan="off",
            # CVAT's nginx keeps idle connections 75 s; uvicorn's 5 s default closed a pooled
            # connection while a client ran its model, and the next upload was reset.
            timeout_keep_alive=75,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run,
            kwargs={"sockets": [self._socket]},
            daemon=True,
            name="fake-cvat",
        )
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started and self._thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.02)
        if not self._server.started:
            self.stop()
            raise RuntimeError("the fake CVAT server did not start")
        # CVAT retries failed deliveries only since mid-2026; older servers deliver once.
        self.webhook_sender = WebhookSender(() if self.state.older_server else None)
        self.state.job_listeners.append(self._deliver_job_event)
        return self

    def job_event(
        self, job: Job, webhook_id: int = 1, event: str = "update:job", before: dict | None = None
    ) -> dict:
        """The payload CVAT would post about ``job`` now."""
        with self.state.lock:
            return _Serializer(self.state, self.url).webhook_payload(webhook_id, job, event, before)

    def _deliver_job_event(self, job: Job, event: str, before: dict) -> None:
        task = self.state.tasks[job.task_id]
        for webhook in self.state.webhooks:
            wanted = webhook.is_active and event in webhook.events
            if wanted and webhook.project_id == task.project_id and self.webhook_sender:
                self.webhook_sender.send(webhook, self.job_event(job, webhook.id, event, before))

    def stop(self, timeout: float = 10.0) -> None:
        if self._deliver_job_event in self.state.job_listeners:
            self.state.job_listeners.remove(self._deliver_job_event)
        if self.webhook_sender is not None:
            self.webhook_sender.close()
            self.webhook_sender = None
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                raise RuntimeError("the fake CVAT server thread did not stop")
        if self._socket is not None:
            self._socket.close()
        self._server = self._thread = self._socket = None

    def __enter__(self) -> FakeCvatServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


@contextmanager
def running_fake_cvat(state: FakeCvatState | None = None) -> Iterator[FakeCvatServer]:
    """``with running_fake_cvat(state) as server: ...`` -- the server is stopped afterwards."""
    server = FakeCvatServer(state)
    with server:
        yield server
