"""Exact TreeSHAP (`pipeline.decision.treeshap`) against LightGBM's `pred_contrib`, side by side in one process.

    .venv/bin/python -m bench.treeshap_bench                  # 100k rows x 30 features, 200 trees x 31 leaves
    .venv/bin/python -m bench.treeshap_bench --rows 20000 --repeats 3

Why this shape: the issue's model (binary, 200 trees x 31 leaves, no early stopping) on synthetic
data with 10% NaN and one categorical column, so the missing-value and categorical paths are timed
too. Both methods run on the same rows, model and thread count, alternating within each repeat
(the machine is shared, so the median of the repeats is reported). Exactness is checked on every row.
Compile time is measured in fresh subprocesses: with an empty numba cache (first ever call) and
with the cache just written (every later process).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import lightgbm as lgb
import numpy as np

N_FEATURES = 30
CAT = 7


def make_data(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Synthetic applicants: 30 numeric-ish features, one categorical, ~10% NaN everywhere."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, N_FEATURES))
    X[:, CAT] = rng.integers(0, 16, n).astype(float)
    X[:, 3] = np.round(X[:, 3] * 2)
    beta = rng.normal(size=N_FEATURES) * (rng.random(N_FEATURES) < 0.6)
    logit = np.nan_to_num(X) @ beta * 0.5 + 0.8 * np.isin(X[:, CAT], [1, 5, 9]) + 0.7 * X[:, 0] * X[:, 1]
    X[rng.random(X.shape) < 0.10] = np.nan
    y = (logit + rng.logistic(size=n) > 0).astype(float)
    return X, y


def train(threads: int) -> lgb.Booster:
    X, y = make_data(50_000, 0)
    params = {
        "objective": "binary",
        "num_leaves": 31,
        "learning_rate": 0.05,
        "verbose": -1,
        "num_threads": threads,
        "seed": 0,
        "min_data_per_group": 20,
        "cat_smooth": 5,
    }
    return lgb.train(params, lgb.Dataset(X, y, categorical_feature=[CAT]), num_boost_round=200)


def compile_seconds() -> dict[str, float]:
    """First-call time in fresh processes: cold numba cache, then warm cache."""
    code = (
        "import time, numpy as np, lightgbm as lgb;"
        "from bench.treeshap_bench import make_data;"
        "from pipeline.decision.treeshap import ShapForest;"
        "X, y = make_data(2000, 0);"
        "b = lgb.train({'objective': 'binary', 'verbose': -1, 'num_leaves': 31}, lgb.Dataset(X, y), 5);"
        "t = time.perf_counter(); f = ShapForest.from_booster(b); f.shap_values(X[:10]);"
        "print(time.perf_counter() - t)"
    )
    out = {}
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "NUMBA_CACHE_DIR": cache}
        for label in ("cold_cache_s", "warm_cache_s"):
            res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
            out[label] = float(res.stdout.strip().splitlines()[-1])
    return out


def main(argv: list[str] | None = None) -> dict[str, object]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-compile", action="store_true", help="skip the subprocess compile-time measurement")
    args = parser.parse_args(argv)

    import numba

    from pipeline.decision.treeshap import ShapForest, shap_values, top_k_exact

    numba.set_num_threads(min(args.threads, numba.config.NUMBA_NUM_THREADS))
    result: dict[str, object] = {} if args.no_compile else compile_seconds()
    booster = train(args.threads)
    X, _ = make_data(args.rows, 1)
    t = time.perf_counter()
    forest = ShapForest.from_booster(booster)
    result["build_s"] = time.perf_counter() - t
    result["table_mb"] = forest.table.nbytes / 2**20
    result["fallback_leaves"] = int((forest.table_start < 0).sum())
    result["max_distinct_features_on_a_path"] = forest.max_unique
    shap_values(forest, X[:100], num_threads=args.threads)  # compile or load from cache outside the timing

    ours, theirs, ref, got = [], [], None, None
    for _ in range(args.repeats):  # alternate the two so background load hits both alike
        t = time.perf_counter()
        ref = booster.predict(X, pred_contrib=True, num_threads=args.threads)
        theirs.append(time.perf_counter() - t)
        t = time.perf_counter()
        got = shap_values(forest, X, num_threads=args.threads)
        ours.append(time.perf_counter() - t)
    assert ref is not None and got is not None
    nan_rows = np.isnan(X).any(axis=1)
    result.update(
        rows=args.rows,
        threads=args.threads,
        trees=booster.num_trees(),
        pred_contrib_rows_per_s=args.rows / float(np.median(theirs)),
        treeshap_rows_per_s=args.rows / float(np.median(ours)),
        max_abs_error=float(np.max(np.abs(got - ref[:, :-1]))),
        max_abs_error_nan_rows=float(np.max(np.abs(got[nan_rows] - ref[nan_rows, :-1]))),
        bias_error=float(abs(forest.expected_value - ref[0, -1])),
        top4_equal_rows=float(np.mean((top_k_exact(got, 4) == top_k_exact(ref[:, :-1], 4)).all(axis=1))),
        nan_row_share=float(nan_rows.mean()),
        timings_s={"pred_contrib": theirs, "treeshap": ours},
    )
    result["speedup"] = result["treeshap_rows_per_s"] / result["pred_contrib_rows_per_s"]
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
