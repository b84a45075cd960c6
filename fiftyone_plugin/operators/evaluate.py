"""Operator: evaluate a trained model on the target samples (a FiftyOne evaluation)."""

from __future__ import annotations

import fiftyone as fo
import fiftyone.operators as foo
import fiftyone.operators.types as types

from ..checks import identifier, output_field
from ..evaluation import (
    DEFAULT_EVAL_KEY,
    DEFAULT_GT_FIELD,
    DEFAULT_PRED_FIELD,
    check_gt_labels,
    evaluate_samples,
)
from ..models import check_config, check_model_files, resolve_file
from ._form import Form, progress_callback


def model_inputs(form: Form):
    """The config and checkpoint inputs; returns the checkpoint's encoding when both fit."""
    config = form.text(
        "config",
        "Config",
        description="MMSeg config, e.g. configs/....py",
        check=lambda v: str(check_config(v)),
    )
    encoding = form.text(
        "checkpoint",
        "Checkpoint",
        description="a .pth written by training",
        # without a usable config only the file itself can be checked
        check=(lambda v: check_model_files(config, v))
        if config
        else (lambda v: resolve_file(v, "checkpoint", (".pth", ".pt"))),
    )
    devices = ["cpu", "cuda"] if _cuda() else ["cpu"]
    form.choice("device", "Device", devices, default=devices[-1])
    return encoding if config else None


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
        form.text(
            "eval_key",
            "Evaluation key",
            default=DEFAULT_EVAL_KEY,
            check=lambda v: identifier(v, "the evaluation key"),
        )
        return form.property()

    def execute(self, ctx):
        params = ctx.params
        summary = evaluate_samples(
            ctx.target_view(),
            params["config"],
            params["checkpoint"],
            gt_field=params.get("gt_field", DEFAULT_GT_FIELD),
            pred_field=params.get("pred_field", DEFAULT_PRED_FIELD),
            eval_key=params.get("eval_key", DEFAULT_EVAL_KEY),
            device=params.get("device", "cpu"),
            progress=progress_callback(ctx),
        )
        if not ctx.delegated:
            ctx.ops.reload_dataset()
        return {
            "eval_key": summary.eval_key,
            "samples": summary.samples,
            "mIoU": round(summary.scores.miou * 100, 2),
            "aAcc": round(summary.scores.aacc * 100, 2),
            "per_class": summary.rows(),
            "iou_fields": [summary.miou_field, *summary.class_fields.values()],
            **_colony_outputs(summary.colonies),
        }

    def resolve_output(self, ctx):
        outputs = types.Object()
        outputs.str("eval_key", label="Evaluation key (Model Evaluation panel)")
        outputs.int("samples", label="Samples")
        outputs.float("mIoU", label="mIoU (%)")
        outputs.float("aAcc", label="Pixel accuracy (%)")
        table = types.TableView()
        table.add_column("class", label="Class")
        table.add_column("iou", label="IoU (%)")
        table.add_column("acc", label="Acc (%)")
        table.add_column("cover_error", label="Cover error (points)")
        outputs.list("per_class", types.Object(), label="Per class", view=table)
        _colony_table(outputs)
        return types.Property(outputs, view=types.View(label="coralseg evaluation"))

    def __call__(
        self,
        samples,
        config,
        checkpoint,
        *,
        gt_field=DEFAULT_GT_FIELD,
        pred_field=DEFAULT_PRED_FIELD,
        eval_key=DEFAULT_EVAL_KEY,
        delegate=False,
    ):
        """``foo.get_operator("@coralseg/coralseg/evaluate_model")(dataset_or_view, ...)``."""
        params = dict(
            config=str(config),
            checkpoint=str(checkpoint),
            gt_field=gt_field,
            pred_field=pred_field,
            eval_key=eval_key,
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
