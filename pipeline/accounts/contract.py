"""The account snapshot contract: one row per account and month, validated like applicants are.

Reuses the applicant contract's `ContractColumn`, `build_schema` and `coerce_frame`, so rules,
rule names and coercion are identical; the reject table has the same layout with `account_id`
in place of `applicant_id`. Two differences the applicant contract cannot express are added
here: the key is (account_id, snapshot_month), not the id alone (a panel holds many months per
account), and a few cross-column rules on the review history.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

import numpy as np
import pandas as pd
import pandera.pandas as pa

from pipeline.data.contract import REPAYMENT_STATUS, RULE_NOT_NULL, ContractColumn, build_schema
from pipeline.data.validate import ValidationResult, coerce_frame
from pipeline.errors import DataContractError, RejectionBudgetExceeded

PRODUCTS = ("credit_card", "overdraft", "revolving_loan")
DIRECTIONS = ("increase", "decrease")
ID = "account_id"
REJECT_COLUMNS = ["row_number", ID, "column", "rule", "value"]
RULE_KEY = "unique(account_id, snapshot_month)"
RULE_MONTH_START = "month_start"
RULE_NOT_AFTER = "not_after(snapshot_month)"
RULE_PAIRED = "paired(last_limit_change_month, last_limit_change_direction)"
_PANDERA_RULES = {"not_nullable": RULE_NOT_NULL}


def account_columns(history_months: int) -> list[ContractColumn]:
    """Core snapshot columns, then K months of history (m1 latest), then target and review history."""
    c = ContractColumn
    cols = [
        c(ID, "str", "Unique account identifier.", role="id", nullable=False),
        c("snapshot_month", "date", "First day of the month the snapshot describes.", role="date", nullable=False),
        c("product", "category", "Product type.", allowed=PRODUCTS),
        c("credit_limit", "float", "Current credit limit.", min=0, nullable=False),
        c("balance", "float", "Current balance; negative is a credit balance.", nullable=False),
        c("months_on_book", "int", "Months since the account was opened.", min=0),
    ]
    for m in range(1, history_months + 1):
        cols += [
            c(f"statement_balance_m{m}", "float", f"Statement balance {m} month(s) ago (m1 = latest).", role="history"),
            c(f"payment_amount_m{m}", "float", f"Amount paid against that statement {m} month(s) ago.",
              role="history", min=0),
            c(f"repayment_status_m{m}", "int", f"Repayment status {m} month(s) ago: -2 no use, -1 paid in full, "
              "0 revolving on time, 1..9 months past due.", role="history",
              min=REPAYMENT_STATUS[0], max=REPAYMENT_STATUS[1]),
        ]  # fmt: skip
    cols += [
        c("monthly_income", "float", "Latest known monthly income; missing when unknown.", min=0),
        c("monthly_debt_payments", "float", "Monthly payments on other debts (not this account).", min=0),
        c("defaulted_next", "int", "1 if the account defaulted the next month (training only).", role="target",
          min=0, max=1),
        c("last_limit_change_month", "date", "Month of the last limit change; missing when never changed.",
          role="history"),
        c("last_limit_change_direction", "category", "Direction of the last limit change.", role="history",
          allowed=DIRECTIONS),
        c("contacts_this_month", "int", "Collection or review contacts already made this month.", min=0),
    ]  # fmt: skip
    return cols


def account_schema(history_months: int, present: Iterable[str]) -> pa.DataFrameSchema:
    """Column-level schema; the id is checked for uniqueness per month separately (see `_key_failures`)."""
    cols = [replace(col, role="feature") if col.role == "id" else col for col in account_columns(history_months)]
    return build_schema(cols, list(present))


class _Failures:
    """(position, column, rule) triples before they become the rejects table (mirrors validate.py)."""

    def __init__(self) -> None:
        self.parts: list[pd.DataFrame] = []

    def add(self, mask_or_positions: np.ndarray, column: str, rule: str) -> None:
        pos = np.asarray(mask_or_positions)
        pos = np.flatnonzero(pos) if pos.dtype == bool else pos
        if len(pos):
            self.parts.append(pd.DataFrame({"pos": pos.astype("int64"), "column": column, "rule": rule}))

    def frame(self) -> pd.DataFrame:
        if not self.parts:
            return pd.DataFrame({"pos": pd.Series(dtype="int64"), "column": [], "rule": []})
        return pd.concat(self.parts, ignore_index=True).drop_duplicates(ignore_index=True)


def _schema_failures(typed: pd.DataFrame, history_months: int, origin: str, failures: _Failures) -> None:
    try:
        account_schema(history_months, typed.columns).validate(typed, lazy=True)
    except pa.errors.SchemaErrors as err:
        cases = err.failure_cases
        table_level = cases[cases["index"].isna()]
        if len(table_level):
            first = table_level.iloc[0]
            raise DataContractError(
                f"{origin}: column '{first['column']}' fails rule '{first['check']}' as a whole"
            ) from None
        for (column, check), group in cases.groupby(["column", "check"], sort=False):
            failures.add(group["index"].astype("int64").to_numpy(), str(column), _PANDERA_RULES.get(check, check))


def _row_failures(typed: pd.DataFrame, failures: _Failures) -> None:
    """Rules across columns or rows: the monthly key, month starts, and a consistent review history."""
    if "snapshot_month" in typed:
        key = typed[[ID, "snapshot_month"]]
        dup = key.notna().all(axis=1) & key.duplicated(keep=False)
        failures.add(dup.to_numpy(bool), ID, RULE_KEY)  # every row with a duplicated key, not only the second
        month = typed["snapshot_month"]
        failures.add((month.notna() & (month.dt.day != 1)).to_numpy(bool), "snapshot_month", RULE_MONTH_START)
        if "last_limit_change_month" in typed:
            after = typed["last_limit_change_month"] > month
            failures.add(after.fillna(False).to_numpy(bool), "last_limit_change_month", RULE_NOT_AFTER)
    if "last_limit_change_month" in typed or "last_limit_change_direction" in typed:
        has_month = typed.get("last_limit_change_month", pd.Series(pd.NaT, index=typed.index)).notna()
        has_dir = typed.get("last_limit_change_direction", pd.Series(None, index=typed.index)).notna()
        failures.add((has_month != has_dir).to_numpy(bool), "last_limit_change_direction", RULE_PAIRED)


def _rejects(found: pd.DataFrame, raw: pd.DataFrame, typed: pd.DataFrame, row_offset: int) -> pd.DataFrame:
    pos = found["pos"].to_numpy(dtype="int64")
    values = [_short(raw[col].iat[p]) if col in raw else None for p, col in zip(pos, found["column"], strict=True)]
    ids = typed[ID].to_numpy(dtype=object)[pos] if ID in typed else np.full(len(pos), None)
    return pd.DataFrame(
        {
            "row_number": pos + 1 + row_offset,
            ID: pd.array([_short(v) for v in ids], dtype=object),
            "column": found["column"].astype(str).to_numpy(),
            "rule": found["rule"].astype(str).to_numpy(),
            "value": pd.array(values, dtype=object),
        },
        columns=REJECT_COLUMNS,
    ).sort_values(["row_number", "column", "rule"], kind="stable", ignore_index=True)


def _short(value: object, limit: int = 200) -> str | None:
    """Offending value as the source wrote it, cut like validate.py cuts it."""
    if value is None or value is pd.NaT or (isinstance(value, float) and np.isnan(value)):
        return None
    text = str(value)
    return text if len(text) <= limit else text[:limit] + f"...({len(text)} chars)"


def validate_accounts(
    frame: pd.DataFrame,
    history_months: int = 6,
    origin: str = "accounts",
    *,
    required: Iterable[str] = (ID, "snapshot_month"),
    rejection_budget: float | None = None,
    row_offset: int = 0,
) -> ValidationResult:
    """Quarantine bad snapshot rows with (row_number, account_id, column, rule, value); rows in = valid + rejected."""
    if len(frame) == 0:
        raise DataContractError(f"{origin}: no data rows (the input is empty or has only a header)")
    missing = [name for name in required if name not in frame.columns]
    if missing:
        raise DataContractError(f"{origin}: required column(s) missing: {', '.join(missing)}")
    columns = account_columns(history_months)
    known = {c.name for c in columns}
    raw = frame.reset_index(drop=True)
    failures = _Failures()
    typed = coerce_frame(raw, columns, failures)  # type: ignore[arg-type]  # same .add interface
    _schema_failures(typed, history_months, origin, failures)
    _row_failures(typed, failures)
    found = failures.frame()
    bad = np.zeros(len(raw), dtype=bool)
    bad[found["pos"].to_numpy(dtype="int64")] = True
    valid = typed.loc[~bad].reset_index(drop=True)
    valid.insert(0, "row_number", np.flatnonzero(~bad) + 1 + row_offset)
    result = ValidationResult(
        valid=valid,
        rejects=_rejects(found, raw, typed, row_offset),
        rows_in=len(raw),
        absent_columns=[c.name for c in columns if c.name not in raw.columns],
        ignored_columns=[c for c in map(str, raw.columns) if c not in known],
        rejection_budget=rejection_budget,
    )
    if rejection_budget is not None and result.rows_rejected > rejection_budget * result.rows_in:
        raise RejectionBudgetExceeded(
            f"{origin}: {result.rows_rejected} of {result.rows_in} rows rejected, above the budget "
            f"of {rejection_budget:.1%}; top failures: {dict(list(result.rejected_by_rule().items())[:3])}",
            result,
        )
    return result
