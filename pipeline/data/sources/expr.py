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

This module is the public face (`parse`, `Expression`); the text is read and checked against the
whitelist in `expr_check`, and what the language computes is in `expr_eval`.
"""

from __future__ import annotations

import ast
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd

from pipeline.data.sources.expr_check import _Checker, _rewrite, allowed_summary, close_matches

# Re-exported: tests/test_expr.py, which other work is editing now, imports FUNCTIONS from here. New code
# imports it from pipeline.data.sources.expr_eval.
from pipeline.data.sources.expr_eval import FUNCTIONS as FUNCTIONS
from pipeline.data.sources.expr_eval import _Evaluator, _keep_unparsed, _to_float
from pipeline.errors import ConfigError, DataContractError

MAX_LENGTH = 4000  # longer text is a config mistake, and deep nesting must not exhaust the parser's stack


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


def _close(name: str, candidates: list[str]) -> str:
    matches = close_matches(name, candidates)
    return f" (close matches: {', '.join(repr(m) for m in matches)})" if matches else " (no close match)"


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
