"""Derived columns: a small, safe expression language over source columns.

A contract column can be computed from source columns in YAML, e.g.
`monthly_debt_payments: {expr: "DebtRatio * MonthlyIncome"}`, without writing code. User text is
parsed with Python's `ast` and every node is checked against a whitelist; the text is never given to
`eval` or `compile`, and evaluation walks the checked tree with numpy, so nothing outside the
language can run.

The language (Python precedence and syntax):

- numbers (`12`, `0.5`, `1e3`, `True`/`False` as 1/0) and column names. A plain identifier is a
  column; any other name is written in backquotes: `` `Monthly Income` ``, `` `2nd-income (EUR)` ``,
  `` `class` ``. A backquote inside a backquoted name is doubled (`` `a``b` `` is the column a`b).
  Text literals, `None`, comments, attributes, subscripts, lambdas, comprehensions and any call of a
  name not listed below are rejected at parse time.
- `+ - * / // % **`, unary `-`/`+`; comparisons `< <= > >= == !=` (chains allowed: `0 < x <= 1`);
  `and`, `or`, `not`; `a if cond else b`.
- functions, all elementwise: see `FUNCTIONS` (`min`, `max`, `abs`, `clip`, `where`, `isnull`,
  `notnull`, `fillna`, `round`, `floor`, `ceil`, `log`, `exp`, `sqrt`).

Semantics, chosen for credit data:

- Every column is read as a float64 number. Text that is not a number becomes NaN (missing) in the
  arithmetic; `evaluate(frame, unparsed="keep")` instead passes the offending text through to the
  result row, so validation quarantines that row with the value, as `scale` does for plain columns.
- Missing propagates: any arithmetic with NaN gives NaN.
- `/`, `//` and `%` by zero give NaN, not inf: a ratio with a zero denominator is undefined, and a
  NaN is reported as missing where an inf would look like a huge real value. Other infinities
  (overflow such as `exp(1000)`, `0 ** -1`) are kept, so validation's `finite` rule rejects them.
- `log(x)` for x <= 0 and `sqrt(x)` for x < 0 give NaN.
- Comparisons and logic give 1.0 (true), 0.0 (false) or NaN (unknown): a comparison with a missing
  operand is unknown, `and`/`or` follow three-valued (Kleene) logic (`0 and NaN` is 0, `1 or NaN` is
  1), any non-zero number counts as true, and `where`/`if` with an unknown condition give NaN. So a
  missing income never silently takes the "else" branch.
- `min`/`max` skip missing arguments, like pandas' skipna, and are NaN only when every argument is
  missing: `max(income, 0)` is 0 for a missing income. Write `where(isnull(income), ...)` or
  `fillna` where a missing input must stay missing or take a stated value.

Errors are `ConfigError`s naming the mapped column, the expression, the offending token and its
1-based position, and what is allowed instead. A referenced column missing from the file is a
`DataContractError` (like any mapped source column that is missing), naming close matches.
"""

from __future__ import annotations

import ast
import difflib
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Literal, TypeAlias, cast

import numpy as np
import pandas as pd

from pipeline.errors import ConfigError, DataContractError

Value: TypeAlias = np.ndarray | np.float64
MAX_LENGTH = 4000  # longer text is a config mistake, and deep nesting must not exhaust the parser's stack


def _truth(x: Value) -> Value:
    """Number -> 1.0/0.0, NaN stays NaN: the one place that decides what 'true' means."""
    return np.where(np.isnan(x), np.nan, (x != 0).astype(float))


def kleene_and(a: Value, b: Value) -> Value:
    a, b = _truth(a), _truth(b)
    return np.where((a == 0) | (b == 0), 0.0, np.where(np.isnan(a) | np.isnan(b), np.nan, 1.0))


def kleene_or(a: Value, b: Value) -> Value:
    a, b = _truth(a), _truth(b)
    return np.where((a == 1) | (b == 1), 1.0, np.where(np.isnan(a) | np.isnan(b), np.nan, 0.0))


def where(cond: Value, a: Value, b: Value) -> Value:
    """Elementwise if/else; an unknown condition gives NaN rather than silently choosing `b`."""
    c = _truth(cond)
    return np.where(np.isnan(c), np.nan, np.where(c == 1, a, b))


def safe_divide(a: Value, b: Value, op: Callable[[Value, Value], Value] = np.true_divide) -> Value:
    """a op b with NaN where b == 0: a credit ratio over a zero denominator is undefined, not infinite."""
    return np.where(b == 0, np.nan, op(a, np.where(b == 0, 1.0, b)))


def clip(x: Value, lo: Value, hi: Value) -> Value:
    """Bound x to [lo, hi]; a missing bound is no bound, a missing x stays missing; lo wins if lo > hi."""
    return np.where(np.isnan(x), np.nan, np.fmax(np.fmin(x, hi), lo))


def _fillna(x: Value, v: Value) -> Value:
    return np.where(np.isnan(x), v, x)


def _round(x: Value, n: Value | int = 0) -> Value:
    return np.round(x, int(n))  # half to even, like Python


@dataclass(frozen=True)
class Function:
    """One whitelisted function: its arity and numpy implementation."""

    name: str
    signature: str
    min_args: int
    max_args: int | None
    apply: Callable[..., Value]


def _reduce(op: Callable[[Value, Value], Value]) -> Callable[..., Value]:
    def apply(*args: Value) -> Value:
        out = args[0]
        for arg in args[1:]:
            out = op(out, arg)
        return out

    return apply


FUNCTIONS: dict[str, Function] = {
    f.name: f
    for f in [
        Function("abs", "abs(x)", 1, 1, np.abs),
        Function("ceil", "ceil(x)", 1, 1, np.ceil),
        Function("clip", "clip(x, lo, hi)", 3, 3, clip),
        Function("exp", "exp(x)", 1, 1, np.exp),
        Function("fillna", "fillna(x, v)", 2, 2, _fillna),
        Function("floor", "floor(x)", 1, 1, np.floor),
        Function("isnull", "isnull(x)", 1, 1, lambda x: np.isnan(x).astype(float)),
        Function("log", "log(x)", 1, 1, lambda x: np.where(x > 0, np.log(np.where(x > 0, x, 1.0)), np.nan)),
        Function("max", "max(a, b, ...)", 2, None, _reduce(np.fmax)),
        Function("min", "min(a, b, ...)", 2, None, _reduce(np.fmin)),
        Function("notnull", "notnull(x)", 1, 1, lambda x: (~np.isnan(x)).astype(float)),
        Function("round", "round(x, n=0)", 1, 2, _round),
        Function("sqrt", "sqrt(x)", 1, 1, lambda x: np.sqrt(np.where(x >= 0, x, np.nan))),
        Function("where", "where(cond, a, b)", 3, 3, where),
    ]
}

BINARY: dict[type[ast.operator], tuple[str, Callable[[Value, Value], Value]]] = {
    ast.Add: ("+", np.add),
    ast.Sub: ("-", np.subtract),
    ast.Mult: ("*", np.multiply),
    ast.Div: ("/", safe_divide),
    ast.FloorDiv: ("//", lambda a, b: safe_divide(a, b, np.floor_divide)),
    ast.Mod: ("%", lambda a, b: safe_divide(a, b, np.mod)),
    ast.Pow: ("**", np.power),
}
COMPARE: dict[type[ast.cmpop], tuple[str, Callable[[Value, Value], Value]]] = {
    ast.Lt: ("<", np.less),
    ast.LtE: ("<=", np.less_equal),
    ast.Gt: (">", np.greater),
    ast.GtE: (">=", np.greater_equal),
    ast.Eq: ("==", np.equal),
    ast.NotEq: ("!=", np.not_equal),
}
# symbols of rejected operators, to point at them in the text; and what to write instead
_REJECTED_OPS: dict[type, tuple[str, str]] = {
    ast.BitAnd: ("&", "use 'and'"),
    ast.BitOr: ("|", "use 'or'"),
    ast.BitXor: ("^", "use '**' for powers"),
    ast.LShift: ("<<", ""),
    ast.RShift: (">>", ""),
    ast.MatMult: ("@", ""),
    ast.Invert: ("~", "use 'not'"),
    ast.In: ("in", "compare with == and combine with 'or'"),
    ast.NotIn: ("not in", "compare with != and combine with 'and'"),
    ast.Is: ("is", "use == or isnull(x)"),
    ast.IsNot: ("is not", "use != or notnull(x)"),
}
OPERATORS = "+ - * / // % ** unary -, < <= > >= == !=, and or not, a if cond else b"
_NODE_WORDS: dict[type[ast.AST], str] = {
    ast.Attribute: "attribute access",
    ast.Subscript: "subscript",
    ast.Slice: "slice",
    ast.Lambda: "lambda",
    ast.ListComp: "comprehension",
    ast.SetComp: "comprehension",
    ast.DictComp: "comprehension",
    ast.GeneratorExp: "comprehension",
    ast.List: "list",
    ast.Tuple: "tuple",
    ast.Set: "set",
    ast.Dict: "dict",
    ast.NamedExpr: "assignment ':='",
    ast.Starred: "unpacking '*'",
    ast.JoinedStr: "f-string",
    ast.FormattedValue: "f-string",
    ast.Await: "await",
    ast.Yield: "yield",
    ast.YieldFrom: "yield",
}


def allowed_summary() -> str:
    return f"numbers, column names (`backquoted` if not identifiers), {OPERATORS}, functions {function_list()}"


def function_list() -> str:
    return ", ".join(f.signature for f in FUNCTIONS.values())


@dataclass(frozen=True)
class _Rewritten:
    """User text with each backquoted name replaced by a placeholder identifier Python can parse."""

    code: str
    names: dict[str, str]  # placeholder -> column name
    shifts: tuple[tuple[int, int], ...]  # (end of placeholder in code, cumulative original-minus-code shift)
    lead: int  # leading whitespace removed (Python rejects an indented expression)

    def original(self, pos: int) -> int:
        """Map a 0-based offset in `code` back to the user's text, so positions point at what they wrote."""
        shift = 0
        for end, total in self.shifts:
            if end <= pos:
                shift = total
        return pos + shift + self.lead


def _scan_backquotes(text: str, fail: Callable[[str, int], ConfigError]) -> list[tuple[int, int, str]]:
    """Spans (start, end) and names of backquoted column names; a doubled backquote inside is a literal one."""
    spans, i = [], 0
    while (start := text.find("`", i)) >= 0:
        j, name = start + 1, ""
        while True:
            k = text.find("`", j)
            if k < 0:
                raise fail("unclosed backquote '`'", start)
            name += text[j:k]
            if not text.startswith("``", k):
                break
            name, j = name + "`", k + 2
        if not name.strip():
            raise fail("empty column name '``'", start)
        spans.append((start, k + 1, name))
        i = k + 1
    return spans


def _rewrite(text: str, fail: Callable[[str, int], ConfigError]) -> _Rewritten:
    lead = len(text) - len(text.lstrip())
    body = text[lead:]
    spans = _scan_backquotes(body, lambda problem, pos: fail(problem, pos + lead))
    starts, ends = [0] + [e for _, e, _ in spans], [s for s, _, _ in spans] + [len(body)]
    outside = "".join(body[a:b] for a, b in zip(starts, ends, strict=True))
    if (hash_at := outside.find("#")) >= 0:
        raise fail("comment '#' is not allowed", lead + _outside_index(spans, hash_at))
    prefix = "_bq"
    while prefix in outside:  # a placeholder must never equal a name the user wrote
        prefix += "q"
    parts, names, shifts, last, delta = [], {}, [], 0, 0
    for n, (start, end, name) in enumerate(spans):
        placeholder = f"{prefix}{n}_"
        parts += [body[last:start], placeholder]
        names[placeholder] = name
        delta += (end - start) - len(placeholder)
        shifts.append((sum(map(len, parts)), delta))
        last = end
    parts.append(body[last:])
    code = "".join(parts)
    for blank in "\r\n\t\f\v":  # one line with the same offsets: YAML block text may span lines
        code = code.replace(blank, " ")
    return _Rewritten(code, names, tuple(shifts), lead)


def _outside_index(spans: list[tuple[int, int, str]], index: int) -> int:
    """Offset in the text of the index-th character outside backquotes."""
    for start, end, _ in spans:
        if start <= index:
            index += end - start
    return index


@dataclass(frozen=True)
class Expression:
    """A checked expression: its text, the mapped column it fills, and the source columns it reads."""

    text: str
    target: str | None
    tree: ast.Expression = field(repr=False, compare=False)
    names: dict[str, str] = field(repr=False, compare=False)  # placeholder -> backquoted column name
    columns: tuple[str, ...] = ()

    def check_columns(self, available: Iterable[str], origin: str | None = None) -> None:
        """Fail before evaluating when the file lacks a column the expression reads, naming close matches."""
        have = [str(c) for c in available]
        missing = [c for c in self.columns if c not in set(have)]
        if not missing:
            return
        details = "; ".join(f"source column '{c}' is not in the file{_close(c, have)}" for c in missing)
        where_ = f"{origin}: " if origin else ""
        raise DataContractError(f"{where_}{_label(self.target)}expr {self.text!r}: {details}")

    def evaluate(self, frame: pd.DataFrame, unparsed: Literal["nan", "keep"] = "nan") -> pd.Series:
        """Compute the column for every row of frame (vectorised).

        With unparsed="keep", a row whose input text is not a number gets that text (from the first
        such column) instead of a number, so validation rejects the row with the value.
        """
        self.check_columns(frame.columns)
        values = {c: _to_float(frame[c]) for c in self.columns}
        with np.errstate(all="ignore"):
            result = _Evaluator(values, self.names).visit(self.tree.body)
        out = pd.Series(np.broadcast_to(np.asarray(result, dtype=float), (len(frame),)).copy(), index=frame.index)
        out.name = self.target
        if unparsed == "keep":
            out = _keep_unparsed(out, frame, self.columns)
        return out


def _label(target: str | None) -> str:
    return f"columns.{target}: " if target else ""


def close_matches(name: str, candidates: Iterable[str], n: int = 3) -> list[str]:
    """Likely intended names: same name ignoring case first, then difflib's closest."""
    candidates = list(candidates)
    folded = [c for c in candidates if c.casefold() == name.casefold() and c != name]
    near = difflib.get_close_matches(name, candidates, n=n, cutoff=0.6)
    return list(dict.fromkeys(folded + near))[:n]


def _close(name: str, candidates: list[str]) -> str:
    matches = close_matches(name, candidates)
    return f" (close matches: {', '.join(repr(m) for m in matches)})" if matches else " (no close match)"


def _to_float(series: pd.Series) -> np.ndarray:
    """Source values as float64; text that is not a number becomes NaN (see `unparsed="keep"`)."""
    if pd.api.types.is_bool_dtype(series) or pd.api.types.is_numeric_dtype(series):
        return series.to_numpy(dtype=float, na_value=np.nan)
    return pd.to_numeric(series, errors="coerce").to_numpy(dtype=float, na_value=np.nan)


def unparsed_mask(series: pd.Series) -> pd.Series:
    """Rows holding a value that is present but is not a number."""
    return series.notna() & np.isnan(_to_float(series))


def _keep_unparsed(out: pd.Series, frame: pd.DataFrame, columns: tuple[str, ...]) -> pd.Series:
    result = out
    for column in reversed(columns):  # the first column in the text wins
        bad = unparsed_mask(frame[column])
        if bad.any():
            result = result.astype(object)
            result[bad] = frame[column][bad]
    return result


def parse(text: str, target: str | None = None) -> Expression:
    """Check `text` against the whitelist and return the Expression; ConfigError on anything else.

    `target` is the contract column being filled; it is named in every message.
    """

    def fail(problem: str, pos: int, allowed: str | None = None) -> ConfigError:
        tail = f"; allowed: {allowed}" if allowed else ""
        return ConfigError(f"{_label(target)}expr {text!r}: {problem} (position {pos + 1}){tail}")

    if not isinstance(text, str) or not text.strip():
        raise ConfigError(f"{_label(target)}expr must be a non-empty text, got {text!r}")
    if len(text) > MAX_LENGTH:
        raise fail(f"expression is longer than {MAX_LENGTH} characters", MAX_LENGTH)
    rewritten = _rewrite(text, fail)
    try:
        with warnings.catch_warnings():  # e.g. "invalid decimal literal" for `1if`: the whitelist decides, quietly
            warnings.simplefilter("ignore", SyntaxWarning)
            tree = ast.parse(rewritten.code, mode="eval")
    except SyntaxError as err:
        pos = rewritten.original(max((err.offset or 1) - 1, 0))
        raise fail(f"syntax error: {err.msg}", pos, allowed_summary()) from None
    except (RecursionError, MemoryError, ValueError):
        raise fail("expression is nested too deeply or malformed", 0) from None
    checker = _Checker(rewritten, fail)
    try:
        checker.visit(tree.body)
    except RecursionError:
        raise fail("expression is nested too deeply", 0) from None
    names = {**rewritten.names, **checker.aliases}
    return Expression(text, target, tree, names, tuple(dict.fromkeys(checker.columns)))


class _Checker:
    """Walks the tree once, rejecting every node the language does not define and collecting columns."""

    def __init__(self, rewritten: _Rewritten, fail: Callable[..., ConfigError]) -> None:
        self.rw, self.fail = rewritten, fail
        self.columns: list[str] = []
        self.aliases: dict[str, str] = {}  # ast's (NFKC-normalised) identifier -> the name as written

    def _offset(self, col_offset: int) -> int:
        """ast counts UTF-8 bytes on a line; the rewritten code is one line, so bytes -> characters."""
        return len(self.rw.code.encode("utf-8")[:col_offset].decode("utf-8", errors="ignore"))

    def pos(self, node: ast.expr | ast.keyword) -> int:
        return self.rw.original(self._offset(node.col_offset))

    def token(self, node: ast.AST) -> str:
        segment = ast.get_source_segment(self.rw.code, node) or type(node).__name__
        for placeholder, name in self.rw.names.items():
            segment = segment.replace(placeholder, f"`{name}`")
        return segment if len(segment) <= 40 else segment[:37] + "..."

    def op_pos(self, left: ast.expr, right: ast.expr, symbol: str) -> int:
        """Operators carry no position in the AST: find the symbol between their operands."""
        assert left.end_col_offset is not None  # ast.parse sets end positions on every node
        start, stop = self._offset(left.end_col_offset), self._offset(right.col_offset)
        found = self.rw.code.find(symbol.split()[0], start, stop)
        return self.rw.original(found if found >= 0 else start)

    def visit(self, node: ast.expr) -> None:
        method = getattr(self, f"visit_{type(node).__name__}", None)
        if method is None:
            word = _NODE_WORDS.get(type(node), type(node).__name__)
            raise self.fail(f"{word} {self.token(node)!r} is not allowed", self.pos(node), allowed_summary())
        method(node)

    def visit_Constant(self, node: ast.Constant) -> None:
        if isinstance(node.value, bool) or (isinstance(node.value, int | float) and _finite(node.value)):
            return
        if isinstance(node.value, int | float):
            raise self.fail(f"number {self.token(node)!r} is out of range", self.pos(node))
        if isinstance(node.value, str):
            hint = "expressions compute numbers: map codes with recode, or backquote a column name"
            raise self.fail(f"text {self.token(node)!r} is not allowed ({hint})", self.pos(node))
        hint = " (use isnull(x) / notnull(x))" if node.value is None else ""
        raise self.fail(f"constant {self.token(node)!r} is not allowed{hint}", self.pos(node), allowed_summary())

    def visit_Name(self, node: ast.Name) -> None:
        if node.id in self.rw.names:
            self.columns.append(self.rw.names[node.id])
            return
        name = ast.get_source_segment(self.rw.code, node) or node.id  # as written: ast NFKC-normalises
        if name.startswith("__"):
            raise self.fail(
                f"name {name!r} is not allowed (names starting with '__' must be backquoted to read a column)",
                self.pos(node),
            )
        if self.aliases.setdefault(node.id, name) != name:
            raise self.fail(f"name {name!r} reads like {self.aliases[node.id]!r}: backquote both", self.pos(node))
        self.columns.append(name)

    def visit_BinOp(self, node: ast.BinOp) -> None:
        self._operator(node.op, node.left, node.right)
        self.visit(node.left)
        self.visit(node.right)

    def visit_UnaryOp(self, node: ast.UnaryOp) -> None:
        if type(node.op) not in (ast.USub, ast.UAdd, ast.Not):
            symbol, hint = _REJECTED_OPS.get(type(node.op), (type(node.op).__name__, ""))
            raise self.fail(f"operator {symbol!r} is not allowed{_hint(hint)}", self.pos(node), OPERATORS)
        self.visit(node.operand)

    def visit_BoolOp(self, node: ast.BoolOp) -> None:
        for value in node.values:
            self.visit(value)

    def visit_Compare(self, node: ast.Compare) -> None:
        operands = [node.left, *node.comparators]
        for op, left, right in zip(node.ops, operands[:-1], operands[1:], strict=True):
            self._operator(op, left, right)
        for operand in operands:
            self.visit(operand)

    def visit_IfExp(self, node: ast.IfExp) -> None:
        for part in (node.test, node.body, node.orelse):
            self.visit(part)

    def _operator(self, op: ast.AST, left: ast.expr, right: ast.expr) -> None:
        if type(op) in BINARY or type(op) in COMPARE:
            return
        symbol, hint = _REJECTED_OPS.get(type(op), (type(op).__name__, ""))
        raise self.fail(f"operator {symbol!r} is not allowed{_hint(hint)}", self.op_pos(left, right, symbol), OPERATORS)

    def visit_Call(self, node: ast.Call) -> None:
        if not isinstance(node.func, ast.Name):
            self.visit(node.func)  # attribute access, lambda, ...: rejected with their own words
            raise self.fail(f"only a listed function can be called, not {self.token(node.func)!r}", self.pos(node))
        name = ast.get_source_segment(self.rw.code, node.func) or node.func.id
        if node.func.id in self.rw.names:
            name = f"`{self.rw.names[node.func.id]}`"
        spec = FUNCTIONS.get(name)
        if spec is None:
            near = close_matches(name, FUNCTIONS)
            hint = f" (did you mean {near[0]!r}?)" if near else ""
            raise self.fail(f"function {name!r} is not allowed{hint}", self.pos(node.func), function_list())
        self._arguments(node, spec)
        for arg in node.args:
            self.visit(arg)

    def _arguments(self, node: ast.Call, spec: Function) -> None:
        if node.keywords:
            kw = node.keywords[0]
            raise self.fail(f"keyword argument {self.token(kw)!r} is not allowed in {spec.signature}", self.pos(kw))
        for arg in node.args:
            if isinstance(arg, ast.Starred):
                self.visit(arg)
        count, least, most = len(node.args), spec.min_args, spec.max_args
        if count < least or (most is not None and count > most):
            want = f"at least {least}" if most is None else str(least) if least == most else f"{least} or {most}"
            raise self.fail(f"{spec.signature} takes {want} arguments, got {count}", self.pos(node.func))
        if spec.name == "round" and count == 2 and _whole_constant(node.args[1]) is None:
            raise self.fail("round(x, n): n must be a whole number written in the expression", self.pos(node.args[1]))
        if spec.name == "clip":
            lo, hi = _number(node.args[1]), _number(node.args[2])
            if lo is not None and hi is not None and lo > hi:
                raise self.fail(f"clip(x, lo, hi): lo {lo:g} is above hi {hi:g}", self.pos(node.args[1]))


def _hint(hint: str) -> str:
    return f" ({hint})" if hint else ""


def _finite_or_inf(value: int | float) -> float:
    try:
        return float(value)
    except OverflowError:
        return float("inf")


def _finite(value: int | float) -> bool:
    return bool(np.isfinite(_finite_or_inf(value)))


def _number(node: ast.AST) -> float | None:
    """The value of a literal number, possibly negated; None for anything else."""
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        inner = _number(node.operand)
        return None if inner is None else (-inner if isinstance(node.op, ast.USub) else inner)
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float) and not isinstance(node.value, bool):
        return _finite_or_inf(node.value)
    return None


def _whole_constant(node: ast.AST) -> int | None:
    value = _number(node)
    return int(value) if value is not None and np.isfinite(value) and float(value).is_integer() else None


class _Evaluator:
    """Evaluates a checked tree with numpy; only node types `_Checker` accepted can reach it."""

    def __init__(self, values: dict[str, np.ndarray], names: dict[str, str]) -> None:
        self.values, self.names = values, names

    def visit(self, node: ast.AST) -> Value:
        return getattr(self, f"visit_{type(node).__name__}")(node)

    def visit_Constant(self, node: ast.Constant) -> Value:
        return np.float64(float(cast("int | float", node.value)))  # _Checker let only numbers through

    def visit_Name(self, node: ast.Name) -> Value:
        return self.values[self.names.get(node.id, node.id)]

    def visit_BinOp(self, node: ast.BinOp) -> Value:
        return BINARY[type(node.op)][1](self.visit(node.left), self.visit(node.right))

    def visit_UnaryOp(self, node: ast.UnaryOp) -> Value:
        value = self.visit(node.operand)
        if isinstance(node.op, ast.Not):
            return 1.0 - _truth(value)
        return -value if isinstance(node.op, ast.USub) else value

    def visit_BoolOp(self, node: ast.BoolOp) -> Value:
        combine = kleene_and if isinstance(node.op, ast.And) else kleene_or
        out = _truth(self.visit(node.values[0]))
        for value in node.values[1:]:
            out = combine(out, self.visit(value))
        return out

    def visit_Compare(self, node: ast.Compare) -> Value:
        operands = [self.visit(node.left), *(self.visit(c) for c in node.comparators)]
        out: Value = np.float64(1.0)
        for op, a, b in zip(node.ops, operands[:-1], operands[1:], strict=True):
            result = np.where(np.isnan(a) | np.isnan(b), np.nan, COMPARE[type(op)][1](a, b).astype(float))
            out = kleene_and(out, result)
        return out

    def visit_IfExp(self, node: ast.IfExp) -> Value:
        return where(self.visit(node.test), self.visit(node.body), self.visit(node.orelse))

    def visit_Call(self, node: ast.Call) -> Value:
        spec = FUNCTIONS[cast(ast.Name, node.func).id]  # _Checker let only calls of listed names through
        return spec.apply(*(self.visit(arg) for arg in node.args))
