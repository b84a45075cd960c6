"""Entry point of the ``coralseg`` console script."""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from collections.abc import Sequence

from coral_core import __version__
from coral_core.errors import CoralsegError, setting_hint
from coralseg import commands


def _command_modules() -> list:
    """Every module in ``coralseg.commands``, in name order; each has ``register()``."""
    names = sorted(m.name for m in pkgutil.iter_modules(commands.__path__))
    return [importlib.import_module(f"coralseg.commands.{name}") for name in names]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="coralseg",
        description=(
            "Genus-level coral segmentation for reef photo-quadrats: export annotations, "
            "train DINOv2 + SegFormer models, run inference, serve them to CVAT and FiftyOne."
        ),
        epilog="Run 'coralseg COMMAND --help' for the options of a command.",
    )
    parser.add_argument("--version", action="version", version=f"coralseg {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in _command_modules():
        module.register(subparsers)
    return parser


# Library settings whose option is not the setting's name with dashes (``min_area``:
# ``--min-area``).
_FLAGS = {
    "data_dir": "--data",
    "out_dir": "--out",
    "unknown": "--skip-unknown",
    "classes_file": "--classes",
    "pixels_per_cm": "--scale",
    "quadrat_cm": "--quadrat-size-cm",
}


def _flag(setting: str) -> str:
    """The command-line option that changes a library setting."""
    return _FLAGS.get(setting, "--" + setting.replace("_", "-"))


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        return int(args.run(args) or 0)
    except CoralsegError as err:
        hint = setting_hint(err, _flag, "option")
        print(f"coralseg {args.command}: error: {err}{hint}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"coralseg {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
