"""Colonies in FiftyOne: one inference path for the App and ``coralseg infer``, and colony
evaluation (FiftyOne's detection evaluation with masks, PQ and counts) on a real dataset."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fiftyone_plugin.evaluation import evaluate_colonies
from fiftyone_plugin.masks import read_mask
from fiftyone_plugin.prediction import from_detection, predict_samples
from tests.fiftyone_plugin.colony_fixtures import reef_with_colony_guesses


def test_the_app_and_coralseg_infer_give_the_same_colonies(
    fiftyone, tiny_model, tmp_path: Path
) -> None:
    """An image three windows wide, so the windows' overlap matters (the App used the
    config's half-window stride, coralseg infer none: 99.5% of pixels agreed)."""
    from coralseg.cli import main

    config, checkpoint = tiny_model
    images = tmp_path / "photos"
    images.mkdir()
    pixels = np.random.default_rng(3).integers(0, 255, (224, 340, 3), dtype=np.uint8)
    pixels[40:200, 60:220] = (200, 40, 40)
    paths = [images / "quadrat_0.png"]
    Image.fromarray(pixels).save(paths[0])
    dataset = fiftyone.Dataset()
    dataset.add_samples([fiftyone.Sample(filepath=str(p)) for p in paths], progress=False)
    try:
        predict_samples(dataset, config, checkpoint, mask_dir=tmp_path / "masks")
        out = tmp_path / "infer"
        command = ["infer", "--input-dir", str(images), "--output-dir", str(out)]
        command += ["--segformer-config", str(config), "--segformer-weights", str(checkpoint)]
        assert main(command) == 0
        for sample in dataset:
            stem = Path(sample.filepath).stem
            cli_semantic = np.asarray(Image.open(out / "semantic" / f"{stem}.png"))
            app_semantic = read_mask(sample["coralseg_refined"].mask_path)
            assert cli_semantic.shape == (224, 340)
            assert (app_semantic == cli_semantic).all()
            record = json.loads((out / "instances" / f"{stem}.json").read_text())
            app = [from_detection(d, 224, 340) for d in sample["coralseg_colonies"].detections]
            assert len(app) == len(record["instances"])
            assert sorted((c.label, c.bbox, c.area) for c in app) == sorted(
                (i["label"], tuple(i["bbox"]), i["area"]) for i in record["instances"]
            )
    finally:
        dataset.delete()


def test_colony_evaluation_is_a_fiftyone_detection_evaluation(
    fiftyone, plugins_dir, tmp_path: Path
) -> None:
    import fiftyone as fo

    dataset = reef_with_colony_guesses(fo, tmp_path)
    try:
        summary = evaluate_colonies(dataset)
        key = "coralseg_eval_colonies"
        assert summary.eval_key == key and key in dataset.list_evaluations()
        assert dataset.get_evaluation_info(key).config.method == "coco"  # COCO-style, masks
        assert summary.mean_ap == pytest.approx(dataset.load_evaluation_results(key).mAP())
        for sample in dataset:
            drawn_colonies = sample["gt_polylines_colonies"].detections  # one per polygon
            assert len(drawn_colonies) == len(sample["gt_polylines"].polylines) == 3
            assert all(d.mask is not None and d.mask.any() for d in drawn_colonies)
        colonies = summary.colonies
        assert colonies.per_class["Porites"].pq == 1.0
        assert colonies.per_class["Acropora"].pq == 0.0
        assert colonies.per_class["Montipora"].pq == pytest.approx(2 / (2 + 2))  # 2 TP, 4 FP
        assert [i.count_error for i in colonies.images] == [1, 1]
        assert dataset.values("coralseg_eval_colony_count_error") == [1, 1]
        image_pq = (1 + 0 + 1 / 2) / 3  # Montipora per image: 1 TP, 2 FP
        assert dataset.values("coralseg_eval_colony_pq") == [round(image_pq * 100, 2)] * 2
        assert "mask mAP" in "\n".join(summary.report_lines())

        # Colonies predicted exactly as drawn: every metric is perfect.
        dataset.clone_sample_field("gt_polylines_colonies", "perfect")
        exact = evaluate_colonies(dataset, pred_field="perfect", eval_key="exact")
        assert exact.mean_ap == pytest.approx(1.0)
        assert exact.colonies.pq == pytest.approx(1.0)
        assert exact.colonies.mean_abs_count_error == 0
        assert all(ks == 0 for ks in exact.colonies.size_ks.values())
        assert dataset.values("exact_colony_pq") == [100.0, 100.0]
    finally:
        dataset.delete()
