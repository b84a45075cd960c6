"""Every operator through FiftyOne's own execution (``execute_operator`` and the delegated
executor) on real datasets in the test database, with the plugin installed in FiftyOne's
plugins directory. Models have random weights (no pretrained files here)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from coral_core.evaluation.metrics import confusion_matrix, scores_from_confusion
from coral_core.labels.taxonomy import FAMILIES, MaskEncoding
from tests.fake_cvat import encode_mask, make_frame
from tests.fiftyone_plugin.conftest import COLORS, PLUGIN, REPO, uri


def execute(name: str, dataset, params: dict, **ctx):
    import fiftyone.operators as foo

    ctx.setdefault("view", dataset.view())
    return foo.execute_operator(uri(name), ctx, params=params)


def run_delegated(name: str, dataset, params: dict, **ctx):
    """Queue the operation as the App's "schedule" does, then run FiftyOne's executor."""
    import fiftyone.operators as foo
    from fiftyone.operators.delegated import DelegatedOperationService

    ctx.setdefault("view", dataset.view())
    queued = foo.execute_operator(uri(name), ctx, params=params, request_delegation=True)
    assert queued.delegated
    service = DelegatedOperationService()
    (outcome,) = service.execute_queued_operations(operator=uri(name))
    assert outcome.error is None, outcome.error
    return service.get(queued.result["id"])


def validation_error(name: str, dataset, params: dict, **ctx) -> str:
    from fiftyone.operators.executor import ExecutionError

    with pytest.raises(ExecutionError) as caught:
        execute(name, dataset, params, **ctx)
    return str(caught.value)


def test_every_operator_is_registered_and_listed_in_the_manifest(fiftyone, plugins_dir) -> None:
    import fiftyone.operators as foo
    import fiftyone.plugins as fop

    manifest = yaml.safe_load((REPO / "fiftyone.yml").read_text())
    assert manifest["name"] == PLUGIN and manifest["py_entry"] == "fiftyone_plugin/__init__.py"
    assert {"FIFTYONE_CVAT_URL", "FIFTYONE_CVAT_PASSWORD"} <= set(manifest["secrets"])
    registered = {op.name for op in foo.list_operators() if op.plugin_name == PLUGIN}
    assert registered == set(manifest["operators"])
    (plugin,) = [p for p in fop.list_plugins() if p.name == PLUGIN]
    from packaging.requirements import Requirement

    requirement = Requirement(plugin.fiftyone_requirement)  # fiftyone.version is set
    assert requirement.specifier.contains(fiftyone.__version__)


def test_evaluate_registers_a_fiftyone_evaluation_with_iou_fields(reef, tiny_model) -> None:
    config, checkpoint = tiny_model
    result = execute("evaluate_model", reef, {"config": str(config), "checkpoint": str(checkpoint)})
    out = result.result
    key = out["eval_key"]
    assert key in reef.list_evaluations()
    assert out["samples"] == len(reef)
    # FiftyOne's own results (what the Model Evaluation panel loads) know our classes
    results = reef.load_evaluation_results(key)
    classes = [row["class"] for row in out["per_class"]]
    assert list(results.classes) == classes and classes[:2] == ["background", "Acropora"]
    assert results.custom_metrics  # the plugin's IoU metric ran inside FiftyOne's evaluation

    # the per-sample IoU fields equal IoU recomputed here from the masks on disk
    sample = reef.first()
    gt = np.asarray(Image.open(sample["gt_polylines_mask"].mask_path))
    pred = np.asarray(Image.open(sample["coralseg_semantic"].mask_path))
    assert gt.shape == pred.shape == (96, 96)
    encoding = MaskEncoding(FAMILIES)
    assert set(np.unique(gt)) <= {0} | {encoding.value_of(genus) for genus in COLORS}
    scores = scores_from_confusion(confusion_matrix(pred, gt, len(classes)), classes)
    assert sample[f"{key}_iou_Acropora"] == pytest.approx(scores.iou[1])
    assert sample[f"{key}_miou"] == pytest.approx(scores.miou)

    # the dataset table: summed confusion over all samples
    total = sum(
        confusion_matrix(
            np.asarray(Image.open(s["coralseg_semantic"].mask_path)),
            np.asarray(Image.open(s["gt_polylines_mask"].mask_path)),
            len(classes),
        )
        for s in reef
    )
    expected = scores_from_confusion(total, classes)
    acropora = out["per_class"][1]
    assert acropora["iou"] == pytest.approx(round(expected.iou[1] * 100, 2))
    assert out["mIoU"] == pytest.approx(round(expected.miou * 100, 2))
    # cover error beside IoU: mean over images of |predicted - annotated| cover, in points
    errors = []
    for s in reef:
        p_mask = np.asarray(Image.open(s["coralseg_semantic"].mask_path))
        g_mask = np.asarray(Image.open(s["gt_polylines_mask"].mask_path))
        errors.append(abs((p_mask == 1).mean() - (g_mask == 1).mean()) * 100)
    assert acropora["cover_error"] == pytest.approx(np.mean(errors), abs=0.01)

    # sortable, and removed with the evaluation
    ranked = reef.sort_by(f"{key}_miou", reverse=True).values(f"{key}_miou")
    assert ranked == sorted(ranked, reverse=True)
    reef.delete_evaluation(key)
    assert not [f for f in reef.get_field_schema() if f.startswith(f"{key}_")]


@pytest.mark.parametrize(
    ("params", "sentence"),
    [
        (
            {"config": "configs/nope.py", "checkpoint": "x.pth"},
            f"the config {REPO}/configs/nope.py does not exist",  # from the plugin folder
        ),
        ({"checkpoint": "x.pth"}, "Give the config"),
        ({"config": "{tiny}", "checkpoint": "missing.pth"}, "does not exist"),
        # the App's file explorer gives {"absolute_path": ...}; the same sentences follow
        (
            {"config": {"absolute_path": "{tiny}"}, "checkpoint": {"absolute_path": "x.pth"}},
            f"the checkpoint {REPO}/x.pth does not exist",
        ),
        ({"config": {"absolute_path": "{tiny}"}, "checkpoint": {}}, "Give the checkpoint"),
        ({"config": "{tiny}", "checkpoint": "{ckpt}", "gt_field": "nope"}, "is not one of"),
        ({"config": "{tiny}", "checkpoint": "{ckpt}", "eval_key": "2 bad"}, "must be letters"),
        (
            {"config": "{tiny}", "checkpoint": "{ckpt}", "pred_field": "gt_polylines"},
            "already holds Polylines",
        ),
    ],
)
def test_evaluate_form_errors_are_sentences(reef, tiny_model, params, sentence) -> None:
    config, checkpoint = tiny_model

    def fill(value):
        if isinstance(value, dict):
            return {k: fill(v) for k, v in value.items()}
        return value.format(tiny=config, ckpt=checkpoint)

    filled = {k: fill(v) for k, v in params.items()}
    assert sentence.lower() in validation_error("evaluate_model", reef, filled).lower()
    assert reef.list_evaluations() == []


def test_a_checkpoint_that_does_not_fit_and_unknown_labels(reef, tiny_model, tmp_path) -> None:
    import torch

    config, checkpoint = tiny_model
    state = torch.load(checkpoint, weights_only=True)
    state["state_dict"] = {k: v for k, v in state["state_dict"].items() if "decode_head" not in k}
    broken = tmp_path / "headless.pth"
    torch.save(state, broken)
    message = validation_error(
        "evaluate_model", reef, {"config": str(config), "checkpoint": str(broken)}
    )
    assert "does not fit config" in message

    sample = reef.first()
    sample["gt_polylines"].polylines[0].label = "Seagrass"
    sample.save()
    message = validation_error(
        "evaluate_model", reef, {"config": str(config), "checkpoint": str(checkpoint)}
    )
    assert "does not know: Seagrass" in message


def test_evaluate_delegated_on_the_current_view(reef, tiny_model) -> None:
    config, checkpoint = tiny_model
    view = reef.match_tags("val")
    params = {"config": str(config), "checkpoint": str(checkpoint), "eval_key": "val_eval"}
    done = run_delegated("evaluate_model", reef, params, view=view)
    assert done.run_state == "completed"
    assert done.result.result["samples"] == len(view) == 2
    assert len(reef.exists("val_eval_miou")) == 2  # only the view's samples were scored
    assert done.status.progress == pytest.approx(1.0)


def test_operators_are_callable_from_python(reef, tiny_model) -> None:
    import fiftyone.operators as foo

    config, checkpoint = tiny_model
    evaluate = foo.get_operator(uri("evaluate_model"))
    result = evaluate(reef.match_tags("train"), config, checkpoint, eval_key="called")
    assert result.result["samples"] == 2 and "called" in reef.list_evaluations()
    choose = foo.get_operator(uri("select_to_annotate"))
    reef.untag_samples(["train", "val"])  # annotated samples are not ranked
    choose(reef, config, checkpoint, limit=1)
    assert len(reef.load_saved_view("coralseg-annotate-next")) == 1


def test_predict_colonies_as_masked_detections(reef, tiny_model) -> None:
    config, checkpoint = tiny_model
    params = {
        "config": str(config),
        "checkpoint": str(checkpoint),
        "min_area": 4,
        "min_threshold": 0.0,
        "unsure_threshold": 0.0,
    }
    out = execute("predict_colonies", reef, params).result
    assert out["samples"] == len(reef)
    detections = [d for dets in reef.values("coralseg_colonies.detections") for d in dets]
    assert len(detections) == out["colonies"] > 0
    for detection in detections:
        _, _, w, h = detection.bounding_box
        assert detection.mask.shape == (round(h * 96), round(w * 96))
        assert detection.mask.any() and 0 <= detection.confidence <= 1
        assert detection.genus == detection.label and detection.area == detection.mask.sum()
    refined = np.asarray(Image.open(reef.first()["coralseg_refined"].mask_path))
    assert refined.shape == (96, 96)
    assert reef.mask_targets["coralseg_refined"][1] == "Acropora"


def test_select_to_annotate_scores_and_saves_a_ranked_view(reef, tiny_model) -> None:
    config, checkpoint = tiny_model
    params = {"config": str(config), "checkpoint": str(checkpoint), "method": "margin", "limit": 3}
    reef.untag_samples(["train", "val"])  # as if nobody had annotated them
    out = execute("select_to_annotate", reef, params).result
    scores = reef.values("coralseg_uncertainty")
    assert all(0 <= s <= 1 for s in scores) and len(set(scores)) == len(reef)
    view = reef.load_saved_view(out["view"])
    assert len(view) == 3
    assert view.values("coralseg_uncertainty") == sorted(scores, reverse=True)[:3]
    bad = validation_error("select_to_annotate", reef, {**params, "method": "variance"})
    assert "is not one of: entropy, margin" in bad


def test_export_masks_of_the_selected_samples(reef, tmp_path) -> None:
    chosen = reef.match_tags("train").values("id")
    out = tmp_path / "prepared"
    # the folder chosen in the App's file explorer
    params = {"out": {"absolute_path": str(out)}, "taxonomy": "families"}
    params["view_target"] = "SELECTED_SAMPLES"
    result = execute("export_masks", reef, params, selected=chosen).result
    assert result["out"] == str(out)
    assert result["images"] == len(chosen) == 2
    assert len(list((out / "train" / "labels").glob("*.png"))) == 2
    assert "already exists" in validation_error(
        "export_masks", reef, {"out": str(out), "taxonomy": "families"}
    )
    assert (
        "unknown taxonomy"
        in validation_error(
            "export_masks", reef, {"out": str(tmp_path / "x"), "taxonomy": "nope"}
        ).lower()
    )


def test_export_masks_stops_with_a_sentence_and_writes_nothing(reef, tmp_path) -> None:
    out = tmp_path / "prepared"
    params = {"out": str(out), "taxonomy": "families"}
    result = execute("export_masks", reef, params, view=reef.limit(0))
    assert result.result["error"] == (
        "There are no samples to export: the dataset or view is empty"
    )
    assert not out.exists()


def test_pull_cvat_project_with_credentials_from_secrets(
    fake_cvat, fiftyone, plugins_dir, monkeypatch
) -> None:
    state = fake_cvat.state
    project = state.add_project("plugin-reef", ("Acropora", "Porites"))
    task = state.add_task(
        project, "site-a", [make_frame("q0.jpg", 64, 48)], subset="train", completed=True
    )
    state.add_shape(task, 0, "Acropora", "polygon", [8, 6, 40, 6, 24, 30])
    bitmap = np.zeros((48, 64), dtype=bool)
    bitmap[10:20, 30:50] = True
    state.add_shape(task, 0, "Porites", "mask", encode_mask(bitmap))
    for name in (
        "FIFTYONE_CVAT_URL",
        "FIFTYONE_CVAT_USERNAME",
        "FIFTYONE_CVAT_PASSWORD",
        "FIFTYONE_CVAT_EMAIL",
        "CVAT_ACCESS_TOKEN",
    ):
        monkeypatch.delenv(name, raising=False)
    empty = fiftyone.Dataset()
    assert "No CVAT server given: set FIFTYONE_CVAT_URL" in validation_error(
        "pull_cvat_project", empty, {"project": "plugin-reef"}
    )

    monkeypatch.setenv("FIFTYONE_CVAT_URL", fake_cvat.url)
    monkeypatch.setenv("FIFTYONE_CVAT_USERNAME", "alice")
    monkeypatch.setenv("FIFTYONE_CVAT_PASSWORD", "secret")
    try:
        out = execute("pull_cvat_project", empty, {"project": "plugin-reef"}).result
        pulled = fiftyone.load_dataset("plugin-reef")
        assert out["samples"] == len(pulled) == 1 and out["tasks_imported"] == 1
        labels = pulled.values("gt_polylines.polylines.label")[0]
        assert sorted(labels) == ["Acropora", "Porites"] and pulled.first().tags == ["train"]
    finally:
        if fiftyone.dataset_exists("plugin-reef"):
            fiftyone.delete_dataset("plugin-reef")
        empty.delete()


def test_train_is_always_delegated_and_checks_its_folders(reef, tmp_path) -> None:
    from fiftyone.operators.delegated import DelegatedOperationService

    explored = {"data": {"absolute_path": str(tmp_path)}, "work_dir": str(tmp_path / "w")}
    message = validation_error("train_model", reef, explored)
    assert "is not a prepared data folder (no manifest.json)" in message
    (tmp_path / "manifest.json").write_text("{}")
    params = {"data": str(tmp_path), "work_dir": str(tmp_path / "w"), "overrides": "max_iters"}
    assert "is not key=value" in validation_error("train_model", reef, params)

    params["overrides"] = "train_cfg.max_iters=4"
    queued = execute("train_model", reef, params)  # asked to run now: FiftyOne queues it
    assert queued.delegated
    service = DelegatedOperationService()
    assert service.get(queued.result["id"]).run_state == "queued"
    service.delete_operation(queued.result["id"])


@pytest.mark.slow
def test_export_then_train_delegated_end_to_end(reef, tmp_path) -> None:
    prepared = tmp_path / "prepared"
    execute("export_masks", reef, {"out": str(prepared), "taxonomy": "families"})
    overrides = " ".join(
        [
            "train_dataloader.num_workers=0",
            "val_dataloader.num_workers=0",
            "test_dataloader.num_workers=0",
            "train_cfg.max_iters=4",
            "train_cfg.val_interval=2",
            "param_scheduler.0.end=4",
            "default_hooks.checkpoint.interval=2",
        ]
    )
    params = {
        "config": str(REPO / "configs" / "dinov2-vits14-segformer_tiny-cpu_eilat-224x224.py"),
        "data": str(prepared),
        "work_dir": str(tmp_path / "work"),
        "overrides": overrides,
    }
    done = run_delegated("train_model", reef, params)
    assert done.run_state == "completed"
    out = done.result.result
    best = Path(out["best_checkpoint"])
    assert best.is_file() and best.name.startswith("best_mIoU_iter_")
    assert 0 <= out["best_mIoU"] <= 100
    assert done.status.progress == pytest.approx(1.0) and "iteration 4/4" in done.status.label
    # the forms now offer the run's model by name
    from fiftyone_plugin.known_models import known_models

    reef.reload()
    assert known_models(reef)[f"trained in {tmp_path / 'work'}"][1] == str(best.resolve())


def test_report_cover_per_sample_and_per_site(reef, tiny_model) -> None:
    config, checkpoint = tiny_model
    params = {"config": str(config), "checkpoint": str(checkpoint), "min_area": 4}
    execute("predict_colonies", reef, params)
    reef.set_values("site", ["north", "north", "south", "south"])
    out = execute("report_cover", reef, {"group_by": "site"}).result
    names = MaskEncoding(FAMILIES).label_names
    assert out["fields"] == [f"cover_{name.replace('/', '_')}" for name in names]
    for sample in reef:
        mask = np.asarray(Image.open(sample["coralseg_refined"].mask_path))
        expected = 100.0 * np.count_nonzero(mask == 1) / mask.size
        assert sample["cover_Acropora"] == pytest.approx(expected)
        assert sum(sample[f] for f in out["fields"]) == pytest.approx(100.0)
    groups = {(row["group"], row["class"]): row for row in out["groups"]}
    north = reef.match({"site": "north"}).values("cover_Acropora")
    assert groups[("north", "Acropora")]["n_images"] == 2
    mean = groups[("north", "Acropora")]["mean_cover_percent"]
    assert mean == round(np.mean(north), 2)  # rounded as the table shows it
    import fiftyone as fo

    sample = reef.first()
    sample["foreign"] = fo.Segmentation(mask=np.zeros((4, 4), np.uint8))
    sample.save()
    message = validation_error("report_cover", reef, {"mask_field": "foreign"})
    assert "Field 'foreign' was not written by coralseg" in message


@pytest.mark.slow
def test_fiftyone_delegated_launch_runs_a_scheduled_evaluation(reef, tiny_model) -> None:
    import subprocess
    import sys
    import time

    from fiftyone.operators.delegated import DelegatedOperationService

    config, checkpoint = tiny_model
    reef.persistent = True  # the executor is another process
    params = {"config": str(config), "checkpoint": str(checkpoint), "eval_key": "launched"}
    import fiftyone.operators as foo

    queued = foo.execute_operator(
        uri("evaluate_model"), dict(view=reef.view()), params=params, request_delegation=True
    )
    launcher = subprocess.Popen(
        [str(Path(sys.executable).with_name("fiftyone")), "delegated", "launch"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    service = DelegatedOperationService()
    try:
        deadline = time.monotonic() + 300
        while service.get(queued.result["id"]).run_state not in ("completed", "failed"):
            assert time.monotonic() < deadline, "fiftyone delegated launch did not finish"
            assert launcher.poll() is None, "fiftyone delegated launch exited"
            time.sleep(1)
    finally:
        launcher.terminate()
        launcher.wait(timeout=30)
    done = service.get(queued.result["id"])
    assert done.run_state == "completed", done.result
    reef.reload()
    assert "launched" in reef.list_evaluations()
    assert len(reef.exists("launched_miou")) == len(reef)


def test_predict_colonies_takes_every_instance_setting(fiftyone) -> None:
    from coral_core.inference.instances import RefineSettings
    from fiftyone_plugin.operators.predict import _settings

    assert _settings({}) == RefineSettings()
    chosen = {"min_area": 9, "min_thickness": 4, "neck_ratio": 0.5}
    assert _settings(chosen) == RefineSettings(min_area=9, min_thickness=4, neck_ratio=0.5)
