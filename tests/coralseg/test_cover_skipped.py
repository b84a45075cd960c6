"""``coralseg cover`` on a folder where one mask is truncated: the rest is measured, and the
summary, ``skipped_masks.csv`` and the exit status say which file was left out and why."""

from __future__ import annotations

from pathlib import Path

from tests.coralseg.test_cover import read_csv, run, survey_masks, write_masks


def test_a_truncated_mask_is_reported_and_the_rest_measured(tmp_path: Path, capsys) -> None:
    masks = survey_masks()
    folder = write_masks(tmp_path / "labels", masks)
    broken = folder / "TIA_2019_q1.png"
    broken.write_bytes(broken.read_bytes()[:60])  # cut inside the image data, as a failed copy
    out = tmp_path / "cover"
    code, stdout, err = run([str(folder), "--taxonomy", "families", "--out", str(out)], capsys)

    assert code == 1, err
    measured = {row["image"] for row in read_csv(out / "cover_per_image.csv")}
    assert measured == set(masks) - {"TIA_2019_q1"}
    (skipped,) = read_csv(out / "skipped_masks.csv")
    assert skipped["file"] == str(broken) and "cannot read the mask" in skipped["reason"]
    assert "skipped 1 unreadable mask(s)" in stdout and str(broken) in stdout
    assert "1 mask(s) could not be read and were left out" in stdout
    assert "Traceback" not in err
