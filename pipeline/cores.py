"""How many cores this process may use: its CPU affinity (a container's cpuset, `taskset`), not the machine's."""

from __future__ import annotations

import os


def available_cores() -> int:
    """Cores this process may run on; every thread count and worker count starts here."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)
