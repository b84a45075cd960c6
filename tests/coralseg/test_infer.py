"""``coralseg infer`` end to end with a random-weight tiny model (and a random SAM ViT-B on the
real quadrat photos, where ../shared/data is present)."""

from __future__ import annotations

import json
import shutil
import socket
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from pycocotools.coco import COCO

from coral_core.labels.taxonomy import FAMILIES, MaskEncoding
from coralseg.cli import main
from tests.model_fixtures import TINY, save_tiny_checkpoint


@pytest.fixture(scope="module")
def model_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A tiny families model with random weights, saved as coralseg saves checkpoints."""
    folder = tmp_path_factory.mktemp("model")
    return TINY, save_tiny_checkpoint(folder / "tiny.pth", MaskEncoding(FAMILIES))


@pytest.fixture(scope="module")
def uniform_model_files(model_files, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The tiny model with its classifier set to say "Pocillopora, 95%" everywhere: the
    instance stage must then find one colony covering each image."""
    config, checkpoint = model_files
    state = torch.load(checkpoint, weights_only=True)
    weights = state["state_dict"]
    weights["decode_head.conv_seg.weight"].zero_()
    bias = torch.zeros_like(weights["decode_head.conv_seg.bias"])
    value = MaskEncoding(FAMILIES).value_of("Pocillopora")
    bias[value] = 5.0  # softmax: e^5 / (e^5 + 7) = 0.955
    weights["decode_head.conv_seg.bias"] = bias
    uniform = tmp_path_factory.mktemp("uniform") / "uniform.pth"
    torch.save(state, uniform)
    return config, uniform


def test_a_confident_model_finds_its_colonies(uniform_model_files, tmp_path: Path) -> None:
    images = tmp_path / "in"
    images.mkdir()
    rng = np.random.default_rng(2)
    for name, size in (("a", (90, 130)), ("b", (140, 100))):
        Image.fromarray(rng.integers(0, 255, (*size, 3), dtype=np.uint8)).save(
            images / f"{name}.jpg"
        )
    out = tmp_path / "out"
    assert _infer(uniform_model_files, images, out) == 0
    coco = COCO(str(out / "predictions.json"))
    annotations = coco.dataset["annotations"]
    assert len(annotations) == 2
    for annotation in annotations:
        image = coco.loadImgs(annotation["image_id"])[0]
        assert annotation["area"] == image["height"] * image["width"]
        assert coco.annToMask(annotation).all()
        assert coco.loadCats(annotation["category_id"])[0]["name"] == "Pocillopora"
        assert annotation["score"] == pytest.approx(0.955, abs=0.01)
    assert sorted(p.name for p in (out / "masks" / "a").iterdir()) == ["instance_001.png"]


def test_two_images_with_one_stem_are_both_inferred(model_files, tmp_path: Path, capsys) -> None:
    images = tmp_path / "in"
    images.mkdir()
    rgb = np.random.default_rng(4).integers(0, 255, (64, 80, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(images / "a.jpg")
    Image.fromarray(rgb).save(images / "a.png")
    out = tmp_path / "out"
    assert _infer(model_files, images, out) == 0
    assert "2 image(s) processed, 0 already done" in capsys.readouterr().out
    assert sorted(p.name for p in (out / "semantic").iterdir()) == ["a_jpg.png", "a_png.png"]


def _odd_images(folder: Path) -> None:
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 255, (120, 160, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(folder / "plain.jpg")
    Image.fromarray(rgb[:, :, 0]).save(folder / "gray.png")
    Image.fromarray(rgb[:, :, 0].astype(np.uint16) * 257).save(folder / "deep16.png")
    rgba = np.concatenate([rgb, np.full((120, 160, 1), 255, np.uint8)], axis=2)
    Image.fromarray(rgba, "RGBA").save(folder / "alpha.png")
    rotated = Image.fromarray(rgb)
    exif = rotated.getexif()
    exif[0x0112] = 6  # displayed rotated by 90 degrees
    rotated.save(folder / "rotated.jpg", exif=exif)
    (folder / "sub").mkdir()
    Image.fromarray(rgb).save(folder / "sub" / "plain.jpg")  # same name, another folder
    (folder / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")


def _infer(model_files, input_dir: Path, output_dir: Path, *extra: str) -> int:
    config, checkpoint = model_files
    return main(
        [
            "infer", "--input-dir", str(input_dir), "--output-dir", str(output_dir),
            "--segformer-config", str(config), "--segformer-weights", str(checkpoint),
            "--min-area", "16", *extra,
        ]
    )  # fmt: skip


def test_odd_images_are_handled_and_bad_ones_reported(model_files, tmp_path: Path, capsys) -> None:
    images = tmp_path / "in"
    images.mkdir()
    _odd_images(images)
    out = tmp_path / "out"
    assert _infer(model_files, images, out) == 1  # an input failed; the others are done
    captured = capsys.readouterr()
    printed = captured.out
    assert "6 image(s) processed, 0 already done, 1 failed" in printed
    assert "broken.jpg" in printed
    summary = captured.err.strip().splitlines()[-1]
    assert summary == "coralseg infer: 1 of 7 image(s) failed (broken.jpg); the others are done"
    log = (out / "inference_log.txt").read_text()
    assert "FAILED" in log and "broken.jpg" in log
    for stem in ("plain", "gray", "deep16", "alpha", "rotated", "sub__plain"):
        semantic = np.array(Image.open(out / "semantic" / f"{stem}.png"))
        expected = (160, 120) if stem == "rotated" else (120, 160)  # EXIF rotation applied
        assert semantic.shape == expected, stem
        assert (out / "visualizations" / f"{stem}.jpg").is_file()

    coco = COCO(str(out / "predictions.json"))
    assert len(coco.getImgIds()) == 6
    assert [c["name"] for c in coco.loadCats(coco.getCatIds())] == list(FAMILIES.classes)
    annotations = json.loads((out / "predictions.json").read_text())["annotations"]
    if annotations:
        results = coco.loadRes(annotations)
        assert len(results.getAnnIds()) == len(annotations)
    for image in coco.dataset["images"]:
        stem = Path(image["file_name"]).relative_to(images).with_suffix("")
        masks = sorted((out / "masks" / str(stem).replace("/", "__")).glob("instance_*.png"))
        assert len(masks) == len(coco.getAnnIds(imgIds=[image["id"]]))

    # a rerun skips what is done (and tries the failed image again); --redo does all again
    assert _infer(model_files, images, out) == 1
    assert "0 image(s) processed, 6 already done, 1 failed" in capsys.readouterr().out
    rerun_log = (out / "inference_log.txt").read_text().split("\n--- ")[-1]
    assert "already done, skipped: 6 image(s)" in rerun_log and "FAILED" in rerun_log
    assert _infer(model_files, images, out, "--redo") == 1
    assert "6 image(s) processed" in capsys.readouterr().out


def test_bad_arguments_are_one_sentence(model_files, tmp_path: Path, capsys) -> None:
    assert _infer(model_files, tmp_path / "missing", tmp_path / "out") == 2
    assert "is not a folder" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert _infer(model_files, tmp_path / "empty", tmp_path / "out") == 2
    assert "no images" in capsys.readouterr().err
    args = ["--min-threshold", "0.5", "--unsure-threshold", "0.1"]
    assert _infer(model_files, tmp_path / "empty", tmp_path / "out", *args) == 2
    assert "(option --min-threshold, --unsure-threshold)" in capsys.readouterr().err
    assert _infer(model_files, tmp_path / "empty", tmp_path / "out", "--cluster", "head") == 2
    assert "'head' is not a Ray cluster address: give 'local'" in capsys.readouterr().err


def test_a_dead_cluster_or_a_bad_overlap_is_refused_before_anything_is_written(
    model_files, tmp_path: Path, capsys
) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    Image.fromarray(np.full((40, 40, 3), 120, np.uint8)).save(photos / "q.jpg")
    out = tmp_path / "out"
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))  # bound, not listening: connections are refused
        address = f"127.0.0.1:{probe.getsockname()[1]}"
        assert _infer(model_files, photos, out, "--cluster", address) == 2
    error = capsys.readouterr().err
    assert f"nothing answers at {address} (ConnectionRefusedError" in error
    assert error.rstrip().endswith("(option --cluster)")
    assert _infer(model_files, photos, out, "--overlap", "1") == 2
    error = capsys.readouterr().err
    assert "window overlap must be in [0, 1), got 1.0 (option --overlap)" in error
    assert not out.exists()


@pytest.mark.shared_data
def test_quadrats_with_a_random_sam(model_files, shared_data: Path, tmp_path: Path, capsys) -> None:
    from tests.coral_core.sam_layout import official_state_dict

    sam_path = tmp_path / "sam_vit_b_random.pth"
    torch.save(official_state_dict("vit_b"), sam_path)
    images = tmp_path / "quadrats"
    images.mkdir()
    # one photo: SAM ViT-B's encoder on a CPU is most of this test's time
    for path in sorted((shared_data / "quadrats").glob("*.jpg"))[:1]:
        shutil.copy(path, images / path.name)
    out = tmp_path / "out"
    # thresholds that make the random model's output split into coral, unsure and not coral
    args = ["--sam-checkpoint", str(sam_path), "--min-threshold", "0.3"]
    args += ["--unsure-threshold", "0.4"]
    assert _infer(model_files, images, out, *args) == 0
    assert "1 image(s) processed" in capsys.readouterr().out
    coco = COCO(str(out / "predictions.json"))
    assert len(coco.getImgIds()) == 1 and coco.dataset["annotations"]
    for annotation in coco.dataset["annotations"]:
        assert 0 <= annotation["score"] <= 1
        assert coco.annToMask(annotation).sum() == annotation["area"]


def test_large_geotiff_gets_colonies_merged_across_tiles(
    uniform_model_files, tmp_path: Path, monkeypatch, capsys
) -> None:
    from coral_core.formats.raster_io import GeoInfo, open_image
    from coral_core.inference import batch_runner
    from tests.raster_fixtures import write_test_tiff

    monkeypatch.setattr(batch_runner, "MAX_INSTANCE_SIDE", 200)  # stands in for 8192 px
    monkeypatch.setattr(batch_runner, "LARGE_TILE", 128)  # stands in for 2048 px
    images = tmp_path / "ortho"
    images.mkdir()
    geo = GeoInfo((500000.0, 0.01, 0.0, 8000000.0, 0.0, -0.01), "EPSG:32706")
    write_test_tiff(images / "reef.tif", 230, 470, tile=64, geo=geo)
    out = tmp_path / "out"
    assert _infer(uniform_model_files, images, out) == 0
    assert "1 image(s) processed" in capsys.readouterr().out
    for folder in ("semantic", "semantic_raw"):
        with open_image(out / folder / "reef.tif") as labels:
            assert (labels.height, labels.width) == (230, 470)
            assert labels.geo == geo
    coco = COCO(str(out / "predictions.json"))
    (annotation,) = coco.dataset["annotations"]  # one colony over 2 x 4 tiles, merged
    assert annotation["area"] == 230 * 470 and coco.annToMask(annotation).all()

    # Its outline in map coordinates, for a GIS: `coralseg cover` on the output.
    assert main(["cover", str(out), "--out", str(tmp_path / "cover")]) == 0
    collection = json.loads((tmp_path / "cover" / "colonies.geojson").read_text())
    assert collection["crs"]["properties"]["name"] == "urn:ogc:def:crs:EPSG::32706"
    (feature,) = collection["features"]
    xs, ys = np.array(feature["geometry"]["coordinates"][0]).T
    # the whole mosaic, 470 x 230 pixels of 1 cm, its outline within a pixel of the edges
    assert (xs.min(), xs.max()) == pytest.approx((500000.0, 500004.7), abs=0.01)
    assert (ys.min(), ys.max()) == pytest.approx((7999997.7, 8000000.0), abs=0.01)


def test_results_of_another_model_are_refused(
    model_files, uniform_model_files, tmp_path: Path, capsys
) -> None:
    images = tmp_path / "in"
    images.mkdir()
    rgb = np.random.default_rng(5).integers(0, 255, (48, 64, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(images / "a.jpg")
    out = tmp_path / "out"
    assert _infer(model_files, images, out) == 0
    record = json.loads((out / "instances" / "a.json").read_text())
    assert len(record["model_version"]) == 16
    assert _infer(uniform_model_files, images, out) == 2  # nothing mixed into it
    assert "made by another model" in capsys.readouterr().err
    assert json.loads((out / "instances" / "a.json").read_text()) == record
    assert _infer(uniform_model_files, images, out, "--redo") == 0
    again = json.loads((out / "instances" / "a.json").read_text())
    assert again["model_version"] != record["model_version"]
