"""The library names the settings an error is about; each adapter spells them its own way."""

from __future__ import annotations

import pickle

import pytest

from coral_core.errors import CoralsegError, setting_hint
from coral_core.inference.instances import RefineSettings
from coralseg.cli import _flag


def test_core_errors_name_settings_not_command_line_flags() -> None:
    with pytest.raises(CoralsegError) as caught:
        RefineSettings(min_threshold=0.5, unsure_threshold=0.2)
    assert "--" not in str(caught.value)
    assert caught.value.settings == ("min_threshold", "unsure_threshold")
    cli = setting_hint(caught.value, _flag, "option")
    assert cli == " (option --min-threshold, --unsure-threshold)"
    nuclio = setting_hint(caught.value, lambda s: f"CORALSEG_{s.upper()}", "environment variable")
    assert nuclio == " (environment variable CORALSEG_MIN_THRESHOLD, CORALSEG_UNSURE_THRESHOLD)"
    assert _flag("data_dir") == "--data" and _flag("unknown") == "--skip-unknown"


def test_the_settings_survive_pickling_and_plain_errors_get_no_hint() -> None:
    error = pickle.loads(pickle.dumps(CoralsegError("too small", settings=["min_area"])))
    assert str(error) == "too small" and error.settings == ("min_area",)
    assert setting_hint(CoralsegError("bad file"), _flag, "option") == ""
    assert setting_hint(ValueError("bug"), _flag, "option") == ""
