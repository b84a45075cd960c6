"""Operator: evaluate a trained model on the target samples (a FiftyOne evaluation)."""

from __future__ import annotations

import fiftyone as fo
import fiftyone.operators as foo
import fiftyone.operators.types as types

from coral_core.errors import CoralsegError

from ..checks import FORM_ROOT, evaluation_key, free_evaluation_key, output_field
from ..evaluation import (
    DEFAULT_EVAL_KEY,
    DEFAULT_GT_FIELD,
    DEFAULT_PRED_FIELD,
    check_gt_labels,
    evaluate_samples,
)
from ..known_models import known_models
from ..models import check_config, check_model_files, resolve_file
from ._form import Form, path_value, progress_callback, sentence_errors, show_error

OTHER_MODEL = "other: give the files"


def model_inputs(form: Form):
    """The model: one recorded on the dataset (the demo's, runs trained from the App) or a
    config and checkpoint; returns the checkpoint's encoding when the files fit."""
    ctx = form.ctx
    known = known_models(ctx.dataset)
    typed = "model" not in ctx.params and ("config" in ctx.params or "checkpoint" in ctx.params)
    if known and not typed:
        choice = form.choice(
            "model",
            "Model",
            [*known, OTHER_MODEL],
            description="models recorded on this dataset: the demo's and runs trained here",
        )
        if choice in known:
            config, checkpoint = known[choice]
            form.note("model_files", f"config {config}, checkpoint {checkpoint}")
            try:
                encoding = check_model_files(config, checkpoint)
            except CoralsegError as err:
                form.fail("model", str(err))
                encoding = None
            _device_input(form)
            return encoding
    typed = f"typed from Python: a path, or relative to {FORM_ROOT}"
    config = form.path(
        "config",
        "Config",
        description="an MMSeg config such as "
        f"configs/dinov2-vitb14-segformer_150e_eilat-518x518.py ({typed})",
        check=lambda v: str(check_config(v)),
    )
    encoding = form.path(
        "checkpoint",
        "Checkpoint",
        description=f"a .pth written by training ({typed})",
        # without a usable config only the file itself can be checked
        check=(lambda v: check_model_files(config, v))
        if config
        else (lambda v: resolve_file(v, "checkpoint", (".pth", ".pt"))),
    )
    _device_input(form)
    return encoding if config else None


def _device_input(form: Form) -> None:
    devices = ["cpu", "cuda"] if _cuda() else ["cpu"]
    form.choice("device", "Device", devices, default=devices[-1])


def chosen_model(ctx) -> tuple[str, str]:
    """(config, checkpoint) absolute paths of the model the form chose."""
    known = known_models(ctx.dataset)
    choice = ctx.params.get("model")
    if choice in known:
        return known[choice]
    return path_value(ctx.params["config"]), path_value(ctx.params["checkpoint"])


def panel_accuracy(dataset, eval_key: str) -> float:
    """The Accuracy the App's Model Evaluation panel shows: FiftyOne's own ``metrics()`` of
    the stored results, so the operator and the panel show one number under one name."""
    return float(dataset.load_evaluation_results(eval_key).metrics()["accuracy"])


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


class EvaluateModel(foo.Operator):
    @property
    def config(self):
        return foo.OperatorConfig(
            name="evaluate_model",
            label="coralseg: evaluate a model",
            description="Predict genus masks, run FiftyOne's segmentation evaluation and add "
            "per-sample mIoU and per-class IoU fields",
            dynamic=True,
            allow_delegated_execution=True,
        )

    def resolve_input(self, ctx):
        form = Form(ctx)
        encoding = model_inputs(form)
        gt = form.field_choice(
            "gt_field",
            "Ground truth",
            (fo.Polylines, fo.Segmentation),
            default=DEFAULT_GT_FIELD,
            empty="this dataset has no polylines or segmentation field to compare with; pull "
            "a CVAT project first",
        )
        if gt and encoding is not None:
            schema = ctx.dataset.get_field_schema(flat=True)
            if getattr(schema[gt], "document_type", None) is fo.Polylines:
                form.check("gt_field", lambda: check_gt_labels(ctx.target_view(), gt, encoding))
        form.text(
            "pred_field",
            "Predictions field",
            default=DEFAULT_PRED_FIELD,
            check=lambda v: output_field(ctx.dataset, v, fo.Segmentation),
        )
        replace = form.flag(
            "replace",
            "Replace an evaluation of the same key",
            description="off: an existing key is refused, so no evaluation is lost",
        )
        form.text(
            "eval_key",
            "Evaluation key",
            default=free_evaluation_key(ctx.dataset, DEFAULT_EVAL_KEY),
            description="a new key by default; the Model Evaluation panel lists each key",
            check=lambda v: evaluation_key(ctx.dataset, v, replace),
        )
        return form.property()

    @sentence_errors
    def execute(self, ctx):
        params = ctx.params
        config, checkpoint = chosen_model(ctx)
        eval_key = evaluation_key(
            ctx.dataset,
            params.get("eval_key") or free_evaluation_key(ctx.dataset, DEFAULT_EVAL_KEY),
            bool(params.get("replace")),
        )
        summary = evaluate_samples(
            ctx.target_view(),
            config,
            checkpoint,
            gt_field=params.get("gt_field", DEFAULT_GT_FIELD),
            pred_field=params.get("pred_field", DEFAULT_PRED_FIELD),
            eval_key=eval_key,
            device=params.get("device", "cpu"),
            progress=progress_callback(ctx),
        )
        if not ctx.delegated:
            ctx.ops.reload_dataset()
        return {
            "eval_key": summary.eval_key,
            "samples": summary.samples,
            "mIoU": round(summary.scores.miou * 100, 2),
            "accuracy": round(panel_accuracy(ctx.dataset, summary.eval_key) * 100, 2),
            "per_class": summary.rows(),
            "iou_fields": [summary.miou_field, *summary.class_fields.values()],
            **_colony_outputs(summary.colonies),
        }

    def resolve_output(self, ctx):
        outputs = types.Object()
        if show_error(outputs, ctx):
            return types.Property(outputs)
        outputs.str("eval_key", label="Evaluation key (Model Evaluation panel)")
        outputs.int("samples", label="Samples")
        outputs.float("mIoU", label="mIoU (%)")
        outputs.float(
            "accuracy",
            label="Accuracy (%)",
            description="the Model Evaluation panel's Accuracy: FiftyOne's metric, over the "
            "pixels where truth or prediction is not background",
        )
        table = types.TableView()
        table.add_column("class", label="Class")
        table.add_column("iou", label="IoU (%)")
        table.add_column("acc", label="Acc (%)")
        table.add_column("cover_error", label="Cover error (points)")
        outputs.list("per_class", types.Object(), label="Per class", view=table)
        if (getattr(ctx, "results", None) or {}).get("colony_eval_key"):
            _colony_table(outputs)  # only where colonies were predicted and judged
        return types.Property(outputs, view=types.View(label="coralseg evaluation"))

    def __call__(
        self,
        samples,
        config,
        checkpoint,
        *,
        gt_field=DEFAULT_GT_FIELD,
        pred_field=DEFAULT_PRED_FIELD,
        eval_key=None,
        replace=False,
        delegate=False,
    ):
        """``foo.get_operator("@coralseg/coralseg/evaluate_model")(dataset_or_view, ...)``;
        ``eval_key`` None takes a new key, an existing one needs ``replace=True``."""
        params = dict(
            config=str(config),
            checkpoint=str(checkpoint),
            gt_field=gt_field,
            pred_field=pred_field,
            eval_key=eval_key or free_evaluation_key(samples._dataset, DEFAULT_EVAL_KEY),
            replace=replace,
        )
        return foo.execute_operator(
            self.uri, dict(view=samples.view()), params=params, request_delegation=delegate
        )


def _colony_outputs(colonies) -> dict:
    """The colony evaluation's figures (empty before colonies are predicted)."""
    if colonies is None:
        return {}
    mean_ap = None if colonies.mean_ap is None else round(colonies.mean_ap * 100, 2)
    return {
        "colony_eval_key": colonies.eval_key,
        "colony_mAP": mean_ap,
        "colonies": colonies.colonies.rows(),
    }


def _colony_table(outputs) -> None:
    outputs.str("colony_eval_key", label="Colony evaluation key (Model Evaluation panel)")
    outputs.float("colony_mAP", label="Colony mask mAP (%)")
    table = types.TableView()
    for key, label in (
        ("class", "Class"),
        ("pq", "PQ (%)"),
        ("sq", "SQ (%)"),
        ("rq", "RQ (%)"),
        ("predicted", "Colonies predicted"),
        ("true", "Colonies drawn"),
        ("mean_abs_count_error", "Count error per image"),
        ("size_ks", "Size KS"),
    ):
        table.add_column(key, label=label)
    outputs.list("colonies", types.Object(), label="Colonies", view=table)
