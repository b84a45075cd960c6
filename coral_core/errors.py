"""The exception type for mistakes a user can fix (bad input, bad files, bad options).

Command-line and service adapters print these as one sentence instead of a traceback;
anything else is a bug and keeps its traceback.

The library names the settings an error is about (``settings``, the names of the
parameters, e.g. ``"min_threshold"``) and never how a user changes them: that is each
adapter's to say in its own terms (a command-line flag, a form field, an environment
variable), with :func:`setting_hint`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence


class CoralsegError(ValueError):
    """Bad input from a user; the message says what was wrong and how to fix it.

    Args:
        message: the sentence.
        settings: the library parameters the error is about, when changing one fixes it.
    """

    def __init__(self, message: str, *, settings: Sequence[str] = ()) -> None:
        super().__init__(message)
        # kept in __dict__, which exceptions pickle along with args (Ray, multiprocessing)
        self.settings = tuple(settings)


def setting_hint(error: BaseException, spell: Callable[[str], str | None], how: str) -> str:
    """``" (how <spelled settings>)"`` for a :class:`CoralsegError` about settings, else ``""``.

    ``spell`` turns a setting name into the adapter's own term, e.g.
    ``lambda s: "--" + s.replace("_", "-")`` for the command line, or None for a setting its
    user cannot change there (left out; no setting left: no hint).
    """
    spelled = [spell(name) for name in getattr(error, "settings", ())]
    spelled = [term for term in spelled if term is not None]
    if not spelled:
        return ""
    return f" ({how} {', '.join(spelled)})"
