"""When a CVAT job event starts a pre-annotation run.

What CVAT does (cvat-ai/cvat develop, read 2026: webhooks/signals.py at commit 07a97611;
cited in docs/cvat-bridge.md):

* Opening a job changes nothing on the server. cvat-ui moves a ``new`` job to
  ``in progress`` only after the annotator's first save (``saveAnnotationsAsync``, then
  ``updateCurrentJobAsync``), so a run started by "in progress" alone starts after a person
  drew and saved, in a job they have open.
* ``create:job`` is sent for each job of a new task (``post_save`` of ``Job`` in
  ``cvat/apps/webhooks/signals.py``; the jobs are saved by ``_create_segments_and_jobs`` in
  ``cvat/apps/engine/task.py`` while the task's data is still being prepared), and
  ``update:job`` whenever a job is saved: assignee, stage, state, annotation saves.
* A stage change without an explicit state resets the state to ``new``
  (``JobWriteSerializer.update``).

So a run starts, for an annotation-type job in one of the model's ``stages`` (default: the
annotation stage only), when:

1. the job is created (``create:job``) -- pre-annotation before anyone opens it; the run
   waits until the task's data is ready (:mod:`.annotate`);
2. the job gets an assignee it did not have -- the moment a manager hands the job out;
3. the job becomes ``in progress`` (or is first seen in it) -- CRIOBE's manual trigger: a
   person sets the state by hand in the job menu or on the task page.

Whatever the trigger, a model version annotates a job once (``done:`` records in
:mod:`.job_records`), and the colonies that overlap a person's shapes are not written
(:mod:`.annotate`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from cvat_bridge.events import CREATE_JOB, IN_PROGRESS, JobEvent

ANNOTATION_STAGE = "annotation"
DEFAULT_STAGES = (ANNOTATION_STAGE,)


@dataclass(frozen=True)
class Trigger:
    """Whether an event starts a run, and why (the reason is shown in ``/runs`` and logs)."""

    starts: bool
    reason: str


def decide(known: dict | None, event: JobEvent, stages: Sequence[str]) -> Trigger:
    """Does ``event`` start a run, given the job as last seen (``known``, None if never)?"""
    if not event.is_annotation_job:
        return Trigger(False, f"a {event.type} job, not an annotation job")
    if event.stage not in stages:
        return Trigger(
            False, f"job stage is {event.stage!r}; this model pre-annotates {', '.join(stages)}"
        )
    if event.event == CREATE_JOB:
        return Trigger(True, "job created")
    was_assigned = known is not None and known.get("assignee_id") is not None
    if event.assignee_id is not None and not was_assigned and event.state != "completed":
        return Trigger(True, "job assigned")
    if event.state == IN_PROGRESS and (known is None or known["state"] != IN_PROGRESS):
        return Trigger(True, "job became in progress")
    if event.state == IN_PROGRESS:
        return Trigger(False, "job was already in progress")
    return Trigger(False, f"job state is {event.state!r}")
