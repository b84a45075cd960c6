"""Operator: two-stage predictions (colonies + refined genus mask) onto the target samples.

Without a Ray cluster the photos are predicted here (:func:`..prediction.predict_samples`);
with one, the operation is delegated and the photos go through ``coralseg infer``'s runner to
the cluster's workers (:func:`..prediction.predict_through_runner`), leaving its files in an
output folder, from which the same fields are filled.
"""

from __future__ import annotations

import fiftyone as fo
import fiftyone.operators as foo
import fiftyone.operators.types as types

from coral_core.cluster import ClusterOptions, check_address
from coral_core.inference.instances import (
    DEFAULT_MIN_AREA,
    DEFAULT_MIN_THICKNESS,
    DEFAULT_MIN_THRESHOLD,
    DEFAULT_NECK_RATIO,
    DEFAULT_UNSURE_THRESHOLD,
    RefineSettings,
)

from ..checks import output_field, output_folder
from ..models import resolve_file
from ..prediction import (
    DEFAULT_INSTANCES_FIELD,
    DEFAULT_SEMANTIC_FIELD,
    default_runner_output,
    predict_samples,
    predict_through_runner,
)
from ._form import Form, path_value, progress_callback, sentence_errors, show_error
from .evaluate import chosen_model, model_inputs


def _settings(params) -> RefineSettings:
    return RefineSettings(
        min_threshold=params.get("min_threshold", DEFAULT_MIN_THRESHOLD),
        unsure_threshold=params.get("unsure_threshold", DEFAULT_UNSURE_THRESHOLD),
        min_area=int(params.get("min_area", DEFAULT_MIN_AREA)),
        min_thickness=params.get("min_thickness", DEFAULT_MIN_THICKNESS),
        neck_ratio=params.get("neck_ratio", DEFAULT_NECK_RATIO),
    )


def _cluster_address(params) -> str:
    """The Ray cluster the form names ("": none, predict here)."""
    return (params.get("cluster") or "").strip()


def _cluster_inputs(form: Form) -> None:
    """The Ray cluster, and with one its workers, output folder and whether to redo."""
    ctx = form.ctx
    address = form.text(
        "cluster",
        "Ray cluster",
        required=False,
        description="empty: predict here. 'local' (Ray on the machine running delegated "
        "operations), 'auto' (the cluster that machine is a node of), HOST:PORT or "
        "ray://HOST:PORT: the photos are spread over the cluster's workers, delegated "
        "(fiftyone delegated launch)",
        check=check_address,
    )
    if not address:
        return
    form.number(
        "workers",
        "Workers (model copies)",
        minimum=1,
        integer=True,
        description="empty: as many as the cluster's CPUs (or GPUs, on cuda) hold",
    )
    default = str(default_runner_output(ctx.dataset)) if ctx.dataset is not None else None
    form.path(
        "output_dir",
        "Output folder",
        folder=True,
        default=default,
        description="coralseg infer's files for each photo (masks, records, predictions.json); "
        "the same path on every node. A rerun skips the photos done there",
        check=output_folder,
    )
    form.flag("redo", "Redo photos already done there", default=False)


class PredictColonies(foo.Operator):
    @property
    def config(self):
        return foo.OperatorConfig(
            name="predict_colonies",
            label="coralseg: predict colonies",
            description="Segment colonies genus by genus (SAM or CoralSCoP optional): "
            "detections with masks and a refined semantic mask per sample",
            dynamic=True,
            allow_delegated_execution=True,
        )

    def resolve_input(self, ctx):
        form = Form(ctx)
        model_inputs(form)
        form.path(
            "sam_checkpoint",
            "SAM / CoralSCoP checkpoint",
            required=False,
            description="empty: colonies are the semantic regions",
            check=lambda v: resolve_file(v, "SAM checkpoint", (".pth", ".pt")),
        )
        form.text(
            "instances_field",
            "Colonies field",
            default=DEFAULT_INSTANCES_FIELD,
            check=lambda v: output_field(ctx.dataset, v, fo.Detections),
        )
        form.text(
            "semantic_field",
            "Refined mask field",
            default=DEFAULT_SEMANTIC_FIELD,
            check=lambda v: output_field(ctx.dataset, v, fo.Segmentation),
        )
        form.number(
            "min_threshold",
            "Not coral below",
            default=DEFAULT_MIN_THRESHOLD,
            minimum=0.0,
            maximum=1.0,
        )
        form.number(
            "unsure_threshold",
            "Coral from",
            default=DEFAULT_UNSURE_THRESHOLD,
            minimum=0.0,
            maximum=1.0,
        )
        form.number(
            "min_area",
            "Smallest colony (pixels at the model's scale)",
            default=DEFAULT_MIN_AREA,
            minimum=1,
            integer=True,
        )
        form.number(
            "min_thickness",
            "Thinnest colony (pixels at the model's scale)",
            default=DEFAULT_MIN_THICKNESS,
            minimum=0.0,
        )
        form.number(
            "neck_ratio",
            "Split touching colonies at necks narrower than (x the thinner lobe; 0: never)",
            default=DEFAULT_NECK_RATIO,
            minimum=0.0,
            maximum=0.99,
        )
        form.check("unsure_threshold", lambda: _settings(ctx.params))
        _cluster_inputs(form)
        return form.property()

    def resolve_delegation(self, ctx):
        # a cluster's run takes long and needs no App: delegated; otherwise the user chooses
        return True if _cluster_address(ctx.params) else None

    @sentence_errors
    def execute(self, ctx):
        params = ctx.params
        config, checkpoint = chosen_model(ctx)
        common = dict(
            instances_field=params.get("instances_field", DEFAULT_INSTANCES_FIELD),
            semantic_field=params.get("semantic_field", DEFAULT_SEMANTIC_FIELD),
            settings=_settings(params),
            device=params.get("device", "cpu"),
            progress=progress_callback(ctx),
        )
        sam = path_value(params.get("sam_checkpoint"))
        address = _cluster_address(params)
        if address:
            device = common["device"]
            cluster = ClusterOptions(
                check_address(address),
                workers=params.get("workers"),
                gpus_per_worker=1.0 if device.startswith("cuda") else 0.0,
            )
            output_dir = path_value(params.get("output_dir"))
            summary = predict_through_runner(
                ctx.target_view(),
                config,
                checkpoint,
                sam,
                cluster=cluster,
                output_dir=output_folder(output_dir) if output_dir else None,
                redo=bool(params.get("redo", False)),
                **common,
            )
        else:
            summary = predict_samples(ctx.target_view(), config, checkpoint, sam, **common)
        if not ctx.delegated:
            ctx.ops.reload_dataset()
        result = {
            "samples": summary.samples,
            "colonies": summary.colonies,
            "per_genus": [{"genus": g, "colonies": n} for g, n in summary.per_genus.items()],
        }
        if summary.output_dir is not None:
            result.update(
                output_dir=summary.output_dir,
                skipped=summary.skipped,
                failed=list(summary.failed),
            )
        return result

    def resolve_output(self, ctx):
        outputs = types.Object()
        if show_error(outputs, ctx):
            return types.Property(outputs)
        outputs.int("samples", label="Samples")
        outputs.int("colonies", label="Colonies")
        table = types.TableView()
        table.add_column("genus", label="Genus")
        table.add_column("colonies", label="Colonies")
        outputs.list("per_genus", types.Object(), label="Per genus", view=table)
        if "output_dir" in (getattr(ctx, "results", None) or {}):
            outputs.str("output_dir", label="Output folder")
            outputs.int("skipped", label="Photos already done there (skipped)")
            outputs.list("failed", types.String(), label="Failed photos (one line each)")
        return types.Property(outputs)

    def __call__(
        self, samples, config, checkpoint, sam_checkpoint=None, *, delegate=False, **options
    ):
        """``foo.get_operator("@coralseg/coralseg/predict_colonies")(view, config, ckpt)``."""
        params = dict(config=str(config), checkpoint=str(checkpoint), **options)
        if sam_checkpoint:
            params["sam_checkpoint"] = str(sam_checkpoint)
        return foo.execute_operator(
            self.uri, dict(view=samples.view()), params=params, request_delegation=delegate
        )
