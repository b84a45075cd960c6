"""The evaluation's two steps apart: semantic maps predicted (or stored from elsewhere, as
``coralseg demo``'s two-stage pass does), then evaluated against the polygons."""

from __future__ import annotations

import numpy as np
import pytest

from coral_core.errors import CoralsegError
from fiftyone_plugin.evaluation import (
    evaluate_predictions,
    evaluate_samples,
    predict_semantic,
    store_semantic_maps,
)
from fiftyone_plugin.masks import field_encoding, read_mask


def _maps(samples, field: str):
    ids, paths = samples.values(["id", f"{field}.mask_path"])
    return [(sample_id, read_mask(path)) for sample_id, path in zip(ids, paths, strict=True)]


def test_maps_predicted_apart_or_stored_are_evaluated_without_the_model(
    reef, tiny_model, monkeypatch
) -> None:
    import coral_core.inference.semantic as semantic

    config, checkpoint = tiny_model
    whole = evaluate_samples(reef, config, checkpoint, eval_key="whole")
    assert whole.samples == len(reef) and reef.count("coralseg_semantic") == len(reef)
    encoding = field_encoding(reef, "coralseg_semantic")
    assert encoding is not None and encoding.label_names == whole.scores.class_names
    # predicting apart stores the same maps, named the same
    assert predict_semantic(reef, config, checkpoint, pred_field="again") == encoding
    for (_, first), (_, again) in zip(
        _maps(reef, "coralseg_semantic"), _maps(reef, "again"), strict=True
    ):
        assert np.array_equal(first, again)

    def no_model(*args, **kwargs):
        raise AssertionError("the semantic model ran on stored maps")

    monkeypatch.setattr(semantic, "predict", no_model)
    # the model's maps, stored under another field by other means: the same scores
    store_semantic_maps(reef, _maps(reef, "coralseg_semantic"), encoding, "copied")
    copied = evaluate_predictions(reef, pred_field="copied", eval_key="copied")
    assert copied.rows() == whole.rows() and copied.scores.miou == whole.scores.miou
    assert "copied" in reef.list_evaluations() and copied.colonies is None
    assert evaluate_predictions(reef, pred_field="again", eval_key="again").rows() == whole.rows()
    # the rasterized polygons as the maps: what is stored is what is judged
    store_semantic_maps(reef, _maps(reef, "gt_polylines_mask"), encoding, "perfect")
    perfect = evaluate_predictions(reef, pred_field="perfect", eval_key="perfect")
    drawn = [i for i, pixels in enumerate(perfect.scores.gt_pixels) if pixels > 0]
    assert len(drawn) > 2 and all(perfect.scores.iou[i] == 1.0 for i in drawn)
    assert set(perfect.cover_error.values()) == {0.0}
    assert perfect.scores.miou == 1.0 > whole.scores.miou


def test_evaluating_missing_maps_says_to_predict_first(reef, tiny_model) -> None:
    config, checkpoint = tiny_model
    with pytest.raises(CoralsegError, match=r"'nothing' holds no semantic maps .* predict them"):
        evaluate_predictions(reef, pred_field="nothing")
    predict_semantic(reef.limit(1), config, checkpoint, pred_field="some")
    with pytest.raises(CoralsegError, match="3 of the 4 samples have no semantic map in 'some'"):
        evaluate_predictions(reef, pred_field="some")
    assert "coralseg_eval" not in reef.list_evaluations()
