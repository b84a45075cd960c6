"""Units of work run in this process or spread over the workers of a Ray cluster.

A *unit* is any picklable description of one piece of work (a photo, a tile of an
orthomosaic). ``make_worker()`` builds what does the work (it loads a model, say) and returns
a callable that does one unit and returns a picklable result. :func:`run_units` yields one
:class:`UnitOutcome` per unit, as units finish, in any order:

* without a cluster, ``make_worker()`` is called once here and the units run one by one;
* with a cluster (:class:`ClusterOptions`), each worker is a Ray actor that calls
  ``make_worker()`` once (one model copy per worker) and then does units sent to it one at a
  time. A unit whose worker dies (its node killed, out of memory) is sent to another worker,
  up to ``max_attempts`` times; the dead worker is replaced where the cluster has room.

A unit that raises is a failed outcome with the error in one line; the other units go on.
Ray Core actors, not Ray Data: a unit writes its own outputs, so what the runner needs is a
pool of long-lived workers holding a model each, and per-unit retries and failure reports;
that is what actors give, with nothing between the units and the files.

This is the only module that imports ``ray`` (an optional dependency: ``coralseg[ray]``),
and only inside functions.
"""

from __future__ import annotations

import collections
import importlib.util
import logging
import socket
import time
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from coral_core.errors import CoralsegError

log = logging.getLogger(__name__)
Unit = TypeVar("Unit")

LOCAL = "local"  # a private cluster started by this process on this machine
AUTO = "auto"  # the cluster already running on this machine (``ray start --head``)
CLIENT_PREFIX = "ray://"  # Ray Client: the driver runs outside the cluster
# How long a head's port may take to accept a connection before a HOST:PORT address is
# refused. Ray's own attempt retries for minutes, printing its logs, and ignores Ctrl-C.
REACH_TIMEOUT = 10.0


@dataclass(frozen=True)
class ClusterOptions:
    """Where and how wide to run.

    Attributes:
        address: ``"local"`` (start a private Ray instance here), ``"auto"`` (the cluster this
            machine belongs to), ``"HOST:PORT"`` (a cluster's head, from a node of it) or
            ``"ray://HOST:PORT"`` (Ray Client, from outside the cluster).
        workers: how many workers; None: as many as the cluster's CPUs (or GPUs) hold.
        cpus_per_worker: CPUs reserved by each worker (its threads, on a CPU).
        gpus_per_worker: GPUs reserved by each worker (0.5: two workers share a GPU).
        max_attempts: tries of a unit whose worker dies under it.
        start_timeout: seconds to wait for a worker when none is left running.
    """

    address: str = LOCAL
    workers: int | None = None
    cpus_per_worker: float = 1.0
    gpus_per_worker: float = 0.0
    max_attempts: int = 3
    start_timeout: float = 600.0

    def __post_init__(self) -> None:
        if not self.address:
            raise ValueError("a cluster address is 'local', 'auto', HOST:PORT or ray://HOST:PORT")
        if self.workers is not None and self.workers < 1:
            raise ValueError(f"workers must be at least 1, got {self.workers}")
        if self.cpus_per_worker <= 0 or self.gpus_per_worker < 0:
            raise ValueError(
                f"cpus_per_worker must be > 0 and gpus_per_worker >= 0, got "
                f"{self.cpus_per_worker} and {self.gpus_per_worker}"
            )
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, got {self.max_attempts}")


@dataclass(frozen=True)
class UnitOutcome(Generic[Unit]):
    """What became of one unit.

    Attributes:
        unit: the unit as given.
        result: what the worker returned (None when it failed).
        error: the failure in one line, or None when the unit succeeded.
        worker: which worker did it, in words (``"this process"``, ``"worker 2 on 10.0.0.5"``).
    """

    unit: Unit
    result: Any = None
    error: str | None = None
    worker: str = "this process"

    @property
    def ok(self) -> bool:
        return self.error is None


def describe_error(err: BaseException) -> str:
    """An exception in one line: its message, prefixed by its type unless it is a
    :class:`CoralsegError` (whose message is already a sentence for the user)."""
    text = " ".join(str(err).split()) or repr(err)
    return text if isinstance(err, CoralsegError) else f"{type(err).__name__}: {text}"


def run_units(
    units: Sequence[Unit],
    make_worker: Callable[[], Callable[[Unit], Any]],
    cluster: ClusterOptions | None = None,
) -> Generator[UnitOutcome[Unit], None, None]:
    """Do every unit; yield their outcomes as they finish (see the module docstring). Close
    the generator to stop early: a cluster's workers are stopped then.

    Raises:
        CoralsegError: ``ray`` is not installed, or the cluster cannot be reached.
    """
    if cluster is None:
        return _run_here(units, make_worker)
    return _run_on_cluster(units, make_worker, cluster)


def _run_here(
    units: Sequence[Unit], make_worker: Callable[[], Callable[[Unit], Any]]
) -> Generator[UnitOutcome[Unit], None, None]:
    if not units:
        return
    work = make_worker()
    for unit in units:
        yield _attempt(work, unit, "this process")


def _attempt(work: Callable[[Unit], Any], unit: Unit, worker: str) -> UnitOutcome[Unit]:
    try:
        return UnitOutcome(unit, work(unit), None, worker)
    except Exception as err:  # one unit's failure is reported; the others go on
        return UnitOutcome(unit, None, describe_error(err), worker)


class _Worker:
    """The body of a Ray actor: one ``make_worker()`` result, used for unit after unit."""

    def __init__(self, make_worker: Callable[[], Callable[[Any], Any]], number: int) -> None:
        self.name = f"worker {number} on {_node_address()}"
        self.work: Callable[[Any], Any] | None = None
        self.error: str | None = None
        try:
            self.work = make_worker()
        except Exception as err:  # said by ready(): a worker that cannot start is not retried
            self.error = describe_error(err)

    def ready(self) -> tuple[str, str | None]:
        """This worker's name, and why it cannot work (None: it can)."""
        return self.name, self.error

    def run(self, unit: Any) -> UnitOutcome:
        return _attempt(self.work, unit, self.name)


def _node_address() -> str:
    import ray

    try:
        return ray.util.get_node_ip_address()
    except Exception:  # only a name in messages: the host name does as well
        return socket.gethostname()


_NO_RAY = "running on a cluster needs Ray: pip install 'coralseg[ray]' (or 'ray[default]')"


def _import_ray():
    try:
        import ray
    except ImportError as err:
        raise CoralsegError(_NO_RAY) from err
    return ray


def check_address(address: str) -> str:
    """``address`` without surrounding spaces, when it has the form of an address
    :class:`ClusterOptions` takes and Ray is installed (nothing is contacted: a form checks
    it as it is typed).

    Raises:
        CoralsegError: the address is malformed (the sentence shows the forms), or Ray is
            missing.
    """
    text = address.strip()
    if text not in (LOCAL, AUTO):
        host, _, port = text.removeprefix(CLIENT_PREFIX).rpartition(":")
        valid_port = port.isdigit() and 0 < int(port) < 2**16
        if not host or any(c in host for c in "/ ") or not valid_port:
            raise CoralsegError(
                f"{address!r} is not a Ray cluster address: give 'local' (a Ray instance on "
                "this machine), 'auto' (the cluster this machine is a node of), HOST:PORT (its "
                "head, e.g. head-node:6379) or ray://HOST:PORT (Ray Client, e.g. "
                "ray://head-node:10001)"
            )
    if importlib.util.find_spec("ray") is None:
        raise CoralsegError(_NO_RAY)
    return text


def connect(address: str, ray=None) -> bool:
    """Connect this process to the cluster at ``address`` (see :class:`ClusterOptions`).

    Returns whether this call connected (False: already connected, left as it was).

    Raises:
        CoralsegError: the address is malformed, Ray is missing or nothing answers at
            ``address``.
    """
    address = check_address(address)
    ray = ray or _import_ray()
    if ray.is_initialized():
        return False
    _probe_head(address)
    # Workers' own output (library warnings) would break the progress line; failures come
    # back with their units.
    settings: dict[str, Any] = {"logging_level": logging.WARNING, "log_to_driver": False}
    if address == LOCAL:
        settings["include_dashboard"] = False
    else:
        settings["address"] = address
    try:
        try:
            ray.init(**settings)
        except Exception as err:
            if not _client_server_failed(address, err):
                raise
            # The head starts a server process for each Ray Client; when that start fails,
            # a new connection gets a new one. Once, so a real fault still ends the run.
            log.warning("Ray Client at %s: %s; trying again", address, describe_error(err))
            ray.init(**settings)
    except Exception as err:  # Ray raises ConnectionError, RuntimeError, ... by cause
        raise CoralsegError(
            f"cannot reach the Ray cluster at {address}: {describe_error(err)}; start one "
            "with 'ray start --head', or use 'local' for a private one on this machine",
            settings=("cluster",),
        ) from err
    return True


def _client_server_failed(address: str, err: BaseException) -> bool:
    """Whether ``err`` says the head could not start this Ray Client's server process (the
    message the proxier's ``Datapath`` raises in ``ray/util/client/server/proxier.py``,
    Ray 2.60.0)."""
    return address.startswith(CLIENT_PREFIX) and "Starting Ray client server failed" in str(err)


def check_reachable(address: str) -> str:
    """``address`` checked as :func:`check_address` does, and refused when it is a HOST:PORT
    whose port accepts no TCP connection within :data:`REACH_TIMEOUT`: Ray's own attempt on
    such a head retries for minutes, printing its logs and ignoring Ctrl-C. ``local`` and
    ``auto`` are Ray's to find; a Ray Client (``ray://``) address is left to Ray Client, which
    gives up on its own within about 30 s, and whose head is not contacted twice.

    Raises:
        CoralsegError: the address is malformed, Ray is missing or nothing answers.
    """
    address = check_address(address)
    _probe_head(address)
    return address


def _probe_head(address: str) -> None:
    """The TCP check of :func:`check_reachable`, on an address of a valid form."""
    if address in (LOCAL, AUTO) or address.startswith(CLIENT_PREFIX):
        return
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=REACH_TIMEOUT):
            pass
    except OSError as err:
        raise CoralsegError(
            f"nothing answers at {address} ({describe_error(err)}): start the cluster's head "
            "there ('ray start --head'), or fix the address; 'local' starts a private cluster "
            "on this machine",
            settings=("cluster",),
        ) from None


def describe_cluster(address: str) -> str:
    """Connect to the cluster at ``address``, describe it in one line, disconnect.

    Raises:
        CoralsegError: Ray is missing or nothing answers at ``address``.
    """
    ray = _import_ray()
    connected = connect(address, ray)
    try:
        nodes = [node for node in ray.nodes() if node.get("Alive")]
        total = ray.cluster_resources()
        return (
            f"{len(nodes)} node(s), {total.get('CPU', 0):g} CPU(s), {total.get('GPU', 0):g} "
            f"GPU(s) at {address} (Ray {ray.__version__})"
        )
    finally:
        if connected:
            ray.shutdown()


def _worker_count(ray, options: ClusterOptions) -> int:
    if options.workers is not None:
        return options.workers
    total = ray.cluster_resources()
    if options.gpus_per_worker > 0:
        if not total.get("GPU"):
            raise CoralsegError(
                "the cluster has no GPU: run on a CPU or add GPU nodes", settings=("device",)
            )
        return max(1, int(total["GPU"] / options.gpus_per_worker + 1e-9))
    return max(1, int(total.get("CPU", 1) / options.cpus_per_worker + 1e-9))


def _run_on_cluster(
    units: Sequence[Unit],
    make_worker: Callable[[], Callable[[Unit], Any]],
    options: ClusterOptions,
) -> Generator[UnitOutcome[Unit], None, None]:
    if not units:
        return
    ray = _import_ray()
    connected = connect(options.address, ray)
    pool = _Pool(ray, make_worker, options)
    try:
        pool.start(min(_worker_count(ray, options), len(units)))
        yield from pool.run(units)
    finally:
        pool.stop()
        if connected:
            ray.shutdown()


class _Pool:
    """Workers (Ray actors) kept busy with one unit each; dead ones replaced."""

    def __init__(self, ray, make_worker, options: ClusterOptions) -> None:
        self.ray = ray
        self.options = options
        self.make_worker = ray.put(make_worker)
        self.actor_class = ray.remote(_Worker).options(
            num_cpus=options.cpus_per_worker,
            num_gpus=options.gpus_per_worker,
            max_restarts=0,  # a dead worker's unit is retried here, on a live worker
            max_task_retries=0,
        )
        self.wanted = 0
        self.started = 0
        self.replacements = 0
        self.starting: dict[Any, Any] = {}  # ready() reference -> actor
        self.idle: list[tuple[Any, str]] = []  # (actor, name)
        self.running: dict[Any, tuple[Any, str, Any]] = {}  # run() reference -> (actor, ...)
        self.last_start_error = ""

    def start(self, count: int) -> None:
        self.wanted = count
        for _ in range(count):
            self._start_one()

    def _start_one(self) -> None:
        self.started += 1
        actor = self.actor_class.remote(self.make_worker, self.started)
        self.starting[actor.ready.remote()] = actor

    def _replace(self) -> None:
        # Each worker may be lost a few times (nodes lost); beyond that, stop replacing them.
        if self.replacements < self.wanted * self.options.max_attempts:
            self.replacements += 1
            self._start_one()

    def run(self, units: Sequence[Unit]) -> Iterator[UnitOutcome[Unit]]:
        ray = self.ray
        lost = (ray.exceptions.RayActorError, ray.exceptions.WorkerCrashedError)
        queue = collections.deque(enumerate(units))
        attempts: collections.Counter = collections.Counter()
        waited_since = time.monotonic()
        while queue or self.running:
            while queue and self.idle:
                actor, name = self.idle.pop()
                index, unit = queue.popleft()
                self.running[actor.run.remote(unit)] = (actor, name, (index, unit))
            references = [*self.starting, *self.running]
            if not references:
                yield from self._give_up(queue, "no worker could be started")
                return
            done, _ = ray.wait(references, num_returns=1, timeout=5.0)
            if not done:
                waited = time.monotonic() - waited_since
                if not self.running and waited > self.options.start_timeout:
                    reason = f"no worker started within {self.options.start_timeout:g}s"
                    yield from self._give_up(queue, reason)
                    return
                continue
            waited_since = time.monotonic()
            reference = done[0]
            if reference in self.starting:
                actor = self.starting.pop(reference)
                try:
                    name, error = ray.get(reference)
                except lost:  # its node died while it started
                    self._replace()
                    continue
                if error is None:
                    self.idle.append((actor, name))
                else:
                    self.last_start_error = f"{name}: {error}"
                    ray.kill(actor)
                continue
            actor, name, (index, unit) = self.running.pop(reference)
            try:
                outcome = ray.get(reference)
            except lost as err:
                attempts[index] += 1
                if attempts[index] < self.options.max_attempts:
                    queue.appendleft((index, unit))
                else:
                    reason = f"its worker died {attempts[index]} times ({describe_error(err)})"
                    yield UnitOutcome(unit, None, reason, name)
                self._replace()
                continue
            except Exception as err:  # the result could not come back, e.g. unpicklable
                outcome = UnitOutcome(unit, None, describe_error(_cause(err)), name)
            self.idle.append((actor, name))
            yield outcome

    def _give_up(self, queue: collections.deque, reason: str) -> Iterator[UnitOutcome]:
        if self.last_start_error:
            reason = f"{reason}: {self.last_start_error}"
        while queue:
            yield UnitOutcome(queue.popleft()[1], None, reason, "no worker")

    def stop(self) -> None:
        actors = [a for a, _ in self.idle] + [a for a, _, _ in self.running.values()]
        for actor in [*actors, *self.starting.values()]:
            try:
                self.ray.kill(actor)
            except Exception:  # already gone with its node
                continue


def _cause(err: BaseException) -> BaseException:
    """The user's exception inside Ray's wrapper (``RayTaskError.cause``), if any."""
    return getattr(err, "cause", None) or err
