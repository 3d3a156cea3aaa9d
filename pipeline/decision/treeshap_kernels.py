"""The numba kernels of exact TreeSHAP: filling the per-leaf tables, and applying them to rows.

Layout for speed: chunks of rows run in parallel (`prange`); inside a chunk the loops are tree-major,
then node-major for the decisions (64-bit mask per row and tree) and leaf-major for the tables, with
the rows innermost. So a tree's tables and a leaf's masks stay in cache/registers while all the
chunk's rows use them, and the innermost loops are branch-free over rows (LLVM vectorises them).
Trees with more than 64 internal nodes take a per-row path-entry loop instead of the bitmask.

Separate from `treeshap`, which flattens a booster into the arrays these kernels read (`ShapForest`),
holds its settings, and selects the top-k reasons: the kernels take only arrays, so their loop
layout can be read (and tuned) apart from the bookkeeping.
"""

from __future__ import annotations

import numpy as np
from numba import prange

from pipeline.decision.forest import _child, _jit


@_jit(nogil=True)
def _fill_tables(uf_start, uf_zero, leaf_value, table_start, weights, table):  # pragma: no cover - numba
    """A_l(T) = v_l * sum_{S subset T} w(|S|, d) prod_{k not in S} z_k for every tabulated leaf and subset T.

    Computed as g(S) = v_l w(|S|, d) prod_{k not in S} z_k followed by a subset-sum transform; every
    term has the sign of v_l, so the sums are free of cancellation.
    """
    for leaf in range(table_start.shape[0]):
        off = table_start[leaf]
        s = uf_start[leaf]
        d = uf_start[leaf + 1] - s
        if off < 0 or d == 0:
            continue
        size = 1 << d
        full = size - 1
        prod = np.empty(size)  # prod of z over the subset
        count = np.empty(size, dtype=np.int64)  # popcount
        prod[0] = 1.0
        count[0] = 0
        for t in range(1, size):
            count[t] = count[t >> 1] + (t & 1)
            low = t & -t
            prod[t] = prod[t ^ low] * uf_zero[s + count[low - 1]]
        v = leaf_value[leaf]
        for t in range(size):
            table[off + t] = v * weights[d, count[t]] * prod[full ^ t]
        for i in range(d):
            bit = 1 << i
            for t in range(size):
                if t & bit:
                    table[off + t] += table[off + (t ^ bit)]


@_jit(inline="always")
def _leaf_polynomial(phi_t, r, v, d, feats, zero, one, pw):  # pragma: no cover - numba
    """One leaf's Shapley values for row r by Lundberg's EXTEND/UNWIND (LightGBM's Tree::TreeSHAP), O(d^2).

    Only for leaves too deep to tabulate. Path element 0 is LightGBM's dummy (z = o = 1), element
    k + 1 the leaf's k-th distinct feature; the extension order does not change the polynomial.
    """
    pw[0] = 1.0
    for k in range(d):  # ExtendPath at unique_depth k + 1
        ud = k + 1
        pw[ud] = 0.0
        for i in range(ud - 1, -1, -1):
            pw[i + 1] += one[k] * pw[i] * (i + 1) / (ud + 1)
            pw[i] = zero[k] * pw[i] * (ud - i) / (ud + 1)
    for k in range(d):  # UnwoundPathSum of each element
        z = zero[k]
        o = one[k]
        nxt = pw[d]
        total = 0.0
        for i in range(d - 1, -1, -1):
            if o != 0.0:
                tmp = nxt * (d + 1) / ((i + 1) * o)
                total += tmp
                nxt = pw[i] - tmp * z * ((d - i) / (d + 1))
            else:
                total += (pw[i] / z) / ((d - i) / (d + 1))
        phi_t[feats[k], r] += total * (o - z) * v


@_jit(inline="always")
def _decisions(X, lo, m, ns, ne, nodes, dec):  # pragma: no cover - numba
    """dec[r] bit (node - ns) = row lo + r goes left at that node, by LightGBM's own rule (`_child`).

    Node-major over the chunk's rows, so the node's type and thresholds are loop-invariant.
    """
    feature, threshold, flags, left, right, cat_start, cat_len, cat_bits = nodes
    for r in range(m):
        dec[r] = 0
    for node in range(ns, ne):
        goes_left = left[node]
        for r in range(m):
            nxt = _child(X[lo + r], node, feature, threshold, flags, left, right, cat_start, cat_len, cat_bits)
            dec[r] |= np.int64(nxt == goes_left) << (node - ns)


@_jit(inline="always")
def _leaf_batch(phi_t, dec, m, leaf, leaves, hot, neg, one, pw):  # pragma: no cover - numba
    """One leaf (tree of <= 64 internal nodes) for all the chunk's rows; leaf-invariant data stays in registers.

    A feature is hot iff the row agrees with the path at all its nodes: ((dec ^ want) & mask) == 0.
    The inner loops run over rows without branches (selects), which LLVM vectorises with gathers.
    """
    leaf_value, _, _, _, _, uf_start, uf_feature, uf_zero, uf_coef, uf_mask, uf_want, table_start, table = leaves
    us = uf_start[leaf]
    d = uf_start[leaf + 1] - us
    off = table_start[leaf]
    if d == 0:
        return
    if off < 0:
        for r in range(m):
            for i in range(d):
                one[i] = 1.0 if ((dec[r] ^ uf_want[us + i]) & uf_mask[us + i]) == 0 else 0.0
            _leaf_polynomial(phi_t, r, leaf_value[leaf], d, uf_feature[us:], uf_zero[us:], one, pw)
        return
    for r in range(m):
        hot[r] = 0
    for i in range(d):
        want = uf_want[us + i]
        mask = uf_mask[us + i]
        for r in range(m):
            hot[r] |= np.int64(((dec[r] ^ want) & mask) == 0) << i
    for r in range(m):
        neg[r] = -table[off + hot[r]]
    for i in range(d):
        coef = uf_coef[us + i]
        phi = phi_t[uf_feature[us + i]]
        bit = 1 << i
        for r in range(m):
            h = hot[r]
            hot_value = coef * table[off + (h ^ bit)]
            phi[r] += hot_value if h & bit else neg[r]


@_jit(inline="always")
def _wide_tree(phi_t, X, lo, m, ns, ne, ls, le, nodes, leaves, went_left, one, pw):  # pragma: no cover - numba
    """A tree with > 64 internal nodes (no bitmask fits): per row, the hot set from each leaf's path entries."""
    feature, threshold, flags, left, right, cat_start, cat_len, cat_bits = nodes
    leaf_value, path_start, path_node, path_left, path_pos, uf_start, uf_feature, uf_zero, uf_coef = leaves[:9]
    table_start, table = leaves[11], leaves[12]
    for r in range(m):
        x = X[lo + r]
        for node in range(ns, ne):
            nxt = _child(x, node, feature, threshold, flags, left, right, cat_start, cat_len, cat_bits)
            went_left[node - ns] = 1 if nxt == left[node] else 0
        for leaf in range(ls, le):
            us = uf_start[leaf]
            d = uf_start[leaf + 1] - us
            for i in range(d):
                one[i] = 1.0
            for p in range(path_start[leaf], path_start[leaf + 1]):
                if went_left[path_node[p]] != path_left[p]:
                    one[path_pos[p]] = 0.0
            off = table_start[leaf]
            if off < 0:
                _leaf_polynomial(phi_t, r, leaf_value[leaf], d, uf_feature[us:], uf_zero[us:], one, pw)
                continue
            h = 0
            for i in range(d):
                h |= np.int64(one[i] == 1.0) << i
            for i in range(d):
                if (h >> i) & 1:
                    phi_t[uf_feature[us + i], r] += uf_coef[us + i] * table[off + (h ^ (1 << i))]
                else:
                    phi_t[uf_feature[us + i], r] -= table[off + h]


@_jit(parallel=True, nogil=True)
def _shap(X, chunk, nodes, node_start, leaf_start, leaves, max_nodes, max_unique):  # pragma: no cover - numba
    """Row chunks in parallel; inside a chunk tree-major then leaf-major, so a tree's tables and a leaf's
    masks serve all the chunk's rows. Per-task scratch is allocated once per chunk; contributions
    accumulate feature-major (phi_t[feature, row]) so the row loops are unit-stride."""
    n, f = X.shape
    out = np.empty((n, f))
    for c in prange((n + chunk - 1) // chunk):
        lo = c * chunk
        m = min(n, lo + chunk) - lo
        dec = np.empty(chunk, dtype=np.int64)
        hot = np.empty(chunk, dtype=np.int64)
        neg = np.empty(chunk)
        phi_t = np.zeros((f, chunk))
        went_left = np.empty(max(max_nodes, 1), dtype=np.uint8)
        one = np.empty(max(max_unique, 1))
        pw = np.empty(max_unique + 2)
        for t in range(node_start.shape[0] - 1):
            ns = node_start[t]
            ne = node_start[t + 1]
            if ne - ns > 64:
                _wide_tree(phi_t, X, lo, m, ns, ne, leaf_start[t], leaf_start[t + 1], nodes, leaves, went_left, one, pw)
            elif ne > ns:  # a single-leaf tree only adds to the bias
                _decisions(X, lo, m, ns, ne, nodes, dec)
                for leaf in range(leaf_start[t], leaf_start[t + 1]):
                    _leaf_batch(phi_t, dec, m, leaf, leaves, hot, neg, one, pw)
        for r in range(m):
            for j in range(f):
                out[lo + r, j] = phi_t[j, r]
    return out
