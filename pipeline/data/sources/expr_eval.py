"""What the expression language computes: numpy versions of its operators and functions, and the evaluator.

The semantics listed in `expr`'s docstring (missing values propagate, division by zero is NaN,
three-valued comparisons and logic, `min`/`max` skip missing arguments) are implemented here, in
one place. Separate from reading and checking the text (`expr_check`): only a tree that the
check accepted reaches `_Evaluator`, which walks it with numpy and never compiles or evaluates text.
"""

from __future__ import annotations

import ast
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeAlias, cast

import numpy as np
import pandas as pd

Value: TypeAlias = np.ndarray | np.float64


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
