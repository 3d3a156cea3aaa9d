"""The evaluation report a risk committee reads: PNG plots, a model card and one self-contained HTML file.

Plots use matplotlib's non-interactive Agg backend, so the report renders on servers and in
CI without a display. The HTML embeds every image as base64 and carries its own CSS: one file
that can be mailed, archived with the approval minutes or opened from MLflow with no network.
`pipeline.evaluate` computes the numbers; this module only draws and writes them.
"""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # before pyplot: never needs a display

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from pipeline.metrics import FOUR_FIFTHS, PSI_SHIFT, PSI_WATCH  # noqa: E402

GOOD, BAD, ACCENT, GREY = "#2b7bb9", "#d1495b", "#edae49", "#8c8c8c"
STATUS_COLOURS = {"stable": "#3a9d5d", "watch": ACCENT, "shifted": BAD, "n/a": GREY}
DPI = 110

plt.rcParams.update(
    {
        "figure.figsize": (7.5, 4.6),
        "axes.titlesize": 13,
        "axes.titleweight": "bold",
        "axes.labelsize": 11,
        "xtick.labelsize": 10,
        "ytick.labelsize": 10,
        "legend.fontsize": 10,
        "axes.grid": True,
        "grid.alpha": 0.3,
        "axes.spines.top": False,
        "axes.spines.right": False,
    }
)


def _save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=DPI, format="png")
    plt.close(fig)
    return path


# ---------------------------------------------------------------- plots


def plot_roc(roc: pd.DataFrame, auc: float, gini: float, path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(6, 5.4))
    ax.plot(roc["fpr"], roc["tpr"], color=GOOD, lw=2, label=f"model (AUC {auc:.3f}, Gini {gini:.3f})")
    ax.plot([0, 1], [0, 1], color=GREY, ls="--", lw=1, label="random ranking (AUC 0.5)")
    ax.set(
        xlim=(0, 1),
        ylim=(0, 1.01),
        xlabel="False positive rate (goods flagged as risky)",
        ylabel="True positive rate (defaults caught)",
        title="ROC curve (test holdout)",
    )
    ax.legend(loc="lower right")
    return _save(fig, path)


def plot_ks(ks: pd.DataFrame, path: Path) -> Path:
    """CDFs of the score for defaults and non-defaults; KS is the widest vertical gap."""
    fig, ax = plt.subplots()
    ax.step(ks["threshold"], ks["cdf_bad"], where="post", color=BAD, lw=2, label="defaults (bads)")
    ax.step(ks["threshold"], ks["cdf_good"], where="post", color=GOOD, lw=2, label="non-defaults (goods)")
    if len(ks):
        i = int(ks["gap"].to_numpy().argmax())
        x, lo, hi = ks["threshold"].iloc[i], ks["cdf_good"].iloc[i], ks["cdf_bad"].iloc[i]
        ax.vlines(x, min(lo, hi), max(lo, hi), color="black", lw=2)
        ax.annotate(
            f"KS = {ks['gap'].iloc[i]:.3f}\nat score {x:.0f}",
            (x, (lo + hi) / 2),
            xytext=(12, 0),
            textcoords="offset points",
            va="center",
            fontsize=11,
        )
    ax.set(
        xlabel="Score (points; higher = safer)",
        ylabel="Cumulative share",
        ylim=(0, 1.02),
        title="KS: score distributions of defaults vs non-defaults",
    )
    ax.legend(loc="lower right")
    return _save(fig, path)


def plot_calibration(table: pd.DataFrame, ece: float, pd_: np.ndarray, path: Path) -> Path:
    """Reliability diagram over equal-count PD bins, with the PD histogram underneath."""
    fig, (ax, hist) = plt.subplots(2, 1, figsize=(6.4, 6.4), gridspec_kw={"height_ratios": [3, 1]}, sharex=True)
    top = float(max(table["mean_pd"].max(), table["observed_rate"].max(), 0.05) * 1.1) if len(table) else 1.0
    ax.plot([0, top], [0, top], color=GREY, ls="--", lw=1, label="perfect calibration")
    ax.plot(table["mean_pd"], table["observed_rate"], marker="o", color=GOOD, lw=2, label=f"model (ECE {ece:.4f})")
    ax.set(
        ylabel="Observed default rate",
        xlim=(0, top),
        ylim=(0, top),
        title="Calibration: predicted PD vs observed default rate",
    )
    ax.legend(loc="upper left")
    hist.hist(np.clip(pd_, 0, top), bins=40, color=GOOD, alpha=0.7)
    hist.set(xlabel="Predicted PD", ylabel="Applicants")
    return _save(fig, path)


def plot_score_distribution(
    score: np.ndarray,
    y: np.ndarray,
    grade_cuts: dict[str, float],
    cutoff_score: float,
    path: Path,
    extremes: tuple[float, float] | None = None,
) -> Path:
    """Score histograms of goods and bads. Scores at `extremes` (PD exactly 0 or 1 after calibration) are
    pooled into the edge bins so a few saturated PDs do not squash the range everyone else is in."""
    fig, ax = plt.subplots()
    score = np.asarray(score, dtype=float)
    finite = score[np.isfinite(score)]
    inner = finite if extremes is None else finite[(finite > min(extremes)) & (finite < max(extremes))]
    inner = inner if len(inner) else finite
    lo, hi = (float(inner.min()), float(inner.max())) if len(inner) else (0.0, 1.0)
    if hi <= lo:
        lo, hi = lo - 1, hi + 1
    pooled = int(((finite < lo) | (finite > hi)).sum())
    score = np.clip(score, lo, hi)
    edges = np.linspace(lo, hi, 41)
    ax.hist(
        score[y == 0], bins=edges, density=True, alpha=0.55, color=GOOD, label=f"non-defaults (n={int((y == 0).sum())})"
    )
    ax.hist(score[y == 1], bins=edges, density=True, alpha=0.55, color=BAD, label=f"defaults (n={int((y == 1).sum())})")
    for name, cut in grade_cuts.items():
        if lo < cut < hi:
            ax.axvline(cut, color=GREY, lw=1, ls=":")
            ax.text(cut, ax.get_ylim()[1] * 0.97, f" {name}", color="#555555", va="top", fontsize=9)
    if lo < cutoff_score < hi:
        ax.axvline(cutoff_score, color="black", lw=1.5, ls="--", label=f"PD cutoff (score {cutoff_score:.0f})")
    ax.set(
        xlabel="Score (points; higher = safer); dotted lines: grade boundaries",
        ylabel="Density",
        title="Score distribution by outcome",
    )
    ax.legend(loc="best", title=f"{pooled} saturated scores pooled at the edges" if pooled else None, title_fontsize=9)
    return _save(fig, path)


def plot_gains(gains: pd.DataFrame, bands: pd.DataFrame, path: Path) -> Path:
    fig, (ax, lift) = plt.subplots(1, 2, figsize=(11, 4.6))
    ax.plot(gains["population_share"], gains["bad_share"], color=GOOD, lw=2, label="model")
    ax.plot([0, 1], [0, 1], color=GREY, ls="--", lw=1, label="random")
    ax.set(
        xlabel="Share of applicants (riskiest first)",
        ylabel="Share of defaults captured",
        title="Cumulative gains",
        xlim=(0, 1),
        ylim=(0, 1.01),
    )
    ax.legend(loc="lower right")
    labels = [str(b) for b in bands["band"]]
    lift.bar(labels, bands["lift"], color=[BAD if v >= 1 else GOOD for v in bands["lift"]])
    lift.axhline(1, color="black", lw=1)
    lift.set(
        xlabel="Score band (1 = lowest scores, riskiest)",
        ylabel="Lift (band bad rate / overall)",
        title="Lift by score band",
    )
    return _save(fig, path)


def plot_importance(importance: pd.DataFrame, path: Path, top: int = 20) -> Path:
    t = importance.head(top).iloc[::-1]
    fig, ax = plt.subplots(figsize=(7.5, max(3.0, 0.32 * len(t) + 1.2)))
    ax.barh(t["feature"], t["gain_share"], color=GOOD)
    for yv, v in enumerate(t["gain_share"]):
        ax.text(v, yv, f" {v:.1%}", va="center", fontsize=9)
    ax.set(xlabel="Share of total split gain", title=f"Feature importance (PD model, top {len(t)})")
    ax.grid(axis="y", visible=False)
    return _save(fig, path)


def plot_psi(table: pd.DataFrame, path: Path, top: int = 25) -> Path:
    """PSI bars (train vs test), worst first, coloured by the usual 0.1 / 0.25 reading."""
    t = table.head(top).iloc[::-1]
    fig, ax = plt.subplots(figsize=(7.5, max(3.0, 0.3 * len(t) + 1.4)))
    ax.barh(t["feature"], t["psi"], color=[STATUS_COLOURS.get(s, GREY) for s in t["status"]])
    ax.axvline(PSI_WATCH, color=ACCENT, ls="--", lw=1, label=f"watch ({PSI_WATCH})")
    ax.axvline(PSI_SHIFT, color=BAD, ls="--", lw=1, label=f"shifted ({PSI_SHIFT})")
    ax.set(
        xlabel="Population stability index (train vs test)",
        title="Stability: PSI per feature and score",
        xlim=(0, max(PSI_SHIFT * 1.2, float(t["psi"].max()) * 1.1 if len(t) else 0.3)),
    )
    ax.grid(axis="y", visible=False)
    ax.legend(loc="lower right")
    return _save(fig, path)


def plot_limits_by_grade(
    grades: pd.DataFrame, grade: np.ndarray, limit: np.ndarray, decision: np.ndarray, order: list[str], path: Path
) -> Path:
    fig, ax = plt.subplots()
    approved = np.asarray(decision) == "approve"
    data = [np.asarray(limit, float)[approved & (np.asarray(grade) == g)] for g in order]
    positions = np.arange(1, len(order) + 1)
    filled = [i for i, d in enumerate(data) if len(d)]
    if filled:
        ax.boxplot(
            [data[i] for i in filled],
            positions=positions[filled],
            widths=0.6,
            patch_artist=True,
            boxprops={"facecolor": "#cfe3f3", "edgecolor": GOOD},
            medianprops={"color": BAD, "lw": 2},
            flierprops={"marker": ".", "markersize": 3, "markeredgecolor": GREY},
        )
    ax.set_xticks(
        positions,
        [
            f"{g}\napproved {r:.0%}\nbad rate {b:.1%}" if c else f"{g}\n(no applicants)"
            for g, r, b, c in zip(
                order, grades["approval_rate"].fillna(0), grades["bad_rate"].fillna(0), grades["count"], strict=True
            )
        ],
    )
    ax.set(ylabel="Credit limit granted (approved applicants)", title="Credit limits by grade (test holdout)")
    ax.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:,.0f}"))
    return _save(fig, path)


def plot_limit_fit(actual: np.ndarray, predicted: np.ndarray, alpha: float, path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(6, 5.4))
    ax.scatter(actual, predicted, s=8, alpha=0.4, color=GOOD)
    both = np.r_[actual, predicted]
    lo, hi = float(np.nanmin(both)), float(np.nanmax(both))
    ax.plot([lo, hi], [lo, hi], color=GREY, ls="--", lw=1, label="estimate = granted")
    ax.set(
        xscale="log",
        yscale="log",
        xlabel="Granted limit (good payers, test)",
        ylabel=f"Limit model estimate (quantile {alpha:.2f})",
        title="Limit model: estimate vs granted limit",
    )
    ax.legend(loc="upper left")
    return _save(fig, path)


def plot_fairness(tables: dict[str, pd.DataFrame], path: Path) -> Path:
    n = len(tables)
    fig, axes = plt.subplots(1, n, figsize=(max(6.0, 4.2 * n), 4.6), squeeze=False)
    for ax, (attr, t) in zip(axes[0], tables.items(), strict=True):
        colours = [
            BAD if (r and a < FOUR_FIFTHS) else (GREY if not r else GOOD)
            for a, r in zip(t["adverse_impact_ratio"], t["reliable"], strict=True)
        ]
        ax.bar(t["group"].astype(str), t["adverse_impact_ratio"], color=colours)
        ax.axhline(FOUR_FIFTHS, color=BAD, ls="--", lw=1, label="four-fifths rule (0.8)")
        for x, (a, rate) in enumerate(zip(t["adverse_impact_ratio"], t["approval_rate"], strict=True)):
            ax.text(x, a, f"{a:.2f}\n({rate:.0%})", ha="center", va="bottom", fontsize=9)
        ax.set(title=f"{attr}", ylabel="Adverse impact ratio (approval rate)", ylim=(0, 1.25))
        ax.tick_params(axis="x", rotation=30)
        ax.legend(loc="lower right")
    fig.suptitle("Fairness: approval rate relative to the most favoured group", fontweight="bold")
    return _save(fig, path)


# ---------------------------------------------------------------- model card


def _fmt(v, spec: str | None = None) -> str:
    """Numbers for people: ints with thousands separators, floats to 4 places unless told, NaN as n/a."""
    if v is None:
        return "n/a"
    if isinstance(v, bool | np.bool_):
        return "yes" if v else "no"
    if isinstance(v, int | np.integer):
        return format(int(v), spec or ",d")
    if isinstance(v, float | np.floating):
        return "n/a" if math.isnan(v) else format(float(v), spec or ".4f")
    return str(v)


def limitations(facts: dict) -> list[str]:
    """Plain statements a validator would otherwise have to dig out: data caveats and any failed checks."""
    out = []
    gate = facts["gate_thresholds"]
    m = facts["metrics"]
    if facts.get("synthetic"):
        out.append(
            "Trained and tested on seeded synthetic applicants: the numbers demonstrate the pipeline, "
            "not the performance on any real portfolio."
        )
    if not facts.get("period"):
        out.append(
            "The data has no application date: the holdout is a random split, so there is no "
            "out-of-time test and drift over time is untested."
        )
    if facts["n_test_defaults"] < 100:
        out.append(
            f"Only {facts['n_test_defaults']} defaults in the test holdout: AUC and bad rates have wide "
            f"uncertainty (AUC 95% interval {_fmt(m.get('test_roc_auc_ci_low'), '.3f')}-"
            f"{_fmt(m.get('test_roc_auc_ci_high'), '.3f')})."
        )
    if m.get("test_ece", 0) > gate["max_ece"]:
        out.append(
            f"Calibration error {m['test_ece']:.4f} exceeds the gate's {gate['max_ece']}: PDs are biased in part "
            "of the range (see the reliability diagram)."
        )
    if m.get("score_psi", 0) > gate["max_score_psi"]:
        out.append(
            f"Score PSI {m['score_psi']:.3f} between train and test exceeds {gate['max_score_psi']}: "
            "the test population differs from the training population."
        )
    shifted = facts.get("shifted_features", [])
    if shifted:
        out.append(f"Features with PSI above {PSI_SHIFT} (train vs test): {', '.join(shifted)}.")
    if not facts.get("limit_model"):
        out.append("No limit model: limits come from the grade limit table and the affordability cap.")
    out.append(
        "Outcomes are only observed for applicants who were granted credit in the source data: the model "
        "has not been corrected for reject inference."
    )
    out.append(
        f"PDs are calibrated to the development default rate ({facts['train_default_rate']:.1%} on training "
        "data); recalibrate if the portfolio's default rate moves."
    )
    return out


def fairness_findings(tables: dict[str, pd.DataFrame], min_air: float) -> list[str]:
    if not tables:
        return ["No protected attributes are declared in the config: fairness was not assessed."]
    out = []
    for attr, t in tables.items():
        reliable = t[t["reliable"]]
        worst = reliable.loc[reliable["adverse_impact_ratio"].idxmin()]
        best = reliable.loc[reliable["approval_rate"].idxmax()]
        verdict = "passes" if worst["adverse_impact_ratio"] >= min_air else "FAILS"
        text = (
            f"{attr}: lowest adverse impact ratio {worst['adverse_impact_ratio']:.3f} for group "
            f"'{worst['group']}' (approval {worst['approval_rate']:.1%} vs {best['approval_rate']:.1%} for "
            f"'{best['group']}'); {verdict} the {min_air} threshold."
        )
        aucs = reliable["auc"].dropna()
        if len(aucs) > 1:
            text += f" AUC ranges {aucs.min():.3f}-{aucs.max():.3f} across groups."
        small = t.loc[~t["reliable"], "group"].tolist()
        if small:
            text += f" Too small to judge (excluded from the screen): {', '.join(map(str, small))}."
        out.append(text)
    out.append("Protected attributes are never model inputs; they are used only for this report.")
    return out


def build_model_card(facts: dict) -> dict:
    """The model card as data (JSON in MLflow; rendered in the HTML and as Markdown)."""
    m = facts["metrics"]
    policy = facts["policy"]
    return {
        "model_details": {
            "name": facts["meta"].get("model_name", ""),
            "config": facts["meta"].get("config", facts.get("config_name", "")),
            "mlflow_run_id": facts["meta"].get("run_id", ""),
            "git_commit": facts["meta"].get("git_commit", ""),
            "data_sha256": facts["meta"].get("data_sha256", ""),
            "pd_model": f"LightGBM binary classifier, {facts['pd_trees']} trees, monotone constraints, "
            f"{facts['calibration']} calibration",
            "limit_model": "LightGBM quantile regression on log granted limit (good payers)"
            if facts.get("limit_model")
            else "none",
            "features": facts["n_features"],
            "evaluated_at": facts["evaluated_at"],
        },
        "data": {
            "source": facts["source"],
            "period": facts.get("period") or "no application date in the data",
            "rows_train": facts["n_train"],
            "rows_test": facts["n_test"],
            "default_rate_train": facts["train_default_rate"],
            "default_rate_test": facts["test_default_rate"],
            "split": facts["split"],
        },
        "intended_use": [
            "Estimate each applicant's probability of default (PD) at application time and map it to a score "
            "and grade, to support approve/decline and credit limit decisions under the configured policy "
            f"(decline above PD {policy['pd_cutoff']}, payment-to-income at most {policy['max_payment_to_income']}, "
            f"limits {policy['min_limit']:,.0f}-{policy['max_limit']:,.0f}).",
            "Users: credit risk analysts and automated batch scoring, with human review of declines and appeals.",
            "Not intended for: pricing, collections, marketing, populations or products unlike the development "
            "data, or any decision based on protected attributes.",
        ],
        "limitations": limitations(facts),
        "metrics": {
            k: m[k]
            for k in (
                "test_roc_auc",
                "test_gini",
                "test_ks",
                "test_brier",
                "test_log_loss",
                "test_ece",
                "score_psi",
                "approval_rate",
                "approved_bad_rate",
                "expected_loss_rate",
                "min_adverse_impact_ratio",
                "limit_mae",
                "limit_pinball",
            )
            if k in m
        },
        "fairness_findings": fairness_findings(facts["fairness"], facts["gate_thresholds"]["min_adverse_impact_ratio"]),
    }


def model_card_markdown(card: dict) -> str:
    lines = [f"# Model card: {card['model_details']['name']}", "", "## Model details"]
    lines += [f"- **{k.replace('_', ' ')}**: {v}" for k, v in card["model_details"].items()]
    lines += ["", "## Data and period"] + [
        f"- **{k.replace('_', ' ')}**: {_auto(k, v)}" for k, v in card["data"].items()
    ]
    lines += ["", "## Intended use"] + [f"- {t}" for t in card["intended_use"]]
    lines += ["", "## Limitations"] + [f"- {t}" for t in card["limitations"]]
    lines += ["", "## Metrics (test holdout)"] + [f"- **{k}**: {_auto(k, v)}" for k, v in card["metrics"].items()]
    lines += ["", "## Fairness findings"] + [f"- {t}" for t in card["fairness_findings"]]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- HTML

CSS = """
body{font-family:-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;color:#222;margin:0;background:#f6f7f9;line-height:1.45}
main{max-width:1100px;margin:0 auto;padding:24px 32px 64px;background:#fff}
h1{margin:0 0 4px;font-size:28px}h2{border-bottom:2px solid #e4e7eb;padding-bottom:4px;margin-top:40px}
h3{margin-top:24px}.sub{color:#666;margin:0 0 16px}
nav{font-size:14px;margin:12px 0 8px}nav a{margin-right:14px;color:#2b7bb9;text-decoration:none}
.cards{display:flex;flex-wrap:wrap;gap:12px;margin:16px 0}
.card{flex:1 1 150px;border:1px solid #e4e7eb;border-radius:8px;padding:10px 14px;background:#fafbfc}
.card .v{font-size:24px;font-weight:600}.card .k{font-size:13px;color:#555}
.pass{color:#2f8a4f;font-weight:600}.fail{color:#c0392b;font-weight:600}.note{color:#666;font-size:13px}
table{border-collapse:collapse;margin:8px 0 16px;font-size:13px}
th,td{border-bottom:1px solid #e4e7eb;padding:4px 10px;text-align:right}th{background:#f0f2f5}
td:first-child,th:first-child{text-align:left}
figure{margin:12px 0 20px}figure img{max-width:100%;border:1px solid #eee}
figcaption{font-size:13px;color:#555;max-width:820px}
.modelcard{border:1px solid #d6dde5;border-radius:8px;padding:4px 20px 12px;background:#fbfcfe}
ul{padding-left:20px}code{background:#f0f2f5;padding:1px 4px;border-radius:3px}
"""


def _table(df: pd.DataFrame, formats: dict[str, str] | None = None, max_rows: int = 60) -> str:
    formats = formats or {}
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in df.columns)
    body = []
    for row in df.head(max_rows).to_dict("records"):  # keeps each column's own type (ints stay ints)
        cells = [f"<td>{html.escape(_fmt(row[c], formats.get(c)))}</td>" for c in df.columns]
        body.append("<tr>" + "".join(cells) + "</tr>")
    more = (
        f'<p class="note">First {max_rows} of {len(df)} rows; the full table is in the CSV.</p>'
        if len(df) > max_rows
        else ""
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>{more}"


def _image(path: Path, caption: str) -> str:
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return (
        f'<figure><img alt="{html.escape(caption.split(".")[0])}" src="data:image/png;base64,{data}">'
        f"<figcaption>{html.escape(caption)}</figcaption></figure>"
    )


def _list(items: Iterable[str]) -> str:
    return "<ul>" + "".join(f"<li>{html.escape(t)}</li>" for t in items) + "</ul>"


def _auto(key: str, value) -> str:
    """Rates as percentages and money without decimals, chosen by the metric's name."""
    if isinstance(value, float | np.floating) and ("rate" in key or key == "approval_rate"):
        return _fmt(value, ".2%")
    if isinstance(value, float | np.floating) and key in ("limit_mae", "expected_loss", "total_exposure"):
        return _fmt(value, ",.0f")
    return _fmt(value)


def _dl(mapping: dict) -> str:
    rows = "".join(
        f"<tr><td>{html.escape(k.replace('_', ' '))}</td><td>{html.escape(_auto(k, v))}</td></tr>"
        for k, v in mapping.items()
    )
    return f"<table><tbody>{rows}</tbody></table>"


def _card(label: str, value: str, verdict: bool | None = None) -> str:
    badge = (
        "" if verdict is None else (' <span class="pass">pass</span>' if verdict else ' <span class="fail">fail</span>')
    )
    return f'<div class="card"><div class="v">{html.escape(value)}</div><div class="k">{html.escape(label)}{badge}</div></div>'


PCT = ".1%"


def render_html(
    card: dict,
    metrics: dict,
    tables: dict[str, pd.DataFrame],
    plots: dict[str, Path],
    gate: dict,
    gate_thresholds: dict,
    title: str,
) -> str:
    """One page: summary cards, model card, then a section per question a committee asks."""
    m = metrics
    cards = "".join(
        [
            _card("ROC AUC (test)", f"{m['test_roc_auc']:.3f}"),
            _card("Gini", f"{m['test_gini']:.3f}"),
            _card("KS", f"{m['test_ks']:.3f}"),
            _card(
                f"ECE (gate ≤ {gate_thresholds['max_ece']})",
                f"{m['test_ece']:.4f}",
                gate["ece"] <= gate_thresholds["max_ece"],
            ),
            _card(
                f"Score PSI (gate ≤ {gate_thresholds['max_score_psi']})",
                f"{m['score_psi']:.3f}",
                gate["score_psi"] <= gate_thresholds["max_score_psi"],
            ),
            _card(
                f"Min adverse impact ratio (gate ≥ {gate_thresholds['min_adverse_impact_ratio']})",
                f"{gate['min_air']:.3f}",
                gate["min_air"] >= gate_thresholds["min_adverse_impact_ratio"],
            ),
            _card("Approval rate", format(m["approval_rate"], PCT)),
            _card("Bad rate of approved", _fmt(m["approved_bad_rate"], ".2%")),
        ]
    )
    d = card["model_details"]
    parts = [
        f"<h1>{html.escape(title)}</h1>",
        f'<p class="sub">Model <code>{html.escape(str(d["name"]))}</code> · run <code>{html.escape(str(d["mlflow_run_id"]) or "n/a")}</code>'
        f" · commit <code>{html.escape(str(d['git_commit'])[:12] or 'n/a')}</code> · evaluated {html.escape(d['evaluated_at'])}</p>",
        '<nav><a href="#card">Model card</a><a href="#disc">Discrimination</a><a href="#cal">Calibration</a>'
        '<a href="#bands">Score bands</a><a href="#policy">Policy</a><a href="#limits">Limits</a>'
        '<a href="#stab">Stability</a><a href="#fair">Fairness</a><a href="#feat">Features</a></nav>',
        f'<div class="cards">{cards}</div>',
        '<p class="note">The AUC gate compares this model with the champion on the same holdout at registration; '
        "the other gates are shown against their thresholds.</p>",
        '<h2 id="card">Model card</h2><div class="modelcard">',
        "<h3>Model details</h3>",
        _dl(d),
        "<h3>Data and period</h3>",
        _dl(card["data"]),
        "<h3>Intended use</h3>",
        _list(card["intended_use"]),
        "<h3>Limitations</h3>",
        _list(card["limitations"]),
        "<h3>Metrics</h3>",
        _dl(card["metrics"]),
        "<h3>Fairness findings</h3>",
        _list(card["fairness_findings"]),
        "</div>",
        '<h2 id="disc">Discrimination: does the model rank risk?</h2>',
        _dl(
            {
                "ROC AUC": m["test_roc_auc"],
                "AUC 95% interval (Hanley-McNeil)": f"{m['test_roc_auc_ci_low']:.3f} - {m['test_roc_auc_ci_high']:.3f}",
                "Gini (2 AUC - 1)": m["test_gini"],
                "KS": m["test_ks"],
                "Brier score": m["test_brier"],
                "Log loss": m["test_log_loss"],
            }
        ),
        _image(
            plots["roc"],
            "ROC curve. The further the curve bows to the top left, the better defaults are ranked "
            "above non-defaults; AUC is the probability a random default scores riskier than a random non-default.",
        ),
        _image(
            plots["ks"],
            "KS. Cumulative score distributions of defaults and non-defaults; KS is the widest gap, "
            "the best separation any single score cutoff achieves.",
        ),
        '<h2 id="cal">Calibration: are the PDs right?</h2>',
        _image(
            plots["calibration"],
            "Reliability diagram. Each point is one tenth of the holdout by PD; on the dashed "
            "line the predicted PD equals the observed default rate. ECE is the count-weighted mean distance.",
        ),
        _table(tables["calibration"], {"count": ",.0f", "bin": ".0f"}),
        '<h2 id="bands">Score bands, lift and gains</h2>',
        _image(
            plots["score_distribution"],
            "Score distribution by outcome. Good separation shows as little overlap; "
            "dotted lines are grade boundaries, the dashed line is the score of the PD cutoff.",
        ),
        _table(
            tables["score_bands"],
            {
                "band": ".0f",
                "count": ",.0f",
                "defaults": ",.0f",
                "min_score": ".1f",
                "max_score": ".1f",
                "bad_rate": ".2%",
                "cum_count_share": PCT,
                "cum_bad_share": PCT,
                "cum_good_share": PCT,
                "cum_bad_rate": ".2%",
                "lift": ".2f",
                "cum_lift": ".2f",
            },
        ),
        _image(
            plots["gains"],
            "Gains: declining the riskiest x% of applicants catches y% of defaults. Lift: how many "
            "times the average bad rate each band carries.",
        ),
        '<h2 id="policy">Policy simulation on the holdout</h2>',
        _dl(
            {
                "approval rate": format(m["approval_rate"], PCT),
                "bad rate of approved": _fmt(m["approved_bad_rate"], ".2%"),
                "total limit approved": f"{m['total_exposure']:,.0f}",
                "expected loss (PD x LGD x EAD)": f"{m['expected_loss']:,.0f}",
                "expected loss / EAD": _fmt(m["expected_loss_rate"], ".2%"),
                "realised loss on defaulted approved (LGD x EAD)": f"{m['realised_bad_exposure']:,.0f}",
                "LGD, CCF (config)": f"{m['lgd']:.2f}, {m['ccf']:.2f}",
            }
        ),
        "<h3>Decision and limit reason codes</h3>",
        _table(tables["decision_reasons"], {"count": ",.0f", "share_of_applicants": PCT}),
        "<h3>Approval and bad rate at other PD cutoffs (PD rule alone)</h3>",
        _table(
            tables["cutoffs"],
            {"pd_cutoff": ".2f", "approval_rate": PCT, "approved_bad_rate": ".2%", "declined_bad_share": PCT},
        ),
        '<h2 id="limits">Limits</h2>',
        _image(
            plots["limits_by_grade"],
            "Credit limits granted by grade to approved applicants (box: middle half, "
            "red line: median). Better grades should get higher limits and show lower bad rates.",
        ),
        _table(
            tables["grades"],
            {
                "count": ",.0f",
                "defaults": ",.0f",
                "bad_rate": ".2%",
                "mean_pd": ".2%",
                "approval_rate": PCT,
                "mean_limit": ",.0f",
                "median_limit": ",.0f",
                "total_limit": ",.0f",
            },
        ),
    ]
    if "limit_mae" in m:
        parts += [
            "<h3>Limit model error (good payers in the holdout)</h3>",
            _dl(
                {
                    "rows": f"{int(m['limit_n']):,}",
                    "mean absolute error": f"{m['limit_mae']:,.0f}",
                    "pinball loss (log limit)": m["limit_pinball"],
                    "share of granted limits at or below the estimate": f"{m['limit_coverage']:.1%} "
                    f"(target quantile {m['limit_alpha']:.2f})",
                }
            ),
        ]
        if "limit_fit" in plots:
            parts.append(
                _image(
                    plots["limit_fit"],
                    "Each point is a good payer: the limit the model estimates they "
                    "sustain against the limit they were granted (log scales).",
                )
            )
    else:
        parts.append('<p class="note">No limit model in this run: limit model error is not applicable.</p>')
    parts += [
        '<h2 id="stab">Stability: train vs test</h2>',
        _image(
            plots["psi"],
            f"PSI compares each variable's distribution on the test holdout with training. Below "
            f"{PSI_WATCH}: stable; {PSI_WATCH}-{PSI_SHIFT}: watch; above {PSI_SHIFT}: the population has shifted.",
        ),
        _table(tables["psi"], {"psi": ".4f"}, max_rows=40),
        '<h2 id="fair">Fairness by protected attribute</h2>',
        _list(card["fairness_findings"]),
    ]
    if "fairness" in plots:
        parts.append(
            _image(
                plots["fairness"],
                "Adverse impact ratio: each group's approval rate over the most favoured "
                "group's (approval rate in brackets); below 0.8 fails the four-fifths screen. Grey bars "
                "are groups too small to judge.",
            )
        )
    for name, t in tables.items():
        if name.startswith("fairness_"):
            parts += [
                f"<h3>{html.escape(name.removeprefix('fairness_'))}</h3>",
                _table(
                    t,
                    {
                        "count": ",.0f",
                        "approved": ",.0f",
                        "approval_rate": PCT,
                        "bad_rate": ".2%",
                        "mean_pd": ".2%",
                        "auc": ".3f",
                        "mean_limit_approved": ",.0f",
                        "adverse_impact_ratio": ".3f",
                    },
                ),
            ]
    parts += [
        '<h2 id="feat">Features</h2>',
        _image(
            plots["importance"], "Share of the PD model's total split gain per feature: what the model relies on most."
        ),
        _table(tables["importance"], {"gain": ",.1f", "gain_share": PCT, "direction": "+d"}, max_rows=40),
        f'<p class="note">Generated {html.escape(datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"))} by '
        "pipeline.report. Tables are logged beside this file as CSV; the model card as JSON and Markdown.</p>",
    ]
    body = "\n".join(parts)
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f'<meta name="viewport" content="width=device-width, initial-scale=1"><style>{CSS}</style></head>'
        f"<body><main>\n{body}\n</main></body></html>\n"
    )
