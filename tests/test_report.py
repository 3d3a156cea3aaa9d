"""evaluate_holdout on a small trained scorer: every table, valid PNG plots and one self-contained HTML report.

The fixture's config moves the cutoff table and the PSI thresholds off their defaults, so the tests
see that the report follows the config rather than constants.
"""

from __future__ import annotations

import base64
import copy
import dataclasses
import json
import re
import struct
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from pipeline.config import parse_config
from pipeline.data.sources import load_source
from pipeline.data.validate import validate_frame
from pipeline.evaluation.holdout import evaluate_holdout
from pipeline.evaluation.metrics import psi_status
from pipeline.evaluation.model_card import fairness_findings
from pipeline.evaluation.plots import plot_fairness, styled
from pipeline.evaluation.render import render_html
from pipeline.model.train import TARGET, fit

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
REPO = Path(__file__).resolve().parent.parent
CUTOFFS = [0.03, 0.12, 0.6]  # the policy's own cutoff (0.25) is added to the table
PSI_WARN, PSI_ALERT = 0.05, 0.2
HOSTILE = "<script>alert(1)</script>"
PLOTS = {
    "roc",
    "ks",
    "calibration",
    "score_distribution",
    "gains",
    "importance",
    "psi",
    "limits_by_grade",
    "limit_fit",
    "fairness",
    "offer_mix",
    "payment_to_income",
}
CARD_SECTIONS = [
    "Model card",
    "Model details",
    "Data and period",
    "Intended use",
    "Limitations",
    "Metrics",
    "Fairness findings",
]


def png_size(data: bytes) -> tuple[int, int]:
    """Width and height from the IHDR chunk; fails unless the bytes start like a PNG."""
    assert data[:8] == PNG_MAGIC, "not a PNG"
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    cfg = parse_config(
        {
            "name": "reporttest",
            "output_dir": str(tmp_path_factory.mktemp("out")),
            "source": {"kind": "synthetic", "rows": 2500, "seed": 3},
            "contract": {"history_months": 6, "protected": ["gender"]},
            "registry": {"model_name": "report-credit"},
            # the report's content, not the model's quality, is under test: boosting as short as helpers.small_config
            "pd_model": {"num_boost_round": 120, "early_stopping_rounds": 20},
            "limit_model": {"num_boost_round": 80, "early_stopping_rounds": 20},
            "evaluation": {"cutoff_table": CUTOFFS},
            "scoring": {"psi_warn": PSI_WARN, "psi_alert": PSI_ALERT},
        }
    )
    source = load_source(cfg)
    valid = validate_frame(source.frame, cfg.contract, "test", required=["applicant_id", TARGET]).valid
    valid = valid[valid[TARGET].notna()].reset_index(drop=True)
    result = fit(valid, cfg)
    result.scorer.meta.update(
        {"data_sha256": source.digest, "git_commit": "abc123def456", "config": cfg.name, "run_id": "run-xyz"}
    )
    return cfg, result, valid


@pytest.fixture(scope="module")
def evaluated(trained, tmp_path_factory):
    cfg, result, valid = trained
    out = tmp_path_factory.mktemp("evaluate")
    return evaluate_holdout(result.scorer, valid, result.splits, cfg, out), out


def test_returns_flat_metrics_gate_and_report_path(evaluated, trained):
    ev, out = evaluated
    m = ev["metrics"]
    for key in (
        "test_roc_auc",
        "test_gini",
        "test_ks",
        "test_brier",
        "test_log_loss",
        "test_ece",
        "score_psi",
        "approval_rate",
        "approved_bad_rate",
        "expected_loss",
        "min_adverse_impact_ratio",
        "air_gender",
        "limit_mae",
        "limit_pinball",
        "limit_coverage",
        "max_feature_psi",
    ):
        assert isinstance(m[key], float) and m[key] == m[key], key
    assert set(ev["gate"]) == {"roc_auc", "ece", "score_psi", "min_air", "fairness_assessed"}
    assert ev["gate"]["roc_auc"] == m["test_roc_auc"] and ev["gate"]["min_air"] == m["min_adverse_impact_ratio"]
    assert ev["gate"]["fairness_assessed"] is True
    assert Path(ev["report"]) == out / "report.html"
    assert json.loads((out / "metrics.json").read_text()) == pytest.approx(m)
    json.dumps(ev, default=str)  # the stage writes it as evaluation.json


def test_metrics_agree_with_an_independent_computation(evaluated, trained):
    ev, _ = evaluated
    cfg, result, valid = trained
    test = valid.iloc[result.splits["test"]]
    p = result.scorer.pd_model.predict(result.scorer.matrix(test))
    y = test[TARGET].to_numpy(dtype=int)
    assert ev["metrics"]["test_roc_auc"] == pytest.approx(roc_auc_score(y, p))
    assert ev["metrics"]["test_default_rate"] == pytest.approx(y.mean())
    assert ev["metrics"]["test_roc_auc_ci_low"] < ev["metrics"]["test_roc_auc"] < ev["metrics"]["test_roc_auc_ci_high"]


def test_tables_are_written_and_consistent(evaluated, trained):
    ev, out = evaluated
    cfg, result, _ = trained
    n_test = len(result.splits["test"])
    bands = pd.read_csv(out / "tables" / "score_bands.csv")
    assert bands["count"].sum() == n_test and bands["cum_count_share"].iloc[-1] == pytest.approx(1.0)
    assert bands["cum_bad_share"].is_monotonic_increasing
    grades = pd.read_csv(out / "tables" / "grades.csv")
    assert grades["grade"].tolist() == [g.name for g in cfg.scorecard.grades] and grades["count"].sum() == n_test
    fair = pd.read_csv(out / "tables" / "fairness_gender.csv")
    assert fair["count"].sum() == n_test and fair["adverse_impact_ratio"].max() == pytest.approx(1.0)
    psi = pd.read_csv(out / "tables" / "psi.csv")
    assert "(score)" in set(psi["feature"]) and set(result.scorer.feature_names) <= set(psi["feature"])
    importance = pd.read_csv(out / "tables" / "importance.csv")
    assert importance["gain_share"].sum() == pytest.approx(1.0)
    gains = result.scorer.pd_model.booster.feature_importance("gain")
    assert importance["gain"].iloc[0] == pytest.approx(gains.max())
    for name in ("calibration", "cutoffs", "decision_reasons"):
        assert len(pd.read_csv(out / "tables" / f"{name}.csv")) > 0, name


def test_cutoff_table_and_psi_readings_follow_the_config(evaluated, trained):
    ev, out = evaluated
    cfg, _, _ = trained
    cutoffs = pd.read_csv(out / "tables" / "cutoffs.csv")
    assert cutoffs["pd_cutoff"].tolist() == pytest.approx(sorted([*CUTOFFS, cfg.policy.pd_cutoff]))
    psi = pd.read_csv(out / "tables" / "psi.csv")
    assert psi["status"].tolist() == [psi_status(v, PSI_WARN, PSI_ALERT) for v in psi["psi"]]
    page = (out / "report.html").read_text(encoding="utf-8")
    assert f"Below {PSI_WARN}: stable; {PSI_WARN}-{PSI_ALERT}: watch; above {PSI_ALERT}" in page


def test_every_plot_is_a_readable_png(evaluated):
    ev, out = evaluated
    assert set(ev["plots"]) == PLOTS
    for name, rel in ev["plots"].items():
        width, height = png_size((out / rel).read_bytes())
        assert width >= 500 and height >= 300, (name, width, height)
    assert sorted(p.name for p in (out / "plots").glob("*.png")) == sorted(Path(r).name for r in ev["plots"].values())


def test_html_is_self_contained_with_the_model_card(evaluated, trained):
    ev, out = evaluated
    cfg, result, valid = trained
    page = (out / "report.html").read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    sources = re.findall(r'src="([^"]*)"', page)
    assert len(sources) == len(PLOTS)
    for src in sources:
        assert src.startswith("data:image/png;base64,")
        png_size(base64.b64decode(src.split(",", 1)[1]))
    assert not re.search(r"<link|<script|url\(|https?://", page), "the report must not fetch anything"
    for section in CARD_SECTIONS:
        assert f">{section}<" in page, section
    dates = pd.to_datetime(valid["application_date"])
    assert f"{dates.min():%Y-%m-%d} to {dates.max():%Y-%m-%d}" in page  # data period
    assert result.scorer.meta["data_sha256"] in page and "abc123def456" in page
    assert "lowest adverse impact ratio" in page and "gender" in page
    assert f"{ev['metrics']['test_roc_auc']:.3f}" in page
    assert (out / "report.html").stat().st_size < 3_000_000
    card = json.loads((out / "model_card.json").read_text())
    assert set(card) == {"model_details", "data", "intended_use", "limitations", "metrics", "fairness_findings"}
    assert any("synthetic" in text for text in card["limitations"])
    assert (out / "model_card.md").read_text().startswith("# Model card: report-credit")


def _rerender(ev: dict, out: Path, **changes) -> str:
    """render_html again on the evaluation's own outputs, with some inputs replaced."""
    inputs = {
        "card": copy.deepcopy(ev["model_card"]),
        "metrics": ev["metrics"],
        "tables": {name: pd.read_csv(out / rel) for name, rel in ev["tables"].items()},
        "plots": {k: out / v for k, v in ev["plots"].items()},
        "gate": ev["gate"],
        "gate_thresholds": {"max_ece": 0.03, "max_score_psi": 0.1, "min_adverse_impact_ratio": 0.8},
        "title": "Credit model evaluation",
    }
    inputs.update(changes)
    return render_html(**inputs, psi_warn=0.1, psi_alert=0.25)


def test_html_escapes_hostile_values(evaluated):
    ev, out = evaluated
    card = copy.deepcopy(ev["model_card"])
    card["model_details"]["name"] = HOSTILE
    card["fairness_findings"] = [HOSTILE]
    tables = {name: pd.read_csv(out / rel) for name, rel in ev["tables"].items()}
    tables["fairness_gender"]["group"] = HOSTILE
    tables[f"fairness_{HOSTILE}"] = tables["fairness_gender"]
    page = _rerender(ev, out, card=card, tables=tables, title=f"Report {HOSTILE}")
    assert "<script" not in page and "alert(1)</" not in page
    assert page.count("&lt;script&gt;alert(1)&lt;/script&gt;") >= 6  # title x2, name x2, findings x2, tables
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")


def test_fairness_screen_follows_the_configured_ratio(evaluated, tmp_path):
    ev, out = evaluated
    # the gate's ratio, not a fixed 0.8: group b at 0.85 passes the four-fifths rule but fails a 0.9 screen
    table = pd.DataFrame(
        {
            "group": ["a", "b"],
            "count": [100, 100],
            "approval_rate": [0.6, 0.51],
            "adverse_impact_ratio": [1.0, 0.85],
            "auc": [0.7, 0.72],
            "reliable": [True, True],
        }
    )
    assert "passes the 0.8 threshold" in fairness_findings({"sex": table}, 0.8)[0]
    assert "FAILS the 0.9 threshold" in fairness_findings({"sex": table}, 0.9)[0]
    png_size(plot_fairness({"sex": table}, tmp_path / "fairness.png", 0.9).read_bytes())
    min_air = ev["gate"]["min_air"]
    strict = {"max_ece": 0.03, "max_score_psi": 0.1, "min_adverse_impact_ratio": round(min_air + 0.02, 2)}
    page = _rerender(ev, out, gate_thresholds=strict)
    limit = strict["min_adverse_impact_ratio"]
    assert f'Min adverse impact ratio (gate ≥ {limit}) <span class="fail">fail</span>' in page
    assert f"below {limit} fails the adverse impact screen" in page
    assert "below 0.8 fails the four-fifths screen" in _rerender(ev, out)


def test_plots_leave_global_matplotlib_state_alone(tmp_path):
    """Importing and drawing must not restyle a notebook user's own plots nor pick a backend for them."""
    code = textwrap.dedent(
        f"""
        import sys
        from pathlib import Path
        import matplotlib
        import pandas as pd

        def snapshot():
            return {{k: repr(dict.__getitem__(matplotlib.rcParams, k)) for k in matplotlib.rcParams}}

        before = snapshot()
        from pipeline.evaluation import plots
        assert snapshot() == before, "import changed rcParams"
        roc = pd.DataFrame({{"fpr": [0.0, 0.3, 1.0], "tpr": [0.0, 0.7, 1.0]}})
        plots.plot_roc(roc, 0.8, 0.6, Path({str(tmp_path / "roc.png")!r}))
        assert snapshot() == before, "drawing changed rcParams"
        assert "matplotlib.pyplot" not in sys.modules
        """
    )
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True, timeout=120)
    png_size((tmp_path / "roc.png").read_bytes())


def test_the_style_applies_inside_a_plot_call_only():
    import matplotlib

    @styled
    def inside() -> str:
        return matplotlib.rcParams["axes.titleweight"]

    with matplotlib.rc_context({"axes.titleweight": "normal"}):
        assert inside() == "bold"
        assert matplotlib.rcParams["axes.titleweight"] == "normal"


def test_without_limit_model_or_protected_attributes_and_stale_files_go(trained, evaluated):
    """Rerunning into the same folder must not leave the previous run's plots or tables behind."""
    cfg, result, valid = trained
    _, out = evaluated
    bare = cfg.model_copy(update={"contract": cfg.contract.model_copy(update={"protected": []})})
    scorer = dataclasses.replace(result.scorer, limit_model=None)
    ev = evaluate_holdout(scorer, valid, result.splits, bare, out)
    assert set(ev["plots"]) == PLOTS - {"limit_fit", "fairness"}
    assert not (out / "plots" / "fairness.png").exists() and not (out / "plots" / "limit_fit.png").exists()
    assert not (out / "tables" / "fairness_gender.csv").exists()
    assert "limit_mae" not in ev["metrics"]
    # no protected attribute: the screen is not applicable, not a perfect 1.0 that passes
    assert ev["gate"]["min_air"] is None and ev["gate"]["fairness_assessed"] is False
    assert "min_adverse_impact_ratio" not in ev["metrics"]
    assert "min_adverse_impact_ratio" not in json.loads((out / "metrics.json").read_text())
    assert ev["model_card"]["metrics"]["min_adverse_impact_ratio"].startswith("not applicable")
    json.dumps(ev)
    page = Path(ev["report"]).read_text()
    assert "No limit model in this run" in page and "No protected attributes are declared" in page
    card = re.search(
        r'<div class="card"><div class="v">([^<]*)</div><div class="k">Min adverse impact[^<]*(.*?)</div>', page
    )
    assert card and card.group(1) == "n/a" and ">not applicable</span>" in card.group(2)
    assert ">pass</span>" not in card.group(2) and ">fail</span>" not in card.group(2)


def test_a_shifted_holdout_is_flagged_in_the_card(trained, tmp_path):
    cfg, result, valid = trained
    shifted = valid.copy()
    test_rows = result.splits["test"]
    shifted.loc[test_rows, "monthly_income"] = shifted.loc[test_rows, "monthly_income"] * 3
    ev = evaluate_holdout(result.scorer, shifted, result.splits, cfg, tmp_path)
    assert "monthly_income" in ev["feature_psi"] and ev["feature_psi"]["monthly_income"] > 0.25
    assert any("monthly_income" in text and "PSI" in text for text in ev["model_card"]["limitations"])
    assert np.isfinite(ev["metrics"]["score_psi"])
