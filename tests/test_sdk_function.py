"""``cvat_bridge.sdk_function`` run by cvat-sdk's own ``annotate_task`` driver (what
``cvat-cli task auto-annotate --function-module`` calls) against the fake CVAT server: the
colonies land in the task as masks, or as polygons with ``conv_mask_to_poly``."""

from __future__ import annotations

import io

import cvat_sdk
import numpy as np
import pytest
from cvat_sdk.auto_annotation import annotate_task
from PIL import Image

from coral_core.formats.cvat_shapes import label_spec
from coral_core.formats.rle import cvat_points_to_mask
from cvat_bridge import sdk_function
from tests.coral_core.test_semantic_inference import tiny_checkpoint  # noqa: F401  (fixture)
from tests.fake_cvat import Frame, make_frame
from tests.fake_cvat.fixtures import PASSWORD, USERNAME, fake_cvat  # noqa: F401  (fixture)
from tests.nuclio_functions.conftest import photo, sam_checkpoint  # noqa: F401  (fixtures)


@pytest.fixture(
    scope="module", params=["semantic", pytest.param("two-stage", marks=pytest.mark.slow)]
)
def function(request, tiny_checkpoint):  # noqa: F811
    """The function as cvat-cli creates it from ``-p name=type:value`` parameters; the
    two-stage one (random CoralSCoP ViT-B, slow on a CPU) only with ``-m slow``."""
    config, weights = tiny_checkpoint
    sam = request.getfixturevalue("sam_checkpoint") if request.param == "two-stage" else ""
    return sdk_function.create(
        segformer_config=str(config),
        segformer_weights=str(weights),
        sam_checkpoint=str(sam),
        device="cpu",
        min_threshold=0.0,
        unsure_threshold=0.0,
        min_area=16,
        overlap=0.0,
    )


def _frames(photo: bytes) -> list[Frame]:  # noqa: F811
    width, height = Image.open(io.BytesIO(photo)).size
    return [Frame("quadrat.jpg", width, height, photo), make_frame("gradient.jpg", 160, 120)]


def test_annotate_task_puts_masks_then_polygons_in_the_task(function, fake_cvat, photo) -> None:  # noqa: F811
    state = fake_cvat.state
    names = [label.name for label in function.spec.labels]
    assert names and all(label.type == "mask" for label in function.spec.labels)
    project = state.add_project("reef", labels=names)
    task = state.add_task(project, "quadrats", _frames(photo))
    by_id = {label.id: label.name for label in project.labels}

    # what the model finds on each frame, computed directly
    expected = []
    for frame in task.frames:
        image = np.asarray(Image.open(io.BytesIO(frame.data)).convert("RGB"))
        expected.append(function._predictor(image).instances.instances)
    assert sum(len(found) for found in expected) > 0

    with cvat_sdk.make_client(fake_cvat.url, credentials=(USERNAME, PASSWORD)) as client:
        annotate_task(client, task.id, function)
    shapes = sorted(task.shapes, key=lambda s: s.id)
    assert {s.type for s in shapes} == {"mask"} and {s.source for s in shapes} == {"auto"}
    for number, (frame, found) in enumerate(zip(task.frames, expected, strict=True)):
        landed = [s for s in shapes if s.frame == number]
        assert [by_id[s.label_id] for s in landed] == [i.label for i in found]
        # the colony's score, where CVAT stores it (without it CVAT stores 1.0)
        assert [s.score for s in landed] == [round(float(i.score), 4) for i in found]
        for shape, instance in zip(landed, found, strict=True):
            mask = cvat_points_to_mask(shape.points, frame.height, frame.width)
            assert np.array_equal(mask, instance.full_mask(frame.height, frame.width))

    with cvat_sdk.make_client(fake_cvat.url, credentials=(USERNAME, PASSWORD)) as client:
        annotate_task(client, task.id, function, clear_existing=True, conv_mask_to_poly=True)
    polygons = task.shapes
    assert {s.type for s in polygons} == {"polygon"}
    assert len(polygons) == len(shapes)
    for shape in polygons:
        frame = task.frames[shape.frame]
        xs, ys = np.asarray(shape.points[0::2]), np.asarray(shape.points[1::2])
        assert len(shape.points) >= 6 and len(xs) == len(ys)
        assert xs.min() >= 0 and xs.max() <= frame.width
        assert ys.min() >= 0 and ys.max() <= frame.height


def test_conf_threshold_cuts_by_score(function, fake_cvat, photo) -> None:  # noqa: F811
    state = fake_cvat.state
    project = state.add_project("reef", labels=[label.name for label in function.spec.labels])
    frames = _frames(photo)[:1]
    task = state.add_task(project, "one quadrat", frames)
    image = np.asarray(Image.open(io.BytesIO(frames[0].data)).convert("RGB"))
    scores = sorted(i.score for i in function._predictor(image).instances.instances)
    cut = scores[len(scores) // 2]
    with cvat_sdk.make_client(fake_cvat.url, credentials=(USERNAME, PASSWORD)) as client:
        annotate_task(client, task.id, function, conf_threshold=cut)
    assert len(task.shapes) == sum(score >= cut for score in scores) > 0


def test_same_shapes_as_the_nuclio_function(function, photo) -> None:  # noqa: F811
    """The cvat-sdk function and the Nuclio handler's encoder give the same colonies."""
    import json
    import logging
    from types import SimpleNamespace

    import nuclio_sdk

    from nuclio_functions.serving import respond
    from tests.nuclio_functions.conftest import request_body

    context = nuclio_sdk.Context(nuclio_sdk.Logger(logging.WARNING), None)
    answer = respond(context, function._predictor, json.loads(request_body(photo)))
    items = json.loads(answer.body)
    image = Image.open(io.BytesIO(photo))
    height, width = image.height, image.width

    def detect(as_polygons: bool) -> list:
        context = SimpleNamespace(
            frame_name="quadrat.jpg", conf_threshold=None, conv_mask_to_poly=as_polygons
        )
        return function.detect(context, image)

    masks, polygons = detect(False), detect(True)
    assert len(items) == len(masks) == len(polygons) > 0
    names = {label.id: label.name for label in function.spec.labels}
    for item, mask, polygon in zip(items, masks, polygons, strict=True):
        assert names[mask.label_id] == names[polygon.label_id] == item["label"]
        xtl, ytl, xbr, ybr = item["mask"][-4:]
        crop = np.asarray(item["mask"][:-4]).reshape(ybr - ytl + 1, xbr - xtl + 1) == 255
        expected = np.zeros((height, width), dtype=bool)
        expected[ytl : ybr + 1, xtl : xbr + 1] = crop
        assert np.array_equal(cvat_points_to_mask(mask.points, height, width), expected)
        assert polygon.points == item["points"]


def test_the_documented_cvat_cli_command(fake_cvat, tiny_checkpoint) -> None:  # noqa: F811
    """``cvat-cli task auto-annotate --function-module cvat_bridge.sdk_function -p ...``, the
    command of docs/cvat-functions.md, run as a separate process against the fake CVAT."""
    import subprocess
    import sys
    from pathlib import Path
    from urllib.parse import urlsplit

    cli = Path(sys.executable).with_name("cvat-cli")
    if not cli.is_file():
        pytest.skip("cvat-cli is not installed in this venv (pip install cvat-cli==2.80.0)")
    config, weights = tiny_checkpoint
    state = fake_cvat.state
    names = [label["name"] for label in label_spec(_encoding(tiny_checkpoint))]
    project = state.add_project("reef", labels=names)
    task = state.add_task(project, "small", [make_frame("a.jpg", 160, 120)])
    url = urlsplit(fake_cvat.url)
    done = subprocess.run(
        [str(cli), "--server-host", f"{url.scheme}://{url.hostname}", "--server-port",
         str(url.port), "--auth", f"{USERNAME}:{PASSWORD}",
         "task", "auto-annotate", str(task.id), "--function-module", "cvat_bridge.sdk_function",
         "-p", f"segformer_config=str:{config}", "-p", f"segformer_weights=str:{weights}",
         "-p", "min_threshold=float:0", "-p", "unsure_threshold=float:0",
         "-p", "min_area=int:16", "-p", "overlap=float:0", "--conv-mask-to-poly"],
        capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert task.shapes and {s.type for s in task.shapes} == {"polygon"}
    assert {s.source for s in task.shapes} == {"auto"}


def _encoding(checkpoint):
    from coral_core.inference.semantic import load_semantic_model

    return load_semantic_model(*checkpoint).encoding
