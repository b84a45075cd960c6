"""``coralseg pull-cvat`` end to end: the fake CVAT server, the real cvat-sdk, the real FiftyOne
(on the private test database), run in-process through ``coralseg.cli.main``."""

from __future__ import annotations

import re
import socket
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from coral_core.errors import CoralsegError
from coral_core.formats.polygons import Polygon, polygons_to_mask
from coralseg.cli import main
from fiftyone_plugin import cvat_pull
from tests.fake_cvat import FakeCvatServer, FakeCvatState, Task, encode_mask, make_frame

LABELS = ("Acropora", "Porites", "Pocillopora")
W, H = 64, 48
PROJECT = "reef-2024"


def mask_bitmap() -> np.ndarray:
    """Two parts; the first has a hole."""
    bitmap = np.zeros((H, W), dtype=bool)
    bitmap[4:20, 4:24] = True
    bitmap[9:14, 10:16] = False
    bitmap[30:40, 40:60] = True
    return bitmap


def build_reef(state: FakeCvatState) -> dict[str, Task]:
    project = state.add_project(PROJECT, LABELS)
    frames = [make_frame("a/q0.jpg", W, H), make_frame("a/q1.jpg", W, H, (90, 40, 20))]
    a = state.add_task(project, "site-a", frames, subset="Train", completed=True)
    state.add_shape(a, 0, "Acropora", "polygon", [8, 6, 40, 6, 24, 30], z_order=1)
    state.add_shape(a, 0, "Porites", "rectangle", [1, 1, 10, 10])
    state.add_shape(a, 1, "Porites", "polyline", [0, 0, 32, 24, 64, 48], occluded=True)
    state.add_shape(a, 1, "Pocillopora", "mask", encode_mask(mask_bitmap()))
    b = state.add_task(
        project, "site-b", [make_frame("b0.jpg", 80, 60)], subset="validation", completed=True
    )
    state.add_shape(b, 0, "Porites", "polygon", [0, 0, 80, 0, 80, 60])
    c = state.add_task(project, "site-c", [make_frame("c0.jpg", 32, 32)], subset="test")
    state.add_shape(c, 0, "Acropora", "polygon", [1, 1, 5, 1, 3, 4])
    d = state.add_task(project, "site-d", [make_frame("d0.jpg", 32, 32)], subset="extra")
    state.set_job(d.jobs[0], state="completed")  # finished by the annotator, not reviewed
    return {"a": a, "b": b, "c": c, "d": d}


@pytest.fixture
def reef(fake_cvat: FakeCvatServer) -> dict[str, Task]:
    return build_reef(fake_cvat.state)


@pytest.fixture
def cvat_env(fake_cvat: FakeCvatServer, monkeypatch: pytest.MonkeyPatch) -> FakeCvatServer:
    monkeypatch.setenv("FIFTYONE_CVAT_URL", fake_cvat.url)
    monkeypatch.setenv("FIFTYONE_CVAT_USERNAME", "alice")
    monkeypatch.setenv("FIFTYONE_CVAT_PASSWORD", "secret")
    for name in ("FIFTYONE_CVAT_EMAIL", "CVAT_ACCESS_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    return fake_cvat


@pytest.fixture
def dataset_name(fiftyone, request: pytest.FixtureRequest):
    name = "pull-" + re.sub(r"\W", "-", request.node.name)
    yield name
    if fiftyone.dataset_exists(name):
        fiftyone.delete_dataset(name)


def pull(capsys: pytest.CaptureFixture, *args: str) -> tuple[int, str, str]:
    code = main(["pull-cvat", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def frame_downloads(state: FakeCvatState) -> int:
    return sum(
        "type=frame" in r.query and r.path.endswith(("/data", "/data/"))
        for r in state.requests_to("/api/tasks/")
    )


def test_pull_converts_polygons_polylines_and_masks(
    fiftyone, reef, cvat_env, dataset_name, tmp_path: Path, capsys
) -> None:
    media = tmp_path / "media"
    code, out, err = pull(capsys, PROJECT, "--dataset", dataset_name, "--media-dir", str(media))
    assert code == 0, err
    assert "tasks: 3 imported, 0 unchanged, 1 not completed" in out
    assert "rectangle 1 (rectangles are not colonies)" in out
    assert "samples without a train/val/test tag, by subset: extra 1" in out

    dataset = fiftyone.load_dataset(dataset_name)
    assert dataset.persistent
    assert sorted(dataset.distinct("cvat_task_name")) == ["site-a", "site-b", "site-d"]
    a0, a1 = dataset.match(fiftyone.ViewField("cvat_task_name") == "site-a").sort_by("cvat_frame")
    assert (a0.cvat_task_id, a0.cvat_subset, a0.cvat_frame, a0.tags) == (1, "Train", 0, ["train"])
    assert Path(a0.filepath) == media / "task_1" / "a" / "q0.jpg"
    assert Path(a0.filepath).read_bytes() == reef["a"].frames[0].data
    assert (a0.metadata.width, a0.metadata.height) == (W, H)

    (polygon,) = a0.gt_polylines.polylines
    assert polygon.label == "Acropora" and polygon.closed and polygon.filled
    assert polygon.points == [[[8 / W, 6 / H], [40 / W, 6 / H], [24 / W, 30 / H]]]
    assert (polygon.cvat_shape_type, polygon.z_order, polygon.occluded) == ("polygon", 1, False)
    assert polygon.cvat_shape_id == reef["a"].shapes[0].id

    polyline, *parts = a1.gt_polylines.polylines
    assert (polyline.label, polyline.closed, polyline.filled) == ("Porites", False, False)
    assert polyline.occluded is True
    assert polyline.points == [[[0.0, 0.0], [0.5, 0.5], [1.0, 1.0]]]
    assert [p.label for p in parts] == ["Pocillopora", "Pocillopora"]
    assert all(p.closed and p.filled and p.cvat_shape_type == "mask" for p in parts)
    assert sorted(len(p.points) for p in parts) == [1, 2]  # one part has a hole

    tags = {s.cvat_task_name: s.tags for s in dataset}
    assert tags == {"site-a": ["train"], "site-b": ["val"], "site-d": []}
    assert dataset.info["cvat"]["project_name"] == PROJECT


def test_frames_deleted_in_cvat_are_left_out(
    fiftyone, reef, cvat_env, dataset_name, tmp_path: Path, capsys
) -> None:
    reef["a"].deleted_frames = [1]
    code, out, err = pull(capsys, PROJECT, "--dataset", dataset_name, "--media-dir", str(tmp_path))
    assert code == 0, err
    assert "polylines imported: Acropora 1, Porites 1\n" in out  # none of frame 1's
    dataset = fiftyone.load_dataset(dataset_name)
    assert dataset.match(fiftyone.ViewField("cvat_task_id") == 1).values("cvat_frame") == [0]
    assert not (tmp_path / "task_1" / "a" / "q1.jpg").exists()


def test_exact_mask_outlines_rasterize_back_to_the_mask(
    fiftyone, reef, cvat_env, dataset_name, tmp_path: Path, capsys
) -> None:
    code, _, err = pull(
        capsys, PROJECT, "--dataset", dataset_name, "--media-dir", str(tmp_path),
        "--mask-tolerance", "0",
    )  # fmt: skip
    assert code == 0, err
    dataset = fiftyone.load_dataset(dataset_name)
    sample = dataset.match(fiftyone.ViewField("cvat_frame") == 1).first()
    parts = [p for p in sample.gt_polylines.polylines if p.cvat_shape_type == "mask"]
    scale = np.array([W, H], dtype=float)
    polygons = [
        Polygon(np.array(p.points[0]) * scale, tuple(np.array(h) * scale for h in p.points[1:]))
        for p in parts
    ]
    np.testing.assert_array_equal(polygons_to_mask(polygons, H, W), mask_bitmap())
    # FiftyOne's own rasterizer reads the rings the same way: the hole stays empty.
    drawn = (
        fiftyone.Polylines(polylines=parts)
        .to_segmentation(frame_size=(W, H), mask_targets={1: "Pocillopora"})
        .mask
    )
    assert drawn[11, 12] == 0 and drawn[6, 6] == 1 and drawn[35, 50] == 1


def test_all_tasks_includes_those_not_completed(
    fiftyone, reef, cvat_env, dataset_name, tmp_path: Path, capsys
) -> None:
    code, out, err = pull(
        capsys, PROJECT, "--dataset", dataset_name, "--media-dir", str(tmp_path), "--all-tasks"
    )
    assert code == 0, err
    assert "tasks: 4 imported, 0 unchanged, 0 not completed" in out
    dataset = fiftyone.load_dataset(dataset_name)
    test_sample = dataset.match(fiftyone.ViewField("cvat_task_name") == "site-c").first()
    assert test_sample.tags == ["test"]


def test_incremental_pull_skips_unchanged_replaces_changed_adds_new(
    fiftyone, reef, cvat_env, dataset_name, tmp_path: Path, capsys
) -> None:
    state = cvat_env.state
    args = (PROJECT, "--dataset", dataset_name, "--media-dir", str(tmp_path))
    assert pull(capsys, *args)[0] == 0
    downloads = frame_downloads(state)
    assert downloads == 4
    dataset = fiftyone.load_dataset(dataset_name)
    site_b_ids = sorted(dataset.match(fiftyone.ViewField("cvat_task_id") == 2).values("id"))

    code, out, _ = pull(capsys, *args)
    assert code == 0
    assert "tasks: 0 imported, 3 unchanged" in out
    assert frame_downloads(state) == downloads

    state.edit_shapes(
        reef["a"],
        remove=[reef["a"].shapes[0].id],
        add=[{"frame": 0, "label": "Porites", "type": "polygon", "points": [1, 1, 9, 1, 5, 7]}],
    )
    new = state.add_task(
        state.projects[1], "site-e", [make_frame("e0.jpg", 16, 16)], subset="train", completed=True
    )
    state.add_shape(new, 0, "Acropora", "polygon", [1, 1, 9, 1, 5, 7])
    code, out, _ = pull(capsys, *args)
    assert code == 0
    assert "tasks: 2 imported, 2 unchanged" in out
    assert frame_downloads(state) == downloads + 1  # only the new task's image

    del state.tasks[reef["d"].id]
    code, out, _ = pull(capsys, *args)
    assert "tasks no longer in CVAT (their samples are kept): site-d" in out

    dataset.reload()
    assert len(dataset) == 5
    site_a = dataset.match(fiftyone.ViewField("cvat_task_id") == 1).sort_by("cvat_frame")
    assert len(site_a) == 2
    assert [p.label for p in site_a.first().gt_polylines.polylines] == ["Porites"]
    assert sorted(dataset.match(fiftyone.ViewField("cvat_task_id") == 2).values("id")) == site_b_ids
    assert dataset.match(fiftyone.ViewField("cvat_task_name") == "site-e").first().tags == ["train"]


def test_force_reimports_everything_without_downloading_again(
    fiftyone, reef, cvat_env, dataset_name, tmp_path: Path, capsys
) -> None:
    args = (PROJECT, "--dataset", dataset_name, "--media-dir", str(tmp_path))
    assert pull(capsys, *args)[0] == 0
    downloads = frame_downloads(cvat_env.state)
    code, out, _ = pull(capsys, *args, "--force")
    assert code == 0
    assert "tasks: 3 imported, 0 unchanged" in out
    assert "samples: 4 imported, 4 of them replacing older ones; 4 in the dataset" in out
    assert frame_downloads(cvat_env.state) == downloads
    assert len(fiftyone.load_dataset(dataset_name)) == 4


def test_photos_stored_sideways_are_not_downloaded_again(
    fiftyone, cvat_env, dataset_name, tmp_path: Path, capsys
) -> None:
    """A portrait photo uploaded with an EXIF rotation: CVAT reports its shown size and serves
    it with the rotation baked in (its chunks are written upright; see tests/fake_cvat), and
    the pulled file is recognised as already there on the next pull."""
    state = cvat_env.state
    project = state.add_project("portraits", LABELS)
    frames = [make_frame("p0.jpg", 30, 50, exif_orientation=6), make_frame("p1.jpg", 40, 20)]
    state.add_task(project, "site-p", frames, subset="train", completed=True)
    args = ("portraits", "--dataset", dataset_name, "--media-dir", str(tmp_path), "--force")
    assert pull(capsys, *args)[0] == 0
    downloads = frame_downloads(state)
    assert downloads == 2
    sample = fiftyone.load_dataset(dataset_name).match(fiftyone.ViewField("cvat_frame") == 0)
    stored = Image.open(sample.first().filepath).size
    assert stored == (30, 50)  # kept as CVAT served it: upright, at the shown size

    code, out, _ = pull(capsys, *args)
    assert code == 0
    assert "images: 0 downloaded, 2 already there" in out
    assert frame_downloads(state) == downloads


def test_label_rename_reimports_all_tasks(
    fiftyone, reef, cvat_env, dataset_name, tmp_path: Path, capsys
) -> None:
    args = (PROJECT, "--dataset", dataset_name, "--media-dir", str(tmp_path))
    assert pull(capsys, *args)[0] == 0
    cvat_env.state.projects[1].labels[1].name = "Porites lobata"
    code, out, _ = pull(capsys, *args)
    assert code == 0
    assert "tasks: 3 imported" in out
    labels = fiftyone.load_dataset(dataset_name).distinct("gt_polylines.polylines.label")
    assert "Porites lobata" in labels and "Porites" not in labels


def test_default_dataset_name_media_dir_and_token(
    fiftyone, reef, cvat_env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    monkeypatch.setattr(fiftyone.config, "default_dataset_dir", str(tmp_path))
    monkeypatch.delenv("FIFTYONE_CVAT_USERNAME")
    monkeypatch.delenv("FIFTYONE_CVAT_PASSWORD")
    state = cvat_env.state
    monkeypatch.setenv("CVAT_ACCESS_TOKEN", state.add_access_token(state.users[1]))
    try:
        code, _, err = pull(capsys, str(state.projects[1].id))
        assert code == 0, err
        assert (tmp_path / "coralseg" / PROJECT / "task_2" / "b0.jpg").is_file()
        assert len(fiftyone.load_dataset(PROJECT)) == 4
    finally:
        if fiftyone.dataset_exists(PROJECT):
            fiftyone.delete_dataset(PROJECT)


def test_a_dataset_of_another_project_is_not_overwritten(
    fiftyone, reef, cvat_env, dataset_name, tmp_path: Path, capsys
) -> None:
    args = ("--dataset", dataset_name, "--media-dir", str(tmp_path))
    assert pull(capsys, PROJECT, *args)[0] == 0
    cvat_env.state.add_project("other-reef", LABELS)
    code, _, err = pull(capsys, "other-reef", *args)
    assert code == 2
    assert f"dataset {dataset_name!r} holds CVAT project {PROJECT!r}" in err


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"FIFTYONE_CVAT_PASSWORD": "wrong"}, "refused user 'alice' (HTTP 400): wrong credentials"),
        ({"FIFTYONE_CVAT_URL": None}, "no CVAT server given: set FIFTYONE_CVAT_URL or pass --url"),
        ({"FIFTYONE_CVAT_PASSWORD": None}, "no password for CVAT user 'alice'"),
        (
            {"FIFTYONE_CVAT_USERNAME": None, "FIFTYONE_CVAT_PASSWORD": None},
            "no CVAT credentials: set FIFTYONE_CVAT_USERNAME and FIFTYONE_CVAT_PASSWORD",
        ),
        ({"CVAT_ACCESS_TOKEN": "not-a-token"}, "refused the access token (HTTP 401)"),
        ({"FIFTYONE_CVAT_URL": "http://127.0.0.1:{port}"}, "cannot reach the CVAT server at"),
    ],
    ids=["bad-password", "no-url", "no-password", "no-credentials", "bad-token", "unreachable"],
)
def test_connection_errors_are_one_sentence(
    fiftyone, reef, cvat_env, monkeypatch: pytest.MonkeyPatch, capsys, change, message
) -> None:
    for name, value in change.items():
        if value is None:
            monkeypatch.delenv(name)
        else:
            monkeypatch.setenv(name, value.format(port=free_port()))
    code, out, err = pull(capsys, PROJECT)
    assert (code, out) == (2, "")
    assert err.startswith("coralseg pull-cvat: error: ")
    assert message in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_unknown_project_lists_the_projects(fiftyone, reef, cvat_env, capsys) -> None:
    code, _, err = pull(capsys, "reef-2025")
    assert code == 2
    assert "no CVAT project 'reef-2025' at http://127.0.0.1:" in err
    assert "projects there: 'reef-2024' (id 1)" in err


# --- the pure parts ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("subset", "tag"),
    [("Train", "train"), ("val", "val"), ("Validation", "val"), ("test", "test"),
     ("extra", None), ("", None)],
)  # fmt: skip
def test_split_tag(subset: str, tag: str | None) -> None:
    assert cvat_pull.split_tag(subset) == tag


def test_safe_relative_path_stays_inside() -> None:
    assert str(cvat_pull.safe_relative_path("../../etc/x.jpg", "f.jpg")) == "etc/x.jpg"
    assert str(cvat_pull.safe_relative_path("/abs/site 1/q.jpg", "f.jpg")) == "abs/site 1/q.jpg"
    assert str(cvat_pull.safe_relative_path("..", "f.jpg")) == "f.jpg"


def test_resolve_credentials_precedence() -> None:
    env = {
        "FIFTYONE_CVAT_URL": "http://cvat",
        "FIFTYONE_CVAT_USERNAME": "env-user",
        "FIFTYONE_CVAT_PASSWORD": "env-pw",
        "CVAT_ACCESS_TOKEN": "env-token",
    }
    assert cvat_pull.resolve_credentials(environ=env).token == "env-token"
    flags = cvat_pull.resolve_credentials(username="me", password="pw", environ=env)
    assert (flags.username, flags.password, flags.token) == ("me", "pw", None)
    assert cvat_pull.resolve_credentials(url="http://other", token="t", environ=env).url == (
        "http://other"
    )
    email_only = {
        "FIFTYONE_CVAT_URL": "u",
        "FIFTYONE_CVAT_EMAIL": "a@b",
        "FIFTYONE_CVAT_PASSWORD": "p",
    }
    assert cvat_pull.resolve_credentials(environ=email_only).username == "a@b"
    with pytest.raises(CoralsegError, match="no CVAT server given"):
        cvat_pull.resolve_credentials(environ={})


def test_is_completed() -> None:
    assert cvat_pull.is_completed("completed", [])
    assert cvat_pull.is_completed("annotation", ["completed", "completed"])
    assert not cvat_pull.is_completed("annotation", ["completed", "in progress"])
    assert not cvat_pull.is_completed("annotation", [])
