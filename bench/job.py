"""One batch-scoring job, run in its own process so its peak RSS is its own.

`python -m bench.job SCORER.pkl INPUT OUTPUT [WORKERS]` scores INPUT with the pickled Scorer through
`pipeline.batch.job.score_file` (the production batch job, default config; WORKERS as `--workers`,
default one per core) and prints the job summary as JSON, with this process's peak RSS (VmHWM)
and the largest RSS any worker process reached (sampled every 50 ms: a worker's own VmHWM is gone
when it exits).
"""

from __future__ import annotations

import json
import os
import pickle
import resource
import sys
import threading
import warnings


def peak_rss_mb() -> float:
    """This process's own peak RSS. Linux keeps `ru_maxrss` across fork+exec, so a job started from
    the (large) bench process would report the parent's peak; VmHWM belongs to the new image only."""
    try:
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class ChildPeaks:
    """Largest RSS seen per child process (the workers), polled in a background thread."""

    def __init__(self, every: float = 0.05) -> None:
        import psutil

        self.me, self.every, self.peaks = psutil.Process(), every, {}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.stop.wait(self.every):
            for child in self.me.children(recursive=True):
                try:
                    rss = child.memory_info().rss
                except Exception:  # noqa: BLE001 - a child that just exited
                    continue
                self.peaks[child.pid] = max(self.peaks.get(child.pid, 0), rss)

    def __enter__(self) -> ChildPeaks:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join()


def main(argv: list[str]) -> int:
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    warnings.filterwarnings("ignore")
    from pipeline.batch.job import score_file

    scorer_path, input_path, output_path = argv[:3]
    workers = int(argv[3]) if len(argv) > 3 else None
    with open(scorer_path, "rb") as fh:
        scorer = pickle.load(fh)
    with ChildPeaks() as children:
        summary = score_file("bench-model", input_path, output_path, scorer=scorer, progress=False, workers=workers)
    summary["peak_rss_mb"] = peak_rss_mb()
    worker_peaks = sorted(children.peaks.values())
    summary["worker_peak_rss_mb"] = worker_peaks[-1] / 2**20 if worker_peaks else None
    summary["processes_sampled"] = len(worker_peaks)
    keys = ("rows_in", "rows_scored", "rows_rejected", "seconds", "rows_per_second", "workers")
    print(json.dumps({**{k: summary.get(k) for k in keys}, **{k: summary[k] for k in summary if "rss" in k}}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
