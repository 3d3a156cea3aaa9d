"""Worker processes for the batch job: chunks scored on every core, results back to one writer.

Why processes and not threads: validation, features, policy and offers are Python and pandas
(the GIL), and the tree kernels' own thread pools fought the prefetch thread for 2 cores. Each
worker runs one thread (numba, BLAS and OpenMP limited to 1) and scores whole chunks; N workers
use N cores without oversubscribing them.

How:
- Started from multiprocessing's *forkserver*, never plain fork (this process has threads: Arrow,
  OpenBLAS, the compiled forests' pool). The fork server imports the heavy modules once
  (`preload`), so a worker is ready in ~0.1 s instead of the ~3-7 s a spawned interpreter spends
  importing pandas, pyarrow, numba and LightGBM on 2 busy cores (measured); the server lives as
  long as this process, so later pools (tests, a second job) start warm.
- Each worker gets its state once (`setup(payload)`, e.g. an unpickled Scorer), then tasks on its
  own inbox queue, as pickled bytes (so a payload that cannot be pickled fails here, at once); the
  results, and any exception with its type and remote traceback, come back on one outbox.
- The caller bounds what is in flight (`capacity`) and decides the order; this module only moves
  tasks and results. A worker that dies (killed, out of memory) raises `WorkerLost` here; leaving
  the `with` block by an exception (or KeyboardInterrupt / SIGTERM as `Interrupted`) kills every
  worker (SIGKILL: they hold no files) before it returns. Workers ignore SIGINT (Ctrl-C reaches
  the whole process group; the parent decides) and exit on their own if the parent disappears.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import pickle
import queue
import signal
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from pipeline.errors import ConfigError

log = logging.getLogger(__name__)
POLL_SECONDS = 0.5  # how often a waiting side checks that the other is still alive
IN_FLIGHT_PER_WORKER = 2  # one being scored, one queued: a worker never waits, memory stays bounded
_SETUP = "__setup__"


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity, e.g. a container's cpuset), not the machine's."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def resolve_workers(requested: int | None) -> int:
    """None or 0: one worker per available core; otherwise the number asked for."""
    if requested is None or requested == 0:
        return available_cores()
    if isinstance(requested, bool) or not isinstance(requested, int) or requested < 0:
        raise ConfigError(f"--workers must be 0 (every core) or a positive integer, got {requested!r}")
    return requested


class WorkerLost(RuntimeError):
    """A worker process ended without returning its results (killed, out of memory, crashed)."""


class RemoteTraceback(Exception):
    """The traceback of an exception raised in a worker, attached as its `__cause__`."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text

    def __str__(self) -> str:
        return self.text


@dataclass
class Outcome:
    """What a task gave: its value, or the exception it raised (re-raised by `result`)."""

    value: Any = None
    error: BaseException | None = None

    def result(self) -> Any:
        if self.error is not None:
            raise self.error
        return self.value


def _portable(err: BaseException) -> tuple[BaseException, str]:
    """The exception as it can travel (its own type when it pickles) and its formatted traceback."""
    text = "".join(traceback.format_exception(type(err), err, err.__traceback__))
    try:
        pickle.loads(pickle.dumps(err))
        return err, text
    except Exception:  # noqa: BLE001 - any exception that does not survive pickling travels as its text
        return RuntimeError(f"{type(err).__name__}: {err}"), text


def _exit_reason(code: int | None) -> str:
    if code is None:
        return "still running"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"killed by {name}" + (" (out of memory?)" if -code == signal.SIGKILL else "")
    return f"exit code {code}"


def limit_threads() -> object:
    """One thread for numba, BLAS and OpenMP in this process; returns the threadpoolctl limiter (keep it)."""
    from threadpoolctl import threadpool_limits

    limiter = threadpool_limits(limits=1)
    try:
        import numba

        numba.set_num_threads(1)
    except ImportError:  # pragma: no cover - numba is a dependency
        pass
    return limiter


def _send(outbox, key: Any, value: Any = None, error: BaseException | None = None) -> None:
    try:
        data = pickle.dumps((key, value, None if error is None else _portable(error)), protocol=5)
    except Exception as err:  # noqa: BLE001 - a value that cannot be pickled is the task's failure
        data = pickle.dumps((key, None, _portable(err)), protocol=5)
    outbox.put(data)


def _serve(inbox, outbox, setup: Callable[..., Any]) -> None:
    """A worker: take the setup, then tasks, until told to stop (None) or the parent is gone."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    parent = multiprocessing.parent_process()
    limiter = limit_threads()  # noqa: F841 - the limits hold while the object lives
    state = None
    while True:
        try:
            data = inbox.get(timeout=POLL_SECONDS)
        except queue.Empty:
            if parent is not None and not parent.is_alive():
                outbox.cancel_join_thread()  # nobody reads any more: do not wait to flush at exit
                return
            continue
        if data is None:
            return
        key, fn, args = pickle.loads(data)
        try:
            if key == _SETUP:
                state = setup(*args)
                continue
            value = fn(state, *args)
        except BaseException as err:  # noqa: BLE001 - every failure goes back to the parent, with its type
            _send(outbox, key, error=err)
            continue
        _send(outbox, key, value)


class WorkerPool:
    """`n` worker processes; `setup` once per worker, then `submit(key, fn, *args)` and `get()`.

    `fn(state, *args)` runs in a worker (`state` is what `setup` returned there); `fn` and `setup`
    must be module-level functions. Use as a context manager: a clean exit stops the workers, an
    exception kills them.
    """

    def __init__(self, n: int, setup: Callable[..., Any], preload: Iterable[str] = ()) -> None:
        if n < 1:
            raise ValueError(f"a pool needs at least one worker, got {n}")
        ctx = multiprocessing.get_context("forkserver")
        preload = list(preload)
        if preload:
            ctx.set_forkserver_preload(preload)  # read when the server starts (once per process)
        # Read by libgomp when it loads; the server and its workers inherit this process's environment.
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        self.n = n
        self.capacity = n * IN_FLIGHT_PER_WORKER
        self._outbox = ctx.Queue()
        self._inboxes = [ctx.Queue() for _ in range(n)]
        self._load = [0] * n
        self._where: dict[Any, list[int]] = {}
        self._procs = []
        try:
            for i, inbox in enumerate(self._inboxes):
                proc = ctx.Process(
                    target=_serve, args=(inbox, self._outbox, setup), name=f"score-worker-{i}", daemon=True
                )
                proc.start()
                self._procs.append(proc)
        except BaseException:
            self.kill()
            raise

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self._procs if p.pid is not None]

    def setup(self, *args: Any) -> None:
        """Give every worker its state: `setup(*args)` runs once in each (pickled once here)."""
        data = pickle.dumps((_SETUP, None, args), protocol=5)
        for inbox in self._inboxes:
            inbox.put(data)

    def submit(self, key: Any, fn: Callable[..., Any], *args: Any) -> None:
        """Queue `fn(state, *args)` on the least busy worker; its outcome comes back from `get` under `key`."""
        data = pickle.dumps((key, fn, args), protocol=5)
        w = min(range(self.n), key=lambda i: (self._load[i], i))
        self._inboxes[w].put(data)
        self._load[w] += 1
        self._where.setdefault(key, []).append(w)

    def get(self) -> tuple[Any, Outcome]:
        """The next outcome from any worker, as (key, Outcome). Raises `WorkerLost` if a worker died."""
        while True:
            try:
                data = self._outbox.get(timeout=POLL_SECONDS)
            except queue.Empty:
                self._check_alive()
                continue
            key, value, error = pickle.loads(data)
            if error is not None:
                err, text = error
                err.__cause__ = RemoteTraceback(text)
                if key == _SETUP:
                    raise err
            else:
                err = None
            workers = self._where.get(key)
            if workers:
                self._load[workers.pop(0)] -= 1
                if not workers:
                    del self._where[key]
            return key, Outcome(value, err)

    def _check_alive(self) -> None:
        for proc in self._procs:
            if proc.exitcode is not None:
                raise WorkerLost(
                    f"scoring worker process {proc.pid} ended ({_exit_reason(proc.exitcode)}) before returning "
                    "its chunks; no output was published"
                )

    def close(self) -> None:
        """Stop the workers after their current task (a clean end: everything was collected)."""
        for inbox in self._inboxes:
            inbox.put(None)
        for proc in self._procs:
            proc.join(timeout=10)
        self.kill()

    def kill(self) -> None:
        """End every worker now (SIGKILL) and release the queues without waiting on them."""
        for proc in self._procs:
            if proc.exitcode is None:
                proc.kill()
        for proc in self._procs:
            proc.join(timeout=10)
        for q in (*self._inboxes, self._outbox):
            q.cancel_join_thread()
            q.close()

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.kill()
