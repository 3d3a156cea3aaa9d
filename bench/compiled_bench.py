"""Compiled forest vs numba Forest vs Booster.predict, side by side in one process (median of repeats).

    .venv/bin/python -m bench.compiled_bench                 # 1M rows, both models
    .venv/bin/python -m bench.compiled_bench --rows 200000 --repeats 3

Models (synthetic, 30 features, NaNs and one categorical column):
(a) binary, 200 trees x 31 leaves; (b) quantile regression, 400 trees x 15 leaves.
Prints rows/s for each kernel, compile seconds at opt 2 and opt 0, blob size and load time.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable

import lightgbm as lgb
import numpy as np

from pipeline.decision.compiled import CompiledForest
from pipeline.decision.forest import Forest

N_FEATURES = 30


def _data(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, N_FEATURES))
    X[:, 5] = rng.integers(0, 20, n).astype(float)
    X[rng.random((n, N_FEATURES)) < 0.05] = np.nan
    y = np.nansum(X[:, :10], axis=1) * 0.3 + np.isin(X[:, 5], [1, 4, 7]) + rng.logistic(size=n)
    return X, y


def _train(objective: str, trees: int, leaves: int) -> lgb.Booster:
    X, y = _data(20000, 0)
    params = {"objective": objective, "num_leaves": leaves, "min_data_in_leaf": 5, "verbose": -1, "num_threads": 2}
    if objective == "binary":
        y = (y > 0.5).astype(float)
    else:
        params["alpha"] = 0.3
    return lgb.train(params, lgb.Dataset(X, y, categorical_feature=[5]), trees)


def _median_rate(fn: Callable[[], object], rows: int, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return rows / float(np.median(times))


def run(name: str, booster: lgb.Booster, rows: int, repeats: int) -> None:
    """One model: compile (timed), check exactness, then every kernel interleaved per repeat."""
    forest = Forest.from_booster(booster)
    X, _ = _data(rows, 1)
    t = time.perf_counter()
    compiled = CompiledForest.compile(forest)
    compile_s = time.perf_counter() - t
    t = time.perf_counter()
    CompiledForest.compile(forest, opt=0)
    compile0_s = time.perf_counter() - t
    t = time.perf_counter()
    CompiledForest.compile(forest, contrib=False)
    compile_margin_s = time.perf_counter() - t
    blob = compiled.to_bytes()
    t = time.perf_counter()
    one = CompiledForest.load(blob, threads=1)
    load_s = time.perf_counter() - t
    forest.margin(X[:100]), forest.margin_and_contrib(X[:100])  # numba JIT / cache load outside the timing
    ref = booster.predict(X[:50000], raw_score=True)
    assert np.max(np.abs(compiled.margin(X[:50000]) - ref)) <= 1e-9
    m, c = compiled.margin_and_contrib(X[:50000])
    assert np.max(np.abs(c - forest.margin_and_contrib(X[:50000])[1])) <= 1e-9
    kernels: dict[str, Callable[[], object]] = {
        f"compiled margin ({compiled.threads} threads)": lambda: compiled.margin(X),
        "compiled margin (1 thread)": lambda: one.margin(X),
        f"compiled margin+contrib ({compiled.threads} threads)": lambda: compiled.margin_and_contrib(X),
        "compiled margin+contrib (1 thread)": lambda: one.margin_and_contrib(X),
        "numba Forest.margin": lambda: forest.margin(X),
        "numba Forest.margin_and_contrib": lambda: forest.margin_and_contrib(X),
        "Booster.predict(raw_score, num_threads=2)": lambda: booster.predict(X, raw_score=True, num_threads=2),
    }
    rates: dict[str, list[float]] = {k: [] for k in kernels}
    for _ in range(repeats):  # interleaved, so load changes on the shared machine hit every kernel alike
        for key, fn in kernels.items():
            rates[key].append(_median_rate(fn, rows, 1))
    base = float(np.median(rates["Booster.predict(raw_score, num_threads=2)"]))
    print(f"\n## {name}: {len(forest.roots)} trees, {len(forest.leaf_value)} leaves, {rows:,} rows x {repeats}")
    print(f"compile opt2 {compile_s:.2f} s (margin only {compile_margin_s:.2f} s), opt0 {compile0_s:.2f} s;", end=" ")
    print(f"blob {len(blob) / 1e6:.2f} MB; load {load_s * 1000:.0f} ms")
    for key, values in rates.items():
        rate = float(np.median(values))
        print(f"| {key:45s} | {rate:12,.0f} rows/s | {rate / base:5.2f}x predict |")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(f"cores: {len(os.sched_getaffinity(0))}, load average: {os.getloadavg()}")
    run("(a) binary 200x31", _train("binary", 200, 31), args.rows, args.repeats)
    run("(b) quantile 400x15", _train("quantile", 400, 15), args.rows, args.repeats)
    print(f"load average at the end: {os.getloadavg()}")


if __name__ == "__main__":
    main()
