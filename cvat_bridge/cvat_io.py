"""The CVAT calls a run makes, through cvat-sdk, each with a timeout and retried with
exponential backoff on what is worth retrying (connection errors, timeouts, 408, 429, 5xx).

Shapes travel as plain dicts in CVAT's JSON (``id``, ``type``, ``frame``, ``label_id``,
``points``, ``source``, ``score``, ...). Creating shapes is not idempotent, so
:meth:`CvatSession.create_shapes` is never retried blindly: the caller checks what landed
(see :mod:`.annotate`).
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import urllib3
from cvat_sdk import make_client
from cvat_sdk.api_client import exceptions, models
from cvat_sdk.core.helpers import get_paginated_collection

from coral_core.errors import CoralsegError
from cvat_bridge.settings import BridgeSettings

log = logging.getLogger(__name__)
T = TypeVar("T")
RETRYABLE_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
SHAPE_REQUEST_FIELDS = (
    "type", "occluded", "outside", "z_order", "rotation", "points", "id", "frame", "label_id",
    "group", "source", "score",
)  # fmt: skip


class CvatUnavailableError(CoralsegError):
    """CVAT could not be reached (or kept failing) after all retries."""


class DataNotReadyError(CvatUnavailableError):
    """The job exists but its task's frames are still being prepared: try again later.

    CVAT saves a new task's jobs (and sends ``create:job``) before it has written the task's
    chunks and saved the task again (``_create_thread`` in ``cvat/apps/engine/task.py``)."""


@dataclass(frozen=True)
class JobLabel:
    """A label of a job: its id and CVAT type (``any``, ``mask``, ``polygon``, ...)."""

    id: int
    type: str


class CvatRefusedError(CoralsegError):
    """CVAT answered with a final error (4xx other than 408/429)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


def is_transient(err: BaseException) -> bool:
    if isinstance(err, exceptions.ApiException):
        return err.status in RETRYABLE_STATUSES or not err.status
    return isinstance(err, urllib3.exceptions.HTTPError | ConnectionError | TimeoutError)


def _describe(err: BaseException) -> str:
    if isinstance(err, exceptions.ApiException):
        return f"HTTP {err.status} {err.reason or ''}".strip()
    return type(err).__name__


def with_retries(
    call: Callable[[], T],
    what: str,
    settings: BridgeSettings,
    stop: threading.Event | None = None,
) -> T:
    """``call()``, retried on transient errors ``settings.cvat_retries`` times."""
    for attempt in range(settings.cvat_retries + 1):
        try:
            return call()
        except Exception as err:
            if not is_transient(err):
                if isinstance(err, exceptions.ApiException):
                    raise CvatRefusedError(
                        f"CVAT refused to {what}: {_describe(err)}", err.status
                    ) from None
                raise
            if attempt == settings.cvat_retries:
                raise CvatUnavailableError(
                    f"CVAT kept failing to {what} ({_describe(err)}, {attempt + 1} tries)"
                ) from None
            delay = min(30.0, settings.retry_base_delay * 2**attempt) * random.uniform(0.8, 1.2)
            log.warning("CVAT failed to %s (%s); retrying in %.1f s", what, _describe(err), delay)
            if stop is not None and stop.wait(delay):
                raise CvatUnavailableError(f"stopped while retrying to {what}") from None
            if stop is None:
                time.sleep(delay)
    raise AssertionError("unreachable")


class CvatSession:
    """A logged-in cvat-sdk client for one run: ``with CvatSession(settings) as cvat:``."""

    def __init__(self, settings: BridgeSettings, stop: threading.Event | None = None) -> None:
        settings.check_cvat()
        self.settings = settings
        self.stop = stop
        self.timeout = settings.cvat_timeout
        self.client = None

    def __enter__(self) -> CvatSession:
        s = self.settings
        if s.cvat_access_token:
            login = lambda: make_client(s.cvat_url, access_token=s.cvat_access_token)  # noqa: E731
        else:
            login = lambda: make_client(s.cvat_url, credentials=(s.cvat_username, s.cvat_password))  # noqa: E731
        self.client = self._retry(login, "log in")
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.client is not None:
            try:
                if not self.settings.cvat_access_token:
                    self.client.logout()
            except Exception:  # logging out is a courtesy; the session expires anyway
                log.debug("CVAT logout failed", exc_info=True)
            self.client.close()
            self.client = None

    def _retry(self, call: Callable[[], T], what: str) -> T:
        return with_retries(call, what, self.settings, self.stop)

    @property
    def api(self):
        return self.client.api_client

    # --- reading ------------------------------------------------------------------------

    def job(self, job_id: int) -> Any:
        return self._retry(
            lambda: self.api.jobs_api.retrieve(job_id, _request_timeout=self.timeout)[0],
            f"read job {job_id}",
        )

    def frames(self, job: Any) -> list[int]:
        """The job's frame numbers (task numbering), without deleted frames.

        Raises:
            DataNotReadyError: the task has no frames yet (it is still being created).
        """
        task = self._retry(
            lambda: self.api.tasks_api.retrieve(job.task_id, _request_timeout=self.timeout)[0],
            f"read task {job.task_id}",
        )
        if not task.size:
            raise DataNotReadyError(f"the frames of task {job.task_id} are not ready yet")
        meta = self._retry(
            lambda: self.api.jobs_api.retrieve_data_meta(job.id, _request_timeout=self.timeout)[0],
            f"read the frame list of job {job.id}",
        )
        deleted = set(getattr(meta, "deleted_frames", None) or [])
        return [f for f in range(job.start_frame, job.stop_frame + 1) if f not in deleted]

    def labels(self, job_id: int) -> dict[str, JobLabel]:
        """Label name -> id and type, for the job's labels."""
        labels = self._retry(
            lambda: get_paginated_collection(
                self.api.labels_api.list_endpoint,
                job_id=job_id,
                page_size=500,
                _request_timeout=self.timeout,
            ),
            f"read the labels of job {job_id}",
        )
        return {label.name: JobLabel(label.id, str(label.type)) for label in labels}

    def honeypot_frames(self, job_id: int) -> set[int]:
        """The job's honeypot frames (task numbering): placeholders that show frames of the
        task's validation pool, so that CVAT can measure the annotator's quality
        (``GET /api/jobs/{id}/validation_layout``, CVAT >= 2.20). Empty without a layout, and
        on servers without the endpoint (404)."""

        def call() -> set[int]:
            try:
                _, response = self.api.jobs_api.retrieve_validation_layout(
                    job_id, _parse_response=False, _request_timeout=self.timeout
                )
            except exceptions.ApiException as err:
                if err.status in (404, 405):
                    return set()
                raise
            layout = json.loads(response.data or b"{}")
            return {int(frame) for frame in layout.get("honeypot_frames") or []}

        return self._retry(call, f"read the validation layout of job {job_id}")

    def frame_bytes(self, job_id: int, frame: int) -> bytes:
        def call() -> bytes:
            _, response = self.api.jobs_api.retrieve_data(
                job_id,
                type="frame",
                number=frame,
                quality="original",
                _parse_response=False,
                _request_timeout=self.timeout,
            )
            return response.data

        return self._retry(call, f"download frame {frame} of job {job_id}")

    def shapes(self, job_id: int) -> list[dict]:
        """The job's shapes as CVAT's JSON."""

        def call() -> list[dict]:
            _, response = self.api.jobs_api.retrieve_annotations(
                job_id, _parse_response=False, _request_timeout=self.timeout
            )
            return json.loads(response.data)["shapes"]

        return self._retry(call, f"read the annotations of job {job_id}")

    def project_jobs(self, project_id: int, organization_id: int | None = None) -> list[Any]:
        """The annotation jobs of a project. Lists are filtered by the caller's context
        (``cvat/apps/engine/rules/jobs.rego``): without an organization a non-admin sees only
        the personal workspace's jobs, so a project of an organization is listed in its
        context (``org_id``)."""
        context = {} if organization_id is None else {"org_id": organization_id}
        return self._retry(
            lambda: get_paginated_collection(
                self.api.jobs_api.list_endpoint,
                project_id=project_id,
                type="annotation",
                page_size=100,
                _request_timeout=self.timeout,
                **context,
            ),
            f"list the jobs of project {project_id}",
        )

    # --- writing ------------------------------------------------------------------------

    def _patch(self, job_id: int, action: str, shapes: list[dict]) -> list[dict]:
        request = models.PatchedLabeledDataRequest(
            shapes=[_shape_request(s) for s in shapes], tags=[], tracks=[]
        )
        _, response = self.api.jobs_api.partial_update_annotations(
            action,
            job_id,
            patched_labeled_data_request=request,
            _parse_response=False,
            _request_timeout=self.timeout,
        )
        return json.loads(response.data or b"{}").get("shapes", [])

    def create_shapes_once(self, job_id: int, shapes: list[dict]) -> list[dict]:
        """One attempt to create ``shapes``; returns them with their new ids. Raises on
        failure (the caller must check whether they landed before trying again)."""
        return self._patch(job_id, "create", shapes)

    def delete_shapes(self, job_id: int, shapes: list[dict]) -> None:
        """Delete ``shapes`` (as read from CVAT). Safe to retry: CVAT ignores missing ids."""
        self._retry(lambda: self._patch(job_id, "delete", shapes), f"delete shapes of job {job_id}")


def _shape_request(shape: dict) -> models.LabeledShapeRequest:
    fields = {k: v for k, v in shape.items() if k in SHAPE_REQUEST_FIELDS and v is not None}
    fields["points"] = [float(p) for p in fields.get("points", [])]
    fields["attributes"] = [
        models.AttributeValRequest(spec_id=a["spec_id"], value=str(a["value"]))
        for a in shape.get("attributes") or []
    ]
    return models.LabeledShapeRequest(**fields)
