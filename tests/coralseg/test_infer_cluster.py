"""``coralseg infer --cluster`` on a real two-node Ray cluster gives the single-process outputs.

Each test starts a Ray head and a second node (1 CPU each) inside network and PID namespaces
of their own with only loopback (``ray_scenario.py``), so nothing is sent beyond 127.0.0.1
and every process started ends with the test. The inputs are photos and a georeferenced
GeoTIFF processed as 2 x 4 tiles whose colonies are merged across the seams; the reference is
the same command in this process, without Ray. Slow: these guard the outputs of cluster runs
(same masks, colonies and GeoJSON; resumable; a lost node costs only its unit).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from coral_core.labels.taxonomy import FAMILIES, MaskEncoding
from coralseg.cli import main
from tests.loopback_namespace import (
    ray_environment,
    ray_workdir,
    require_ray_namespace,
    run_in_loopback_namespace,
)
from tests.model_fixtures import TINY, save_tiny_checkpoint

SCENARIO = Path(__file__).with_name("ray_scenario.py")
TILING = ["--tile-above", "200", "--tile-size", "128"]  # stand in for 8192 and 2048 px
# The mosaic sorts first, so its tiles are the first units (a kill or Ctrl-C lands among them).
MOSAIC = "a_reef.tif"
PHOTOS = 6
TILES = 6

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A random tiny model, photos and a tiled GeoTIFF, and their single-process outputs."""
    from coral_core.formats.raster_io import GeoInfo
    from tests.raster_fixtures import write_test_tiff

    root = tmp_path_factory.mktemp("cluster")
    checkpoint = save_tiny_checkpoint(root / "tiny.pth", MaskEncoding(FAMILIES), seed=3)
    images = root / "images"
    images.mkdir()
    rng = np.random.default_rng(7)
    for index in range(PHOTOS):
        rgb = rng.integers(0, 255, (96, 128, 3), dtype=np.uint8)
        Image.fromarray(rgb).save(images / f"photo_{index}.png")
    geo = GeoInfo((500000.0, 0.01, 0.0, 8000000.0, 0.0, -0.01), "EPSG:32706")
    write_test_tiff(images / MOSAIC, 230, 300, tile=64, geo=geo)  # 2 x 3 tiles
    model = ["--segformer-config", str(TINY), "--segformer-weights", str(checkpoint)]
    reference = root / "reference"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as each cluster worker (1 CPU): the same sums, the same bytes
    try:
        assert main(_infer_args(model, images, reference)) == 0
    finally:
        torch.set_num_threads(threads)
    return {"root": root, "images": images, "model": model, "reference": reference}


def _infer_args(model: list[str], images: Path, output: Path) -> list[str]:
    return ["infer", "--input-dir", str(images), "--output-dir", str(output), *model,
            "--min-area", "16", *TILING]  # fmt: skip


def _run_scenario(inputs: dict, output: Path, scenario: str, **extra) -> dict:
    require_ray_namespace()
    with ray_workdir() as work:
        spec = {"workdir": str(work), "scenario": scenario, **extra}
        spec["infer"] = _infer_args(inputs["model"], inputs["images"], output)[1:]
        (work / "spec.json").write_text(json.dumps(spec))
        # Ray Client's server process per driver must answer within this (default 30 s, too
        # short on 2 cores busy with other work).
        env = ray_environment(
            work, OMP_NUM_THREADS="1", RAY_CLIENT_SERVER_CHECK_CHANNEL_TIMEOUT_S="300"
        )
        result = run_in_loopback_namespace(
            f"{sys.executable} {SCENARIO} {work / 'spec.json'}", env, timeout=1800, cwd=work
        )
        assert result.returncode == 0, result.stderr[-3000:] + result.stdout[-3000:]
        report = json.loads(result.stdout.strip().splitlines()[-1])
        if report.get("rc") != 0:  # what Ray's own processes said, for the failure message
            logs = sorted((work / "ray" / "session_latest" / "logs").glob("*.err"))
            report["output"] += "".join(f"\n== {p.name}\n{p.read_text()[-1500:]}" for p in logs)
        return report


def _assert_same_outputs(expected: Path, actual: Path) -> None:
    """Every mask, map, overlay and record byte for byte; the COCO file after sorting."""

    def files(root: Path) -> list[str]:
        skip = {"inference_log.txt", "predictions.json"}
        return sorted(
            str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and p.name not in skip
        )

    names = files(expected)
    assert names == files(actual)
    assert f"semantic/{Path(MOSAIC).stem}.tif" in names
    assert sum(name.startswith("masks/") for name in names) > PHOTOS  # colonies were found
    assert not (actual / "tiles").exists() or not any((actual / "tiles").iterdir())
    for name in names:
        assert (expected / name).read_bytes() == (actual / name).read_bytes(), name
    coco = [json.loads((root / "predictions.json").read_text()) for root in (expected, actual)]
    for key in ("images", "annotations", "categories"):
        ordered = [sorted(c[key], key=lambda item: json.dumps(item, sort_keys=True)) for c in coco]
        assert ordered[0] == ordered[1], key


def _mosaic_colonies(record_root: Path) -> list[dict]:
    return json.loads((record_root / "instances" / f"{Path(MOSAIC).stem}.json").read_text())[
        "instances"
    ]


@pytest.mark.data_guard  # CI runs it: a cluster run must give the single-process outputs
def test_a_cluster_run_equals_the_single_process_run(inputs: dict, tmp_path: Path) -> None:
    output = tmp_path / "cluster"
    report = _run_scenario(inputs, output, "plain", doctor=True)
    assert report["rc"] == 0, report["output"]
    assert f"{PHOTOS + 1} image(s) processed, 0 already done, 0 failed" in report["output"]
    assert f"{TILES} tile(s) of large images refined, 0 already done" in report["output"]
    assert "ray cluster" in report["doctor"] and "2 node(s), 2 CPU(s)" in report["doctor"]
    _assert_same_outputs(inputs["reference"], output)
    # colonies cut by the seams of the 2 x 3 tiles were joined as in one process
    colonies = _mosaic_colonies(output)
    spanning = [c for c in colonies if c["bbox"][0] // 128 != (c["bbox"][0] + c["bbox"][2]) // 128]
    assert colonies and spanning
    # and their outlines in map coordinates are the same GeoJSON
    for root in (inputs["reference"], output):
        assert main(["cover", str(root), "--out", str(root.parent / f"{root.name}-cover")]) == 0
    geojson = [
        (root.parent / f"{root.name}-cover" / "colonies.geojson").read_text()
        for root in (inputs["reference"], output)
    ]
    assert json.loads(geojson[0])["features"] and geojson[0] == geojson[1]


@pytest.mark.data_guard  # CI runs it: losing a node must lose nothing
def test_a_worker_node_killed_mid_run_costs_only_its_unit(inputs: dict, tmp_path: Path) -> None:
    output = tmp_path / "cluster"
    report = _run_scenario(inputs, output, "kill_node", after=2)
    assert report["killed"] >= 2  # the second node's raylet and its worker
    assert report["rc"] == 0, report["output"]
    assert f"{PHOTOS + 1} image(s) processed, 0 already done, 0 failed" in report["output"]
    _assert_same_outputs(inputs["reference"], output)


@pytest.mark.data_guard  # CI runs it: an interrupted run must resume, not redo or lose work
def test_a_rerun_after_ctrl_c_finishes_only_what_is_missing(inputs: dict, tmp_path: Path) -> None:
    output = tmp_path / "cluster"
    report = _run_scenario(inputs, output, "interrupt", after=4)
    assert report["interrupted_rc"] == 130, report["interrupted_output"]
    records, tiles = report["records_after_interrupt"], report["tiles_after_interrupt"]
    assert 0 < records + tiles < PHOTOS + TILES  # some done, some not
    assert report["rc"] == 0, report["output"]
    printed = report["output"]
    assert f"{PHOTOS + 1 - records} image(s) processed, {records} already done" in printed
    if tiles:
        assert f"{TILES - tiles} tile(s) of large images refined, {tiles} already done" in printed
    _assert_same_outputs(inputs["reference"], output)
