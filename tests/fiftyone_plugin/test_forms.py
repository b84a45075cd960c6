"""What a new user meets in the operators' forms, through FiftyOne's own execution: forms that
say what a run needs, run errors as sentences, models offered by name, relative paths taken
from one place, one accuracy, evaluations never overwritten silently, and "annotate next"
that ranks only what is not annotated, exactly as its saved view holds it."""

from __future__ import annotations

import os

import numpy as np
import pytest

from fiftyone_plugin.checks import FORM_ROOT, evaluation_key
from fiftyone_plugin.known_models import remember_model
from tests.fiftyone_plugin.conftest import uri
from tests.fiftyone_plugin.test_operators import execute, validation_error


def _model(tiny_model) -> dict[str, str]:
    config, checkpoint = tiny_model
    return {"config": str(config), "checkpoint": str(checkpoint)}


def test_cover_form_says_what_the_run_needs_and_run_errors_are_sentences(reef, tiny_model) -> None:
    predicted = reef.match_tags("train")
    execute("predict_colonies", reef, {**_model(tiny_model), "min_area": 4}, view=predicted.view())
    # the entire dataset: two samples have no mask yet
    message = validation_error("report_cover", reef, {})
    assert "2 of the 4 target samples have no 'coralseg_refined' mask" in message
    assert "run predict colonies on them first" in message
    # the form's own example on a dataset without that field
    message = validation_error("report_cover", reef, {"group_by": "site"}, view=predicted.view())
    assert "This dataset has no sample field 'site' to group by" in message

    out = execute("report_cover", reef, {}, view=predicted.view()).result
    means = [row["mean_cover_percent"] for row in out["groups"]]
    assert means and all(value == round(value, 2) for value in means)
    assert sum(means) == pytest.approx(100.0, abs=0.05)

    # a mask gone from disk after the form was filled: a sentence, not a traceback
    lost = predicted.first()
    os.remove(lost["coralseg_refined"].mask_path)
    result = execute("report_cover", reef, {}, view=predicted.view())
    assert result.error is None
    assert result.result["error"].startswith("The coralseg_refined mask of sample ")
    assert "cannot be read" in result.result["error"]


def test_models_by_name_relative_paths_one_accuracy_and_new_evaluation_keys(
    reef, tiny_model, tmp_path, monkeypatch
) -> None:
    config, checkpoint = tiny_model
    monkeypatch.chdir(tmp_path)  # the App server's folder is not where paths start
    relative = str(config.relative_to(FORM_ROOT))
    first = execute("evaluate_model", reef, {"config": relative, "checkpoint": str(checkpoint)})
    first = first.result
    assert first["eval_key"] == "coralseg_eval" and first["samples"] == len(reef)
    # the Model Evaluation panel's Accuracy, under its name; no second accuracy
    metrics = reef.load_evaluation_results("coralseg_eval").metrics()
    assert first["accuracy"] == pytest.approx(round(metrics["accuracy"] * 100, 2))
    assert "aAcc" not in first

    remember_model(reef, "coralseg demo", config, checkpoint)
    second = execute("evaluate_model", reef, {"model": "coralseg demo"}).result
    assert second["eval_key"] == "coralseg_eval_2"  # the default key keeps the first one
    assert set(reef.list_evaluations()) == {"coralseg_eval", "coralseg_eval_2"}
    missing = validation_error("evaluate_model", reef, {"model": "someone else's"})
    assert "is not one of: coralseg demo, other: give the files" in missing
    taken = {"model": "coralseg demo", "eval_key": "coralseg_eval"}
    refused = validation_error("evaluate_model", reef, taken)
    assert "The evaluation 'coralseg_eval' exists; tick 'Replace" in refused
    assert "'coralseg_eval_3'" in refused
    assert evaluation_key(reef, "coralseg_eval", replace=True) == "coralseg_eval"


def test_annotate_next_ranks_only_unannotated_images_as_its_view_holds_them(
    reef, tiny_model
) -> None:
    params = {**_model(tiny_model), "limit": 2}
    message = validation_error("select_to_annotate", reef, params)
    assert "All 4 target samples are already annotated" in message

    fresh = reef.take(3, seed=1)
    fresh.untag_samples(["train", "val"])
    out = execute("select_to_annotate", reef, params).result
    view = reef.load_saved_view(out["view"])
    assert [row["image"] for row in out["top"]] == view.values("filepath")
    assert len(out["top"]) == 2 and out["skipped_annotated"] == 1
    scored = reef.exists("coralseg_uncertainty")
    assert set(scored.values("id")) == set(fresh.values("id"))
    assert np.all(np.diff([row["uncertainty"] for row in out["top"]]) <= 0)


def _inputs(name: str, dataset, params: dict) -> dict:
    """The inputs of operator ``name``'s form as the App's server resolves them."""
    import asyncio

    import fiftyone.operators as foo
    from fiftyone.operators.executor import resolve_type

    request = {"dataset_name": dataset.name, "params": params}
    resolved = asyncio.run(resolve_type(foo.OperatorRegistry(), uri(name), request))
    return resolved.type.properties


@pytest.mark.parametrize(
    ("name", "files", "folders"),
    [
        ("evaluate_model", ["config", "checkpoint"], []),
        ("predict_colonies", ["config", "checkpoint", "sam_checkpoint"], []),
        ("select_to_annotate", ["config", "checkpoint"], []),
        ("export_masks", [], ["out"]),
        ("train_model", ["config"], ["data", "work_dir"]),
    ],
)
def test_path_inputs_are_fiftyone_file_explorers_and_strings_from_python(
    reef, name, files, folders
) -> None:
    import fiftyone.operators.types as types

    inputs = _inputs(name, reef, {})
    for path, choose_dir in [*((f, False) for f in files), *((f, True) for f in folders)]:
        assert isinstance(inputs[path].type, types.File), path
        assert isinstance(inputs[path].view, types.FileExplorerView), path
        assert inputs[path].view.to_json()["choose_dir"] is choose_dir, path
    # a typed path from Python stays a string input, so FiftyOne's validation accepts it
    typed = _inputs(name, reef, {path: "some/where" for path in [*files, *folders]})
    assert all(isinstance(typed[path].type, types.String) for path in [*files, *folders])


def test_a_model_chosen_in_the_file_explorer_runs_like_a_typed_one(reef, tiny_model) -> None:
    config, checkpoint = tiny_model
    chosen = {"absolute_path": str(checkpoint), "name": checkpoint.name, "type": "file"}
    relative = {"absolute_path": str(config.relative_to(FORM_ROOT))}  # starts at FORM_ROOT
    one = reef.limit(1)
    out = execute(
        "evaluate_model", reef, {"config": relative, "checkpoint": chosen}, view=one.view()
    )
    assert out.result["samples"] == 1
    assert reef.list_evaluations() == ["coralseg_eval"]
