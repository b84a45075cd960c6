"""Operator: score the target samples by the model's uncertainty, save the ranked view."""

from __future__ import annotations

import fiftyone.operators as foo
import fiftyone.operators.types as types

from coral_core.evaluation.uncertainty import METHODS

from ..annotate_next import (
    DEFAULT_FIELD,
    DEFAULT_VIEW,
    check_score_field,
    check_unannotated,
    score_samples,
)
from ..checks import identifier
from ._form import Form, progress_callback, sentence_errors, show_error
from .evaluate import chosen_model, model_inputs


class SelectToAnnotate(foo.Operator):
    @property
    def config(self):
        return foo.OperatorConfig(
            name="select_to_annotate",
            label="coralseg: choose images to annotate next",
            description="Score each image by the model's uncertainty (mean pixel entropy or "
            "margin) and save a view with the most uncertain first",
            dynamic=True,
            allow_delegated_execution=True,
        )

    def resolve_input(self, ctx):
        form = Form(ctx)
        form.note(
            "annotated_note",
            "Samples tagged train, val or test are already annotated and are not scored",
        )
        form.check("view_target", lambda: check_unannotated(ctx.target_view()))
        model_inputs(form)
        form.choice(
            "method",
            "Uncertainty",
            METHODS,
            default="entropy",
            description="entropy: spread over all classes; margin: best two close",
        )
        form.text(
            "field",
            "Score field",
            default=DEFAULT_FIELD,
            check=lambda v: check_score_field(ctx.dataset, identifier(v, "the field name")),
        )
        form.text("view_name", "Saved view", default=DEFAULT_VIEW)
        form.number("limit", "Keep the N most uncertain", minimum=1, integer=True)
        return form.property()

    @sentence_errors
    def execute(self, ctx):
        params = ctx.params
        config, checkpoint = chosen_model(ctx)
        summary = score_samples(
            ctx.target_view(),
            config,
            checkpoint,
            method=params.get("method", "entropy"),
            field=params.get("field", DEFAULT_FIELD),
            view_name=params.get("view_name", DEFAULT_VIEW),
            limit=params.get("limit") or None,
            device=params.get("device", "cpu"),
            progress=progress_callback(ctx),
        )
        if not ctx.delegated and summary.view_name:
            ctx.ops.set_view(name=summary.view_name)
        return {
            "field": summary.field,
            "view": summary.view_name,
            "skipped_annotated": summary.skipped_annotated,
            "top": [
                {"image": path, "uncertainty": round(score, 4)} for path, score in summary.ranking
            ],
        }

    def resolve_output(self, ctx):
        outputs = types.Object()
        if show_error(outputs, ctx):
            return types.Property(outputs)
        outputs.str("field", label="Score field (sort by it)")
        outputs.str("view", label="Saved view (the table's images, in its order)")
        outputs.int("skipped_annotated", label="Already annotated, not scored")
        table = types.TableView()
        table.add_column("image", label="Image")
        table.add_column("uncertainty", label="Uncertainty")
        outputs.list("top", types.Object(), label="Most uncertain", view=table)
        return types.Property(outputs)

    def __call__(self, samples, config, checkpoint, *, method="entropy", limit=None,
                 delegate=False):  # fmt: skip
        """``foo.get_operator("@coralseg/coralseg/select_to_annotate")(view, config, ckpt)``."""
        params = dict(config=str(config), checkpoint=str(checkpoint), method=method)
        if limit:
            params["limit"] = int(limit)
        return foo.execute_operator(
            self.uri, dict(view=samples.view()), params=params, request_delegation=delegate
        )
