from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from segment_anything import SamPredictor
from segment_anything.modeling import MaskDecoder

from coral_core.errors import CoralsegError
from coral_core.inference.sam_models import (
    SIZES,
    CoralScopMaskDecoder,
    SamRunner,
    SamSpec,
    build_sam_model,
    detect_sam_layout,
    load_sam,
    load_sam_runner,
    load_sam_state_dict,
)
from tests.coral_core.sam_layout import coralscop_extra_shapes, official_state_dict

IMAGE_HW = (64, 96)


@dataclass(frozen=True)
class Files:
    sam: Path
    coralscop: Path
    state: dict[str, torch.Tensor]  # the CoralSCoP file's tensors (SAM's are a subset)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Files:
    folder = tmp_path_factory.mktemp("sam")
    state = official_state_dict("vit_b", coralscop=True)
    torch.save(state, folder / "vit_b_coralscop.pth")
    extra = coralscop_extra_shapes()
    sam_state = {key: value for key, value in state.items() if key not in extra}
    torch.save(sam_state, folder / "sam_vit_b_01ec64.pth")
    return Files(folder / "sam_vit_b_01ec64.pth", folder / "vit_b_coralscop.pth", state)


def _image() -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (*IMAGE_HW, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def coralscop_runner(files: Files) -> SamRunner:
    runner = load_sam_runner(files.coralscop, prompts_per_batch=2)  # as every adapter loads it
    assert runner.has_category_head and runner.prompts_per_batch == 2
    runner.set_image(_image())
    return runner


@pytest.fixture(scope="module")
def sam_runner(files: Files, coralscop_runner: SamRunner) -> SamRunner:
    model, _ = load_sam(files.sam)
    # The two files share their image encoder, so the CoralSCoP runner's embedding of the same
    # image is this model's too: one ViT-B forward at 1024 px (15-45 s on two busy CPU cores)
    # serves both runners.
    embedding = coralscop_runner.predictor.features
    model.image_encoder.forward = lambda _: embedding
    runner = SamRunner(model, prompts_per_batch=2)
    runner.set_image(_image())
    return runner


def test_sam_vit_b_loads_strictly(files: Files) -> None:
    model, spec = load_sam(files.sam)
    assert spec == SamSpec("sam", "vit_b", has_category_head=False, checkpoint=files.sam)
    assert type(model.mask_decoder) is MaskDecoder
    assert not model.training
    tensors = list(model.parameters()) + list(model.buffers())
    assert not any(t.is_meta for t in tensors)
    key = "image_encoder.blocks.7.attn.qkv.weight"
    torch.testing.assert_close(model.state_dict()[key], files.state[key])


def test_coralscop_loads_strictly_with_its_category_branch(files: Files) -> None:
    model, spec = load_sam(files.coralscop)
    assert spec == SamSpec("coralscop", "vit_b", has_category_head=True, checkpoint=files.coralscop)
    assert isinstance(model.mask_decoder, CoralScopMaskDecoder)
    loaded = model.state_dict()
    assert set(loaded) == set(files.state)
    for key in coralscop_extra_shapes():
        torch.testing.assert_close(loaded[key], files.state[key])


@pytest.mark.parametrize("coralscop", [False, True], ids=["sam", "coralscop"])
@pytest.mark.parametrize("size", list(SIZES))
def test_every_layout_is_detected_and_matches_on_the_meta_device(
    size: str, coralscop: bool
) -> None:
    state = official_state_dict(size, coralscop=coralscop, device="meta")
    variant = "coralscop" if coralscop else "sam"
    assert detect_sam_layout(state) == (variant, size)
    with torch.device("meta"):
        model = build_sam_model(variant, size)
    load_sam_state_dict(model, state, assign=True)


def test_a_partial_file_names_the_missing_keys(files: Files, tmp_path: Path) -> None:
    partial = {k: v for k, v in files.state.items() if not k.startswith("image_encoder.blocks.")}
    path = tmp_path / "partial.pth"
    torch.save(partial, path)
    with pytest.raises(CoralsegError, match=r"missing: image_encoder\.blocks\.0\.norm1\.weight"):
        load_sam(path)


def test_a_forced_size_that_is_not_the_files_names_the_misshapen_keys(files: Files) -> None:
    with pytest.raises(CoralsegError, match=r"wrong shape: image_encoder\.pos_embed"):
        load_sam(files.sam, size="vit_l")


def test_forcing_plain_sam_on_a_coralscop_file_names_its_extra_keys(files: Files) -> None:
    with pytest.raises(CoralsegError, match=r"unexpected: mask_decoder\.cate_"):
        load_sam(files.coralscop, variant="sam")


def test_unknown_layouts_are_clear_errors(tmp_path: Path) -> None:
    dinov2 = tmp_path / "dinov2.pth"
    torch.save({"cls_token": torch.zeros(1, 1, 8), "pos_embed": torch.zeros(1, 5, 8)}, dinov2)
    with pytest.raises(CoralsegError, match="not a Segment Anything or CoralSCoP model"):
        load_sam(dinov2)
    narrow = tmp_path / "narrow.pth"
    torch.save({"image_encoder.pos_embed": torch.zeros(1, 4, 4, 512)}, narrow)
    with pytest.raises(CoralsegError, match="512 channels wide"):
        load_sam(narrow)
    with pytest.raises(CoralsegError, match="unknown SAM variant"):
        build_sam_model("hq_sam", "vit_b")


def _check(prediction, count: int, category: bool) -> None:
    assert prediction.masks.shape == (count, *IMAGE_HW)
    assert prediction.masks.dtype == np.bool_
    assert prediction.iou_scores.shape == (count,)
    assert prediction.iou_scores.dtype == np.float32
    if category:
        assert prediction.coral_scores.shape == (count,)
        assert prediction.coral_scores.dtype == np.float32
        assert np.all((prediction.coral_scores >= 0) & (prediction.coral_scores <= 1))
    else:
        assert prediction.coral_scores is None


POINTS = np.array([[10, 5], [50.5, 30], [95, 63]])
BOXES = np.array([[0, 0, 40, 30], [20.5, 10, 95, 63]])


@pytest.mark.parametrize("multimask", [False, True], ids=["single", "best_of_3"])
@pytest.mark.parametrize("model", ["sam", "coralscop"])
def test_point_and_box_prompts_give_one_mask_each(
    model: str, multimask: bool, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    runner: SamRunner = request.getfixturevalue(f"{model}_runner")
    monkeypatch.setattr(runner, "multimask", multimask)
    assert runner.image_size == IMAGE_HW
    category = model == "coralscop"
    # Three points in batches of two, a label-0 point among them; two boxes in one batch.
    _check(runner.predict_points(POINTS, labels=np.array([1, 0, 1])), len(POINTS), category)
    _check(runner.predict_boxes(BOXES), len(BOXES), category)
    _check(runner.predict_points(np.zeros((0, 2))), 0, category)


def test_prompts_are_decoded_in_small_batches_on_a_cpu(sam_runner: SamRunner) -> None:
    assert SamRunner(sam_runner.model).prompts_per_batch == 2
    assert SamRunner(sam_runner.model, prompts_per_batch=5).prompts_per_batch == 5
    with pytest.raises(CoralsegError, match="at least 1"):
        SamRunner(sam_runner.model, prompts_per_batch=0)


def test_runner_agrees_with_segment_anythings_predictor(sam_runner: SamRunner) -> None:
    predictor: SamPredictor = sam_runner.predictor
    logits, iou, _ = predictor.predict(
        POINTS[1:2], np.array([1]), multimask_output=False, return_logits=True
    )
    prediction = sam_runner.predict_points(POINTS[1:2])
    # Masks are upscaled in another order of sums (coral_core.inference.sam_upscaling): equal except
    # where a logit is within rounding of SAM's threshold 0.
    clear = np.abs(logits) > 1e-3
    np.testing.assert_array_equal(prediction.masks[clear], (logits > 0)[clear])
    np.testing.assert_allclose(prediction.iou_scores, iou, rtol=1e-5)


def test_coralscop_decoder_keeps_sams_masks_and_adds_categories(
    coralscop_runner: SamRunner,
) -> None:
    model = coralscop_runner.model
    decoder: CoralScopMaskDecoder = model.mask_decoder
    plain = MaskDecoder(transformer_dim=256, transformer=decoder.transformer).eval()
    plain.load_state_dict(
        {k: v for k, v in decoder.state_dict().items() if not k.startswith("cate_")}
    )
    points = (torch.tensor([[[100.0, 200.0]], [[700.0, 30.0]]]), torch.ones(2, 1, dtype=torch.int))
    sparse, dense = model.prompt_encoder(points=points, boxes=None, masks=None)
    inputs = {
        "image_embeddings": coralscop_runner.predictor.features,
        "image_pe": model.prompt_encoder.get_dense_pe(),
        "sparse_prompt_embeddings": sparse,
        "dense_prompt_embeddings": dense,
        "multimask_output": True,
    }
    with torch.inference_mode():
        masks, iou, category = decoder.forward_with_category(**inputs)
        expected_masks, expected_iou = plain(**inputs)
        forward_masks, _ = decoder(**inputs)
    assert category.shape == (2, 3, 2)
    torch.testing.assert_close(masks, expected_masks)
    torch.testing.assert_close(iou, expected_iou)
    torch.testing.assert_close(forward_masks, masks)


def test_bad_inputs_are_clear_errors(files: Files, sam_runner: SamRunner) -> None:
    with pytest.raises(CoralsegError, match=r"\(H, W, 3\) uint8"):
        sam_runner.set_image(np.zeros((8, 8), dtype=np.uint8))
    with pytest.raises(CoralsegError, match=r"\(N, 2\)"):
        sam_runner.predict_points(np.zeros((3, 3)))
    with pytest.raises(CoralsegError, match="one value per point"):
        sam_runner.predict_points(np.zeros((3, 2)), labels=np.ones(2))
    with pytest.raises(CoralsegError, match=r"\(N, 4\)"):
        sam_runner.predict_boxes(np.zeros(4))
    with pytest.raises(CoralsegError, match="not inside the 96 x 64 image"):
        sam_runner.predict_boxes(BOXES[:1], crops=[(0, 0, 97, 10)])
    fresh = SamRunner(sam_runner.model)
    with pytest.raises(RuntimeError, match="set_image"):
        fresh.predict_points(POINTS)
