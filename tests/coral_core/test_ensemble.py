"""Merging instance predictions: each strategy checked on small masks worked out by hand.

The scene (three sources, different ids for the same files and categories):

* ``a.jpg`` (20x16): one colony seen by all three sources. A's mask is rows 0-7 x
  columns 0-7, B's is shifted one column right, C's one row down; both overlap A's with
  IoU 56/72 = 0.78 and each other with 49/79 = 0.62. A and B say Acropora (0.9, 0.6), C says
  Porites (0.5). A alone sees a Porites at rows 10-13 x columns 10-17 (0.8); B alone a
  pocillopora, a category only B has, at rows 12-15 x columns 0-3 (0.3).
* ``b.jpg`` (12x10): A and B each see a Porites, overlapping with IoU 9/63 = 0.14 only.
* ``c.jpg``: only C lists it, with one prediction.
"""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import pytest
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

from coral_core.ensemble import (
    EnsembleSettings,
    ImageInfo,
    ResultSet,
    ensemble,
    result_set_from_coco,
    result_set_to_coco,
)
from coral_core.errors import CoralsegError
from coral_core.formats.coco import CocoResult
from coral_core.formats.rle import coco_rle_to_mask, mask_to_coco_rle
from coral_core.labels.taxonomy import FAMILIES

A_SIZE = (16, 20)  # height, width of a.jpg
B_SIZE = (10, 12)


def box_mask(size: tuple[int, int], rows: tuple[int, int], cols: tuple[int, int]) -> np.ndarray:
    mask = np.zeros(size, dtype=bool)
    mask[rows[0] : rows[1], cols[0] : cols[1]] = True
    return mask


def rle(size, rows, cols) -> dict:
    return mask_to_coco_rle(box_mask(size, rows, cols))


COLONY_A = box_mask(A_SIZE, (0, 8), (0, 8))
COLONY_B = box_mask(A_SIZE, (0, 8), (1, 9))
COLONY_C = box_mask(A_SIZE, (1, 9), (0, 8))


def source_a() -> ResultSet:
    images = [
        {"id": 1, "file_name": "quadrats/a.jpg", "width": 20, "height": 16},
        {"id": 2, "file_name": "quadrats/b.jpg", "width": 12, "height": 10},
    ]
    categories = [{"id": 1, "name": "Acropora"}, {"id": 2, "name": "Porites"}]
    results = [
        {"image_id": 1, "category_id": 1, "score": 0.9, "segmentation": mask_to_coco_rle(COLONY_A)},
        {
            "image_id": 1,
            "category_id": 2,
            "score": 0.8,
            "segmentation": rle(A_SIZE, (10, 14), (10, 18)),
        },
        {
            "image_id": 2,
            "category_id": 2,
            "score": 0.7,
            "segmentation": rle(B_SIZE, (0, 6), (0, 6)),
        },
    ]
    return result_set_from_coco(results, categories, images, name="A")


def source_b() -> ResultSet:
    images = [
        {"id": 10, "file_name": "a.jpg", "width": 20, "height": 16},
        {"id": 11, "file_name": "b.jpg", "width": 12, "height": 10},
    ]
    categories = {0: "acropora", 1: "porites", 2: "pocillopora"}
    # B's colony as an uncompressed RLE, as some exporters write it.
    results = [
        {
            "image_id": 10,
            "category_id": 0,
            "score": 0.6,
            "segmentation": {"size": list(A_SIZE), "counts": column_major_runs(COLONY_B)},
        },
        {
            "image_id": 10,
            "category_id": 2,
            "score": 0.3,
            "segmentation": rle(A_SIZE, (12, 16), (0, 4)),
        },
        {
            "image_id": 11,
            "category_id": 1,
            "score": 0.4,
            "segmentation": rle(B_SIZE, (3, 9), (3, 9)),
        },
    ]
    return result_set_from_coco(results, categories, images, name="B")


def source_c() -> ResultSet:
    images = [
        {"id": 0, "file_name": "b.jpg", "width": 12, "height": 10},
        {"id": 1, "file_name": "a.jpg", "width": 20, "height": 16},
        {"id": 2, "file_name": "c.jpg", "width": 8, "height": 8},
    ]
    categories = [{"id": 5, "name": "Porites"}, {"id": 7, "name": "Acropora"}]
    # C's colony as a polygon along the pixel edges of rows 1-8, columns 0-7.
    results = [
        {"image_id": 1, "category_id": 5, "score": 0.5, "segmentation": [[0, 1, 8, 1, 8, 9, 0, 9]]},
        {
            "image_id": 2,
            "category_id": 7,
            "score": 0.9,
            "segmentation": rle((8, 8), (2, 5), (2, 5)),
        },
    ]
    return result_set_from_coco(results, categories, images, name="C")


def column_major_runs(mask: np.ndarray) -> list[int]:
    flat = mask.ravel(order="F").astype(np.int8)
    changes = np.flatnonzero(np.diff(flat)) + 1
    runs = np.diff(np.concatenate(([0], changes, [flat.size]))).tolist()
    return [0, *runs] if flat[0] else runs


def merge(**settings) -> tuple[ResultSet, list[dict]]:
    """The merged set of A, B, C and its instances as readable records."""
    result = ensemble([source_a(), source_b(), source_c()], EnsembleSettings(**settings))
    merged = result.merged
    records = [
        {
            "file": merged.images[i.image_id].file_name,
            "label": merged.categories[i.category_id],
            "score": i.score,
            "mask": coco_rle_to_mask(i.rle),
        }
        for i in merged.instances
    ]
    return merged, records


def on(records: list[dict], file_name: str) -> list[dict]:
    return [r for r in records if r["file"] == file_name]


def test_sources_parse_rle_uncompressed_rle_and_polygons() -> None:
    b_colony = source_b().instances[0]
    assert np.array_equal(coco_rle_to_mask(b_colony.rle), COLONY_B)
    assert isinstance(b_colony.rle["counts"], str)
    c_colony = source_c().instances[0]
    assert np.array_equal(coco_rle_to_mask(c_colony.rle), COLONY_C)


def test_ids_names_and_images_are_matched_and_the_first_sources_ids_kept() -> None:
    merged, _ = merge()
    assert dict(merged.categories) == {1: "Acropora", 2: "Porites", 3: "pocillopora"}
    assert {i: image.file_name for i, image in merged.images.items()} == {
        1: "quadrats/a.jpg",
        2: "quadrats/b.jpg",
        3: "c.jpg",
    }
    assert (merged.images[3].width, merged.images[3].height) == (8, 8)


def test_weighted_fuses_each_cluster() -> None:
    _, records = merge(strategy="weighted")
    a = on(records, "quadrats/a.jpg")
    assert [(r["label"], round(r["score"], 4)) for r in a] == [
        ("Porites", 0.8),  # A's lone colony, unchanged
        ("Acropora", round((0.9 + 0.6 + 0.5) / 3, 4)),  # 0.9 + 0.6 of the votes vs 0.5
        ("pocillopora", 0.3),
    ]
    # Votes 0.9, 0.6, 0.5 of 2.0: a pixel needs two members; that is A's mask without
    # its corner (0, 0), which only A covers.
    expected = COLONY_A.copy()
    expected[0, 0] = False
    assert np.array_equal(a[1]["mask"], expected)
    # b.jpg: IoU 0.14 < 0.5, so both stay, each as predicted.
    b = on(records, "quadrats/b.jpg")
    assert [(r["label"], r["score"]) for r in b] == [("Porites", 0.7), ("Porites", 0.4)]
    assert np.array_equal(b[1]["mask"], box_mask(B_SIZE, (3, 9), (3, 9)))
    assert [r["label"] for r in on(records, "c.jpg")] == ["Acropora"]


def test_weights_change_label_mask_and_score() -> None:
    # Scaled to 0.25, 0.25, 1: C's vote 0.5 beats A's 0.225 + B's 0.15 and is more than
    # half of 0.875 on its own, while A and B together (0.375) are not.
    _, records = merge(strategy="weighted", weights=(1, 1, 4))
    colony = on(records, "quadrats/a.jpg")[1]
    assert colony["label"] == "Porites"
    assert colony["score"] == pytest.approx((0.9 + 0.6 + 4 * 0.5) / 6)
    assert np.array_equal(colony["mask"], COLONY_C)


def test_weights_are_relative() -> None:
    _, once = merge(weights=(1, 0.5, 2))
    _, twice = merge(weights=(2, 1, 4))
    assert [(r["label"], r["score"]) for r in once] == [(r["label"], r["score"]) for r in twice]


def test_a_higher_iou_threshold_splits_the_cluster() -> None:
    # B and C overlap A's colony with IoU 0.78, each other with 0.62; at 0.8 none merge.
    _, records = merge(strategy="weighted", iou=0.8)
    a = on(records, "quadrats/a.jpg")
    assert sorted((r["label"], r["score"]) for r in a) == [
        ("Acropora", 0.6),
        ("Acropora", 0.9),
        ("Porites", 0.5),
        ("Porites", 0.8),
        ("pocillopora", 0.3),
    ]


def test_voting_keeps_objects_enough_sources_agree_on() -> None:
    _, records = merge(strategy="voting", min_votes=2)
    assert len(records) == 1  # every other object has one source only
    (colony,) = records
    assert colony["label"] == "Acropora"  # two sources against one
    assert np.array_equal(colony["mask"], COLONY_A)  # the highest score, 0.9
    assert colony["score"] == pytest.approx((0.9 + 0.6 + 0.5) / 3)
    _, all_three = merge(strategy="voting", min_votes=3)
    assert len(all_three) == 1
    _, any_one = merge(strategy="voting", min_votes=1)
    assert len(any_one) == 6


def test_voting_label_ties_go_to_the_larger_sum_of_votes() -> None:
    sources = [source_a(), source_c()]  # Acropora 0.9 against Porites 0.5, one vote each
    result = ensemble(sources, EnsembleSettings(strategy="voting"))
    (colony,) = result.merged.instances
    assert result.merged.categories[colony.category_id] == "Acropora"
    result = ensemble(sources, EnsembleSettings(strategy="voting", weights=(1, 2)))
    (colony,) = result.merged.instances
    assert result.merged.categories[colony.category_id] == "Porites"  # 0.45 against 0.5


def test_nms_per_class_and_class_agnostic() -> None:
    _, records = merge(strategy="nms")
    a = on(records, "quadrats/a.jpg")
    # B's Acropora (IoU 0.78 with A's) goes; C's Porites overlaps no other Porites.
    assert [(r["label"], r["score"]) for r in a] == [
        ("Acropora", 0.9),
        ("Porites", 0.8),
        ("Porites", 0.5),
        ("pocillopora", 0.3),
    ]
    assert np.array_equal(a[0]["mask"], COLONY_A)
    assert np.array_equal(a[2]["mask"], COLONY_C)
    _, agnostic = merge(strategy="nms", class_agnostic=True)
    assert [(r["label"], r["score"]) for r in on(agnostic, "quadrats/a.jpg")] == [
        ("Acropora", 0.9),
        ("Porites", 0.8),
        ("pocillopora", 0.3),
    ]
    assert len(on(agnostic, "quadrats/b.jpg")) == 2  # IoU 0.14


def test_nms_weights_scale_scores_and_reorder() -> None:
    _, records = merge(strategy="nms", class_agnostic=True, weights=(1, 1, 4))
    a = on(records, "quadrats/a.jpg")
    # Scaled weights 0.25, 0.25, 1: C's 0.5 now leads and suppresses A's and B's colony.
    assert [(r["label"], r["score"]) for r in a] == [
        ("Porites", 0.5),
        ("Porites", 0.2),
        ("pocillopora", 0.075),
    ]
    assert np.array_equal(a[0]["mask"], COLONY_C)


def test_report_counts_and_unmatched_images_and_categories() -> None:
    result = ensemble([source_a(), source_b(), source_c()], EnsembleSettings(strategy="voting"))
    a, b, c = result.sources
    assert (a.instances, a.used, b.instances, b.used, c.instances, c.used) == (3, 1, 3, 1, 2, 1)
    assert b.unmatched_categories == ("pocillopora",)
    assert a.unmatched_categories == c.unmatched_categories == ()
    assert c.unmatched_images == ("c.jpg",)
    assert a.unmatched_images == b.unmatched_images == ()
    nms = ensemble([source_a(), source_b(), source_c()], EnsembleSettings(strategy="nms"))
    assert [s.used for s in nms.sources] == [3, 2, 2]


def test_label_map_and_taxonomy() -> None:
    b = source_b()
    renamed = dataclasses.replace(b, categories={0: "acro_branching", 1: "porites", 2: "Pocillo"})
    settings = EnsembleSettings(label_map={"acro_branching": "Acropora"})
    merged = ensemble([source_a(), renamed], settings).merged
    assert sorted(merged.categories.values()) == ["Acropora", "Pocillo", "Porites"]
    assert len(merged.instances) == 5  # of 6: A's and B's colonies fused
    (colony,) = [i for i in merged.instances if i.score == pytest.approx((0.9 + 0.6) / 2)]
    assert merged.categories[colony.category_id] == "Acropora"
    # With a taxonomy, names resolve through it; names it lacks are dropped and reported.
    settings = EnsembleSettings(label_map={"acro_branching": "Acropora"}, taxonomy=FAMILIES)
    result = ensemble([source_a(), renamed], settings)
    assert sorted(result.merged.categories.values()) == ["Acropora", "Porites"]
    assert result.sources[1].unknown_categories == ("Pocillo",)
    assert dict(result.sources[1].dropped) == {"category unknown to the taxonomy": 1}


def test_output_is_valid_coco_for_pycocotools() -> None:
    merged, _ = merge()
    data = result_set_to_coco(merged)
    coco = COCO()
    coco.dataset = data
    coco.createIndex()
    assert len(coco.getAnnIds()) == len(merged.instances)
    ground_truth = COCO()
    ground_truth.dataset = {**data, "annotations": []}
    ground_truth.createIndex()
    results = ground_truth.loadRes([dict(a) for a in data["annotations"]])
    assert len(results.getAnnIds()) == len(merged.instances)
    first = data["annotations"][0]
    assert first["area"] == int(mask_utils.area(first["segmentation"]))
    assert first["bbox"] == list(mask_utils.toBbox(first["segmentation"]))


def test_empty_masks_are_dropped_and_counted() -> None:
    a = source_a()
    empty = CocoResult(1, 1, 0.99, mask_to_coco_rle(np.zeros(A_SIZE, bool)))
    a = dataclasses.replace(a, instances=(*a.instances, empty))
    result = ensemble([a, source_b()])
    assert dict(result.sources[0].dropped) == {"empty mask": 1}
    assert all(i.score != 0.99 for i in result.merged.instances)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"strategy": "wbf"}, "unknown strategy 'wbf'; use one of weighted, voting, nms"),
        ({"weights": (1, -1, 1)}, "weights must be positive numbers"),
        ({"weights": (1, 0, 1)}, "weights must be positive numbers"),
        ({"iou": 0}, "the IoU threshold must be in (0, 1]"),
        ({"iou": 1.5}, "the IoU threshold must be in (0, 1]"),
        ({"min_votes": 0}, "min_votes must be at least 1"),
        ({"strategy": "weighted", "class_agnostic": True}, "only applies to the nms strategy"),
        ({"label_map": {"x": "Nope"}, "taxonomy": FAMILIES}, "'Nope', which is not one"),
    ],
)
def test_bad_settings(settings: dict, message: str) -> None:
    with pytest.raises(CoralsegError, match=re.escape(message)):
        EnsembleSettings(**settings)


def test_bad_ensembles() -> None:
    a, b, c = source_a(), source_b(), source_c()
    with pytest.raises(CoralsegError, match="got 2 weights for 3 result sets"):
        ensemble([a, b, c], EnsembleSettings(weights=(1, 0.5)))
    with pytest.raises(CoralsegError, match="at least two result sets, got 1"):
        ensemble([a])
    with pytest.raises(CoralsegError, match="min_votes 4 is more than the 3 result sets"):
        ensemble([a, b, c], EnsembleSettings(strategy="voting", min_votes=4))
    other = dataclasses.replace(
        b,
        name="elsewhere",
        images={k: dataclasses.replace(v, file_name=f"x{k}.jpg") for k, v in b.images.items()},
        instances=(),
    )
    with pytest.raises(CoralsegError, match="no image in common"):
        ensemble([a, other])


def test_the_same_file_with_two_sizes_is_an_error() -> None:
    images = [{"id": 1, "file_name": "a.jpg", "width": 40, "height": 32}]
    big = result_set_from_coco([], [{"id": 1, "name": "Acropora"}], images, name="big")
    with pytest.raises(CoralsegError, match=r"image 'a.jpg' is 20x16 in A but 40x32 in big"):
        ensemble([source_a(), big])


IMAGES = [{"id": 1, "file_name": "a.jpg", "width": 20, "height": 16}]
CATEGORIES = [{"id": 1, "name": "Acropora"}]


def one_result(**changes) -> list[dict]:
    return [
        {"image_id": 1, "category_id": 1, "score": 0.5, "segmentation": mask_to_coco_rle(COLONY_A)}
        | changes
    ]


@pytest.mark.parametrize(
    ("results", "images", "categories", "message"),
    [
        ({"not": "a list"}, IMAGES, CATEGORIES, "COCO results must be a list"),
        ([1, 2], IMAGES, CATEGORIES, "prediction #1 is not a JSON object"),
        (one_result(score=None), IMAGES, CATEGORIES, "score must be a finite number"),
        (one_result(score=-0.1), IMAGES, CATEGORIES, "score must be a finite number"),
        ([{"image_id": 1}], IMAGES, CATEGORIES, "has no category_id, segmentation, score"),
        (one_result(image_id=9), IMAGES, CATEGORIES, "refers to image_id 9"),
        (one_result(category_id=9), IMAGES, CATEGORIES, "refers to category_id 9"),
        (
            one_result(segmentation=rle((8, 10), (0, 2), (0, 2))),
            IMAGES,
            CATEGORIES,
            r"prediction #1: its mask is 10x8 but image 'a.jpg' is 20x16",
        ),
        (
            one_result(segmentation={"size": [16, 20], "counts": [3, 4]}),
            IMAGES,
            CATEGORIES,
            "runs cover 7 pixels",
        ),
        (one_result(segmentation=[[0, 0, 4, 0]]), IMAGES, CATEGORIES, "fewer than 3 points"),
        (one_result(segmentation="abc"), IMAGES, CATEGORIES, "a segmentation must be a COCO RLE"),
        ([], [{"id": 1}], CATEGORIES, 'image #1 must be a record with "id", "file_name"'),
        ([], [IMAGES[0] | {"width": 0}], CATEGORIES, "positive whole numbers of pixels"),
        ([], IMAGES * 2, CATEGORIES, "repeats image id 1"),
        ([], IMAGES, [{"id": "x", "name": "A"}], "category id 'x' is not an integer"),
        ([], IMAGES, "cats", '"categories" must be a list'),
    ],
)
def test_files_that_are_not_coco(results, images, categories, message: str) -> None:
    with pytest.raises(CoralsegError, match=message) as info:
        result_set_from_coco(results, categories, images, name="preds.json")
    assert str(info.value).startswith("preds.json: ")


def test_instance_size_must_match_its_image() -> None:
    instance = CocoResult(1, 1, 0.5, rle((8, 10), (0, 2), (0, 2)))
    images = {1: result_set_from_coco([], CATEGORIES, IMAGES).images[1]}
    with pytest.raises(CoralsegError, match=r"has a 10x8 mask but its image 'a\.jpg' is 20x16"):
        ResultSet("mine", images, {1: "Acropora"}, (instance,))


def test_images_match_by_full_path_when_base_names_repeat() -> None:
    images = [
        {"id": 1, "file_name": "site1/a.jpg", "width": 20, "height": 16},
        {"id": 2, "file_name": "site2/a.jpg", "width": 20, "height": 16},
    ]
    results = [
        {"image_id": 2, "category_id": 1, "score": 0.5, "segmentation": mask_to_coco_rle(COLONY_A)}
    ]
    first = result_set_from_coco(results, CATEGORIES, images, name="first")
    second_images = [
        dict(i, id=i["id"] + 100, file_name=".\\" + i["file_name"].replace("/", "\\"))
        for i in images
    ]
    second = result_set_from_coco(
        [dict(results[0], image_id=102)], CATEGORIES, second_images, name="second"
    )
    merged = ensemble([first, second], EnsembleSettings(strategy="voting")).merged
    (instance,) = merged.instances
    assert merged.images[instance.image_id].file_name == "site2/a.jpg"


def one_image_sources(masks: list[np.ndarray], scores: list[float]) -> list[ResultSet]:
    """One source per mask, each with that mask as its only prediction on ``a.jpg``."""
    height, width = masks[0].shape
    images = {1: ImageInfo(1, "a.jpg", width, height)}
    return [
        ResultSet(f"s{n}", images, {1: "Acropora"}, (CocoResult(1, 1, score, mask_to_coco_rle(m)),))
        for n, (m, score) in enumerate(zip(masks, scores, strict=True))
    ]


@pytest.mark.parametrize("seed", range(4))
def test_weighted_mask_is_the_pixel_vote(seed: int) -> None:
    rng = np.random.default_rng(seed)
    masks = [(rng.random((12, 14)) < 0.5) | box_mask((12, 14), (3, 9), (3, 11)) for _ in range(5)]
    scores = rng.uniform(0.1, 1, size=5).tolist()
    weights = tuple(rng.uniform(0.2, 3, size=5).tolist())
    settings = EnsembleSettings(weights=weights, iou=0.01)
    (fused,) = ensemble(one_image_sources(masks, scores), settings).merged.instances
    votes = np.array(weights) / max(weights) * np.array(scores)
    tally = np.tensordot(votes, np.array(masks, dtype=float), axes=1)
    assert np.array_equal(coco_rle_to_mask(fused.rle), tally >= votes.sum() / 2 - 1e-12)
    assert fused.score == pytest.approx(np.dot(weights, scores) / sum(weights))


def test_weighted_keeps_the_strongest_mask_when_no_pixel_has_half_the_votes() -> None:
    # The first member covers 10x10 pixels (vote 0.3); four others (0.175 each) cover one
    # quadrant each, so no pixel gets more than 0.475 of the 1.0 votes.
    first = box_mask((10, 10), (0, 10), (0, 10))
    quadrants = [
        box_mask((10, 10), rows, cols) for rows in ((0, 5), (5, 10)) for cols in ((0, 5), (5, 10))
    ]
    sources = one_image_sources([first, *quadrants], [0.3] + [0.175] * 4)
    (fused,) = ensemble(sources, EnsembleSettings(iou=0.2)).merged.instances
    assert np.array_equal(coco_rle_to_mask(fused.rle), first)
