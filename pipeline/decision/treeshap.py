"""Exact TreeSHAP for LightGBM boosters, equal to `booster.predict(X, pred_contrib=True)`, compiled.

Why: adverse-action reasons must be exact Shapley values (the same numbers LightGBM's
`pred_contrib` gives), but `pred_contrib` runs at ~1k rows/s on 2 cores. This module computes
the same values several times faster with precomputed per-leaf tables (the idea of Fast
TreeSHAP v2, Yang 2021) while deciding every split by LightGBM's real decision rule, so
missing values that follow a node's default direction are exact.

The algorithm. LightGBM's TreeSHAP (path-dependent) explains, per tree, the game
f(S) = sum over leaves l of v_l * prod_{k in S, k on path(l)} o_k * prod_{k not in S, on path(l)} z_k,
where for a leaf's path P (its distinct split features, d = |P|):
- z_k = product of cover ratios count(child on path) / count(node) over the path's nodes on k;
- o_k = 1 if the row takes the path's direction at every node on k (the "hot" side), else 0.
With w(s, d) = s! (d - s - 1)! / d! and H = {k in P: o_k = 1}, the Shapley value of leaf l is
    cold k (o_k = 0):  phi_k -= A_l(H)
    hot  k (o_k = 1):  phi_k += (1 / z_k - 1) * A_l(H minus k)
    where A_l(T) = v_l * sum_{S subset of T} w(|S|, d) * prod_{k in P minus S} z_k.
A_l depends only on the model, so it is tabulated for all 2^d subsets T when the model is
loaded (a subset-sum transform, O(d 2^d) per leaf). Per row and tree the work is then: one
decision per internal node (`pipeline.decision.forest._child`, the exact LightGBM rule incl.
NaN/zero missing types, default_left and categorical bitsets), a hot/cold bitmask per leaf from
those decisions (never from threshold intervals, which is what breaks Fast TreeSHAP v2 on NaN),
and d + 1 table look-ups per leaf. Leaves with more than `max_bits` distinct features (or a
zero cover) fall back to Lundberg's EXTEND/UNWIND polynomial for that leaf, O(d^2), the same
arithmetic as LightGBM's `Tree::TreeSHAP`.

The numba kernels that apply the tables to rows are in `treeshap_kernels`.

Public API: `shap_values(model, X)`, `expected_value(model)`, `shap_forest(model)`, `top_k_exact(contrib, k)`.
"""

from __future__ import annotations

import math
import weakref
from dataclasses import dataclass
from typing import Any

import numba
import numpy as np
from numba import prange

from pipeline.decision.forest import Forest, _jit
from pipeline.decision.treeshap_kernels import _fill_tables, _shap

# ShapForests built for bare boosters, so repeated calls never re-flatten the same model. Boosters are
# not mutated after training in this pipeline; a retrained booster is a new object (as in attribution.py).
_SHAP_FORESTS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

MAX_BITS = 12  # leaves with more distinct split features use the O(d^2) polynomial instead of a 2^d table
MAX_TABLE_BYTES = 256 * 2**20  # table budget; leaves beyond it also use the polynomial
CHUNK_ROWS = 128  # rows per parallel task; tree- then leaf-major within a chunk keeps tables and masks hot


class _DumpOnly:
    """Lets `Forest.from_booster` reuse an already computed `dump_model()` (dumping twice costs time)."""

    def __init__(self, dump: dict[str, Any]) -> None:
        self._dump = dump

    def dump_model(self) -> dict[str, Any]:
        return self._dump


@dataclass
class ShapForest:
    """A booster's decision arrays (`forest`) plus what TreeSHAP needs: per-leaf paths and subset tables.

    Trees' internal nodes and leaves are contiguous in the forest's numbering (depth-first, left first),
    so a tree is the ranges node_start[t]:node_start[t+1] and leaf_start[t]:leaf_start[t+1].
    """

    forest: Forest
    node_start: np.ndarray  # int64 per tree + 1
    leaf_start: np.ndarray  # int64 per tree + 1
    path_start: np.ndarray  # int64 per leaf + 1: the leaf's entries in path_*
    path_node: np.ndarray  # int64 node index local to its tree
    path_left: np.ndarray  # uint8: 1 when the path to the leaf goes left at that node
    path_pos: np.ndarray  # int64 position of the node's feature among the leaf's distinct features
    uf_start: np.ndarray  # int64 per leaf + 1: the leaf's distinct features in uf_*
    uf_feature: np.ndarray  # int64 feature index
    uf_zero: np.ndarray  # float64 z_k, product of the path's cover ratios on that feature
    uf_coef: np.ndarray  # float64 1 / z_k - 1
    uf_mask: np.ndarray  # int64 bits (local node index) of the path's nodes on that feature; trees <= 64 nodes
    uf_want: np.ndarray  # int64 bits set where the path goes left, within uf_mask
    table_start: np.ndarray  # int64 per leaf; -1 means "use the polynomial fallback"
    table: np.ndarray  # float64 A_l(T) for every subset T, 2^d entries per tabulated leaf
    expected_value: float  # the bias column of pred_contrib
    max_nodes: int  # most internal nodes in one tree (per-thread scratch size)
    max_unique: int  # most distinct features on one path (fallback scratch size)

    @property
    def n_features(self) -> int:
        return self.forest.n_features

    @classmethod
    def from_booster(cls, booster: Any, max_bits: int = MAX_BITS, max_table_bytes: int = MAX_TABLE_BYTES) -> ShapForest:
        """Flatten `booster.dump_model()` once into decision arrays, leaf paths with covers, and tables."""
        dump = booster.dump_model()
        forest = Forest.from_booster(_DumpOnly(dump))
        paths = _Paths(max_bits=max_bits, max_entries=max_table_bytes // 8)
        for info in dump["tree_info"]:
            paths.add_tree(info["tree_structure"])
        if paths.n_nodes != len(forest.feature) or not np.array_equal(paths.leaf_values, forest.leaf_value):
            raise RuntimeError("leaf/node numbering differs from Forest's; the dump walk is out of sync")
        arrays = paths.arrays()
        table = np.zeros(paths.table_size)
        _fill_tables(
            arrays["uf_start"],
            arrays["uf_zero"],
            forest.leaf_value,
            arrays["table_start"],
            _weights(paths.max_unique),
            table,
        )
        return cls(
            forest=forest,
            table=table,
            expected_value=paths.expected_value,
            max_nodes=paths.max_nodes,
            max_unique=paths.max_unique,
            **arrays,
        )

    def shap_values(self, X: np.ndarray) -> np.ndarray:
        """TreeSHAP values (n, n_features) on the raw-score scale, without the bias column."""
        X = self.forest._check(X)
        f = self.forest
        nodes = (f.feature, f.threshold, f.flags, f.left, f.right, f.cat_start, f.cat_len, f.cat_bits)
        leaves = (
            f.leaf_value,
            self.path_start,
            self.path_node,
            self.path_left,
            self.path_pos,
            self.uf_start,
            self.uf_feature,
            self.uf_zero,
            self.uf_coef,
            self.uf_mask,
            self.uf_want,
            self.table_start,
            self.table,
        )
        out = _shap(X, CHUNK_ROWS, nodes, self.node_start, self.leaf_start, leaves, self.max_nodes, self.max_unique)
        # No `forest.scale` here: for average_output (random forest) models LightGBM's pred_contrib and
        # predict(raw_score=True) are sums over trees, not averages (only predict()'s probability averages),
        # and these values are defined as equal to pred_contrib.
        return out


def _weights(max_d: int) -> np.ndarray:
    """w[d, s] = s! (d - s - 1)! / d!, the Shapley weight of a coalition of size s among d players."""
    w = np.zeros((max_d + 1, max_d + 1))
    for d in range(1, max_d + 1):
        for s in range(d):
            w[d, s] = 1.0 / (d * math.comb(d - 1, s))
    return w


class _Paths:
    """Walks the dumped trees in Forest's order, recording each leaf's path, distinct features and covers."""

    def __init__(self, max_bits: int, max_entries: int) -> None:
        self.max_bits, self.max_entries = max_bits, max_entries
        self.node_start, self.leaf_start, self.path_start, self.uf_start = [0], [0], [0], [0]
        self.path_node: list[int] = []
        self.path_left: list[int] = []
        self.path_pos: list[int] = []
        self.uf_feature: list[int] = []
        self.uf_zero: list[float] = []
        self.uf_mask: list[int] = []
        self.uf_want: list[int] = []
        self.table_start: list[int] = []
        self.leaf_values: list[float] = []
        self._leaf_counts: list[float] = []  # leaf counts of the tree being walked (cleared per tree)
        self.n_nodes = self.table_size = self.max_nodes = self.max_unique = 0
        self.expected_value = 0.0

    def add_tree(self, root: dict[str, Any]) -> None:
        """Add one tree; its expected value is LightGBM's `Tree::ExpectedValue` (leaf counts / root count)."""
        first_leaf, first_node = len(self.leaf_values), self.n_nodes
        self._walk(root, [])
        self.node_start.append(self.n_nodes)
        self.leaf_start.append(len(self.leaf_values))
        self.max_nodes = max(self.max_nodes, self.n_nodes - first_node)
        if "split_index" not in root:
            self.expected_value += float(root["leaf_value"])
            self._leaf_counts.clear()
            return
        total = float(root["internal_count"])
        for leaf, count in zip(range(first_leaf, len(self.leaf_values)), self._leaf_counts, strict=True):
            self.expected_value += (count / total) * self.leaf_values[leaf]
        self._leaf_counts.clear()

    def _walk(self, node: dict[str, Any], path: list[tuple[int, int, int, float]]) -> None:
        """Depth-first, left before right, numbering internal nodes in preorder like forest._Builder."""
        if "split_index" not in node:
            self._leaf(node, path)
            return
        local = self.n_nodes - self.node_start[-1]
        self.n_nodes += 1
        count = float(node["internal_count"])
        feature = int(node["split_feature"])
        for child, went_left in ((node["left_child"], 1), (node["right_child"], 0)):
            child_count = float(child["internal_count"] if "split_index" in child else child.get("leaf_count", 0))
            path.append((local, went_left, feature, child_count / count if count > 0 else 0.0))
            self._walk(child, path)
            path.pop()

    def _leaf(self, node: dict[str, Any], path: list[tuple[int, int, int, float]]) -> None:
        """Record the leaf's path entries, its distinct features with their z, and reserve its table."""
        self.leaf_values.append(float(node["leaf_value"]))
        self._leaf_counts.append(float(node.get("leaf_count", 0) or 0))
        features: list[int] = []
        zero: list[float] = []
        mask: list[int] = []
        want: list[int] = []
        for local, went_left, feature, ratio in path:
            if feature not in features:
                features.append(feature)
                zero.append(1.0)
                mask.append(0)
                want.append(0)
            pos = features.index(feature)
            zero[pos] *= ratio
            if local < 64:  # only used for trees of <= 64 internal nodes
                mask[pos] |= 1 << local
                want[pos] |= went_left << local
            self.path_node.append(local)
            self.path_left.append(went_left)
            self.path_pos.append(pos)
        self.path_start.append(len(self.path_node))
        self.uf_feature.extend(features)
        self.uf_zero.extend(zero)
        self.uf_mask.extend(mask)
        self.uf_want.extend(want)
        self.uf_start.append(len(self.uf_feature))
        d = len(features)
        self.max_unique = max(self.max_unique, d)
        if d <= self.max_bits and all(z > 0.0 for z in zero) and self.table_size + (1 << d) <= self.max_entries:
            self.table_start.append(self.table_size)
            self.table_size += 1 << d
        else:
            self.table_start.append(-1)

    def arrays(self) -> dict[str, np.ndarray]:
        i64 = lambda v: np.asarray(v, dtype=np.int64)  # noqa: E731
        zero = np.asarray(self.uf_zero, dtype=np.float64)
        with np.errstate(divide="ignore"):
            coef = np.where(zero > 0, 1.0 / np.where(zero > 0, zero, 1.0) - 1.0, np.inf)
        return {
            "node_start": i64(self.node_start),
            "leaf_start": i64(self.leaf_start),
            "path_start": i64(self.path_start),
            "path_node": i64(self.path_node),
            "path_left": np.asarray(self.path_left, dtype=np.uint8),
            "path_pos": i64(self.path_pos),
            "uf_start": i64(self.uf_start),
            "uf_feature": i64(self.uf_feature),
            "uf_zero": zero,
            "uf_coef": coef,
            "uf_mask": np.asarray(self.uf_mask, dtype=np.uint64).view(np.int64),
            "uf_want": np.asarray(self.uf_want, dtype=np.uint64).view(np.int64),
            "table_start": i64(self.table_start),
        }


_TOP_K_BLOCK = 4096  # rows per parallel task of `_top_k`: its scratch array is made once per block


@_jit(parallel=True, nogil=True)
def _top_k(contrib, k):  # pragma: no cover - numba
    """One pass per row keeping the k best (value, index) in order: a value enters only when strictly larger
    than the one it passes, so ties go to the lower feature index. Only positive values are reasons (NaN never).

    The kept values start at 0.0, so one test, "above the k-th kept value", skips non-reasons and values out
    of the top k alike: after the first few features it is nearly always false, which the branch predictor
    learns (testing `v > 0` first, a coin toss, and a scratch array per row: 100,000 x 29 took 33 ms against
    23, measured interleaved)."""
    n, f = contrib.shape
    out = np.full((n, k), -1, dtype=np.int64)
    if k == 0:
        return out
    for b in prange((n + _TOP_K_BLOCK - 1) // _TOP_K_BLOCK):
        best = np.empty(k)
        for r in range(b * _TOP_K_BLOCK, min(n, (b + 1) * _TOP_K_BLOCK)):
            best[:] = 0.0
            last = 0.0
            for i in range(f):
                v = contrib[r, i]
                if not v > last:
                    continue
                pos = k - 1
                while pos > 0 and v > best[pos - 1]:
                    best[pos] = best[pos - 1]
                    out[r, pos] = out[r, pos - 1]
                    pos -= 1
                best[pos] = v
                out[r, pos] = i
                last = best[k - 1]
    return out


def top_k_exact(contrib: np.ndarray, k: int) -> np.ndarray:
    """(n, k) feature indices of the k largest positive contributions, largest first; -1 pads.

    Deterministic tie rule, so the same values always give the same reasons: larger value first,
    equal values to the lower feature index (`pipeline.decision.reasons.top_reasons` leaves exact
    ties at the k-th place to `argpartition`). Map to texts with `np.asarray(texts)[idx]` where idx >= 0.
    """
    contrib = np.ascontiguousarray(contrib, dtype=np.float64)
    if contrib.ndim != 2 or k < 0:
        raise ValueError(f"expected a 2-d matrix and k >= 0, got shape {contrib.shape} and k={k}")
    return _top_k(contrib, k)


def shap_forest(model: Any) -> ShapForest:
    """The ShapForest of a ShapForest, a `lightgbm.Booster` (cached per booster), or a model with `.booster`."""
    if isinstance(model, ShapForest):
        return model
    if isinstance(model, Forest):
        raise TypeError("a Forest has no node counts; pass the lightgbm.Booster (or a ShapForest)")
    booster = getattr(model, "booster", model)  # PDModel / LimitModel hold their booster
    if not hasattr(booster, "dump_model"):
        raise TypeError(f"expected a lightgbm.Booster, ShapForest or a model with .booster, got {type(model)!r}")
    cached = _SHAP_FORESTS.get(booster)
    if cached is None:
        cached = _SHAP_FORESTS[booster] = ShapForest.from_booster(booster)
    return cached


def shap_values(model: Any, X: np.ndarray, num_threads: int | None = None) -> np.ndarray:
    """Exact TreeSHAP (n, n_features) on the raw-score (log-odds) scale, without the bias column.

    Equals `booster.predict(X, pred_contrib=True)[:, :-1]` to ~1e-12; `num_threads` (default: numba's,
    i.e. all cores) caps the threads for this call, like LightGBM's argument.
    """
    forest = shap_forest(model)
    if num_threads is None:
        return forest.shap_values(X)
    previous = numba.get_num_threads()
    # numba.config sets NUMBA_NUM_THREADS from the environment at import (globals()), unseen by mypy
    numba.set_num_threads(max(1, min(int(num_threads), numba.config.NUMBA_NUM_THREADS)))  # type: ignore[attr-defined]
    try:
        return forest.shap_values(X)
    finally:
        numba.set_num_threads(previous)


def expected_value(model: Any) -> float:
    """The bias term: LightGBM's pred_contrib last column, so raw score = expected_value + shap.sum(1)."""
    return shap_forest(model).expected_value
