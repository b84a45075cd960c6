"""Class taxonomies: the one source of truth for class ids, names and colours.

Everything that turns a label into a number (mask export, training configs, evaluation,
CVAT label specs, the FiftyOne plugin, the Nuclio function) goes through this module.

Mask convention (:class:`MaskEncoding`), for a taxonomy of N classes:

* default: ``0`` = background (pixels no polygon covers), ``1..N`` = the classes in taxonomy
  order, ``255`` = ignore;
* ``background_is_ignore=True`` (the seed's 16-class setup): ``0..N-1`` = the classes,
  background and ignore both ``255``.

Built-in taxonomies are CRIOBE's four levels (``finegrained`` 16 genera, ``extended`` 10,
``families`` 7, ``agnostic`` 1) and ``eilat``, the 10 classes of the EilatMixx data. Each
coarser CRIOBE level maps every finer class name onto exactly one of its classes, so labels
drawn with the 16 genera export to any level, and :meth:`Taxonomy.lookup_from` gives the
fine-to-coarse table that hierarchical fine-tuning needs.

A taxonomy can also come from a YAML or JSON file; see :func:`load_taxonomy`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
import yaml

from coral_core.atomic import write_json_atomically, write_text_atomically
from coral_core.errors import CoralsegError
from coral_core.labels.palette import BACKGROUND_COLOR, RGB, distinct_colors, parse_color

IGNORE_INDEX = 255
BACKGROUND_NAME = "background"
ENCODING_FILE = "encoding.json"
MAX_CLASSES = 254  # with background as class 0, ids 1..254 leave 255 for ignore


class TaxonomyError(CoralsegError):
    """A taxonomy definition or a label is invalid; the message says how to fix it."""


def normalize_label(label: str) -> str:
    """The form labels are compared in: case-folded, runs of whitespace collapsed.

    CVAT label names typed by hand vary in case and spacing ("acropora ", "Pavona/ Leptoseris"
    does not match, but "pavona/leptoseris" does).
    """
    return " ".join(label.casefold().split())


@dataclass(frozen=True)
class Taxonomy:
    """An ordered set of classes with colours and the source labels that map onto them.

    Attributes:
        name: short identifier, e.g. ``"finegrained"``.
        classes: class names in id order (ids are assigned by :class:`MaskEncoding`).
        colors: one RGB triple (ints 0..255) per class.
        source_labels: extra label names (e.g. CVAT labels, finer genera) mapped to a class
            name; many-to-one. Every class name also maps to itself without being listed.
        description: one line for help texts.
        cover_classes: classes that are cover only, not countable colonies (bare
            substrate, sand, rubble, algae, "unknown"): they have percent cover but no
            colonies, so the instance stage, COCO output and colony counts leave them out.
            Every other class is a colony class.
    """

    name: str
    classes: tuple[str, ...]
    colors: tuple[RGB, ...] = ()
    source_labels: Mapping[str, str] = field(default_factory=dict)
    description: str = ""
    cover_classes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "classes", tuple(self.classes))
        if not self.classes:
            raise TaxonomyError(f"taxonomy {self.name!r} has no classes")
        if len(self.classes) > MAX_CLASSES:
            raise TaxonomyError(
                f"taxonomy {self.name!r} has {len(self.classes)} classes; masks are 8-bit, "
                f"so at most {MAX_CLASSES} fit beside background and ignore"
            )
        index: dict[str, str] = {}
        for class_name in self.classes:
            if not isinstance(class_name, str) or not class_name.strip():
                raise TaxonomyError(
                    f"taxonomy {self.name!r}: class names must be non-empty text, "
                    f"got {class_name!r}"
                )
            key = normalize_label(class_name)
            if key == BACKGROUND_NAME:
                raise TaxonomyError(
                    f"taxonomy {self.name!r}: {BACKGROUND_NAME!r} is reserved for pixels no "
                    "polygon covers; remove it from the classes"
                )
            if key in index:
                raise TaxonomyError(
                    f"taxonomy {self.name!r}: duplicate class {class_name!r} "
                    f"(same as {index[key]!r} when case and spaces are ignored)"
                )
            index[key] = class_name
        colors = tuple(tuple(c) for c in self.colors) or tuple(distinct_colors(len(self.classes)))
        if len(colors) != len(self.classes):
            raise TaxonomyError(
                f"taxonomy {self.name!r} has {len(self.classes)} classes but {len(colors)} colours"
            )
        object.__setattr__(self, "colors", tuple(parse_color(c) for c in colors))
        for source, target in self.source_labels.items():
            target_key = normalize_label(target)
            if target_key not in index:
                raise TaxonomyError(
                    f"taxonomy {self.name!r}: label {source!r} maps to {target!r}, which is "
                    f"not one of its classes ({', '.join(self.classes)})"
                )
            source_key = normalize_label(source)
            existing = index.get(source_key)
            if existing is not None and normalize_label(existing) != target_key:
                raise TaxonomyError(
                    f"taxonomy {self.name!r}: label {source!r} maps to {target!r} and also "
                    f"to {existing!r}; a label must map to exactly one class"
                )
            index[source_key] = index[target_key]
        object.__setattr__(self, "source_labels", MappingProxyType(dict(self.source_labels)))
        object.__setattr__(self, "_index", MappingProxyType(index))
        cover = []
        for class_name in self.cover_classes:
            if normalize_label(class_name) not in {normalize_label(c) for c in self.classes}:
                raise TaxonomyError(
                    f"taxonomy {self.name!r}: cover class {class_name!r} is not one of its "
                    f"classes ({', '.join(self.classes)})"
                )
            cover.append(index[normalize_label(class_name)])
        object.__setattr__(self, "cover_classes", tuple(c for c in self.classes if c in cover))

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def is_colony(self, class_name: str) -> bool:
        """Whether a class (or a source label's class) is a countable colony class."""
        return self.classes[self.class_position(class_name)] not in self.cover_classes

    @property
    def colony_classes(self) -> tuple[str, ...]:
        """The classes that are colonies, in taxonomy order."""
        return tuple(c for c in self.classes if c not in self.cover_classes)

    def resolve(self, label: str) -> str | None:
        """Return the class a label belongs to (matching ignores case and spacing), or None."""
        return self._index.get(normalize_label(label))  # type: ignore[attr-defined]

    def class_position(self, class_name: str) -> int:
        """0-based position of a class (or of a source label's class) in :attr:`classes`."""
        resolved = self.resolve(class_name)
        if resolved is None:
            raise TaxonomyError(
                f"{class_name!r} is not a class or known label of taxonomy {self.name!r}"
            )
        return self.classes.index(resolved)

    def lookup_from(self, source: Taxonomy) -> np.ndarray:
        """Table from ``source`` class positions to positions in this taxonomy.

        Returns:
            int64 array of shape ``(source.num_classes,)``; entry ``i`` is the position in
            ``self.classes`` of the class ``source.classes[i]`` maps to, or ``-1`` where it
            maps to none. ``families.lookup_from(finegrained)`` gives each genus's family.
        """
        table = np.full(source.num_classes, -1, dtype=np.int64)
        for i, class_name in enumerate(source.classes):
            resolved = self.resolve(class_name)
            if resolved is not None:
                table[i] = self.classes.index(resolved)
        return table

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe plain data, e.g. for checkpoint metadata; inverse of :meth:`from_dict`."""
        return {
            "name": self.name,
            "description": self.description,
            "classes": list(self.classes),
            "colors": [list(c) for c in self.colors],
            "source_labels": dict(self.source_labels),
            "cover_classes": list(self.cover_classes),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Taxonomy:
        """Rebuild a taxonomy written by :meth:`to_dict`."""
        return cls(
            name=data["name"],
            classes=tuple(data["classes"]),
            colors=tuple(tuple(c) for c in data.get("colors", ())),
            source_labels=dict(data.get("source_labels", {})),
            description=data.get("description", ""),
            cover_classes=tuple(data.get("cover_classes", ())),
        )


@dataclass(frozen=True)
class MaskEncoding:
    """How a taxonomy's classes become pixel values in 8-bit label masks.

    ``background_is_ignore=False``: 0 = background, 1..N = classes, 255 = ignore.
    ``background_is_ignore=True``: 0..N-1 = classes, 255 = background and ignore.
    """

    taxonomy: Taxonomy
    background_is_ignore: bool = False

    @property
    def background_value(self) -> int:
        """Pixel value written where no polygon lies."""
        return IGNORE_INDEX if self.background_is_ignore else 0

    @property
    def first_class_value(self) -> int:
        return 0 if self.background_is_ignore else 1

    @property
    def num_labels(self) -> int:
        """Number of trainable labels: MMSeg's ``num_classes``."""
        return self.taxonomy.num_classes + (0 if self.background_is_ignore else 1)

    @property
    def label_names(self) -> tuple[str, ...]:
        """Names of pixel values ``0..num_labels-1``: MMSeg's ``metainfo['classes']``."""
        prefix = () if self.background_is_ignore else (BACKGROUND_NAME,)
        return prefix + self.taxonomy.classes

    @property
    def palette(self) -> tuple[RGB, ...]:
        """Colours of pixel values ``0..num_labels-1``: MMSeg's ``metainfo['palette']``."""
        prefix = () if self.background_is_ignore else (BACKGROUND_COLOR,)
        return prefix + self.taxonomy.colors

    @property
    def colony_values(self) -> tuple[int, ...]:
        """Pixel values of the colony classes (see :attr:`Taxonomy.cover_classes`)."""
        return tuple(self.value_of(name) for name in self.taxonomy.colony_classes)

    def value_of(self, label: str) -> int:
        """Pixel value of a class name or source label."""
        return self.taxonomy.class_position(label) + self.first_class_value

    def value_lookup(self, labels: Iterable[str]) -> tuple[dict[str, int], list[str]]:
        """Map label names to pixel values.

        Returns:
            ``(values, unknown)``: ``values[label]`` for each label the taxonomy knows, and the
            sorted labels it does not know.
        """
        values: dict[str, int] = {}
        unknown: set[str] = set()
        for label in labels:
            if self.taxonomy.resolve(label) is None:
                unknown.add(label)
            else:
                values[label] = self.value_of(label)
        return values, sorted(unknown)

    def to_dict(self) -> dict[str, Any]:
        return {
            "taxonomy": self.taxonomy.to_dict(),
            "background_is_ignore": self.background_is_ignore,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MaskEncoding:
        return cls(Taxonomy.from_dict(data["taxonomy"]), bool(data["background_is_ignore"]))


def write_class_files(encoding: MaskEncoding, out_dir: str | Path) -> tuple[Path, Path]:
    """Write ``classes.txt`` (one label name per line) and ``palette.txt`` (``R G B`` per line).

    Line ``i`` describes pixel value ``i``, as MMSeg's ``metainfo`` lists them.

    Returns:
        The paths of ``classes.txt`` and ``palette.txt``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    classes_path = out / "classes.txt"
    palette_path = out / "palette.txt"
    write_text_atomically(classes_path, "".join(f"{name}\n" for name in encoding.label_names))
    write_text_atomically(palette_path, "".join(f"{r} {g} {b}\n" for r, g, b in encoding.palette))
    return classes_path, palette_path


def write_encoding_file(encoding: MaskEncoding, out_dir: str | Path) -> Path:
    """Write ``encoding.json`` (:meth:`MaskEncoding.to_dict`): unlike ``classes.txt`` it
    also says which classes are cover only. Returns its path."""
    path = Path(out_dir) / ENCODING_FILE
    write_json_atomically(path, encoding.to_dict())
    return path


def read_encoding_file(path: str | Path) -> MaskEncoding:
    """The mask encoding :func:`write_encoding_file` wrote to ``path``.

    Raises:
        TaxonomyError: the file is unreadable or not a mask encoding.
    """
    path = Path(path)
    try:
        return MaskEncoding.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise TaxonomyError(f"cannot read the mask encoding {path} ({err})") from None
    except (KeyError, TypeError, AttributeError, ValueError) as err:
        raise TaxonomyError(
            f"{path} is not a mask encoding ({err!r}); write it again with its model's outputs"
        ) from None


def read_class_files(classes_path: str | Path) -> MaskEncoding:
    """The mask convention a ``classes.txt`` (and the ``palette.txt`` beside it) describes.

    Line ``i`` names pixel value ``i``, as :func:`write_class_files` writes them. A first line
    ``background`` means 0 = background, 1..N = classes; otherwise 0..N-1 are the classes
    and 255 is background and ignore. ``palette.txt``, when present, gives one ``R G B`` line
    per class line. Names of a built-in taxonomy give that taxonomy (with its colony and
    cover-only classes); other names make a taxonomy named after the file in which every
    class is a colony class.

    Raises:
        TaxonomyError: a file is unreadable, names no class, has blank lines, or the palette
            does not give one colour per name.
    """
    path = Path(classes_path)
    names = _class_file_lines(path)
    has_background = bool(names) and names[0].casefold() == BACKGROUND_NAME
    classes = tuple(names[1:] if has_background else names)
    if not classes:
        raise TaxonomyError(f"the classes file {path} names no class; write one name per line")
    colors = _palette_file_colors(path.with_name("palette.txt"), len(names))
    if colors and has_background:
        colors = colors[1:]
    builtin = next((t for t in BUILTIN_TAXONOMIES.values() if t.classes == classes), None)
    if builtin is not None:
        taxonomy = builtin
    else:
        try:
            taxonomy = Taxonomy(path.stem, classes, tuple(colors))
        except TaxonomyError as err:
            raise TaxonomyError(f"the classes file {path}: {err}") from None
    return MaskEncoding(taxonomy, background_is_ignore=not has_background)


def _class_file_lines(path: Path) -> list[str]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise TaxonomyError(
            f"cannot read the classes file {path}: {getattr(err, 'strerror', None) or err}"
        ) from None
    lines = [line.strip() for line in lines]
    while lines and not lines[-1]:
        lines.pop()
    if "" in lines:
        raise TaxonomyError(
            f"the classes file {path} has a blank line {lines.index('') + 1}; line i names "
            "pixel value i, so every line needs a name"
        )
    return lines


def _palette_file_colors(path: Path, count: int) -> list[RGB]:
    """The ``R G B`` lines of ``palette.txt``; none when the file is absent."""
    if not path.is_file():
        return []
    try:
        lines = [line.split() for line in path.read_text(encoding="utf-8").splitlines()]
    except (OSError, UnicodeDecodeError) as err:
        raise TaxonomyError(f"cannot read {path}: {err}") from None
    lines = [line for line in lines if line]
    try:
        colors = [parse_color([int(v) for v in line]) for line in lines]
    except ValueError as err:
        raise TaxonomyError(f"{path}: {err}; write 'R G B' (0..255) per line") from None
    if len(colors) != count:
        raise TaxonomyError(
            f"{path} has {len(colors)} colours for the {count} names of classes.txt; give one "
            "'R G B' line per name"
        )
    return colors


# --- Built-in taxonomies -------------------------------------------------------------------

_FINEGRAINED = (
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
_GROUP1 = ("Acanthastrea", "Atrea", "Goniastrea", "Leptastrea", "Merulinidae")
_EXTENDED_INTO_OTHER = ("Montastrea", "Psammocora")
_EXTENDED = (
    "Acropora",
    "Astreopora",
    "Fungia",
    "Group1",
    "Millepora",
    "Montipora",
    "Other",
    "Pavona/Leptoseris",
    "Pocillopora",
    "Porites",
)
_FAMILIES = (
    "Acropora",
    "Group1",
    "Montipora",
    "Other",
    "Pavona/Leptoseris",
    "Pocillopora",
    "Porites",
)

_EXTENDED_FROM_FINE = {g: "Group1" for g in _GROUP1} | {g: "Other" for g in _EXTENDED_INTO_OTHER}
# Extended classes without a family of their own are "Other" at family level.
_FAMILIES_FROM_EXTENDED = {"Astreopora": "Other", "Fungia": "Other", "Millepora": "Other"}


def _families_from_fine() -> dict[str, str]:
    mapping = {}
    for genus in _FINEGRAINED:
        extended = _EXTENDED_FROM_FINE.get(genus, genus)
        family = _FAMILIES_FROM_EXTENDED.get(extended, extended)
        if family != genus:
            mapping[genus] = family
    return mapping


FINEGRAINED = Taxonomy(
    name="finegrained",
    classes=_FINEGRAINED,
    description="CRIOBE's 16 coral genera",
)
EXTENDED = Taxonomy(
    name="extended",
    classes=_EXTENDED,
    source_labels=_EXTENDED_FROM_FINE,
    description=(
        "CRIOBE's 10 classes: 5 genera merged into Group1, Montastrea and Psammocora into Other"
    ),
)
FAMILIES = Taxonomy(
    name="families",
    classes=_FAMILIES,
    # CRIOBE's documents show Group1 as "Atrea"; Atrea is a Group1 genus, so that name maps.
    source_labels=_families_from_fine() | _FAMILIES_FROM_EXTENDED,
    description="CRIOBE's 7 main families (Group1 is shown as Atrea in CRIOBE's docs)",
)
AGNOSTIC = Taxonomy(
    name="agnostic",
    classes=("Coral",),
    source_labels={label: "Coral" for label in sorted(set(_FINEGRAINED + _EXTENDED + _FAMILIES))},
    description="one class, Coral: every genus of the CRIOBE taxonomies",
)
EILAT = Taxonomy(
    name="eilat",
    classes=(
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
    ),
    description="the 10 classes of the EilatMixx reef photos (Red Sea)",
    cover_classes=("Bare-subst.", "Unknown", "Other Inv."),
)

BUILTIN_TAXONOMIES: Mapping[str, Taxonomy] = MappingProxyType(
    {t.name: t for t in (FINEGRAINED, EXTENDED, FAMILIES, AGNOSTIC, EILAT)}
)


def with_label_map(taxonomy: Taxonomy, label_map: Mapping[str, str]) -> Taxonomy:
    """A copy of ``taxonomy`` in which ``label_map``'s labels (e.g. CVAT names) map to classes.

    Entries replace the taxonomy's own source labels of the same name; a class name cannot be
    remapped (that would change the taxonomy itself).

    Raises:
        TaxonomyError: a target is not a class, or a class name is remapped.
    """
    if not label_map:
        return taxonomy
    overridden = {normalize_label(label) for label in label_map}
    kept = {k: v for k, v in taxonomy.source_labels.items() if normalize_label(k) not in overridden}
    return replace(taxonomy, source_labels={**kept, **label_map})


def parse_label_map(items: Iterable[str]) -> dict[str, str]:
    """Parse ``LABEL=CLASS`` items (from the command line or an env variable) into a dict.

    An item that is the path of a YAML/JSON file holding a ``{label: class}`` mapping is
    read instead.
    """
    label_map: dict[str, str] = {}
    for item in items:
        path = Path(item)
        if "=" not in item and path.suffix.lower() in {".yml", ".yaml", ".json"}:
            try:
                data = yaml.safe_load(path.read_text(encoding="utf-8"))
            except FileNotFoundError:
                raise TaxonomyError(f"label map file {path} does not exist") from None
            except yaml.YAMLError as err:
                raise TaxonomyError(
                    f"label map file {path} is not valid YAML/JSON: {err}"
                ) from None
            if not isinstance(data, Mapping) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in data.items()
            ):
                raise TaxonomyError(f"label map file {path} must map label names to class names")
            label_map.update(data)
            continue
        label, sep, target = item.partition("=")
        if not sep or not label.strip() or not target.strip():
            raise TaxonomyError(
                f"label mapping {item!r} must look like 'CVAT label=Class', e.g. 'Isopora=Acropora'"
            )
        label_map[label.strip()] = target.strip()
    return label_map


# --- Taxonomy files ------------------------------------------------------------------------


def get_taxonomy(spec: str | Path | Taxonomy) -> Taxonomy:
    """Return a built-in taxonomy by name, or load one from a YAML/JSON file path."""
    if isinstance(spec, Taxonomy):
        return spec
    text = str(spec)
    if text in BUILTIN_TAXONOMIES:
        return BUILTIN_TAXONOMIES[text]
    path = Path(text)
    if path.suffix.lower() in {".yml", ".yaml", ".json"} or path.exists():
        return load_taxonomy(path)
    raise TaxonomyError(
        f"unknown taxonomy {text!r}: use one of {', '.join(BUILTIN_TAXONOMIES)} "
        "or the path of a taxonomy .yaml/.json file"
    )


def load_taxonomy(path: str | Path) -> Taxonomy:
    """Load a taxonomy from a YAML or JSON file.

    The file holds a mapping::

        name: my_reef                  # optional, defaults to the file stem
        description: Moorea LTER genera
        classes:
          - Acropora                   # a plain name: colour picked automatically
          - name: Porites
            color: "#1f77b4"           # or [31, 119, 180]
            labels: [Porites massive, Porites rus]   # source labels merged into it
          - name: Sand
            cover: true                # cover only: percent cover, but no colonies
        mapping:                       # more source labels, many-to-one
          Goniastrea: Other
          Leptastrea: Other

    Classes without a colour get distinct generated ones that no other class uses.

    Raises:
        TaxonomyError: the file is missing, unreadable, or its content is invalid; the
            message names the file and what to fix.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise TaxonomyError(f"taxonomy file {path} does not exist") from None
    except OSError as err:
        raise TaxonomyError(f"cannot read taxonomy file {path}: {err.strerror}") from None
    try:
        data = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as err:
        raise TaxonomyError(
            f"taxonomy file {path} is not valid {_format_name(path)}: {err}"
        ) from None
    try:
        return taxonomy_from_mapping(data, default_name=path.stem)
    except TaxonomyError as err:
        raise TaxonomyError(f"taxonomy file {path}: {err}") from None


def _format_name(path: Path) -> str:
    return "JSON" if path.suffix.lower() == ".json" else "YAML"


def taxonomy_from_mapping(data: object, default_name: str = "custom") -> Taxonomy:
    """Build a taxonomy from the plain data of a taxonomy file (see :func:`load_taxonomy`)."""
    if not isinstance(data, Mapping):
        raise TaxonomyError("expected a mapping with a 'classes' list at the top level")
    unknown_keys = set(data) - {"name", "description", "classes", "mapping"}
    if unknown_keys:
        raise TaxonomyError(
            f"unknown keys {sorted(unknown_keys)}; allowed: name, description, classes, mapping"
        )
    entries = data.get("classes")
    if not isinstance(entries, list) or not entries:
        raise TaxonomyError("'classes' must be a non-empty list of class names or mappings")
    names: list[str] = []
    colors: list[RGB | None] = []
    source_labels: dict[str, str] = {}
    cover_classes: list[str] = []
    for position, entry in enumerate(entries, start=1):
        if isinstance(entry, str):
            entry = {"name": entry}
        if not isinstance(entry, Mapping) or not isinstance(entry.get("name"), str):
            raise TaxonomyError(f"class #{position} must be a name or a mapping with a 'name'")
        extra = set(entry) - {"name", "color", "labels", "cover"}
        if extra:
            raise TaxonomyError(
                f"class {entry['name']!r}: unknown keys {sorted(extra)}; "
                "allowed: name, color, labels, cover"
            )
        if not isinstance(entry.get("cover", False), bool):
            raise TaxonomyError(
                f"class {entry['name']!r}: 'cover' must be true (cover only, e.g. sand) or "
                "false (a countable colony class, the default)"
            )
        if entry.get("cover", False):
            cover_classes.append(entry["name"])
        names.append(entry["name"])
        try:
            colors.append(parse_color(entry["color"]) if "color" in entry else None)
        except ValueError as err:
            raise TaxonomyError(f"class {entry['name']!r}: {err}") from None
        labels = entry.get("labels", [])
        if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
            raise TaxonomyError(f"class {entry['name']!r}: 'labels' must be a list of names")
        for label in labels:
            _add_source_label(source_labels, label, entry["name"])
    mapping = data.get("mapping", {}) or {}
    if not isinstance(mapping, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in mapping.items()
    ):
        raise TaxonomyError("'mapping' must map label names to class names")
    for label, target in mapping.items():
        _add_source_label(source_labels, label, target)
    return Taxonomy(
        name=str(data.get("name") or default_name),
        classes=tuple(names),
        colors=tuple(_fill_missing_colors(colors)),
        source_labels=source_labels,
        description=str(data.get("description", "")),
        cover_classes=tuple(cover_classes),
    )


def _fill_missing_colors(colors: list[RGB | None]) -> list[RGB]:
    """Give classes without a colour the first generated colours no other class uses."""
    used = {c for c in colors if c is not None}
    spare = iter(c for c in distinct_colors(MAX_CLASSES + 2) if c not in used)
    return [c if c is not None else next(spare) for c in colors]


def _add_source_label(source_labels: dict[str, str], label: str, target: str) -> None:
    for existing, existing_target in source_labels.items():
        if normalize_label(existing) == normalize_label(label) and normalize_label(
            existing_target
        ) != normalize_label(target):
            raise TaxonomyError(
                f"label {label!r} is mapped to both {existing_target!r} and {target!r}"
            )
    source_labels[label] = target
