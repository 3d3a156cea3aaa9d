"""A `Forest` compiled to native code: one branchy function per tree, constants inlined, shippable as bytes.

Why: the numba kernels in `forest.py` walk flat arrays, paying a dependent load per node
(feature, threshold, flags, child). Generating LLVM IR in which every split is an immediate
compare-and-branch removes those loads and lets the branch predictor learn each tree; this
is the lleaves approach, generated here directly (tree bodies as IR text, the row-loop drivers
with `llvmlite.ir`) so that it follows `forest._child` exactly (missing types None/Zero/NaN,
default directions, categorical sets, the predictor's zeroing of |x| <= 1e-35) and also emits
the Saabas attribution kernel (each branch adds its delta constant to contrib[feature]).

Shipping: the module is compiled once (at model registration) for a generic x86-64 CPU to a
relocatable ELF object; the blob is a JSON header (format, target, CPU, SHA-256 of the forest)
plus that object (zlib), sealed by a SHA-256 of both. At scoring time `CompiledForest.load` links the
object into an in-process MCJIT engine (llvmlite, which numba already depends on): no C
compiler, no temp files, milliseconds. Anything unexpected (corrupted bytes, another
architecture, a CPU lacking the recorded features, a forest mismatch, an LLVM error) makes
`load` return None with the reason logged, and the caller keeps the numba `Forest`.

Decision predicates are folded at compile time: with K = kZeroThreshold, a numerical split
sends the NaN row and the "zero" interval [-K, K] (zeroed by the predictor, or "missing" for
missing type Zero) one way and the other reals by `x <= threshold`, so the set of reals that
goes left is one or two intervals, i.e. one or two fcmp instructions (see `_numeric_left`).
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import logging
import os
import struct
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass

import llvmlite
import llvmlite.binding as llvm
import numpy as np
from llvmlite import ir

from pipeline.decision.forest import CATEGORICAL, DEFAULT_LEFT, EXP_OBJECTIVES, K_ZERO, SIGMOID_OBJECTIVES, Forest

log = logging.getLogger(__name__)

MAGIC = b"CFOREST\x00"
FORMAT = 1
# The ISA baseline (x86-64 = SSE2 only), so a cached binary runs on any machine of the architecture.
GENERIC_CPU = "x86-64" if llvm.get_process_triple().startswith(("x86_64", "amd64")) else "generic"
DISABLE_ENV = "CREDIT_PIPELINE_NO_COMPILED"  # set to 1 to force the numba fallback (operational kill switch)
MARGIN_SYMBOL, CONTRIB_SYMBOL = "cf_margin", "cf_margin_contrib"
ROW_BLOCK = 64  # rows per tree sweep: a tree's code stays hot in L1i while it scores a block
MIN_ROWS_PER_TASK = 8192  # below this a thread hand-off costs more than it saves

_DOUBLE, _I32, _I64 = ir.DoubleType(), ir.IntType(32), ir.IntType(64)
_DPTR = _DOUBLE.as_pointer()
_MISSING_ZERO, _MISSING_NAN = 1, 2  # forest.MISSING["Zero"], ["NaN"]

_MarginFn = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_int64, ctypes.c_void_p)
_ContribFn = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_int64, ctypes.c_void_p, ctypes.c_void_p)


# --------------------------------------------------------------------------------------------- IR generation


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


def _split_lines(forest: Forest, node: int, v: str, left: str, right: str) -> list[str]:
    """Branch from the current block to label `left` or `right` for the value %v of the split feature."""
    flags = int(forest.flags[node])
    if not flags & CATEGORICAL:
        lines = _numeric_left(v, f"{v}.l", float(forest.threshold[node]), (flags >> 2) & 3, bool(flags & DEFAULT_LEFT))
        return lines + [f"br i1 {v}.l, label %{left}, label %{right}"]
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
    """`i32 @tree<t>(ptr x)` (or `@treec<t>(ptr x, ptr contrib)`): nested branches returning the leaf index.

    The contrib variant adds the split's delta to contrib[feature] on entering each child, in path
    order like `forest._margin_contrib` (zero deltas are skipped: adding 0.0 changes nothing).
    Inline stores with immediate deltas measured ~1.5x faster than a per-leaf table walk, at the
    price of a second copy of the tree code. IR is written as text: llvmlite.ir objects cost ~10x
    more Python time for thousands of tiny blocks. The walk is iterative: deep, unbalanced trees
    would exceed Python's recursion limit.
    """
    params = "ptr noalias nocapture readonly %x" + (", ptr noalias nocapture %c" if contrib else "")
    lines = [f"define i32 @{_tree_name(t, contrib)}({params}) noinline nounwind {{", "entry:"]
    stack: list[tuple[int, str, int, float]] = [(int(forest.roots[t]), "", 0, 0.0)]
    while stack:
        node, label, credit_feature, delta = stack.pop()
        if label:
            lines.append(f"{label}:")
        if contrib and delta != 0.0:
            d = f"%d{label}"
            lines.append(f"{d}.p = getelementptr inbounds double, ptr %c, i64 {credit_feature}")
            lines.append(f"{d}.o = load double, ptr {d}.p")
            lines.append(f"{d}.n = fadd double {d}.o, {_hex(delta)}")
            lines.append(f"store double {d}.n, ptr {d}.p")
        if node < 0:
            lines.append(f"ret i32 {~node}")
            continue
        f, v = int(forest.feature[node]), f"%v{node}"
        lines += [f"{v}.p = getelementptr inbounds double, ptr %x, i64 {f}", f"{v} = load double, ptr {v}.p"]
        lines += _split_lines(forest, node, v, f"L{node}", f"R{node}")
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


def _build_module(trees_ir: str, drivers_ir: str) -> llvm.ModuleRef:
    """Parse and link both modules; trees become internal (only the two drivers are exported)."""
    module = llvm.parse_assembly(trees_ir)
    module.link_in(llvm.parse_assembly(drivers_ir))
    for fn in module.functions:
        if fn.name.startswith("tree"):
            fn.linkage = "internal"
    module.verify()
    return module


def _target_machine(cpu: str, features: str, opt: int) -> llvm.TargetMachine:
    target = llvm.Target.from_triple(llvm.get_process_triple())
    # PIC: the object is linked at an arbitrary address by MCJIT (or could be linked into a .so).
    return target.create_target_machine(cpu=cpu, features=features, opt=opt, reloc="pic", codemodel="small")


def forest_fingerprint(forest: Forest) -> str:
    """SHA-256 of everything the kernels depend on: lets `load` refuse a blob built for another model."""
    h = hashlib.sha256()
    for name in ("roots", "feature", "threshold", "flags", "left", "right", "cat_start", "cat_len", "cat_bits"):
        h.update(np.ascontiguousarray(getattr(forest, name)).tobytes())
    for name in ("leaf_value", "delta_left", "delta_right"):
        h.update(np.ascontiguousarray(getattr(forest, name), dtype=np.float64).tobytes())
    h.update(repr((forest.n_features, forest.scale)).encode())
    return h.hexdigest()


def _pack(header: dict, obj: bytes) -> bytes:
    """MAGIC | header length | JSON header | zlib(object) | SHA-256 of everything before it.

    zlib because ~70% of the object is relocation entries for the constant pool: 4x smaller.
    """
    raw = json.dumps(header, sort_keys=True).encode()
    body = MAGIC + len(raw).to_bytes(4, "little") + raw + zlib.compress(obj, 6)
    return body + hashlib.sha256(body).digest()


def _unpack(blob: bytes) -> tuple[dict, bytes]:
    """Header and object, or ValueError. The digest covers header and object, so neither a flipped
    machine-code byte nor a flipped header field (n_features, scale...) reaches the linker."""
    blob = bytes(blob)
    start = len(MAGIC) + 4
    if not blob.startswith(MAGIC) or len(blob) < start + 32:
        raise ValueError("not a compiled-forest blob (bad magic or too short)")
    body, digest = blob[:-32], blob[-32:]
    if hashlib.sha256(body).digest() != digest:
        raise ValueError("checksum mismatch (corrupted or truncated bytes)")
    size = int.from_bytes(blob[len(MAGIC) : start], "little")
    header = json.loads(body[start : start + size])
    if not isinstance(header, dict):
        raise ValueError("unreadable header")
    return header, zlib.decompress(body[start + size :])


def _cpu_problem(header: dict) -> str | None:
    """Why this process cannot run the blob's code, or None: same arch/OS, and host CPU features ⊇ recorded."""
    host = llvm.get_process_triple()
    if (
        header.get("triple", "").split("-")[0] != host.split("-")[0]
        or header.get("object_format") != llvm.get_object_format()
    ):
        return f"built for {header.get('triple')} ({header.get('object_format')}), this process is {host}"
    if header.get("cpu") == GENERIC_CPU and not header.get("features"):
        return None
    have = {f[1:] for f in llvm.get_host_cpu_features().flatten().split(",") if f.startswith("+")}
    need = {f[1:] for f in header.get("features", "").split(",") if f.startswith("+")}
    missing = sorted(need - have)
    if missing:
        return f"built for CPU {header.get('cpu')}; this CPU lacks {', '.join(missing[:8])}"
    return None


# --------------------------------------------------------------------------------------------- runtime


@dataclass
class CompileInfo:
    """How a blob was made (for logs and the model card)."""

    seconds_ir: float
    seconds_codegen: float
    object_bytes: int


class CompiledForest:
    """Native margin (and attribution) kernels of one Forest; same scoring API as `Forest`.

    Build with `CompiledForest.compile(forest)` (seconds; at registration), ship `to_bytes()`,
    and get it back with `CompiledForest.load(blob)` (milliseconds; None if it cannot run here).
    Calls are split into row chunks scored by a small thread pool: ctypes releases the GIL.
    """

    def __init__(self, header: dict, obj: bytes, engine: llvm.ExecutionEngine, threads: int | None = None) -> None:
        self._header, self._obj, self._engine = header, obj, engine  # the engine owns the machine code
        self.n_features: int = int(header["n_features"])
        self.expected_value: float = float(header["expected_value"])
        self.objective: str = str(header["objective"])
        self.sigmoid: float = float(header["sigmoid"])
        self.threads: int = threads or _default_threads()
        self.has_contrib: bool = bool(header["contrib"])
        names = (MARGIN_SYMBOL, CONTRIB_SYMBOL) if self.has_contrib else (MARGIN_SYMBOL,)
        addresses = [engine.get_function_address(name) for name in names]
        if not all(addresses):
            raise RuntimeError("kernel symbols not found in the object")
        self._margin = _MarginFn(addresses[0])
        self._contrib = _ContribFn(addresses[1]) if self.has_contrib else None
        self.compile_info: CompileInfo | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()

    # ---- construction

    @classmethod
    def compile(
        cls,
        forest: Forest,
        contrib: bool = True,
        cpu: str = GENERIC_CPU,
        opt: int = 2,
        threads: int | None = None,
    ) -> CompiledForest:
        """Generate IR, compile to an ELF object and link it in-process. Raises on failure (the caller
        decides: at registration a failure means "ship without a compiled blob").

        contrib=False builds only the margin kernel (half the compile time; enough for the limit
        model). cpu="host" specializes for this machine; its features are recorded and checked at
        load. opt=0 compiles ~10x faster and scores ~25% slower (see the report in bench/).
        """
        t0 = time.perf_counter()
        trees_ir, drivers_ir = generate_ir(forest, contrib)
        t1 = time.perf_counter()
        features = ""
        if cpu == "host":
            cpu, features = llvm.get_host_cpu_name(), llvm.get_host_cpu_features().flatten()
        module = _build_module(trees_ir, drivers_ir)
        obj = _target_machine(cpu, features, opt).emit_object(module)
        t2 = time.perf_counter()
        header = {
            "format": FORMAT,
            "triple": llvm.get_process_triple(),
            "object_format": llvm.get_object_format(),
            "cpu": cpu,
            "features": features,
            "llvm": ".".join(map(str, llvm.llvm_version_info)),
            "llvmlite": llvmlite.__version__,
            "n_features": forest.n_features,
            "n_trees": len(forest.roots),
            "objective": forest.objective,
            "sigmoid": forest.sigmoid,
            "expected_value": forest.expected_value,
            "contrib": contrib,
            "forest_sha256": forest_fingerprint(forest),
        }
        compiled = cls(header, obj, _link(obj), threads)
        compiled.compile_info = CompileInfo(t1 - t0, t2 - t1, len(obj))
        return compiled

    @classmethod
    def load(cls, blob: bytes, forest: Forest | None = None, threads: int | None = None) -> CompiledForest | None:
        """The compiled forest in `blob`, or None (reason logged) if it cannot be used in this process.

        Pass `forest` to also check that the blob was built from exactly that model.
        """
        if os.environ.get(DISABLE_ENV, "") not in ("", "0"):
            log.info("compiled forest disabled by %s; using the numba forest", DISABLE_ENV)
            return None
        try:
            header, obj = _unpack(blob)
            if header.get("format") != FORMAT:
                raise ValueError(f"blob format {header.get('format')}, this code reads {FORMAT}")
            problem = _cpu_problem(header)
            if problem:
                raise ValueError(problem)
            if forest is not None and header.get("forest_sha256") != forest_fingerprint(forest):
                raise ValueError("blob was compiled from a different forest")
            return cls(header, obj, _link(obj), threads)
        except Exception as exc:  # any failure here must degrade to the numba path, never break scoring
            log.warning("compiled forest unavailable, falling back to the numba forest: %s", exc)
            return None

    def to_bytes(self) -> bytes:
        """The shippable blob: header + relocatable object (store it in the model artifact)."""
        return _pack(self._header, self._obj)

    @property
    def header(self) -> dict:
        return dict(self._header)

    # ---- scoring

    def margin(self, X: np.ndarray) -> np.ndarray:
        """Raw score, as `booster.predict(X, raw_score=True)` and `Forest.margin`."""
        X = self._check(X)
        out = np.empty(len(X))
        self._run(lambda lo, hi: self._margin(_ptr(X, lo), hi - lo, _ptr(out, lo)), len(X))
        return out

    def margin_and_contrib(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Raw score and Saabas attribution (n, features), as `Forest.margin_and_contrib`."""
        fn = self._contrib
        if fn is None:
            raise NotImplementedError("compiled without the attribution kernel: use compile(forest, contrib=True)")
        X = self._check(X)
        out, contrib = np.empty(len(X)), np.zeros(X.shape)
        self._run(lambda lo, hi: fn(_ptr(X, lo), hi - lo, _ptr(out, lo), _ptr(contrib, lo)), len(X))
        return out, contrib

    def transform(self, margin: np.ndarray) -> np.ndarray:
        """The objective's output transform (as `Forest.transform`)."""
        if self.objective in SIGMOID_OBJECTIVES:
            return 1.0 / (1.0 + np.exp(-self.sigmoid * margin))
        if self.objective in EXP_OBJECTIVES:
            return np.exp(margin)
        return margin

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.transform(self.margin(X))

    def _check(self, X: np.ndarray) -> np.ndarray:
        X = np.ascontiguousarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != self.n_features:
            raise ValueError(f"expected a 2-d matrix with {self.n_features} columns, got shape {X.shape}")
        return X

    def _run(self, call: Callable[[int, int], None], n: int) -> None:
        """Score rows [0, n) in chunks: serially if small or threads == 1, else on the pool."""
        tasks = min(self.threads * 4, n // MIN_ROWS_PER_TASK)
        if self.threads <= 1 or tasks <= 1:
            call(0, n)
            return
        bounds = np.linspace(0, n, tasks + 1).astype(np.int64).tolist()
        futures = [self._executor().submit(call, lo, hi) for lo, hi in zip(bounds[:-1], bounds[1:], strict=True)]
        for future in futures:
            future.result()

    def _executor(self) -> ThreadPoolExecutor:
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="compiled-forest")
            return self._pool

    def close(self) -> None:
        """Stop the worker threads (they are daemon-like and also end with the process)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None


def _ptr(a: np.ndarray, row: int) -> int:
    """Address of row `row` of a C-contiguous float64 array."""
    return a.ctypes.data + row * a.strides[0]


def _default_threads() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def _link(obj: bytes) -> llvm.ExecutionEngine:
    """Link a relocatable object into a fresh MCJIT engine (relocation only, no code generation)."""
    engine = llvm.create_mcjit_compiler(llvm.parse_assembly(""), _target_machine(GENERIC_CPU, "", 0))
    engine.add_object_file(llvm.ObjectFileRef.from_data(obj))
    engine.finalize_object()
    return engine


def load_or_fallback(blob: bytes | None, forest: Forest, threads: int | None = None) -> CompiledForest | Forest:
    """What scoring should use: the compiled forest from `blob` if it loads here and matches `forest`,
    else `forest` itself (numba). Both expose margin / margin_and_contrib / predict."""
    if blob is None:
        return forest
    compiled = CompiledForest.load(blob, forest=forest, threads=threads)
    return forest if compiled is None else compiled
