"""Models the App's forms offer by name: those recorded on a dataset whose files still exist.

``coralseg demo`` records its model on the demo dataset, and the train operator records each
run it finishes on the dataset it was started from, so a user picks "coralseg demo" in a
form instead of typing two paths. The records live in ``dataset.info["coralseg_models"]``:
a list of ``{"name", "config", "checkpoint"}`` with absolute paths, newest first.
"""

from __future__ import annotations

from pathlib import Path

INFO_KEY = "coralseg_models"
KEEP = 10  # records kept per dataset, newest first


def remember_model(dataset, name: str, config: str | Path, checkpoint: str | Path) -> None:
    """Record (or move to the front) the model ``name`` on ``dataset``."""
    entry = {
        "name": name,
        "config": str(Path(config).resolve()),
        "checkpoint": str(Path(checkpoint).resolve()),
    }
    kept = [e for e in dataset.info.get(INFO_KEY, []) if e.get("name") != name]
    dataset.info[INFO_KEY] = [entry, *kept][:KEEP]
    dataset.save()


def known_models(dataset) -> dict[str, tuple[str, str]]:
    """Name -> (config, checkpoint) of the models recorded on ``dataset`` whose files exist."""
    if dataset is None:
        return {}
    found = {}
    for entry in dataset.info.get(INFO_KEY, []):
        config, checkpoint = entry.get("config", ""), entry.get("checkpoint", "")
        if config and checkpoint and Path(config).is_file() and Path(checkpoint).is_file():
            found.setdefault(str(entry.get("name")), (config, checkpoint))
    return found
