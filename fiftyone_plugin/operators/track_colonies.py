"""Operator: link the colonies of two visits (two saved views) and give them a shared id."""

from __future__ import annotations

import fiftyone as fo
import fiftyone.operators as foo
import fiftyone.operators.types as types

from coral_core.errors import CoralsegError

from ..checks import identifier
from ..tracking import track_views
from ._form import Form


def _saved_view(dataset, name: str):
    if name not in dataset.list_saved_views():
        raise CoralsegError(
            f"the dataset has no saved view {name!r}; save each visit as a view first"
        )
    return dataset.load_saved_view(name)


class TrackColonies(foo.Operator):
    @property
    def config(self):
        return foo.OperatorConfig(
            name="track_colonies",
            label="coralseg: track colonies between two visits",
            description="Align each plot's two photos, link its colonies and write a shared "
            "colony id and fate onto both visits' colony labels",
            dynamic=True,
            allow_delegated_execution=True,
        )

    def resolve_input(self, ctx):
        form = Form(ctx, view_target=False)
        views = ctx.dataset.list_saved_views() if ctx.dataset else []
        empty = "save each visit as a view first (e.g. year 2023, year 2024)"
        form.choice("before_view", "First visit", views, empty=empty)
        second = views[1] if len(views) > 1 else None
        form.choice("after_view", "Second visit", views, default=second, empty=empty)
        form.field_choice(
            "labels_field",
            "Colonies",
            (fo.Detections, fo.Polylines),
            default="coralseg_colonies",
            empty="this dataset has no detections or polylines; predict colonies first",
        )
        form.text(
            "pair_by",
            "Pair by",
            required=False,
            description="a sample field naming the plot (empty: the file name)",
            check=lambda v: v and identifier(v, "the field to pair by"),
        )
        form.text("id_attribute", "Id attribute", default="colony_id",
                  check=lambda v: identifier(v, "the id attribute"))  # fmt: skip
        return form.property()

    def execute(self, ctx):
        params = ctx.params
        summary = track_views(
            _saved_view(ctx.dataset, params["before_view"]),
            _saved_view(ctx.dataset, params["after_view"]),
            params.get("labels_field", "coralseg_colonies"),
            params.get("pair_by") or None,
            params.get("id_attribute", "colony_id"),
        )
        if not ctx.delegated:
            ctx.ops.reload_dataset()
        return {"pairs": summary.pairs, "labels": summary.labels, "plots": summary.plot_rows}

    def resolve_output(self, ctx):
        outputs = types.Object()
        outputs.int("pairs", label="Plots tracked")
        outputs.int("labels", label="Colony labels given an id")
        table = types.TableView()
        for key, label in (("plot", "Plot"), ("n_persisted", "Persisted"),
                           ("n_partial_mortality", "Partial mortality"), ("n_death", "Deaths"),
                           ("n_recruitment", "Recruits"), ("n_fusion", "Fusion"),
                           ("n_fission", "Fission"), ("mean_growth_percent", "Mean growth (%)"),
                           ("se_growth_percent", "SE")):  # fmt: skip
            table.add_column(key, label=label)
        outputs.list("plots", types.Object(), label="Fates per plot", view=table)
        return types.Property(outputs)
