"""fiftyone_plugin.cvat_pull, function by function, on the fake CVAT server (tests/fake_cvat)
with the real cvat-sdk and the real FiftyOne: connecting, finding the project, the dataset a
pull may write to, and a pull the server breaks off half way, then resumed.

The command's own scenarios (conversions, incremental pulls, credentials from the
environment) are in tests/coralseg/test_pull_cvat.py; its builders are reused here."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest

from coral_core.errors import CoralsegError
from fiftyone_plugin import cvat_pull
from fiftyone_plugin.cvat_pull import (
    CvatCredentials,
    PullReport,
    connect,
    find_project,
    pull_cvat_project,
)
from tests.coralseg.test_pull_cvat import PROJECT, build_reef
from tests.fake_cvat import FakeCvatServer, make_frame
from tests.fake_cvat.fixtures import PASSWORD, USERNAME


@pytest.fixture
def alice(fake_cvat: FakeCvatServer) -> CvatCredentials:
    return CvatCredentials(fake_cvat.url, username=USERNAME, password=PASSWORD)


@pytest.fixture
def dataset_name(fiftyone, request: pytest.FixtureRequest):
    name = "cvat-pull-" + re.sub(r"\W", "-", request.node.name)
    yield name
    if fiftyone.dataset_exists(name):
        fiftyone.delete_dataset(name)


def test_credentials_without_a_user_or_password_are_sentences() -> None:
    env = {"FIFTYONE_CVAT_URL": "http://127.0.0.1:1"}
    with pytest.raises(CoralsegError, match="a CVAT password but no user name"):
        cvat_pull.resolve_credentials(password="pw", environ=env)
    with pytest.raises(CoralsegError, match="no password for CVAT user 'bob'"):
        cvat_pull.resolve_credentials(username="bob", environ=env)
    credentials = cvat_pull.resolve_credentials(token="t0ken", environ=env)
    assert credentials.who == "the access token" and "t0ken" not in repr(credentials)
    assert "pw" not in repr(
        cvat_pull.resolve_credentials(username="bob", password="pw", environ=env)
    )


def test_connect_tells_a_server_that_is_no_cvat_from_refused_credentials(
    fake_cvat: FakeCvatServer, alice: CvatCredentials
) -> None:
    with connect(alice) as client:
        assert client.api_client.users_api.retrieve_self()[0].username == USERNAME
    fake_cvat.state.add_fault("GET", r"^/api/server/about", status=404)
    with pytest.raises(CoralsegError) as caught:
        connect(alice)
    assert str(caught.value) == (
        f"{fake_cvat.url} does not answer like a CVAT server (GET /api/server/about gave HTTP "
        "404); check FIFTYONE_CVAT_URL or --url"
    )
    wrong = CvatCredentials(fake_cvat.url, username=USERNAME, password="wrong")
    with pytest.raises(
        CoralsegError, match=r"refused user 'alice' \(HTTP 400\): wrong credentials"
    ):
        connect(wrong)
    with pytest.raises(CoralsegError, match="is not a CVAT server URL"):
        connect(CvatCredentials("ftp://127.0.0.1", token="t"))


def test_projects_are_found_by_name_case_or_id_and_never_guessed(
    fake_cvat: FakeCvatServer, alice: CvatCredentials
) -> None:
    state = fake_cvat.state
    with connect(alice) as client:
        with pytest.raises(CoralsegError, match="the server shows this user no projects"):
            find_project(client, "reef")
        reef = state.add_project("Reef 2024")
        twin = state.add_project("Twin")
        state.add_project("Twin")
        assert find_project(client, "Reef 2024").id == reef.id
        assert find_project(client, " reef 2024 ").id == reef.id
        assert find_project(client, str(twin.id)).name == "Twin"
        with pytest.raises(CoralsegError) as caught:
            find_project(client, "twin")
        assert str(caught.value) == (
            f"several CVAT projects at {fake_cvat.url} are named 'twin' (ids {twin.id}, "
            f"{twin.id + 1}); pass the id"
        )


def test_a_dataset_not_made_by_a_pull_is_never_written_into(
    fiftyone, fake_cvat: FakeCvatServer, alice, dataset_name, tmp_path: Path
) -> None:
    build_reef(fake_cvat.state)
    theirs = fiftyone.Dataset(dataset_name)
    theirs.add_sample(fiftyone.Sample(filepath=str(tmp_path / "mine.jpg")))
    with pytest.raises(CoralsegError, match="already exists and was not made by pull-cvat"):
        pull_cvat_project(alice, PROJECT, dataset_name=dataset_name, media_dir=tmp_path)
    assert len(theirs) == 1 and list(tmp_path.iterdir()) == []
    theirs.clear()  # an empty one is taken over
    report = pull_cvat_project(alice, PROJECT, dataset_name=dataset_name, media_dir=tmp_path)
    assert report.samples_total == 4 and fiftyone.load_dataset(dataset_name).persistent


def test_a_pull_broken_off_keeps_what_it_imported_and_a_rerun_goes_on(
    fiftyone, fake_cvat: FakeCvatServer, alice, dataset_name, tmp_path: Path
) -> None:
    state = fake_cvat.state
    tasks = build_reef(state)
    fault = state.add_fault("GET", rf"^/api/tasks/{tasks['b'].id}/annotations", status=500)
    with pytest.raises(CoralsegError) as caught:
        pull_cvat_project(alice, PROJECT, dataset_name=dataset_name, media_dir=tmp_path)
    assert fault.hits == 1
    assert str(caught.value).startswith(f"the CVAT server at {fake_cvat.url} answered HTTP 500")
    assert str(caught.value).endswith(
        "the tasks imported so far are kept, run the command again to go on"
    )
    dataset = fiftyone.load_dataset(dataset_name)
    assert dataset.distinct("cvat_task_name") == ["site-a"]
    assert list(dataset.info["cvat"]["tasks"]) == [str(tasks["a"].id)]

    report = pull_cvat_project(alice, PROJECT, dataset_name=dataset_name, media_dir=tmp_path)
    assert (report.imported, report.unchanged) == (["site-b", "site-d"], ["site-a"])
    assert report.images_reused == 0 and report.images_downloaded == 2
    assert sorted(dataset.distinct("cvat_task_name")) == ["site-a", "site-b", "site-d"]


def test_shapes_that_are_not_colonies_are_counted_and_points_of_deleted_frames_dropped(
    fiftyone, fake_cvat: FakeCvatServer, alice, dataset_name, tmp_path: Path
) -> None:
    state = fake_cvat.state
    project = state.add_project("survey", ("Acropora", "Porites"))
    frames = [make_frame("p0.jpg", 40, 20), make_frame("p1.jpg", 40, 20)]
    task = state.add_task(project, "points", frames, completed=True)
    state.add_shape(task, 0, "Acropora", "points", [10, 5, 30, 15])
    state.add_shape(task, 1, "Porites", "points", [20, 10])
    state.add_shape(task, 0, "Porites", "ellipse", [20, 10, 30, 15])
    state.add_shape(task, 0, "Porites", "polygon", [1, 1, 2, 2])  # two points: no area
    task.deleted_frames = [1]

    report = pull_cvat_project(alice, "survey", dataset_name=dataset_name, media_dir=tmp_path)

    (sample,) = fiftyone.load_dataset(dataset_name)
    (keypoint,) = sample.gt_points.keypoints
    assert (keypoint.label, keypoint.points) == ("Acropora", [[0.25, 0.25], [0.75, 0.75]])
    assert report.points == Counter({"Acropora": 2})
    assert report.skipped_shapes == Counter({"ellipse": 1, "invalid polygon": 1})
    assert report.unsplit_subsets == Counter({"": 1})
    summary = report.summary()
    assert "  point labels imported: Acropora 2" in summary
    assert "  skipped shapes: ellipse 1, invalid polygon 1\n" in summary
    assert "  samples without a train/val/test tag, by subset: (no subset) 1" in summary


def test_the_report_lists_tasks_gone_from_cvat() -> None:
    report = PullReport("reef", 3, "reef", Path("/media"), gone=["site-x"])
    lines = report.summary().splitlines()
    assert (
        lines[0]
        == "Pulled CVAT project 'reef' (id 3) into FiftyOne dataset 'reef'; images in /media"
    )
    assert lines[-1] == "  tasks no longer in CVAT (their samples are kept): site-x"
