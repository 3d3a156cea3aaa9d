"""The Dask client of a run: a scheduler at `compute.address`, or a LocalCluster started for the run.

One client serves every stage of a run (`run_until` opens a `run_scope`; the first stage that needs
the cluster connects, later ones reuse it); a stage run alone opens its own. A LocalCluster is
closed when the scope or stage ends, also when a stage fails or a signal stops the run; a cluster at
an address is left running (only the client closes). Dask is imported only when the engine is dask.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from pipeline.config import ComputeConfig
from pipeline.errors import ConfigError

if TYPE_CHECKING:
    from distributed import Client

log = logging.getLogger(__name__)
_SCOPES: list[list] = []  # open run scopes, each [client, cluster] once a stage has asked for them


@contextmanager
def run_scope(compute: ComputeConfig) -> Iterator[None]:
    """Around a run of several stages: the first stage that needs the cluster opens it, the scope closes it."""
    if compute.engine != "dask":
        yield
        return
    held: list = []
    _SCOPES.append(held)
    try:
        yield
    finally:
        _SCOPES.pop()  # scopes nest: the last one opened is this one
        if held:
            _close(*held)


@contextmanager
def session(compute: ComputeConfig) -> Iterator[Client | None]:
    """The client for a stage (None for the local engine): the run's, or one opened and closed for this stage."""
    if compute.engine != "dask":
        yield None
        return
    import dask

    scope = _SCOPES[-1] if _SCOPES else None
    if scope is not None and not scope:
        scope.extend(_connect(compute))
    client, cluster = scope if scope else _connect(compute)
    try:
        with dask.config.set({"dataframe.convert-string": False}):  # keep pandas' own dtypes, as one process has
            yield client
    finally:
        if scope is None:
            _close(client, cluster)


def _close(client: Client, cluster: Any) -> None:
    client.close()
    if cluster is not None:
        cluster.close()
        log.info("dask: LocalCluster closed")


def _connect(compute: ComputeConfig) -> tuple[Client, Any]:
    try:
        from distributed import Client, LocalCluster
    except ImportError as err:  # pragma: no cover - a main dependency; only a broken install lacks it
        raise ConfigError(f"compute.engine: dask needs dask[distributed] installed ({err})") from None
    if compute.address:
        try:
            client = Client(compute.address, set_as_default=False)
        except (OSError, TimeoutError) as err:
            raise ConfigError(f"compute.address {compute.address}: cannot reach the Dask scheduler ({err})") from None
        log.info("dask: connected to %s (%d workers)", compute.address, workers(client))
        return client, None
    cluster = LocalCluster(
        n_workers=compute.n_workers,
        threads_per_worker=compute.threads_per_worker,
        processes=True,
        host="127.0.0.1",
        dashboard_address=":0",  # any free port: two runs on one machine never collide
    )
    client = Client(cluster, set_as_default=False)
    client.register_plugin(stdout_to_stderr())
    log.info("dask: LocalCluster with %d worker processes started for this run", len(cluster.workers))
    return client, cluster


def stdout_to_stderr() -> Any:
    """A worker plugin for our LocalCluster: its processes inherit our stdout, which carries the CLI's result, so
    what they print (LightGBM's network threads print at info level whatever `verbose` says) goes to stderr.
    Made here, not at import, so the local engine never imports distributed."""
    from distributed.diagnostics.plugin import WorkerPlugin

    class StdoutToStderr(WorkerPlugin):
        def setup(self, worker: Any) -> None:
            import os
            import sys

            sys.stdout.flush()
            os.dup2(sys.stderr.fileno(), sys.stdout.fileno())

    return StdoutToStderr()


def workers(client: Client) -> int:
    """Workers connected now (`scheduler_info` lists only the first few in recent distributed)."""
    return len(client.nthreads())
