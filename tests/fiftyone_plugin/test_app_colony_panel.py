"""The colony evaluation in the App: FiftyOne's Model Evaluation panel, opened from the
samples grid's "+" menu in a headless Chromium, lists ``<eval_key>_colonies`` and shows the
mask mAP FiftyOne computed for it. Screenshots go to the test's folder (and to
``$CORALSEG_SCREENSHOTS`` when set). Skips where chromium/selenium are not installed."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from fiftyone_plugin.evaluation import evaluate_colonies
from tests.fiftyone_plugin.app_driver import app_server, browser_missing, evaluation_in_panel
from tests.fiftyone_plugin.colony_fixtures import reef_with_colony_guesses


def panel_number(value: float) -> str:
    """``value`` as the panel prints a metric: rounded to 3 decimals, no trailing zeros
    (its ``formatValue``: ``parseFloat(value.toFixed(3))`` shown as a JavaScript number)."""
    return f"{value:.3f}".rstrip("0").rstrip(".")


def test_model_evaluation_panel_shows_the_colony_map(fiftyone, plugins_dir, tmp_path: Path) -> None:
    reason = browser_missing()
    if reason:
        pytest.skip(reason)
    import fiftyone as fo

    dataset = reef_with_colony_guesses(fo, tmp_path)
    dataset.persistent = True  # the App server is another process
    try:
        summary = evaluate_colonies(dataset)
        key = summary.eval_key
        assert key == "coralseg_eval_colonies" and dataset.list_evaluations() == [key]
        mean_ap = dataset.load_evaluation_results(key).mAP()
        assert 0 < mean_ap < 1
        shots = tmp_path / "screenshots"
        with app_server(env=os.environ, log=tmp_path / "app.log") as url:
            seen = evaluation_in_panel(url, dataset.name, key, shots)
    finally:
        dataset.delete()

    assert "1 Model Evaluations" in seen["overview"]
    assert key in seen["overview"]
    assert seen["map_row"].split() == ["mAP", panel_number(mean_ap)]
    assert "Traceback" not in seen["evaluation"]
    assert sorted(p.name for p in shots.glob("*.png")) == [
        "app-evaluation-panel.png",
        "app-evaluation-summary.png",
    ]
    keep = os.environ.get("CORALSEG_SCREENSHOTS")
    if keep:
        shutil.copytree(shots, keep, dirs_exist_ok=True)
