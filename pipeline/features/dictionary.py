"""The feature dictionary: one entry per feature, and the choice of features a data set allows.

Every feature has a dictionary entry (formula, unit, inputs, risk direction, reason
text, whether it derives from the current credit limit, documented range). Training
computes every feature whose inputs are present and reports the rest as skipped; the
scoring artifact then computes exactly the trained list with these same functions.

Edge cases have one defined result each (listed in `EDGE_CASES` and `docs/features.md`):
a ratio whose denominator is zero or negative is `cap` when the numerator is positive and
0 otherwise; a missing input gives NaN (LightGBM routes missing values itself); no
feature is ever +-inf. History columns are latest first: m1 is the latest month.
"""

from __future__ import annotations

from collections.abc import Set
from dataclasses import dataclass, replace

import pandas as pd

from pipeline.config import Config, ContractConfig, FeatureConfig
from pipeline.data.contract import HOUSING, contract_columns
from pipeline.errors import ConfigError
from pipeline.features.functions import (
    FeatureSpec,
    balance_trend,
    credit_history_years,
    debt_to_income,
    delinquency_count,
    delinquency_severity,
    latest_status,
    limit_to_income,
    months_delinquent,
    months_since_delinquent,
    passthrough,
    payment_ratio_latest,
    payment_ratio_mean,
    payment_ratio_min,
    payment_to_income,
    payment_trend,
    requested_to_income,
    residual_income,
    statement_utilization_mean,
    utilization,
    worst_status,
)

# ---------------------------------------------------------------- the dictionary

# fmt: off
# The dictionary is a table: one entry per feature, kept compact on purpose.
F = FeatureSpec
INC, DEBT = "monthly_income", "monthly_debt_payments"
STATUS = ("repayment_status_m1",)
PAYHIST = ("statement_balance_m1", "payment_amount_m1")
DELQ = ("delinquencies_30d", "delinquencies_60d", "delinquencies_90d")
# Optional inputs are listed as a richer first alternative: training records the first
# alternative present as required scoring columns, so scoring uses the same formula.
NO_INCOME = "monthly_income <= 0 -> ratio_cap if the numerator > 0, else 0; income missing -> missing"

CORE_FEATURES: tuple[FeatureSpec, ...] = (
    F("debt_to_income", f"monthly_debt_payments / monthly_income, in [0, ratio_cap]; {NO_INCOME}",
      "ratio", ((INC, DEBT),), 1,
      "Existing debt payments are high relative to income", debt_to_income, lo=0, hi=None),
    F("residual_income", "monthly_income - monthly_debt_payments - (living_cost_base + living_cost_per_dependent x "
      "dependents); dependents missing or absent -> 0; not capped, negative when obligations exceed income",
      "currency / month", ((INC, DEBT, "dependents"), (INC, DEBT)), -1,
      "Little income is left after debts and living costs", residual_income),
    F("payment_to_income", "monthly instalment of the requested credit / monthly_income, in [0, ratio_cap]; "
      "instalment = annuity at apr over requested_term_months (missing -> default_term_months) for instalment "
      f"credit, min_payment_rate x requested_amount for revolving credit; {NO_INCOME}",
      "ratio", ((INC, "requested_amount", "requested_term_months"), (INC, "requested_amount")), 1,
      "Repayment of the requested credit is high relative to income", payment_to_income, lo=0),
    F("requested_to_income", f"requested_amount / (12 x monthly_income), in [0, ratio_cap]; {NO_INCOME}",
      "ratio", ((INC, "requested_amount"),), 1,
      "The amount requested is large relative to annual income", requested_to_income, lo=0),
    F("utilization", "revolving_balance (else statement_balance_m1), floored at 0, / revolving_limit, in "
      "[0, utilization_cap]; limit 0 -> utilization_cap if a balance is owed, else 0; missing -> "
      "revolving_utilization (clipped to [0, utilization_cap]) when given",
      "ratio", (("revolving_balance", "revolving_limit"), ("statement_balance_m1", "revolving_limit"),
                ("revolving_utilization",)),
      1, "Revolving credit is heavily used", utilization, uses_limit=True, lo=0),
    F("statement_utilization_mean", "mean of the known statement balances (each floored at 0) / revolving_limit, in "
      "[0, utilization_cap]; limit 0 -> utilization_cap if a balance is owed, else 0; all months missing -> missing",
      "ratio", (("statement_balance_m1", "revolving_limit"),), 1, "Balances have been high relative to the limit",
      statement_utilization_mean, uses_limit=True, lo=0, history=True),
    F("payment_ratio_latest", "payment_amount_m1 / statement_balance_m1, clipped to [0, 1]; 1 when nothing was owed "
      "(statement <= 0); missing when either is missing",
      "ratio", (PAYHIST,), -1, "The latest payment covered little of the bill", payment_ratio_latest, lo=0, hi=1,
      history=True),
    F("payment_ratio_mean", "mean over the known history months of payment / statement (each as payment_ratio_latest)",
      "ratio", (PAYHIST,), -1,
      "Payments have covered little of the bills", payment_ratio_mean, lo=0, hi=1, history=True),
    F("payment_ratio_min", "minimum over the known history months of payment / statement (each as "
      "payment_ratio_latest)", "ratio", (PAYHIST,), -1,
      "At least one month's payment covered little of the bill", payment_ratio_min, lo=0, hi=1, history=True),
    F("months_delinquent", "number of known history months with repayment_status >= 1 (missing months not counted)",
      "months", (STATUS,), 1,
      "Several recent months with payments past due", months_delinquent, lo=0, history=True),
    F("worst_status", "maximum known repayment_status over the history", "months past due", (STATUS,), 1,
      "Payments have recently been seriously late", worst_status, lo=-2, hi=9, history=True),
    F("latest_status", "repayment_status_m1", "months past due", (STATUS,), 1,
      "The latest payment was late", latest_status, lo=-2, hi=9, history=True),
    F("months_since_delinquent", "months from the latest month back to the latest month with repayment_status >= 1 "
      "(m1 late -> 0, m2 -> 1, ...); the number of history months when none was late",
      "months", (STATUS,), -1, "A payment was late recently", months_since_delinquent, lo=0, history=True),
    F("balance_trend", "least-squares slope of statement balances per month forward in time (m1 latest) / "
      "max(mean absolute balance, 1), clipped to [-1, 1]; positive = balances rising; < 2 known months -> missing",
      "share per month", (("statement_balance_m1",),), 1, "Balances have been rising", balance_trend, lo=-1, hi=1,
      history=True),
    F("payment_trend", "least-squares slope of monthly payment ratios per month forward in time (m1 latest), "
      "clipped to [-1, 1]; negative = paying less of each bill; < 2 known months -> missing",
      "ratio per month", (PAYHIST,), -1, "Payments have been falling relative to bills", payment_trend, lo=-1, hi=1,
      history=True),
    F("delinquency_severity", "delinquencies_30d + 2 x delinquencies_60d + 3 x delinquencies_90d; any missing -> "
      "missing", "weighted events", (DELQ,), 1, "Serious past due events on file",
      delinquency_severity, lo=0),
    F("delinquency_count", "delinquencies_30d + delinquencies_60d + delinquencies_90d (all reported past-due events, "
      "unweighted); any missing -> missing", "events", (DELQ,), 1,
      "Several past due events on file", delinquency_count, lo=0),
    F("credit_history_years", "credit_history_months / 12", "years", (("credit_history_months",),), -1,
      "Short credit history", credit_history_years, lo=0),
    F("limit_to_income", f"revolving_limit / (12 x monthly_income), in [0, ratio_cap]; {NO_INCOME}", "ratio",
      ((INC, "revolving_limit"),), 0,
      "Existing credit limit relative to income", limit_to_income, uses_limit=True, lo=0),
    F("monthly_income", "as given", "currency / month", ((INC,),), -1, "Income is low", passthrough(INC), lo=0),
    F("age", "as given", "years", (("age",),), 0, "Age profile", passthrough("age"), lo=18, hi=100),
    F("employment_years", "as given", "years", (("employment_years",),), -1, "Short time in current employment",
      passthrough("employment_years"), lo=0, hi=60),
    F("dependents", "as given", "people", (("dependents",),), 0, "Number of dependents", passthrough("dependents"),
      lo=0, hi=20),
    F("open_credit_lines", "as given", "lines", (("open_credit_lines",),), 0, "Number of open credit lines",
      passthrough("open_credit_lines"), lo=0),
    F("delinquencies_90d", "as given", "events", (("delinquencies_90d",),), 1, "Serious (90+ days) past due events",
      passthrough("delinquencies_90d"), lo=0),
    F("requested_amount", "as given", "currency", (("requested_amount",),), 0, "Size of the requested credit",
      passthrough("requested_amount"), lo=0),
    F("requested_term_months", "as given", "months", (("requested_term_months",),), 0, "Term of the requested credit",
      passthrough("requested_term_months"), lo=1, hi=360),
    F("revolving_limit", "as given", "currency", (("revolving_limit",),), -1, "Existing credit limit is low",
      passthrough("revolving_limit"), uses_limit=True, lo=0),
    F("housing", "as given (categorical)", "category", (("housing",),), 0, "Housing situation", passthrough("housing"),
      categorical=True),
)

# fmt: on

CATEGORIES = {"housing": list(HOUSING)}

# fmt: off
EDGE_CASES: tuple[tuple[str, str], ...] = (
    ("Missing input", "A feature whose input is missing on a row is missing (NaN) on that row; LightGBM routes "
     "missing values itself. Nothing is imputed except where stated below."),
    ("Zero income", "debt_to_income, payment_to_income, requested_to_income and limit_to_income are ratio_cap when "
     "their numerator is positive and 0 when it is 0 (no debt and no income gives debt_to_income 0); "
     "residual_income is minus debts and living costs."),
    ("Negative income", "Rejected by the data contract. If it reaches the features anyway, the ratios treat it as "
     "zero income and residual_income uses it as given; nothing becomes infinite."),
    ("Negative debts, requests or limits", "Rejected by the data contract; floored at 0 inside the ratios, so "
     "debt_to_income, payment_to_income, requested_to_income and limit_to_income are never negative."),
    ("Ratio cap", "Every income ratio lies in [0, ratio_cap] and every utilisation in [0, utilization_cap]; "
     "debt_to_income can exceed 1 (debts above income, negative residual income) up to the cap."),
    ("Zero limit", "utilization and statement_utilization_mean are utilization_cap when a balance is owed and 0 "
     "when nothing is owed; limit_to_income is 0."),
    ("Negative balances (credit balances)", "Count as nothing owed: 0 in utilization and statement_utilization_mean, "
     "payment ratio 1 for that month. balance_trend uses the signed balances, so moving from credit into debt "
     "is a rising balance."),
    ("Zero statements", "A month with statement_balance <= 0 has payment ratio 1 (nothing was owed); a flat "
     "history has trend 0; balance_trend divides by at least 1 currency unit."),
    ("Partly missing history", "Missing months are ignored: counts, means, min and max use the known months; "
     "trends need at least 2 known months, else missing. payment_ratio_latest and latest_status use m1 only."),
    ("All-missing history", "Every history feature is missing (not 0): months_delinquent, worst_status, "
     "months_since_delinquent, payment ratios, trends and statement_utilization_mean. A history column that is "
     "missing on every row of the data is treated as absent and its features are skipped."),
    ("Missing dependents or term", "residual_income counts missing dependents as 0 (base allowance only); "
     "payment_to_income uses default_term_months for a missing term and at least 1 month."),
    ("Non-finite values", "No feature is ever +-inf: ratios are clipped to their caps and any other non-finite "
     "result (possible only from non-finite input, which the contract rejects) becomes missing."),
)
# fmt: on


def history_passthrough_specs(months: int) -> list[FeatureSpec]:
    """Raw monthly history as features, for data sets whose signal lives there (opt-in by config)."""
    specs = []
    for m in range(1, months + 1):
        specs += [
            F(
                f"repayment_status_m{m}",
                "as given",
                "months past due",
                ((f"repayment_status_m{m}",),),
                1,
                f"Payment {m} month(s) ago was late",
                passthrough(f"repayment_status_m{m}"),
                lo=-2,
                hi=9,
                history=True,
            ),
            F(
                f"payment_amount_m{m}",
                "as given",
                "currency",
                ((f"payment_amount_m{m}",),),
                -1,
                f"Low payment {m} month(s) ago",
                passthrough(f"payment_amount_m{m}"),
                lo=0,
                history=True,
            ),
            F(
                f"statement_balance_m{m}",
                "as given",
                "currency",
                ((f"statement_balance_m{m}",),),
                0,
                f"Statement balance {m} month(s) ago",
                passthrough(f"statement_balance_m{m}"),
                history=True,
            ),
        ]
    return specs


def extra_specs(contract: ContractConfig) -> list[FeatureSpec]:
    """Declared extra columns pass through as features with their declared direction and reason."""
    specs = []
    for extra in contract.extras:
        categorical = extra.dtype in ("category", "str")
        specs.append(
            F(
                extra.name,
                f"declared extra column ({extra.description or extra.dtype})",
                extra.dtype,
                ((extra.name,),),
                0 if categorical else extra.risk_direction,
                extra.reason or f"{extra.name.replace('_', ' ').capitalize()}",
                passthrough(extra.name),
                lo=extra.min,
                hi=extra.max,
                categorical=categorical,
            )
        )
    return specs


WINDOWED = ("delinquency_severity", "delinquency_count")  # counts over the source's reporting window


def feature_dictionary(contract: ContractConfig, history_passthrough: bool = False) -> list[FeatureSpec]:
    """Every feature the contract allows, with the user's reason texts and the declared count window."""
    specs = list(CORE_FEATURES)
    if history_passthrough:
        specs += history_passthrough_specs(contract.history_months)
    specs += extra_specs(contract)
    unknown = sorted(set(contract.reasons) - {s.name for s in specs})
    if unknown:
        raise ConfigError(f"contract.reasons / columns.<name>.reason: no feature named {', '.join(unknown)}")
    window = contract.delinquency_window_months
    return [
        replace(s, reason=contract.reasons[s.name])
        if s.name in contract.reasons
        else replace(s, reason=f"{s.reason.removesuffix(' on file')} in the last {window} months")
        if window and s.name in WINDOWED
        else s
        for s in specs
    ]


def categories(contract: ContractConfig) -> dict[str, list[str]]:
    cats = dict(CATEGORIES)
    for col in contract_columns(contract):
        if col.allowed is not None and col.role == "feature":
            cats[col.name] = list(col.allowed)
    return cats


@dataclass
class FeatureSelection:
    used: list[FeatureSpec]
    skipped: dict[str, str]  # feature -> why


def select_features(
    columns: set[str], dictionary: list[FeatureSpec], empty: Set[str] = frozenset()
) -> FeatureSelection:
    """Features whose inputs are present (and not entirely empty); the rest with the reason they are skipped."""
    usable = columns - set(empty)
    used, skipped = [], {}
    for spec in dictionary:
        if spec.available(usable):
            used.append(spec)
        else:
            alts = " or ".join("+".join(alt) for alt in spec.inputs)
            # explain the input set closest to being usable (optional columns then go unmentioned)
            gaps = [
                ([c for c in alt if c not in columns], [c for c in alt if c in columns and c in empty])
                for alt in spec.inputs
            ]
            absent, blank = min(gaps, key=lambda g: len(g[0]) + len(g[1]))
            why = []
            if absent:
                why.append("absent: " + ", ".join(sorted(absent)))
            if blank:
                why.append("all missing: " + ", ".join(sorted(blank)))
            skipped[spec.name] = f"needs {alts} ({'; '.join(why)})"
    return FeatureSelection(used, skipped)


def dictionary_markdown(contract: ContractConfig, cfg: FeatureConfig) -> str:
    """docs/features.md, generated: a test fails when the committed file differs."""
    lines = [
        "# Feature dictionary",
        "",
        "Generated by `make docs` from `pipeline/features.py`; do not edit by hand.",
        "Risk direction: +1 riskier as the value grows, -1 safer as it grows, 0 no monotone constraint.",
        "`uses limit`: derived from the current credit limit, so the limit model never sees it.",
        "History columns are latest first: m1 is the latest month, m2 the month before, and so on.",
        "A feature is computed when every column of one input set is present (the first set present is the one",
        "scoring then requires); otherwise it is skipped and the features report says which columns were absent",
        "or entirely missing.",
        "",
        "| feature | formula | unit | inputs (any one set) | direction | range | uses limit | reason text |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for s in feature_dictionary(contract, history_passthrough=False):
        inputs = " or ".join("+".join(alt) for alt in s.inputs)
        rng = f"{'' if s.lo is None else f'{s.lo:g}'}..{'' if s.hi is None else f'{s.hi:g}'}"
        lines.append(
            f"| `{s.name}` | {s.formula} | {s.unit} | {inputs} | {f'{s.direction:+d}' if s.direction else '0'} "
            f"| {rng} | "
            f"{'yes' if s.uses_limit else ''} | {s.reason} |"
        )
    lines += [
        "",
        f"Defaults used in formulas: living_cost_base={cfg.living_cost_base:g}, "
        f"living_cost_per_dependent={cfg.living_cost_per_dependent:g}, apr={cfg.apr:g}, "
        f"default_term_months={cfg.default_term_months}, credit_type={cfg.credit_type}, "
        f"min_payment_rate={cfg.min_payment_rate:g}, utilization_cap={cfg.utilization_cap:g}, "
        f"ratio_cap={cfg.ratio_cap:g}.",
        "",
        "## Edge cases",
        "",
    ]
    lines += [f"- **{title}.** {text}" for title, text in EDGE_CASES]
    lines.append("")
    return "\n".join(lines)


def choose_features(valid: pd.DataFrame, cfg: Config) -> tuple[list[FeatureSpec], dict[str, str]]:
    """Features computable from this frame (inputs present and not all missing), and why the rest are skipped."""
    dictionary = feature_dictionary(cfg.contract, cfg.features.history_passthrough)
    empty = {c for c in valid.columns if valid[c].isna().all()}
    selection = select_features(set(valid.columns), dictionary, empty)
    return selection.used, selection.skipped


def assumptions(specs: list[FeatureSpec], columns: set[str], cfg: FeatureConfig) -> list[str]:
    """Settings a computed feature relies on because the data lacks them: said out loud, never silent."""
    notes = []
    names = {s.name for s in specs}
    if "payment_to_income" in names and cfg.credit_type == "instalment" and "requested_term_months" not in columns:
        notes.append(
            f"payment_to_income: the data has no requested_term_months, so every request is priced over "
            f"features.default_term_months={cfg.default_term_months} at features.apr={cfg.apr:g}"
        )
    if "residual_income" in names and "dependents" not in columns:
        notes.append(
            f"residual_income: the data has no dependents, so living costs are features.living_cost_base="
            f"{cfg.living_cost_base:g} for everyone"
        )
    return notes
