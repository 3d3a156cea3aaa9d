"""The native forest must score exactly like LightGBM and the numba Forest, and fail safe when shipped.

Small models (tens of trees) keep compile time, and so this file, to seconds.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
import zlib
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pytest

from pipeline.decision import compiled as cmod
from pipeline.decision import compiled_ir
from pipeline.decision.compiled import CompiledForest, compile_blob, load_or_fallback
from pipeline.decision.forest import CATEGORICAL, DEFAULT_LEFT, K_ZERO, MISSING, Forest

ROOT = Path(__file__).resolve().parent.parent
N_FEATURES = 6
CAT = 4  # categorical column: float codes 0..11, NaN when missing


def _data(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, N_FEATURES))
    X[:, 1] = np.where(rng.random(n) < 0.35, 0.0, np.abs(X[:, 1]))  # many exact zeros
    X[:, 2] = np.round(X[:, 2] * 3)  # few distinct values: rows exactly at thresholds
    X[:, CAT] = rng.integers(0, 12, n).astype(float)
    X[rng.random(n) < 0.15, 0] = np.nan
    X[rng.random(n) < 0.10, CAT] = np.nan
    X[rng.random(n) < 0.05, 3] = np.nan
    logit = np.nan_to_num(X[:, 0], nan=1.0) + 0.8 * X[:, 1] - 0.5 * X[:, 2] + 1.5 * np.isin(X[:, CAT], [2, 5, 9])
    y = (logit + 0.7 * np.isnan(X[:, 3]) + rng.logistic(size=n) > 0.5).astype(float)
    return X, y


def _train(params: dict, rounds: int = 30) -> lgb.Booster:
    X, y = _data(4000, 0)
    if params.get("objective") == "quantile":
        y = np.log1p(np.abs(np.nan_to_num(X[:, 2]))) + y
    base = {"verbose": -1, "num_leaves": 15, "min_data_in_leaf": 10, "min_data_per_group": 10, "cat_smooth": 1}
    base |= {"num_threads": 2, "deterministic": True, "force_row_wise": True, "seed": 0}
    train = lgb.Dataset(X, y, categorical_feature=[CAT], free_raw_data=False)
    return lgb.train(base | params, train, num_boost_round=rounds)


def _probe(forest: Forest, seed: int = 1) -> np.ndarray:
    """Fresh rows plus hostile ones: all-NaN, zeros, +-1e-36, every threshold and its neighbours,
    negative, fractional, huge and unseen category codes."""
    X, _ = _data(1500, seed)
    rng = np.random.default_rng(seed)
    rows = [X, np.full((3, N_FEATURES), np.nan), np.zeros((3, N_FEATURES)), np.full((3, N_FEATURES), 1e-36)]
    rows.append(np.full((3, N_FEATURES), -1e-36))
    for node in np.flatnonzero((forest.flags & CATEGORICAL) == 0):
        t = forest.threshold[node]
        for value in (t, np.nextafter(t, np.inf), np.nextafter(t, -np.inf)):
            row = X[rng.integers(len(X))].copy()
            row[forest.feature[node]] = value
            rows.append(row[None, :])
    odd = X[:100].copy()
    odd[:, CAT] = rng.choice([-1.0, -0.5, 0.5, 2.9, 11.0, 12.0, 40.0, 1e9, 3e9, np.inf, np.nan], 100)
    return np.vstack([*rows, odd])


def _assert_matches(booster: lgb.Booster, compiled: CompiledForest, X: np.ndarray) -> None:
    forest = Forest.from_booster(booster)
    expected = booster.predict(X, raw_score=True)
    np.testing.assert_allclose(compiled.margin(X), expected, rtol=0, atol=1e-9)
    np.testing.assert_allclose(compiled.predict(X), booster.predict(X), rtol=0, atol=1e-12)
    margin, contrib = compiled.margin_and_contrib(X)
    ref_margin, ref_contrib = forest.margin_and_contrib(X)
    np.testing.assert_allclose(margin, expected, rtol=0, atol=1e-9)
    np.testing.assert_allclose(margin, ref_margin, rtol=0, atol=1e-9)
    np.testing.assert_allclose(contrib, ref_contrib, rtol=0, atol=1e-9)
    np.testing.assert_allclose(contrib.sum(1) + compiled.expected_value, margin, rtol=0, atol=1e-9)


@pytest.fixture(scope="module")
def binary() -> tuple[lgb.Booster, Forest, CompiledForest]:
    booster = _train({"objective": "binary"})
    forest = Forest.from_booster(booster)
    return booster, forest, CompiledForest.compile(forest)


@pytest.fixture(scope="module")
def blob(binary) -> bytes:
    return binary[2].to_bytes()


def test_binary_with_nan_missing_and_categoricals_matches(binary):
    booster, forest, compiled = binary
    assert ((forest.flags & CATEGORICAL) != 0).any(), "model has no categorical split"
    assert MISSING["NaN"] in {int(f) >> 2 for f in forest.flags[(forest.flags & CATEGORICAL) == 0]}
    _assert_matches(booster, compiled, _probe(forest))


@pytest.mark.parametrize(
    ("params", "missing"),
    [
        pytest.param({"objective": "binary", "zero_as_missing": True}, "Zero", id="binary-missing-zero"),
        pytest.param({"objective": "binary", "use_missing": False}, "None", id="binary-missing-none"),
        pytest.param({"objective": "quantile", "alpha": 0.3}, "NaN", id="quantile"),
    ],
)
def test_other_missing_types_and_quantile_match(params, missing):
    booster = _train(params)
    forest = Forest.from_booster(booster)
    assert MISSING[missing] in {int(f) >> 2 for f in forest.flags[(forest.flags & CATEGORICAL) == 0]}
    _assert_matches(booster, CompiledForest.compile(forest, opt=0), _probe(forest))


def _vector_build(forest: Forest, contrib: bool = True) -> CompiledForest:
    """The vectorised kernels (small trees on VECTOR_LANES rows at a time) compiled for this machine's CPU, so
    they run wherever the tests run (the shipped bundle compiles them per x86-64 level: `compile_blob`)."""
    return CompiledForest.compile(forest, contrib=contrib, cpu="host", opt=0, vector=True)


def _assert_same_bits(a: CompiledForest, b: CompiledForest | Forest, X: np.ndarray) -> None:
    np.testing.assert_array_equal(a.margin(X), b.margin(X))
    for x, y in zip(a.margin_and_contrib(X), b.margin_and_contrib(X), strict=True):
        np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize(
    ("params", "vectorised"),
    [
        pytest.param({"objective": "binary"}, True, id="binary-15-leaves"),
        pytest.param({"objective": "binary", "num_leaves": 7}, True, id="binary-7-leaves"),
        pytest.param({"objective": "binary", "num_leaves": 4, "zero_as_missing": True}, True, id="missing-zero"),
        pytest.param({"objective": "binary", "num_leaves": 6, "use_missing": False}, True, id="missing-none"),
        pytest.param({"objective": "quantile", "alpha": 0.3, "num_leaves": 7}, True, id="quantile"),
        pytest.param({"objective": "binary", "num_leaves": 90, "min_data_in_leaf": 3}, False, id="all-branchy"),
    ],
)
def test_vector_build_scores_the_same_bits(params, vectorised):
    """Vectorised trees (<= VECTOR_SPLITS splits; bigger ones branch, and in the attribution kernel credit the
    transposed block) give the portable build's and the numba Forest's bits, on hostile rows and
    on row counts that are no multiple of the vector or the block."""
    booster = _train(params)
    forest = Forest.from_booster(booster)
    vector = _vector_build(forest)
    assert vector.header["vector"] and compiled_ir.has_vector_trees(forest) == vectorised
    X = _probe(forest)
    _assert_matches(booster, vector, X)
    _assert_same_bits(vector, forest, X)
    _assert_same_bits(vector, CompiledForest.compile(forest, opt=0), X)
    for n in (1, 7, 9, 63, 65, 130):
        _assert_same_bits(vector, forest, X[:n])
    smaller = CompiledForest.compile(forest, cpu="host", opt=0, vector=True, contrib_splits=3)  # as AVX2's limit
    _assert_same_bits(smaller, forest, X)


def test_vector_build_mixes_vector_and_branchy_attribution_trees(monkeypatch):
    """With the vector threshold inside the model's tree sizes, both kinds of attribution tree credit one
    transposed block in tree order: still the numba Forest's bits."""
    X, y = _data(4000, 0)
    big = _train({"objective": "binary"}, rounds=10)  # 15 leaves, then 10 trees of 4 leaves
    params = {"objective": "binary", "num_leaves": 4, "verbose": -1, "num_threads": 2, "deterministic": True}
    booster = lgb.train(params, lgb.Dataset(X, y, categorical_feature=[CAT]), 10, init_model=big)
    forest = Forest.from_booster(booster)
    monkeypatch.setattr(compiled_ir, "VECTOR_SPLITS", 3)
    kinds = {compiled_ir._vectorised(forest, t) for t in range(len(forest.roots))}
    assert kinds == {True, False}
    _assert_same_bits(_vector_build(forest), forest, _probe(forest))


def test_wide_models_keep_the_vector_blocks_within_the_stack_budget():
    """300 features: blocks of 8 rows (2 x 8 x 300 x 8 bytes = 38 KB of transposed rows and credits), the same
    bits; 600 features: not even 8 rows fit STACK_BUDGET, so no CPU-level objects are built."""
    rng = np.random.default_rng(3)
    for n_features, fits in ((300, True), (600, False)):
        X = rng.normal(size=(3000, n_features))
        X[rng.random(X.shape) < 0.05] = np.nan
        y = (np.nansum(X[:, :4], axis=1) + rng.logistic(size=3000) > 0).astype(float)
        params = {"objective": "binary", "num_leaves": 7, "verbose": -1, "num_threads": 2, "deterministic": True}
        forest = Forest.from_booster(lgb.train(params, lgb.Dataset(X, y), 5))
        assert compiled_ir.has_vector_trees(forest) is fits
        if fits:
            assert compiled_ir.block_rows(forest, vector=True) == 8 and compiled_ir.block_rows(forest, False) == 64
            assert 2 * 8 * n_features * compiled_ir.block_rows(forest, vector=True) <= cmod.STACK_BUDGET
            _assert_same_bits(_vector_build(forest), forest, X[:77])
        else:
            assert compile_blob(forest, contrib=False, opt=0)[2] == [cmod.GENERIC_CPU]


def test_compile_blob_ships_cpu_levels_and_loads_the_best_runnable():
    """x86-64 and small trees: one object per X86_LEVELS level before the portable one; a CPU lacking a level's
    features loads the next; a broken bundle frame falls back to numba."""
    booster = _train({"objective": "binary", "num_leaves": 7})
    forest = Forest.from_booster(booster)
    blob, infos, cpus = compile_blob(forest, contrib=True, opt=0)
    X = _probe(forest)
    loaded = CompiledForest.load(blob, forest=forest)
    assert loaded is not None
    _assert_same_bits(loaded, forest, X)
    if cmod.GENERIC_CPU != "x86-64":
        assert cpus == [cmod.GENERIC_CPU] and blob.startswith(cmod.MAGIC)
        return
    assert cpus == [*cmod.X86_LEVELS, "x86-64"] and len(infos) == 3
    variants = cmod.split_bundle(blob)
    have = {f[1:] for f in cmod.llvm.get_host_cpu_features().flatten().split(",") if f.startswith("+")}
    runnable = [cpu for cpu, (names, _) in cmod.X86_LEVELS.items() if set(names.split()) <= have] + ["x86-64"]
    headers = [cmod._unseal(v)[0] for v in variants]
    assert [h["contrib_splits"] for h in headers] == [cmod.VECTOR_SPLITS, cmod.AVX2_CONTRIB_SPLITS, None]
    assert loaded.header["cpu"] == runnable[0]
    unrunnable = [_repacked(v, features="+nosuchfeature") for v in variants[:2]]
    fallback = CompiledForest.load(cmod._bundle([*unrunnable, variants[2]]), forest=forest)
    assert fallback is not None and fallback.header["cpu"] == "x86-64" and not fallback.header["vector"]
    _assert_same_bits(fallback, forest, X)
    assert CompiledForest.load(blob[:-10], forest=forest) is None
    assert CompiledForest.load(blob[: len(cmod.BUNDLE_MAGIC) + 4], forest=forest) is None


def _stumps(thresholds: list[float]) -> Forest:
    """One single-split tree per (threshold, missing type, default_left), all on feature 0.

    Tree t's right leaf is 2**t and its left leaf 0, so the margin's bits spell every tree's
    decision: any disagreement with the numba reference changes the sum.
    """
    combos = [(t, m, d) for t in thresholds for m in (0, 1, 2) for d in (False, True)]
    n = len(combos)
    assert n <= 52
    return Forest(
        n_features=1,
        objective="regression",
        sigmoid=1.0,
        roots=np.arange(n, dtype=np.int32),
        feature=np.zeros(n, dtype=np.int32),
        threshold=np.array([t for t, _, _ in combos]),
        flags=np.array([(m << 2) | (DEFAULT_LEFT if d else 0) for _, m, d in combos], dtype=np.uint8),
        left=np.array([~(2 * i) for i in range(n)], dtype=np.int32),
        right=np.array([~(2 * i + 1) for i in range(n)], dtype=np.int32),
        cat_start=np.zeros(n, dtype=np.int32),
        cat_len=np.zeros(n, dtype=np.int32),
        cat_bits=np.zeros(0, dtype=np.uint32),
        leaf_value=np.array([v for i in range(n) for v in (0.0, 2.0**i)]),
        delta_left=np.full(n, -0.5),
        delta_right=np.full(n, 0.5),
        expected_value=0.0,
    )


@pytest.mark.parametrize(
    "thresholds",
    [
        pytest.param([-1.0, -2 * K_ZERO, -K_ZERO, -K_ZERO / 2, 0.0, K_ZERO / 2, K_ZERO, 2 * K_ZERO], id="near-zero"),
        pytest.param([1.0, -0.0, np.nextafter(K_ZERO, 1), np.nextafter(-K_ZERO, -1), 1e300, -1e300], id="edges"),
    ],
)
def test_every_numeric_rule_corner_matches_numba(thresholds):
    """The compile-time folding of NaN / [-K, K] / threshold into one or two compares, checked
    on values at and around every boundary, for all missing types and default directions."""
    forest = _stumps(thresholds)
    special = [np.nan, 0.0, -0.0, np.inf, -np.inf, 1e-300, -1e-300, 5e-324]
    edges = [K_ZERO, -K_ZERO, *thresholds]
    near = [np.nextafter(e, d) for e in edges for d in (np.inf, -np.inf)]
    values = np.array(special + edges + near + [K_ZERO / 2, -K_ZERO / 2, 0.5, -0.5, 3.0, -3.0])
    X = values[:, None]
    for compiled in (CompiledForest.compile(forest, opt=0), _vector_build(forest)):
        np.testing.assert_array_equal(compiled.margin(X), forest.margin(X))
        margin, contrib = compiled.margin_and_contrib(X)
        np.testing.assert_array_equal(margin, forest.margin(X))
        np.testing.assert_array_equal(contrib, forest.margin_and_contrib(X)[1])


def test_categorical_set_membership_matches_numba():
    """Codes in a multi-word bitset (0, 3, 33, 63, 64: 63 is the sign bit of the branch-free form's mask),
    with NaN, negative, fractional, huge and infinite values."""
    cats = [0, 3, 33, 63, 64]
    words = np.zeros(3, dtype=np.uint32)
    for c in cats:
        words[c // 32] |= np.uint32(1 << (c % 32))
    forest = Forest(
        n_features=2,
        objective="regression",
        sigmoid=1.0,
        roots=np.array([0], dtype=np.int32),
        feature=np.array([1], dtype=np.int32),
        threshold=np.zeros(1),
        flags=np.array([CATEGORICAL | DEFAULT_LEFT | (2 << 2)], dtype=np.uint8),
        left=np.array([~0], dtype=np.int32),
        right=np.array([~1], dtype=np.int32),
        cat_start=np.zeros(1, dtype=np.int32),
        cat_len=np.array([3], dtype=np.int32),
        cat_bits=words,
        leaf_value=np.array([1.0, -1.0]),
        delta_left=np.array([1.0]),
        delta_right=np.array([-1.0]),
        expected_value=0.0,
    )
    codes = [np.nan, -np.inf, -2.0, -1.0, -0.999, -1e-36, 0.0, 0.7, 3.0, 3.99, 4.0, 33.0, 63.0, 64.0, 64.5, 65.0]
    codes += [95.0, 96.0, 2.0**31 - 1, 2.0**31, 1e12, np.inf]
    X = np.column_stack([np.zeros(len(codes)), codes])
    expected = forest.margin(X)
    assert set(expected.tolist()) == {1.0, -1.0}
    for compiled in (CompiledForest.compile(forest, opt=0), _vector_build(forest)):
        np.testing.assert_array_equal(compiled.margin(X), expected)
        np.testing.assert_array_equal(compiled.margin_and_contrib(X)[1], forest.margin_and_contrib(X)[1])


def test_random_forest_scale_single_leaf_trees_and_empty_input():
    """Average-output (rf) scaling follows the numba Forest; single-leaf trees and empty input also match LightGBM.

    (rf is compared to the Forest, not LightGBM: lightgbm 4.7's raw_score for rf boosters is the
    sum over trees, while Forest applies 1/trees; the compiled kernels mirror the Forest.)
    """
    X, y = _data(600, 2)
    rf = lgb.train(
        {"boosting": "rf", "bagging_freq": 1, "bagging_fraction": 0.7, "num_leaves": 7, "verbose": -1},
        lgb.Dataset(X, y),
        8,
    )
    stump = lgb.train({"objective": "binary", "verbose": -1, "min_data_in_leaf": 1000}, lgb.Dataset(X, y), 3)
    for booster in (rf, stump):
        forest = Forest.from_booster(booster)
        compiled = CompiledForest.compile(forest, opt=0)
        _assert_same_bits(_vector_build(forest), compiled, X)
        np.testing.assert_allclose(compiled.margin(X), forest.margin(X), rtol=0, atol=1e-9)
        margin, contrib = compiled.margin_and_contrib(X)
        ref_margin, ref_contrib = forest.margin_and_contrib(X)
        np.testing.assert_allclose(margin, ref_margin, rtol=0, atol=1e-9)
        np.testing.assert_allclose(contrib, ref_contrib, rtol=0, atol=1e-9)
        margin, contrib = compiled.margin_and_contrib(X[:0])
        assert margin.shape == (0,) and contrib.shape == (0, N_FEATURES)
    np.testing.assert_allclose(
        CompiledForest.compile(Forest.from_booster(stump), opt=0).margin(X), stump.predict(X, raw_score=True), atol=1e-9
    )
    assert Forest.from_booster(rf).scale == 1 / 8 and (Forest.from_booster(stump).roots < 0).all()


def test_threads_split_rows_without_changing_results(binary):
    booster, forest, compiled = binary
    X, _ = _data(4 * cmod.MIN_ROWS_PER_TASK + 17, 5)
    serial = CompiledForest.load(compiled.to_bytes(), threads=1)
    parallel = CompiledForest.load(compiled.to_bytes(), threads=3)
    np.testing.assert_array_equal(parallel.margin(X), serial.margin(X))
    for a, b in zip(parallel.margin_and_contrib(X), serial.margin_and_contrib(X), strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(parallel.margin(X), booster.predict(X, raw_score=True), rtol=0, atol=1e-9)
    parallel.close()


def test_blob_round_trip_in_another_process(binary, blob, tmp_path):
    booster, forest, _ = binary
    X = _probe(forest, seed=7)
    np.save(tmp_path / "X.npy", X)
    (tmp_path / "model.cforest").write_bytes(blob)
    script = textwrap.dedent(
        f"""
        import numpy as np
        from pipeline.decision.compiled import CompiledForest
        compiled = CompiledForest.load(open({str(tmp_path / "model.cforest")!r}, "rb").read())
        assert compiled is not None
        X = np.load({str(tmp_path / "X.npy")!r})
        margin, contrib = compiled.margin_and_contrib(X)
        np.save({str(tmp_path / "margin.npy")!r}, compiled.margin(X))
        np.save({str(tmp_path / "contrib.npy")!r}, contrib)
        """
    )
    subprocess.run([sys.executable, "-c", script], cwd=ROOT, check=True, timeout=120)
    np.testing.assert_allclose(np.load(tmp_path / "margin.npy"), booster.predict(X, raw_score=True), atol=1e-9)
    np.testing.assert_array_equal(np.load(tmp_path / "contrib.npy"), forest.margin_and_contrib(X)[1])


def _repacked(blob: bytes, **changes) -> bytes:
    """The blob with header fields changed and a valid digest: reaches the checks behind the checksum."""
    header, packed = cmod._unseal(blob)
    return cmod._pack(header | changes, zlib.decompress(packed))


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        pytest.param(
            lambda b: b[: len(b) // 2] + bytes([b[len(b) // 2] ^ 1]) + b[len(b) // 2 + 1 :], "checksum", id="flip"
        ),
        pytest.param(lambda b: b[:-100], "checksum", id="truncated"),
        pytest.param(lambda b: b"", "magic", id="empty"),
        pytest.param(lambda b: b"PK\x03\x04" + b[4:], "magic", id="not-a-blob"),
        pytest.param(lambda b: _repacked(b, triple="aarch64-unknown-linux-gnu"), "built for", id="other-arch"),
        pytest.param(lambda b: _repacked(b, cpu="future", features="+avx512f,+nosuchfeature"), "lacks", id="other-cpu"),
        pytest.param(lambda b: _repacked(b, format=99), "format", id="newer-format"),
    ],
)
def test_unusable_blobs_load_as_none_with_the_reason_logged(blob, damage, reason, caplog):
    with caplog.at_level(logging.WARNING, logger="pipeline.decision.compiled"):
        assert CompiledForest.load(damage(blob)) is None
    assert reason in caplog.text


def test_blob_from_another_forest_falls_back(binary, blob):
    booster, forest, _ = binary
    other = Forest.from_booster(_train({"objective": "binary"}, rounds=3))
    assert CompiledForest.load(blob, forest=other) is None
    assert load_or_fallback(blob, other) is other
    assert load_or_fallback(None, forest) is forest
    assert load_or_fallback(b"garbage", forest) is forest
    assert isinstance(load_or_fallback(blob, forest), CompiledForest)


def test_kill_switch_forces_the_fallback(blob, monkeypatch):
    monkeypatch.setenv(cmod.DISABLE_ENV, "1")
    assert CompiledForest.load(blob) is None


def test_host_cpu_build_records_and_checks_features():
    forest = _stumps([0.5])
    compiled = CompiledForest.compile(forest, cpu="host", opt=0)
    assert compiled.header["cpu"] != cmod.GENERIC_CPU and "+" in compiled.header["features"]
    again = CompiledForest.load(compiled.to_bytes())
    X = np.array([[0.0], [1.0], [np.nan]])
    np.testing.assert_array_equal(again.margin(X), forest.margin(X))


def test_margin_only_build_and_bad_input_are_refused(binary):
    _, forest, compiled = binary
    small = CompiledForest.compile(_stumps([0.5]), contrib=False, opt=0)
    with pytest.raises(NotImplementedError, match="attribution"):
        small.margin_and_contrib(np.zeros((2, 1)))
    with pytest.raises(ValueError, match="columns"):
        compiled.margin(np.zeros((3, N_FEATURES - 1)))
    X = np.asfortranarray(_data(50, 3)[0]).astype(np.float32)  # non-contiguous float32 is converted
    np.testing.assert_allclose(compiled.margin(X), forest.margin(X.astype(np.float64)), atol=1e-9)
