"""MLflow set-up: the one place that reads the tracking environment.

Default: an embedded SQLite store and an artifact folder inside the project's output
folder. `MLFLOW_TRACKING_URI` (and MLflow's own credential variables) point it at a
shared tracking server instead; credentials never live in config files.

Commands that only read the registry (score, promote, rollback, history) must not create a
store: MLflow would silently create an empty SQLite file for a misspelt path and then report
"model not found". `read_only_store()` makes them fail instead, naming the path (exit 6).
"""

from __future__ import annotations

import fcntl
import os
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypedDict
from urllib.parse import urlparse

from pipeline.errors import TrackingError

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")

import mlflow  # noqa: E402  (after the environment defaults above)


class _State(TypedDict):
    read_only: bool
    missing: tuple[str, str] | None  # (uri, where it came from) of an absent store a read command was given


_state: _State = {"read_only": False, "missing": None}


def read_only_store(enabled: bool = True) -> None:
    """For read commands: a SQLite store that does not exist is an error, never created."""
    _state["read_only"] = enabled


def sqlite_path(uri: str) -> Path | None:
    """The file of a `sqlite:///path` URI (None for servers and in-memory SQLite)."""
    if not uri.startswith("sqlite:///"):
        return None
    return Path(uri[len("sqlite:///") :].split("?")[0])


def check_store_exists() -> None:
    """Raise when a read command was pointed at a SQLite store that does not exist (recorded by configure)."""
    missing = _state["missing"]
    if missing is not None:
        uri, source = missing
        raise TrackingError(
            f"tracking store {uri} does not exist ({source}); check the path: a read command does not create "
            "an empty store"
        )


def tracking_uri(output_dir: str | Path) -> str:
    env = os.environ.get("MLFLOW_TRACKING_URI")
    if env:
        return env
    folder = Path(output_dir).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{folder / 'mlflow.db'}"


def artifact_location(uri: str) -> str | None:
    """Artifacts live beside the store they belong to, never in the working folder.

    A SQLite store keeps them in `mlartifacts/` next to its database file (MLflow alone would use
    `./mlruns` of whatever folder the job runs in, shared between unrelated stores); a tracking
    server decides itself (its `--artifacts-destination` / default artifact root): None.
    """
    path = sqlite_path(uri)
    return (path.resolve().parent / "mlartifacts").as_uri() if path is not None else None


def check_reachable(uri: str, timeout: float = 5.0) -> None:
    """Fail fast, naming the URI, when an HTTP tracking server does not answer."""
    parsed = urlparse(uri)
    if parsed.scheme not in ("http", "https"):
        return
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        with socket.create_connection((parsed.hostname, port), timeout=timeout):
            pass
    except OSError as err:
        raise TrackingError(f"MLflow tracking server {uri} is unreachable: {err}") from None


@contextmanager
def _creation_lock(path: Path | None) -> Iterator[None]:
    """Two processes creating one SQLite store (its tables, an experiment) at once fail in MLflow's migration."""
    if path is None:
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(f"{path}.lock", os.O_CREAT | os.O_RDWR, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def configure(output_dir: str | Path, experiment: str) -> str:
    """Point MLflow at the store and experiment; returns the experiment id."""
    user_uri = os.environ.get("MLFLOW_TRACKING_URI")
    uri = tracking_uri(output_dir)
    check_reachable(uri)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    if user_uri is None:
        # MLflow exports the URI to the environment; undo that, so the embedded store is not
        # later mistaken for a user's server (and artifacts stay in the output folder).
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    path = sqlite_path(uri)
    _state["missing"] = None
    if _state["read_only"] and path is not None and not path.exists():
        source = "MLFLOW_TRACKING_URI" if user_uri else "the default store: train and register a model first"
        _state["missing"] = (uri, source)
        return ""  # nothing to create; the first registry access raises, a local model folder needs no store
    try:
        with _creation_lock(path):  # the first access creates the store's tables
            exp = mlflow.get_experiment_by_name(experiment)
            if exp is None:
                exp_id = mlflow.create_experiment(experiment, artifact_location=artifact_location(uri))
            else:
                exp_id = exp.experiment_id
    except mlflow.exceptions.MlflowException as err:
        raise TrackingError(f"MLflow tracking at {uri} failed: {err}") from None
    mlflow.set_experiment(experiment_id=exp_id)
    return exp_id


def git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, cwd=Path(__file__).resolve().parent
        )
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"
