"""One module per ``coralseg`` sub-command, each with ``register(subparsers)``.

Modules here are found by ``coralseg.cli`` automatically; keep heavy imports (torch,
fiftyone, mmseg) inside the functions that run a command so that ``--help`` stays fast.
"""
