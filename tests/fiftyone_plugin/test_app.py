"""The App for real: its server on loopback lists the plugin's operators, and a headless
Chromium opens a dataset, runs the evaluate operator from the operator browser and finds the
per-class IoU fields in the sidebar. Screenshots go to the test's folder (and to
``$CORALSEG_SCREENSHOTS`` when set). Skips where chromium/selenium are not installed."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.fiftyone_plugin.app_driver import (
    app_server,
    browser_missing,
    evaluate_in_app,
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
