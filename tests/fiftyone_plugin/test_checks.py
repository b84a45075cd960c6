"""fiftyone_plugin.checks: the operator inputs that need the dataset, cleaned or refused with
a sentence."""

from __future__ import annotations

from pathlib import Path

import pytest

from coral_core.errors import CoralsegError
from fiftyone_plugin.checks import (
    FORM_ROOT,
    evaluation_key,
    form_path,
    free_evaluation_key,
    identifier,
    output_field,
    output_folder,
)


def test_form_paths_start_at_the_plugin_folder() -> None:
    assert (FORM_ROOT / "fiftyone.yml").is_file()
    assert form_path(" configs/x.py ") == str(FORM_ROOT / "configs" / "x.py")
    assert form_path("/abs/x.pth") == "/abs/x.pth"
    assert form_path("~/x.pth") == str(Path.home() / "x.pth")
    assert form_path("  ") == "  " and form_path(None) is None


@pytest.mark.parametrize("bad", ["", "2nd", "my field", "a.b", "é"])
def test_identifiers_are_letters_digits_and_underscores(bad: str) -> None:
    assert identifier(" pred_2 ", "the field name") == "pred_2"
    with pytest.raises(CoralsegError, match=r"^the field name .* must be letters, digits and _"):
        identifier(bad, "the field name")


def test_an_output_field_keeps_its_kind(reef, fiftyone) -> None:
    assert output_field(reef, "new_field", fiftyone.Segmentation) == "new_field"
    assert output_field(reef, "gt_polylines", fiftyone.Polylines) == "gt_polylines"
    assert output_field(None, "anything", fiftyone.Segmentation) == "anything"
    with pytest.raises(CoralsegError) as caught:
        output_field(reef, "gt_polylines", fiftyone.Segmentation)
    assert str(caught.value) == (
        "field 'gt_polylines' already holds Polylines, not Segmentation; choose another name"
    )
    with pytest.raises(CoralsegError, match="already holds StringField"):
        output_field(reef, "filepath", fiftyone.Segmentation)


def test_evaluation_keys_are_never_replaced_silently(reef, fiftyone) -> None:
    assert free_evaluation_key(reef, "ev") == "ev"
    assert evaluation_key(None, "ev", replace=False) == "ev"
    reef.set_values("guess", [fiftyone.Classification(label="Porites")] * len(reef))
    for key in ("ev", "ev_2"):
        reef.evaluate_classifications("guess", "guess", eval_key=key)
    assert free_evaluation_key(reef, "ev") == "ev_3"
    assert evaluation_key(reef, "ev", replace=True) == "ev"
    assert evaluation_key(reef, "other", replace=False) == "other"
    with pytest.raises(CoralsegError, match="keep both with a new key such as 'ev_3'"):
        evaluation_key(reef, "ev", replace=False)


def test_output_folders(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    assert output_folder(f" {tmp_path}/new/deeper ") == tmp_path / "new" / "deeper"
    assert output_folder(str(tmp_path)) == tmp_path
    with pytest.raises(CoralsegError, match="already exists; choose another folder"):
        output_folder(str(tmp_path), must_be_new=True)
    with pytest.raises(CoralsegError, match="is a file, not a folder"):
        output_folder(str(tmp_path / "file"))
    with pytest.raises(CoralsegError, match="cannot be created: no existing folder above it"):
        output_folder(str(tmp_path / "file" / "below"))
