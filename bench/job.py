"""One batch-scoring job, run in its own process so its peak RSS is its own.

`python -m bench.job SCORER.pkl INPUT OUTPUT` scores INPUT with the pickled Scorer through
`pipeline.scoring.score_file` (the production batch job, default config) and prints the
job summary as JSON, plus this process's peak RSS.
"""

from __future__ import annotations

import json
import os
import pickle
import resource
import sys
import warnings


def main(argv: list[str]) -> int:
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    warnings.filterwarnings("ignore")
    from pipeline.scoring import score_file

    scorer_path, input_path, output_path = argv
    with open(scorer_path, "rb") as fh:
        scorer = pickle.load(fh)
    summary = score_file("bench-model", input_path, output_path, scorer=scorer, progress=False)
    summary["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
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
