"""The semantic-only function folder (colonies = connected regions of one class)."""
