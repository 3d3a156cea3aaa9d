"""Training on a Dask LocalCluster beside training in one process, on the same synthetic rows and the same split.

    .venv/bin/python -m bench.dask_bench --rows 1000000            # prints the numbers
    .venv/bin/python -m bench.dask_bench --rows 1000000 --write    # also replaces its section of docs/benchmarks.md

`bench.run` (make bench) calls `measure` and puts `report_lines` into the full report. Both engines run the
pipeline's stages on the same generated rows: ingest, validate, features, then the train stage's fit (without
logging an MLflow run): `pipeline.model.train.fit` in this process (LightGBM with one thread per core) and
`pipeline.compute.train.fit_on_cluster` on `LocalCluster(n_workers, threads_per_worker=1, processes=True)`.
Monotone constraints are the dictionary's (`monotone: prior`): the evidence check runs in the client in both
engines and would only add the same time to both.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

from pipeline.config import parse_config  # noqa: E402
from pipeline.data.io import read_parquet  # noqa: E402
from pipeline.stages.files import Paths, read_json  # noqa: E402
from pipeline.stages.runner import run_stage  # noqa: E402

log = logging.getLogger("bench")
ROOT = Path(__file__).resolve().parent.parent
BEGIN, END = "<!-- dask bench: begin -->", "<!-- dask bench: end -->"
DATA_STAGES = ("ingest", "validate", "features")


def bench_config(rows: int, output: Path, name: str, compute: dict | None = None):
    return parse_config(
        {
            "name": name,
            "output_dir": str(output),
            "source": {"kind": "synthetic", "rows": rows, "seed": 42},
            "contract": {"history_months": 6, "protected": ["gender"]},
            "pd_model": {"monotone": "prior"},
            **({"compute": compute} if compute else {}),
        }
    )


def _stages(cfg) -> dict[str, float]:
    seconds = {}
    for stage in DATA_STAGES:
        started = time.perf_counter()
        run_stage(stage, cfg)
        seconds[stage] = time.perf_counter() - started
    return seconds


def _one_process(rows: int, output: Path) -> dict:
    from pipeline.model.train import FeatureTable, fit

    cfg = bench_config(rows, output, "bench-local")
    seconds, p = _stages(cfg), Paths(cfg.run_dir)
    report = read_json(p.features_report)
    features = FeatureTable(read_parquet(p.features), report["features"], report["skipped"])
    valid = read_parquet(p.valid)
    started = time.perf_counter()
    result = fit(valid, cfg, features)
    seconds["train"] = time.perf_counter() - started
    return _summary(seconds, result)


def _on_cluster(rows: int, output: Path, workers: int, partition_rows: int) -> dict:
    from distributed import LocalCluster

    from pipeline.compute.train import fit_on_cluster

    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster:
        compute = {"engine": "dask", "address": cluster.scheduler_address, "partition_rows": partition_rows}
        cfg = bench_config(rows, output, "bench-dask", compute)
        seconds, p = _stages(cfg), Paths(cfg.run_dir)
        started = time.perf_counter()
        result = fit_on_cluster(cfg, p.features, p.valid, read_json(p.features_report))
        seconds["train"] = time.perf_counter() - started
    return {**_summary(seconds, result), "workers": workers, "partition_rows": partition_rows}


def _summary(seconds: dict[str, float], result) -> dict:
    m = result.metrics
    limit = result.scorer.limit_model
    return {
        "seconds": {k: round(v, 1) for k, v in seconds.items()},
        "test_roc_auc": m["test_roc_auc"],
        "pd_trees": m["pd_trees"],
        "limit_trees": limit.booster.current_iteration() if limit is not None else None,
        "n_train": m["n_train"],
    }


def measure(rows: int, workers: int = 2, partition_rows: int = 100_000) -> dict:
    """Both engines on `rows` synthetic applicants; seconds per stage, test AUC and trees kept."""
    tmp = Path(tempfile.mkdtemp(prefix="credit-dask-bench-"))
    load = [round(x, 2) for x in os.getloadavg()]
    try:
        log.info("dask bench: one process, %s rows", f"{rows:,}")
        local = _one_process(rows, tmp)
        log.info("dask bench: LocalCluster of %d workers, %s rows", workers, f"{rows:,}")
        dask = _on_cluster(rows, tmp, workers, partition_rows)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {
        "rows": rows,
        "cores": os.cpu_count(),
        "load_at_start": load,
        "load_at_end": [round(x, 2) for x in os.getloadavg()],
        "date": time.strftime("%Y-%m-%d %H:%M %Z"),
        "local": local,
        "dask": dask,
    }


def report_lines(res: dict) -> list[str]:
    """A short markdown section: seconds per stage for each engine, AUC and trees kept."""
    if not res:
        return []
    one, many = res["local"], res["dask"]
    rows = [
        "| | one process | Dask LocalCluster | Dask / one process |",
        "|---|---:|---:|---:|",
    ]
    for stage in (*DATA_STAGES, "train"):
        a, b = one["seconds"][stage], many["seconds"][stage]
        rows.append(f"| {stage} s | {a:.1f} | {b:.1f} | {b / a:.2f}x |")
    rows.append(f"| test AUC | {one['test_roc_auc']:.4f} | {many['test_roc_auc']:.4f} | |")
    rows.append(f"| PD trees kept | {one['pd_trees']} | {many['pd_trees']} | |")
    rows.append(f"| limit trees kept | {one['limit_trees']} | {many['limit_trees']} | |")
    return [
        BEGIN,
        f"## Training on a Dask LocalCluster ({res['rows']:,} synthetic rows)",
        "",
        f"`python -m bench.dask_bench --rows {res['rows']}` on {res['date']}: the same generated rows and split, "
        f"ingest, validate, features and the train stage's fit ({one['n_train']:,} training rows, "
        "`monotone: prior`, no MLflow logging), in one process (LightGBM with one thread per core) and on "
        f"`LocalCluster(n_workers={many['workers']}, threads_per_worker=1, processes=True)` with partitions of "
        f"{many['partition_rows']:,} rows. The machine had {res['cores']} cores and was shared with other "
        f"engineers' jobs (load average {res['load_at_start']} at the start, {res['load_at_end']} at the end), "
        "so the seconds are noisy; both engines ran back to back.",
        "",
        *rows,
        "",
        "The Dask engine trains every round up to `num_boost_round` (600 PD, 400 per limit-tree size) and cuts "
        "the booster where early stopping would have stopped (lightgbm.dask 4.7 cannot stop early safely; "
        "docs/operations.md), so it boosts more rounds than one process does. Both engines share the same "
        "cores here, so this measures the engine's overhead, not the gain of more machines; one process runs "
        "LightGBM with one OpenMP thread per core, and on a busy machine those threads wait for each other, "
        "which the cluster's one-thread workers do not.",
        END,
    ]


def kept_section(path: Path) -> str | None:
    """This bench's section as the report holds it now, for a full bench run with --no-dask."""
    text = path.read_text() if path.exists() else ""
    found = re.search(re.escape(BEGIN) + ".*?" + re.escape(END), text, re.S)
    return found.group(0) if found else None


def write_section(res: dict, path: Path) -> None:
    """Replace this bench's section of the report (or append it) without rerunning the full bench."""
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    section = "\n".join(report_lines(res))
    pattern = re.compile(re.escape(BEGIN) + ".*?" + re.escape(END), re.S)
    text = pattern.sub(lambda _: section, text) if pattern.search(text) else text.rstrip("\n") + "\n\n" + section + "\n"
    path.write_text(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--partition-rows", type=int, default=100_000)
    parser.add_argument("--write", action="store_true", help="replace the section in docs/benchmarks.md")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    logging.getLogger("pipeline").setLevel(logging.WARNING)
    res = measure(args.rows, args.workers, args.partition_rows)
    print(json.dumps(res, indent=1))
    print("\n".join(report_lines(res)))
    if args.write:
        write_section(res, ROOT / "docs" / "benchmarks.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
