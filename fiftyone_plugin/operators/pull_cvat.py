"""Operator: pull a CVAT project into a FiftyOne dataset (= ``coralseg pull-cvat``)."""

from __future__ import annotations

import fiftyone.operators as foo
import fiftyone.operators.types as types

from ..cvat_pull import ENV_EMAIL, ENV_PASSWORD, ENV_TOKEN, ENV_URL, ENV_USERNAME
from ._form import Form, progress_callback

SECRETS = (ENV_URL, ENV_USERNAME, ENV_PASSWORD, ENV_EMAIL, ENV_TOKEN)


def credentials_from_secrets(ctx):
    """CVAT credentials from the plugin's secrets (the same variables as the CLI's)."""
    from coral_core.errors import CoralsegError

    from ..cvat_pull import resolve_credentials

    found = {key: ctx.secret(key) for key in SECRETS}
    found = {key: value for key, value in found.items() if value}
    where = "a secret of this plugin: set it where the App or the delegated executor runs"
    if ENV_URL not in found:
        raise CoralsegError(f"no CVAT server given: set {ENV_URL} ({where})")
    if ENV_TOKEN not in found and ENV_PASSWORD not in found:
        raise CoralsegError(
            f"no CVAT credentials: set {ENV_USERNAME} and {ENV_PASSWORD}, or {ENV_TOKEN} ({where})"
        )
    return resolve_credentials(environ=found)


class PullCvatProject(foo.Operator):
    @property
    def config(self):
        return foo.OperatorConfig(
            name="pull_cvat_project",
            label="coralseg: pull a CVAT project",
            description="Import a CVAT project's completed tasks (images, polygons, masks, "
            "subsets as tags) into a persistent dataset; re-runs import only what changed",
            dynamic=True,
            allow_delegated_execution=True,
            view_target=False,
        )

    def resolve_input(self, ctx):
        form = Form(ctx, view_target=False)
        form.text("project", "CVAT project", description="its name or id")
        form.check("project", lambda: credentials_from_secrets(ctx))
        form.text(
            "dataset_name", "Dataset", required=False, description="default: the project's name"
        )
        form.flag("all_tasks", "Also tasks that are not completed")
        form.flag("force", "Re-import every task")
        return form.property()

    def execute(self, ctx):
        from ..cvat_pull import pull_cvat_project

        report_progress = progress_callback(ctx)
        report_progress(0.0, "connecting to CVAT")
        params = ctx.params
        report = pull_cvat_project(
            credentials_from_secrets(ctx),
            params["project"],
            dataset_name=params.get("dataset_name") or None,
            all_tasks=bool(params.get("all_tasks", False)),
            force=bool(params.get("force", False)),
            progress=False,
        )
        report_progress(1.0, f"{report.samples_total} samples in {report.dataset}")
        if not ctx.delegated:
            ctx.trigger("open_dataset", {"dataset": report.dataset})
        return {
            "dataset": report.dataset,
            "tasks_imported": len(report.imported),
            "samples": report.samples_total,
            "summary": report.summary(),
        }

    def resolve_output(self, ctx):
        outputs = types.Object()
        outputs.str("dataset", label="Dataset")
        outputs.int("tasks_imported", label="Tasks imported")
        outputs.int("samples", label="Samples in the dataset")
        outputs.str("summary", label="Report", view=types.CodeView(language="text"))
        return types.Property(outputs)
