"""The exception type for mistakes a user can fix (bad input, bad files, bad options).

Command-line and service adapters print these as one sentence instead of a traceback;
anything else is a bug and keeps its traceback.
"""


class CoralsegError(ValueError):
    """Bad input from a user; the message says what was wrong and how to fix it."""
