"""Pull a CVAT project into a persistent FiftyOne dataset (``coralseg pull-cvat``).

One sample per CVAT frame, its image downloaded once in original quality to
``MEDIA_DIR/task_<id>/<frame name>``, and its colonies in the ``gt_polylines`` field
(``fo.Polylines``):

* polygons, polylines and masks become ``fo.Polyline`` objects as
  :mod:`coral_core.formats.cvat_polylines` converts them (normalised points, mask parts with holes);
  ``label`` is the CVAT label name;
* each polyline keeps ``cvat_shape_id``, ``z_order``, ``occluded`` and ``cvat_shape_type``
  (``polygon``, ``polyline`` or ``mask``); all parts of one mask share its shape id;
* ``points`` shapes are point labels (docs/points.md): they go to ``gt_points``
  (``fo.Keypoints``, one keypoint per shape, normalised, keeping ``cvat_shape_id``);
* rectangles are not colonies: they are skipped and counted, as are ellipses, cuboids,
  skeletons and tracks.

Samples carry ``cvat_task_id``, ``cvat_task_name``, ``cvat_subset`` and ``cvat_frame``, and
the tag ``train``, ``val`` or ``test`` when the task subset names a split
(:func:`coral_core.training.splits.normalize_split`). Frames CVAT marks deleted are left out.

By default only completed tasks are pulled: task status ``completed`` (every job accepted)
or every annotation job in state ``completed``. Pulls are incremental: ``dataset.info["cvat"]``
records each imported task's ``updated_date`` (CVAT moves it whenever annotations are
saved) and the project's labels; a task not seen before or changed since is imported, its
old samples replaced; a label rename re-imports every task. ``force=True`` re-imports all.
An image file already in the media folder with the frame's size is never downloaded again.

Credentials come from FiftyOne's CVAT variables (``FIFTYONE_CVAT_URL``,
``FIFTYONE_CVAT_USERNAME``, ``FIFTYONE_CVAT_PASSWORD``, ``FIFTYONE_CVAT_EMAIL``) or a personal
access token in ``CVAT_ACCESS_TOKEN``, cvat-sdk's name for it (FiftyOne's integration has no
token variable); explicit arguments override them.

This is an adapter: it imports ``cvat_sdk`` and, inside functions, ``fiftyone`` (which must
only be imported once its database settings are in place); ``coral_core`` never imports it.
"""

from __future__ import annotations

import mimetypes
import os
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

import numpy as np
import urllib3
from cvat_sdk.api_client import exceptions as api_exceptions
from cvat_sdk.core.client import AccessTokenCredentials, Client
from cvat_sdk.core.exceptions import InvalidHostException

from coral_core.atomic import atomic_path
from coral_core.errors import CoralsegError
from coral_core.formats.cvat_polylines import DEFAULT_MASK_TOLERANCE, shape_to_polylines
from coral_core.formats.raster_io import photo_sizes
from coral_core.training.splits import normalize_split
from fiftyone_plugin.importing import POINTS_FIELD

if TYPE_CHECKING:
    import fiftyone as fo
    from cvat_sdk.core.proxies.projects import Project
    from cvat_sdk.core.proxies.tasks import Task

ENV_URL = "FIFTYONE_CVAT_URL"
ENV_USERNAME = "FIFTYONE_CVAT_USERNAME"
ENV_PASSWORD = "FIFTYONE_CVAT_PASSWORD"
ENV_EMAIL = "FIFTYONE_CVAT_EMAIL"
ENV_TOKEN = "CVAT_ACCESS_TOKEN"

POLYLINES_FIELD = "gt_polylines"
INFO_KEY = "cvat"
COLONY_SHAPES = ("polygon", "polyline", "mask")
CONNECT_TIMEOUT = 30.0


# --- credentials ----------------------------------------------------------------------------


@dataclass(frozen=True)
class CvatCredentials:
    """Where CVAT is and how to log in: a personal access token, or a user and password."""

    url: str
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    token: str | None = field(default=None, repr=False)

    @property
    def who(self) -> str:
        return "the access token" if self.token else f"user {self.username!r}"


def resolve_credentials(
    url: str | None = None,
    username: str | None = None,
    password: str | None = None,
    token: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> CvatCredentials:
    """Credentials from the arguments, else from the environment.

    Arguments win over the environment; at the same level a token wins over a password.
    ``FIFTYONE_CVAT_EMAIL`` stands in for the user name when that is not set.

    Raises:
        CoralsegError: no URL, no credentials, or a user without a password.
    """
    env = os.environ if environ is None else environ
    url = url or env.get(ENV_URL)
    if not url:
        raise CoralsegError(f"no CVAT server given: set {ENV_URL} or pass --url")
    if token:
        return CvatCredentials(url, token=token)
    if username or password:
        user = username or env.get(ENV_USERNAME) or env.get(ENV_EMAIL)
        secret = password or env.get(ENV_PASSWORD)
    elif env.get(ENV_TOKEN):
        return CvatCredentials(url, token=env[ENV_TOKEN])
    else:
        user = env.get(ENV_USERNAME) or env.get(ENV_EMAIL)
        secret = env.get(ENV_PASSWORD)
    if not user and not secret:
        raise CoralsegError(
            f"no CVAT credentials: set {ENV_USERNAME} and {ENV_PASSWORD} (or {ENV_TOKEN}), "
            "or pass --username and --password (or --token)"
        )
    if not secret:
        raise CoralsegError(
            f"no password for CVAT user {user!r}: set {ENV_PASSWORD} or pass --password"
        )
    if not user:
        raise CoralsegError(
            f"a CVAT password but no user name: set {ENV_USERNAME} or pass --username"
        )
    return CvatCredentials(url, username=user, password=secret)


def connect(credentials: CvatCredentials, timeout: float = CONNECT_TIMEOUT) -> Client:
    """A logged-in cvat-sdk client (close it, or use it as a context manager).

    Raises:
        CoralsegError: the server cannot be reached, is no CVAT server, or refuses the
            credentials.
    """
    try:
        client = Client(credentials.url, check_server_version=False)
    except InvalidHostException as err:
        raise CoralsegError(f"{credentials.url!r} is not a CVAT server URL: {err}") from None
    try:
        _probe(client, credentials.url, timeout)
        _login(client, credentials, timeout)
    except BaseException:
        client.close()
        raise
    return client


def _probe(client: Client, url: str, timeout: float) -> None:
    """Ask ``/api/server/about`` (public in CVAT), to tell "unreachable" from "refused"."""
    try:
        client.api_client.server_api.retrieve_about(_request_timeout=timeout)
    except (urllib3.exceptions.HTTPError, OSError) as err:
        raise CoralsegError(
            f"cannot reach the CVAT server at {url} ({_reason(err)}); check {ENV_URL} or --url "
            "and that the server is running"
        ) from None
    except api_exceptions.ApiException as err:
        if err.status == 0:  # cvat-sdk's code for TLS and similar transport failures
            raise CoralsegError(f"cannot reach the CVAT server at {url} ({err.reason})") from None
        raise CoralsegError(
            f"{url} does not answer like a CVAT server (GET /api/server/about gave HTTP "
            f"{err.status}); check {ENV_URL} or --url"
        ) from None


def _login(client: Client, credentials: CvatCredentials, timeout: float) -> None:
    url = credentials.url
    try:
        if credentials.token:
            client.login(AccessTokenCredentials(credentials.token))
        else:
            client.login((credentials.username, credentials.password))
        # A token is only checked when used: ask who we are.
        client.api_client.users_api.retrieve_self(_request_timeout=timeout)
    except api_exceptions.ApiException as err:
        if err.status in (400, 401, 403):  # CVAT answers a failed password login with 400
            hint = (
                f"check {ENV_TOKEN} or --token"
                if credentials.token
                else f"check {ENV_USERNAME}/{ENV_PASSWORD} or --username/--password"
            )
            raise CoralsegError(
                f"the CVAT server at {url} refused {credentials.who} (HTTP {err.status}): "
                f"wrong credentials; {hint}"
            ) from None
        raise CoralsegError(f"logging in to CVAT at {url} failed: HTTP {err.status}") from None
    except (urllib3.exceptions.HTTPError, OSError) as err:
        raise CoralsegError(
            f"lost the CVAT server at {url} while logging in ({_reason(err)})"
        ) from None
    except AssertionError:  # cvat-sdk asserts that a login sets the session cookies
        raise CoralsegError(
            f"the CVAT server at {url} accepted the login but set no session cookie; use a "
            f"personal access token ({ENV_TOKEN} or --token) instead"
        ) from None


def _reason(err: BaseException) -> str:
    """The useful end of a urllib3 error: "Connection refused", "Failed to resolve ..."."""
    return str(getattr(err, "reason", None) or err).split(": ", 1)[-1]


# --- small pure helpers -----------------------------------------------------------------------


def split_tag(subset: str | None) -> str | None:
    """The sample tag for a CVAT task subset: ``train``, ``val``, ``test`` or None."""
    return normalize_split(subset)


def safe_relative_path(name: str, fallback: str) -> PurePosixPath:
    """A CVAT frame name as a relative path that stays inside the media folder
    (``fallback`` when the name has no usable part)."""
    parts = [
        p for p in PurePosixPath(name.replace("\\", "/")).parts if p not in ("", ".", "..", "/")
    ]
    return PurePosixPath(*parts) if parts else PurePosixPath(fallback)


def is_completed(status: str | None, job_states: Iterable[str]) -> bool:
    """CVAT task status ``completed``, or every annotation job's state ``completed``."""
    states = list(job_states)
    return status == "completed" or (bool(states) and all(s == "completed" for s in states))


# --- the report -----------------------------------------------------------------------------


@dataclass
class PullReport:
    """What a pull did; :meth:`summary` prints it for people."""

    project: str
    project_id: int
    dataset: str
    media_dir: Path
    imported: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    not_completed: list[str] = field(default_factory=list)
    gone: list[str] = field(default_factory=list)
    samples_added: int = 0
    samples_replaced: int = 0
    samples_total: int = 0
    images_downloaded: int = 0
    images_reused: int = 0
    polylines: Counter = field(default_factory=Counter)  # label -> count
    points: Counter = field(default_factory=Counter)  # label -> point labels
    skipped_shapes: Counter = field(default_factory=Counter)  # reason -> count
    unsplit_subsets: Counter = field(default_factory=Counter)  # subset -> samples

    @property
    def skipped_rectangles(self) -> int:
        return self.skipped_shapes["rectangle"]

    def summary(self) -> str:
        replaced = (
            f", {self.samples_replaced} of them replacing older ones"
            if self.samples_replaced
            else ""
        )
        lines = [
            f"Pulled CVAT project {self.project!r} (id {self.project_id}) into FiftyOne "
            f"dataset {self.dataset!r}; images in {self.media_dir}",
            f"  tasks: {len(self.imported)} imported, {len(self.unchanged)} unchanged, "
            f"{len(self.not_completed)} not completed (skipped; --all-tasks includes them)",
            f"  samples: {self.samples_added} imported{replaced}; {self.samples_total} in the "
            f"dataset",
            f"  images: {self.images_downloaded} downloaded, {self.images_reused} already there",
            "  polylines imported: " + (_counts(self.polylines) or "none"),
        ]
        if self.points:
            lines.append("  point labels imported: " + _counts(self.points))
        if self.skipped_shapes:
            lines.append(
                "  skipped shapes: "
                + _counts(self.skipped_shapes)
                + (" (rectangles are not colonies)" if self.skipped_rectangles else "")
            )
        if self.unsplit_subsets:
            lines.append(
                "  samples without a train/val/test tag, by subset: "
                + _counts(Counter({s or "(no subset)": n for s, n in self.unsplit_subsets.items()}))
            )
        if self.gone:
            lines.append(
                f"  tasks no longer in CVAT (their samples are kept): {', '.join(self.gone)}"
            )
        return "\n".join(lines)


def _counts(counter: Counter) -> str:
    return ", ".join(f"{key} {count}" for key, count in sorted(counter.items()))


# --- the pull -------------------------------------------------------------------------------


def default_media_dir(dataset_name: str) -> Path:
    """``<FiftyOne's default dataset dir>/coralseg/<dataset name>``."""
    import fiftyone as fo

    return (
        Path(fo.config.default_dataset_dir).expanduser() / "coralseg" / _folder_name(dataset_name)
    )


def _folder_name(name: str) -> str:
    cleaned = "".join(c if c.isalnum() or c in "-_." else "_" for c in name).strip(".")
    return cleaned or "dataset"


def find_project(client: Client, spec: str) -> Project:
    """The project named ``spec`` (exactly, else ignoring case), or with id ``spec``.

    Raises:
        CoralsegError: no such project (the message lists those there are), or several.
    """
    projects = client.projects.list()
    matches = [p for p in projects if p.name == spec]
    if not matches:
        matches = [p for p in projects if p.name.casefold() == spec.strip().casefold()]
    if not matches and spec.strip().isdigit():
        matches = [p for p in projects if p.id == int(spec)]
    if len(matches) == 1:
        return matches[0]
    url = client.api_map.host
    if matches:
        ids = ", ".join(str(p.id) for p in matches)
        raise CoralsegError(
            f"several CVAT projects at {url} are named {spec!r} (ids {ids}); pass the id"
        )
    there = ", ".join(f"{p.name!r} (id {p.id})" for p in sorted(projects, key=lambda p: p.id))
    raise CoralsegError(
        f"no CVAT project {spec!r} at {url}; "
        + (f"projects there: {there}" if there else "the server shows this user no projects")
    )


def pull_cvat_project(
    credentials: CvatCredentials,
    project: str,
    *,
    dataset_name: str | None = None,
    media_dir: str | Path | None = None,
    all_tasks: bool = False,
    force: bool = False,
    tolerance: float = DEFAULT_MASK_TOLERANCE,
    progress: bool | None = None,
) -> PullReport:
    """Connect, find the project and pull it (see the module docstring).

    Args:
        credentials: from :func:`resolve_credentials`.
        project: CVAT project name or id.
        dataset_name: FiftyOne dataset (default: the project's name); created persistent.
        media_dir: image folder (default: :func:`default_media_dir`).
        all_tasks: also pull tasks that are not completed.
        force: re-import every task, changed or not.
        tolerance: mask outline simplification in pixels.
        progress: show a progress bar; None shows it on terminals only.
    """
    client = connect(credentials)
    url = credentials.url
    with client:
        try:
            cvat_project = find_project(client, project)
            name = dataset_name or cvat_project.name
            media = Path(media_dir).expanduser() if media_dir else default_media_dir(name)
            return pull_project(
                client,
                cvat_project,
                dataset_name=name,
                media_dir=media,
                all_tasks=all_tasks,
                force=force,
                tolerance=tolerance,
                progress=progress,
            )
        except api_exceptions.ApiException as err:
            raise CoralsegError(
                f"the CVAT server at {url} answered HTTP {err.status} ({err.reason}) during "
                "the pull; the tasks imported so far are kept, run the command again to go on"
            ) from None
        except (urllib3.exceptions.HTTPError, ConnectionError) as err:
            raise CoralsegError(
                f"lost the connection to the CVAT server at {url} ({_reason(err)}); the tasks "
                "imported so far are kept, run the command again to go on"
            ) from None


def pull_project(
    client: Client,
    project: Project,
    *,
    dataset_name: str,
    media_dir: Path,
    all_tasks: bool = False,
    force: bool = False,
    tolerance: float = DEFAULT_MASK_TOLERANCE,
    progress: bool | None = None,
) -> PullReport:
    """Pull ``project`` with an open client into the dataset ``dataset_name``."""
    from tqdm import tqdm

    dataset = _open_dataset(dataset_name, project)
    info = dict(dataset.info.get(INFO_KEY) or {})
    recorded: dict[str, Any] = dict(info.get("tasks") or {})
    labels = {label.id: label.name for label in project.get_labels()}
    label_record = {str(k): v for k, v in sorted(labels.items())}
    if "labels" in info and info["labels"] != label_record:
        # A renamed label changes every task's polylines: forget the stamps, so that an
        # interrupted pull still re-imports the rest next time.
        recorded = {key: {**entry, "updated_date": None} for key, entry in recorded.items()}
    report = PullReport(project.name, project.id, dataset_name, media_dir)

    todo: list[tuple[Task, str]] = []
    tasks = sorted(project.get_tasks(), key=lambda t: t.id)
    for task in tasks:
        stamp = _stamp(task.updated_date)
        if not all_tasks and not _task_completed(task):
            report.not_completed.append(task.name)
        elif not force and _recorded_stamp(recorded, task.id) == stamp:
            report.unchanged.append(task.name)
        else:
            todo.append((task, stamp))
    current_ids = {str(t.id) for t in tasks}
    report.gone = [
        entry.get("name", key) for key, entry in recorded.items() if key not in current_ids
    ]

    info.update(
        url=client.api_map.host,
        project_id=project.id,
        project_name=project.name,
        labels=label_record,
        tasks=recorded,
    )
    with tqdm(
        total=sum(t.size or 0 for t, _ in todo),
        unit="frame",
        desc=f"pulling {project.name}",
        disable=(None if progress is None else not progress) if todo else True,
    ) as bar:
        for task, stamp in todo:
            samples = _task_samples(task, labels, media_dir, tolerance, report, bar.update)
            replaced = _replace_task_samples(dataset, task.id, samples)
            report.imported.append(task.name)
            report.samples_added += len(samples)
            report.samples_replaced += min(replaced, len(samples))
            recorded[str(task.id)] = {
                "name": task.name,
                "updated_date": stamp,
                "subset": task.subset,
                "samples": len(samples),
            }
            dataset.info[INFO_KEY] = info
            dataset.save()
    dataset.info[INFO_KEY] = info
    dataset.save()
    report.samples_total = len(dataset)
    return report


def _stamp(value: datetime | str) -> str:
    if isinstance(value, str):
        return value
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat()


def _recorded_stamp(recorded: Mapping[str, Any], task_id: int) -> str | None:
    entry = recorded.get(str(task_id))
    return entry.get("updated_date") if isinstance(entry, Mapping) else None


def _task_completed(task: Task) -> bool:
    if str(task.status) == "completed":
        return True
    return is_completed(
        None, [str(job.state) for job in task.get_jobs() if str(job.type) == "annotation"]
    )


def _open_dataset(name: str, project: Project) -> fo.Dataset:
    import fiftyone as fo

    if not fo.dataset_exists(name):
        return fo.Dataset(name, persistent=True)
    dataset = fo.load_dataset(name)
    info = dataset.info.get(INFO_KEY)
    if isinstance(info, Mapping) and info.get("project_id") not in (None, project.id):
        raise CoralsegError(
            f"FiftyOne dataset {name!r} holds CVAT project {info.get('project_name')!r} "
            f"(id {info.get('project_id')}), not {project.name!r} (id {project.id}); "
            "choose another dataset name with --dataset"
        )
    if not isinstance(info, Mapping) and len(dataset):
        raise CoralsegError(
            f"FiftyOne dataset {name!r} already exists and was not made by pull-cvat; "
            "choose another dataset name with --dataset"
        )
    dataset.persistent = True
    return dataset


def _replace_task_samples(dataset: fo.Dataset, task_id: int, samples: list[fo.Sample]) -> int:
    """Swap a task's samples for new ones; returns how many old ones were removed.

    New samples are added before the old ones go, so that an interruption leaves the old
    annotations (and the task's old stamp, hence a re-import next time) rather than none.
    """
    from fiftyone import ViewField as F

    old_ids = dataset.match(F("cvat_task_id") == task_id).values("id")
    if samples:
        dataset.add_samples(samples, progress=False)
    if old_ids:
        dataset.delete_samples(old_ids)
    return len(old_ids)


def _task_samples(
    task: Task,
    labels: Mapping[int, str],
    media_dir: Path,
    tolerance: float,
    report: PullReport,
    advance: Callable[[int], Any],
) -> list[fo.Sample]:
    """The samples of a task's frames (CVAT's deleted frames left out), images downloaded."""
    import fiftyone as fo

    meta = task.get_meta()
    frames = meta.frames or []
    deleted = set(meta.deleted_frames or [])
    annotations = task.get_annotations()
    keypoints: dict[int, list[fo.Keypoint]] = {}
    polylines = _polylines_by_frame(
        annotations, frames, deleted, labels, tolerance, report, keypoints
    )
    tag = split_tag(task.subset)
    samples = []
    for number, frame in enumerate(frames):
        advance(1)
        if number in deleted:
            continue
        relative = safe_relative_path(frame.name, fallback=f"frame_{number:06d}.jpg")
        path = media_dir / f"task_{task.id}" / relative
        _ensure_image(task, number, path, frame.width, frame.height, report)
        samples.append(
            fo.Sample(
                filepath=str(path),
                tags=[tag] if tag else [],
                metadata=fo.ImageMetadata(
                    width=frame.width,
                    height=frame.height,
                    size_bytes=path.stat().st_size,
                    mime_type=mimetypes.guess_type(path.name)[0],
                ),
                cvat_task_id=task.id,
                cvat_task_name=task.name,
                cvat_subset=task.subset,
                cvat_frame=number,
                **{POLYLINES_FIELD: fo.Polylines(polylines=polylines.get(number, []))},
                **(
                    {POINTS_FIELD: fo.Keypoints(keypoints=keypoints[number])}
                    if number in keypoints
                    else {}
                ),
            )
        )
        if tag is None:
            report.unsplit_subsets[task.subset] += 1
    return samples


def _polylines_by_frame(
    annotations: Any,
    frames: Sequence[Any],
    deleted: set[int],
    labels: Mapping[int, str],
    tolerance: float,
    report: PullReport,
    keypoints: dict[int, list[fo.Keypoint]],
) -> dict[int, list[fo.Polyline]]:
    """A task's colony shapes as ``fo.Polyline`` objects, by frame; its ``points`` shapes
    into ``keypoints`` by frame; the rest counted."""
    import fiftyone as fo

    by_frame: dict[int, list[fo.Polyline]] = {}
    for shape in annotations.shapes:
        shape_type = str(shape.type)
        if shape_type == "points" and 0 <= shape.frame < len(frames):
            if shape.frame not in deleted:
                keypoint = _keypoint(shape, labels, frames[shape.frame], report)
                keypoints.setdefault(shape.frame, []).append(keypoint)
            continue
        if shape_type not in COLONY_SHAPES:
            report.skipped_shapes[shape_type] += 1
            continue
        if shape.frame in deleted or not 0 <= shape.frame < len(frames):
            continue
        frame = frames[shape.frame]
        label = labels.get(shape.label_id, f"label {shape.label_id}")
        try:
            specs = shape_to_polylines(shape, label, frame.width, frame.height, tolerance)
        except ValueError:
            report.skipped_shapes[f"invalid {shape_type}"] += 1
            continue
        for spec in specs:
            report.polylines[spec.label] += 1
            by_frame.setdefault(shape.frame, []).append(
                fo.Polyline(
                    label=spec.label,
                    points=spec.points,
                    closed=spec.closed,
                    filled=spec.filled,
                    **spec.attributes,
                )
            )
    if annotations.tracks:
        report.skipped_shapes["track"] += len(annotations.tracks)
    return by_frame


def _keypoint(shape: Any, labels: Mapping[int, str], frame: Any, report: PullReport):
    """A CVAT ``points`` shape (flat ``x1, y1, x2, y2, ...`` in pixels) as an ``fo.Keypoint``."""
    import fiftyone as fo

    label = labels.get(shape.label_id, f"label {shape.label_id}")
    xy = np.asarray(shape.points, dtype=np.float64).reshape(-1, 2)
    points = [[x / frame.width, y / frame.height] for x, y in xy.tolist()]
    report.points[label] += len(points)
    return fo.Keypoint(label=label, points=points, cvat_shape_id=shape.id)


def _ensure_image(
    task: Task, number: int, path: Path, width: int, height: int, report: PullReport
) -> None:
    """Download frame ``number`` in original quality unless ``path`` already holds an image
    of that size, as shown or as stored: CVAT reports a frame's size after EXIF orientation,
    while the original file keeps its stored size and orientation tag."""
    sizes = photo_sizes(path) if path.is_file() else None
    if sizes is not None and (width, height) in sizes:
        report.images_reused += 1
        return
    data = task.get_frame(number, quality="original").read()
    with atomic_path(path) as partial:
        partial.write_bytes(data)
    report.images_downloaded += 1
