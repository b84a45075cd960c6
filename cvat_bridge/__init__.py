"""The CVAT bridge: a web service whose webhook pre-annotates a CVAT job with a coralseg model
when the job is created, assigned or set "in progress", durably, once, and without touching
people's shapes.

Modules, one job each:

* :mod:`.settings` -- configuration from the environment / ``.env`` (secrets never shown);
* :mod:`.registry` -- ``model_name`` -> config, weights, SAM checkpoint; predictors loaded
  lazily and cached; a model's *version* is part of a run's key;
* :mod:`.signature` -- CVAT's ``X-Signature-256`` check over the raw body;
* :mod:`.events` -- webhook bodies read into :class:`~.events.JobEvent`;
* :mod:`.triggers` -- which job events start a run (creation, assignment, "in progress");
* :mod:`.kv` -- durable JSON documents with atomic updates, on SQLite or Redis, with
  timeouts, and state-file errors as sentences;
* :mod:`.state` -- what the bridge remembers, one module per concept: :mod:`.job_records`
  (jobs' last seen states, decisions, run keys), :mod:`.run_records` (runs and their leases),
  :mod:`.ledger` (the model's shapes and how they looked), :mod:`.cluster_records` (leases,
  worker heartbeats);
* :mod:`.queue` -- the huey queue (SQLite embedded, Redis to scale out);
* :mod:`.storage` -- records and queue opened and checked (durability included);
* :mod:`.cvat_io` -- the CVAT calls, through cvat-sdk, with timeouts and retries;
* :mod:`.uploads` -- shapes to upload (from :mod:`coral_core.formats.cvat_shapes`), fingerprints;
* :mod:`.annotate` -- one resumable run; :mod:`.reconcile` -- job changes not heard;
* :mod:`.worker` -- a worker process (consumer + recovery + reconciliation);
* :mod:`.supervisor` -- local workers restarted with backoff, their runs given back;
* :mod:`.app` -- the FastAPI service; :mod:`.service` -- ``coralseg bridge``'s processes.

It never imports ``fiftyone_plugin`` or ``nuclio_functions``.
"""
