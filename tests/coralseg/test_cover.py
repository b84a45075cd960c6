"""``coralseg cover`` end to end on small masks written here: folders of masks, 'prepare'
and 'infer' layouts, groups, scale, region of interest, --compare, and its errors."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from coral_core.formats.dataset_manifest import DatasetManifest, write_dataset_manifest
from coral_core.inference.instance_records import InstanceRecord, write_instance_record
from coral_core.inference.instances import CoralInstance
from coral_core.labels.taxonomy import (
    EILAT,
    FAMILIES,
    MaskEncoding,
    write_class_files,
    write_encoding_file,
)
from coralseg.cli import main

FAM = MaskEncoding(FAMILIES)  # 0 background, 1..7 classes, 255 ignore
ACROPORA, PORITES = FAM.value_of("Acropora"), FAM.value_of("Porites")
EILAT_ENC = MaskEncoding(EILAT, background_is_ignore=True)


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def survey_masks() -> dict[str, np.ndarray]:
    """Four 60 x 80 quadrats of two sites and years, with known pixel counts."""
    masks = {}
    for index, name in enumerate(["TEM_2019_q1", "TEM_2019_q2", "TIA_2019_q1", "TIA_2020_q1"]):
        mask = np.zeros((60, 80), dtype=np.uint8)
        mask[5 : 15 + 5 * index, 5:25] = ACROPORA  # one colony, taller each image
        mask[30:50, 40:70] = PORITES
        mask[52:56, 10:14] = PORITES  # a second, small Porites colony
        mask[0:2, :] = 255  # unlabelled strip
        masks[name] = mask
    return masks


def write_masks(folder: Path, masks: dict[str, np.ndarray]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, mask in masks.items():
        Image.fromarray(mask).save(folder / f"{name}.png")
    return folder


def run(args: list[str], capsys) -> tuple[int, str, str]:
    code = main(["cover", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_folder_of_masks_with_groups(tmp_path: Path, capsys) -> None:
    masks = survey_masks()
    folder = write_masks(tmp_path / "labels", masks)
    out = tmp_path / "cover"
    code, stdout, _ = run(
        [str(folder), "--taxonomy", "families", "--groups", "<site>_<year>_*", "--out", str(out)],
        capsys,
    )
    assert code == 0, stdout
    expected_files = {
        "cover_per_image.csv",
        "cover_per_group.csv",
        "colonies.csv",
        "colonies_per_group.csv",
        "colonies.geojson",
        "cover_by_group.png",
        "colony_sizes.png",
    }
    assert expected_files <= {p.name for p in out.iterdir()}
    assert "4 image(s)" in stdout and "wrote 7 files" in stdout

    per_image = read_csv(out / "cover_per_image.csv")
    assert list(per_image[0])[:6] == ["image", "site", "year", "class", "pixels", "cover_percent"]
    assert len(per_image) == 4 * (1 + FAMILIES.num_classes)  # background + 7 classes
    for row in per_image:
        mask = masks[row["image"]]
        value = 0 if row["class"] == "background" else FAM.value_of(row["class"])
        annotated = np.count_nonzero(mask != 255)
        assert int(row["pixels"]) == np.count_nonzero(mask == value)
        assert float(row["cover_percent"]) == pytest.approx(
            100 * np.count_nonzero(mask == value) / annotated, rel=1e-12
        )
        assert float(row["annotated_fraction"]) == annotated / mask.size
        assert row["site"] == row["image"][:3]

    per_group = read_csv(out / "cover_per_group.csv")
    groups = {(r["group"], r["class"]): r for r in per_group}
    assert {g for g, _ in groups} == {"TEM / 2019", "TIA / 2019", "TIA / 2020"}
    temae = groups[("TEM / 2019", "Acropora")]
    covers = [100 * np.count_nonzero(masks[n] == ACROPORA) / (58 * 80) for n in masks][:2]
    assert int(temae["n_images"]) == 2
    assert float(temae["mean_cover_percent"]) == pytest.approx(np.mean(covers))
    assert float(temae["se_cover_percent"]) == pytest.approx(np.std(covers, ddof=1) / np.sqrt(2))
    assert groups[("TIA / 2020", "Acropora")]["se_cover_percent"] == ""

    colonies = read_csv(out / "colonies.csv")
    assert len(colonies) == 4 * 3
    assert {r["class"] for r in colonies} == {"Acropora", "Porites"}
    first = colonies[0]
    assert (first["image"], first["class"], first["area_px"]) == ("TEM_2019_q1", "Acropora", "200")
    assert first["bbox_x"] == "5" and first["bbox_w"] == "20" and first["score"] == ""
    geojson = json.loads((out / "colonies.geojson").read_text())
    assert len(geojson["features"]) == len(colonies)
    assert geojson["features"][0]["geometry"]["type"] == "Polygon"
    summary = {(r["group"], r["class"]): r for r in read_csv(out / "colonies_per_group.csv")}
    assert summary[("TEM / 2019", "Porites")]["colonies"] == "4"
    assert summary[("TEM / 2019", "Porites")]["colonies_per_image"] == "2.0"


def test_background_excluded_scale_and_roi(tmp_path: Path, capsys) -> None:
    masks = survey_masks()
    folder = write_masks(tmp_path / "labels", masks)
    out = tmp_path / "cover"
    args = [str(folder), "--taxonomy", "families", "--exclude-background", "--out", str(out)]
    code, stdout, _ = run([*args, "--roi-margin", "10", "--quadrat-size-cm", "20"], capsys)
    assert code == 0
    rows = read_csv(out / "cover_per_image.csv")
    assert "background" not in {r["class"] for r in rows}
    row = next(r for r in rows if r["image"] == "TEM_2019_q1" and r["class"] == "Porites")
    # inside a 10 px margin (rows 10..49, columns 10..69): Porites is 30 x 20 px, Acropora
    # 5 x 15 px (rows 10..14, columns 10..24); background no longer counts
    assert int(row["roi_pixels"]) == 40 * 60
    assert int(row["pixels"]) == 600
    assert float(row["cover_percent"]) == pytest.approx(100 * 600 / (600 + 75))
    # the 40 x 60 px inside is a 20 x 20 cm quadrat: sqrt(2400 / 400) px per cm
    scale = np.sqrt(2400 / 400)
    assert float(row["area_cm2"]) == pytest.approx(600 / scale**2)
    colonies = read_csv(out / "colonies.csv")
    acropora = next(r for r in colonies if r["class"] == "Acropora")
    assert acropora["area_px"] == "75" and acropora["touches_edge"] == "1"
    assert float(acropora["area_cm2"]) == pytest.approx(75 / scale**2)
    assert "scale: 2.45 px/cm on 4 of 4 image(s)" in stdout


def test_metadata_csv_groups_and_scale_csv(tmp_path: Path, capsys) -> None:
    folder = write_masks(tmp_path / "labels", survey_masks())
    meta = tmp_path / "meta.csv"
    meta.write_text(
        "filename,site,depth\n"
        "TEM_2019_q1.jpg,Temae,5m\nTEM_2019_q2.jpg,Temae,10m\n"
        "TIA_2019_q1.jpg,Tiahura,5m\nTIA_2020_q1.jpg,Tiahura,5m\n"
    )
    scales = tmp_path / "scale.csv"
    scales.write_text("image,pixels_per_cm\nTEM_2019_q1,10\nTEM_2019_q2,20\n")
    out = tmp_path / "cover"
    code, _, _ = run(
        [str(folder), "--taxonomy", "families", "--groups", str(meta), "--group-by", "depth",
         "--scale", str(scales), "--no-geojson", "--out", str(out)],
        capsys,
    )  # fmt: skip
    assert code == 0
    assert not (out / "colonies.geojson").exists()
    groups = {r["group"] for r in read_csv(out / "cover_per_group.csv")}
    assert groups == {"5m", "10m"}
    rows = read_csv(out / "cover_per_image.csv")
    assert list(rows[0])[:4] == ["image", "site", "depth", "class"]
    areas = {r["image"]: r["area_cm2"] for r in rows if r["class"] == "Porites"}
    assert float(areas["TEM_2019_q1"]) == 616 / 100 and float(areas["TEM_2019_q2"]) == 616 / 400
    assert areas["TIA_2019_q1"] == ""
    summary = {
        r["group"]: r for r in read_csv(out / "colonies_per_group.csv") if r["class"] == "Porites"
    }
    assert summary["10m"]["area_cm2_max"] != "" and summary["5m"]["area_cm2_max"] == ""
    cover_only = tmp_path / "cover-only"
    code, stdout, _ = run(
        [str(folder), "--taxonomy", "families", "--no-colonies", "--out", str(cover_only)], capsys
    )
    assert code == 0 and "colonies:" not in stdout
    assert sorted(p.name for p in cover_only.iterdir()) == [
        "cover_by_group.png",
        "cover_per_group.csv",
        "cover_per_image.csv",
    ]


def write_prepare_folder(root: Path, masks: dict[str, np.ndarray]) -> Path:
    """The layout 'coralseg prepare' writes (labels, classes.txt, manifest.json)."""
    for index, (name, mask) in enumerate(masks.items()):
        split = "train" if index < 3 else "val"
        write_masks(root / split / "labels", {name: mask})
    write_class_files(FAM, root)
    write_dataset_manifest(root, DatasetManifest(FAM, long_side=None, splits={}))
    return root


def write_infer_output(root: Path, masks: dict[str, np.ndarray], scores: float = 0.8) -> Path:
    """The layout 'coralseg infer' writes: semantic/, instances/ with box RLEs, classes.txt."""
    (root / "semantic").mkdir(parents=True)
    (root / "instances").mkdir()
    write_class_files(FAM, root)
    for name, mask in masks.items():
        Image.fromarray(mask).save(root / "semantic" / f"{name}.png")
        instances = []
        for value in (ACROPORA, PORITES):
            rows, cols = np.nonzero(mask == value)
            y0, y1, x0, x1 = rows.min(), rows.max() + 1, cols.min(), cols.max() + 1
            box = mask[y0:y1, x0:x1] == value
            instances.append(
                CoralInstance(
                    label=FAMILIES.classes[value - 1],
                    value=value,
                    score=scores,
                    bbox=(int(x0), int(y0), int(x1 - x0), int(y1 - y0)),
                    mask=box,
                    area=int(box.sum()),
                )
            )
        record = InstanceRecord(f"photos/{name}.jpg", 80, 60, tuple(instances))
        write_instance_record(root / "instances" / f"{name}.json", record)
    return root


def test_prepare_folder_and_compare_with_an_infer_output(tmp_path: Path, capsys) -> None:
    truth = survey_masks()
    predicted = {}
    for index, (name, mask) in enumerate(truth.items()):
        guess = mask.copy()
        guess[guess == 255] = 0
        guess[5:12, 30 : 30 + 5 * index] = ACROPORA  # over-predicts Acropora, more each image
        predicted[name] = guess
    prepared = write_prepare_folder(tmp_path / "prepared", truth)
    inferred = write_infer_output(tmp_path / "inferred", predicted)
    out = tmp_path / "cover"
    code, stdout, _ = run([str(prepared), "--compare", str(inferred), "--out", str(out)], capsys)
    assert code == 0, stdout
    rows = read_csv(out / "cover_per_image.csv")
    assert {r["split"] for r in rows} == {"train", "val"}
    errors = read_csv(out / "cover_error_per_image.csv")
    for row in errors:
        value = 0 if row["class"] == "background" else FAM.value_of(row["class"])
        t = 100 * np.count_nonzero(truth[row["image"]] == value) / (58 * 80)
        p = 100 * np.count_nonzero(predicted[row["image"]] == value) / (60 * 80)
        assert float(row["annotated_cover_percent"]) == pytest.approx(t)
        assert float(row["predicted_cover_percent"]) == pytest.approx(p)
        assert float(row["error_pp"]) == pytest.approx(p - t)
    by_class = {r["class"]: r for r in read_csv(out / "cover_error_per_class.csv")}
    acropora = [float(r["abs_error_pp"]) for r in errors if r["class"] == "Acropora"]
    assert float(by_class["Acropora"]["mean_abs_error_pp"]) == pytest.approx(np.mean(acropora))
    assert float(by_class["Acropora"]["mean_error_pp"]) > 0
    everything = [float(r["abs_error_pp"]) for r in errors]
    assert float(by_class["all classes"]["mean_abs_error_pp"]) == pytest.approx(np.mean(everything))
    assert (out / "cover_agreement.png").stat().st_size > 5000
    assert read_csv(out / "cover_error_per_group.csv")[0]["group"] == "all images"
    assert "cover error vs" in stdout and "percentage points" in stdout


def test_infer_output_colonies_are_its_instances(tmp_path: Path, capsys) -> None:
    masks = survey_masks()
    inferred = write_infer_output(tmp_path / "inferred", masks, scores=0.625)
    out = tmp_path / "cover"
    code, stdout, _ = run([str(inferred), "--out", str(out)], capsys)
    assert code == 0, stdout
    colonies = read_csv(out / "colonies.csv")
    # each Porites instance has two parts: one colony each, not two
    assert len(colonies) == 2 * len(masks)
    assert {r["score"] for r in colonies} == {"0.625"}
    porites = next(r for r in colonies if r["class"] == "Porites")
    assert porites["area_px"] == str(600 + 16)
    geometry = json.loads((out / "colonies.geojson").read_text())["features"][1]["geometry"]
    assert geometry["type"] == "MultiPolygon"
    code, _, _ = run([str(inferred), "--colonies-from", "labels", "--out", str(out)], capsys)
    assert code == 0
    assert len(read_csv(out / "colonies.csv")) == 3 * len(masks)


def test_classes_txt_beside_the_masks_gives_their_meaning(tmp_path: Path, capsys) -> None:
    folder = tmp_path / "labels"
    mask = np.full((20, 20), 255, dtype=np.uint8)
    mask[:10] = EILAT.classes.index("Acropora")
    mask[10:15] = EILAT.classes.index("Bare-subst.")
    write_masks(folder, {"img": mask})
    write_class_files(EILAT_ENC, tmp_path)  # in the folder above, as in a split folder
    out = tmp_path / "cover"
    code, stdout, _ = run([str(folder), "--out", str(out)], capsys)
    assert code == 0, stdout
    rows = {r["class"]: r for r in read_csv(out / "cover_per_image.csv")}
    assert "background" not in rows
    assert float(rows["Acropora"]["cover_percent"]) == pytest.approx(200 / 3)
    assert float(rows["Acropora"]["annotated_fraction"]) == 0.75
    # the eilat taxonomy was recognised: bare substrate has cover but no colonies
    assert {r["class"] for r in read_csv(out / "colonies.csv")} == {"Acropora"}


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ([], "say what the values of the masks"),
        (["--taxonomy", "nope"], "unknown taxonomy 'nope'"),
        (["--taxonomy", "agnostic"], "pixel values 7"),  # 0 background, 1 Coral, 255 ignore
        (["--taxonomy", "families", "--roi-margin", "60%"], "--roi-margin"),
        (["--taxonomy", "families", "--roi-margin", "40"], "leaves nothing"),
        (["--taxonomy", "families", "--roi-polygon", "1,2 3"], "--roi-polygon"),
        (["--taxonomy", "families", "--groups", "site_year"], "no <field>"),
        (["--taxonomy", "families", "--groups", "<a>_<b>_*", "--group-by", "c"], "no field c"),
        (["--taxonomy", "families", "--groups", "<a>-<b>"], "no image name matches"),
        (["--taxonomy", "families", "--scale", "-3"], "--scale"),
        (["--taxonomy", "families", "--scale", "3", "--quadrat-size-cm", "100"], "either"),
        (["--taxonomy", "families", "--quadrat-size-cm", "1x2x3"], "--quadrat-size-cm"),
        (["--taxonomy", "families", "--colonies-from", "instances"], "needs a 'coralseg infer'"),
    ],
)
def test_user_mistakes_give_one_sentence(tmp_path: Path, capsys, extra, message) -> None:
    folder = write_masks(tmp_path / "labels", survey_masks())
    code, _, err = run([str(folder), *extra, "--out", str(tmp_path / "out")], capsys)
    assert code == 2
    assert err.startswith("coralseg cover: error: ") and message in err
    assert "Traceback" not in err and err.count("\n") == 1


def test_bad_inputs_give_one_sentence(tmp_path: Path, capsys) -> None:
    code, _, err = run([str(tmp_path / "missing"), "--out", str(tmp_path / "o")], capsys)
    assert code == 2 and "is not a folder" in err
    (tmp_path / "empty").mkdir()
    code, _, err = run(
        [str(tmp_path / "empty"), "--taxonomy", "eilat", "--out", str(tmp_path / "o")], capsys
    )
    assert code == 2 and "no label masks" in err
    rgb = tmp_path / "rgb"
    rgb.mkdir()
    Image.fromarray(np.zeros((4, 4, 3), dtype=np.uint8)).save(rgb / "a.png")
    code, _, err = run([str(rgb), "--taxonomy", "eilat", "--out", str(tmp_path / "o")], capsys)
    assert code == 2 and "is a RGB image" in err
    folder = write_masks(tmp_path / "labels", survey_masks())
    other = write_masks(tmp_path / "other", {"unrelated": survey_masks()["TEM_2019_q1"]})
    code, _, err = run(
        [
            str(folder),
            "--taxonomy",
            "families",
            "--compare",
            str(other),
            "--out",
            str(tmp_path / "o"),
        ],
        capsys,
    )
    assert code == 2 and "no image of" in err and "matched by name" in err
    assert not (tmp_path / "o" / "colonies.geojson").exists()
    prepared = write_prepare_folder(tmp_path / "prepared", survey_masks())
    code, _, err = run([str(prepared), "--taxonomy", "eilat", "--out", str(tmp_path / "o")], capsys)
    assert code == 2 and "leave the taxonomy out" in err and "(option --taxonomy)" in err


def test_help_has_examples(capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["cover", "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    assert "coralseg cover data/" in text and "--compare" in text and "cover_per_image.csv" in text


def test_one_polygon_per_image_from_a_csv(tmp_path: Path, capsys) -> None:
    folder = write_masks(tmp_path / "labels", survey_masks())
    rois = tmp_path / "rois.csv"
    rois.write_text(
        'image,roi_polygon\nTEM_2019_q1.jpg,"30,30 70,30 70,50 30,50"\n'
        'TEM_2019_q2.jpg,"0,0 80,0 80,60 0,60"\n'
    )
    out = tmp_path / "cover"
    code, stdout, _ = run(
        [str(folder), "--taxonomy", "families", "--roi-polygon", str(rois), "--out", str(out)],
        capsys,
    )
    assert code == 0
    assert "2 image(s) have no polygon" in stdout
    roi = {r["image"]: int(r["roi_pixels"]) for r in read_csv(out / "cover_per_image.csv")}
    assert roi == {
        "TEM_2019_q1": 40 * 20,
        "TEM_2019_q2": 4800,
        "TIA_2019_q1": 4800,
        "TIA_2020_q1": 4800,
    }
    porites = next(
        r
        for r in read_csv(out / "cover_per_image.csv")
        if r["image"] == "TEM_2019_q1" and r["class"] == "Porites"
    )
    assert porites["cover_percent"] == "75.0"  # rows 30..49, columns 40..69 of 30..69


def write_geotiff_masks(folder: Path, crs: str) -> dict[str, np.ndarray]:
    from coral_core.formats.label_rasters import LabelRasterWriter
    from coral_core.formats.raster_io import GeoInfo

    folder.mkdir(parents=True)
    masks = dict(list(survey_masks().items())[:2])
    for index, (name, mask) in enumerate(masks.items()):
        # 5 mm pixels: 2 px per cm, in UTM metres
        geo = GeoInfo((600_000.0 + 100 * index, 0.005, 0.0, 8_050_000.0, 0.0, -0.005), crs)
        with LabelRasterWriter(folder / f"{name}.tif", *mask.shape, geo) as writer:
            writer.write((0, 0, mask.shape[1], mask.shape[0]), mask)
    return masks


def test_georeferenced_masks_give_scale_and_map_coordinates(tmp_path: Path, capsys) -> None:
    write_geotiff_masks(tmp_path / "ortho", "EPSG:32706")
    out = tmp_path / "cover"
    args = [str(tmp_path / "ortho"), "--taxonomy", "families", "--scale", "geotransform"]
    code, stdout, _ = run([*args, "--out", str(out)], capsys)
    assert code == 0, stdout
    assert "scale: 2 px/cm on 2 of 2 image(s)" in stdout
    first = next(r for r in read_csv(out / "colonies.csv") if r["class"] == "Acropora")
    assert float(first["area_cm2"]) == 200 / 4 and first["image"] == "TEM_2019_q1"
    collection = json.loads((out / "colonies.geojson").read_text())
    assert collection["crs"]["properties"]["name"] == "urn:ogc:def:crs:EPSG::32706"
    xs = [x for x, _ in collection["features"][0]["geometry"]["coordinates"][0]]
    # the Acropora square's columns 5..24 at 5 mm from x = 600000 m (a quarter pixel inside)
    assert min(xs) == pytest.approx(600_000 + 5.25 * 0.005)
    assert max(xs) == pytest.approx(600_000 + 24.75 * 0.005)


def test_scale_from_a_geographic_crs_is_refused(tmp_path: Path, capsys) -> None:
    write_geotiff_masks(tmp_path / "ortho", "EPSG:4326")
    args = [str(tmp_path / "ortho"), "--taxonomy", "families", "--scale", "geotransform"]
    code, _, err = run([*args, "--out", str(tmp_path / "o")], capsys)
    assert code == 2 and "geographic CRS" in err and "reproject" in err


def test_an_infer_output_with_its_encoding_knows_cover_only_classes(tmp_path: Path, capsys) -> None:
    from coral_core.labels.taxonomy import Taxonomy

    sand_reef = Taxonomy("sand_reef", ("Acropora", "Sand"), cover_classes=("Sand",))
    encoding = MaskEncoding(sand_reef)
    root = tmp_path / "inferred"
    (root / "semantic").mkdir(parents=True)
    (root / "instances").mkdir()
    mask = np.full((20, 20), encoding.value_of("Sand"), dtype=np.uint8)
    mask[2:6, 2:6] = encoding.value_of("Acropora")
    Image.fromarray(mask).save(root / "semantic" / "q.png")
    write_instance_record(root / "instances" / "q.json", InstanceRecord("q.jpg", 20, 20, ()))
    write_encoding_file(encoding, root)
    out = tmp_path / "cover"
    code, _, _ = run([str(root), "--colonies-from", "labels", "--out", str(out)], capsys)
    assert code == 0
    assert [r["class"] for r in read_csv(out / "colonies.csv")] == ["Acropora"]
    cover = {r["class"]: float(r["cover_percent"]) for r in read_csv(out / "cover_per_image.csv")}
    assert cover == {"background": 0.0, "Acropora": 4.0, "Sand": 96.0}
