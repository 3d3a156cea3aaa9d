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
  own pipe, as pickled bytes (so a payload that cannot be pickled fails here, at once); the
  results, and any exception with its type and remote traceback, come back on its result pipe.
- The caller bounds what is in flight (`capacity`) and decides the order; this module only moves
  tasks and results. A worker that dies (killed, out of memory) raises `WorkerLost` here; leaving
  the `with` block by an exception (or KeyboardInterrupt / SIGTERM as `Interrupted`) kills every
  worker (SIGKILL: they hold no files) before it returns. Workers ignore SIGINT (Ctrl-C reaches
  the whole process group; the parent decides) and exit at once if the parent disappears.
- A worker's log records (at the job's level) travel with its next result and are handled here by
  the logger of the same name, so they reach the job's log with its format and handlers, marked by
  the worker's process name (`record.processName`); without this they went to bare stderr, or nowhere.
"""

from __future__ import annotations

import logging
import multiprocessing
import multiprocessing.connection
import multiprocessing.context
import os
import pickle
import queue
import signal
import threading
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from pipeline.batch.frames import Frame, pack, read_frame, write_frame
from pipeline.cores import available_cores
from pipeline.errors import ConfigError

__all__ = ["Outcome", "WorkerLost", "WorkerPool", "available_cores", "limit_threads", "resolve_workers"]

log = logging.getLogger(__name__)
IN_FLIGHT_PER_WORKER = 2  # one being scored, one queued: a worker never waits, memory stays bounded
_SETUP = "__setup__"


def resolve_workers(requested: int | None) -> int:
    """None or 0: one worker per available core; otherwise the number asked for. Where the message frames
    cannot run (no `os.readv` on the pipes' file descriptors: Windows), the job's own process (1)."""
    if requested is not None and (isinstance(requested, bool) or not isinstance(requested, int) or requested < 0):
        raise ConfigError(f"--workers must be 0 (every core) or a positive integer, got {requested!r}")
    wanted = requested or available_cores()
    if wanted > 1 and not hasattr(os, "readv"):
        log.warning("worker processes need Unix pipes (os.readv); scoring in this process")
        return 1
    return wanted


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
    """One thread for numba, BLAS and OpenMP in this process; returns the threadpoolctl limiter (keep it).

    numba first: setting its thread count starts its threading layer, which loads an OpenMP
    runtime of its own; threadpoolctl then limits every runtime loaded by then, that one too.
    """
    from threadpoolctl import threadpool_limits

    try:
        import numba

        numba.set_num_threads(1)
    except ImportError:  # pragma: no cover - numba is a dependency
        pass
    return threadpool_limits(limits=1)


def _watch_parent() -> None:
    """End this worker as soon as the job's process is gone (killed with SIGKILL, say): no orphans."""
    parent = multiprocessing.parent_process()
    if parent is None:  # pragma: no cover - always a child here
        return
    multiprocessing.connection.wait([parent.sentinel])
    os._exit(1)


class _KeptRecords(logging.Handler):
    """A worker's log records, made plain (message formatted, traceback as text) to travel to the job."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            fields = {k: v for k, v in vars(record).items() if isinstance(v, str | int | float | type(None))}
            fields.update(msg=record.getMessage(), args=None, exc_info=None)  # primitives only: always pickles
            if record.exc_info:
                fields["exc_text"] = logging.Formatter().formatException(record.exc_info)
            self.records.append(logging.makeLogRecord(fields))
        except Exception:  # noqa: BLE001 - logging must never fail the task
            self.handleError(record)

    def take(self) -> list[logging.LogRecord]:
        records, self.records = self.records, []
        return records


def _keep_records(level: int) -> _KeptRecords:
    """Route every record of this worker at `level` or above to one `_KeptRecords` (and nowhere else)."""
    kept = _KeptRecords()
    root = logging.getLogger()
    root.handlers[:] = [kept]
    root.setLevel(level)
    return kept


def _replay(records: list[logging.LogRecord]) -> None:
    """A worker's records, handled here as if logged here (the job's handlers and format, its loggers' levels)."""
    for record in records:
        logger = logging.getLogger(record.name)
        if logger.isEnabledFor(record.levelno):
            logger.handle(record)


def _message(key: Any, value: Any = None, error: BaseException | None = None, records: list | None = None) -> Frame:
    records = records or []
    try:
        return pack((key, value, None if error is None else _portable(error), records))
    except Exception as err:  # noqa: BLE001 - a value that cannot be pickled is the task's failure
        return pack((key, None, _portable(err), records))


def _serve(tasks: Connection, results: Connection, setup: Callable[..., Any], log_level: int) -> None:
    """A worker: take the setup, then tasks, until told to stop (a None message) or the parent is gone."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    kept = _keep_records(log_level)
    threading.Thread(target=_watch_parent, name="watch-parent", daemon=True).start()
    limiter = limit_threads()  # noqa: F841 - the limits hold while the object lives
    state = None
    while True:
        try:
            task = read_frame(tasks.fileno())
        except EOFError:  # the parent closed its end: nothing more will come
            return
        if task is None:
            return
        key, fn, args = task
        try:
            if key == _SETUP:
                state = setup(*args)
                continue
            value = fn(state, *args)
            message = _message(key, value, records=kept.take())
        except BaseException as err:  # noqa: BLE001 - every failure goes back to the parent, with its type
            message = _message(key, error=err, records=kept.take())
        try:
            write_frame(results.fileno(), message)
        except OSError:  # the parent is gone
            return


class _Sender(threading.Thread):
    """Writes one worker's tasks to its pipe, so the job never blocks on a worker still busy with a chunk."""

    def __init__(self, conn: Connection, name: str) -> None:
        super().__init__(name=f"{name}-sender", daemon=True)
        self.conn = conn
        self.queue: queue.SimpleQueue = queue.SimpleQueue()

    def run(self) -> None:
        while True:
            frame = self.queue.get()
            if frame is None:
                return
            try:
                write_frame(self.conn.fileno(), frame)
            except OSError:  # the worker is gone (its end closed): `WorkerPool.get` reports it
                return


@dataclass
class _Worker:
    proc: Any  # multiprocessing Process
    sender: _Sender
    results: Connection
    load: int = 0


class WorkerPool:
    """`n` worker processes; `setup` once per worker, then `submit(key, fn, *args)` and `get()`.

    `fn(state, *args)` runs in a worker (`state` is what `setup` returned there); `fn` and `setup`
    must be module-level functions. Each worker has a pipe for its tasks (written by a thread here)
    and one for its results; this process keeps no copy of a worker's ends, so either side's death
    is an end of file or a broken pipe to the other, never a hang. Use as a context manager: a clean
    exit stops the workers, an exception kills them.
    """

    def __init__(self, n: int, setup: Callable[..., Any], preload: Iterable[str] = ()) -> None:
        if n < 1:
            raise ValueError(f"a pool needs at least one worker, got {n}")
        ctx: multiprocessing.context.BaseContext
        if "forkserver" in multiprocessing.get_all_start_methods():
            ctx = multiprocessing.get_context("forkserver")
            if preload:  # read when the server starts (once per process)
                multiprocessing.get_context("forkserver").set_forkserver_preload(list(preload))
        else:  # pragma: no cover - Windows: each worker imports everything itself (seconds)
            ctx = multiprocessing.get_context("spawn")
        # Read by libgomp when it loads; the server and its workers inherit this process's environment.
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        self.n = n
        self.capacity = n * IN_FLIGHT_PER_WORKER
        self._workers: list[_Worker] = []
        self._where: dict[Any, list[_Worker]] = {}
        try:
            for i in range(n):
                task_r, task_w = ctx.Pipe(duplex=False)
                result_r, result_w = ctx.Pipe(duplex=False)
                name = f"score-worker-{i}"
                level = logging.getLogger().getEffectiveLevel()
                proc = ctx.Process(target=_serve, args=(task_r, result_w, setup, level), name=name, daemon=True)
                sender = _Sender(task_w, name)
                try:
                    proc.start()
                finally:
                    task_r.close()  # the worker has its own copies now
                    result_w.close()
                sender.start()
                self._workers.append(_Worker(proc, sender, result_r))
        except BaseException:
            self.kill()
            raise

    @property
    def pids(self) -> list[int]:
        return [w.proc.pid for w in self._workers if w.proc.pid is not None]

    def setup(self, *args: Any) -> None:
        """Give every worker its state: `setup(*args)` runs once in each (pickled once here)."""
        frame = pack((_SETUP, None, args))
        for worker in self._workers:
            worker.sender.queue.put(frame)

    def submit(self, key: Any, fn: Callable[..., Any], *args: Any) -> None:
        """Queue `fn(state, *args)` on the least busy worker; its outcome comes back from `get` under `key`."""
        frame = pack((key, fn, args))
        worker = min(self._workers, key=lambda w: w.load)
        worker.sender.queue.put(frame)
        worker.load += 1
        self._where.setdefault(key, []).append(worker)

    def get(self) -> tuple[Any, Outcome]:
        """The next outcome from any worker, as (key, Outcome). Raises `WorkerLost` if a worker died."""
        by_conn = {w.results: w for w in self._workers}
        by_sentinel = {w.proc.sentinel: w for w in self._workers}
        while True:
            ready = multiprocessing.connection.wait([*by_conn, *by_sentinel])
            conns = [r for r in ready if r in by_conn]
            if conns:
                try:
                    message = read_frame(conns[0].fileno())
                except EOFError:
                    self._lost(by_conn[conns[0]])
                return self._outcome(message)
            for sentinel in ready:
                worker = by_sentinel[sentinel]
                if not worker.results.poll():  # no result left to read from it
                    self._lost(worker)

    def _outcome(self, message: tuple) -> tuple[Any, Outcome]:
        key, value, error, records = message
        _replay(records)
        err = None
        if error is not None:
            err, text = error
            err.__cause__ = RemoteTraceback(text)
            if key == _SETUP:
                raise err
        workers = self._where.get(key)
        if workers:
            workers.pop(0).load -= 1
            if not workers:
                del self._where[key]
        return key, Outcome(value, err)

    def _lost(self, worker: _Worker) -> None:
        worker.proc.join(timeout=5)
        raise WorkerLost(
            f"scoring worker process {worker.proc.pid} ended ({_exit_reason(worker.proc.exitcode)}) before "
            "returning its chunks; no output was published"
        )

    def close(self) -> None:
        """Stop the workers after their current task (a clean end: everything was collected)."""
        for worker in self._workers:
            worker.sender.queue.put(pack(None))  # the stop message
            worker.sender.queue.put(None)
        for worker in self._workers:
            worker.sender.join(timeout=10)
            worker.proc.join(timeout=10)
        self.kill()

    def kill(self) -> None:
        """End every worker now (SIGKILL: they hold no files) and release the pipes and threads."""
        for worker in self._workers:
            if worker.proc.exitcode is None:
                worker.proc.kill()
        for worker in self._workers:
            worker.proc.join(timeout=10)
            worker.sender.queue.put(None)
            worker.sender.join(timeout=10)  # a send blocked on the dead worker failed with a broken pipe
            worker.sender.conn.close()
            worker.results.close()

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.kill()
