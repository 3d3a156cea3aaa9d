"""Helpers shared by test modules (imported as `helpers`; conftest.py holds the fixtures)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

from pipeline.config import Config, parse_config

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = ROOT.parent / "shared" / "data"

# Set by conftest.py: True when the run deselects the slow tests (`make test-fast`).
FAST_RUN = False


def examples(n: int) -> int:
    """Hypothesis examples for a property: `n` in the full run (`make test`), a quarter of it (at least 10)
    in `make test-fast`. The properties and their explicit @example cases are the same in both runs."""
    return max(10, n // 4) if FAST_RUN else n


def small_config(tmp: Path, rows: int = 3000, name: str = "small", **overrides) -> Config:
    """A fast synthetic config writing into `tmp`, with its own registry name."""
    data = {
        "name": name,
        "output_dir": str(tmp / "output"),
        "source": {"kind": "synthetic", "rows": rows, "seed": 3},
        "contract": {"history_months": 6, "protected": ["gender"]},
        "pd_model": {"num_boost_round": 120, "early_stopping_rounds": 20},
        "limit_model": {"num_boost_round": 80, "early_stopping_rounds": 20},
        "registry": {"model_name": f"test-{name}", "experiment": f"test-{name}"},
    }
    for key, value in overrides.items():
        data[key] = {**data.get(key, {}), **value} if isinstance(value, dict) else value
    return parse_config(data)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cli(*args, cwd, env=None, check=True, timeout=600) -> subprocess.CompletedProcess:
    """`python -m pipeline ARGS` in a fresh process; raises with both streams when `check` and it fails."""
    proc = subprocess.run(
        [sys.executable, "-m", "pipeline", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=timeout,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
    return proc
