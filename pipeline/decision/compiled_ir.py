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
    STACK_BUDGET,
    VECTOR_LANES,
    VECTOR_SPLITS,
)
from pipeline.decision.forest import CATEGORICAL, DEFAULT_LEFT, K_ZERO, Forest

_DPTR = _DOUBLE.as_pointer()


def _hex(value: float) -> str:
    """Exact IR spelling of a double (decimal literals must be exactly representable)."""
    return f"0x{struct.unpack('<Q', struct.pack('<d', value))[0]:016X}"


def _ty(base: str, lanes: int) -> str:
    """An IR type: the scalar, or a vector of `lanes` of it."""
    return base if lanes == 1 else f"<{lanes} x {base}>"


def _const(base: str, value: str, lanes: int) -> str:
    """An IR constant operand of type `_ty(base, lanes)` (a vector constant is a splat)."""
    return value if lanes == 1 else f"splat ({base} {value})"


def _numeric_left(v: str, out: str, threshold: float, missing: int, default_left: bool, lanes: int = 1) -> list[str]:
    """IR lines setting i1 %out = "goes left" for a numerical split, equal to `forest._child` for every double
    (with lanes > 1: a vector of rows, one predicate per lane).

    _child maps NaN (unless missing type NaN) and [-K, K] to 0.0; "zero" then goes the default
    way for missing type Zero, else by 0 <= threshold; NaN under missing type NaN goes the
    default way. So NaN has one direction, [-K, K] one, other reals go left iff v <= threshold:
    the reals going left are one interval (one fcmp) or, in rare corner cases, two.
    """
    d, b = _ty("double", lanes), _ty("i1", lanes)

    def c(value: float) -> str:
        return _const("double", _hex(value), lanes)

    zero_left = default_left if missing == _MISSING_ZERO else threshold >= 0.0
    nan_left = default_left if missing in (_MISSING_ZERO, _MISSING_NAN) else zero_left
    le, lt = ("ule", "ult") if nan_left else ("ole", "olt")  # unordered compares are true for NaN
    if zero_left and threshold >= -K_ZERO:  # (-inf, t] U [-K, K] == (-inf, max(t, K)]
        return [f"{out} = fcmp {le} {d} {v}, {c(max(threshold, K_ZERO))}"]
    if not zero_left and threshold < -K_ZERO:  # (-inf, t] is disjoint from [-K, K]
        return [f"{out} = fcmp {le} {d} {v}, {c(threshold)}"]
    if not zero_left and threshold <= K_ZERO:  # (-inf, t] minus [-K, K] == (-inf, -K)
        return [f"{out} = fcmp {lt} {d} {v}, {c(-K_ZERO)}"]
    fabs = "f64" if lanes == 1 else f"v{lanes}f64"
    lines = [f"{out}.a = call {d} @llvm.fabs.{fabs}({d} {v})"]
    if zero_left:  # t < -K (missing type Zero, default left): (-inf, t] U [-K, K]
        lines += [f"{out}.b = fcmp {le} {d} {v}, {c(threshold)}", f"{out}.c = fcmp ole {d} {out}.a, {c(K_ZERO)}"]
        return lines + [f"{out} = or {b} {out}.b, {out}.c"]
    # t > K (missing type Zero, default right): (-inf, -K) U (K, t]
    lines += [f"{out}.b = fcmp ole {d} {v}, {c(threshold)}", f"{out}.c = fcmp ogt {d} {out}.a, {c(K_ZERO)}"]
    if not nan_left:
        return lines + [f"{out} = and {b} {out}.b, {out}.c"]
    return lines + [
        f"{out}.d = and {b} {out}.b, {out}.c",
        f"{out}.e = fcmp uno {d} {v}, {c(0.0)}",
        f"{out} = or {b} {out}.d, {out}.e",
    ]


def _categories(forest: Forest, node: int) -> list[int]:
    """Category codes in the node's bitset (they go left)."""
    start, length = int(forest.cat_start[node]), int(forest.cat_len[node])
    cats: list[int] = []
    for w, word in enumerate(forest.cat_bits[start : start + length].tolist()):
        cats.extend(32 * w + bit for bit in range(32) if (word >> bit) & 1)
    return cats


def _categorical_lines(forest: Forest, node: int, v: str, out: str, lanes: int = 1) -> list[str]:
    """IR lines setting i1 %out = "goes left" for a categorical split, without a branch (lanes > 1: per lane).

    NaN, <= -1 and >= 2^31 go right; else the truncated code goes left iff it is in the node's set:
    one shift of a 64-bit mask for codes below 64, one compare for each larger code.
    """
    cats = _categories(forest, node)
    mask = sum(1 << c for c in cats if c < 64)
    mask -= (mask >> 63) << 64  # the same 64 bits as a signed i64 literal
    d, i, b = _ty("double", lanes), _ty("i64", lanes), _ty("i1", lanes)

    def c(base: str, value: object) -> str:
        return _const(base, str(value), lanes)

    lines = [
        f"{out}.lo = fcmp ogt {d} {v}, {c('double', '-1.0')}",
        f"{out}.hi = fcmp olt {d} {v}, {c('double', _hex(2147483648.0))}",
        f"{out}.in = and {b} {out}.lo, {out}.hi",
        f"{out}.v = select {b} {out}.in, {d} {v}, {d} {c('double', '0.0')}",
        f"{out}.i = fptosi {d} {out}.v to {i}",
        f"{out}.s = and {i} {out}.i, {c('i64', 63)}",
        f"{out}.m = lshr {i} {c('i64', mask)}, {out}.s",
        f"{out}.b = trunc {i} {out}.m to {b}",
        f"{out}.u = icmp ult {i} {out}.i, {c('i64', 64)}",
        f"{out}.k = and {b} {out}.b, {out}.u",
    ]
    member = f"{out}.k"
    for j, cat in enumerate(c for c in cats if c >= 64):
        lines += [
            f"{out}.e{j} = icmp eq {i} {out}.i, {_const('i64', str(cat), lanes)}",
            f"{out}.k{j} = or {b} {member}, {out}.e{j}",
        ]
        member = f"{out}.k{j}"
    return lines + [f"{out} = and {b} {out}.in, {member}"]


def _left_lines(forest: Forest, node: int, v: str, out: str, lanes: int = 1) -> list[str]:
    """IR lines setting i1 %out = "goes left" for the value %v of the node's split feature."""
    flags = int(forest.flags[node])
    if flags & CATEGORICAL:
        return _categorical_lines(forest, node, v, out, lanes)
    return _numeric_left(v, out, float(forest.threshold[node]), (flags >> 2) & 3, bool(flags & DEFAULT_LEFT), lanes)


def _load_lines(forest: Forest, node: int) -> tuple[str, list[str]]:
    f, v = int(forest.feature[node]), f"%v{node}"
    return v, [f"{v}.p = getelementptr inbounds double, ptr %x, i64 {f}", f"{v} = load double, ptr {v}.p"]


def _credit_lines(name: str, feature: int, delta: str, stride: int = 1) -> list[str]:
    """contrib[feature * stride] += delta (an IR double operand; stride = a block's rows: a transposed block)."""
    return [
        f"{name}.p = getelementptr inbounds double, ptr %c, i64 {feature * stride}",
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
    return lines


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


def _tree_ir(forest: Forest, t: int, stride: int = 1) -> str:
    """`i32 @treec<t>(ptr x, ptr contrib)`: the leaf index of row x, its path credited to contrib[feature * stride].

    The walk branches all the way and adds the split's delta to contrib[feature] on entering each
    child, in path order like `forest._margin_contrib` (zero deltas are skipped: adding 0.0 changes
    nothing); the branch-free form, crediting +0.0 off the path, measured 1.0-1.5x slower one row at a
    time (on vectors of rows it is faster: `_vector_tree_ir`). Inline stores with immediate deltas
    measured ~1.5x faster than a per-leaf table walk, at the price of a second copy of the tree code
    (`_margin_tree_ir`). IR is written as text: llvmlite.ir objects cost ~10x more Python time for
    thousands of tiny blocks. The walk is iterative: deep, unbalanced trees would exceed Python's
    recursion limit.
    """
    lines = [
        f"define i32 @{_tree_name(t, True)}(ptr noalias nocapture readonly %x, ptr noalias nocapture %c) "
        "noinline nounwind {",
        "entry:",
    ]
    stack: list[tuple[int, str, int, float]] = [(int(forest.roots[t]), "", 0, 0.0)]
    while stack:
        node, label, credit_feature, delta = stack.pop()
        if label:
            lines.append(f"{label}:")
        if delta != 0.0:
            lines += _credit_lines(f"%d{label}", credit_feature, _hex(delta), stride)
        if node < 0:
            lines.append(f"ret i32 {~node}")
            continue
        f = int(forest.feature[node])
        v, load = _load_lines(forest, node)
        lines += load + _split_lines(forest, node, v, f"L{node}", f"R{node}")
        stack.append((int(forest.right[node]), f"R{node}", f, float(forest.delta_right[node])))
        stack.append((int(forest.left[node]), f"L{node}", f, float(forest.delta_left[node])))
    lines.append("}")
    return "\n".join(lines)


def _margin_tree_ir(forest: Forest, t: int) -> str:
    """`void @tree<t>(ptr X, i64 lo, i64 hi, ptr out)`: out[i] += leaf value of row i, for lo <= i < hi.

    The tree loops over the block's rows itself (one call per tree and block; as fast as a call per
    row on the SSE2 baseline, measured, and the driver calls it like a vectorised tree). It branches
    near the root, where a tree is wide, and evaluates each subtree of at most SELECT_NODES splits
    without branches (`_select_lines`): the same leaf, faster than branching all the way down
    (measured, one thread, 100k rows: the shipped limit model 1.8x, PD margin 1.5x; synthetic models
    of 7-63 leaves 1.2-1.6x; subtrees of up to 3 splits gave less, of up to 15 the same within
    noise). Every leaf branches to one accumulate block whose phi holds the leaf index; the leaf
    values are a constant table of this tree's own.
    """
    first, count = _leaf_range(forest, t)
    values = ", ".join(f"double {_hex(float(v))}" for v in forest.leaf_value[first : first + count])
    table = f"@lv{t} = private unnamed_addr constant [{count} x double] [{values}]"
    lines = [
        table,
        f"define void @{_tree_name(t, False)}(ptr noalias nocapture readonly %X, i64 %lo, i64 %hi, "
        "ptr noalias nocapture %out) noinline nounwind {",
        "entry:",
        "  %any = icmp slt i64 %lo, %hi",
        "  br i1 %any, label %row, label %done",
        "row:",
        "  %i = phi i64 [ %lo, %entry ], [ %i.next, %acc ]",
        f"  %off = mul i64 %i, {forest.n_features}",
        "  %x = getelementptr inbounds double, ptr %X, i64 %off",
    ]
    incoming: list[str] = []
    splits = _split_counts(forest, int(forest.roots[t]))
    stack: list[tuple[int, str]] = [(int(forest.roots[t]), "row")]
    while stack:
        node, label = stack.pop()
        if label != "row":
            lines.append(f"{label}:")
        if node < 0:
            incoming.append(f"[ {~node - first}, %{label} ]")
        elif splits[node] <= SELECT_NODES:
            lines += _select_lines(forest, node)
            lines.append(f"%s{node}.r = sub i32 %s{node}, {first}")
            incoming.append(f"[ %s{node}.r, %{label} ]")
        else:
            v, load = _load_lines(forest, node)
            lines += load + _split_lines(forest, node, v, f"L{node}", f"R{node}")
            stack.append((int(forest.right[node]), f"R{node}"))
            stack.append((int(forest.left[node]), f"L{node}"))
            continue
        lines.append("br label %acc")
    lines += [
        "acc:",
        f"  %leaf = phi i32 {', '.join(incoming)}",
        "  %leaf64 = sext i32 %leaf to i64",
        f"  %vp = getelementptr inbounds [{count} x double], ptr @lv{t}, i64 0, i64 %leaf64",
        "  %value = load double, ptr %vp",
        "  %op = getelementptr inbounds double, ptr %out, i64 %i",
        "  %old = load double, ptr %op",
        "  %new = fadd double %old, %value",
        "  store double %new, ptr %op",
        "  %i.next = add i64 %i, 1",
        "  %more = icmp slt i64 %i.next, %hi",
        "  br i1 %more, label %row, label %done",
        "done:",
        "  ret void",
        "}",
    ]
    return "\n".join(lines)


def _vector_tree_ir(forest: Forest, t: int, contrib: bool, block: int) -> str:
    """`void @treev<t>(ptr T, i64 n, ptr acc)` (`@treecv<t>(..., ptr C)`): acc[r] += leaf value of row r (and
    C[f * block + r] += the path's credits to feature f) for r < n, VECTOR_LANES rows at a time.

    Every split's predicate on a vector of rows, then the leaf value picked by `select`s, so rows
    never diverge. T is the block transposed (feature f of row r at T[f * block + r]), so a
    feature of VECTOR_LANES rows is one load; its rows from n up to the next multiple of
    VECTOR_LANES are zeros, and their lanes are computed and never read. Attribution: each split
    credits its left or right delta to the lanes whose path runs through it and +0.0 to the others,
    in pre-order, so a row gets its path's deltas in path order, as in the branchy kernel (which skips
    zero deltas: x + 0.0 is x, and a credit sum is never -0.0), so the same bits.
    """
    lanes = VECTOR_LANES
    d, mask = _ty("double", lanes), _ty("i1", lanes)
    root = int(forest.roots[t])
    extra = ", ptr noalias nocapture %C" if contrib else ""
    lines = [
        f"define void @{_vector_name(t, contrib)}(ptr noalias nocapture readonly %T, i64 %n, "
        f"ptr noalias nocapture %acc{extra}) noinline nounwind {{",
        "entry:",
        "  %any = icmp sgt i64 %n, 0",
        "  br i1 %any, label %row, label %done",
        "row:",
        "  %r = phi i64 [ 0, %entry ], [ %r.next, %row ]",
    ]
    nodes = _subtree(forest, root)
    for node in nodes:
        v = f"%v{node}"
        lines += [
            f"{v}.p = getelementptr inbounds double, ptr %T, i64 {int(forest.feature[node]) * block}",
            f"{v}.q = getelementptr inbounds double, ptr {v}.p, i64 %r",
            f"{v} = load {d}, ptr {v}.q, align 8",
        ]
        lines += _left_lines(forest, node, v, f"%k{node}", lanes)

    def value(n: int) -> str:
        return _const("double", _hex(float(forest.leaf_value[~n])), lanes) if n < 0 else f"%s{n}"

    for n in reversed(nodes):  # children before parents
        lines.append(
            f"%s{n} = select {mask} %k{n}, {d} {value(int(forest.left[n]))}, {d} {value(int(forest.right[n]))}"
        )
    lines += [
        "%ap = getelementptr inbounds double, ptr %acc, i64 %r",
        f"%ao = load {d}, ptr %ap, align 8",
        f"%an = fadd {d} %ao, {value(root)}",
        f"store {d} %an, ptr %ap, align 8",
    ]
    if contrib:
        lines += _vector_credit_lines(forest, nodes, block)
    lines += [
        f"%r.next = add i64 %r, {lanes}",
        "%more = icmp slt i64 %r.next, %n",
        "br i1 %more, label %row, label %done",
        "done:",
        "ret void",
        "}",
    ]
    return "\n".join(lines)


def _vector_credit_lines(forest: Forest, nodes: list[int], block: int) -> list[str]:
    """The attribution of `_vector_tree_ir`: per split (pre-order) the lanes' credits, added to C's feature rows."""
    lanes = VECTOR_LANES
    d, mask = _ty("double", lanes), _ty("i1", lanes)
    lines: list[str] = []
    path: dict[int, str | None] = {nodes[0]: None} if nodes else {}  # lanes whose path reaches the node (None: all)
    total: dict[int, str] = {}  # feature -> its running credit sum

    def delta(x: float) -> str:
        return _const("double", _hex(x if x != 0.0 else 0.0), lanes)

    for n in nodes:
        on = path[n]
        left, right = int(forest.left[n]), int(forest.right[n])
        lines.append(f"%nk{n} = xor {mask} %k{n}, {_const('i1', 'true', lanes)}")
        for child, side in ((left, f"%k{n}"), (right, f"%nk{n}")):
            if child >= 0:
                if on is None:
                    path[child] = side
                else:
                    lines.append(f"%p{child} = and {mask} {on}, {side}")
                    path[child] = f"%p{child}"
        dl, dr = float(forest.delta_left[n]), float(forest.delta_right[n])
        if dl == 0.0 and dr == 0.0:
            continue
        credit = f"%g{n}"
        lines.append(f"{credit}.s = select {mask} %k{n}, {d} {delta(dl)}, {d} {delta(dr)}")
        if on is None:
            credit = f"{credit}.s"
        else:
            lines.append(f"{credit} = select {mask} {on}, {d} {credit}.s, {d} zeroinitializer")
        f = int(forest.feature[n])
        if f not in total:
            lines += [
                f"%c{f}.p = getelementptr inbounds double, ptr %C, i64 {f * block}",
                f"%c{f}.q = getelementptr inbounds double, ptr %c{f}.p, i64 %r",
                f"%c{f}.n{n}.in = load {d}, ptr %c{f}.q, align 8",
            ]
            total[f] = f"%c{f}.n{n}.in"
        lines.append(f"%c{f}.n{n} = fadd {d} {total[f]}, {credit}")
        total[f] = f"%c{f}.n{n}"
    for f, name in total.items():
        lines.append(f"store {d} {name}, ptr %c{f}.q, align 8")
    return lines


def _vector_name(t: int, contrib: bool) -> str:
    return f"tree{'c' if contrib else ''}v{t}"


def _vectorised(forest: Forest, t: int, limit: int | None = None) -> bool:
    """Tree t runs on vectors of rows in a `vector` build: it has at most `limit` splits (default VECTOR_SPLITS)."""
    root = int(forest.roots[t])
    return root < 0 or _split_counts(forest, root)[root] <= (VECTOR_SPLITS if limit is None else limit)


def has_vector_trees(forest: Forest) -> bool:
    """A `vector` build would run some tree on vectors of rows (then CPU-level variants pay: `compile_blob`), and
    its two transposed blocks of at least VECTOR_LANES rows fit STACK_BUDGET."""
    fits = 2 * 8 * forest.n_features * VECTOR_LANES <= STACK_BUDGET
    return fits and any(_vectorised(forest, t) for t in range(len(forest.roots)))


def block_rows(forest: Forest, vector: bool) -> int:
    """Rows per block: ROW_BLOCK, or in a vector build fewer (a multiple of VECTOR_LANES) where the transposed
    rows and credits (2 x 8 bytes x features per row, on the stack of whichever thread scores) would pass
    STACK_BUDGET: wide models must not overflow a small thread stack (musl's is 128 KiB)."""
    if not vector:
        return ROW_BLOCK
    fitting = STACK_BUDGET // (2 * 8 * max(forest.n_features, 1)) // VECTOR_LANES * VECTOR_LANES
    return max(VECTOR_LANES, min(ROW_BLOCK, fitting))


def _leaf_range(forest: Forest, t: int) -> tuple[int, int]:
    """(first, count): the span of global leaf indices tree t uses (the builder numbers a tree's leaves together)."""
    root = int(forest.roots[t])
    nodes = _subtree(forest, root)
    children = np.concatenate([forest.left[nodes], forest.right[nodes]]) if nodes else np.array([root])
    leaves = ~children[children < 0]
    return int(leaves.min()), int(leaves.max() - leaves.min() + 1)


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


def _emit_driver(
    module: ir.Module, forest: Forest, leaf_value: ir.GlobalVariable, contrib: bool, vec: list[bool]
) -> None:
    """`void cf_margin(const double* X, int64 n, double* out)` or `cf_margin_contrib(..., double* contrib)`.

    Rows go in blocks (`block_rows`); within a block tree t scores every row before tree t+1, so
    each tree's code is fetched once per block, and the block's margins add up in `acc` on the stack.
    Trees with `vec[t]` (a vector build) run on VECTOR_LANES rows at a time from the block transposed
    into `T`; there the attribution adds up in `C`, transposed the same way (the branchy trees credit
    it with the stride of a block's rows) and copied to `contrib` after the block; otherwise the
    branchy trees credit `contrib`, which must arrive zeroed (np.zeros is calloc: free until
    touched). Each row sums leaf values in tree order from 0.0, then `scale`, and gets its credits in
    tree and path order: the same operations in the same order as the numba kernels, so the same bits.
    """
    n_trees = len(forest.roots)
    vector = any(vec)
    rows_per_block = block_rows(forest, vector)
    trees = [module.get_global(_vector_name(t, contrib) if vec[t] else _tree_name(t, contrib)) for t in range(n_trees)]
    name = CONTRIB_SYMBOL if contrib else MARGIN_SYMBOL
    fn = ir.Function(module, ir.FunctionType(ir.VoidType(), [_DPTR, _I64, _DPTR] + [_DPTR] * contrib), name=name)
    fn.attributes.add("nounwind")
    X, n, out = fn.args[:3]
    nf, zero, block = ir.Constant(_I64, forest.n_features), ir.Constant(_I64, 0), ir.Constant(_I64, rows_per_block)
    b = ir.IRBuilder(fn.append_basic_block())

    def stack_array(size: int) -> ir.Value:
        array = b.alloca(ir.ArrayType(_DOUBLE, size))
        array.align = 64
        return b.bitcast(array, _DPTR)

    acc = stack_array(rows_per_block)
    T = stack_array(forest.n_features * rows_per_block) if vector else None
    C = stack_array(forest.n_features * rows_per_block) if contrib and vector else None
    with _loop(b, zero, b.sdiv(b.add(n, ir.Constant(_I64, rows_per_block - 1)), block)) as blk:
        lo = b.mul(blk, block)
        hi = b.select(b.icmp_signed("<", b.add(lo, block), n), b.add(lo, block), n)
        rows = b.sub(hi, lo)
        Xb = b.gep(X, [b.mul(lo, nf)], inbounds=True)
        if T is not None:
            with _loop(b, zero, block) as r:  # T[f * block + r] = X[lo + r, f]; rows past the block's end: 0.0
                inside = b.icmp_signed("<", r, rows)
                with _loop(b, zero, nf) as f:
                    src = b.select(inside, b.gep(Xb, [b.add(b.mul(r, nf), f)], inbounds=True), Xb)
                    value = b.select(inside, b.load(src), ir.Constant(_DOUBLE, 0.0))
                    b.store(value, b.gep(T, [b.add(b.mul(f, block), r)], inbounds=True))
        with _loop(b, zero, block) as r:
            b.store(ir.Constant(_DOUBLE, 0.0), b.gep(acc, [r], inbounds=True))
        if C is not None:
            with _loop(b, zero, ir.Constant(_I64, forest.n_features * rows_per_block)) as j:
                b.store(ir.Constant(_DOUBLE, 0.0), b.gep(C, [j], inbounds=True))
        for t, tree in enumerate(trees):
            if vec[t]:
                b.call(tree, [T, rows, acc] + [C] * contrib)
            elif not contrib:
                b.call(tree, [Xb, zero, rows, acc])
            else:
                with _loop(b, zero, rows) as r:
                    cr = b.gep(C if vector else fn.args[3], [r if vector else b.mul(b.add(lo, r), nf)], inbounds=True)
                    leaf = b.sext(b.call(tree, [b.gep(Xb, [b.mul(r, nf)], inbounds=True), cr]), _I64)
                    value = b.load(b.gep(leaf_value, [zero, leaf], inbounds=True))
                    ptr = b.gep(acc, [r], inbounds=True)
                    b.store(b.fadd(b.load(ptr), value), ptr)
        with _loop(b, zero, rows) as r:
            b.store(b.load(b.gep(acc, [r], inbounds=True)), b.gep(out, [b.add(lo, r)], inbounds=True))
        if C is not None:
            with _loop(b, zero, rows) as r:
                row = b.mul(b.add(lo, r), nf)
                with _loop(b, zero, nf) as f:
                    value = b.load(b.gep(C, [b.add(b.mul(f, block), r)], inbounds=True))
                    b.store(value, b.gep(fn.args[3], [b.add(row, f)], inbounds=True))
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


def generate_ir(
    forest: Forest, contrib: bool = True, vector: bool = False, contrib_splits: int | None = None
) -> tuple[str, str]:
    """LLVM IR text of (the tree functions, the drivers built with llvmlite.ir that call them).

    `vector`: small trees run on vectors of rows (`_vector_tree_ir`); only worth it for a CPU with
    wide vectors (AVX2 and up: `compiled.X86_LEVELS`), the same bits either way. `contrib_splits`: the
    largest attribution tree run on vectors (default VECTOR_SPLITS, as for the margin kernel).
    Two modules because the drivers only declare the trees; `_build_module` links them into one.
    """
    kernels = [False, True] if contrib else [False]
    n_trees = len(forest.roots)
    vec = {
        c: [vector and _vectorised(forest, t, contrib_splits if c else None) for t in range(n_trees)] for c in kernels
    }
    trees: list[str] = []
    module = ir.Module(name="forest_drivers")
    values = np.asarray(forest.leaf_value, dtype=np.float64)
    leaf_value = ir.GlobalVariable(module, ir.ArrayType(_DOUBLE, max(len(values), 1)), "leaf_value")
    leaf_value.initializer = ir.Constant(leaf_value.value_type, values.tolist() or [0.0])
    leaf_value.global_constant, leaf_value.linkage = True, "private"
    for c, flags in vec.items():
        block = block_rows(forest, any(flags))
        stride = block if any(flags) else 1  # beside vectorised trees, branchy ones credit the transposed block
        for t, on_vectors in enumerate(flags):  # the definitions (text) and their declarations in the drivers
            if on_vectors:
                trees.append(_vector_tree_ir(forest, t, c, block))
                signature = ir.FunctionType(ir.VoidType(), [_DPTR, _I64, _DPTR] + [_DPTR] * c)
                ir.Function(module, signature, _vector_name(t, c))
            elif c:
                trees.append(_tree_ir(forest, t, stride))
                ir.Function(module, ir.FunctionType(_I32, [_DPTR, _DPTR]), _tree_name(t, True))
            else:
                trees.append(_margin_tree_ir(forest, t))
                ir.Function(module, ir.FunctionType(ir.VoidType(), [_DPTR, _I64, _I64, _DPTR]), _tree_name(t, False))
        _emit_driver(module, forest, leaf_value, c, flags)
    wide = _ty("double", VECTOR_LANES)
    intrinsics = f"declare double @llvm.fabs.f64(double)\ndeclare {wide} @llvm.fabs.v{VECTOR_LANES}f64({wide})\n"
    return intrinsics + "\n".join(trees), str(module)
