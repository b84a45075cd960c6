"""cvat_bridge.cvat_io on its own: which failures are retried and how a refusal or an
exhausted retry reads, and each CVAT call of a run through the real cvat-sdk against the
fake CVAT -- logging in (password, token, wrong password), a job's frames (deleted ones,
a second job's numbering, data not ready), labels, honeypots (and servers without
validation layouts), reading, creating and deleting shapes, and organization job lists."""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest
import urllib3
from cvat_sdk.api_client import exceptions

from coral_core.errors import CoralsegError
from cvat_bridge.cvat_io import (
    CvatRefusedError,
    CvatSession,
    CvatUnavailableError,
    DataNotReadyError,
    JobLabel,
    is_transient,
    with_retries,
)
from cvat_bridge.settings import BridgeSettings
from tests.cvat_bridge.harness import PASSWORD, USERNAME, bridge_settings
from tests.fake_cvat import FakeCvatServer, FakeCvatState, Label, make_frame

FAST = BridgeSettings(cvat_retries=2, retry_base_delay=0.01)


def failing(*errors: BaseException, then: object = "answer"):
    """A call that raises ``errors`` in turn, then returns ``then``; counts its calls."""
    calls = []

    def call():
        calls.append(1)
        if len(calls) <= len(errors):
            raise errors[len(calls) - 1]
        return then

    return call, calls


def api_error(status: int, reason: str = "") -> exceptions.ApiException:
    return exceptions.ApiException(status=status, reason=reason)


@pytest.mark.parametrize(
    ("error", "transient"),
    [
        (api_error(503), True), (api_error(429), True), (api_error(408), True),
        (api_error(0), True),  # no answer at all
        (api_error(404), False), (api_error(400), False), (api_error(403), False),
        (urllib3.exceptions.ReadTimeoutError(None, "/api/jobs/1", "read timed out"), True),
        (ConnectionError("refused"), True), (TimeoutError(), True),
        (ValueError("a bug"), False),
    ],
)  # fmt: skip
def test_what_is_worth_retrying(error: BaseException, transient: bool) -> None:
    assert is_transient(error) is transient


def test_transient_failures_are_retried_until_an_answer() -> None:
    call, calls = failing(api_error(502), ConnectionError("reset"))
    assert with_retries(call, "read job 1", FAST) == "answer" and len(calls) == 3


def test_a_refusal_is_final_and_says_what_was_refused() -> None:
    call, calls = failing(api_error(404, "Not Found"))
    with pytest.raises(CvatRefusedError) as err:
        with_retries(call, "read job 1", FAST)
    assert str(err.value) == "CVAT refused to read job 1: HTTP 404 Not Found"
    assert err.value.status == 404 and len(calls) == 1 and err.value.__cause__ is None


def test_an_unexpected_error_is_not_dressed_up() -> None:
    call, calls = failing(KeyError("id"))
    with pytest.raises(KeyError):
        with_retries(call, "read job 1", FAST)
    assert len(calls) == 1


def test_exhausted_retries_say_how_often_and_why() -> None:
    call, calls = failing(*[api_error(503, "Service Unavailable")] * 5)
    with pytest.raises(CvatUnavailableError) as err:
        with_retries(call, "read job 1", FAST)
    assert (
        str(err.value) == "CVAT kept failing to read job 1 (HTTP 503 Service Unavailable, 3 tries)"
    )
    assert isinstance(err.value, CoralsegError) and len(calls) == 3
    call, calls = failing(TimeoutError(), TimeoutError())
    with pytest.raises(CvatUnavailableError, match=r"\(TimeoutError, 1 tries\)"):
        with_retries(call, "log in", replace(FAST, cvat_retries=0))
    assert len(calls) == 1


def test_a_stop_request_ends_the_wait_between_tries() -> None:
    stop = threading.Event()
    stop.set()
    call, calls = failing(api_error(503), api_error(503))
    started = time.monotonic()
    with pytest.raises(CvatUnavailableError, match=r"^stopped while retrying to read job 1$"):
        with_retries(call, "read job 1", replace(FAST, retry_base_delay=10.0), stop)
    assert time.monotonic() - started < 2.0 and len(calls) == 1


# --- against the fake CVAT --------------------------------------------------------------


def session_settings(cvat: FakeCvatServer, tmp_path: Path, **changes) -> BridgeSettings:
    settings = bridge_settings(cvat.url, tmp_path / "models.yaml", tmp_path / "cache")
    return replace(settings, cvat_retries=1, retry_base_delay=0.01, **changes)


def frames(count: int) -> list:
    return [make_frame(f"f{i}.jpg", 32, 24, color=(40 * i, 90, 120)) for i in range(count)]


def test_credentials_are_checked_before_anything_is_sent(tmp_path: Path) -> None:
    with pytest.raises(CoralsegError, match=r"^CVAT_URL is not set"):
        CvatSession(BridgeSettings())
    with pytest.raises(CoralsegError, match=r"^no CVAT credentials"):
        CvatSession(BridgeSettings(cvat_url="http://127.0.0.1:9", cvat_username="bot"))


def test_login_with_a_password_logs_out_after_and_a_wrong_one_is_refused(
    cvat: FakeCvatServer, tmp_path: Path
) -> None:
    with CvatSession(session_settings(cvat, tmp_path)) as session:
        assert session.client is not None
    assert session.client is None
    assert any(r.path.startswith("/api/auth/logout") for r in cvat.state.requests)
    wrong = session_settings(cvat, tmp_path, cvat_password="not-" + PASSWORD)
    refused = pytest.raises(CvatRefusedError, match=r"^CVAT refused to log in: HTTP 400")
    with refused as err, CvatSession(wrong):
        pass
    assert err.value.status == 400


def test_a_token_session_does_not_log_out(cvat: FakeCvatServer, tmp_path: Path) -> None:
    user = next(u for u in cvat.state.users.values() if u.username == USERNAME)
    token = cvat.state.add_access_token(user)
    settings = session_settings(cvat, tmp_path, cvat_username="", cvat_password="",
                                cvat_access_token=token)  # fmt: skip
    project = cvat.state.add_project("reef", ["Acropora"])
    task = cvat.state.add_task(project, "t", frames(1))
    with CvatSession(settings) as session:
        assert session.job(task.jobs[0].id).task_id == task.id
    assert not any(r.path.startswith("/api/auth/logout") for r in cvat.state.requests)


def test_a_jobs_frames_labels_and_honeypots(cvat: FakeCvatServer, tmp_path: Path) -> None:
    state = cvat.state
    project = state.add_project("reef", ["Acropora", Label(state.next_id("label"), "Boxes",
                                                          type="rectangle")])  # fmt: skip
    task = state.add_task(project, "two jobs", frames(6), segment_size=3)
    task.deleted_frames = [1, 4]
    state.set_honeypots(task, {5: 3})
    first, second = task.jobs
    with CvatSession(session_settings(cvat, tmp_path)) as session:
        assert session.frames(session.job(first.id)) == [0, 2]
        assert session.frames(session.job(second.id)) == [3, 5]  # task numbering
        assert session.honeypot_frames(first.id) == set()
        assert session.honeypot_frames(second.id) == {5}
        labels = session.labels(second.id)
        assert labels == {
            "Acropora": JobLabel(project.label("Acropora").id, "any"),
            "Boxes": JobLabel(project.label("Boxes").id, "rectangle"),
        }
        assert session.frame_bytes(second.id, 3) == task.frames[3].data  # the original bytes
        with pytest.raises(CvatRefusedError, match=r"^CVAT refused to read job 999: HTTP 404"):
            session.job(999)


def test_frames_of_a_task_still_being_created_are_not_ready(
    cvat: FakeCvatServer, tmp_path: Path
) -> None:
    project = cvat.state.add_project("reef", ["Acropora"])
    task = cvat.state.add_task(project, "fresh", frames(2), data_ready=False)
    with CvatSession(session_settings(cvat, tmp_path)) as session:
        job = session.job(task.jobs[0].id)
        with pytest.raises(DataNotReadyError) as err:
            session.frames(job)
        assert str(err.value) == f"the frames of task {task.id} are not ready yet"
        assert isinstance(err.value, CvatUnavailableError)  # a run retries it later
        cvat.state.finish_data(task)
        assert session.frames(job) == [0, 1]


def test_a_server_without_validation_layouts_has_no_honeypots(tmp_path: Path) -> None:
    state = FakeCvatState(older_server=True)
    state.add_user(USERNAME, PASSWORD)
    project = state.add_project("reef", ["Acropora"])
    task = state.add_task(project, "old", frames(2))
    with FakeCvatServer(state) as cvat, CvatSession(session_settings(cvat, tmp_path)) as session:
        assert session.honeypot_frames(task.jobs[0].id) == set()
        assert any(r.path.endswith("validation_layout") and r.status == 404
                   for r in state.requests)  # fmt: skip


def test_shapes_are_created_read_and_deleted(cvat: FakeCvatServer, tmp_path: Path) -> None:
    state = cvat.state
    project = state.add_project("reef", ["Acropora"])
    task = state.add_task(project, "t", frames(3))
    job, label = task.jobs[0], project.label("Acropora")
    person = state.add_shape(task, 0, "Acropora", "rectangle", [1, 1, 5, 5], source="manual")
    polygon = {
        "type": "polygon", "frame": 1, "label_id": label.id, "points": [1, 1, 9, 1, 9, 7],
        "source": "auto", "score": 0.87, "occluded": False, "z_order": 0, "group": 0,
        "attributes": [], "id": None, "elements": ["not sent"],
    }  # fmt: skip
    with CvatSession(session_settings(cvat, tmp_path)) as session:
        created = session.create_shapes_once(job.id, [polygon, {**polygon, "frame": 2}])
        assert [s["frame"] for s in created] == [1, 2]
        assert all(s["id"] not in (None, person.id) for s in created)
        held = {s["id"]: s for s in session.shapes(job.id)}
        assert set(held) == {person.id, *(s["id"] for s in created)}
        shape = held[created[0]["id"]]
        assert (shape["source"], shape["points"], shape["score"]) == (
            "auto", [1.0, 1.0, 9.0, 1.0, 9.0, 7.0], 0.87,
        )  # fmt: skip
        session.delete_shapes(job.id, [held[created[0]["id"]]])
        session.delete_shapes(job.id, [held[created[0]["id"]]])  # again: nothing to delete
        assert {s["id"] for s in session.shapes(job.id)} == {person.id, created[1]["id"]}
        with pytest.raises(Exception) as err:  # whatever the SDK raises for a 400
            session.create_shapes_once(job.id, [{**polygon, "label_id": 424242}])
        assert not is_transient(err.value)  # the caller fails the batch, it does not retry


def test_project_jobs_are_listed_in_their_organizations_context(tmp_path: Path) -> None:
    state = FakeCvatState()
    boss = state.add_user("boss", "pw", is_superuser=False)
    bot = state.add_user(USERNAME, PASSWORD, is_superuser=False)
    lab = state.add_organization("lab", boss, [(bot, "maintainer")])
    project = state.add_project("lab reef", ["Acropora"], owner=boss, organization=lab)
    task = state.add_task(project, "t", frames(4), segment_size=2, owner=boss)
    with FakeCvatServer(state) as cvat, CvatSession(session_settings(cvat, tmp_path)) as session:
        assert session.project_jobs(project.id) == []  # hidden without the context
        listed = session.project_jobs(project.id, organization_id=lab.id)
        assert sorted(j.id for j in listed) == sorted(j.id for j in task.jobs)
        assert {j.type for j in listed} == {"annotation"}
