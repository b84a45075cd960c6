"""The ``coralseg`` command line: a thin adapter over :mod:`coral_core`.

Each command lives in its own module under ``coralseg.commands`` and exposes
``register(subparsers)``; it parses options, calls ``coral_core`` and prints results.
"""
