"""Imported by the workers' fork server (`WORKER_PRELOAD`): numba's typing and target contexts set up once.

A worker forked from the server inherits them, so its first call of a cached kernel (the reason
selection, the numba forests) does not spend ~0.45 s installing numba's type registries: measured on
2 cores, 0.50 s for the first `top_k_exact` in a fresh fork against 0.045 s after this. It starts no
thread (numba's threading layer starts in the worker, on its first parallel kernel), so forking
from the server stays safe.
"""

from __future__ import annotations


def warm_numba() -> None:
    try:
        from numba.core.registry import cpu_target
    except ImportError:  # pragma: no cover - numba is a dependency
        return
    cpu_target.typing_context.refresh()
    cpu_target.target_context.refresh()


warm_numba()
