"""The fake CVAT server (tests/fake_cvat) against the real cvat-sdk: every endpoint the pull and
the bridge use is deserialized and type-checked by the SDK's generated models."""

from __future__ import annotations

import io
import socket
import threading
import zipfile
from collections.abc import Iterator

import numpy as np
import pytest
from cvat_sdk import make_client
from cvat_sdk.api_client import ApiClient, Configuration, exceptions, models
from cvat_sdk.core.filters import F
from cvat_sdk.core.proxies.annotations import AnnotationUpdateAction
from cvat_sdk.masks import decode_mask
from PIL import Image

from tests.fake_cvat import (
    CVAT_VERSION,
    FakeCvatServer,
    FakeCvatState,
    encode_mask,
    make_frame,
    running_fake_cvat,
)

USER, PASSWORD = "alice", "secret"


@pytest.fixture
def world() -> FakeCvatState:
    """One project with two labels, a two-job task with a polygon, a polyline and a mask."""
    state = FakeCvatState()
    state.add_user(USER, PASSWORD, email="alice@example.org")
    project = state.add_project("reef", labels=["Acropora", "Porites"])
    frames = [make_frame(f"q{i}.jpg", 40 + i, 30) for i in range(3)]
    task = state.add_task(project, "quadrats", frames, subset="Train", segment_size=2)
    state.add_shape(task, 0, "Acropora", "polygon", [1, 1, 20, 2, 10, 15], z_order=2)
    state.add_shape(task, 1, "Porites", "polyline", [0, 0, 5, 5], occluded=True)
    bitmap = np.zeros((30, 42), dtype=bool)
    bitmap[3:9, 4:12] = True
    state.add_shape(task, 2, "Porites", "mask", encode_mask(bitmap))
    return state


@pytest.fixture
def server(world: FakeCvatState) -> Iterator[FakeCvatServer]:
    with running_fake_cvat(world) as running:
        yield running


@pytest.fixture
def client(server: FakeCvatServer):
    with make_client(server.url, credentials=(USER, PASSWORD)) as logged_in:
        yield logged_in


def test_about_and_version_match_the_sdk(client) -> None:
    about, _ = client.api_client.server_api.retrieve_about()
    assert about.version == CVAT_VERSION
    assert str(client.get_server_version()) == CVAT_VERSION


def test_project_tasks_jobs_and_labels(client, world: FakeCvatState) -> None:
    project = client.projects.retrieve(1)
    assert project.name == "reef"
    assert project.task_subsets == ["Train"]
    assert [label.name for label in project.get_labels()] == ["Acropora", "Porites"]
    (task,) = project.get_tasks()
    assert (task.name, task.subset, task.size, task.status) == (
        "quadrats",
        "Train",
        3,
        "annotation",
    )
    assert task.project_id == project.id
    jobs = task.get_jobs()
    assert [(j.start_frame, j.stop_frame, j.stage, j.state) for j in jobs] == [
        (0, 1, "annotation", "new"),
        (2, 2, "annotation", "new"),
    ]
    assert [label.name for label in jobs[0].get_labels()] == ["Acropora", "Porites"]
    assert [p.name for p in client.projects.list()] == ["reef"]
    assert client.users.retrieve_current_user().username == USER


def test_frames_meta_and_chunks(client, world: FakeCvatState) -> None:
    task = client.tasks.retrieve(1)
    frames = task.get_frames_info()
    assert [(f.name, f.width, f.height) for f in frames] == [
        ("q0.jpg", 40, 30),
        ("q1.jpg", 41, 30),
        ("q2.jpg", 42, 30),
    ]
    assert task.get_meta().deleted_frames == []
    original = task.get_frame(2, quality="original").read()
    assert original == world.tasks[1].frames[2].data
    assert Image.open(io.BytesIO(original)).size == (42, 30)
    chunk = io.BytesIO()
    task.download_chunk(0, chunk, quality="original")
    assert zipfile.ZipFile(chunk).namelist() == ["000000.jpg", "000001.jpg", "000002.jpg"]
    job = task.get_jobs()[1]
    assert [f.name for f in job.get_frames_info()] == ["q2.jpg"]
    compressed = job.get_frame(2, quality="compressed").read()
    assert compressed != original  # re-encoded at the task's image quality, as CVAT does
    assert Image.open(io.BytesIO(compressed)).size == (42, 30)
    assert Image.open(task.get_preview()).size == (40, 30)


def test_annotations_read_with_sdk_types(client) -> None:
    task = client.tasks.retrieve(1)
    shapes = task.get_annotations().shapes
    assert [str(s.type) for s in shapes] == ["polygon", "polyline", "mask"]
    polygon, polyline, mask = shapes
    assert polygon.points == [1.0, 1.0, 20.0, 2.0, 10.0, 15.0] and polygon.z_order == 2
    assert polyline.occluded is True
    bitmap = decode_mask(mask.points, image_width=42, image_height=30)
    assert bitmap.sum() == 48 and bitmap[3:9, 4:12].all()
    job_shapes = task.get_jobs()[0].get_annotations().shapes
    assert [s.frame for s in job_shapes] == [0, 1]


def test_encode_mask_matches_cvat_sdk() -> None:
    rng = np.random.default_rng(0)
    for _ in range(20):
        bitmap = rng.random((9, 13)) > 0.6
        if bitmap.any():
            decoded = decode_mask(encode_mask(bitmap), image_width=13, image_height=9)
            np.testing.assert_array_equal(decoded, bitmap)


def test_job_annotation_writes_move_dates(client, world: FakeCvatState) -> None:
    task = client.tasks.retrieve(1)
    job = task.get_jobs()[0]
    before = task.updated_date
    job.set_annotations(
        models.LabeledDataRequest(
            shapes=[
                models.LabeledShapeRequest(
                    type="polygon", frame=1, label_id=1, points=[2.0, 2.0, 9.0, 2.0, 5.0, 8.0]
                )
            ]
        )
    )
    after = client.tasks.retrieve(1)
    assert after.updated_date > before
    assert client.projects.retrieve(1).updated_date == after.updated_date
    shapes = after.get_annotations().shapes
    assert sorted((s.frame, str(s.type)) for s in shapes) == [(1, "polygon"), (2, "mask")]
    new_id = next(s.id for s in shapes if s.frame == 1)

    job.update_annotations(
        models.PatchedLabeledDataRequest(
            shapes=[
                models.LabeledShapeRequest(
                    id=new_id,
                    type="polygon",
                    frame=1,
                    label_id=2,
                    points=[1.0, 1.0, 8.0, 1.0, 4.0, 6.0],
                )
            ]
        )
    )
    assert world.shape(world.tasks[1], new_id).label_id == 2
    job.update_annotations(
        models.PatchedLabeledDataRequest(
            shapes=[
                models.LabeledShapeRequest(
                    type="polyline", frame=0, label_id=1, points=[0.0, 0.0, 3.0, 3.0]
                )
            ]
        ),
        action=AnnotationUpdateAction.CREATE,
    )
    job.remove_annotations(ids=[new_id])
    assert sorted(str(s.type) for s in job.get_annotations().shapes) == ["polyline"]
    task.remove_annotations()
    assert client.tasks.retrieve(1).get_annotations().shapes == []


def test_job_state_changes_set_the_task_status(client) -> None:
    task = client.tasks.retrieve(1)
    for job in task.get_jobs():
        job.update(models.PatchedJobWriteRequest(stage="acceptance", state="completed"))
        assert job.state == "completed"
    task = client.tasks.retrieve(1)
    assert task.status == "completed"
    assert task.jobs.completed == 2
    assert [j.id for j in client.jobs.list(task_id=1, state="completed")] == [1, 2]


def test_task_patch_and_state_helpers(client, world: FakeCvatState) -> None:
    task = client.tasks.retrieve(1)
    task.update(models.PatchedTaskWriteRequest(subset="Validation"))
    assert client.tasks.retrieve(1).subset == "Validation"
    stamp = client.tasks.retrieve(1).updated_date
    world.edit_shapes(world.tasks[1], remove=[1])
    assert client.tasks.retrieve(1).updated_date > stamp
    world.complete_task(world.tasks[1])
    assert client.tasks.retrieve(1).status == "completed"


def test_lists_paginate_filter_and_sort(client, world: FakeCvatState) -> None:
    project = world.projects[1]
    for i in range(12):
        world.add_task(project, f"extra-{i:02d}", [make_frame("x.jpg", 8, 8)], subset="Test")
    world.add_task(project, "no-subset", [make_frame("y.jpg", 8, 8)])
    assert len(client.tasks.list()) == 14
    assert len(client.projects.retrieve(1).get_tasks()) == 14
    assert [t.name for t in client.tasks.list(filter=F.subset == "Train")] == ["quadrats"]
    names = [t.name for t in client.tasks.list(subset="Test", sort="-name", page_size=5)]
    assert names == [f"extra-{i:02d}" for i in reversed(range(12))]
    by_subset = [t.subset for t in client.tasks.list(sort="subset,id")]
    assert by_subset == ["", *["Test"] * 12, "Train"]


def test_token_and_basic_authentication(server: FakeCvatServer, world: FakeCvatState) -> None:
    token = world.add_access_token(world.users[1])
    with make_client(server.url, access_token=token) as client:
        assert client.projects.retrieve(1).name == "reef"
    with (
        make_client(server.url, access_token="wrong") as client,
        pytest.raises(exceptions.UnauthorizedException),
    ):
        client.projects.list()
    config = Configuration(host=server.url, username=USER, password=PASSWORD)
    with ApiClient(config) as api:
        project, _ = api.projects_api.retrieve(1)
        assert project.name == "reef"
        key = api.auth_api.create_login(
            models.LoginSerializerExRequest(username=USER, password=PASSWORD)
        )[0].key
    legacy = Configuration(
        host=server.url, api_key={"tokenAuth": key}, api_key_prefix={"tokenAuth": "Token"}
    )
    with ApiClient(legacy) as api:
        assert api.users_api.retrieve_self()[0].username == USER


def test_refusals(server: FakeCvatServer) -> None:
    with pytest.raises(exceptions.ApiException) as refused:
        make_client(server.url, credentials=(USER, "wrong"))
    assert refused.value.status == 400
    with ApiClient(Configuration(host=server.url)) as anonymous:
        assert anonymous.server_api.retrieve_about()[0].version == CVAT_VERSION
        with pytest.raises(exceptions.UnauthorizedException):
            anonymous.projects_api.list()
    with make_client(server.url, credentials=(USER, PASSWORD)) as client:
        with pytest.raises(exceptions.NotFoundException):
            client.projects.retrieve(99)
        csrf = client.api_client.configuration.api_key.pop("csrfHeaderAuth")
        with pytest.raises(exceptions.ForbiddenException):
            client.jobs.retrieve(1).update(models.PatchedJobWriteRequest(state="completed"))
        client.api_client.configuration.api_key["csrfHeaderAuth"] = csrf
        client.logout()
        with pytest.raises(exceptions.UnauthorizedException):
            client.projects.list()


def test_server_stops_cleanly(world: FakeCvatState) -> None:
    server = FakeCvatServer(world).start()
    host, port = server.url.removeprefix("http://").split(":")
    server.stop()
    assert not any(t.name == "fake-cvat" for t in threading.enumerate())
    with pytest.raises(OSError), socket.create_connection((host, int(port)), timeout=1):
        pass


# --- CVAT as it behaves (issue 17): each behaviour cites the CVAT code it follows ---------


def test_stage_change_resets_the_state_and_saving_does_not_change_it(
    client, world: FakeCvatState
) -> None:
    """``JobWriteSerializer.update``: a new stage without a state means state "new";
    annotation saves leave the state alone; cvat-ui's first save moves "new" to
    "in progress" with a second request (``annotator_saves``)."""
    job = world.tasks[1].jobs[0]
    world.set_job(job, state="in progress")
    client.api_client.jobs_api.partial_update(
        job.id, patched_job_write_request=models.PatchedJobWriteRequest(stage="validation")
    )
    assert (job.stage, job.state) == ("validation", "new")
    seen = []
    world.job_listeners.append(lambda saved, event, before: seen.append((event, saved.state)))
    task = client.tasks.retrieve(1)
    task.update_annotations(
        models.PatchedLabeledDataRequest(
            shapes=[
                models.LabeledShapeRequest(
                    type="rectangle", frame=0, label_id=1, points=[1, 1, 5, 5]
                )
            ]
        ),
        action=AnnotationUpdateAction.CREATE,
    )
    assert job.state == "new" and seen == [("update:job", "new")]
    world.annotator_saves(job, add=[{"frame": 0, "label": "Acropora", "type": "polygon",
                                     "points": [2, 2, 9, 2, 5, 8]}])  # fmt: skip
    assert job.state == "in progress"
    assert seen[1:] == [("update:job", "new"), ("update:job", "in progress")]


def test_organizations_scope_job_lists_as_jobs_rego_does(server: FakeCvatServer) -> None:
    """Without an organization context a non-admin member sees only the jobs they own or
    are assigned; in the context, a maintainer sees the organization's jobs."""
    state = server.state
    boss = state.add_user("boss", "pw", is_superuser=False)
    bot = state.add_user("bot", "pw", is_superuser=False)
    worker = state.add_user("worker", "pw", is_superuser=False)
    lab = state.add_organization("criobe", boss, [(bot, "maintainer"), (worker, "worker")])
    project = state.add_project("lab reef", ["Acropora"], owner=boss, organization=lab)
    task = state.add_task(project, "q", [make_frame("a.jpg", 20, 20)] * 3, segment_size=1,
                          owner=boss)  # fmt: skip
    state.set_job(task.jobs[2], assignee=worker)
    with make_client(server.url, credentials=("bot", "pw")) as bot_client:
        jobs = bot_client.api_client.jobs_api.list(project_id=project.id)[0]
        assert jobs.count == 0
        in_org = bot_client.api_client.jobs_api.list(project_id=project.id, org_id=lab.id)[0]
        assert sorted(j.id for j in in_org.results) == [j.id for j in task.jobs]
        assert {j.organization for j in in_org.results} == {lab.id}
        by_slug = bot_client.api_client.jobs_api.list(org="criobe")[0]
        assert by_slug.count == 3
    with make_client(server.url, credentials=("worker", "pw")) as worker_client:
        mine = worker_client.api_client.jobs_api.list(org_id=lab.id)[0]
        assert [j.id for j in mine.results] == [task.jobs[2].id]
    with make_client(server.url, credentials=(USER, PASSWORD)) as admin:
        assert admin.api_client.jobs_api.list(project_id=project.id)[0].count == 3


def test_validation_layout_lists_the_honeypots_of_a_job(client, world: FakeCvatState) -> None:
    task = world.tasks[1]
    first, second = task.jobs
    assert _layout(client, first.id) == {}
    world.set_honeypots(task, {1: 2})
    assert _layout(client, first.id) == {
        "honeypot_count": 1,
        "honeypot_frames": [1],
        "honeypot_real_frames": [2],
    }
    assert _layout(client, second.id)["honeypot_frames"] == []


def _layout(client, job_id: int) -> dict:
    import json

    _, response = client.api_client.jobs_api.retrieve_validation_layout(
        job_id, _parse_response=False
    )
    return json.loads(response.data)


def test_exif_rotation_is_baked_into_served_frames(server: FakeCvatServer) -> None:
    """CVAT's chunks hold the frame upright, without the tag (``ZipChunkWriter``)."""
    state = server.state
    state.add_user(USER, PASSWORD)
    project = state.add_project("p", ["Acropora"])
    task = state.add_task(project, "t", [make_frame("portrait.jpg", 30, 50, exif_orientation=6)])
    with make_client(server.url, credentials=(USER, PASSWORD)) as client:
        remote = client.tasks.retrieve(task.id)
        for quality in ("original", "compressed"):
            served = Image.open(remote.get_frame(0, quality=quality))
            assert served.size == (30, 50)
            assert served.getexif().get(0x0112, 1) == 1


def test_data_in_preparation_and_create_job_events(server: FakeCvatServer) -> None:
    state = server.state
    state.add_user(USER, PASSWORD)
    project = state.add_project("p", ["Acropora"])
    received = []
    state.job_listeners.append(lambda job, event, before: received.append((event, job.id)))
    task = state.add_task(project, "t", [make_frame("a.jpg", 20, 20)], data_ready=False)
    assert received == [("create:job", task.jobs[0].id)]
    with make_client(server.url, credentials=(USER, PASSWORD)) as client:
        remote = client.tasks.retrieve(task.id)
        assert remote.size == 0
        with pytest.raises(exceptions.ApiException) as refused:
            remote.get_frame(0, quality="original")
        assert refused.value.status == 400
        state.finish_data(task)
        assert client.tasks.retrieve(task.id).size == 1


def test_an_older_server_sends_before_update_and_does_not_retry() -> None:
    state = FakeCvatState(older_server=True)
    state.add_user(USER, PASSWORD)
    project = state.add_project("p", ["Acropora"])
    task = state.add_task(project, "t", [make_frame("a.jpg", 20, 20)])
    with socket.socket() as closed:  # a port nobody listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    with running_fake_cvat(state) as server:
        state.add_webhook(project, f"http://127.0.0.1:{port}/hook")
        state.set_job(task.jobs[0], state="in progress")
        server.webhook_sender.wait_idle()
        (delivery,) = server.webhook_sender.deliveries
        payload = server.job_event(task.jobs[0], before={"state": "new"})
    assert [status for status, _ in delivery.attempts] == [502]
    assert payload["before_update"] == {"state": "new"}
