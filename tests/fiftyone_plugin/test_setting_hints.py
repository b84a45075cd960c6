"""A core error about a setting names the form field that changes it, by its label in the App:
in the form (before a run) and in the run's error (immediate and delegated)."""

from __future__ import annotations

import pytest

from coral_core.labels.taxonomy import FAMILIES, MaskEncoding
from tests.fiftyone_plugin.conftest import uri
from tests.fiftyone_plugin.test_operators import execute, validation_error
from tests.model_fixtures import TINY, save_tiny_checkpoint


@pytest.fixture(scope="module")
def colonies_only_model(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A model whose classes are all colonies, background ignored: without a CoralSCoP
    checkpoint it cannot tell coral from not coral (the core names ``sam_checkpoint``)."""
    path = tmp_path_factory.mktemp("agnostic") / "agnostic.pth"
    encoding = MaskEncoding(FAMILIES, background_is_ignore=True)
    checkpoint = save_tiny_checkpoint(path, encoding, native_resolution=True)
    return {"config": str(TINY), "checkpoint": str(checkpoint)}


def test_the_form_names_the_threshold_fields_by_their_labels(reef, tiny_model) -> None:
    config, checkpoint = tiny_model
    params = {"config": str(config), "checkpoint": str(checkpoint)}
    message = validation_error(
        "predict_colonies", reef, {**params, "min_threshold": 0.6, "unsure_threshold": 0.3}
    )
    assert "min_threshold <= unsure_threshold" in message
    assert '(in the form, change "Not coral below", "Coral from")' in message
    assert "--min-threshold" not in message


def test_a_run_error_names_the_sam_checkpoint_field(reef, colonies_only_model: dict) -> None:
    import fiftyone.operators as foo
    from fiftyone.operators.delegated import DelegatedOperationService

    view = reef.limit(1)
    result = execute("predict_colonies", reef, colonies_only_model, view=view)
    assert result.error is None
    sentence = result.result["error"]
    assert sentence.startswith("This model's classes")
    assert sentence.endswith('(in the form, change "SAM / CoralSCoP checkpoint")')

    queued = foo.execute_operator(
        uri("predict_colonies"),
        {"view": view},
        params=colonies_only_model,
        request_delegation=True,
    )
    service = DelegatedOperationService()
    service.execute_queued_operations(operator=uri("predict_colonies"))
    failed = service.get(queued.result["id"])
    assert failed.run_state == "failed"
    assert '(in the form, change "SAM / CoralSCoP checkpoint")' in str(failed.result.error)


def test_an_export_error_names_the_fields_by_their_labels(reef, tmp_path) -> None:
    """The core names ``taxonomy`` and ``unknown`` (and ``label_map``, which the form has
    not): the sentence names "Taxonomy" and the skip box, which is called skip_unknown."""
    sample = reef.first()
    sample.gt_polylines.polylines[0].label = "Isopora"
    sample.save()
    out = tmp_path / "prepared"
    result = execute("export_masks", reef, {"out": str(out), "taxonomy": "families"})
    sentence = result.result["error"]
    assert sentence.startswith("Labels not in taxonomy 'families': 'Isopora' (1)")
    assert sentence.endswith(
        '(in the form, change "Taxonomy", "Skip labels the taxonomy does not know")'
    )
    assert not out.exists()
    skipped = execute(
        "export_masks", reef, {"out": str(out), "taxonomy": "families", "skip_unknown": True}
    )
    assert "error" not in skipped.result and (out / "manifest.json").is_file()
