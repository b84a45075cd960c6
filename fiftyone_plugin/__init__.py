"""The coralseg FiftyOne plugin: operators in the App's operator browser (backtick key).

``fiftyone.yml`` at the repository root declares the plugin; FiftyOne loads this file and
calls :func:`register`. One operator per module in :mod:`fiftyone_plugin.operators`, each a
thin class that validates ``ctx.params`` and calls a library module of this package
(:mod:`.evaluation`, :mod:`.prediction`, :mod:`.annotate_next`, :mod:`.training_run`,
:mod:`.mask_export`, :mod:`.cvat_pull`), which call :mod:`coral_core`. The ``coralseg`` CLI
uses the same library modules; importing this package imports neither FiftyOne nor torch.

Imports inside the package are relative, so a copy downloaded with
``fiftyone plugins download`` runs its own modules (FiftyOne loads it under a module name of
its own); :mod:`coral_core` comes from the installed coralseg.
"""


def register(plugin) -> None:
    """Called by FiftyOne with the plugin's context: register every operator."""
    from .operators import OPERATORS

    for operator in OPERATORS:
        plugin.register(operator)
