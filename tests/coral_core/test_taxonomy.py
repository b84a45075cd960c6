from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from coral_core.labels.palette import distinct_colors
from coral_core.labels.taxonomy import (
    AGNOSTIC,
    BUILTIN_TAXONOMIES,
    EILAT,
    EXTENDED,
    FAMILIES,
    FINEGRAINED,
    IGNORE_INDEX,
    MaskEncoding,
    Taxonomy,
    TaxonomyError,
    get_taxonomy,
    load_taxonomy,
    parse_label_map,
    read_class_files,
    read_encoding_file,
    with_label_map,
    write_class_files,
    write_encoding_file,
)

CRIOBE_COARSER = [EXTENDED, FAMILIES, AGNOSTIC]


def test_builtin_sizes() -> None:
    sizes = {name: t.num_classes for name, t in BUILTIN_TAXONOMIES.items()}
    assert sizes == {"finegrained": 16, "extended": 10, "families": 7, "agnostic": 1, "eilat": 10}


def test_finegrained_genera_are_criobes() -> None:
    assert FINEGRAINED.classes == (
        "Acanthastrea",
        "Acropora",
        "Astreopora",
        "Atrea",
        "Fungia",
        "Goniastrea",
        "Leptastrea",
        "Merulinidae",
        "Millepora",
        "Montastrea",
        "Montipora",
        "Other",
        "Pavona/Leptoseris",
        "Pocillopora",
        "Porites",
        "Psammocora",
    )


def test_eilat_names_match_the_data_readme() -> None:
    assert EILAT.classes == (
        "Faviidae",
        "Stylophora",
        "Platygyra",
        "Acropora",
        "Pocillopora",
        "Other Hard Coral",
        "Bare-subst.",
        "Millepora",
        "Unknown",
        "Other Inv.",
    )


@pytest.mark.parametrize("coarse", CRIOBE_COARSER, ids=lambda t: t.name)
def test_every_genus_maps_to_exactly_one_coarser_class(coarse: Taxonomy) -> None:
    table = coarse.lookup_from(FINEGRAINED)
    assert table.shape == (16,)
    assert (table >= 0).all(), [FINEGRAINED.classes[i] for i in np.flatnonzero(table < 0)]
    # and every coarse class receives at least one genus
    assert set(table.tolist()) == set(range(coarse.num_classes))


@pytest.mark.parametrize(
    ("genus", "extended", "family"),
    [
        ("Acanthastrea", "Group1", "Group1"),
        ("Atrea", "Group1", "Group1"),
        ("Goniastrea", "Group1", "Group1"),
        ("Leptastrea", "Group1", "Group1"),
        ("Merulinidae", "Group1", "Group1"),
        ("Montastrea", "Other", "Other"),
        ("Psammocora", "Other", "Other"),
        ("Astreopora", "Astreopora", "Other"),
        ("Fungia", "Fungia", "Other"),
        ("Millepora", "Millepora", "Other"),
        ("Acropora", "Acropora", "Acropora"),
        ("Montipora", "Montipora", "Montipora"),
        ("Pavona/Leptoseris", "Pavona/Leptoseris", "Pavona/Leptoseris"),
        ("Pocillopora", "Pocillopora", "Pocillopora"),
        ("Porites", "Porites", "Porites"),
        ("Other", "Other", "Other"),
    ],
)
def test_criobe_mapping(genus: str, extended: str, family: str) -> None:
    assert EXTENDED.resolve(genus) == extended
    assert FAMILIES.resolve(genus) == family
    assert FAMILIES.resolve(extended) == family
    assert AGNOSTIC.resolve(genus) == "Coral"


def test_extended_maps_onto_families_consistently_with_finegrained() -> None:
    fine_to_ext = EXTENDED.lookup_from(FINEGRAINED)
    ext_to_fam = FAMILIES.lookup_from(EXTENDED)
    fine_to_fam = FAMILIES.lookup_from(FINEGRAINED)
    np.testing.assert_array_equal(ext_to_fam[fine_to_ext], fine_to_fam)


def test_resolve_ignores_case_and_spacing_and_rejects_unknown() -> None:
    assert FINEGRAINED.resolve("  pocillopora ") == "Pocillopora"
    assert FINEGRAINED.resolve("PAVONA/LEPTOSERIS") == "Pavona/Leptoseris"
    assert FINEGRAINED.resolve("Stylophora") is None


def test_lookup_from_unrelated_taxonomy_marks_unmapped() -> None:
    table = FINEGRAINED.lookup_from(EILAT)
    assert table[EILAT.classes.index("Acropora")] == FINEGRAINED.classes.index("Acropora")
    assert table[EILAT.classes.index("Faviidae")] == -1


def test_mask_encoding_background_as_class() -> None:
    encoding = MaskEncoding(FINEGRAINED)
    assert encoding.background_value == 0
    assert encoding.num_labels == 17
    assert encoding.label_names[0] == "background"
    assert encoding.value_of("Acanthastrea") == 1
    assert encoding.value_of("Psammocora") == 16
    assert encoding.palette[0] == (0, 0, 0)
    assert len(encoding.palette) == 17


def test_mask_encoding_background_as_ignore() -> None:
    encoding = MaskEncoding(FINEGRAINED, background_is_ignore=True)
    assert encoding.background_value == IGNORE_INDEX
    assert encoding.num_labels == 16
    assert encoding.label_names == FINEGRAINED.classes
    assert encoding.value_of("Acanthastrea") == 0


def test_source_labels_encode_to_their_class_value() -> None:
    encoding = MaskEncoding(EXTENDED)
    values, unknown = encoding.value_lookup(["Atrea", "Goniastrea", "Porites", "Sand"])
    assert values["Atrea"] == values["Goniastrea"] == encoding.value_of("Group1")
    assert values["Porites"] == 1 + EXTENDED.classes.index("Porites")
    assert unknown == ["Sand"]


def test_encoding_round_trips_through_dict() -> None:
    encoding = MaskEncoding(FAMILIES, background_is_ignore=True)
    restored = MaskEncoding.from_dict(json.loads(json.dumps(encoding.to_dict())))
    assert restored == encoding
    assert restored.taxonomy.resolve("Atrea") == "Group1"


def test_write_class_files(tmp_path: Path) -> None:
    encoding = MaskEncoding(FAMILIES)
    classes_path, palette_path = write_class_files(encoding, tmp_path)
    assert classes_path.read_text().splitlines() == ["background", *FAMILIES.classes]
    rows = [tuple(map(int, line.split())) for line in palette_path.read_text().splitlines()]
    assert rows == list(encoding.palette)


@pytest.mark.parametrize("background_is_ignore", [False, True])
def test_class_files_read_back_the_encoding(tmp_path: Path, background_is_ignore: bool) -> None:
    custom = Taxonomy("reef", ("Acropora", "Sand"), ((200, 10, 10), (9, 9, 90)))
    for taxonomy in (FAMILIES, custom):
        encoding = MaskEncoding(taxonomy, background_is_ignore=background_is_ignore)
        classes_path, _ = write_class_files(encoding, tmp_path / taxonomy.name)
        back = read_class_files(classes_path)
        assert back.background_is_ignore == background_is_ignore
        assert back.label_names == encoding.label_names and back.palette == encoding.palette
    assert read_class_files(tmp_path / "families" / "classes.txt").taxonomy is FAMILIES


def test_encoding_file_reads_back_the_encoding_with_its_cover_classes(tmp_path: Path) -> None:
    reef = Taxonomy("reef", ("Acropora", "Sand"), cover_classes=("Sand",))
    encoding = MaskEncoding(reef, background_is_ignore=True)
    assert read_encoding_file(write_encoding_file(encoding, tmp_path)) == encoding
    (tmp_path / "encoding.json").write_text('{"encoding": {}}')
    with pytest.raises(TaxonomyError, match="is not a mask encoding"):
        read_encoding_file(tmp_path / "encoding.json")


@pytest.mark.parametrize(
    ("classes", "palette", "message"),
    [
        ("background\n", None, "names no class"),
        ("Acropora\n\nSand\n", None, "blank line 2"),
        ("Acropora\nSand\n", "1 2 3\n", "1 colours for the 2 names"),
        ("Acropora\nSand\n", "1 2 3\n4 5 red\n", "'R G B'"),
    ],
)
def test_class_files_that_say_something_else_are_refused(
    tmp_path: Path, classes: str, palette: str | None, message: str
) -> None:
    (tmp_path / "classes.txt").write_text(classes)
    if palette is not None:
        (tmp_path / "palette.txt").write_text(palette)
    with pytest.raises(TaxonomyError, match=message):
        read_class_files(tmp_path / "classes.txt")


def test_get_taxonomy_by_name_and_unknown_name() -> None:
    assert get_taxonomy("families") is FAMILIES
    with pytest.raises(TaxonomyError, match=r"unknown taxonomy 'genera'.*finegrained"):
        get_taxonomy("genera")


# --- custom taxonomy files -----------------------------------------------------------------


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_load_yaml_taxonomy_with_colours_and_many_to_one(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "moorea.yaml",
        """
name: moorea
description: Moorea genera
classes:
  - name: Acropora
    color: "#ff0000"
    labels: [Isopora]
  - name: Porites
    color: [0, 0, 255]
mapping:
  Porites rus: Porites
  Porites massive: Porites
""",
    )
    taxonomy = load_taxonomy(path)
    assert taxonomy.name == "moorea"
    assert taxonomy.classes == ("Acropora", "Porites")
    assert taxonomy.colors == ((255, 0, 0), (0, 0, 255))
    assert taxonomy.resolve("isopora") == "Acropora"
    assert taxonomy.resolve("Porites rus") == taxonomy.resolve("Porites massive") == "Porites"
    assert get_taxonomy(str(path)) == taxonomy


def test_missing_colours_are_filled_with_unused_ones(tmp_path: Path) -> None:
    first_generated = "#{:02x}{:02x}{:02x}".format(*distinct_colors(1)[0])
    path = _write(
        tmp_path, "partial.yaml", f"classes: [{{name: A, color: '{first_generated}'}}, B, C]"
    )
    colors = load_taxonomy(path).colors
    assert colors[0] == distinct_colors(1)[0]
    assert len(set(colors)) == 3


def test_load_json_taxonomy_generates_distinct_colours(tmp_path: Path) -> None:
    path = _write(tmp_path, "three.json", json.dumps({"classes": ["A", "B", "C"]}))
    taxonomy = load_taxonomy(path)
    assert taxonomy.name == "three"
    assert len(set(taxonomy.colors)) == 3


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("classes: [Acropora, Porites, acropora]", "duplicate class 'acropora'"),
        (
            "classes: [Acropora]\nmapping: {Isopora: Montipora}",
            "'Isopora' maps to 'Montipora'.*not one of its classes",
        ),
        ("classes: [{name: A, color: '#12345'}]", "class 'A'.*colour '#12345'"),
        ("classes: [{name: A, color: [0, 300, 0]}]", "class 'A'.*three integers in 0..255"),
        ("classes: []", "non-empty list"),
        ("classes: [background, A]", "'background' is reserved"),
        ("clases: [A]", r"unknown keys \['clases'\]"),
        ("classes: [A, B]\nmapping: {X: A}\n", None),
        (
            "classes: [{name: A, labels: [X]}, {name: B, labels: [x]}]",
            "'x' is mapped to both 'A' and 'B'",
        ),
        ("classes: [A, B]\nmapping: {A: B}", "'A' maps to 'B' and also to 'A'"),
        ("classes: [A\n", "not valid YAML"),
        ("- A\n- B\n", "expected a mapping"),
    ],
)
def test_taxonomy_file_errors(tmp_path: Path, text: str, message: str | None) -> None:
    path = _write(tmp_path, "bad.yaml", text)
    if message is None:
        assert load_taxonomy(path).resolve("x") == "A"
        return
    with pytest.raises(TaxonomyError, match=message) as info:
        load_taxonomy(path)
    assert str(path) in str(info.value)


def test_missing_taxonomy_file(tmp_path: Path) -> None:
    with pytest.raises(TaxonomyError, match="does not exist"):
        get_taxonomy(tmp_path / "nope.yaml")


def test_too_many_classes() -> None:
    with pytest.raises(TaxonomyError, match="at most 254"):
        Taxonomy("big", tuple(f"c{i}" for i in range(255)))
    assert Taxonomy("max", tuple(f"c{i}" for i in range(254))).num_classes == 254


def test_the_guide_taxonomy_example_is_valid(tmp_path: Path) -> None:
    guide = (Path(__file__).resolve().parents[2] / "docs" / "taxonomies.md").read_text()
    example = guide.split("```yaml\n", 1)[1].split("```", 1)[0]
    taxonomy = load_taxonomy(_write(tmp_path, "moorea.yaml", example))
    assert taxonomy.classes == ("Acropora", "Porites", "Sand", "Other")
    assert taxonomy.cover_classes == ("Sand",)
    assert taxonomy.resolve("Porites rus") == "Porites"
    assert taxonomy.resolve("goniastrea") == "Other"


def test_label_map_adds_and_overrides_source_labels() -> None:
    taxonomy = with_label_map(FAMILIES, {"Isopora": "Acropora", "atrea": "Other"})
    assert taxonomy.resolve("isopora") == "Acropora"
    assert taxonomy.resolve("Atrea") == "Other"  # overrides the built-in Atrea -> Group1
    assert FAMILIES.resolve("Atrea") == "Group1"  # the original is untouched
    with pytest.raises(TaxonomyError, match="'Sand' maps to 'Substrate'"):
        with_label_map(FAMILIES, {"Sand": "Substrate"})
    with pytest.raises(TaxonomyError, match="'Porites' maps to 'Other' and also to 'Porites'"):
        with_label_map(FAMILIES, {"Porites": "Other"})


def test_parse_label_map(tmp_path: Path) -> None:
    path = _write(tmp_path, "map.yaml", "Isopora: Acropora\nPorites rus: Porites\n")
    parsed = parse_label_map(["Sand = Other", str(path)])
    assert parsed == {"Sand": "Other", "Isopora": "Acropora", "Porites rus": "Porites"}
    with pytest.raises(TaxonomyError, match="must look like 'CVAT label=Class'"):
        parse_label_map(["Isopora"])
    with pytest.raises(TaxonomyError, match="does not exist"):
        parse_label_map([str(tmp_path / "missing.yaml")])


def test_cover_classes_are_not_colonies() -> None:
    from coral_core.labels.taxonomy import EILAT

    assert EILAT.cover_classes == ("Bare-subst.", "Unknown", "Other Inv.")
    assert EILAT.is_colony("Acropora") and not EILAT.is_colony("bare-subst.")
    encoding = MaskEncoding(EILAT, background_is_ignore=True)
    assert encoding.colony_values == (0, 1, 2, 3, 4, 5, 7)
    assert MaskEncoding(EILAT).colony_values == (1, 2, 3, 4, 5, 6, 8)
    assert Taxonomy.from_dict(EILAT.to_dict()).cover_classes == EILAT.cover_classes


def test_taxonomy_file_marks_cover_classes(tmp_path) -> None:
    path = tmp_path / "reef.yaml"
    path.write_text("classes:\n  - Acropora\n  - name: Sand\n    cover: true\n")
    taxonomy = load_taxonomy(path)
    assert taxonomy.cover_classes == ("Sand",)
    assert taxonomy.colony_classes == ("Acropora",)
    path.write_text("classes:\n  - name: Sand\n    cover: maybe\n")
    with pytest.raises(TaxonomyError, match="'cover' must be true"):
        load_taxonomy(path)


def test_unknown_cover_class_is_refused() -> None:
    with pytest.raises(TaxonomyError, match="cover class 'Sand' is not one of its classes"):
        Taxonomy("t", ("Acropora",), cover_classes=("Sand",))
