"""The report's PNG plots: one pure function per figure, each writing one file and returning its path.

Figures are built as `matplotlib.figure.Figure` on an Agg canvas, without pyplot: no display is
needed, no backend is chosen for the process and no figure is left open in pyplot's registry.
The look (`style.RC`) is applied inside each call with `matplotlib.rc_context`, so importing or
calling this module never changes a notebook user's own plots. Thresholds that are settings
(PSI readings, the adverse impact screen) come in as parameters from the config.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import ParamSpec, TypeVar, cast

import matplotlib
import matplotlib.ticker
import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from pipeline.evaluation.fairness import adverse_impact_flags
from pipeline.evaluation.model_card import air_rule
from pipeline.evaluation.style import ACCENT, BAD, BOX_FILL, DPI, GOOD, GREY, LABEL, RC, STABLE, STATUS_COLOURS

P = ParamSpec("P")
R = TypeVar("R")


def styled(draw: Callable[P, R]) -> Callable[P, R]:
    """Run a plot function inside the report style; rcParams are restored when it returns or raises."""

    @functools.wraps(draw)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        with matplotlib.rc_context(RC):
            return draw(*args, **kwargs)

    return wrapper


def _figure(figsize: tuple[float, float] | None = None) -> Figure:
    """A figure on its own Agg canvas; `figsize=None` takes the style's default size."""
    fig = Figure(figsize=figsize)
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=DPI, format="png")
    return path


@styled
def plot_roc(roc: pd.DataFrame, auc: float, gini: float, path: Path) -> Path:
    fig = _figure((6, 5.4))
    ax = fig.subplots()
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


@styled
def plot_ks(ks: pd.DataFrame, path: Path) -> Path:
    """CDFs of the score for defaults and non-defaults; KS is the widest vertical gap."""
    fig = _figure()
    ax = fig.subplots()
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


@styled
def plot_calibration(table: pd.DataFrame, ece: float, pd_: np.ndarray, path: Path) -> Path:
    """Reliability diagram over equal-count PD bins, with the PD histogram underneath."""
    fig = _figure((6.4, 6.4))
    ax, hist = fig.subplots(2, 1, gridspec_kw={"height_ratios": [3, 1]}, sharex=True)
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


def _score_range(score: np.ndarray, extremes: tuple[float, float] | None) -> tuple[float, float]:
    """The range the unsaturated scores span (scores at `extremes` are PDs of exactly 0 or 1)."""
    finite = score[np.isfinite(score)]
    inner = finite if extremes is None else finite[(finite > min(extremes)) & (finite < max(extremes))]
    inner = inner if len(inner) else finite
    lo, hi = (float(inner.min()), float(inner.max())) if len(inner) else (0.0, 1.0)
    return (lo - 1, hi + 1) if hi <= lo else (lo, hi)


@styled
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
    fig = _figure()
    ax = fig.subplots()
    score = np.asarray(score, dtype=float)
    lo, hi = _score_range(score, extremes)
    finite = score[np.isfinite(score)]
    pooled = int(((finite < lo) | (finite > hi)).sum())
    score = np.clip(score, lo, hi)
    edges = cast(Sequence[float], np.linspace(lo, hi, 41))  # matplotlib takes arrays; its stubs say sequences
    n_good, n_bad = int((y == 0).sum()), int((y == 1).sum())
    ax.hist(score[y == 0], bins=edges, density=True, alpha=0.55, color=GOOD, label=f"non-defaults (n={n_good})")
    ax.hist(score[y == 1], bins=edges, density=True, alpha=0.55, color=BAD, label=f"defaults (n={n_bad})")
    for name, cut in grade_cuts.items():
        if lo < cut < hi:
            ax.axvline(cut, color=GREY, lw=1, ls=":")
            ax.text(cut, ax.get_ylim()[1] * 0.97, f" {name}", color=LABEL, va="top", fontsize=9)
    if lo < cutoff_score < hi:
        ax.axvline(cutoff_score, color="black", lw=1.5, ls="--", label=f"PD cutoff (score {cutoff_score:.0f})")
    ax.set(
        xlabel="Score (points; higher = safer); dotted lines: grade boundaries",
        ylabel="Density",
        title="Score distribution by outcome",
    )
    ax.legend(loc="best", title=f"{pooled} saturated scores pooled at the edges" if pooled else None, title_fontsize=9)
    return _save(fig, path)


@styled
def plot_gains(gains: pd.DataFrame, bands: pd.DataFrame, path: Path) -> Path:
    fig = _figure((11, 4.6))
    ax, lift = fig.subplots(1, 2)
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


@styled
def plot_importance(importance: pd.DataFrame, path: Path, top: int = 20) -> Path:
    t = importance.head(top).iloc[::-1]
    fig = _figure((7.5, max(3.0, 0.32 * len(t) + 1.2)))
    ax = fig.subplots()
    ax.barh(t["feature"], t["gain_share"], color=GOOD)
    for yv, v in enumerate(t["gain_share"]):
        ax.text(v, yv, f" {v:.1%}", va="center", fontsize=9)
    ax.set(xlabel="Share of total split gain", title=f"Feature importance (PD model, top {len(t)})")
    ax.grid(axis="y", visible=False)
    return _save(fig, path)


@styled
def plot_psi(table: pd.DataFrame, path: Path, warn: float, alert: float, top: int = 25) -> Path:
    """PSI bars (train vs test), worst first, coloured by the configured watch (`warn`) and shift (`alert`) lines."""
    t = table.head(top).iloc[::-1]
    fig = _figure((7.5, max(3.0, 0.3 * len(t) + 1.4)))
    ax = fig.subplots()
    ax.barh(t["feature"], t["psi"], color=[STATUS_COLOURS.get(s, GREY) for s in t["status"]])
    ax.axvline(warn, color=ACCENT, ls="--", lw=1, label=f"watch ({warn})")
    ax.axvline(alert, color=BAD, ls="--", lw=1, label=f"shifted ({alert})")
    ax.set(
        xlabel="Population stability index (train vs test)",
        title="Stability: PSI per feature and score",
        xlim=(0, max(alert * 1.2, float(t["psi"].max()) * 1.1 if len(t) else 0.3)),
    )
    ax.grid(axis="y", visible=False)
    ax.legend(loc="lower right")
    return _save(fig, path)


def _grade_label(grade: str, approval_rate: float, bad_rate: float, count: int) -> str:
    return f"{grade}\napproved {approval_rate:.0%}\nbad rate {bad_rate:.1%}" if count else f"{grade}\n(no applicants)"


@styled
def plot_limits_by_grade(
    grades: pd.DataFrame, grade: np.ndarray, limit: np.ndarray, decision: np.ndarray, order: list[str], path: Path
) -> Path:
    fig = _figure()
    ax = fig.subplots()
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
            boxprops={"facecolor": BOX_FILL, "edgecolor": GOOD},
            medianprops={"color": BAD, "lw": 2},
            flierprops={"marker": ".", "markersize": 3, "markeredgecolor": GREY},
        )
    rows = zip(order, grades["approval_rate"].fillna(0), grades["bad_rate"].fillna(0), grades["count"], strict=True)
    ax.set_xticks(positions, [_grade_label(*row) for row in rows])
    ax.set(ylabel="Credit limit granted (approved applicants)", title="Credit limits by grade (test holdout)")
    ax.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:,.0f}"))
    return _save(fig, path)


@styled
def plot_limit_fit(actual: np.ndarray, predicted: np.ndarray, alpha: float, path: Path) -> Path:
    fig = _figure((6, 5.4))
    ax = fig.subplots()
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


@styled
def plot_fairness(tables: dict[str, pd.DataFrame], path: Path, min_ratio: float) -> Path:
    """Adverse impact ratio per group, the screen line drawn at the configured `min_ratio`."""
    n = len(tables)
    fig = _figure((max(6.0, 4.2 * n), 4.6))
    axes = fig.subplots(1, n, squeeze=False)
    for ax, (attr, t) in zip(axes[0], tables.items(), strict=True):
        flagged = adverse_impact_flags(t, min_ratio)
        colours = [BAD if f else (GOOD if r else GREY) for f, r in zip(flagged, t["reliable"], strict=True)]
        ax.bar(t["group"].astype(str), t["adverse_impact_ratio"], color=colours)
        ax.axhline(min_ratio, color=BAD, ls="--", lw=1, label=air_rule(min_ratio))
        for x, (a, rate) in enumerate(zip(t["adverse_impact_ratio"], t["approval_rate"], strict=True)):
            ax.text(x, a, f"{a:.2f}\n({rate:.0%})", ha="center", va="bottom", fontsize=9)
        ax.set(title=f"{attr}", ylabel="Adverse impact ratio (approval rate)", ylim=(0, 1.25))
        ax.tick_params(axis="x", rotation=30)
        ax.legend(loc="lower right")
    fig.suptitle("Fairness: approval rate relative to the most favoured group", fontweight="bold")
    return _save(fig, path)


@styled
def plot_offer_mix(mix: pd.DataFrame, path: Path) -> Path:
    """Stacked shares of approve / counter-offer / decline per grade, the overall mix last."""
    fig = _figure()
    ax = fig.subplots()
    labels = [f"{g}\n(n={n:,})" for g, n in zip(mix["grade"], mix["count"], strict=True)]
    bottom = np.zeros(len(mix))
    parts = (("approve_share", STABLE, "approved as asked"), ("counter_offer_share", ACCENT, "counter-offer"))
    for column, colour, label in (*parts, ("decline_share", BAD, "declined")):
        share = mix[column].fillna(0).to_numpy(dtype=float)
        ax.bar(labels, share, bottom=bottom, color=colour, label=label)
        for x, (b, s) in enumerate(zip(bottom, share, strict=True)):
            if s >= 0.06:
                ax.text(x, b + s / 2, f"{s:.0%}", ha="center", va="center", fontsize=9, color="white")
        bottom += share
    ax.set_axisbelow(True)
    ax.set(ylim=(0, 1.0), ylabel="Share of applicants", title="Offer mix by grade (test holdout)")
    ax.yaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0))
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=3)
    return _save(fig, path)


@styled
def plot_payment_to_income(pti: pd.DataFrame, cap: float, path: Path) -> Path:
    """Histogram of (debt payments + offer payment) / income of approved offers, the configured cap marked."""
    fig = _figure()
    ax = fig.subplots()
    values = pti["pti"].to_numpy(dtype=float)
    top = max(cap * 1.25, float(np.quantile(values, 0.99)) if len(values) else cap)
    edges = np.linspace(0, top, 41)
    for kind, colour, label in (("approve", STABLE, "approved as asked"), ("counter_offer", ACCENT, "counter-offer")):
        part = np.clip(values[pti["offer_type"].to_numpy() == kind], 0, top)
        ax.hist(part, bins=edges.tolist(), color=colour, alpha=0.6, label=f"{label} (n={len(part):,})")
    ax.axvline(cap, color=BAD, ls="--", lw=1.5, label=f"cap (policy.max_payment_to_income {cap:.2f})")
    ax.set(
        xlabel="(existing debt payments + offer payment) / monthly income",
        ylabel="Approved offers",
        title="Payment-to-income of approved offers (income known)",
    )
    ax.legend(loc="upper left")
    return _save(fig, path)
