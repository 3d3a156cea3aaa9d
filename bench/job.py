"""One batch-scoring job, run in its own process so its peak RSS is its own.

`python -m bench.job SCORER.pkl INPUT OUTPUT` scores INPUT with the pickled Scorer through
`pipeline.batch.job.score_file` (the production batch job, default config) and prints the
job summary as JSON, plus this process's peak RSS (VmHWM).
"""

from __future__ import annotations

import json
import os
import pickle
import resource
import sys
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


def main(argv: list[str]) -> int:
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    warnings.filterwarnings("ignore")
    from pipeline.batch.job import score_file

    scorer_path, input_path, output_path = argv
    with open(scorer_path, "rb") as fh:
        scorer = pickle.load(fh)
    summary = score_file("bench-model", input_path, output_path, scorer=scorer, progress=False)
    summary["peak_rss_mb"] = peak_rss_mb()
    print(
        json.dumps(
            {
                k: summary[k]
                for k in ("rows_in", "rows_scored", "rows_rejected", "seconds", "rows_per_second", "peak_rss_mb")
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
