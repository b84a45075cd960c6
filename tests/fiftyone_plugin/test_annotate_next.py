"""fiftyone_plugin.annotate_next: the samples nobody annotated, scored by the model's
uncertainty, and the saved view of them most uncertain first."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from coral_core.errors import CoralsegError
from fiftyone_plugin.annotate_next import (
    DEFAULT_FIELD,
    DEFAULT_VIEW,
    check_unannotated,
    image_score,
    score_samples,
    unannotated,
)
from fiftyone_plugin.models import semantic_model


def test_bad_options_and_nothing_to_score_are_sentences(reef, tiny_model) -> None:
    config, checkpoint = tiny_model
    with pytest.raises(CoralsegError, match="unknown uncertainty 'variance'; use one of entropy"):
        score_samples(reef, config, checkpoint, method="variance")
    with pytest.raises(CoralsegError, match="at least one sample, got limit 0"):
        score_samples(reef, config, checkpoint, limit=0)
    with pytest.raises(CoralsegError) as caught:
        score_samples(reef, config, checkpoint)
    assert str(caught.value) == (
        "all 4 target samples are already annotated (tagged train, val or test); "
        "choose images without a split tag"
    )
    with pytest.raises(CoralsegError, match=r"^there are no samples to score$"):
        check_unannotated(reef.limit(0))
    assert not reef.has_sample_field(DEFAULT_FIELD)
    assert not reef.has_saved_view(DEFAULT_VIEW)


def test_only_unannotated_samples_are_scored_and_ranked(reef, tiny_model) -> None:
    config, checkpoint = tiny_model
    reef.untag_samples(["train", "val"])
    reef.limit(1).tag_samples("Validation")  # another spelling of a split: annotated
    reef.skip(1).limit(1).tag_samples(["Training", "test"])  # tagged twice: annotated too
    ids, paths, annotated = unannotated(reef)
    assert annotated == 2 and ids == reef.skip(2).values("id")
    assert check_unannotated(reef) == 2
    progress = []

    summary = score_samples(
        reef, config, checkpoint, method="margin", progress=lambda f, s: progress.append((f, s))
    )

    assert progress == [(0.0, "image 1/2"), (0.5, "image 2/2")]
    assert (summary.field, summary.view_name, summary.method) == (
        DEFAULT_FIELD,
        DEFAULT_VIEW,
        "margin",
    )
    assert summary.skipped_annotated == 2
    scores = reef.values(DEFAULT_FIELD)
    assert scores[:2] == [None, None]  # the annotated ones
    model = semantic_model(config, checkpoint)
    for path, score in zip(paths, scores[2:], strict=True):
        expected = image_score(model, np.asarray(Image.open(path).convert("RGB")), "margin")
        assert score == pytest.approx(expected) and 0 <= score <= 1
    assert [p for p, _ in summary.ranking] == sorted(
        paths, key=lambda p: -scores[paths.index(p) + 2]
    )
    view = reef.load_saved_view(DEFAULT_VIEW)
    assert list(zip(*view.values(["filepath", DEFAULT_FIELD]), strict=True)) == summary.ranking


def test_a_rerun_replaces_the_view_and_can_keep_the_top_only(reef, tiny_model) -> None:
    config, checkpoint = tiny_model
    reef.untag_samples(["train", "val"])
    score_samples(reef, config, checkpoint)
    top = score_samples(reef, config, checkpoint, field="entropy_2", limit=1)
    assert len(top.ranking) == 1
    assert top.ranking[0][1] == max(reef.values("entropy_2"))
    assert len(reef.load_saved_view(DEFAULT_VIEW)) == 1
    assert reef.list_saved_views() == [DEFAULT_VIEW]
    unsaved = score_samples(reef.skip(2), config, checkpoint, view_name=None)
    assert unsaved.view_name is None and len(unsaved.ranking) == 2
    assert reef.list_saved_views() == [DEFAULT_VIEW]


def test_a_score_field_holding_something_else_is_refused_before_scoring(reef, tiny_model) -> None:
    config, checkpoint = tiny_model
    reef.untag_samples(["train", "val"])
    before = reef.values("gt_polylines")
    for taken in ("gt_polylines", "filepath"):
        with pytest.raises(
            CoralsegError, match=f"field '{taken}' already holds .*; choose another"
        ):
            score_samples(reef, config, checkpoint, field=taken)
    assert reef.values("gt_polylines") == before
    assert not reef.has_saved_view(DEFAULT_VIEW)
