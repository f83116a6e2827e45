"""Ray isolation: an attempt's operation runs on a node of a Ray cluster.

The host keeps everything but the call: the queue, slots (``max_in_flight``), deadlines,
the stop ladder's timing, retries and records. Each attempt is one plain Ray task
(``actors._execution.ray_driver.run_attempt``) with Ray's retries off; one bridge thread
of the host runs an asyncio loop that submits them and serves the host channel
(``actors._execution.ray_channel``: a TCP listener the attempts' workers connect to,
authenticated by a secret of this back-end), so a Ray task costs no host thread while it
waits for resources or runs, and no Ray actor call. An answer comes on the channel; a
large one, and a failure, is the Ray task's value, which one more thread fetches in
batches (``actors._execution.ray_answers``).

* ``started`` comes from the node, on the channel: a task waiting for resources reads
  ``pending``; ``running`` shows the node and the worker's pid. The node waits for the
  host's ``go`` before it calls the operation: given once ``running`` is committed with
  a durable store, refused when a stop came first, so a task cancelled while it read
  ``pending`` never starts.
* The ladder: the cooperative flag on the channel (progress and a late result still
  flow); ``TaskInterrupted`` in the operation's thread (the channel again); then
  ``ray.cancel(force=True)``, which ends the worker. A task Ray has not started yet is
  cancelled softly at the first step (it never runs).
* Failures are facts: a dead worker or node is :class:`Crashed` with the node and Ray's
  error (Ray reports no exit code or signal); Ray's out-of-memory kill is
  :class:`ResourceExhausted` (``node_memory``); a lost cluster :class:`Interrupted`
  (``ray_unavailable``), and so is a node that could not reach the host's channel
  before its operation started.

The nodes must reach the host on the channel's address: by default the address Ray
knows the driver's node by, on a free port (``channel_address`` names another).

``ray`` is imported on first use (``RayBackend.connect``, through
``actors._execution.ray_cluster``, which also decides which cluster): the base package
works without the ``ray`` extra. What a task's resources mean to Ray, and which no node
could satisfy, is ``actors._execution.ray_resources``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import secrets
import threading
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import pykka

from actors._enums import Isolation
from actors._errors import RayNotInstalledError, RayUnavailableError
from actors._execution.backend import Attempt, AttemptEvents
from actors._execution.loop_inbox import LoopInbox
from actors._execution.ray_answers import Answer, RayAnswers
from actors._execution.ray_attempt import RayAttempt
from actors._execution.ray_channel import HostChannel
from actors._execution.ray_cluster import (
    LOCAL,
    DriverConnection,
    connect_driver,
    import_ray,
    ray_available,
)
from actors._execution.ray_driver import attempt_argument, run_attempt
from actors._execution.ray_node_link import CONNECT_RETRY_SECONDS
from actors._execution.ray_resources import ClusterNodes, ray_task_options
from actors._outcome import Raised, StopReason
from actors._records import TaskSpec
from actors.logs import library_logger

__all__ = ["RayBackend", "RayBackendStats"]

_log = library_logger("actors.ray")
_LOCAL_KEYS = frozenset({"num_cpus", "num_gpus", "resources", "object_store_memory"})


def _channel_address(address: str | None) -> tuple[str | None, int]:
    """``channel_address`` checked: (host or None for the default, port)."""
    if address is None:
        return None, 0
    if not isinstance(address, str):
        raise TypeError(f"channel_address must be a 'host:port' string, got {address!r}")
    host, colon, port_text = address.rpartition(":")
    if not colon or not host or not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ValueError(
            f"channel_address must be 'HOST:PORT' (a port from 0, any free one, to 65535), "
            f"got {address!r}"
        )
    return host.strip("[]"), int(port_text)


async def _call(function: Any) -> Any:
    return function()


def _stop_loop(loop: asyncio.AbstractEventLoop, thread: threading.Thread) -> None:
    loop.call_soon_threadsafe(loop.stop)
    thread.join()
    loop.close()


@dataclass(frozen=True, slots=True)
class RayBackendStats:
    connected: bool
    address: str | None  # the cluster's GCS address once connected
    owns_cluster: bool  # started by this back-end (address="local"), stopped by it
    in_flight: int  # attempts submitted whose stream has not ended
    submitted: int
    progress_items: int  # progress items the nodes sent (coalesced: at most 100 a second)


class RayBackend:
    """Where ``isolation="ray"`` tasks run: give it to the manager
    (``TaskManager(ray=RayBackend(address="local"))``).

    address: ``"local"`` starts a private cluster in this process (``ray.init`` of a
        new local instance) that :meth:`shutdown` stops; ``"host:port"`` (or
        ``"ray://host:port"``) joins that running cluster and leaves it running. Never
        an implicit "join whatever is there". A Ray driver this process already
        connected to the same address is used as it is (and left connected).
    start_local: for ``"local"`` only: ``num_cpus``, ``num_gpus``, ``resources``,
        ``object_store_memory`` (bytes) of the local node.
    namespace, runtime_env: passed to ``ray.init`` (the code and environment remote
        nodes need: Ray's workers do not see the host's environment variables).
    max_in_flight: Ray attempts submitted at once (a slot pool of their own; one that
        waits for resources in Ray's queue holds its slot and reads ``pending``).
    channel_address: ``"host:port"`` the host channel listens on, which every node must
        reach (the attempts' workers connect to it, authenticated by a random secret of
        this back-end). Default: ``127.0.0.1`` for ``"local"``, else the address Ray
        knows the driver's node by; port 0 picks a free one.
    """

    isolation = Isolation.RAY
    starts_on_handover = False
    kill_ends_attempt = True

    def __init__(
        self,
        address: str,
        *,
        start_local: Mapping[str, Any] | None = None,
        namespace: str | None = None,
        runtime_env: Mapping[str, Any] | None = None,
        max_in_flight: int = 64,
        channel_address: str | None = None,
    ) -> None:
        if not isinstance(address, str) or not address.strip() or address.strip() == "auto":
            raise ValueError(
                f"address must be 'local' (a private cluster this back-end starts and "
                f"stops) or a cluster's 'host:port', got {address!r}; joining whatever "
                "cluster is found ('auto', None) is never done"
            )
        if start_local is not None:
            if address != LOCAL:
                raise ValueError(
                    "start_local applies to address='local' only (a joined cluster's nodes "
                    "are its own)"
                )
            unknown = sorted(set(start_local) - _LOCAL_KEYS)
            if unknown:
                raise ValueError(f"unknown start_local keys {unknown}; use {sorted(_LOCAL_KEYS)}")
        if isinstance(max_in_flight, bool) or not isinstance(max_in_flight, int):
            raise TypeError("max_in_flight must be an int")
        if max_in_flight < 1:
            raise ValueError(f"max_in_flight must be at least 1, got {max_in_flight}")
        channel = _channel_address(channel_address)
        if not ray_available():
            raise RayNotInstalledError()
        self.address = address
        self.max_in_flight = max_in_flight
        self._start_local = dict(start_local or {})
        self._namespace = namespace
        self._runtime_env = dict(runtime_env) if runtime_env is not None else None
        self._lock = threading.Lock()
        self._owner: object | None = None  # the runtime it belongs to
        self._registry: pykka.ActorRef[Any] | None = None
        self._name = "ray"
        self._ray: Any = None  # the module, once connected
        self._driver: DriverConnection | None = None  # once connected
        self._channel_wanted = channel
        self._channel: HostChannel | None = None
        self._channel_args: tuple[str, int, bytes] | None = None  # what a node is given
        # How long a node retries a host channel it cannot reach (tests shorten it).
        self._patience = CONNECT_RETRY_SECONDS
        self._keys = itertools.count(1)
        self._run_attempt: Any = None
        self._remotes: dict[frozenset[tuple[str, float]] | None, Any] = {}
        self._inbox: LoopInbox | None = None  # calls into the bridge's loop
        self._answers: RayAnswers | None = None
        self._loop_thread_id: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._cluster_nodes: ClusterNodes | None = None
        # Operations Ray's cloudpickle pickled once (weakly: a lambda may go away).
        self._pickled_operations: weakref.WeakSet[Any] = weakref.WeakSet()
        self._attempts: set[RayAttempt] = set()
        self._submitted = 0
        self._progress_items = 0  # counted on the bridge's loop only
        self._closed = False

    # -- the runtime's side ------------------------------------------------------------

    def attach(self, owner: object, name: str) -> None:
        """Called by the runtime given this back-end; one runtime per back-end."""
        with self._lock:
            if self._owner is not None or self._closed:
                raise ValueError(
                    "this RayBackend already belongs to a task manager (or was shut down "
                    "with it); give each manager a RayBackend of its own"
                )
            self._owner, self._name = owner, name

    def use_registry(self, registry: pykka.ActorRef[Any]) -> None:
        """Where the attempts' progress goes (the runtime's registry, once it runs)."""
        self._registry = registry

    def connect(self) -> None:
        """Connect to the cluster now (else on the first Ray task): ``ray.init``, the
        bridge thread and the host channel. Idempotent."""
        with self._lock:
            if self._closed:
                raise RayUnavailableError("the Ray back-end was shut down with its manager")
            if self._loop is not None:
                return
            ray = import_ray()
            self._driver = connect_driver(
                ray, self.address, namespace=self._namespace, runtime_env=self._runtime_env,
                start_local=self._start_local,
            )  # fmt: skip
            self._cluster_nodes = ClusterNodes(ray)
            loop: asyncio.AbstractEventLoop | None = None
            thread: threading.Thread | None = None
            try:
                # Ray's retries off: ours decide (a crash is retried 3 times by default,
                # an out-of-memory kill without limit).
                self._run_attempt = ray.remote(max_retries=0, retry_exceptions=False)(run_attempt)
                loop = asyncio.new_event_loop()
                thread = threading.Thread(
                    target=loop.run_forever, name=f"{self._name}-bridge", daemon=True
                )
                thread.start()
                self._open_channel(ray, loop)
                self._loop_thread_id = thread.ident
            except BaseException:
                if loop is not None and thread is not None:
                    _stop_loop(loop, thread)
                self._disconnect(ray)
                raise
            self._ray, self._loop, self._thread = ray, loop, thread
            self._inbox = LoopInbox(loop)
            self._answers = RayAnswers(ray, self._answered, self._name)

    def _open_channel(self, ray: Any, loop: asyncio.AbstractEventLoop) -> None:
        host, port = self._channel_wanted
        if host is None:
            owns = self._driver is not None and self._driver.owns
            host = "127.0.0.1" if owns else ray.util.get_node_ip_address()
        secret = secrets.token_bytes(32)
        channel = HostChannel(secret)
        opening = asyncio.run_coroutine_threadsafe(channel.open(host, port), loop)
        try:
            _, bound_port = opening.result(timeout=30)
        except OSError as exc:
            raise RayUnavailableError(
                f"the Ray back-end's host channel could not listen on {host}:{port} ({exc}); "
                "pass channel_address='HOST:PORT' with an address of this machine the "
                "cluster's nodes can reach"
            ) from exc
        self._channel = channel
        # Every interface: the nodes are told the address Ray knows this node by.
        told = ray.util.get_node_ip_address() if host in {"0.0.0.0", "::"} else host
        self._channel_args = (told, bound_port, secret)

    def _disconnect(self, ray: Any) -> None:
        if self._driver is not None:
            self._driver.close(ray)

    def check(
        self, operation: Any, operation_name: str, params: Any, resources: Any = None
    ) -> None:
        """At ``create_task``: the operation and params must pickle (Ray's cloudpickle),
        and some node of the cluster must have the resources asked for."""
        if self._loop is None:
            self.connect()
        ray = self._ray
        try:
            # An operation that pickled once pickles again: checked once (the per-task
            # path); params every time, unless there are none.
            if not self._pickled_before(operation):
                ray.cloudpickle.dumps(operation)
                self._remember_pickled(operation)
            if params:
                ray.cloudpickle.dumps(params)
        except Exception as exc:
            raise TypeError(
                f"operation {operation_name!r} or its params cannot be pickled for "
                f"isolation='ray' ({exc}); use a module-level function importable on the "
                "cluster's nodes and plain data"
            ) from None
        assert self._cluster_nodes is not None
        self._cluster_nodes.refuse_unless_feasible(resources)

    def _pickled_before(self, operation: Any) -> bool:
        try:
            return operation in self._pickled_operations
        except TypeError:  # not weakly referable: checked every time
            return False

    def _remember_pickled(self, operation: Any) -> None:
        with contextlib.suppress(TypeError):
            self._pickled_operations.add(operation)

    def start(self, spec: TaskSpec, events: AttemptEvents) -> Attempt:
        assert self._registry is not None, "attach() first"
        attempt = RayAttempt(spec, self._registry, events, self)
        try:
            if self._inbox is None:
                self.connect()
            assert self._inbox is not None
            with self._lock:
                self._attempts.add(attempt)
                self._submitted += 1
            self._inbox.put(attempt.begin)
        except Exception as exc:
            events.ended(Raised.from_exception(exc))
        return attempt

    def dumps(self, value: Any) -> bytes:
        """Ray's cloudpickle: a function of ``__main__`` travels by value, others by name."""
        return bytes(self._ray.cloudpickle.dumps(value))

    def count_progress(self) -> None:
        self._progress_items += 1  # on the bridge's loop only

    def attempt_over(self, attempt: RayAttempt) -> None:
        with self._lock:
            self._attempts.discard(attempt)

    def statistics(self) -> RayBackendStats:
        with self._lock:
            return RayBackendStats(
                connected=self._loop is not None,
                address=None if self._driver is None else self._driver.gcs_address,
                owns_cluster=self._driver is not None and self._driver.owns,
                in_flight=len(self._attempts),
                submitted=self._submitted,
                progress_items=self._progress_items,
            )

    def shutdown(self) -> None:
        """Stop the bridge, the host channel and (address="local") the cluster; a joined
        cluster and a driver connection this back-end did not make are left as they
        are. Never ``ray stop`` (it kills every Ray process of the machine)."""
        with self._lock:
            self._closed = True
            loop, thread, ray = self._loop, self._thread, self._ray
            self._loop = self._thread = None
            self._inbox = None
            answers, self._answers = self._answers, None
            left = list(self._attempts)
        for attempt in left:  # only after a supervisor failure: nothing may run on
            attempt.kill(StopReason.SHUTDOWN)
        if answers is not None:
            answers.close()
        if loop is not None and thread is not None:
            channel = self._channel
            if channel is not None:
                closing = asyncio.run_coroutine_threadsafe(channel.close(), loop)
                try:
                    closing.result(timeout=10)
                except Exception as exc:  # the loop stops anyway
                    _log.debug("ray.channel_close_failed", error=str(exc))
            _stop_loop(loop, thread)
        if ray is not None:
            with self._lock:
                self._disconnect(ray)

    # -- for the attempts (the bridge's loop) ------------------------------------------

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        assert self._loop is not None
        return self._loop

    @property
    def closed(self) -> bool:
        """Shut down (with its manager): nothing more is submitted."""
        return self._closed

    def new_key(self) -> int:
        return next(self._keys)  # itertools.count: atomic under the GIL

    def call_soon(self, call: Callable[[], object]) -> None:
        """Run ``call`` on the bridge's loop (from any thread)."""
        inbox = self._inbox
        if inbox is not None:
            inbox.put(call)

    def watch(self, ref: Any, attempt: RayAttempt) -> None:
        assert self._answers is not None
        self._answers.watch(ref, attempt)

    def unwatch(self, ref: Any) -> None:
        """``ref``'s answer came another way (on the channel): not fetched from Ray."""
        answers = self._answers
        if answers is not None:
            answers.unwatch(ref)

    def hint(self, ref: Any) -> None:
        """``ref`` is about to answer (from any thread)."""
        answers = self._answers
        if answers is not None:
            answers.hint(ref)

    def _answered(self, answers: list[Answer]) -> None:
        """A batch of Ray answers (RayAnswers' thread): onto the loop, one call each
        (one wake-up of the loop for the batch)."""
        for attempt, value, error in answers:
            self.call_soon(functools.partial(attempt.ray_answered, value, error))

    def submit(self, spec: TaskSpec, work: bytes, key: int) -> Any:
        resources = spec.options.resources
        wanted = frozenset(resources.items()) if resources else None
        remote = self._remotes.get(wanted)
        if remote is None:  # Ray's .options() builds a new wrapper: one per resources
            options = ray_task_options(resources)
            if self._runtime_env is not None:
                options["runtime_env"] = self._runtime_env
            remote = self._remotes[wanted] = self._run_attempt.options(**options)
        assert self._channel_args is not None
        return remote.remote(
            attempt_argument(key, spec.task_id, work, self._channel_args, self._patience)
        )

    def listen(self, key: int, attempt: RayAttempt) -> None:
        assert self._channel is not None
        self._channel.attach(key, attempt)

    def post(self, message: tuple[Any, ...]) -> None:
        """To the node of attempt ``message[1]`` (fire and forget; from any thread)."""
        channel, inbox = self._channel, self._inbox
        if channel is None or inbox is None:
            return  # shut down: the attempt's end says so
        if threading.get_ident() == self._loop_thread_id:
            channel.send(message)  # the node's go, from the loop itself
        else:
            inbox.put(lambda: channel.send(message))

    def forget(self, key: int) -> None:
        if self._channel is not None:
            self._channel.detach(key)

    def cancel(self, ref: Any, *, force: bool) -> None:
        try:
            self._ray.cancel(ref, force=force)
        except Exception as exc:  # ended meanwhile, or the cluster is gone
            _log.debug("ray.cancel_failed", force=force, error=str(exc))

    def channel_size(self) -> int:
        """How many attempts the host channel holds (for tests: none once all ended)."""
        loop, channel = self._loop, self._channel
        assert loop is not None
        assert channel is not None
        asking = asyncio.run_coroutine_threadsafe(_call(channel.size), loop)
        return int(asking.result(timeout=30))

    def close_channel(self) -> None:
        """Close the host channel and break every node's connection to it (for tests:
        the host out of the nodes' reach); the back-end carries on without one."""
        loop, channel = self._loop, self._channel
        assert loop is not None
        assert channel is not None
        asyncio.run_coroutine_threadsafe(channel.close(), loop).result(30)

    def exceptions(self) -> Any:
        return self._ray.exceptions
