"""The two-stage function folder (semantic model + SAM / CoralSCoP)."""
