"""Open the FiftyOne App on the demo's dataset with the coralseg operators in its menu.

FiftyOne loads plugins from its plugins folder (``fo.config.plugins_dir``, by default
``~/fiftyone/__plugins__``). This repository is the plugin (``fiftyone.yml`` at its root);
when the folder holds no link to it, one named ``coralseg`` is made there, as
``docs/fiftyone-app.md`` describes for clones, so ``fiftyone app launch`` shows the
operators too. A ``coralseg`` entry that is something else is left alone, with a note.
"""

from __future__ import annotations

import os
from pathlib import Path

from coral_core.errors import CoralsegError

REPO = Path(__file__).resolve().parents[1]
DEFAULT_PLUGINS_DIR = Path.home() / "fiftyone" / "__plugins__"


def ensure_plugin(plugins_dir: str | os.PathLike | None) -> Path:
    """The plugins folder to use, holding a link to this repository; made if needed."""
    folder = Path(plugins_dir).expanduser() if plugins_dir else DEFAULT_PLUGINS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    for entry in folder.iterdir():
        if entry.is_dir() and entry.resolve() == REPO:
            return folder
    link = folder / "coralseg"
    if link.exists() or link.is_symlink():
        print(
            f"note: {link} is another plugin, so the coralseg operators are not in the App; "
            f"link this clone under another name: ln -s {REPO} {folder / 'coralseg-clone'}"
        )
        return folder
    link.symlink_to(REPO, target_is_directory=True)
    print(f"linked the coralseg plugin into FiftyOne's plugins folder: {link} -> {REPO}")
    return folder


def open_app(dataset_name: str, port: int = 5151) -> None:
    """Launch the App on ``dataset_name`` and keep it open until Ctrl-C."""
    import fiftyone as fo

    folder = ensure_plugin(fo.config.plugins_dir)
    fo.config.plugins_dir = str(folder)
    os.environ["FIFTYONE_PLUGINS_DIR"] = str(folder)  # the App's server process reads it
    if not fo.dataset_exists(dataset_name):
        raise CoralsegError(f"FiftyOne has no dataset {dataset_name!r}; run coralseg demo first")
    session = fo.launch_app(fo.load_dataset(dataset_name), port=port, auto=False)
    print(f"The App is at {session.url} (Ctrl-C closes it)", flush=True)
    session.wait(-1)
