"""Training from points against dense masks on EilatMixx: the table of docs/points.md.

Simulates point surveys on the dense training labels (N random labelled pixels per photo,
the same points for the sparse and the densified setting), trains the tiny config for the
same iterations with the same seed from: the dense masks; the points (point-label loss);
the points spread over superpixels (point-label loss). Every run is evaluated on the dense
labels of the held-out photos (every tenth, as configs/_base_/datasets/eilat.py holds out):
mIoU, and cover error = mean over classes of |predicted - true cover| in percentage points,
pooled over the held-out photos' labelled pixels.

Run from the repository root (random-weight backbone: no pretrained weights here)::

    .venv/bin/python bench/bench_points.py --iters 40 --out work_dirs/points_eilat

It appends one JSON line per finished run to <out>/results.jsonl (a rerun skips finished
runs) and prints the table in Markdown at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from coral_core.labels.densify import densify_points, superpixel_levels  # noqa: E402
from coral_core.labels.point_labels import simulate_points, stamp_points  # noqa: E402

DENSE_CONFIG = REPO / "configs" / "dinov2-vits14-segformer_tiny-cpu_eilat-224x224.py"
POINTS_CONFIG = REPO / "configs" / "dinov2-vits14-segformer_tiny-cpu_eilat-points-224x224.py"
EILAT = Path(os.environ.get("CORALSEG_SHARED_DATA", REPO.parent / "shared" / "data")) / (
    "eilat_train"
)
NAMES = [str(value) for value in range(10)]  # mask value -> itself: points keep the value
POINT_RADIUS = 3  # pixels at 1380x920; the tiny pipeline shrinks photos about 3x


def build_label_folders(out: Path, counts: list[int], seed: int) -> dict[str, Path]:
    """One folder per setting (images linked, labels written); returns setting -> folder."""
    images = sorted((EILAT / "images").glob("*.jpg"))
    held_out = {i for i in range(len(images)) if i % 10 == 0}
    folders = {"dense": EILAT}
    settings = [f"points-{n}" for n in counts] + [f"superpixels-{n}" for n in counts]
    for setting in settings:
        folder = out / "data" / setting
        (folder / "labels").mkdir(parents=True, exist_ok=True)
        if not (folder / "images").exists():
            (folder / "images").symlink_to(EILAT / "images")
        folders[setting] = folder
    done = out / "data" / ".complete"
    if done.exists():
        return folders
    values = {name: int(name) for name in NAMES}
    for index, image_path in enumerate(images):
        label_name = image_path.stem + ".png"
        dense = np.array(Image.open(EILAT / "labels" / label_name))
        if index in held_out:
            for setting in settings:
                Image.fromarray(dense).save(folders[setting] / "labels" / label_name)
            continue
        regions = superpixel_levels(np.array(Image.open(image_path).convert("RGB")))
        for n in counts:
            rng = np.random.default_rng([seed, index, n])
            points = simulate_points(dense, n, rng, NAMES)
            sparse = stamp_points(np.full_like(dense, 255), points, values, POINT_RADIUS)
            Image.fromarray(sparse).save(folders[f"points-{n}"] / "labels" / label_name)
            spread = densify_points(sparse, regions)
            Image.fromarray(spread).save(folders[f"superpixels-{n}"] / "labels" / label_name)
        print(f"labels {index + 1}/{len(images)}", flush=True)
    done.touch()
    return folders


def train_and_evaluate(setting: str, folder: Path, out: Path, iters: int, seed: int) -> dict:
    work = out / "runs" / setting
    config = DENSE_CONFIG if setting == "dense" else POINTS_CONFIG
    command = [
        sys.executable,
        "-m",
        "coralseg.cli",
        "train",
        str(config),
        "--work-dir",
        str(work),
        "--cfg-options",
        f"randomness.seed={seed}",
        f"train_cfg.max_iters={iters}",
        f"train_cfg.val_interval={iters}",
        f"param_scheduler.0.end={iters}",
        f"default_hooks.checkpoint.interval={iters}",
        "default_hooks.logger.interval=10",
        "train_dataloader.num_workers=0",
        "val_dataloader.num_workers=0",
        "test_dataloader.num_workers=0",
        f"train_dataloader.dataset.data_root={folder}",
        f"val_dataloader.dataset.data_root={EILAT}",
        f"test_dataloader.dataset.data_root={EILAT}",
        f"val_evaluator.output_dir={work / 'eval'}",
    ]
    start = time.perf_counter()
    with (out / "runs" / f"{setting}.log").open("w") as log:
        subprocess.run(command, check=True, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
    metrics = json.loads((work / "eval" / "metrics.json").read_text())
    classes = metrics["per_class"]
    gt = np.array([c["gt_pixels"] for c in classes], dtype=np.float64)
    pred = np.array([c["pred_pixels"] for c in classes], dtype=np.float64)
    cover_error = float(np.abs(pred / pred.sum() - gt / gt.sum()).mean() * 100)
    return {
        "setting": setting,
        "iters": iters,
        "seed": seed,
        "mIoU": metrics["mIoU"],
        "cover_error_pp": cover_error,
        "minutes": (time.perf_counter() - start) / 60,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iters", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--counts", type=int, nargs="+", default=[10, 25, 50, 100])
    parser.add_argument("--out", type=Path, default=REPO / "work_dirs" / "points_eilat")
    args = parser.parse_args()
    if not (EILAT / "labels").is_dir():
        raise SystemExit(f"EilatMixx is not at {EILAT} (set CORALSEG_SHARED_DATA)")
    out = args.out.resolve()
    (out / "runs").mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    folders = build_label_folders(out, args.counts, args.seed)
    print(f"labels written in {time.perf_counter() - start:.0f} s", flush=True)
    results_path = out / "results.jsonl"
    finished = set()
    if results_path.exists():
        finished = {json.loads(line)["setting"] for line in results_path.read_text().splitlines()}
    order = ["dense"] + [f"{kind}-{n}" for n in args.counts for kind in ("points", "superpixels")]
    for setting in order:
        if setting in finished:
            continue
        result = train_and_evaluate(setting, folders[setting], out, args.iters, args.seed)
        with results_path.open("a") as handle:
            handle.write(json.dumps(result) + "\n")
        print(json.dumps(result), flush=True)
    rows = [json.loads(line) for line in results_path.read_text().splitlines()]
    print("| setting | mIoU (%) | cover error (pp) | minutes |\n|---|---|---|---|")
    for row in rows:
        print(
            f"| {row['setting']} | {row['mIoU']:.2f} | {row['cover_error_pp']:.2f} "
            f"| {row['minutes']:.1f} |"
        )


if __name__ == "__main__":
    main()
