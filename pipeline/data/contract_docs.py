"""docs/data-contract.md, generated from the contract itself: the column table, the validation
rules in prose, and the shipped mappings of the public data sets. A test fails when the committed
file differs from what this module writes.
"""

from __future__ import annotations

from pathlib import Path

from pipeline.config import ContractConfig
from pipeline.data.contract import contract_columns


def _fmt(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _hard_bounds(col) -> str:
    if col.dtype not in ("int", "float") or col.role in ("id", "date", "protected"):
        return ""
    lo = col.min if col.hard_min is None else col.hard_min
    hi = col.max if col.hard_max is None else col.hard_max
    return f"{'' if lo is None else f'{lo:g}'}..{'' if hi is None else f'{hi:g}'}"


def _transform(spec) -> str:
    """One mapping entry in words, for the docs."""
    if spec.constant is not None:
        return f"constant `{spec.constant}`"
    parts = [f"expression `{spec.expr}`"] if spec.expr is not None else []
    if spec.na_values:
        parts.append("missing: " + ", ".join(f"`{_fmt(v)}`" for v in spec.na_values))
    if spec.recode:
        parts.append("recode " + "; ".join(f"`{k}` → `{_fmt(v)}`" for k, v in spec.recode.items()))
    if spec.parse:
        parts.append(f"parse {spec.parse}" + (f" (decimal `{spec.decimal}`)" if spec.decimal != "." else ""))
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
   replacement characters) fails rule `encoding`. A date with a UTC offset (`+02:00`, `Z`)
   is converted to UTC and stored without the offset; a date without one is taken as written.
   A CSV line that cannot be split into the header's fields (too many, too few, an unclosed
   quote) is a row too: it is rejected under column `<line>` with rule
   `malformed_line: expected N fields, got M` or `malformed_line: unclosed quote`, its raw
   text as the value, and counts against the rejection budget.
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
| compressed other than gzip (bz2, xz, zip, zstd, 7z), UTF-16/32, or binary (NUL bytes): the message names which | 3 |
| no header line | 3 |
| header only (no data rows) | 3 |
| a required column missing (the id; `defaulted` when training) or a mapped source column missing | 3 |
| every row rejected (the rejects are still written) | 3 |
| more rows rejected than the rejection budget | 4 |
| the config maps to a column the contract does not declare | 2 |

A file read with the wrong delimiter arrives as one column; the message says so. A header
with an empty cell or a repeated name is not an error: the column is named as pandas names it
(`Unnamed: N`, `x.1`) and the change is listed under `header` in `ingest/ingest.json`, with
`ignored_columns` (file columns the mapping does not read).
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
| `source.columns.<contract column>` | a source column name, or a mapping with exactly one of `source` / `expr` / `constant`, plus optional `na_values`, `recode`, `parse`, `scale`, `parse_date`, `reason` (applied in that order) |
| `expr` | a derived column from a safe expression over source columns, e.g. `"DebtRatio * MonthlyIncome"` (docs/own-data.md lists the operators and functions) |
| `na_values` | source values that mean missing, e.g. `[96, 98]`; matched as text and as numbers |
| `recode` | code → value table, matched as text ignoring case (`1`, `1.0` and `" 1 "` alike); a code mapped to `null` becomes missing. Codes not listed are kept: in a category column they fail `allowed_values`; in a numeric column an unlisted numeric code passes through as a number and is only caught by the column's range, so list special codes in `na_values` |
| `parse` | numbers written as text: `percent` (`"13.5%"` → 0.135), `months` (`" 36 months"` → 36), `years` (`"10+ years"` → 10), `thousands` (`"1,000"`), `currency` (`"$1,200.50"`), `number`, or `auto`; `decimal: ","` for `"1.000,50"`. Unparseable text is kept, so validation rejects the row with it |
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

    found: list[tuple[str, str, object]] = []
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
        "| column | type | role | rule | a config may set the range within | description |",
        "|---|---|---|---|---|---|",
    ]
    for c in contract_columns(cfg):
        lines.append(f"| `{c.name}` | {c.dtype} | {c.role} | {c.rule} | {_hard_bounds(c)} | {c.description} |")
    lines += [
        "",
        "`contract.ranges` changes a core column's range, e.g. `ranges: {age: {max: 120}}` for a lender",
        "whose customers include centenarians; it is refused outside the bounds above (only narrowing where",
        "none are listed), so a typo cannot admit nonsense.",
        "",
        PROSE_ROWS,
        PROSE_SOURCE,
        PROSE_DATASETS,
    ]
    for title, path, source_cfg in _shipped_sources() if sources is None else sources:
        lines += source_markdown(title, path, source_cfg)
    return "\n".join(lines).rstrip("\n") + "\n"
