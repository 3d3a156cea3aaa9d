"""Writes the notebooks from plain Python strings, without outputs.

Notebooks are generated so that they review as code and never carry outputs (data) into git:
edit the cells here, then run `.venv/bin/python notebooks/make_notebooks.py`. Each takes its
inputs from a cell tagged `parameters` (papermill's convention; `tests/test_notebooks.py`
injects values after it the same way).
"""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent

SETUP = """\
import os
import sys
from pathlib import Path

import pipeline

# Relative paths (configs, output folders) mean the same as for `make`: from the repository root.
ROOT = Path(pipeline.__file__).resolve().parent.parent
os.chdir(ROOT)


def resolve(path):
    path = Path(path)
    return path if path.is_absolute() or path.exists() else ROOT / path


print("python:", sys.executable)
print("repository:", ROOT)
"""

EXPLORE = [
    new_markdown_cell(
        "# Applicant data: profile, target rates and affordability features\n\n"
        "What the training data looks like before any model sees it: the data contract's columns, missing "
        "values, default rates by segment and the affordability features the PD model is trained on.\n\n"
        "**Parameters** (cell below, or injected by papermill/nbclient): `config_path` - the pipeline config "
        "whose source is profiled; `max_rows` - a row limit (the synthetic generator makes that many rows, a "
        "file source is sampled down to it)."
    ),
    new_code_cell('config_path = "configs/default.yaml"\nmax_rows = 20000', metadata={"tags": ["parameters"]}),
    new_code_cell(SETUP),
    new_code_cell("""\
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from IPython.display import display

from pipeline.config import SyntheticSource, load_config
from pipeline.features import compute_features, categories
from pipeline.data.sources import load_source
from pipeline.model.train import TARGET, choose_features
from pipeline.data.validate import validate_frame

pd.set_option("display.max_columns", 60, "display.width", 160)
cfg = load_config(resolve(config_path))
if isinstance(cfg.source, SyntheticSource) and max_rows:
    cfg = cfg.model_copy(update={"source": cfg.source.model_copy(update={"rows": min(cfg.source.rows, int(max_rows))})})
source = load_source(cfg)
raw = source.frame
if max_rows and len(raw) > max_rows:
    raw = raw.sample(int(max_rows), random_state=0).sort_index()
result = validate_frame(raw, cfg.contract, source.origin, required=["applicant_id", TARGET],
                        rejection_budget=None, allow_all_rejected=True)
data = result.valid[result.valid[TARGET].notna()].reset_index(drop=True)
print(f"config {cfg.name}: {source.origin}")
print(f"rows read {len(raw):,}; valid {result.rows_valid:,}; rejected {result.rows_rejected:,}; with outcome {len(data):,}")
"""),
    new_markdown_cell(
        "## Data profile\nType, missing share and range of every contract column; rejected rows by rule."
    ),
    new_code_cell("""\
profile = pd.DataFrame({
    "dtype": data.dtypes.astype(str),
    "missing_share": data.isna().mean().round(4),
    "distinct": data.nunique(),
})
numeric = data.select_dtypes("number")
profile = profile.join(numeric.describe(percentiles=[0.01, 0.5, 0.99]).T[["mean", "min", "1%", "50%", "99%", "max"]])
display(profile)
display(pd.Series(result.rejected_by_rule(), name="rows rejected", dtype="int64").to_frame())
"""),
    new_markdown_cell(
        "## Target rates\nDefault rate overall, over time (when there is an application date) and by segment, "
        "including the protected attributes (which are never model inputs)."
    ),
    new_code_cell("""\
overall = data[TARGET].mean()
print(f"default rate: {overall:.2%} ({int(data[TARGET].sum()):,} defaults in {len(data):,} applications)")
if "application_date" in data and data["application_date"].notna().any():
    monthly = data.groupby(pd.to_datetime(data["application_date"]).dt.to_period("M"))[TARGET].agg(["mean", "size"])
    fig, ax = plt.subplots(figsize=(8, 3.5))
    ax.plot(monthly.index.to_timestamp(), monthly["mean"], marker="o")
    ax.axhline(overall, color="grey", ls="--", lw=1)
    ax.set(title="Default rate by application month", ylabel="Default rate")
    plt.show()
segments = [c for c in data.columns
            if c not in ("applicant_id", "application_date") and (data[c].dtype == object or str(data[c].dtype) in ("str", "string", "category"))]
segments += [c for c in cfg.contract.protected if c in data and c not in segments]
for col in segments:
    rates = data.groupby(data[col].astype(object).fillna("<missing>"))[TARGET].agg(default_rate="mean", count="size")
    display(rates.sort_values("count", ascending=False).style.format({"default_rate": "{:.2%}", "count": "{:,}"})
            .set_caption(col))
"""),
    new_markdown_cell(
        "## Affordability features\nThe features the PD model trains on (skipped ones are listed with the reason), "
        "their distributions for defaults and non-defaults, and the default rate by decile: the rate should "
        "move in the feature's documented risk direction."
    ),
    new_code_cell("""\
specs, skipped = choose_features(data, cfg)
features = compute_features(data, specs, cfg.features, categories(cfg.contract))
print(f"{len(specs)} features computed; {len(skipped)} skipped")
display(pd.Series(skipped, name="why skipped", dtype=object).to_frame())
AFFORDABILITY = ["debt_to_income", "residual_income", "payment_to_income", "requested_to_income", "utilization",
                 "payment_ratio_mean", "months_delinquent", "worst_status", "limit_to_income"]
shown = [s for s in specs if s.name in AFFORDABILITY] or [s for s in specs if not s.categorical][:6]
cols = 3
rows = -(-len(shown) // cols)
fig, axes = plt.subplots(rows, cols, figsize=(13, 3.4 * rows), squeeze=False)
for ax, spec in zip(axes.flat, shown):
    values = features[spec.name].astype(float)
    lo, hi = np.nanpercentile(values, [1, 99])
    bins = np.linspace(lo, hi, 30) if hi > lo else 10
    for outcome, colour, label in ((0, "#2b7bb9", "non-default"), (1, "#d1495b", "default")):
        ax.hist(values[data[TARGET] == outcome].clip(lo, hi), bins=bins, density=True, alpha=0.55, color=colour, label=label)
    ax.set(title=spec.name, xlabel=spec.unit)
    ax.legend(fontsize=8)
for ax in list(axes.flat)[len(shown):]:
    ax.axis("off")
fig.suptitle("Affordability features by outcome (1%-99% range)", fontweight="bold")
fig.tight_layout()
plt.show()
"""),
    new_code_cell("""\
rows = []
for spec in shown:
    values = features[spec.name].astype(float)
    deciles = pd.qcut(values.rank(method="first"), 10, labels=False) if values.notna().sum() >= 10 else None
    if deciles is None:
        continue
    rates = data[TARGET].groupby(deciles).mean()
    trend = np.sign(np.corrcoef(rates.index, rates.to_numpy())[0, 1]) if rates.nunique() > 1 else 0
    rows.append({"feature": spec.name, "risk_direction": spec.direction, "observed_trend": int(trend),
                 "bad_rate_lowest_decile": rates.iloc[0], "bad_rate_highest_decile": rates.iloc[-1],
                 "missing_share": values.isna().mean()})
deciles_table = pd.DataFrame(rows)
display(deciles_table)
summary = {"config": cfg.name, "rows": len(data), "default_rate": round(float(overall), 4), "features": len(specs)}
print("summary:", summary)
"""),
]

REPORT = [
    new_markdown_cell(
        "# Model report: a training run's evaluation, from MLflow\n\n"
        "Loads the evaluation that the `evaluate` stage logged to an MLflow run (metrics, model card, tables, "
        "plots and the self-contained HTML report) and shows it here.\n\n"
        "**Parameters**: `run_id` and `tracking_uri` name the run; when `run_id` is None, the latest training run "
        "of `config_path` is used (read from `<output_dir>/<name>/train/run.json`), and when `tracking_uri` is None "
        "the config's tracking store (`MLFLOW_TRACKING_URI`, else the embedded SQLite store)."
    ),
    new_code_cell(
        'config_path = "configs/default.yaml"\ntracking_uri = None\nrun_id = None', metadata={"tags": ["parameters"]}
    ),
    new_code_cell(SETUP),
    new_code_cell("""\
import json
import tempfile

import mlflow
import pandas as pd
from IPython.display import HTML, Image, Markdown, display
from mlflow.tracking import MlflowClient

from pipeline.config import load_config
from pipeline.mlops.tracking import tracking_uri as default_tracking_uri

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
pd.set_option("display.max_columns", 40, "display.width", 160)
if run_id is None:
    cfg = load_config(resolve(config_path))
    info = json.loads((cfg.run_dir / "train" / "run.json").read_text())
    run_id, tracking_uri = info["run_id"], tracking_uri or info["tracking_uri"]
elif tracking_uri is None:
    tracking_uri = default_tracking_uri(load_config(resolve(config_path)).output_dir)
client = MlflowClient(tracking_uri=tracking_uri)
run = client.get_run(run_id)
print(f"run {run_id} ({run.info.run_name}) in {tracking_uri}; status {run.info.status}")
display(pd.Series(run.data.tags, name="value").loc[lambda s: ~s.index.str.startswith("mlflow.")].to_frame())
"""),
    new_markdown_cell("## Metrics logged to the run"),
    new_code_cell("""\
KEY = ["test_roc_auc", "test_roc_auc_ci_low", "test_roc_auc_ci_high", "test_gini", "test_ks", "test_brier",
       "test_log_loss", "test_ece", "score_psi", "max_feature_psi", "approval_rate", "approved_bad_rate",
       "expected_loss", "expected_loss_rate", "min_adverse_impact_ratio", "limit_mae", "limit_pinball", "limit_coverage"]
metrics = pd.Series(run.data.metrics, name="value")
display(metrics.reindex([k for k in KEY if k in metrics]).to_frame())
"""),
    new_code_cell("""\
local = Path(mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="evaluation",
                                                 tracking_uri=tracking_uri, dst_path=tempfile.mkdtemp()))
print("evaluation artifacts:", sorted(p.relative_to(local).as_posix() for p in local.rglob("*") if p.is_file()))
"""),
    new_markdown_cell("## Model card"),
    new_code_cell('display(Markdown((local / "model_card.md").read_text()))'),
    new_markdown_cell("## Tables"),
    new_code_cell("""\
tables = {p.stem: pd.read_csv(p) for p in sorted((local / "tables").glob("*.csv"))}
for name in ["score_bands", "calibration", "grades", "cutoffs", "decision_reasons"]:
    if name in tables:
        display(Markdown(f"**{name}**"), tables[name])
for name, table in tables.items():
    if name.startswith("fairness_"):
        display(Markdown(f"**{name}**"), table)
display(Markdown("**psi** (worst 15)"), tables["psi"].head(15))
"""),
    new_markdown_cell("## Plots"),
    new_code_cell("""\
plots = sorted((local / "plots").glob("*.png"))
for plot in plots:
    display(Markdown(f"**{plot.stem}**"), Image(filename=str(plot)))
"""),
    new_markdown_cell(
        "## The HTML report\nThe same content as one self-contained file (images embedded), as logged to the run."
    ),
    new_code_cell("""\
report = local / "report.html"
print(f"{report} ({report.stat().st_size / 1024:.0f} kB); in MLflow: evaluation/report.html of run {run_id}")
summary = {"run_id": run_id, "test_roc_auc": round(float(metrics["test_roc_auc"]), 4), "plots": len(plots),
           "tables": len(tables), "report_kb": round(report.stat().st_size / 1024)}
print("summary:", summary)
"""),
]


REVIEW = [
    new_markdown_cell(
        "# Portfolio review: watch list, limit actions and plan offers\n\n"
        "Reads the output of the monthly account review (`make review`, or `python -m pipeline review`): one row "
        "per account with its behaviour PD, expected loss, early-warning rank, guarded limit action, contact "
        "treatment and repayment plan, plus the job's summary (every input row accounted for).\n\n"
        "**Parameters**: `config_path` - a `kind: accounts` config; `review_path` - the review's Parquet output "
        "(None: the config's default, `<output_dir>/<name>/review/review.parquet`); `rows` - rows per list."
    ),
    new_code_cell(
        'config_path = "configs/accounts.yaml"\nreview_path = None\nrows = 20', metadata={"tags": ["parameters"]}
    ),
    new_code_cell(SETUP),
    new_code_cell("""\
import json

import matplotlib.pyplot as plt
import pandas as pd
from IPython.display import Markdown, display

from pipeline.config import load_config

pd.set_option("display.max_columns", 30, "display.width", 180, "display.max_colwidth", 90)
cfg = load_config(resolve(config_path))
path = resolve(review_path) if review_path else cfg.run_dir / "review" / "review.parquet"
review = pd.read_parquet(path)
summary = json.loads(path.with_name(path.name.removesuffix(".parquet") + ".summary.json").read_text())
portfolio = summary["portfolio"]
print(f"review {path}: model {summary['model_name']} v{summary['model_version']}")
print(f"rows in {summary['rows_in']:,} = reviewed {summary['rows_scored']:,} + rejected {summary['rows_rejected']:,}")
"""),
    new_markdown_cell(
        "## Watch list\nThe riskiest accounts of the whole portfolio by early-warning rank (PD, then expected loss), "
        "with what the review decided for each and why."
    ),
    new_code_cell("""\
WATCH = ["early_warning_rank", "account_id", "pd", "expected_loss", "limit_action", "credit_limit", "new_limit",
         "treatment", "reasons"]
watch = review.nsmallest(int(rows), "early_warning_rank")[WATCH]
display(watch.style.format({"pd": "{:.1%}", "expected_loss": "{:,.0f}", "credit_limit": "{:,.0f}",
                            "new_limit": "{:,.0f}"}).hide(axis="index"))
flagged = int(review["early_warning"].sum())
print(f"flagged for early warning: {flagged:,} of {len(review):,} accounts ({flagged / len(review):.1%})")
fig, ax = plt.subplots(figsize=(8, 3.5))
ax.hist(review["pd"], bins=40, color="#2b7bb9")
ax.axvline(cfg.accounts.early_warning.pd_threshold, color="#d1495b", ls="--", label="early-warning PD level")
ax.set(title="Behaviour PD across the portfolio", xlabel="PD", ylabel="accounts", yscale="log")
ax.legend()
plt.show()
"""),
    new_markdown_cell(
        "## Limit actions\nIncreases need a low PD, a clean record and affordability at the new limit; decreases "
        "are softened by the guard rails (largest fall per review, never below the balance, cooling-off)."
    ),
    new_code_cell("""\
actions = review["limit_action"].value_counts().rename("accounts").to_frame()
actions["mean change"] = review.groupby("limit_action").apply(
    lambda g: (g["new_limit"] - g["credit_limit"]).mean(), include_groups=False)
display(actions)
print(f"decreases wanted {portfolio['decreases_wanted']:,}; softened or blocked by the guard rails "
      f"{portfolio['softened_decreases']:,} {portfolio['softened_by']}")
moved = review[review["limit_action"] != "keep"]
if len(moved):
    fig, ax = plt.subplots(figsize=(5.5, 5))
    for action, colour in (("increase", "#3a9d5d"), ("decrease", "#d1495b")):
        part = moved[moved["limit_action"] == action]
        ax.scatter(part["credit_limit"], part["new_limit"], s=8, alpha=0.5, color=colour, label=action)
    top = float(moved[["credit_limit", "new_limit"]].max().max())
    ax.plot([0, top], [0, top], color="grey", lw=1)
    ax.set(title="Current vs new limit", xlabel="current limit", ylabel="new limit")
    ax.legend()
    plt.show()
"""),
    new_markdown_cell(
        "## Treatments and plan offers\nAccounts in arrears, or flagged and near it, are offered the shortest "
        "affordable plan; without one that fits (or without a known income) a person reviews the case."
    ),
    new_code_cell("""\
display(review["treatment"].value_counts().rename("accounts").to_frame())
OFFERS = ["early_warning_rank", "account_id", "pd", "plan_outcome", "plan_term_months", "plan_payment",
          "affordable_payment", "treatment"]
at_risk = review[review["plan_outcome"].notna()]
display(Markdown(f"**At-risk accounts: {len(at_risk):,}**, riskiest {int(rows)} shown"))
display(at_risk.nsmallest(int(rows), "early_warning_rank")[OFFERS].style.format(
    {"pd": "{:.1%}", "plan_term_months": "{:.0f}", "plan_payment": "{:,.2f}", "affordable_payment": "{:,.2f}"},
    na_rep="").hide(axis="index"))
share = portfolio["affordable_plan_share"]
print(f"affordable plan exists for {portfolio['at_risk_with_affordable_plan']:,} of {portfolio['at_risk']:,} "
      f"at-risk accounts ({'n/a' if share is None else f'{share:.1%}'}); with known income: "
      f"{portfolio['at_risk_with_known_income']:,}")
page = path.with_name(path.name.removesuffix(".parquet") + ".html")
print(f"HTML page: {page} ({'present' if page.exists() else 'missing'})")
result = {"accounts": len(review), "flagged": flagged, "limit_actions": review["limit_action"].value_counts().to_dict(),
          "at_risk": len(at_risk)}
print("summary:", result)
"""),
]


def build(cells: list, prefix: str) -> nbformat.NotebookNode:
    """Stable cell ids, so regenerating an unchanged notebook gives an identical file."""
    for i, cell in enumerate(cells):
        cell["id"] = f"{prefix}-{i:02d}"
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    return nb


NOTEBOOKS = {
    "01_explore_applicants.ipynb": EXPLORE,
    "02_model_report.ipynb": REPORT,
    "03_portfolio_review.ipynb": REVIEW,
}


def main() -> None:
    for name, cells in NOTEBOOKS.items():
        nb = build(cells, name[:2])
        nbformat.validate(nb)
        nbformat.write(nb, HERE / name)
        print(f"wrote {HERE / name}")


if __name__ == "__main__":
    main()
