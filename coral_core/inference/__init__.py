"""Two-stage inference: the semantic stage (``semantic``, its compact output ``prediction``,
its scale ``scaling``), refined into coral colonies (``instances``) by ``pipeline``."""
