"""Operator: percent cover per sample (sortable fields) and per group (a table)."""

from __future__ import annotations

import fiftyone as fo
import fiftyone.operators as foo
import fiftyone.operators.types as types

from ..checks import identifier
from ..cover import check_group_fields, check_mask_field, check_masks_present, cover_samples
from ._form import Form, sentence_errors, show_error

# The table shows percentages as the evaluate operator does: 2 decimals (the CSVs of
# ``coralseg cover`` keep every digit, for analysis).
DECIMALS = 2


def _group_by(text: str | None) -> list[str]:
    return [name.strip() for name in (text or "").split(",") if name.strip()]


class ReportCover(foo.Operator):
    @property
    def config(self):
        return foo.OperatorConfig(
            name="report_cover",
            label="coralseg: report percent cover",
            description="Percent cover per class of a coralseg mask field: per-sample fields "
            "and mean, SD and SE per group of samples (site, year, ...)",
            dynamic=True,
            allow_delegated_execution=True,
        )

    def resolve_input(self, ctx):
        form = Form(ctx)
        field = form.field_choice(
            "mask_field",
            "Mask field",
            (fo.Segmentation,),
            default="coralseg_refined",
            empty="this dataset has no segmentation field; run predict colonies first",
        )
        if field and form.check("mask_field", lambda: check_mask_field(ctx.dataset, field)):
            form.check("mask_field", lambda: check_masks_present(ctx.target_view(), field))
        form.text(
            "group_by",
            "Group by",
            required=False,
            description="sample fields, comma-separated (e.g. site, year); empty: one group",
            check=lambda v: check_group_fields(
                ctx.dataset, [identifier(name, "a field to group by") for name in _group_by(v)]
            ),
        )
        form.text("prefix", "Field prefix", default="cover",
                  check=lambda v: identifier(v, "the field prefix"))  # fmt: skip
        return form.property()

    @sentence_errors
    def execute(self, ctx):
        params = ctx.params
        summary = cover_samples(
            ctx.target_view(),
            params.get("mask_field", "coralseg_refined"),
            _group_by(params.get("group_by")),
            params.get("prefix", "cover"),
        )
        if not ctx.delegated:
            ctx.ops.reload_dataset()
        groups = [
            {k: round(v, DECIMALS) if isinstance(v, float) else v for k, v in row.items()}
            for row in summary.group_rows
        ]
        return {"fields": list(summary.fields.values()), "groups": groups}

    def resolve_output(self, ctx):
        outputs = types.Object()
        if show_error(outputs, ctx):
            return types.Property(outputs)
        table = types.TableView()
        for key, label in (("group", "Group"), ("class", "Class"), ("n_images", "Images"),
                           ("mean_cover_percent", "Mean cover (%)"),
                           ("sd_cover_percent", "SD"), ("se_cover_percent", "SE")):  # fmt: skip
            table.add_column(key, label=label)
        outputs.list("groups", types.Object(), label="Cover per group", view=table)
        return types.Property(outputs)
