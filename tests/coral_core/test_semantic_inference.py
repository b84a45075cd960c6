from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.config import Config

from coral_core.errors import CoralsegError
from coral_core.inference.semantic import (
    load_semantic_model,
    predict,
    predict_logits,
    window_origins,
)
from coral_core.labels.taxonomy import EILAT, MaskEncoding
from tests.model_fixtures import TINY, save_tiny_checkpoint


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A random-weight tiny model saved as coralseg saves checkpoints, and its config."""
    folder = tmp_path_factory.mktemp("tiny")
    cfg = Config.fromfile(str(TINY))
    # MMSeg's own inference applies the test pipeline: keep it to loading, for parity
    cfg.test_pipeline = [dict(type="LoadImageFromFile"), dict(type="PackSegInputs")]
    config = folder / "tiny.py"
    cfg.dump(str(config))
    encoding = MaskEncoding(EILAT, background_is_ignore=True)
    return config, save_tiny_checkpoint(folder / "tiny.pth", encoding, config=config)


def test_window_origins_match_mmseg_slide_placement() -> None:
    assert window_origins(224, 224, 112) == [0]
    assert window_origins(300, 224, 112) == [0, 76]
    assert window_origins(448, 224, 112) == [0, 112, 224]
    assert window_origins(449, 224, 112) == [0, 112, 224, 225]


@pytest.mark.parametrize("size", [(300, 410), (150, 500)], ids=["two-by-three", "short"])
def test_logits_equal_mmseg_slide_inference(tiny_checkpoint, size: tuple[int, int]) -> None:
    from mmseg.apis import inference_model, init_model

    config, checkpoint = tiny_checkpoint
    rng = np.random.default_rng(1)
    image = rng.integers(0, 255, (*size, 3), dtype=np.uint8)
    model = load_semantic_model(config, checkpoint)
    ours = predict_logits(model, image, batch_size=3).cpu().numpy()

    reference = init_model(str(config), str(checkpoint), device="cpu")
    result = inference_model(reference, image[:, :, ::-1].copy())  # MMSeg takes BGR arrays
    theirs = result.seg_logits.data.cpu().numpy()
    assert ours.shape == theirs.shape == (10, *size)
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-4)


def test_batches_on_a_cpu_hold_the_pixels_of_eight_tiny_windows(tiny_checkpoint) -> None:
    from dataclasses import replace

    model = load_semantic_model(*tiny_checkpoint)
    assert model.default_batch_size == 8  # 224 px windows
    assert replace(model, window=518).default_batch_size == 1  # a ViT-B's windows
    assert replace(model, window=1024).default_batch_size == 1
    assert replace(model, device=torch.device("cuda")).default_batch_size == 8
    image = np.random.default_rng(2).integers(0, 255, (300, 300, 3), dtype=np.uint8)
    by_default = predict_logits(model, image)
    torch.testing.assert_close(by_default, predict_logits(model, image, batch_size=1))


def test_loading_for_the_cpu_flushes_subnormal_floats_in_every_thread(tiny_checkpoint) -> None:
    """In a fresh process whose first parallel work is the load, as in ``coralseg infer``:
    subnormal inputs are then computed as zero by the main thread and by torch's worker
    thread, each of which multiplies half of a large tensor."""
    if not torch.set_flush_denormal(False):
        pytest.skip("this CPU lacks the flags torch needs to flush subnormal floats")
    config, checkpoint = tiny_checkpoint
    script = (
        "import sys, torch\n"
        "from coral_core.inference.semantic import load_semantic_model\n"
        "torch.set_num_threads(2)\n"
        "before = int(torch.full((1000,), 1e-39).count_nonzero())  # too small for threads\n"
        "load_semantic_model(sys.argv[1], sys.argv[2])\n"
        "subnormals = torch.full((1_000_000,), 1e-39)\n"
        "print(before, int((subnormals * 1.0).count_nonzero()))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(config), str(checkpoint)],
        capture_output=True,
        text=True,
        check=False,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert done.returncode == 0, done.stderr[-2000:]
    before, after = map(int, done.stdout.split()[-2:])
    assert before == 1000  # they are subnormal, not zero
    assert after == 0


def test_predict_gives_the_compact_summary(tiny_checkpoint) -> None:
    config, checkpoint = tiny_checkpoint
    model = load_semantic_model(config, checkpoint)
    assert model.encoding.taxonomy.classes == EILAT.classes
    assert model.resize is None  # the fixture's test pipeline has no Resize
    image = np.random.default_rng(3).integers(0, 255, (100, 130, 3), dtype=np.uint8)
    prediction = predict(model, image)
    probabilities = torch.softmax(predict_logits(model, image), dim=0).numpy()
    assert prediction.labels.dtype == np.uint8 and prediction.coral.dtype == np.float16
    np.testing.assert_array_equal(prediction.labels, probabilities.argmax(axis=0))
    colony = list(model.encoding.colony_values)
    np.testing.assert_allclose(
        prediction.coral.astype(np.float32), probabilities[colony].sum(axis=0), atol=1e-3
    )
    best = np.array(colony)[probabilities[colony].argmax(axis=0)]
    np.testing.assert_array_equal(prediction.colony_labels, best)


def test_infer_resizes_like_mmseg_test(tiny_checkpoint, tmp_path: Path) -> None:
    """With the config's test Resize (460 px), predict gives MMSeg's argmax: the one
    ``coralseg test`` scores, at the image's own size."""
    from mmseg.apis import inference_model, init_model

    _, checkpoint = tiny_checkpoint
    cfg = Config.fromfile(str(TINY))
    resized_config = tmp_path / "tiny_resize.py"
    cfg.dump(str(resized_config))
    model = load_semantic_model(resized_config, checkpoint)
    assert model.resize is not None and model.resize.output_size(920, 1380) == (307, 460)
    image = np.random.default_rng(5).integers(0, 255, (600, 700, 3), dtype=np.uint8)
    ours = predict(model, image).labels
    reference = init_model(str(resized_config), str(checkpoint), device="cpu")
    theirs = inference_model(reference, image[:, :, ::-1].copy()).pred_sem_seg.data[0].numpy()
    assert ours.shape == theirs.shape == (600, 700)
    assert (ours == theirs).mean() > 0.9999


def test_checkpoint_records_the_resize(tiny_checkpoint, tmp_path: Path) -> None:
    config, checkpoint = tiny_checkpoint
    state = torch.load(checkpoint, weights_only=True)
    state["meta"]["coralseg"]["inference_resize"] = {"scale": [200, 100], "keep_ratio": True}
    recorded = tmp_path / "recorded.pth"
    torch.save(state, recorded)
    model = load_semantic_model(config, recorded)  # the checkpoint wins over the config
    assert model.resize.output_size(400, 300) == (133, 100)


def test_loading_errors(tiny_checkpoint, tmp_path: Path) -> None:
    config, checkpoint = tiny_checkpoint
    with pytest.raises(CoralsegError, match="does not exist"):
        load_semantic_model(config, tmp_path / "missing.pth")
    state = torch.load(checkpoint, weights_only=True)
    del state["state_dict"]["decode_head.conv_seg.bias"]
    torch.save(state, tmp_path / "partial.pth")
    with pytest.raises(CoralsegError, match="does not fit config"):
        load_semantic_model(config, tmp_path / "partial.pth")
    with (
        pytest.raises(CoralsegError, match="no CUDA GPU")
        if not torch.cuda.is_available()
        else (pytest.raises(CoralsegError, match="half precision"))
    ):
        load_semantic_model(
            config, checkpoint, device="cuda" if not torch.cuda.is_available() else "cpu", half=True
        )


def test_photos_are_shrunk_as_prepare_shrank_the_training_photos(
    tiny_checkpoint, tmp_path: Path
) -> None:
    from coral_core.inference.scaling import resize_like_prepare

    config, checkpoint = tiny_checkpoint
    state = torch.load(checkpoint, weights_only=True)
    state["meta"]["coralseg"]["long_side"] = 65  # coralseg prepare --size 65
    shrunk = tmp_path / "shrunk.pth"
    torch.save(state, shrunk)
    model = load_semantic_model(config, shrunk)
    assert model.long_side == 65
    image = np.random.default_rng(6).integers(0, 255, (100, 130, 3), dtype=np.uint8)
    seen = resize_like_prepare(image, 65)
    assert seen.shape == (50, 65, 3)
    native = load_semantic_model(config, checkpoint)
    small = predict_logits(native, seen)
    expected = torch.nn.functional.interpolate(
        small[None], size=(100, 130), mode="bilinear", align_corners=False
    )[0].argmax(dim=0)
    labels = predict(model, image).labels
    assert labels.shape == (100, 130)
    assert (labels == expected.numpy()).mean() > 0.9999
