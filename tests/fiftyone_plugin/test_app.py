"""The App for real: its server on loopback lists the plugin's operators, and a headless
Chromium opens a dataset, runs the evaluate operator from the operator browser and finds the
per-class IoU fields in the sidebar; and (slow) meets the forms as a new user: the cover form
says which samples lack a mask and which group-by field is missing, the evaluate form offers
the recorded model by name and a new evaluation key, and its result shows the panel's
Accuracy.
Screenshots go to the test's folder (and to ``$CORALSEG_SCREENSHOTS`` when set). Skips where
chromium/selenium are not installed."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.fiftyone_plugin.app_driver import (
    app_server,
    browser_missing,
    evaluate_in_app,
    forms_in_app,
    list_operators,
)
from tests.fiftyone_plugin.conftest import PLUGIN, REPO


def test_operators_listed_and_evaluate_run_from_the_browser(
    reef, tiny_model, tmp_path: Path
) -> None:
    import yaml

    reason = browser_missing()
    if reason:
        pytest.skip(reason)
    reef.persistent = True  # the App server is another process
    config, checkpoint = tiny_model
    shots = tmp_path / "screenshots"
    with app_server(env=os.environ, log=tmp_path / "app.log") as url:
        listed = {op["uri"] for op in list_operators(url, reef.name)}
        manifest = yaml.safe_load((REPO / "fiftyone.yml").read_text())
        assert {f"{PLUGIN}/{name}" for name in manifest["operators"]} <= listed
        listed_labels = [
            op["config"]["label"]
            for op in list_operators(url, reef.name)
            if op["uri"].startswith(PLUGIN) and not op["config"].get("unlisted")
        ]
        assert len(listed_labels) == len(manifest["operators"]) - 1  # the metric is unlisted
        browser, text = evaluate_in_app(url, reef.name, str(config), str(checkpoint), shots)

    for operator in listed_labels:
        assert operator in browser  # the operator browser lists every operator by its label
    assert "coralseg_eval_miou" in text and "coralseg_eval_iou_Acropora" in text
    reef.reload()
    assert "coralseg_eval" in reef.list_evaluations()
    assert len(reef.exists("coralseg_eval_iou_Acropora")) > 0
    pictures = sorted(p.name for p in shots.glob("*.png"))
    assert pictures == sorted(
        [
            "app-dataset.png",
            "app-operator-browser.png",
            "app-evaluate-form.png",
            "app-evaluate-result.png",
            "app-iou-fields.png",
        ]
    )

    keep = os.environ.get("CORALSEG_SCREENSHOTS")
    if keep:
        shutil.copytree(shots, keep, dirs_exist_ok=True)


@pytest.mark.slow
def test_forms_as_a_new_user_meets_them_in_the_browser(reef, tiny_model, tmp_path: Path) -> None:
    """The cover form says which samples lack a mask and which group-by field is missing;
    the evaluate form offers the recorded model by name and a new evaluation key, and its
    result shows the Model Evaluation panel's Accuracy (test_forms.py checks the same
    through FiftyOne's executor in the default run)."""
    import fiftyone.operators as foo

    from fiftyone_plugin.known_models import remember_model

    reason = browser_missing()
    if reason:
        pytest.skip(reason)
    reef.persistent = True
    config, checkpoint = tiny_model
    model = {"config": str(config), "checkpoint": str(checkpoint)}
    foo.execute_operator(f"{PLUGIN}/evaluate_model", {"view": reef.view()}, params=model)
    remember_model(reef, "coralseg demo", config, checkpoint)
    train = reef.match_tags("train")
    foo.execute_operator(
        f"{PLUGIN}/predict_colonies", {"view": train.view()}, params={**model, "min_area": 4}
    )
    with app_server(env=os.environ, log=tmp_path / "app.log") as url:
        seen = forms_in_app(url, reef.name, tmp_path / "forms")

    assert "2 of the 4 target samples have no 'coralseg_refined' mask" in seen["cover_form"]
    assert "This dataset has no sample field 'site' to group by" in seen["cover_group_by"]
    assert "Traceback" not in seen["cover_form"] + seen["cover_group_by"]
    assert "coralseg demo" in seen["evaluate_form"]  # the Model choice, no paths to type
    assert seen["eval_key"] == "coralseg_eval_2"  # the first evaluation is kept
    assert "Accuracy (%)" in seen["evaluate_result"]
    assert "Pixel accuracy" not in seen["evaluate_result"]
    reef.reload()
    assert set(reef.list_evaluations()) == {"coralseg_eval", "coralseg_eval_2"}
    keep = os.environ.get("CORALSEG_SCREENSHOTS")
    if keep:
        shutil.copytree(tmp_path / "forms", keep, dirs_exist_ok=True)
