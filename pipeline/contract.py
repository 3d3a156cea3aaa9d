"""The applicant data contract: core columns plus config-declared extras, as one pandera schema.

One row is one application at decision time. Every column but the id may be missing
from a source (a feature that needs it is then skipped); when present, it is typed
and range-checked. Numeric columns are held as float64 so that missing values stay
NaN for LightGBM; integer columns carry an `integer` check instead of an int dtype.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
import pandera.pandas as pa

from pipeline.config import ContractConfig

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


def _core(history_months: int) -> list[ContractColumn]:
    c = ContractColumn
    cols = [
        c("applicant_id", "str", "Unique application identifier.", role="id", nullable=False),
        c("application_date", "date", "Date of the application; enables an out-of-time split.", role="date"),
        c("age", "int", "Applicant age in years.", min=18, max=100),
        c("monthly_income", "float", "Verified gross monthly income.", min=0),
        c("employment_years", "float", "Years with the current employer.", min=0, max=60),
        c("housing", "category", "Housing status.", allowed=HOUSING),
        c("dependents", "int", "Number of financial dependents.", min=0, max=20),
        c("monthly_debt_payments", "float", "Existing monthly debt obligations.", min=0),
        c("open_credit_lines", "int", "Number of open credit lines.", min=0),
        c("revolving_balance", "float", "Current balance on revolving credit.", min=0),
        c("revolving_limit", "float", "Current limit on revolving credit.", min=0),
        c("revolving_utilization", "float", "Balance / limit when given directly.", min=0),
        c("delinquencies_30d", "int", "30+ days past due events, last 24 months.", min=0),
        c("delinquencies_60d", "int", "60+ days past due events, last 24 months.", min=0),
        c("delinquencies_90d", "int", "90+ days past due events, last 24 months.", min=0),
        c("credit_history_months", "int", "Months since the first credit line.", min=0),
        c("requested_amount", "float", "Credit amount applied for.", min=0, min_exclusive=True),
        c("requested_term_months", "int", "Term applied for, in months.", min=1, max=360),
    ]
    for m in range(1, history_months + 1):
        cols += [
            c(f"statement_balance_m{m}", "float", f"Statement balance {m} month(s) ago (m1 = latest); "
              "negative means a credit balance.", role="history"),
            c(f"payment_amount_m{m}", "float", f"Amount paid {m} month(s) ago.", role="history", min=0),
            c(f"repayment_status_m{m}", "int", f"Repayment status {m} month(s) ago: -2 no use, -1 paid in full, "
              "0 revolving on time, 1..9 months past due.", role="history",
              min=REPAYMENT_STATUS[0], max=REPAYMENT_STATUS[1]),
        ]
    cols += [
        c("defaulted", "int", "1 if the account defaulted in the outcome window (training only).",
          role="target", min=0, max=1),
        c("granted_limit", "float", "Limit granted and sustained (training only; target of the limit model).",
          role="target", min=0),
    ]
    return cols


def contract_columns(cfg: ContractConfig) -> list[ContractColumn]:
    """Core columns, then declared extras, then protected attributes (never model inputs)."""
    cols = _core(cfg.history_months)
    names = {c.name for c in cols}
    for extra in cfg.extras:
        if extra.name in names:
            raise ValueError(f"extra column {extra.name!r} clashes with a core contract column")
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
            raise ValueError(f"protected attribute {name!r} is also a model column; protected attributes are never inputs")
        cols.append(ContractColumn(name, "str", "Protected attribute: fairness reports only.", role="protected"))
    return cols


def _integer(s: pd.Series) -> pd.Series:
    return s.isna() | (s == np.floor(s))


def _finite(s: pd.Series) -> pd.Series:
    return s.isna() | np.isfinite(s)


def _checks(col: ContractColumn) -> list[pa.Check]:
    checks: list[pa.Check] = []
    if col.dtype in ("float", "int"):
        checks.append(pa.Check(_finite, name="finite"))
        if col.min is not None and col.max is not None:
            checks.append(pa.Check.in_range(col.min, col.max))
        elif col.min is not None:
            checks.append(pa.Check.gt(col.min) if col.min_exclusive else pa.Check.ge(col.min))
        elif col.max is not None:
            checks.append(pa.Check.le(col.max))
        if col.dtype == "int":
            checks.append(pa.Check(_integer, name="integer"))
    if col.allowed is not None:
        checks.append(pa.Check.isin(list(col.allowed)))
    return checks


def pandera_dtype(col: ContractColumn):
    """Numbers are float64 (NaN for missing); text columns are checked by rule, not by dtype."""
    return {"float": "float64", "int": "float64", "date": "datetime64[ns]"}.get(col.dtype)


def build_schema(columns: list[ContractColumn], present: list[str]) -> pa.DataFrameSchema:
    """Schema over the contract columns present in the frame (absent optional ones are reported, not invented)."""
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
        )
    return pa.DataFrameSchema(spec, strict=False, name="applicant_contract")


def contract_markdown(cfg: ContractConfig) -> str:
    """docs/data-contract.md, generated from the same column list the schema is built from."""
    lines = [
        "# Data contract",
        "",
        "Generated by `make docs` from `pipeline/contract.py`; do not edit by hand.",
        "",
        "| column | type | role | rule | description |",
        "|---|---|---|---|---|",
    ]
    for c in contract_columns(cfg):
        lines.append(f"| `{c.name}` | {c.dtype} | {c.role} | {c.rule} | {c.description} |")
    lines.append("")
    return "\n".join(lines)
