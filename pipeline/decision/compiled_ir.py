"""LLVM IR of a `Forest`: one branchy function per tree (text) and the row-loop drivers (`llvmlite.ir`).

Decision predicates are folded at compile time: with K = kZeroThreshold, a numerical split
sends the NaN row and the "zero" interval [-K, K] (zeroed by the predictor, or "missing" for
missing type Zero) one way and the other reals by `x <= threshold`, so the set of reals that
goes left is one or two intervals, i.e. one or two fcmp instructions (see `_numeric_left`).

Separate from `compiled` (compiling the IR to an object, the blob format, loading and the runtime):
generation runs once, at registration, and only `CompiledForest.compile` imports this module. Its
numeric constants (ROW_BLOCK, the LLVM types, the missing-type codes) are defined in `compiled`,
beside the runtime's, where tests/test_settings.py documents them.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
from llvmlite import ir

from pipeline.decision.compiled import (
    _DOUBLE,
    _I32,
    _I64,
    _MISSING_NAN,
    _MISSING_ZERO,
    CONTRIB_SYMBOL,
    MARGIN_SYMBOL,
    ROW_BLOCK,
    SELECT_NODES,
)
from pipeline.decision.forest import CATEGORICAL, DEFAULT_LEFT, K_ZERO, Forest

_DPTR = _DOUBLE.as_pointer()


def _hex(value: float) -> str:
    """Exact IR spelling of a double (decimal literals must be exactly representable)."""
    return f"0x{struct.unpack('<Q', struct.pack('<d', value))[0]:016X}"


def _numeric_left(v: str, out: str, threshold: float, missing: int, default_left: bool) -> list[str]:
    """IR lines setting i1 %out = "goes left" for a numerical split, equal to `forest._child` for every double.

    _child maps NaN (unless missing type NaN) and [-K, K] to 0.0; "zero" then goes the default
    way for missing type Zero, else by 0 <= threshold; NaN under missing type NaN goes the
    default way. So NaN has one direction, [-K, K] one, other reals go left iff v <= threshold:
    the reals going left are one interval (one fcmp) or, in rare corner cases, two.
    """
    k = _hex(K_ZERO)
    zero_left = default_left if missing == _MISSING_ZERO else threshold >= 0.0
    nan_left = default_left if missing in (_MISSING_ZERO, _MISSING_NAN) else zero_left
    le, lt = ("ule", "ult") if nan_left else ("ole", "olt")  # unordered compares are true for NaN
    if zero_left and threshold >= -K_ZERO:  # (-inf, t] U [-K, K] == (-inf, max(t, K)]
        return [f"{out} = fcmp {le} double {v}, {_hex(max(threshold, K_ZERO))}"]
    if not zero_left and threshold < -K_ZERO:  # (-inf, t] is disjoint from [-K, K]
        return [f"{out} = fcmp {le} double {v}, {_hex(threshold)}"]
    if not zero_left and threshold <= K_ZERO:  # (-inf, t] minus [-K, K] == (-inf, -K)
        return [f"{out} = fcmp {lt} double {v}, {_hex(-K_ZERO)}"]
    lines = [f"{out}.a = call double @llvm.fabs.f64(double {v})"]
    if zero_left:  # t < -K (missing type Zero, default left): (-inf, t] U [-K, K]
        lines += [f"{out}.b = fcmp {le} double {v}, {_hex(threshold)}", f"{out}.c = fcmp ole double {out}.a, {k}"]
        return lines + [f"{out} = or i1 {out}.b, {out}.c"]
    # t > K (missing type Zero, default right): (-inf, -K) U (K, t]
    lines += [f"{out}.b = fcmp ole double {v}, {_hex(threshold)}", f"{out}.c = fcmp ogt double {out}.a, {k}"]
    if not nan_left:
        return lines + [f"{out} = and i1 {out}.b, {out}.c"]
    return lines + [
        f"{out}.d = and i1 {out}.b, {out}.c",
        f"{out}.e = fcmp uno double {v}, 0.0",
        f"{out} = or i1 {out}.d, {out}.e",
    ]


def _categories(forest: Forest, node: int) -> list[int]:
    """Category codes in the node's bitset (they go left)."""
    start, length = int(forest.cat_start[node]), int(forest.cat_len[node])
    cats: list[int] = []
    for w, word in enumerate(forest.cat_bits[start : start + length].tolist()):
        cats.extend(32 * w + bit for bit in range(32) if (word >> bit) & 1)
    return cats


def _categorical_lines(forest: Forest, node: int, v: str, out: str) -> list[str]:
    """IR lines setting i1 %out = "goes left" for a categorical split, without a branch.

    NaN, <= -1 and >= 2^31 go right; else the truncated code goes left iff it is in the node's set:
    one shift of a 64-bit mask for codes below 64, one compare for each larger code.
    """
    cats = _categories(forest, node)
    mask = sum(1 << c for c in cats if c < 64)
    mask -= (mask >> 63) << 64  # the same 64 bits as a signed i64 literal
    lines = [
        f"{out}.lo = fcmp ogt double {v}, -1.0",
        f"{out}.hi = fcmp olt double {v}, {_hex(2147483648.0)}",
        f"{out}.in = and i1 {out}.lo, {out}.hi",
        f"{out}.v = select i1 {out}.in, double {v}, double 0.0",
        f"{out}.i = fptosi double {out}.v to i64",
        f"{out}.s = and i64 {out}.i, 63",
        f"{out}.m = lshr i64 {mask}, {out}.s",
        f"{out}.b = trunc i64 {out}.m to i1",
        f"{out}.u = icmp ult i64 {out}.i, 64",
        f"{out}.k = and i1 {out}.b, {out}.u",
    ]
    member = f"{out}.k"
    for j, cat in enumerate(c for c in cats if c >= 64):
        lines += [f"{out}.e{j} = icmp eq i64 {out}.i, {cat}", f"{out}.k{j} = or i1 {member}, {out}.e{j}"]
        member = f"{out}.k{j}"
    return lines + [f"{out} = and i1 {out}.in, {member}"]


def _left_lines(forest: Forest, node: int, v: str, out: str) -> list[str]:
    """IR lines setting i1 %out = "goes left" for the value %v of the node's split feature."""
    flags = int(forest.flags[node])
    if flags & CATEGORICAL:
        return _categorical_lines(forest, node, v, out)
    return _numeric_left(v, out, float(forest.threshold[node]), (flags >> 2) & 3, bool(flags & DEFAULT_LEFT))


def _load_lines(forest: Forest, node: int) -> tuple[str, list[str]]:
    f, v = int(forest.feature[node]), f"%v{node}"
    return v, [f"{v}.p = getelementptr inbounds double, ptr %x, i64 {f}", f"{v} = load double, ptr {v}.p"]


def _credit_lines(name: str, feature: int, delta: str) -> list[str]:
    """contrib[feature] += delta (an IR double operand)."""
    return [
        f"{name}.p = getelementptr inbounds double, ptr %c, i64 {feature}",
        f"{name}.o = load double, ptr {name}.p",
        f"{name}.n = fadd double {name}.o, {delta}",
        f"store double {name}.n, ptr {name}.p",
    ]


def _subtree(forest: Forest, node: int) -> list[int]:
    """The internal nodes under `node` (itself included), parents before children (pre-order)."""
    nodes, stack = [], [node]
    while stack:
        n = stack.pop()
        if n >= 0:
            nodes.append(n)
            stack += [int(forest.right[n]), int(forest.left[n])]
    return nodes


def _split_counts(forest: Forest, root: int) -> dict[int, int]:
    """Splits in the subtree under each internal node of one tree (the node itself included)."""
    counts: dict[int, int] = {}
    for n in reversed(_subtree(forest, root)):  # children before parents
        counts[n] = 1 + sum(counts.get(int(c), 0) for c in (forest.left[n], forest.right[n]))
    return counts


def _select_lines(forest: Forest, top: int) -> list[str]:
    """A small subtree without branches: every split's predicate, then the leaf picked by `select`s.

    Mispredicted branches dominate a branchy walk (each costs ~15 cycles, and many splits are a coin
    toss for the predictor); computing all <= SELECT_NODES predicates costs less.
    """
    nodes = _subtree(forest, top)
    lines: list[str] = []
    for n in nodes:
        v, load = _load_lines(forest, n)
        lines += load + _left_lines(forest, n, v, f"%k{n}")

    def leaf(n: int) -> str:
        return str(~n) if n < 0 else f"%s{n}"

    for n in reversed(nodes):  # children before parents
        lines.append(f"%s{n} = select i1 %k{n}, i32 {leaf(int(forest.left[n]))}, i32 {leaf(int(forest.right[n]))}")
    return lines + [f"ret i32 %s{top}"]


def _split_lines(forest: Forest, node: int, v: str, left: str, right: str) -> list[str]:
    """Branch from the current block to label `left` or `right` for the value %v of the split feature."""
    if not int(forest.flags[node]) & CATEGORICAL:
        return _left_lines(forest, node, v, f"{v}.l") + [f"br i1 {v}.l, label %{left}, label %{right}"]
    # NaN, <= -1 and >= 2^31 go right; else the truncated code's set membership decides (a switch
    # LLVM lowers to a bit test or a jump table).
    cases = " ".join(f"i64 {cat}, label %{left}" for cat in _categories(forest, node))
    return [
        f"{v}.lo = fcmp ogt double {v}, -1.0",
        f"{v}.hi = fcmp olt double {v}, {_hex(2147483648.0)}",
        f"{v}.in = and i1 {v}.lo, {v}.hi",
        f"br i1 {v}.in, label %{v[1:]}.m, label %{right}",
        f"{v[1:]}.m:",
        f"{v}.i = fptosi double {v} to i64",
        f"switch i64 {v}.i, label %{right} [ {cases} ]",
    ]


def _tree_ir(forest: Forest, t: int, contrib: bool) -> str:
    """`i32 @tree<t>(ptr x)` (or `@treec<t>(ptr x, ptr contrib)`): the leaf index of row x.

    The margin variant branches near the root, where a tree is wide, and evaluates each subtree of at
    most SELECT_NODES splits without branches (`_select_lines`): the same leaf, faster than branching all
    the way down (measured, one thread, 100k rows: the shipped limit model 1.8x, PD margin 1.5x; synthetic
    models of 7-63 leaves 1.2-1.6x; subtrees of up to 3 splits gave less, of up to 15 the same within
    noise). The contrib variant branches all the way and adds the split's delta to contrib[feature] on
    entering each child, in path order like `forest._margin_contrib` (zero deltas are skipped: adding
    0.0 changes nothing); there the branch-free form, crediting +0.0 off the path, measured 1.0-1.5x
    slower. Inline stores with immediate deltas measured ~1.5x faster than a per-leaf table walk, at
    the price of a second copy of the tree code. IR is written as text: llvmlite.ir objects cost ~10x
    more Python time for thousands of tiny blocks. The walk is iterative: deep, unbalanced trees would
    exceed Python's recursion limit.
    """
    params = "ptr noalias nocapture readonly %x" + (", ptr noalias nocapture %c" if contrib else "")
    lines = [f"define i32 @{_tree_name(t, contrib)}({params}) noinline nounwind {{", "entry:"]
    splits = _split_counts(forest, int(forest.roots[t]))
    stack: list[tuple[int, str, int, float]] = [(int(forest.roots[t]), "", 0, 0.0)]
    while stack:
        node, label, credit_feature, delta = stack.pop()
        if label:
            lines.append(f"{label}:")
        if contrib and delta != 0.0:
            lines += _credit_lines(f"%d{label}", credit_feature, _hex(delta))
        if node < 0:
            lines.append(f"ret i32 {~node}")
            continue
        if not contrib and splits[node] <= SELECT_NODES:
            lines += _select_lines(forest, node)
            continue
        f = int(forest.feature[node])
        v, load = _load_lines(forest, node)
        lines += load + _split_lines(forest, node, v, f"L{node}", f"R{node}")
        stack.append((int(forest.right[node]), f"R{node}", f, float(forest.delta_right[node])))
        stack.append((int(forest.left[node]), f"L{node}", f, float(forest.delta_left[node])))
    lines.append("}")
    return "\n".join(lines)


def _tree_name(t: int, contrib: bool) -> str:
    return f"tree{'c' if contrib else ''}{t}"


@contextmanager
def _loop(b: ir.IRBuilder, start: ir.Value, stop: ir.Value) -> Iterator[ir.Value]:
    """for (i = start; i < stop; ++i) with a phi counter (no memory traffic, no optimizer needed)."""
    before = b.block
    head, body, end = b.append_basic_block(), b.append_basic_block(), b.append_basic_block()
    b.branch(head)
    b.position_at_end(head)
    i = b.phi(_I64)
    i.add_incoming(start, before)
    b.cbranch(b.icmp_signed("<", i, stop), body, end)
    b.position_at_end(body)
    yield i
    i.add_incoming(b.add(i, ir.Constant(_I64, 1)), b.block)
    b.branch(head)
    b.position_at_end(end)


def _emit_driver(module: ir.Module, forest: Forest, leaf_value: ir.GlobalVariable, contrib: bool) -> None:
    """`void cf_margin(const double* X, int64 n, double* out)` or `cf_margin_contrib(..., double* contrib)`.

    Rows go in blocks of ROW_BLOCK; within a block tree t scores every row before tree t+1,
    so each tree's code is fetched once per block. Each row sums leaf values in tree order
    from 0.0 and then multiplies by `scale`, and credits contrib in tree and path order: the
    same operations in the same order as the numba kernels. `contrib` must arrive zeroed
    (np.zeros is calloc: free until touched).
    """
    name = CONTRIB_SYMBOL if contrib else MARGIN_SYMBOL
    trees = [module.get_global(_tree_name(t, contrib)) for t in range(len(forest.roots))]
    fn = ir.Function(module, ir.FunctionType(ir.VoidType(), [_DPTR, _I64, _DPTR] + [_DPTR] * contrib), name=name)
    fn.attributes.add("nounwind")
    X, n, out = fn.args[:3]
    nf, zero, block = ir.Constant(_I64, forest.n_features), ir.Constant(_I64, 0), ir.Constant(_I64, ROW_BLOCK)
    b = ir.IRBuilder(fn.append_basic_block())
    with _loop(b, zero, b.sdiv(b.add(n, ir.Constant(_I64, ROW_BLOCK - 1)), block)) as blk:
        lo = b.mul(blk, block)
        hi = b.select(b.icmp_signed("<", b.add(lo, block), n), b.add(lo, block), n)
        with _loop(b, lo, hi) as i:
            b.store(ir.Constant(_DOUBLE, 0.0), b.gep(out, [i], inbounds=True))
        for tree in trees:
            with _loop(b, lo, hi) as i:
                offset = b.mul(i, nf)
                args = [b.gep(X, [offset], inbounds=True)] + [b.gep(fn.args[-1], [offset], inbounds=True)] * contrib
                leaf = b.sext(b.call(tree, args), _I64)
                value = b.load(b.gep(leaf_value, [zero, leaf], inbounds=True))
                ptr = b.gep(out, [i], inbounds=True)
                b.store(b.fadd(b.load(ptr), value), ptr)
        if forest.scale != 1.0:
            _emit_scale(b, fn, forest, lo, hi, contrib)
    b.ret_void()


def _emit_scale(b: ir.IRBuilder, fn: ir.Function, forest: Forest, lo: ir.Value, hi: ir.Value, contrib: bool) -> None:
    """Average-output (random forest) models: multiply the margin (and contrib row) by 1/trees."""
    scale = ir.Constant(_DOUBLE, forest.scale)
    with _loop(b, lo, hi) as i:
        ptr = b.gep(fn.args[2], [i], inbounds=True)
        b.store(b.fmul(b.load(ptr), scale), ptr)
        if contrib:
            row = b.mul(i, ir.Constant(_I64, forest.n_features))
            with _loop(b, ir.Constant(_I64, 0), ir.Constant(_I64, forest.n_features)) as j:
                cptr = b.gep(fn.args[3], [b.add(row, j)], inbounds=True)
                b.store(b.fmul(b.load(cptr), scale), cptr)


def generate_ir(forest: Forest, contrib: bool = True) -> tuple[str, str]:
    """LLVM IR text of (the tree functions, the drivers built with llvmlite.ir that call them).

    Two modules because the drivers only declare the trees; `_build_module` links them into one.
    """
    kernels = [False, True] if contrib else [False]
    trees = "\n".join(_tree_ir(forest, t, c) for c in kernels for t in range(len(forest.roots)))
    module = ir.Module(name="forest_drivers")
    values = np.asarray(forest.leaf_value, dtype=np.float64)
    leaf_value = ir.GlobalVariable(module, ir.ArrayType(_DOUBLE, max(len(values), 1)), "leaf_value")
    leaf_value.initializer = ir.Constant(leaf_value.value_type, values.tolist() or [0.0])
    leaf_value.global_constant, leaf_value.linkage = True, "private"
    for c in kernels:
        for t in range(len(forest.roots)):  # declarations; the definitions are in `trees`
            ir.Function(module, ir.FunctionType(_I32, [_DPTR] * (1 + c)), _tree_name(t, c))
        _emit_driver(module, forest, leaf_value, c)
    return "declare double @llvm.fabs.f64(double)\n" + trees, str(module)
