"""Step 5 of ``coralseg demo``: one two-stage pass over a few held-out images.

Each image goes through the predictor once.
:func:`coral_core.inference.batch_runner.infer_folder` writes ``coralseg infer``'s files from
the results; the same results go onto the samples as
colonies (``coralseg_colonies``, as the predict-colonies operator writes them), refined
genus masks (``coralseg_refined``) and the semantic model's own maps (``coralseg_semantic``,
as the evaluation predicts them: same model and windows), which step 6 evaluates instead of
predicting them again.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from coral_core.errors import CoralsegError
from coral_core.inference.pipeline import TwoStagePredictor, TwoStageResult
from coralseg.demo_run import (
    COLONIES_FIELD,
    EVAL_KEY,
    PRED_FIELD,
    REFINED_FIELD,
    TINY_CONFIG,
    DemoRun,
    held_out,
    images_text,
    inferred_paths,
)


class KeepingPredictor(TwoStagePredictor):
    """The two-stage predictor, keeping every result in the order the images came."""

    def __init__(self, predictor: TwoStagePredictor) -> None:
        super().__init__(
            predictor.semantic, predictor.sam, predictor.settings, predictor.batch_size
        )
        self.results: list[TwoStageResult] = []

    def __call__(self, image: np.ndarray) -> TwoStageResult:
        result = super().__call__(image)
        self.results.append(result)
        return result


def infer_colonies(run: DemoRun, dataset, checkpoint: Path) -> None:
    """One two-stage pass over a few held-out images: to disk and onto the samples."""
    view, split = held_out(dataset)
    paths = inferred_paths(run, view)
    sam = run.options.sam_checkpoint
    stage = f"SAM from {sam.name}" if sam else "semantic regions (no --sam-checkpoint)"
    out = run.work / "inference"
    began = run.begin(
        f"two-stage inference on {images_text(len(paths))} of the {split} split: {stage}"
    )
    key = {"model": run.state.version("train"), "sam": sam, "images": [Path(p).name for p in paths]}
    chosen = dataset.select_by("filepath", paths)
    on_samples = all(
        dataset.has_sample_field(name) and len(chosen.exists(name)) == len(paths)
        for name in (COLONIES_FIELD, REFINED_FIELD, PRED_FIELD)
    )
    if (
        not run.redo("infer")
        and run.state.matches("infer", key)
        and (out / "predictions.json").is_file()
        and on_samples
    ):
        run.end("infer", began, reused=True)
    else:
        _one_pass(run, dataset, paths, checkpoint, out)
        run.state.record("infer", key)
        run.end("infer", began)
    run.report.inference_dir = out
    names, labels = chosen.values(["filepath", f"{COLONIES_FIELD}.detections.label"])
    run.report.colonies = {
        Path(p).name: len(found or ()) for p, found in zip(names, labels, strict=True)
    }
    per_class: dict[str, int] = {}
    for found in labels:
        for label in found or ():
            per_class[label] = per_class.get(label, 0) + 1
    run.report.colonies_by_class = dict(sorted(per_class.items()))
    run.report.colony_lines = _judge_colonies(chosen)


def _judge_colonies(chosen) -> list[str]:
    """Colony PQ, mask mAP and count error of the inferred images against their polygons
    (the FiftyOne evaluation ``coralseg_eval_colonies`` that the App's panel lists)."""
    from fiftyone_plugin.evaluation import evaluate_colonies

    summary = evaluate_colonies(chosen, pred_field=COLONIES_FIELD, eval_key=EVAL_KEY)
    return summary.report_lines()


def _one_pass(run: DemoRun, dataset, paths: list[str], checkpoint: Path, out: Path) -> None:
    """Each image through the predictor once; ``coralseg infer``'s files and the samples'
    colonies (``coralseg_colonies``), refined masks (``coralseg_refined``) and raw semantic
    maps (``coralseg_semantic``) from it."""
    import fiftyone as fo

    from coral_core.inference.batch_runner import find_images, infer_folder
    from fiftyone_plugin.evaluation import store_semantic_maps
    from fiftyone_plugin.prediction import to_detection

    shutil.rmtree(out, ignore_errors=True)
    inputs = out / "input"
    inputs.mkdir(parents=True)
    source_of: dict[str, str] = {}
    for path in paths:
        shutil.copy2(path, inputs / Path(path).name)
        source_of[Path(path).name] = path
    predictor = KeepingPredictor(
        TwoStagePredictor.from_files(
            TINY_CONFIG,
            checkpoint,
            sam_checkpoint=run.options.sam_checkpoint,
            device=run.options.device,
        )
    )
    summary = infer_folder(predictor, inputs, out)
    if summary.failed:
        raise CoralsegError(f"inference failed on {summary.failed[0][0]}: {summary.failed[0][1]}")
    order = find_images(inputs)  # the order infer_folder went through them
    if len(order) != len(predictor.results):
        raise CoralsegError(
            f"inference gave {len(predictor.results)} results for {len(order)} images in {inputs}"
        )
    chosen = dataset.select_by("filepath", paths)
    id_of = dict(zip(*chosen.values(["filepath", "id"]), strict=True))
    ids = [id_of[source_of[image.name]] for image in order]
    colonies = {}
    for sample_id, result in zip(ids, predictor.results, strict=True):
        height, width = result.instances.semantic.shape
        found = [to_detection(i, height, width) for i in result.instances.instances]
        colonies[sample_id] = fo.Detections(detections=found)
    dataset.set_values(COLONIES_FIELD, colonies, key_field="id")
    refined = ((i, r.instances.semantic) for i, r in zip(ids, predictor.results, strict=True))
    store_semantic_maps(chosen, refined, predictor.encoding, REFINED_FIELD)
    # the semantic stage's own maps, unrefined: what the evaluation would predict
    raw = ((i, r.semantic_raw) for i, r in zip(ids, predictor.results, strict=True))
    store_semantic_maps(chosen, raw, predictor.encoding, PRED_FIELD)
