"""Two-stage inference: the semantic stage (``semantic``, its compact output ``prediction``,
its scale ``scaling``), refined into coral colonies (``instances``) by ``pipeline``.

Also here: SAM and CoralSCoP checkpoints and batched prompting (``sam_models``, with the
windowed mask upscaling of ``sam_upscaling``), overlays a person can read (``overlay``) and
the CPU's floating-point mode for inference (``cpu_math``).
"""
