"""``coralseg taxonomy``: list, show, check and write class taxonomies."""

from __future__ import annotations

import argparse

from coral_core.labels.palette import to_hex
from coral_core.labels.taxonomy import (
    BUILTIN_TAXONOMIES,
    MaskEncoding,
    get_taxonomy,
    write_class_files,
)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "taxonomy",
        help="list or show class taxonomies (showing a taxonomy file checks it)",
        description=(
            "Built-in taxonomies: "
            + ", ".join(f"{t.name} ({t.num_classes})" for t in BUILTIN_TAXONOMIES.values())
            + ". A taxonomy file (YAML/JSON) can be given wherever a name is accepted."
        ),
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    list_parser = actions.add_parser("list", help="list the built-in taxonomies")
    list_parser.set_defaults(run=_run_list)

    show_parser = actions.add_parser(
        "show",
        help="show the pixel value, name and colour of each class",
        description="Show how a taxonomy's classes are written into label masks.",
    )
    show_parser.add_argument("taxonomy", help="built-in name or path to a .yaml/.json file")
    show_parser.add_argument(
        "--background-as-ignore",
        action="store_true",
        help="classes start at 0 and background is 255 (ignored), as in the seed's setup",
    )
    show_parser.add_argument(
        "--write",
        metavar="DIR",
        help="also write DIR/classes.txt and DIR/palette.txt",
    )
    show_parser.set_defaults(run=_run_show)


def _run_list(args: argparse.Namespace) -> int:
    for taxonomy in BUILTIN_TAXONOMIES.values():
        print(f"{taxonomy.name:<12} {taxonomy.num_classes:>3} classes  {taxonomy.description}")
    return 0


def _run_show(args: argparse.Namespace) -> int:
    encoding = MaskEncoding(get_taxonomy(args.taxonomy), args.background_as_ignore)
    taxonomy = encoding.taxonomy
    print(f"{taxonomy.name}: {taxonomy.description or 'custom taxonomy'}")
    print(f"{'value':>5}  {'colour':<8} name")
    for value, (name, color) in enumerate(zip(encoding.label_names, encoding.palette, strict=True)):
        merged = sorted(k for k, v in taxonomy.source_labels.items() if v == name)
        suffix = f"  <- {', '.join(merged)}" if merged else ""
        kind = "  (cover only, no colonies)" if name in taxonomy.cover_classes else ""
        print(f"{value:>5}  {to_hex(color):<8} {name}{kind}{suffix}")
    print(f"{255:>5}  {'':<8} ignore{' (and background)' if encoding.background_is_ignore else ''}")
    if args.write:
        classes_path, palette_path = write_class_files(encoding, args.write)
        print(f"wrote {classes_path} and {palette_path}")
    return 0
