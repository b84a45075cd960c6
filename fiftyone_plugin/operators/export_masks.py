"""Operator: export the target's polylines as an MMSeg training folder (= ``coralseg prepare``)."""

from __future__ import annotations

import fiftyone as fo
import fiftyone.operators as foo
import fiftyone.operators.types as types

from coral_core.labels.taxonomy import get_taxonomy
from coral_core.training.splits import parse_ratios

from ..checks import output_folder
from ..mask_export import export_masks
from ._form import Form, path_value, progress_callback, sentence_errors, show_error

TAXONOMIES = ("finegrained", "extended", "families", "agnostic", "eilat")


class ExportMasks(foo.Operator):
    @property
    def config(self):
        return foo.OperatorConfig(
            name="export_masks",
            label="coralseg: export training masks",
            description="Rasterize the polylines of the dataset, view or selection into an "
            "MMSegmentation folder (train/val/test from the sample tags)",
            dynamic=True,
            allow_delegated_execution=True,
        )

    def resolve_input(self, ctx):
        form = Form(ctx)
        form.field_choice(
            "field",
            "Polylines field",
            (fo.Polylines,),
            default="gt_polylines",
            empty="this dataset has no polylines field; pull a CVAT project first",
        )
        form.text(
            "taxonomy",
            "Taxonomy",
            default="finegrained",
            description=f"{', '.join(TAXONOMIES)}, or a taxonomy file (.yml/.json)",
            check=get_taxonomy,
        )
        overwrite = form.flag("overwrite", "Replace the folder if it exists")
        form.path(
            "out",
            "Output folder",
            folder=True,
            description="a new folder, or tick the box above to replace one",
            check=lambda v: output_folder(v, must_be_new=not overwrite),
        )
        form.number(
            "size",
            "Long side (pixels)",
            minimum=16,
            integer=True,
            description="resize images and masks; empty keeps the original size",
        )
        form.flag("background_ignore", "Background as ignore (255)")
        form.flag("skip_unknown", "Skip labels the taxonomy does not know")
        form.changes("out", "out_dir")  # export_mmseg_dataset's names
        form.changes("skip_unknown", "unknown")
        form.text(
            "split",
            "Split untagged samples",
            required=False,
            description="e.g. 0.8,0.1,0.1 (train,val,test)",
            check=parse_ratios,
        )
        return form.property()

    @sentence_errors
    def execute(self, ctx):
        params = ctx.params
        report = progress_callback(ctx)
        report(0.0, "rasterizing")
        result = export_masks(
            ctx.target_view(),
            path_value(params["out"]),
            get_taxonomy(params.get("taxonomy", "finegrained")),
            field=params.get("field", "gt_polylines"),
            background_is_ignore=bool(params.get("background_ignore", False)),
            split_ratios=parse_ratios(params["split"]) if params.get("split") else None,
            size=params.get("size") or None,
            overwrite=bool(params.get("overwrite", False)),
            skip_unknown=bool(params.get("skip_unknown", False)),
            workers=1 if ctx.delegated is False else None,
        )
        report(1.0, f"wrote {result.summary.out_dir}")
        return {
            "out": str(result.summary.out_dir),
            "images": sum(result.summary.samples.values()),
            "summary": "\n".join(result.lines()),
        }

    def resolve_output(self, ctx):
        outputs = types.Object()
        if show_error(outputs, ctx):
            return types.Property(outputs)
        outputs.str("out", label="Prepared folder (give it to training)")
        outputs.int("images", label="Images")
        outputs.str("summary", label="Report", view=types.CodeView(language="text"))
        return types.Property(outputs)

    def __call__(self, samples, out, taxonomy="finegrained", *, field="gt_polylines", **options):
        """``foo.get_operator("@coralseg/coralseg/export_masks")(view, "data/x", "eilat")``."""
        params = dict(out=str(out), taxonomy=taxonomy, field=field, **options)
        return foo.execute_operator(self.uri, dict(view=samples.view()), params=params)
