"""The applicant data contract: core columns plus config-declared extras, as one pandera schema.

One row is one application at decision time. Every column but the id may be missing
from a source (a feature that needs it is then skipped); when present, it is typed
and range-checked. Numeric columns are held as float64 so that missing values stay
NaN for LightGBM; integer columns carry an `integer` check instead of an int dtype.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

import numpy as np
import pandas as pd
import pandera.pandas as pa

from pipeline.config import ContractConfig
from pipeline.errors import ConfigError

Dtype = Literal["float", "int", "category", "str", "date"]
Role = Literal["id", "feature", "history", "date", "target", "protected"]

HOUSING = ("own", "rent", "mortgage", "free", "other")
REPAYMENT_STATUS = (-2, 9)  # -2 no use, -1 paid in full, 0 revolving on time, 1..9 months past due


@dataclass(frozen=True)
class ContractColumn:
    name: str
    dtype: Dtype
    description: str
    role: Role = "feature"
    min: float | None = None
    max: float | None = None
    min_exclusive: bool = False
    allowed: tuple[str, ...] | None = None
    nullable: bool = True
    risk_direction: int = 0
    reason: str | None = None
    hard_min: float | None = None  # a user may move min/max (contract.ranges) only within these
    hard_max: float | None = None

    @property
    def rule(self) -> str:
        """The column's rule in words, for docs and reject reasons."""
        parts = []
        if self.allowed is not None:
            parts.append("one of " + ", ".join(self.allowed))
        if self.min is not None and self.max is not None:
            parts.append(f"{self.min:g}..{self.max:g}")
        elif self.min is not None:
            parts.append(f"{'>' if self.min_exclusive else '>='} {self.min:g}")
        elif self.max is not None:
            parts.append(f"<= {self.max:g}")
        if self.dtype == "int":
            parts.append("whole number")
        if not self.nullable:
            parts.append("not null")
        return "; ".join(parts) or "any"


WINDOW = "in the source's reporting window (contract.delinquency_window_months)"


def _core(history_months: int) -> list[ContractColumn]:
    c = ContractColumn
    cols = [
        c("applicant_id", "str", "Unique application identifier.", role="id", nullable=False),
        c("application_date", "date", "Date of the application; enables an out-of-time split.", role="date"),
        c("age", "int", "Applicant age in years.", min=18, max=100, hard_min=14, hard_max=120),
        c("monthly_income", "float", "Verified gross monthly income.", min=0, hard_min=0),
        c("employment_years", "float", "Years with the current employer.", min=0, max=60, hard_min=0, hard_max=80),
        c("housing", "category", "Housing status.", allowed=HOUSING),
        c("dependents", "int", "Number of financial dependents.", min=0, max=20, hard_min=0, hard_max=40),
        c("monthly_debt_payments", "float", "Existing monthly debt obligations.", min=0),
        c("open_credit_lines", "int", "Number of open credit lines.", min=0),
        c("revolving_balance", "float", "Current balance on revolving credit.", min=0),
        c("revolving_limit", "float", "Current limit on revolving credit.", min=0),
        c("revolving_utilization", "float", "Balance / limit when given directly.", min=0),
        c("delinquencies_30d", "int", f"30+ days past due events {WINDOW}.", min=0),
        c("delinquencies_60d", "int", f"60+ days past due events {WINDOW}.", min=0),
        c("delinquencies_90d", "int", f"90+ days past due events {WINDOW}.", min=0),
        c("credit_history_months", "int", "Months since the first credit line.", min=0),
        c("requested_amount", "float", "Credit amount applied for.", min=0, min_exclusive=True),
        c("requested_term_months", "int", "Term applied for, in months.", min=1, max=360, hard_min=1, hard_max=600),
    ]
    for m in range(1, history_months + 1):
        cols += [
            c(
                f"statement_balance_m{m}",
                "float",
                f"Statement balance {m} month(s) ago (m1 = latest); negative means a credit balance.",
                role="history",
            ),
            c(f"payment_amount_m{m}", "float", f"Amount paid {m} month(s) ago.", role="history", min=0),
            c(
                f"repayment_status_m{m}",
                "int",
                f"Repayment status {m} month(s) ago: -2 no use, -1 paid in full, "
                "0 revolving on time, 1..9 months past due.",
                role="history",
                min=REPAYMENT_STATUS[0],
                max=REPAYMENT_STATUS[1],
            ),
        ]
    cols += [
        c(
            "defaulted",
            "int",
            "1 if the account defaulted in the outcome window (training only).",
            role="target",
            min=0,
            max=1,
        ),
        c(
            "granted_limit",
            "float",
            "Limit granted and sustained (training only; target of the limit model).",
            role="target",
            min=0,
        ),
    ]
    return cols


def _with_range(col: ContractColumn, override) -> ContractColumn:
    """A core column with the user's range, refused outside the hard bounds (a typo must not admit nonsense)."""
    lo = col.min if override.min is None else override.min
    hi = col.max if override.max is None else override.max
    if col.dtype not in ("int", "float"):
        raise ConfigError(f"contract.ranges.{col.name}: only numeric columns have a range")
    hard_min = col.min if col.hard_min is None else col.hard_min  # no declared hard bound: narrow only
    hard_max = col.max if col.hard_max is None else col.hard_max
    if hard_min is not None and lo is not None and lo < hard_min:
        raise ConfigError(f"contract.ranges.{col.name}: min {lo:g} is below the hard bound {hard_min:g}")
    if hard_max is not None and hi is not None and hi > hard_max:
        raise ConfigError(f"contract.ranges.{col.name}: max {hi:g} is above the hard bound {hard_max:g}")
    if lo is not None and hi is not None and lo > hi:
        raise ConfigError(f"contract.ranges.{col.name}: min {lo} is above max {hi}")
    return replace(col, min=lo, max=hi)


def contract_columns(cfg: ContractConfig) -> list[ContractColumn]:
    """Core columns (with the user's ranges), then declared extras, then protected attributes (never inputs)."""
    cols = _core(cfg.history_months)
    unknown = sorted(set(cfg.ranges) - {c.name for c in cols})
    if unknown:
        raise ConfigError(f"contract.ranges: {', '.join(unknown)} not core contract column(s); extras set min/max")
    cols = [_with_range(c, cfg.ranges[c.name]) if c.name in cfg.ranges else c for c in cols]
    names = {c.name for c in cols}
    for extra in cfg.extras:
        if extra.name in names:
            raise ConfigError(f"contract.extras: {extra.name!r} clashes with a core contract column")
        cols.append(
            ContractColumn(
                extra.name,
                extra.dtype,
                extra.description or "Declared extra column.",
                min=extra.min,
                max=extra.max,
                allowed=tuple(extra.allowed) if extra.allowed else None,
                nullable=extra.nullable,
                risk_direction=extra.risk_direction,
                reason=extra.reason,
            )
        )
        names.add(extra.name)
    for name in cfg.protected:
        if name in names:
            raise ConfigError(
                f"contract.protected: {name!r} is also a model column; protected attributes are never inputs"
            )
        cols.append(ContractColumn(name, "str", "Protected attribute: fairness reports only.", role="protected"))
    return cols


# Rule names as they appear in the rejects file (`rule` column) and in the summary.
RULE_TYPE = "type:{dtype}"
RULE_NOT_NULL = "not_null"
RULE_UNIQUE = "unique"
RULE_ENCODING = "encoding"
RULE_FINITE = "finite"
RULE_INTEGER = "integer"
RULE_ALLOWED = "allowed_values"
MAX_ID_LENGTH = 64
RULE_MAX_LENGTH = f"max_length({MAX_ID_LENGTH})"


def range_rule(col: ContractColumn) -> str | None:
    """Name of the range check, e.g. `range(18..100)`, `min(0)`, `greater_than(0)`."""
    if col.min is not None and col.max is not None:
        return f"range({col.min:g}..{col.max:g})"
    if col.min is not None:
        return f"greater_than({col.min:g})" if col.min_exclusive else f"min({col.min:g})"
    if col.max is not None:
        return f"max({col.max:g})"
    return None


def _range_check(col: ContractColumn) -> pa.Check:
    lo = -np.inf if col.min is None else col.min
    hi = np.inf if col.max is None else col.max

    def within(s: pd.Series) -> pd.Series:
        above = s > lo if col.min_exclusive else s >= lo
        return s.isna() | ~np.isfinite(s) | (above & (s <= hi))  # inf is reported once, as `finite`

    return pa.Check(within, name=range_rule(col))


def _integer(s: pd.Series) -> pd.Series:
    return s.isna() | (s == np.floor(s))


def _finite(s: pd.Series) -> pd.Series:
    return s.isna() | np.isfinite(s)


def _checks(col: ContractColumn) -> list[pa.Check]:
    checks: list[pa.Check] = []
    if col.dtype in ("float", "int"):
        checks.append(pa.Check(_finite, name=RULE_FINITE))
        if range_rule(col) is not None:
            checks.append(_range_check(col))
        if col.dtype == "int":
            checks.append(pa.Check(_integer, name=RULE_INTEGER))
    if col.allowed is not None:
        allowed = list(col.allowed)
        checks.append(pa.Check(lambda s: s.isna() | s.isin(allowed), name=RULE_ALLOWED))
    return checks


def pandera_dtype(col: ContractColumn):
    """Numbers are float64 (NaN for missing); text columns are checked by rule, not by dtype."""
    return {"float": "float64", "int": "float64", "date": "datetime64[ns]"}.get(col.dtype)


def build_schema(columns: list[ContractColumn], present: list[str]) -> pa.DataFrameSchema:
    """Schema over the contract columns present in the frame (absent optional ones are reported, not invented).

    Built at run time from core + extras + protected, because the history length and the
    extras come from config; values are coerced to their types before it runs (see validate.py).
    """
    spec = {}
    for col in columns:
        if col.name not in present:
            continue
        spec[col.name] = pa.Column(
            pandera_dtype(col),
            checks=_checks(col),
            nullable=col.nullable,
            unique=col.role == "id",
            report_duplicates="all",
            coerce=False,
            required=True,
            description=col.description,
        )
    return pa.DataFrameSchema(spec, strict=False, name="applicant_contract")
