"""The steps of ``coralseg demo``: data -> FiftyOne -> masks -> model -> scores -> colonies.

Each step is a function over library calls that writes into one work folder and records in
``demo_state.json`` the key it was made from: its own settings and the keys of the steps
whose outputs it reads. A rerun reuses a step whose key is unchanged and whose outputs are
there, and redoes it otherwise. Keys are about content, not order: when only the FiftyOne
dataset is gone, it is imported again from the work folder and the masks and the model,
whose keys did not change, are reused.

A finished model is never replaced unless asked: when the training settings changed, the
run stops with a sentence naming what changed, unless ``redo`` names ``train``.

The FiftyOne dataset lives in FiftyOne's database, not in the work folder. FiftyOne's
embedded MongoDB serves every process of the user whatever its data folder, so the state
records which database the dataset was written to; a rerun that does not find the dataset
says where it was made and where it looked.

Each model runs once per image. The two-stage pass (:mod:`coralseg.demo_infer`) comes first,
on a few held-out images: its results are written to disk in ``coralseg infer``'s layout
(:func:`coral_core.inference.batch_runner.infer_folder`) and, from the same results, onto
the samples as colonies, refined masks and the raw semantic maps the evaluation reads. The
evaluation then predicts only the other held-out images and evaluates them all
(:func:`fiftyone_plugin.evaluation.evaluate_predictions`).
Percent cover is :mod:`coral_core.ecology.report`'s, as ``coralseg cover`` computes it.
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
DEMO_MODEL = "coralseg demo"  # its name in the App's forms
DEFAULT_WORK_DIR = Path("~/coralseg-demo")
SAMPLE_VERSION = 1  # bump when demo_sample draws differently
EVAL_KEY = "coralseg_eval"
PRED_FIELD = "coralseg_semantic"
COLONIES_FIELD = "coralseg_colonies"
REFINED_FIELD = "coralseg_refined"
SPLIT_RATIOS = {"train": 0.7, "val": 0.15, "test": 0.15}
STEPS = ("source", "import", "prepare", "train", "infer", "evaluate", "cover")

Say = Callable[[str], Any]


@dataclass(frozen=True)
class DemoOptions:
    """What ``coralseg demo`` was asked to do (see its ``--help``).

    ``redo``: steps (of :data:`STEPS`) to redo even when finished; ``"all"`` redoes every one.
    """

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
    redo: frozenset[str] = frozenset()
    seed: int = 0


@dataclass
class DemoReport:
    """What the demo made, where, and what it measured."""

    dataset: str
    work_dir: Path
    samples: int = 0
    splits: dict[str, int] = field(default_factory=dict)
    data_dir: Path | None = None
    config: Path = TINY_CONFIG
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
    colony_lines: list[str] = field(default_factory=list)  # colony PQ, mAP, count error
    reused: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)


class DemoState:
    """``demo_state.json``: per step, the key it was last finished with and facts about it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.steps: dict[str, dict[str, Any]] = {}
        if path.is_file():
            try:
                loaded = json.loads(path.read_text())
            except (OSError, json.JSONDecodeError):
                loaded = {}
            self.steps = {k: v for k, v in loaded.items() if isinstance(v, dict) and "key" in v}

    def key(self, step: str) -> Any:
        return (self.steps.get(step) or {}).get("key")

    def fact(self, step: str, name: str) -> Any:
        return (self.steps.get(step) or {}).get(name)

    def matches(self, step: str, key: Any) -> bool:
        return step in self.steps and self.key(step) == _jsonable(key)

    def version(self, step: str) -> dict[str, Any]:
        """What later steps' keys hold of ``step``: its key and when it was made, so that a
        step made again (``--redo``, or its output gone) makes them again too."""
        record = self.steps.get(step) or {}
        return {"key": record.get("key"), "made": record.get("made")}

    def record(self, step: str, key: Any, **facts: Any) -> None:
        self.steps[step] = {"key": _jsonable(key), "made": time.time_ns(), **_jsonable(facts)}
        write_json_atomically(self.path, self.steps, indent=2)


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


@dataclass
class DemoRun:
    """One run's settings, state and report, and its progress lines."""

    options: DemoOptions
    work: Path
    state: DemoState
    report: DemoReport
    say: Say
    number: int = 0

    def redo(self, step: str) -> bool:
        return step in self.options.redo or "all" in self.options.redo

    def begin(self, title: str) -> float:
        self.number += 1
        self.say(f"[{self.number}/{len(STEPS)}] {title}")
        return time.perf_counter()

    def end(self, step: str, began: float, reused: bool = False) -> None:
        self.report.seconds[step] = time.perf_counter() - began
        if reused:
            self.report.reused.append(step)
            self.say(f"      already done, reused (--redo {step} redoes it)")
        else:
            self.say(f"      done in {self.report.seconds[step]:.0f}s")


@dataclass(frozen=True)
class Source:
    """The photos and annotation files the demo learns from, and their key."""

    images: Path
    files: list[Path]
    taxonomy: str | None
    key: Any


def run_demo(options: DemoOptions, say: Say = print) -> DemoReport:
    """Run every step (see the module docstring); ``say`` receives the progress lines."""
    import logging
    import warnings

    unknown = set(options.redo) - {*STEPS, "all"}
    if unknown:
        raise CoralsegError(
            f"--redo {', '.join(sorted(unknown))}: no such step; the steps are "
            f"{', '.join(STEPS)} (or all)"
        )
    # FiftyOne warns on every start that setup.sh's MongoDB 6.0 is the oldest it supports,
    # MMSegmentation about its own deprecations: nothing a demo user can act on.
    logging.getLogger("fiftyone.core.odm.database").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", category=UserWarning, module=r"mmseg\.")

    work = options.work_dir.expanduser().resolve()
    work.mkdir(parents=True, exist_ok=True)
    run = DemoRun(
        options, work, DemoState(work / "demo_state.json"), DemoReport(options.dataset, work), say
    )
    say(f"work folder: {work}")
    source = draw_source(run)
    dataset = import_dataset(run, source)
    encoding = prepare_masks(run, dataset, source)
    checkpoint = train_model(run, encoding)
    from fiftyone_plugin.known_models import remember_model

    remember_model(dataset, DEMO_MODEL, TINY_CONFIG, checkpoint)  # offered by the App's forms
    from coralseg.demo_infer import infer_colonies  # torch: loaded once a model is there

    infer_colonies(run, dataset, checkpoint)
    evaluate_model(run, dataset, checkpoint)
    measure_cover(run)
    return run.report


# 1 -----------------------------------------------------------------------------------------
def draw_source(run: DemoRun) -> Source:
    """The user's annotations, or the synthetic sample (drawn once per settings)."""
    from tqdm import tqdm

    from coralseg.demo_sample import sample_files, write_sample

    options = run.options
    if options.annotations:
        began = run.begin("using your annotations")
        if options.images is None:
            raise CoralsegError("--annotations needs --images, the folder of the photos")
        files = [p.expanduser().resolve() for p in options.annotations]
        images = options.images.expanduser().resolve()
        run.say("      " + ", ".join(str(p) for p in files) + f" with images in {images}")
        key = {"files": files, "images": images}
        if run.redo("source") or not run.state.matches("source", key):
            run.state.record("source", key)
        run.end("source", began)
        return Source(images, files, options.taxonomy, run.state.version("source"))
    if options.images is not None:
        raise CoralsegError("--images needs --annotations (a CVAT XML or COCO export)")
    root = run.work / "sample"
    files = sample_files(root)
    key = {"images": options.sample_images, "seed": options.seed, "version": SAMPLE_VERSION}
    began = run.begin(f"drawing a synthetic reef sample ({options.sample_images} photo-quadrats)")
    if not run.redo("source") and run.state.matches("source", key) and files.annotations.is_file():
        run.end("source", began, reused=True)
    else:
        shutil.rmtree(root, ignore_errors=True)
        with tqdm(total=options.sample_images, desc="      drawing", unit="image") as bar:
            write_sample(root, options.sample_images, seed=options.seed, advance=bar.update)
        run.state.record("source", key)
        run.end("source", began)
    run.say(f"      {files.images}/ and {files.annotations.name} (CVAT for images 1.1)")
    taxonomy = options.taxonomy or str(files.taxonomy)
    return Source(files.images, [files.annotations], taxonomy, run.state.version("source"))


# 2 -----------------------------------------------------------------------------------------
def database_location() -> str:
    """Which FiftyOne database this process uses: its name and where MongoDB keeps it."""
    import fiftyone as fo
    from fiftyone.core.odm.database import get_db_client
    from pymongo.errors import PyMongoError

    where = fo.config.database_uri or "FiftyOne's embedded MongoDB"
    try:
        options = get_db_client().admin.command("getCmdLineOpts")
        where += f", data folder {options['parsed']['storage']['dbPath']}"
    except (PyMongoError, KeyError, TypeError):
        pass  # a server that does not say: its URI is all there is
    return f"database {fo.config.database_name!r} ({where})"


def missing_dataset_reason(name: str, made_in: str | None, here: str) -> str:
    """Why a dataset this demo made is not found, as a sentence."""
    if made_in and made_in != here:
        return (
            f"the FiftyOne dataset {name!r} was made in {made_in}, but this process reaches "
            f"{here}. FiftyOne's embedded MongoDB is shared by every process of this user, "
            "whatever HOME or data folder each was started with: the first one running "
            "serves them all (set FIFTYONE_DATABASE_URI or FIFTYONE_DATABASE_NAME to choose)"
        )
    return f"the FiftyOne dataset {name!r} that this demo made is no longer in {here}"


def import_dataset(run: DemoRun, source: Source):
    """The FiftyOne dataset of the source, imported as ``coralseg import`` does."""
    import fiftyone as fo

    from coral_core.training.splits import random_split, split_from_tags
    from fiftyone_plugin.importing import import_annotations

    name = run.options.dataset
    began = run.begin(f"importing into the FiftyOne dataset {name!r}")
    key = {"dataset": name, "source": source.key}
    here = database_location()
    exists = fo.dataset_exists(name)
    finished = not run.redo("import") and run.state.matches("import", key)
    if finished and exists:
        dataset = fo.load_dataset(name)
        run.end("import", began, reused=True)
    else:
        if finished:
            reason = missing_dataset_reason(name, run.state.fact("import", "database"), here)
            run.say(f"      {reason}; importing it again (the masks and the model are kept)")
        elif exists and not (run.redo("import") or run.state.fact("import", "dataset") == name):
            raise CoralsegError(
                f"FiftyOne dataset {name!r} already exists and this demo did not make it; "
                "choose another name with --dataset, or pass --redo import to replace it"
            )
        result = import_annotations(
            name, source.files, source.images, overwrite=True, progress=True
        )
        dataset = fo.load_dataset(name)
        _split_untagged(dataset, run, random_split, split_from_tags)
        run.state.record("import", key, dataset=name, database=here)
        run.end("import", began)
        run.say("      " + result.summary().replace("\n", "\n      "))
    run.report.samples = len(dataset)
    run.report.splits = dict(sorted(dataset.count_sample_tags().items()))
    return dataset


def _split_untagged(dataset, run: DemoRun, random_split, split_from_tags) -> None:
    """Images without a CVAT subset: split reproducibly, and show it in the App as tags."""
    untagged = [
        (sample_id, path)
        for sample_id, path, tags in zip(*dataset.values(["id", "filepath", "tags"]), strict=True)
        if split_from_tags(tags) is None
    ]
    if not untagged:
        return
    splits = random_split([p for _, p in untagged], SPLIT_RATIOS, run.options.seed)
    for split in SPLIT_RATIOS:
        ids = [i for i, p in untagged if splits[p] == split]
        if ids:
            dataset.select(ids).tag_samples(split)
    run.say(f"      {len(untagged)} images had no subset: split 70/15/15 at random")


# 3 -----------------------------------------------------------------------------------------
def prepare_masks(run: DemoRun, dataset, source: Source):
    """Training masks in ``data/`` (``coralseg prepare``'s layout); returns their encoding."""
    from coral_core.labels.taxonomy import MaskEncoding, get_taxonomy, taxonomy_from_mapping
    from coral_core.training.mmseg_export import export_mmseg_dataset
    from fiftyone_plugin.fiftyone_source import read_export_samples

    out = run.work / "data"
    if source.taxonomy:
        taxonomy = get_taxonomy(source.taxonomy)
    else:
        labels = sorted(dataset.distinct("gt_polylines.polylines.label"))
        if not labels:
            raise CoralsegError("the annotations hold no polygons or masks to learn from")
        taxonomy = taxonomy_from_mapping({"name": "demo-labels", "classes": labels})
    encoding = MaskEncoding(taxonomy)
    began = run.begin(f"exporting training masks ({len(taxonomy.classes)} classes) to {out}")
    key = {"source": source.key, "taxonomy": taxonomy.to_dict(), "size": run.options.size}
    if (
        not run.redo("prepare")
        and run.state.matches("prepare", key)
        and (out / "manifest.json").is_file()
    ):
        run.end("prepare", began, reused=True)
    else:
        samples, _ = read_export_samples(dataset, "gt_polylines")
        summary = export_mmseg_dataset(
            samples,
            out,
            encoding,
            size=run.options.size,
            overwrite=True,
            workers=1,
            source={"fiftyone_dataset": dataset.name, "field": "gt_polylines"},
        )
        counts = ", ".join(f"{split} {n}" for split, n in sorted(summary.samples.items()))
        run.say(f"      images: {counts}")
        run.state.record("prepare", key)
        run.end("prepare", began)
    run.report.data_dir = out
    return encoding


# 4 -----------------------------------------------------------------------------------------
def train_model(run: DemoRun, encoding) -> Path:
    """The tiny model's checkpoint; a finished one is replaced only with ``--redo train``."""
    from coral_core.training.runner import TrainOptions, prepare_config, train

    options = run.options
    iterations = options.iterations
    work_dir = run.work / "train"
    checkpoint = work_dir / f"iter_{iterations}.pth"
    began = run.begin(
        f"training the tiny DINOv2 ViT-S/14 + SegFormer model for {iterations} iterations "
        f"on {options.device}"
    )
    key = {
        "data": run.state.version("prepare"),
        "iterations": iterations,
        "config": TINY_CONFIG.name,
        "classes": encoding.label_names,
        "seed": options.seed,
    }
    if not run.redo("train") and run.state.matches("train", key) and checkpoint.is_file():
        run.end("train", began, reused=True)
        run.report.checkpoint = checkpoint
        return checkpoint
    finished = sorted(work_dir.glob("*.pth"))
    if finished and not run.redo("train"):
        raise CoralsegError(
            f"{work_dir} holds a finished model ({finished[-1].name}) trained with other "
            f"settings ({_changes(run.state.key('train'), key)}); pass --redo train to "
            "replace it, or give another --work-dir to keep it"
        )
    shutil.rmtree(work_dir, ignore_errors=True)
    cfg = prepare_config(
        TINY_CONFIG,
        TrainOptions(
            work_dir=str(work_dir),
            data_dir=str(run.work / "data"),
            cfg_options={
                "train_cfg.max_iters": iterations,
                "train_cfg.val_interval": iterations,
                "param_scheduler.0.end": iterations,
                "default_hooks.checkpoint.interval": iterations,
                "default_hooks.logger.interval": max(1, iterations // 10),
                "train_dataloader.num_workers": 0,
                "val_dataloader.num_workers": 0,
                "test_dataloader.num_workers": 0,
                "randomness.seed": options.seed,
            },
        ),
    )
    if options.device == "cpu":
        cfg.env_cfg.cudnn_benchmark = False
    cfg.log_level = "ERROR"  # the progress bar below says what matters
    _train_with_progress(cfg, train, iterations)
    if not checkpoint.is_file():
        raise CoralsegError(f"training ended without writing {checkpoint}")
    run.state.record("train", key, checkpoint=checkpoint)
    run.end("train", began)
    run.report.checkpoint = checkpoint
    return checkpoint


def _changes(old: Any, new: Any) -> str:
    """The settings that differ between two training keys, e.g. ``iterations 300 -> 600``."""
    if not isinstance(old, dict):
        return "not recorded in demo_state.json"
    new = _jsonable(new)
    names = {"data": "the training masks", "classes": "the classes", "config": "the config"}
    changed = []
    for setting in new:
        if old.get(setting) != new[setting]:
            if setting in names:
                changed.append(f"{names[setting]} changed")
            else:
                changed.append(f"{setting} {old.get(setting)} -> {new[setting]}")
    return ", ".join(changed) or "unknown"


def _train_with_progress(cfg, train: Callable, iterations: int) -> None:
    from tqdm import tqdm

    from coral_core.training.progress import ProgressHook

    with tqdm(total=iterations, desc="      training", unit="iter") as bar:

        def report(progress) -> None:
            bar.n = progress.iteration
            if progress.latest_miou is not None:
                bar.set_postfix_str(f"val mIoU {progress.latest_miou:.1f}")
            bar.refresh()

        train(cfg, hooks=[ProgressHook(report, every=max(1, iterations // 100))])


# 6 -----------------------------------------------------------------------------------------
def evaluate_model(run: DemoRun, dataset, checkpoint: Path) -> None:
    """Per-class IoU on the held-out split, onto the samples (the evaluate operator's
    functions). The images of the two-stage pass keep the semantic maps it stored; only the
    others go through the semantic model here."""
    from coral_core.evaluation.confusion_plot import save_confusion_matrix
    from fiftyone_plugin.evaluation import evaluate_predictions, predict_semantic

    view, split = held_out(dataset)
    out = run.work / "evaluation"
    began = run.begin(
        f"evaluating on {images_text(len(view))} of the {split} split, per-class IoU onto the "
        "samples"
    )
    key = {
        "model": run.state.version("train"),
        "maps": run.state.version("infer"),  # the inferred images' semantic maps
        "split": split,
        "images": _names(view),
    }
    scores_path = out / "scores.json"
    if (
        not run.redo("evaluate")
        and run.state.matches("evaluate", key)
        and scores_path.is_file()
        and EVAL_KEY in dataset.list_evaluations()
    ):
        stored = json.loads(scores_path.read_text())
        run.end("evaluate", began, reused=True)
    else:
        others = view.exclude_by("filepath", inferred_paths(run, view))
        if len(others):
            predict_semantic(
                others, TINY_CONFIG, checkpoint, pred_field=PRED_FIELD, device=run.options.device
            )
        # the inferred images' colonies are judged by the inference step
        summary = evaluate_predictions(
            view, pred_field=PRED_FIELD, eval_key=EVAL_KEY, colonies_field=None
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
        run.state.record("evaluate", key)
        run.end("evaluate", began)
    run.report.scores_table = stored["table"]
    run.report.per_class_iou = stored["iou"]
    run.report.miou = stored["miou"]
    run.report.evaluated = stored["samples"]
    run.report.confusion_png = out / "confusion_matrix.png"


# 7 -----------------------------------------------------------------------------------------
def measure_cover(run: DemoRun) -> None:
    """Annotated cover of every image and the model's cover error (``coralseg cover``'s)."""
    from coral_core.ecology.image_fields import image_fields
    from coral_core.ecology.measure import CoverSettings, measure_source
    from coral_core.ecology.report import summary_lines, write_cover_report
    from coral_core.ecology.sources import locate_masks

    began = run.begin("percent cover: annotated, predicted, and the difference")
    out = run.work / "cover"
    key = {"data": run.state.version("prepare"), "infer": run.state.version("infer")}
    error_file = out / "cover_error_per_class.csv"
    if not run.redo("cover") and run.state.matches("cover", key) and error_file.is_file():
        run.end("cover", began, reused=True)
    else:
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir(parents=True)
        source = locate_masks(run.work / "data")
        described = image_fields([source], [item.name for item in source.items])
        fields, field_names = described.fields, described.field_names
        settings = CoverSettings()
        annotated = measure_source(source, settings, True, None, fields, field_names, "annotations")
        predicted = measure_source(
            locate_masks(run.work / "inference"), settings, False, description="predictions"
        )
        write_cover_report(out, annotated, fields, field_names, (), predicted)
        for line in summary_lines(annotated):
            run.say("      " + line.strip())
        run.state.record("cover", key)
        run.end("cover", began)
    run.report.cover_dir = out
    run.report.cover_error = _overall_cover_error(error_file)


def _overall_cover_error(path: Path) -> float | None:
    """The mean absolute cover error over all classes (the table's last row), in points."""
    import csv

    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    value = rows[-1].get("mean_abs_error_pp") if rows else None
    return float(value) if value else None


def images_text(count: int) -> str:
    return f"{count} image" + ("" if count == 1 else "s")


def _names(view) -> list[str]:
    return sorted(Path(p).name for p in view.values("filepath"))


def held_out(dataset):
    """The test split (else val, else everything) and its name."""
    for split in ("test", "val"):
        view = dataset.match_tags(split)
        if len(view):
            return view, split
    return dataset.view(), "all"


def inferred_paths(run: DemoRun, held_out_view) -> list[str]:
    """The held-out images the two-stage pass runs on: the first ``--infer-images`` by path."""
    return sorted(held_out_view.values("filepath"))[: run.options.infer_images]
