"""Open the FiftyOne App on the demo's dataset with the coralseg operators in its menu.

FiftyOne finds plugins in its plugins folder (``FIFTYONE_PLUGINS_DIR``). When none is
configured, the demo links this repository (which holds ``fiftyone.yml``) into
``~/.coralseg/fiftyone-plugins/coralseg`` and points FiftyOne there, so the App's server
process loads the operators. A configured folder is left alone; where it lacks the plugin,
the message says how to add it.
"""

from __future__ import annotations

import os
from pathlib import Path

from coral_core.errors import CoralsegError

REPO = Path(__file__).resolve().parents[1]
PLUGIN_LINK_ROOT = Path.home() / ".coralseg" / "fiftyone-plugins"
ENV = "FIFTYONE_PLUGINS_DIR"


def ensure_plugin_dir() -> Path:
    """The plugins folder the App will use, with coralseg in it when we chose the folder."""
    configured = os.environ.get(ENV)
    if configured:
        folder = Path(configured).expanduser()
        if not any(
            (p / "fiftyone.yml").is_file() and p.resolve() == REPO for p in _children(folder)
        ):
            print(
                f"note: {ENV}={folder} does not hold the coralseg plugin; to get its operators "
                f"in the App: ln -s {REPO} {folder / 'coralseg'}"
            )
        return folder
    PLUGIN_LINK_ROOT.mkdir(parents=True, exist_ok=True)
    link = PLUGIN_LINK_ROOT / "coralseg"
    if link.is_symlink() and link.resolve() != REPO:
        link.unlink()
    if not link.exists():
        link.symlink_to(REPO, target_is_directory=True)
    os.environ[ENV] = str(PLUGIN_LINK_ROOT)
    return PLUGIN_LINK_ROOT


def _children(folder: Path) -> list[Path]:
    try:
        return [p for p in folder.iterdir() if p.is_dir()]
    except OSError:
        return []


def open_app(dataset_name: str, port: int = 5151) -> None:
    """Launch the App on ``dataset_name`` and keep it open until Ctrl-C."""
    plugins = ensure_plugin_dir()
    import fiftyone as fo

    fo.config.plugins_dir = str(plugins)
    if not fo.dataset_exists(dataset_name):
        raise CoralsegError(f"FiftyOne has no dataset {dataset_name!r}; run coralseg demo first")
    session = fo.launch_app(fo.load_dataset(dataset_name), port=port, auto=False)
    print(f"The App is at {session.url} (Ctrl-C to close it)", flush=True)
    session.wait(-1)
