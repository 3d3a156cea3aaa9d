"""Reading and checking an expression's text: backquoted names, positions in the user's text, the whitelist.

The text is rewritten so that Python's `ast` can parse it (each backquoted column name becomes a
placeholder identifier, with a map back to the user's positions), and `_Checker` walks the parsed
tree once, rejecting every node the language does not define with a message that points at it.
Separate from `expr` (the public `parse` and `Expression`) and from `expr_eval` (what the language
computes): this is the only code that decides what user text may contain.
"""

from __future__ import annotations

import ast
import difflib
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

from pipeline.data.sources.expr_eval import BINARY, COMPARE, FUNCTIONS, Function
from pipeline.errors import ConfigError

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


def close_matches(name: str, candidates: Iterable[str], n: int = 3) -> list[str]:
    """Likely intended names: same name ignoring case first, then difflib's closest."""
    candidates = list(candidates)
    folded = [c for c in candidates if c.casefold() == name.casefold() and c != name]
    near = difflib.get_close_matches(name, candidates, n=n, cutoff=0.6)
    return list(dict.fromkeys(folded + near))[:n]


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
