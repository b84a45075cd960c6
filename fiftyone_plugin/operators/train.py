"""Operator: train a model on a prepared folder (delegated only: runs take hours)."""

from __future__ import annotations

from pathlib import Path

import fiftyone.operators as foo
import fiftyone.operators.types as types

from ..checks import FORM_ROOT, output_folder
from ..known_models import remember_model
from ..models import check_config
from ..training_run import check_prepared_folder, parse_overrides, train_model
from ._form import Form, path_value, sentence_errors, show_error


def config_choices() -> list[str]:
    """The leaf configs shipped in ``configs/`` beside this plugin (or the working folder)."""
    for root in (Path(__file__).resolve().parents[2], Path.cwd()):
        found = sorted(str(p) for p in (root / "configs").glob("*.py"))
        if found:
            return found
    return []


class TrainModel(foo.Operator):
    @property
    def config(self):
        return foo.OperatorConfig(
            name="train_model",
            label="coralseg: train a model",
            description="Train a DINOv2 + SegFormer model on an exported folder; runs "
            "delegated (fiftyone delegated launch) and reports iterations and mIoU",
            dynamic=True,
            allow_immediate_execution=False,
            allow_delegated_execution=True,
            default_choice_to_delegated=True,
            view_target=False,
        )

    def resolve_delegation(self, ctx):
        return True

    def resolve_input(self, ctx):
        form = Form(ctx, view_target=False)
        choices = config_choices()
        form.path(
            "config",
            "Config",
            default=choices[0] if choices else None,
            description="an MMSeg config, e.g. "
            + (Path(choices[0]).name if choices else "configs/....py")
            + f"; typed from Python, relative paths start at {FORM_ROOT}",
            check=check_config,
        )
        form.path(
            "data",
            "Prepared folder",
            folder=True,
            description="the export masks output",
            check=check_prepared_folder,
        )
        form.path(
            "work_dir",
            "Work folder",
            folder=True,
            description="checkpoints and logs go here; the App's forms then offer its model",
            check=output_folder,
        )
        form.text(
            "overrides",
            "Config overrides",
            required=False,
            description="key=value ..., e.g. train_cfg.max_iters=2000",
            check=parse_overrides,
        )
        form.changes("data", "data_dir")  # TrainOptions' names
        form.changes("overrides", "cfg_options")
        return form.property()

    @sentence_errors
    def execute(self, ctx):
        params = ctx.params

        def report(progress) -> None:
            ctx.set_progress(progress=progress.fraction, label=progress.describe())

        config = path_value(params["config"])
        outcome = train_model(
            config,
            check_prepared_folder(path_value(params["data"])),
            path_value(params["work_dir"]),
            parse_overrides(params.get("overrides")),
            progress=report,
        )
        checkpoint = outcome.best_checkpoint or outcome.last_checkpoint
        if checkpoint is not None and ctx.dataset is not None:
            remember_model(ctx.dataset, f"trained in {outcome.work_dir}", config, checkpoint)
        return {
            "work_dir": str(outcome.work_dir),
            "best_checkpoint": str(checkpoint or ""),
            "best_mIoU": outcome.best_miou,
        }

    def resolve_output(self, ctx):
        outputs = types.Object()
        if show_error(outputs, ctx):
            return types.Property(outputs)
        outputs.str("best_checkpoint", label="Best checkpoint")
        outputs.float("best_mIoU", label="Its validation mIoU (%)")
        outputs.str("work_dir", label="Work folder (logs, TensorBoard)")
        return types.Property(outputs)
