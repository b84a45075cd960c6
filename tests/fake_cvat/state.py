"""The in-memory world the fake CVAT server serves: users, projects, tasks, jobs, frames and
annotations, as plain dataclasses a test fills and changes.

Everything here is what CVAT keeps in its database, reduced to what a client can see:

* ids are unique per kind and start at 1, as in a fresh CVAT;
* frame numbers are task-relative (``0..size-1``), as in CVAT's annotations and data API;
* shape ``points`` are CVAT pixel coordinates (pixel ``(i, j)`` covers ``[j, j+1) x [i, i+1)``),
  flat ``[x0, y0, x1, y1, ...]``; a mask's points are its RLE followed by the inclusive box
  ``[left, top, right, bottom]`` (:func:`encode_mask`);
* a job's ``status`` follows its ``stage`` and ``state`` and a task's ``status`` follows its
  annotation jobs, the way CVAT's serializer and signal handlers derive them;
* saving annotations moves the ``updated_date`` of the job, its task and its project, as
  CVAT's ``JobAnnotation._set_updated_date`` does; a job's stage/state change moves the
  job's date, and the task's only when the task status changes;
* a stage change without a state resets the state to "new" (``JobWriteSerializer.update``,
  ``cvat/apps/engine/serializers.py``, cvat-ai/cvat develop, 2025-2026); saving annotations never
  changes the state: cvat-ui moves a "new" job to "in progress" after the first save
  (``saveAnnotationsAsync`` then ``updateCurrentJobAsync``), which :meth:`FakeCvatState.
  annotator_saves` does as two saves, as the browser does;
* organizations: a project may belong to one; lists are filtered by the caller's context
  as ``cvat/apps/engine/rules/jobs.rego`` does (see ``server.py``);
* a task may have a validation layout (honeypot frames showing validation-pool frames,
  ``JobValidationLayoutReadSerializer``), and its data may still be in preparation
  (``data_ready=False``: CVAT saves the jobs, and sends ``create:job``, before the chunks).

All changes go through :class:`FakeCvatState` methods, which hold a lock: the server runs in
another thread.
"""

from __future__ import annotations

import io
import secrets
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from PIL import Image

CVAT_VERSION = "2.80.0"
SHAPE_TYPES = (
    "rectangle",
    "polygon",
    "polyline",
    "points",
    "ellipse",
    "cuboid",
    "mask",
    "skeleton",
)
JOB_STAGES = ("annotation", "validation", "acceptance")
JOB_STATES = ("new", "in progress", "completed", "rejected")


ORG_ROLES = ("owner", "maintainer", "supervisor", "worker")


class FakeCvatError(ValueError):
    """A request the real server would refuse; the server answers 400 with this message."""


@dataclass
class User:
    id: int
    username: str
    password: str
    email: str = ""
    first_name: str = ""
    last_name: str = ""
    is_superuser: bool = False


@dataclass
class Organization:
    """An organization: ``members`` maps user ids to roles (owner, maintainer, supervisor,
    worker)."""

    id: int
    slug: str
    owner_id: int
    members: dict[int, str] = field(default_factory=dict)


@dataclass
class AttributeSpec:
    """A label attribute; ``input_type`` is one of checkbox, radio, number, text, select."""

    id: int
    name: str
    input_type: str = "text"
    mutable: bool = False
    values: list[str] = field(default_factory=list)
    default_value: str = ""


@dataclass
class Label:
    id: int
    name: str
    color: str = "#fa3253"
    type: str = "any"
    attributes: list[AttributeSpec] = field(default_factory=list)
    project_id: int | None = None
    task_id: int | None = None


@dataclass
class Frame:
    """One image of a task: its file name in CVAT, its size, and the original file's bytes."""

    name: str
    width: int
    height: int
    data: bytes

    @property
    def mime_type(self) -> str:
        return "image/png" if self.data[:4] == b"\x89PNG" else "image/jpeg"


@dataclass
class Shape:
    """A LabeledShape. ``attributes`` holds ``{"spec_id": int, "value": str}`` dicts."""

    id: int
    type: str
    frame: int
    label_id: int
    points: list[float]
    occluded: bool = False
    outside: bool = False
    z_order: int = 0
    rotation: float = 0.0
    group: int = 0
    source: str = "manual"
    attributes: list[dict[str, Any]] = field(default_factory=list)
    elements: list[dict[str, Any]] = field(default_factory=list)
    score: float | None = None


@dataclass
class Job:
    id: int
    task_id: int
    start_frame: int
    stop_frame: int
    created_date: datetime
    updated_date: datetime
    stage: str = "annotation"
    state: str = "new"
    type: str = "annotation"
    assignee_id: int | None = None
    version: int = 0

    @property
    def status(self) -> str:
        if self.stage == "acceptance" and self.state == "completed":
            return "completed"
        return "annotation" if self.stage == "annotation" else "validation"

    @property
    def frame_count(self) -> int:
        return self.stop_frame - self.start_frame + 1

    def contains(self, frame: int) -> bool:
        return self.start_frame <= frame <= self.stop_frame


@dataclass
class Task:
    id: int
    name: str
    project_id: int | None
    owner_id: int
    created_date: datetime
    updated_date: datetime
    frames: list[Frame] = field(default_factory=list)
    jobs: list[Job] = field(default_factory=list)
    shapes: list[Shape] = field(default_factory=list)
    tags: list[dict[str, Any]] = field(default_factory=list)
    tracks: list[dict[str, Any]] = field(default_factory=list)
    subset: str = ""
    segment_size: int = 0
    chunk_size: int = 36
    image_quality: int = 70
    bug_tracker: str = ""
    assignee_id: int | None = None
    deleted_frames: list[int] = field(default_factory=list)
    data_ready: bool = True
    honeypots: dict[int, int] = field(default_factory=dict)  # honeypot frame -> pool frame

    @property
    def size(self) -> int:
        return len(self.frames) if self.data_ready else 0

    @property
    def status(self) -> str:
        """CVAT's rule: annotation if any job is, else validation if any job is, else completed."""
        statuses = {job.status for job in self.jobs if job.type == "annotation"}
        for status in ("annotation", "validation"):
            if status in statuses:
                return status
        return "completed"

    def job_of(self, frame: int) -> Job:
        for job in self.jobs:
            if job.contains(frame):
                return job
        raise FakeCvatError(f"frame {frame} is not in task {self.id} (0..{self.size - 1})")


@dataclass
class Project:
    id: int
    name: str
    owner_id: int
    created_date: datetime
    updated_date: datetime
    labels: list[Label] = field(default_factory=list)
    bug_tracker: str = ""
    assignee_id: int | None = None
    organization_id: int | None = None

    def label(self, name_or_id: str | int) -> Label:
        for label in self.labels:
            if label.id == name_or_id or label.name == name_or_id:
                return label
        raise FakeCvatError(f"project {self.name!r} has no label {name_or_id!r}")


@dataclass
class Fault:
    """Makes the next ``times`` requests whose method is ``method`` and whose path matches the
    regular expression ``path`` slow (``delay`` seconds) and/or fail with ``status``. With
    ``after=True`` the request is carried out first and only its answer is lost (a 5xx, or a
    delay past the client's timeout): the case where retrying a write would do it twice."""

    method: str
    path: str
    status: int | None = None
    delay: float = 0.0
    times: int = 1
    after: bool = False
    skip: int = 0  # let this many matching requests through first
    hits: int = 0


@dataclass
class RequestRecord:
    """One request the server answered: method, path, query string and status code."""

    method: str
    path: str
    query: str
    status: int


class FakeCvatState:
    """Everything the fake server knows. Tests build it with ``add_*`` and change it with
    the editing helpers; the server reads and writes it under :attr:`lock`."""

    def __init__(self, version: str = CVAT_VERSION, older_server: bool = False) -> None:
        """``older_server``: webhooks as CVAT sent them before mid-2026 -- the payload has
        ``before_update`` and a failed delivery is not retried."""
        self.version = version
        self.older_server = older_server
        self.organizations: dict[int, Organization] = {}
        self.lock = threading.RLock()
        self.users: dict[int, User] = {}
        self.projects: dict[int, Project] = {}
        self.tasks: dict[int, Task] = {}
        self.sessions: dict[str, tuple[int, str]] = {}  # sessionid -> (user id, csrftoken)
        self.api_keys: dict[str, int] = {}  # legacy "Authorization: Token KEY" from login
        self.access_tokens: dict[str, int] = {}  # personal access tokens ("Bearer")
        self.requests: list[RequestRecord] = []
        self.faults: list[Fault] = []
        self.webhooks: list[Any] = []  # tests.fake_cvat.webhooks.Webhook
        # Called (under the lock) with each job that is saved: state change or annotation save,
        # with the event ("update:job", "create:job") and the fields that changed before.
        self.job_listeners: list[Callable[[Job, str, dict[str, Any]], None]] = []
        self._ids: dict[str, int] = {}
        self._last_time = datetime(2000, 1, 1, tzinfo=UTC)

    # --- clock and ids -------------------------------------------------------------------

    def now(self) -> datetime:
        """Current UTC time, strictly later than any time handed out before."""
        with self.lock:
            now = datetime.now(UTC)
            if now <= self._last_time:
                now = self._last_time + timedelta(microseconds=1)
            self._last_time = now
            return now

    def next_id(self, kind: str) -> int:
        with self.lock:
            self._ids[kind] = self._ids.get(kind, 0) + 1
            return self._ids[kind]

    # --- building the world ---------------------------------------------------------------

    def add_user(
        self, username: str, password: str, *, email: str = "", is_superuser: bool = True
    ) -> User:
        with self.lock:
            user = User(self.next_id("user"), username, password, email, is_superuser=is_superuser)
            self.users[user.id] = user
            return user

    def add_access_token(self, user: User) -> str:
        """A new personal access token for ``user`` (sent as ``Authorization: Bearer ...``)."""
        with self.lock:
            token = secrets.token_urlsafe(24)
            self.access_tokens[token] = user.id
            return token

    def add_organization(
        self, slug: str, owner: User, members: Iterable[tuple[User, str]] = ()
    ) -> Organization:
        """An organization owned by ``owner``, with ``members`` ((user, role) pairs)."""
        with self.lock:
            roles = {owner.id: "owner"}
            for user, role in members:
                if role not in ORG_ROLES:
                    raise FakeCvatError(f"role must be one of {', '.join(ORG_ROLES)}")
                roles[user.id] = role
            org = Organization(self.next_id("organization"), slug, owner.id, roles)
            self.organizations[org.id] = org
            return org

    def add_project(
        self,
        name: str,
        labels: Iterable[str | Label] = (),
        *,
        owner: User | None = None,
        organization: Organization | None = None,
    ) -> Project:
        with self.lock:
            owner = owner or self._default_owner()
            now = self.now()
            project = Project(self.next_id("project"), name, owner.id, now, now)
            project.organization_id = organization.id if organization else None
            for label in labels:
                self.add_label(project, label)
            self.projects[project.id] = project
            return project

    def add_label(self, project: Project, label: str | Label) -> Label:
        with self.lock:
            if isinstance(label, str):
                label = Label(self.next_id("label"), label)
            label.project_id = project.id
            if any(existing.name == label.name for existing in project.labels):
                raise FakeCvatError(f"label {label.name!r} already exists in {project.name!r}")
            project.labels.append(label)
            return label

    def add_task(
        self,
        project: Project,
        name: str,
        frames: Sequence[Frame],
        *,
        subset: str = "",
        segment_size: int = 0,
        completed: bool = False,
        owner: User | None = None,
        data_ready: bool = True,
    ) -> Task:
        """A task with its jobs: one job, or one per ``segment_size`` frames; each job
        created sends ``create:job``, as CVAT's ``post_save`` of a new job does.

        ``completed=True`` puts every job in stage acceptance, state completed, so that the
        task status is ``completed``. ``data_ready=False``: the task's frames are still being
        prepared (size 0, data endpoints refuse) until :meth:`finish_data`.
        """
        if not frames:
            raise FakeCvatError("a task needs at least one frame")
        with self.lock:
            owner = owner or self._default_owner()
            now = self.now()
            task = Task(
                id=self.next_id("task"),
                name=name,
                project_id=project.id,
                owner_id=owner.id,
                created_date=now,
                updated_date=now,
                frames=list(frames),
                subset=subset,
                segment_size=segment_size,
                data_ready=data_ready,
            )
            step = segment_size or len(frames)
            for start in range(0, len(frames), step):
                stop = min(start + step, len(frames)) - 1
                task.jobs.append(Job(self.next_id("job"), task.id, start, stop, now, now))
            if completed:
                for job in task.jobs:
                    job.stage, job.state = "acceptance", "completed"
            self.tasks[task.id] = task
            for job in task.jobs:
                self._job_saved(job, "create:job")
            return task

    def finish_data(self, task: Task) -> None:
        """The task's chunks are written: its frames can be read."""
        with self.lock:
            task.data_ready = True
            task.updated_date = self.now()

    def set_honeypots(self, task: Task, honeypots: dict[int, int]) -> None:
        """A validation layout (GT pool): ``honeypots`` maps task frames that are honeypots to
        the validation-pool frames they show."""
        with self.lock:
            for frame in [*honeypots, *honeypots.values()]:
                task.job_of(frame)
            task.honeypots = dict(honeypots)

    def add_shape(
        self,
        task: Task,
        frame: int,
        label: str | int,
        type: str,
        points: Sequence[float],
        **fields: Any,
    ) -> Shape:
        """Add a shape without touching any date (building the world, not editing it)."""
        with self.lock:
            shape = self._make_shape(task, frame, label, type, points, **fields)
            task.shapes.append(shape)
            return shape

    # --- editing, as annotators do -------------------------------------------------------

    def edit_shapes(
        self,
        task: Task,
        *,
        add: Iterable[dict[str, Any]] = (),
        remove: Iterable[int] = (),
        update: Iterable[dict[str, Any]] = (),
    ) -> None:
        """Change a task's shapes as saving in CVAT does, moving the dates of the jobs whose
        frames changed, of the task and of the project.

        ``add`` and ``update`` take the keyword arguments of :meth:`add_shape` (``update``
        also ``id``); ``remove`` takes shape ids.
        """
        with self.lock:
            frames: set[int] = set()
            removed = set(remove)
            for shape in task.shapes:
                if shape.id in removed:
                    frames.add(shape.frame)
            task.shapes = [s for s in task.shapes if s.id not in removed]
            for spec in update:
                spec = dict(spec)
                shape = self.shape(task, spec.pop("id"))
                frames.add(shape.frame)
                for key, value in spec.items():
                    if key == "label":
                        value, key = self.projects[task.project_id].label(value).id, "label_id"
                    setattr(shape, key, list(map(float, value)) if key == "points" else value)
                frames.add(shape.frame)
            for spec in add:
                shape = self._make_shape(task, **spec)
                task.shapes.append(shape)
                frames.add(shape.frame)
            self.touch_annotations(task, {task.job_of(f).id for f in frames})

    def touch_annotations(self, task: Task, job_ids: Iterable[int] | None = None) -> None:
        """Record an annotation save: bump the jobs' versions and move job, task and project
        dates (all jobs of the task when ``job_ids`` is None)."""
        with self.lock:
            now = self.now()
            wanted = None if job_ids is None else set(job_ids)
            saved = []
            for job in task.jobs:
                if wanted is None or job.id in wanted:
                    job.version += 1
                    job.updated_date = now
                    saved.append(job)
            task.updated_date = now
            if task.project_id is not None:
                self.projects[task.project_id].updated_date = now
            for job in saved:
                self._job_saved(job)

    def set_job(
        self,
        job: Job,
        *,
        stage: str | None = None,
        state: str | None = None,
        assignee: User | str | None = "unchanged",
    ) -> None:
        """Change a job's stage/state/assignee as its PATCH does: a new stage without a state
        resets the state to "new" (``JobWriteSerializer.update``)."""
        with self.lock:
            if stage is not None and stage not in JOB_STAGES:
                raise FakeCvatError(f"stage must be one of {', '.join(JOB_STAGES)}, not {stage!r}")
            if state is not None and state not in JOB_STATES:
                raise FakeCvatError(f"state must be one of {', '.join(JOB_STATES)}, not {state!r}")
            task = self.tasks[job.task_id]
            status_before = task.status
            before = {"stage": job.stage, "state": job.state, "assignee": job.assignee_id}
            if state is None and stage is not None and stage != job.stage:
                state = "new"
            job.stage = stage if stage is not None else job.stage
            job.state = state if state is not None else job.state
            if assignee != "unchanged":
                job.assignee_id = None if assignee is None else assignee.id
            now = self.now()
            job.updated_date = now
            if task.status != status_before:
                task.updated_date = now
            after = {"stage": job.stage, "state": job.state, "assignee": job.assignee_id}
            self._job_saved(job, "update:job", {k: v for k, v in before.items() if after[k] != v})

    def annotator_saves(self, job: Job, add: Iterable[dict[str, Any]] = ()) -> None:
        """A person saves annotations in cvat-ui: the annotations are saved, then a "new"
        job is moved to "in progress" by a second request (cvat-ui ``saveAnnotationsAsync``,
        then ``updateCurrentJobAsync``); a validation or acceptance job the same way."""
        with self.lock:
            task = self.tasks[job.task_id]
            self.edit_shapes(task, add=[{"source": "manual", **spec} for spec in add])
            if job.state == "new":
                self.set_job(job, state="in progress")

    def complete_task(self, task: Task) -> None:
        """Accept every job (stage acceptance, state completed): the task becomes completed."""
        with self.lock:
            for job in task.jobs:
                self.set_job(job, stage="acceptance", state="completed")

    def reopen_task(self, task: Task) -> None:
        """Send every job back to annotation, state in progress."""
        with self.lock:
            for job in task.jobs:
                self.set_job(job, stage="annotation", state="in progress")

    # --- webhooks and faults --------------------------------------------------------------

    def add_webhook(
        self, project: Project, target_url: str, secret: str = "", events=("update:job",)
    ) -> Any:
        """A project webhook; the running server delivers its events (see ``.webhooks``)."""
        from .webhooks import Webhook

        with self.lock:
            webhook = Webhook(
                self.next_id("webhook"), project.id, target_url, secret, tuple(events)
            )
            self.webhooks.append(webhook)
            return webhook

    def add_fault(self, method: str, path: str, **kwargs: Any) -> Fault:
        """Make matching requests fail or slow (see :class:`Fault`)."""
        with self.lock:
            fault = Fault(method.upper(), path, **kwargs)
            self.faults.append(fault)
            return fault

    def take_fault(self, method: str, path: str) -> Fault | None:
        """The first fault matching a request, used up by one."""
        import re

        with self.lock:
            for fault in self.faults:
                if fault.times > 0 and fault.method == method and re.search(fault.path, path):
                    if fault.skip > 0:
                        fault.skip -= 1
                        continue
                    fault.times -= 1
                    fault.hits += 1
                    return fault
            return None

    def _job_saved(
        self, job: Job, event: str = "update:job", before: dict[str, Any] | None = None
    ) -> None:
        for listener in list(self.job_listeners):
            listener(job, event, before or {})

    # --- lookups --------------------------------------------------------------------------

    def shape(self, task: Task, shape_id: int) -> Shape:
        for shape in task.shapes:
            if shape.id == shape_id:
                return shape
        raise FakeCvatError(f"task {task.id} has no shape {shape_id}")

    def job(self, job_id: int) -> Job | None:
        for task in self.tasks.values():
            for job in task.jobs:
                if job.id == job_id:
                    return job
        return None

    def organization_of(self, task: Task) -> Organization | None:
        project = self.projects.get(task.project_id) if task.project_id else None
        if project is None or project.organization_id is None:
            return None
        return self.organizations[project.organization_id]

    def labels_of(self, task: Task) -> list[Label]:
        return self.projects[task.project_id].labels if task.project_id is not None else []

    def user_by_login(self, username: str | None, email: str | None) -> User | None:
        for user in self.users.values():
            if (username and user.username == username) or (email and user.email == email):
                return user
        return None

    def requests_to(self, path_prefix: str, method: str = "GET") -> list[RequestRecord]:
        """Requests answered so far whose path starts with ``path_prefix``."""
        with self.lock:
            return [
                r for r in self.requests if r.method == method and r.path.startswith(path_prefix)
            ]

    # --- internals ------------------------------------------------------------------------

    def _default_owner(self) -> User:
        if not self.users:
            return self.add_user("admin", "admin")
        return self.users[min(self.users)]

    def _make_shape(
        self,
        task: Task,
        frame: int,
        label: str | int,
        type: str,
        points: Sequence[float],
        **fields: Any,
    ) -> Shape:
        if type not in SHAPE_TYPES:
            raise FakeCvatError(f"shape type must be one of {', '.join(SHAPE_TYPES)}, not {type!r}")
        if not 0 <= frame < task.size:
            raise FakeCvatError(f"frame {frame} is not in task {task.id} (0..{task.size - 1})")
        if task.project_id is None:
            raise FakeCvatError(f"task {task.id} has no project, hence no labels")
        label_id = self.projects[task.project_id].label(label).id
        fields.setdefault("id", self.next_id("shape"))
        return Shape(
            type=type,
            frame=frame,
            label_id=label_id,
            points=[float(p) for p in points],
            **fields,
        )


# --- frames and masks ---------------------------------------------------------------------


def make_frame(
    name: str,
    width: int,
    height: int,
    color: tuple[int, int, int] = (30, 120, 160),
    exif_orientation: int = 1,
) -> Frame:
    """A real JPEG frame (a colour gradient, so each image differs) shown at the given size.

    With an ``exif_orientation`` of 5 to 8 the file is stored sideways (``height x width``
    pixels) with that EXIF tag, as cameras store portrait photos; the frame's size is the
    shown one, as CVAT reports it.
    """
    x = np.linspace(0, 1, width, dtype=np.float32)[None, :, None]
    y = np.linspace(0, 1, height, dtype=np.float32)[:, None, None]
    base = np.asarray(color, dtype=np.float32)[None, None, :]
    pixels = np.clip(base * (0.5 + 0.5 * x) + 60 * y, 0, 255).astype(np.uint8)
    exif = Image.Exif()
    if exif_orientation != 1:
        exif[0x0112] = exif_orientation
    if exif_orientation in (5, 6, 7, 8):
        pixels = np.ascontiguousarray(pixels.swapaxes(0, 1))
    buffer = io.BytesIO()
    Image.fromarray(pixels, "RGB").save(buffer, format="JPEG", quality=90, exif=exif)
    return Frame(name, width, height, buffer.getvalue())


def encode_mask(bitmap: np.ndarray) -> list[float]:
    """CVAT's mask ``points``: the RLE of the bitmap inside its tight box, row by row,
    starting with a run of zeros (possibly empty), then ``[left, top, right, bottom]``
    (inclusive pixel indices).

    Args:
        bitmap: ``(H, W)`` bool array of the whole image; at least one pixel set.
    """
    bitmap = np.asarray(bitmap, dtype=bool)
    rows, cols = np.nonzero(bitmap)
    if rows.size == 0:
        raise FakeCvatError("a mask needs at least one pixel")
    top, bottom, left, right = rows.min(), rows.max(), cols.min(), cols.max()
    flat = bitmap[top : bottom + 1, left : right + 1].ravel()
    changes = np.flatnonzero(np.diff(flat.astype(np.int8))) + 1
    bounds = np.concatenate([[0], changes, [flat.size]])
    runs = np.diff(bounds).tolist()
    if flat[0]:
        runs.insert(0, 0)
    return [float(r) for r in runs] + [float(left), float(top), float(right), float(bottom)]
