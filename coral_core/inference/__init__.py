"""Two-stage inference: semantic probabilities (``semantic``), refined into coral instances."""
