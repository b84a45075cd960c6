"""The steps of ``coralseg demo``: data -> FiftyOne -> masks -> model -> scores -> colonies.

Every step writes into one work folder and records what it was made from in
``demo_state.json``; a rerun skips a step whose inputs are unchanged and whose outputs are
there, and redoes it (and every later step) otherwise, so a rerun reuses cleanly and an
interrupted run goes on where it stopped. ``overwrite`` redoes everything.

The steps call what the commands and the App's operators call: the CVAT/COCO import
(:mod:`fiftyone_plugin.importing`), the mask export of ``coralseg prepare``, the training
of ``coralseg train``, the plugin's evaluation (:func:`fiftyone_plugin.evaluation.evaluate_samples`,
per-class IoU onto the samples), the two-stage inference of ``coralseg infer`` and, where the
ecology module exists, percent cover (``coralseg cover``).
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from coral_core.atomic import write_json_atomically
from coral_core.errors import CoralsegError

REPO = Path(__file__).resolve().parents[1]
TINY_CONFIG = REPO / "configs" / "dinov2-vits14-segformer_tiny-cpu_eilat-224x224.py"
DEFAULT_DATASET = "coralseg-demo"
SAMPLE_VERSION = 1  # bump when demo_sample draws differently
EVAL_KEY = "coralseg_eval"
PRED_FIELD = "coralseg_semantic"
SPLIT_RATIOS = {"train": 0.7, "val": 0.15, "test": 0.15}

Say = Callable[[str], Any]


@dataclass(frozen=True)
class DemoOptions:
    """What ``coralseg demo`` was asked to do (see its ``--help``)."""

    work_dir: Path
    dataset: str = DEFAULT_DATASET
    images: Path | None = None
    annotations: tuple[Path, ...] = ()
    taxonomy: str | None = None
    sample_images: int = 30
    iterations: int = 300
    size: int | None = None
    infer_images: int = 4
    sam_checkpoint: Path | None = None
    device: str = "cpu"
    overwrite: bool = False
    seed: int = 0


@dataclass
class DemoReport:
    """What the demo made, where, and what it measured."""

    dataset: str
    work_dir: Path
    samples: int = 0
    splits: dict[str, int] = field(default_factory=dict)
    data_dir: Path | None = None
    checkpoint: Path | None = None
    scores_table: str = ""
    per_class_iou: dict[str, float | None] = field(default_factory=dict)
    miou: float | None = None
    evaluated: int = 0
    confusion_png: Path | None = None
    inference_dir: Path | None = None
    colonies: dict[str, int] = field(default_factory=dict)  # image -> colonies found
    colonies_by_class: dict[str, int] = field(default_factory=dict)
    cover_dir: Path | None = None
    cover_error: float | None = None  # mean absolute error, percentage points
    reused: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)


class _State:
    """``demo_state.json``: per step, the key of inputs it was last completed with."""

    def __init__(self, path: Path, reset: bool) -> None:
        self.path = path
        self.steps: dict[str, Any] = {}
        if path.is_file() and not reset:
            try:
                self.steps = json.loads(path.read_text())
            except (OSError, json.JSONDecodeError):
                self.steps = {}
        self.redo_rest = reset

    def is_done(self, step: str, key: Any) -> bool:
        """Whether ``step`` was completed with ``key``; once a step is redone, so are the rest."""
        done = not self.redo_rest and self.steps.get(step) == _jsonable(key)
        if not done:
            self.redo_rest = True
        return done

    def mark(self, step: str, key: Any) -> None:
        """Record that ``step`` was just done with ``key``; every later step is redone."""
        self.steps[step] = _jsonable(key)
        self.redo_rest = True
        write_json_atomically(self.path, self.steps, indent=2)

    def owns_dataset(self, name: str) -> bool:
        return (self.steps.get("import") or {}).get("dataset") == name


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def run_demo(options: DemoOptions, say: Say = print) -> DemoReport:
    """Run every step (see the module docstring); ``say`` receives the progress lines."""
    import logging
    import warnings

    # FiftyOne warns on every start that setup.sh's MongoDB 6.0 is the oldest it supports,
    # MMSegmentation about its own deprecations: nothing a demo user can act on.
    logging.getLogger("fiftyone.core.odm.database").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", category=UserWarning, module=r"mmseg\.")
    import fiftyone as fo

    work = options.work_dir.expanduser().resolve()
    work.mkdir(parents=True, exist_ok=True)
    state = _State(work / "demo_state.json", reset=options.overwrite)
    report = DemoReport(options.dataset, work)
    steps = _Steps(options, work, state, report, say)

    images_dir, files, taxonomy_spec = steps.source()
    dataset = steps.import_dataset(fo, images_dir, files)
    encoding = steps.prepare(dataset, taxonomy_spec)
    checkpoint = steps.train(encoding)
    steps.evaluate(dataset, checkpoint)
    steps.infer(dataset, checkpoint)
    steps.cover(checkpoint)
    return report


class _Steps:
    def __init__(self, options: DemoOptions, work: Path, state: _State, report, say: Say):
        self.options = options
        self.work = work
        self.state = state
        self.report = report
        self.say = say
        self.number = 0

    def _begin(self, title: str) -> float:
        self.number += 1
        self.say(f"[{self.number}/7] {title}")
        return time.perf_counter()

    def _end(self, name: str, began: float, reused: bool = False) -> None:
        self.report.seconds[name] = time.perf_counter() - began
        if reused:
            self.report.reused.append(name)
            self.say("      already done, reused (--overwrite redoes it)")
        else:
            self.say(f"      done in {self.report.seconds[name]:.0f}s")

    # 1 -------------------------------------------------------------------------------------
    def source(self) -> tuple[Path, list[Path], str | None]:
        from tqdm import tqdm

        from coralseg.demo_sample import sample_files, write_sample

        options = self.options
        if options.annotations:
            began = self._begin("using your annotations")
            if options.images is None:
                raise CoralsegError("--annotations needs --images, the folder of the photos")
            files = [p.expanduser().resolve() for p in options.annotations]
            self.say(
                "      " + ", ".join(str(p) for p in files) + f" with images in {options.images}"
            )
            if not self.state.is_done("source", {"files": files}):  # other files: redo the rest
                self.state.mark("source", {"files": files})
            self._end("source", began)
            return options.images.expanduser().resolve(), files, options.taxonomy
        if options.images is not None:
            raise CoralsegError("--images needs --annotations (a CVAT XML or COCO export)")
        root = self.work / "sample"
        files = sample_files(root)
        key = {"images": options.sample_images, "seed": options.seed, "version": SAMPLE_VERSION}
        began = self._begin(
            f"drawing a synthetic reef sample ({options.sample_images} photo-quadrats)"
        )
        if self.state.is_done("source", key) and files.annotations.is_file():
            self._end("source", began, reused=True)
        else:
            shutil.rmtree(root, ignore_errors=True)
            with tqdm(total=options.sample_images, desc="      drawing", unit="image") as bar:
                write_sample(root, options.sample_images, seed=options.seed, advance=bar.update)
            self.state.mark("source", key)
            self._end("source", began)
        self.say(f"      {files.images}/ and {files.annotations.name} (CVAT for images 1.1)")
        return files.images, [files.annotations], options.taxonomy or str(files.taxonomy)

    # 2 -------------------------------------------------------------------------------------
    def import_dataset(self, fo, images_dir: Path, files: list[Path]):
        from coral_core.splits import random_split, split_from_tags
        from fiftyone_plugin.importing import import_annotations

        name = self.options.dataset
        began = self._begin(f"importing into the FiftyOne dataset {name!r}")
        key = {"dataset": name, "files": files, "images": images_dir}
        if self.state.is_done("import", key) and fo.dataset_exists(name):
            dataset = fo.load_dataset(name)
            self._end("import", began, reused=True)
        else:
            if fo.dataset_exists(name) and not (
                self.options.overwrite or self.state.owns_dataset(name)
            ):
                raise CoralsegError(
                    f"FiftyOne dataset {name!r} already exists and this demo did not make it; "
                    "choose another name with --dataset, or pass --overwrite to replace it"
                )
            result = import_annotations(name, files, images_dir, overwrite=True, progress=True)
            dataset = fo.load_dataset(name)
            untagged = [
                (sample_id, path)
                for sample_id, path, tags in zip(
                    *dataset.values(["id", "filepath", "tags"]), strict=True
                )
                if split_from_tags(tags) is None
            ]
            if untagged:  # no CVAT subsets: split reproducibly, and show it in the App
                splits = random_split([p for _, p in untagged], SPLIT_RATIOS, self.options.seed)
                for split in SPLIT_RATIOS:
                    ids = [i for i, p in untagged if splits[p] == split]
                    if ids:
                        dataset.select(ids).tag_samples(split)
                self.say(f"      {len(untagged)} images had no subset: split 70/15/15 at random")
            self.state.mark("import", key)
            self._end("import", began)
            self.say("      " + result.summary().replace("\n", "\n      "))
        self.report.samples = len(dataset)
        self.report.splits = {k: v for k, v in sorted(dataset.count_sample_tags().items())}
        return dataset

    # 3 -------------------------------------------------------------------------------------
    def prepare(self, dataset, taxonomy_spec: str | None):
        from coral_core.mmseg_export import export_mmseg_dataset
        from coral_core.taxonomy import MaskEncoding, get_taxonomy, taxonomy_from_mapping
        from fiftyone_plugin.fiftyone_source import read_export_samples

        out = self.work / "data"
        if taxonomy_spec:
            taxonomy = get_taxonomy(taxonomy_spec)
        else:
            labels = sorted(dataset.distinct("gt_polylines.polylines.label"))
            if not labels:
                raise CoralsegError("the annotations hold no polygons or masks to learn from")
            taxonomy = taxonomy_from_mapping({"name": "demo-labels", "classes": labels})
        encoding = MaskEncoding(taxonomy)
        began = self._begin(f"exporting training masks ({len(taxonomy.classes)} classes) to {out}")
        key = {"taxonomy": taxonomy.to_dict(), "size": self.options.size}
        if self.state.is_done("prepare", key) and (out / "manifest.json").is_file():
            self._end("prepare", began, reused=True)
        else:
            samples, _ = read_export_samples(dataset, "gt_polylines")
            summary = export_mmseg_dataset(
                samples,
                out,
                encoding,
                size=self.options.size,
                overwrite=True,
                workers=1,
                source={"fiftyone_dataset": dataset.name, "field": "gt_polylines"},
            )
            counts = ", ".join(f"{split} {n}" for split, n in sorted(summary.samples.items()))
            self.say(f"      images: {counts}")
            self.state.mark("prepare", key)
            self._end("prepare", began)
        self.report.data_dir = out
        return encoding

    # 4 -------------------------------------------------------------------------------------
    def train(self, encoding) -> Path:
        from coral_core.training import TrainOptions, prepare_config, train

        iterations = self.options.iterations
        work_dir = self.work / "train"
        checkpoint = work_dir / f"iter_{iterations}.pth"
        began = self._begin(
            f"training the tiny DINOv2 ViT-S/14 + SegFormer model for {iterations} iterations "
            f"on {self.options.device}"
        )
        key = {
            "iterations": iterations,
            "config": TINY_CONFIG.name,
            "classes": encoding.label_names,
        }
        if self.state.is_done("train", key) and checkpoint.is_file():
            self._end("train", began, reused=True)
        else:
            shutil.rmtree(work_dir, ignore_errors=True)
            cfg = prepare_config(
                TINY_CONFIG,
                TrainOptions(
                    work_dir=str(work_dir),
                    data_dir=str(self.work / "data"),
                    cfg_options={
                        "train_cfg.max_iters": iterations,
                        "train_cfg.val_interval": iterations,
                        "param_scheduler.0.end": iterations,
                        "default_hooks.checkpoint.interval": iterations,
                        "default_hooks.logger.interval": max(1, iterations // 10),
                        "train_dataloader.num_workers": 0,
                        "val_dataloader.num_workers": 0,
                        "test_dataloader.num_workers": 0,
                        "randomness.seed": self.options.seed,
                    },
                ),
            )
            if self.options.device == "cpu":
                cfg.env_cfg.cudnn_benchmark = False
            cfg.log_level = "ERROR"  # the progress bar below says what matters
            _train_with_progress(cfg, train, iterations)
            if not checkpoint.is_file():
                raise CoralsegError(f"training ended without writing {checkpoint}")
            self.state.mark("train", key)
            self._end("train", began)
        self.report.checkpoint = checkpoint
        return checkpoint

    # 5 -------------------------------------------------------------------------------------
    def evaluate(self, dataset, checkpoint: Path) -> None:
        from coral_core.confusion_plot import save_confusion_matrix
        from fiftyone_plugin.evaluation import evaluate_samples

        view, split = _held_out(dataset)
        out = self.work / "evaluation"
        began = self._begin(
            f"evaluating on {_images(len(view))} of the {split} split, per-class IoU onto the "
            "samples"
        )
        key = {"checkpoint": checkpoint, "split": split}
        scores_path = out / "scores.json"
        if (
            self.state.is_done("evaluate", key)
            and scores_path.is_file()
            and EVAL_KEY in dataset.list_evaluations()
        ):
            stored = json.loads(scores_path.read_text())
            self._end("evaluate", began, reused=True)
        else:
            summary = evaluate_samples(
                view,
                TINY_CONFIG,
                checkpoint,
                pred_field=PRED_FIELD,
                eval_key=EVAL_KEY,
                device=self.options.device,
            )
            results = dataset.load_evaluation_results(EVAL_KEY)
            matrix = np.asarray(results.pixel_confusion_matrix, dtype=np.int64)
            names = list(summary.scores.class_names)
            save_confusion_matrix(
                matrix, names, out / "confusion_matrix.png", out / "confusion_matrix.csv"
            )
            stored = {
                "split": split,
                "samples": summary.samples,
                "table": summary.format_table(),
                "iou": {row["class"]: row["iou"] for row in summary.rows()},
                "miou": None if np.isnan(summary.scores.miou) else summary.scores.miou * 100,
            }
            write_json_atomically(scores_path, stored, indent=2)
            self.state.mark("evaluate", key)
            self._end("evaluate", began)
        self.report.scores_table = stored["table"]
        self.report.per_class_iou = stored["iou"]
        self.report.miou = stored["miou"]
        self.report.evaluated = stored["samples"]
        self.report.confusion_png = out / "confusion_matrix.png"

    # 6 -------------------------------------------------------------------------------------
    def infer(self, dataset, checkpoint: Path) -> None:
        from coral_core.inference.pipeline import TwoStagePredictor
        from coralseg.infer_folder import infer_folder

        view, split = _held_out(dataset)
        paths = sorted(view.values("filepath"))[: self.options.infer_images]
        sam = self.options.sam_checkpoint
        stage = f"SAM from {sam.name}" if sam else "semantic regions (no --sam-checkpoint)"
        out = self.work / "inference"
        began = self._begin(
            f"two-stage inference on {_images(len(paths))} of the {split} split: {stage}"
        )
        key = {"checkpoint": checkpoint, "sam": sam, "images": paths}
        if not (self.state.is_done("infer", key) and (out / "predictions.json").is_file()):
            shutil.rmtree(out, ignore_errors=True)
            inputs = out / "input"
            inputs.mkdir(parents=True)
            for path in paths:
                shutil.copy2(path, inputs / Path(path).name)
            predictor = TwoStagePredictor.from_files(
                TINY_CONFIG, checkpoint, sam_checkpoint=sam, device=self.options.device
            )
            summary = infer_folder(predictor, inputs, out)
            if summary.failed:
                raise CoralsegError(
                    f"inference failed on {summary.failed[0][0]}: {summary.failed[0][1]}"
                )
            self._write_predictions(dataset, paths, checkpoint)
            self.state.mark("infer", key)
            self._end("infer", began)
        else:
            self._end("infer", began, reused=True)
        self.report.inference_dir = out
        predictions = json.loads((out / "predictions.json").read_text())
        names = {image["id"]: image["file_name"] for image in predictions["images"]}
        classes = {c["id"]: c["name"] for c in predictions["categories"]}
        per_image = {Path(name).name: 0 for name in names.values()}
        per_class: dict[str, int] = {}
        for item in predictions["annotations"]:
            per_image[Path(names[item["image_id"]]).name] += 1
            label = classes[item["category_id"]]
            per_class[label] = per_class.get(label, 0) + 1
        self.report.colonies = per_image
        self.report.colonies_by_class = dict(sorted(per_class.items()))

    def _write_predictions(self, dataset, paths: list[str], checkpoint: Path) -> None:
        """Colonies onto the samples, through the plugin's prediction function when it exists."""
        try:
            from fiftyone_plugin.prediction import predict_samples
        except ImportError:
            return
        view = dataset.select_by("filepath", paths)
        predict_samples(
            view,
            TINY_CONFIG,
            checkpoint,
            sam_checkpoint=self.options.sam_checkpoint,
            device=self.options.device,
        )

    # 7 -------------------------------------------------------------------------------------
    def cover(self, checkpoint: Path) -> None:
        """``coralseg cover``: annotated cover of every image, and the model's cover error."""
        import contextlib
        import io

        from coralseg.cli import build_parser

        began = self._begin("percent cover: annotated, predicted, and the difference")
        out = self.work / "cover"
        key = {"checkpoint": checkpoint, "infer": self.state.steps.get("infer")}
        if self.state.is_done("cover", key) and (out / "cover_per_image.csv").is_file():
            self._end("cover", began, reused=True)
        else:
            shutil.rmtree(out, ignore_errors=True)
            command = ["cover", str(self.work / "data"), "--out", str(out)]
            command += ["--compare", str(self.work / "inference")]
            args = build_parser().parse_args(command)
            printed = io.StringIO()
            with contextlib.redirect_stdout(printed):
                args.run(args)
            for line in printed.getvalue().splitlines():
                if line.strip() and not line.startswith("note:"):
                    self.say("      " + line.strip())
            self.state.mark("cover", key)
            self._end("cover", began)
        self.report.cover_dir = out
        error_file = out / "cover_error_per_class.csv"
        if error_file.is_file():
            self.report.cover_error = _overall_cover_error(error_file)


def _overall_cover_error(path: Path) -> float | None:
    """The mean absolute cover error over all classes (the table's last row), in points."""
    import csv

    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    value = rows[-1].get("mean_abs_error_pp") if rows else None
    try:
        return float(value) if value not in (None, "") else None
    except ValueError:
        return None


def _images(count: int) -> str:
    return f"{count} image" + ("" if count == 1 else "s")


def _held_out(dataset):
    """The test split (else val, else everything) and its name."""
    for split in ("test", "val"):
        view = dataset.match_tags(split)
        if len(view):
            return view, split
    return dataset.view(), "all"


def _train_with_progress(cfg, train: Callable, iterations: int) -> None:
    from tqdm import tqdm

    try:
        from coral_core.training_progress import ProgressHook
    except ImportError:  # older library: MMEngine's own log lines are the progress
        cfg.log_level = "INFO"
        train(cfg)
        return
    with tqdm(total=iterations, desc="      training", unit="iter") as bar:

        def report(progress) -> None:
            bar.n = progress.iteration
            if progress.latest_miou is not None:
                bar.set_postfix_str(f"val mIoU {progress.latest_miou:.1f}")
            bar.refresh()

        train(cfg, hooks=[ProgressHook(report, every=max(1, iterations // 100))])
