"""The predict operator's cluster path: a view's photos through ``coralseg infer``'s runner, the
fields filled from its records, equal to the in-process predictions pixel for pixel.

Here the runner's units run in this process (``cluster=None``), the same runner code and
output folder a cluster run uses; ``test_predict_cluster.py`` (slow) runs them on a real Ray
cluster through FiftyOne's delegated executor.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from tests.fiftyone_plugin.conftest import uri

SETTINGS = {"min_area": 4, "min_threshold": 0.0, "unsure_threshold": 0.0}
IN_PROCESS = ("inproc_colonies", "inproc_refined")
RUNNER = ("runner_colonies", "runner_refined")


def refine_settings():
    from coral_core.inference.instances import RefineSettings

    return RefineSettings(
        min_area=SETTINGS["min_area"],
        min_threshold=SETTINGS["min_threshold"],
        unsure_threshold=SETTINGS["unsure_threshold"],
    )


def add_unreadable_photo(fo, dataset, folder: Path) -> str:
    """A sample whose photo is not an image; its id."""
    broken = folder / "broken.jpg"
    broken.write_bytes(b"\xff\xd8 not really a jpeg")
    return dataset.add_sample(fo.Sample(filepath=str(broken)))


def assert_same_predictions(dataset, ids: list[str], first: tuple, second: tuple) -> int:
    """The two (colonies, refined mask) field pairs hold the same colonies and masks on
    ``ids``, pixel for pixel; the number of colonies."""
    colonies = 0
    for sample_id in ids:
        sample = dataset[sample_id]
        expected, actual = sample[first[0]].detections, sample[second[0]].detections
        assert len(expected) == len(actual), sample.filepath
        for a, b in zip(expected, actual, strict=True):
            assert (a.label, a.confidence, a.genus, a.score, a.area) == (
                b.label,
                b.confidence,
                b.genus,
                b.score,
                b.area,
            )
            assert a.bounding_box == b.bounding_box
            assert a.mask.dtype == b.mask.dtype and np.array_equal(a.mask, b.mask)
        masks = [np.asarray(Image.open(sample[f].mask_path)) for f in (first[1], second[1])]
        assert masks[0].shape == masks[1].shape and np.array_equal(*masks), sample.filepath
        colonies += len(actual)
    assert dataset.mask_targets[first[1]] == dataset.mask_targets[second[1]]
    return colonies


def test_the_runner_gives_the_in_process_fields(reef, tiny_model, tmp_path: Path) -> None:
    import fiftyone as fo

    from fiftyone_plugin.prediction import predict_samples, predict_through_runner

    config, checkpoint = tiny_model
    good = reef.values("id")
    predict_samples(
        reef,
        config,
        checkpoint,
        instances_field=IN_PROCESS[0],
        semantic_field=IN_PROCESS[1],
        settings=refine_settings(),
        mask_dir=tmp_path / "masks",
    )
    broken = add_unreadable_photo(fo, reef, tmp_path)
    out = tmp_path / "runner"
    said: list[tuple[float, str]] = []
    summary = predict_through_runner(
        reef,
        config,
        checkpoint,
        cluster=None,
        output_dir=out,
        instances_field=RUNNER[0],
        semantic_field=RUNNER[1],
        settings=refine_settings(),
        mask_dir=tmp_path / "masks",
        progress=lambda fraction, label: said.append((fraction, label)),
    )
    colonies = assert_same_predictions(reef, good, IN_PROCESS, RUNNER)
    assert colonies == summary.colonies > 0
    assert (summary.samples, summary.skipped, summary.output_dir) == (4, 0, str(out))
    (failure,) = summary.failed  # the unreadable photo, in one line; the others are done
    assert failure.startswith(str(tmp_path / "broken.jpg")) and "\n" not in failure
    assert reef[broken][RUNNER[0]] is None and reef[broken][RUNNER[1]] is None
    assert said[0] == (0.0, "0/5 units (photos or tiles) done")
    assert said[-1] == (1.0, "5/5 units (photos or tiles) done, 1 failed")
    assert len(list((out / "instances").glob("*.json"))) == 4  # coralseg infer's layout
    assert (out / "predictions.json").is_file()

    # a rerun skips the finished photos, tries the failed one again, and fills the same fields
    reef.clear_sample_field(RUNNER[0])
    again = predict_through_runner(
        reef,
        config,
        checkpoint,
        cluster=None,
        output_dir=out,
        instances_field=RUNNER[0],
        semantic_field=RUNNER[1],
        settings=refine_settings(),
        mask_dir=tmp_path / "masks",
    )
    assert (again.skipped, again.samples, len(again.failed)) == (4, 4, 1)
    assert assert_same_predictions(reef, good, IN_PROCESS, RUNNER) == colonies


def test_the_form_takes_a_cluster_and_then_delegates(reef, tiny_model, tmp_path: Path) -> None:
    import fiftyone.operators as foo
    from fiftyone.operators.delegated import DelegatedOperationService

    from fiftyone_plugin.prediction import default_runner_output
    from tests.fiftyone_plugin.test_forms import _inputs
    from tests.fiftyone_plugin.test_operators import validation_error

    config, checkpoint = tiny_model
    params = {"config": str(config), "checkpoint": str(checkpoint), **SETTINGS}
    for address in ("head-node", "ray://head-node:port", "http://x:80/"):
        message = validation_error("predict_colonies", reef, {**params, "cluster": address})
        assert f"{address!r} is not a Ray cluster address" in message
        assert "Traceback" not in message
    out = tmp_path / "runner"
    queued = foo.execute_operator(
        uri("predict_colonies"),
        {"view": reef.view()},
        params={**params, "cluster": "ray://head-node:10001", "output_dir": str(out)},
    )
    assert queued.delegated  # not asked for: a cluster run is always delegated
    DelegatedOperationService().delete_operation(queued.result["id"])
    assert not out.exists()  # nothing ran here

    # the form shows where a cluster run writes: beside the dataset's masks
    assert "output_dir" not in _inputs("predict_colonies", reef, params)
    inputs = _inputs("predict_colonies", reef, {**params, "cluster": "local"})
    assert inputs["output_dir"].default == {"absolute_path": str(default_runner_output(reef))}
    assert {"workers", "redo"} <= set(inputs)
