"""The CVAT bridge: a web service whose webhook pre-annotates a CVAT job with a coralseg model
when the job moves to "in progress", durably, once, and without touching people's shapes.

Modules, one job each:

* :mod:`.settings` -- configuration from the environment / ``.env`` (secrets never shown);
* :mod:`.registry` -- ``model_name`` -> config, weights, SAM checkpoint; predictors loaded
  lazily and cached; a model's *version* is part of a run's key;
* :mod:`.signature` -- CVAT's ``X-Signature-256`` check over the raw body;
* :mod:`.events` -- webhook bodies read into :class:`~.events.JobEvent`;
* :mod:`.kv` -- durable JSON documents with atomic updates, on SQLite or Redis;
* :mod:`.state` -- jobs' last seen states, runs, leases and the ledger of the model's shapes;
* :mod:`.queue` -- the huey queue (SQLite embedded, Redis to scale out);
* :mod:`.cvat_io` -- the CVAT calls, through cvat-sdk, with timeouts and retries;
* :mod:`.uploads` -- frame decoding, shapes to upload (from :mod:`coral_core.cvat_shapes`),
  fingerprints;
* :mod:`.annotate` -- one resumable run; :mod:`.reconcile` -- jobs missed while down;
* :mod:`.worker` -- a worker process (consumer + recovery + reconciliation);
* :mod:`.app` -- the FastAPI service; :mod:`.service` -- ``coralseg bridge``'s processes.

It never imports ``fiftyone_plugin`` or ``nuclio_functions``.
"""
