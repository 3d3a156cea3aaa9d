"""SIGTERM and SIGINT as an exception, so a stopped job cleans up like a failed one.

Python's default SIGTERM ends the process at once: no `finally` runs, so temporary files
stay and the MLflow run stays RUNNING for ever. With `install()`, either signal raises
`Interrupted` (a KeyboardInterrupt) in the main thread: `with mlflow.start_run()` ends the
run, `finally` blocks delete temporary files, and the CLI exits 143 (SIGTERM) or 130 (SIGINT)
after marking the run KILLED. A second signal during that cleanup is ignored, so the cleanup
finishes; SIGKILL cannot be caught (its left-overs are removed by the next run).
"""

from __future__ import annotations

import signal
import sys
import threading

from pipeline.errors import Interrupted

HANDLED = (signal.SIGTERM, signal.SIGINT)
_state: dict = {"signum": None, "run_id": None}


def _active_run_id() -> str | None:
    """The MLflow run active when the signal came (only if MLflow is already imported: never import it here)."""
    fluent = sys.modules.get("mlflow.tracking.fluent")
    if fluent is None:
        return None
    try:
        run = fluent.active_run()
    except Exception:  # noqa: BLE001 - a signal handler must not fail
        return None
    return run.info.run_id if run is not None else None


def _handler(signum: int, frame) -> None:
    if _state["signum"] is not None:
        return  # already stopping: let the cleanup finish
    _state["signum"] = signum
    _state["run_id"] = _active_run_id()
    raise Interrupted(signum)


def install() -> dict:
    """Route SIGTERM and SIGINT to `Interrupted`; returns the previous handlers for `restore`.

    Main thread only: Python delivers signals there, and only there may handlers be set.
    """
    if threading.current_thread() is not threading.main_thread():
        return {}
    _state.update(signum=None, run_id=None)
    return {signum: signal.signal(signum, _handler) for signum in HANDLED}


def restore(previous: dict) -> None:
    """Put back the handlers `install` replaced (the CLI runs inside tests too)."""
    for signum, handler in previous.items():
        signal.signal(signum, handler)


def interrupted_run() -> str | None:
    """The id of the MLflow run that was active when the signal arrived, if any."""
    return _state["run_id"]


def end_killed_run(run_id: str | None) -> None:
    """Mark the interrupted run KILLED (the `with` block already ended it FAILED, or it is still RUNNING)."""
    if run_id is None:
        return
    mlflow = sys.modules.get("mlflow")
    if mlflow is None:
        return
    try:
        if mlflow.active_run() is not None:
            mlflow.end_run(status="KILLED")
        mlflow.MlflowClient().set_terminated(run_id, status="KILLED")
    except Exception as err:  # noqa: BLE001 - best effort while exiting; the exit code still says killed
        print(f"could not mark MLflow run {run_id} KILLED: {err}", file=sys.stderr)
