"""Make the user guide's pictures (docs/images/) from a ``coralseg demo`` run.

    .venv/bin/python docs/make_figures.py --demo-dir ~/coralseg-demo

Runs ``coralseg demo --work-dir DIR`` first when that folder holds no finished demo, then
writes, each under 300 KB:

* ``overlay.jpg``: the demo model's colonies on a held-out quadrat (``coralseg infer``'s
  visualization);
* ``sample.jpg``: a quadrat of the synthetic sample with its annotated polygons;
* ``confusion_matrix.png``: the held-out confusion matrix
  (``coral_core.evaluation.confusion_plot``);
* ``per_class_iou.png``: the held-out per-class IoU as bars in the classes' colours;
* ``app-*.png``: the FiftyOne App on the demo dataset, the operator browser and the
  evaluate operator's form, result and IoU fields, the cover form saying what a run still
  needs and the evaluate form offering the demo's model (``docs/fiftyone-app.md`` shows
  them), taken by the plugin's App driver where Chromium is installed.
"""

from __future__ import annotations

import argparse
import io
import json
import shutil
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

REPO = Path(__file__).resolve().parents[1]
MAX_BYTES = 300_000
WIDTH = 900
TINY = "dinov2-vits14-segformer_tiny-cpu_eilat-224x224.py"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--demo-dir", type=Path, default=Path("~/coralseg-demo"))
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "images")
    parser.add_argument(
        "--dataset", default="coralseg-demo", help="the demo's FiftyOne dataset (for app-*.png)"
    )
    args = parser.parse_args(argv)
    demo = args.demo_dir.expanduser()
    if not (demo / "evaluation" / "scores.json").is_file():
        sys.path.insert(0, str(REPO))
        from coralseg.cli import main as coralseg

        code = coralseg(["demo", "--work-dir", str(demo), "--dataset", args.dataset])
        if code:
            return code
    args.out.mkdir(parents=True, exist_ok=True)
    written = [
        overlay(demo, args.out / "overlay.jpg"),
        sample(demo, args.out / "sample.jpg"),
        confusion(demo, args.out / "confusion_matrix.png"),
        per_class_iou(demo, args.out / "per_class_iou.png"),
    ]
    written += app_screenshots(demo, args.dataset, args.out)
    for path in written:
        print(f"{path} ({path.stat().st_size // 1000} KB)")
    return 0


def _save(image: Image.Image, path: Path) -> Path:
    """Save ``image`` (shrunk to WIDTH) as JPEG or PNG under MAX_BYTES."""
    if image.width > WIDTH:
        image = image.resize((WIDTH, round(image.height * WIDTH / image.width)), Image.LANCZOS)
    for quality in (88, 80, 70, 60):
        buffer = io.BytesIO()
        if path.suffix == ".jpg":
            image.convert("RGB").save(buffer, format="JPEG", quality=quality, optimize=True)
        else:
            colors = 256 if quality >= 80 else 64
            image.convert("RGB").quantize(colors).save(buffer, format="PNG", optimize=True)
        if buffer.tell() <= MAX_BYTES:
            path.write_bytes(buffer.getvalue())
            return path
    raise RuntimeError(f"{path.name} stays over {MAX_BYTES} bytes")


def overlay(demo: Path, path: Path) -> Path:
    pictures = sorted((demo / "inference" / "visualizations").glob("*.jpg"))
    if not pictures:
        raise SystemExit(f"no inference overlays in {demo}/inference; rerun coralseg demo")
    return _save(Image.open(pictures[0]), path)


def _palette(demo: Path) -> dict[str, tuple[int, int, int]]:
    names = (demo / "data" / "classes.txt").read_text().split("\n")
    colors = (demo / "data" / "palette.txt").read_text().splitlines()
    return {
        name: tuple(int(v) for v in color.split())
        for name, color in zip(names, colors, strict=False)
    }


def sample(demo: Path, path: Path) -> Path:
    sys.path.insert(0, str(REPO))
    from coral_core.formats.annotations import read_cvat_xml

    annotations = read_cvat_xml(demo / "sample" / "annotations.xml")
    palette = _palette(demo)
    first = annotations.images[0]
    image = Image.open(demo / "sample" / "images" / first.name).convert("RGB")
    draw = ImageDraw.Draw(image)
    for shape in first.shapes:
        for polygon in shape.polygons:
            points = [tuple(p) for p in polygon.exterior.tolist()]
            draw.line([*points, points[0]], fill=palette.get(shape.label, (255, 255, 255)), width=3)
            x, y = polygon.exterior.mean(axis=0)
            draw.text((x - 20, y - 5), shape.label, fill=(255, 255, 255))
    return _save(image, path)


def confusion(demo: Path, path: Path) -> Path:
    return _save(Image.open(demo / "evaluation" / "confusion_matrix.png"), path)


def per_class_iou(demo: Path, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scores = json.loads((demo / "evaluation" / "scores.json").read_text())
    palette = _palette(demo)
    names = [name for name, value in scores["iou"].items() if value is not None]
    values = [scores["iou"][name] for name in names]
    colors = [np.array(palette.get(name, (128, 128, 128))) / 255 for name in names]
    figure, axes = plt.subplots(figsize=(7, 3.2), dpi=110)
    bars = axes.barh(names[::-1], values[::-1], color=colors[::-1], edgecolor="black")
    axes.bar_label(bars, fmt="%.1f", padding=3)
    axes.set_xlim(0, 100)
    axes.set_xlabel("IoU (%)")
    miou = scores.get("miou")
    axes.set_title(
        f"Per-class IoU on {scores['samples']} held-out images"
        + (f" (mIoU {miou:.1f})" if miou is not None else "")
    )
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    buffer.seek(0)
    return _save(Image.open(buffer), path)


def app_screenshots(demo: Path, dataset: str, out: Path) -> list[Path]:
    """The App on the demo dataset (``app-*.png``), taken by the plugin's App driver
    (``tests/fiftyone_plugin/app_driver.py``: the App server on loopback, headless
    Chromium), then shrunk under MAX_BYTES. Skipped with a note where either is missing."""
    import subprocess

    driver = REPO / "tests" / "fiftyone_plugin" / "app_driver.py"
    checkpoints = sorted((demo / "train").glob("iter_*.pth"))
    if not driver.is_file() or not checkpoints:
        print("App screenshots: skipped (no App driver or no demo checkpoint)")
        return []
    raw = out / ".app-raw"
    command = [sys.executable, str(driver), "--dataset", dataset]
    command += ["--config", str(REPO / "configs" / TINY), "--checkpoint", str(checkpoints[-1])]
    command += ["--forms"]
    try:
        result = subprocess.run([*command, "--out", str(raw)], cwd=REPO, check=False)
        if result.returncode != 0:
            print("App screenshots: skipped (the App driver failed; see above)")
            return []
        return [_save(Image.open(shot), out / shot.name) for shot in sorted(raw.glob("app-*.png"))]
    finally:
        shutil.rmtree(raw, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
