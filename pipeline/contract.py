"""The applicant data contract: core columns plus config-declared extras, as one pandera schema.

One row is one application at decision time. Every column but the id may be missing
from a source (a feature that needs it is then skipped); when present, it is typed
and range-checked. Numeric columns are held as float64 so that missing values stay
NaN for LightGBM; integer columns carry an `integer` check instead of an int dtype.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
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


def contract_columns(cfg: ContractConfig) -> list[ContractColumn]:
    """Core columns, then declared extras, then protected attributes (never model inputs)."""
    cols = _core(cfg.history_months)
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


def _fmt(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _transform(spec) -> str:
    """One mapping entry in words, for the docs."""
    if spec.constant is not None:
        return f"constant `{spec.constant}`"
    parts = []
    if spec.recode:
        parts.append("recode " + "; ".join(f"`{k}` → `{_fmt(v)}`" for k, v in spec.recode.items()))
    if spec.scale != 1.0:
        parts.append(f"× {spec.scale:g}")
    if spec.parse_date:
        parts.append(f"date `{spec.parse_date}`")
    return ", ".join(parts) or "as is"


def source_markdown(title: str, config_path: str, cfg) -> list[str]:
    """The mapping table, extras and protected attributes of one shipped file-source config."""
    src = cfg.source
    lines = [f"### {title} (`{config_path}`)", "", f"File: `{Path(src.path).name}`.", ""]
    lines += ["| contract column | source column | transform |", "|---|---|---|"]
    if src.id_column:
        lines.append(f"| `applicant_id` | `{src.id_column}` | as is |")
    else:
        lines.append("| `applicant_id` | (none) | 1-based data row number |")
    for target, spec in src.columns.items():
        lines.append(f"| `{target}` | `{spec.source or ''}` | {_transform(spec).replace('|', '/')} |")
    for name in src.passthrough:
        lines.append(f"| `{name}` | `{name}` | as is |")
    extras = [
        c
        for c in contract_columns(cfg.contract)
        if c.role == "feature" and c.name in {e.name for e in cfg.contract.extras}
    ]
    if extras:
        lines += [
            "",
            "Declared extras:",
            "",
            "| column | type | rule | risk direction | description |",
            "|---|---|---|---|---|",
        ]
        for c in extras:
            direction = f"{c.risk_direction:+d}" if c.risk_direction else "0"
            lines.append(f"| `{c.name}` | {c.dtype} | {c.rule} | {direction} | {c.description} |")
    lines += ["", "Protected: " + ", ".join(f"`{n}`" for n in cfg.contract.protected) + ".", ""]
    return lines


PROSE_ROWS = """## How rows are validated

Validation is lazy: every failure in every row is collected before anything is decided.

1. **Coercion.** Each contract column present in the input is cast to its type: numbers
   to float64 (whole-number columns keep NaN for missing and carry an `integer` rule), dates
   from ISO 8601 text, text stripped, blank cells as missing. Category values match their allowed
   list ignoring case and surrounding spaces and take the contract's spelling (`Own` → `own`).
   A value that cannot be cast (`abc` in `age`, `2024-13-01` in `application_date`) fails rule
   `type:<type>`; a text value holding bytes that were not valid UTF-8 (read with U+FFFD
   replacement characters) fails rule `encoding`.
2. **Rules** (one pandera schema assembled from the core columns, the history months, the
   declared extras and the protected attributes): `not_null`, `unique` (applicant_id: *every*
   row carrying a duplicated id is quarantined, not only the second), `max_length(64)`
   (applicant_id), `finite` (inf), `range(a..b)`, `min(a)`, `greater_than(a)`, `integer`,
   `allowed_values`.
3. **Quarantine.** A row failing any rule goes to the rejects file; all other rows continue,
   with a leading `row_number` column. Input columns the contract does not know are dropped
   and listed as `ignored_columns`; optional contract columns the input lacks are listed as
   `absent_columns` (features that need them are skipped).

Rows in = rows valid + rows rejected, always: a row failing three rules is one rejected row with
three lines in the rejects file.

### Rejects file (`<output_dir>/<name>/validate/rejects.parquet`)

| column | meaning |
|---|---|
| `row_number` | 1-based data row of the input (the header is not a row) |
| `applicant_id` | the row's id as read (null when the id itself is missing) |
| `column` | contract column that failed |
| `rule` | rule that failed, as named above |
| `value` | the offending value as the source wrote it, cut to 200 characters |

The summary (`validate/summary.json`, also printed) gives `rows_in`, `rows_valid`,
`rows_rejected`, `rejected_share`, `rejection_budget`, `rejected_by_rule` (rows per
`column: rule`), `absent_columns` and `ignored_columns`.

### Rejection budget

`validation.rejection_budget` (default 0.05) is the largest share of rows that may be
quarantined. Above it the stage fails with exit code 4 and still writes the rejects, so a
job never quietly drops a large part of a batch.

## Table-level errors

These stop the stage with a message naming the file (and the column where there is one):

| failure | exit code |
|---|---|
| input file missing, a folder, 0 bytes, unreadable, truncated or corrupt gzip | 3 |
| no header line, or a header with unnamed or duplicated columns | 3 |
| header only (no data rows) | 3 |
| a row with a different number of fields than the header (wrong delimiter or quoting) | 3 |
| a required column missing (the id; `defaulted` when training) or a mapped source column missing | 3 |
| every row rejected (the rejects are still written) | 3 |
| more rows rejected than the rejection budget | 4 |
| the config maps to a column the contract does not declare | 2 |

A file read with the wrong delimiter arrives as one column; the message says so.
"""

PROSE_SOURCE = """## Bringing your own data: the generic file source

A CSV (plain or gzip, detected from the bytes) or Parquet file is mapped onto the contract in
YAML; no code is needed. CSV cells are read as text, so a bad value becomes a rejected row,
never a failed read.

| key | meaning |
|---|---|
| `source.kind` | `file` |
| `source.path` | the file; a relative path is looked up from the current folder, then the config's folder, then the repository root |
| `source.format` | `auto` (from the name), `csv` or `parquet` |
| `source.delimiter`, `source.encoding` | CSV delimiter (`,`) and encoding (`utf-8`) |
| `source.id_column` | source column holding `applicant_id`; without it rows are numbered 1, 2, ... |
| `source.columns.<contract column>` | a source column name, or a mapping with exactly one of `source` / `constant`, plus optional `recode`, `scale`, `parse_date` |
| `recode` | code → value table, matched as text ignoring case (`1`, `1.0` and `" 1 "` alike); codes not listed are kept and then fail validation, so new codes are never guessed |
| `scale` | multiply numbers: a factor or a fraction, e.g. `"1/12"` for annual → monthly income, `0.01` for percent → fraction |
| `parse_date` | strftime format of a date column, e.g. `"%d/%m/%Y"` |
| `constant` | the same value for every row |
| `source.passthrough` | source columns kept under their own name (declared extras or protected attributes) |
| `contract.extras` | extra columns: `name`, `dtype` (`float`, `int`, `category`, `str`), `min`/`max` or `allowed`, `nullable`, `risk_direction` (-1, 0, +1), `reason`, `description` |
| `contract.protected` | protected attributes: never model inputs, carried into fairness reports only |

```yaml
source:
  kind: file
  path: data/applicants.csv.gz
  id_column: app_no
  columns:
    age: AGE
    monthly_income: {source: annual_income, scale: "1/12"}
    revolving_utilization: {source: util_pct, scale: 0.01}
    housing: {source: home, recode: {O: own, R: rent, M: mortgage}}
    application_date: {source: applied, parse_date: "%d/%m/%Y"}
    requested_term_months: {constant: 12}
    defaulted: {source: status, recode: {good: 0, bad: 1}}
  passthrough: [channel, gender]
contract:
  extras:
    - {name: channel, dtype: category, allowed: [branch, online, broker]}
  protected: [gender]
validation:
  rejection_budget: 0.05
```

Every mapped or passed-through column must be a contract column (core, extra or protected);
anything else is a config error, so a typo never silently loses a column. Quote YAML values such
as `yes`, `no`, `none` and codes with leading zeros, which YAML would otherwise turn into booleans
or numbers.
"""

PROSE_DATASETS = """## Shipped mappings of the public data sets

Both validate in full: Taiwan 30,000 rows in, 30,000 valid, 0 rejected; German 1,000 in,
1,000 valid, 0 rejected (`make validate CONFIG=configs/taiwan.yaml`, `configs/german.yaml`).

**Taiwan decisions.** `LIMIT_BAL` is both the current `revolving_limit` and the
`granted_limit` the limit model learns. `PAY_0, PAY_2..PAY_6` are repayment status m1..m6
(m1 = September 2005, the latest; the file has no `PAY_1`), with the codebook's -2 (no use),
-1 (paid in full), 0 (revolving on time) and 1..9 months of delay. `BILL_AMT1..6` are
statement balances; they can be negative (a credit balance), so `statement_balance` has no
lower bound and `revolving_balance` is deliberately *not* mapped from `BILL_AMT1`
(utilisation falls back to `statement_balance_m1 / revolving_limit`). There is no income
column, so income-based features are skipped. `EDUCATION` is documented as 1 graduate
school, 2 university, 3 high school, 4 others; the file also holds 0 (14 rows), 5 (280) and
6 (51), which the codebook does not define: they are recoded explicitly to `unknown` rather
than merged into "others", and `education` is a declared category extra. `MARRIAGE` is
documented as 1 married, 2 single, 3 others; the undocumented 0 (54 rows) becomes `unknown`.
`SEX` (1 male, 2 female) and `MARRIAGE` are protected attributes (`sex`, `marital_status`).
Any other code appearing in a new file is kept as is and quarantined as `allowed_values`.

**German decisions.** There is no id column: `applicant_id` is the row number. `duration_in_month`
→ `requested_term_months`, `credit_amount` → `requested_amount` (DM), `age_in_years` → `age`,
`number_of_existing_credits_at_this_bank` → `open_credit_lines` (this bank only),
`number_of_people_being_liable_to_provide_maintenance_for` → `dependents`, `housing` own /
rent / for free → own / rent / free, `creditability` good / bad → `defaulted` 0 / 1.
`present_employment_since` bands become `employment_years` at the band midpoint: unemployed
→ 0, < 1 year → 0.5, 1..4 → 2.5, 4..7 → 5.5, and the open band >= 7 years → 10 (an assumption:
the band has no upper end). `installment_rate_in_percentage_of_disposable_income` is an int
extra 1..4 with risk direction +1; `present_residence_since` an int extra 1..4; the other
coded columns are category extras with their full value lists (the codebook's `vacation`
purpose never occurs but is allowed). `personal_status_and_sex` and `foreign_worker` are
protected. There is no income or monthly history, so those features are skipped.
"""


def _shipped_sources() -> list[tuple[str, str, object]]:
    from pipeline.config import REPO_ROOT, load_config

    found = []
    for title, rel in (("Taiwan credit card default", "configs/taiwan.yaml"), ("German credit", "configs/german.yaml")):
        if (REPO_ROOT / rel).exists():
            found.append((title, rel, load_config(REPO_ROOT / rel)))
    return found


def contract_markdown(cfg: ContractConfig, sources: list[tuple[str, str, object]] | None = None) -> str:
    """docs/data-contract.md, generated from the same column list the schema is built from.

    `sources` are (title, config path, Config) of file-source configs to document; by default
    the shipped Taiwan and German configs, so the docs follow the configs.
    """
    lines = [
        "# Data contract",
        "",
        "Generated by `make docs` from `pipeline/contract.py`; do not edit by hand.",
        "",
        "One row per application at decision time. Every column but `applicant_id` may be absent",
        "or null where the source lacks it (a feature that needs it is then skipped); when present,",
        "it is typed and checked. Whole-number columns are stored as float64 so that missing stays NaN.",
        "Roles: `feature` (model input), `history` (monthly history, m1 = latest), `target`",
        "(training only), `protected` (fairness reports only, never a model input).",
        "",
        f"## Columns (history_months = {cfg.history_months}; extras and protected attributes from the config)",
        "",
        "| column | type | role | rule | description |",
        "|---|---|---|---|---|",
    ]
    for c in contract_columns(cfg):
        lines.append(f"| `{c.name}` | {c.dtype} | {c.role} | {c.rule} | {c.description} |")
    lines += ["", PROSE_ROWS, PROSE_SOURCE, PROSE_DATASETS]
    for title, path, source_cfg in _shipped_sources() if sources is None else sources:
        lines += source_markdown(title, path, source_cfg)
    return "\n".join(lines).rstrip("\n") + "\n"
