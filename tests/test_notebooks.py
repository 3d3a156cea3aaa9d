"""The notebooks execute, parameterised, on small synthetic runs in temporary folders
(applicants: a training run; accounts: a portfolio review).

The kernel is `python3` started with this interpreter (jupyter_client swaps the spec's `python`
for `sys.executable`), so it sees the venv's packages; the notebooks print their interpreter and
the test checks it.

Executing a notebook starts a Jupyter kernel and reads a whole pipeline run: those tests are end to end
and marked slow (`make test` runs them); the check of the committed notebooks is not.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import nbformat
import pytest
import yaml
from nbclient import NotebookClient
from nbformat.v4 import new_code_cell

from pipeline.config import load_config
from pipeline.stages.runner import run_until

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


def _generator():
    spec = importlib.util.spec_from_file_location("make_notebooks", NOTEBOOKS / "make_notebooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def execute(name: str, params: dict, cwd: Path) -> nbformat.NotebookNode:
    """Inject `params` after the cell tagged `parameters` (as papermill does) and run every cell."""
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    at = next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", []))
    source = "\n".join(f"{k} = {v!r}" for k, v in params.items())
    nb.cells.insert(at + 1, new_code_cell(source, metadata={"tags": ["injected-parameters"]}))
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(cwd)}}).execute()
    return nb


def _text(nb) -> str:
    parts = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            parts.append(out.get("text", ""))
            parts.append(out.get("data", {}).get("text/plain", ""))
            parts.append(out.get("data", {}).get("text/markdown", ""))
    return "\n".join(parts)


def _images(nb) -> int:
    return sum("image/png" in out.get("data", {}) for c in nb.cells for out in c.get("outputs", []))


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """ingest -> validate -> features -> train -> evaluate on 2,000 synthetic rows, tracked in the temp folder."""
    root = tmp_path_factory.mktemp("nbrun")
    config = {
        "name": "nbtest",
        "output_dir": str(root / "output"),
        "source": {"kind": "synthetic", "rows": 2000, "seed": 5},
        "contract": {"history_months": 6, "protected": ["gender"]},
        "registry": {"model_name": "nb-credit", "experiment": "nb-credit"},
    }
    path = root / "nbtest.yaml"
    path.write_text(yaml.safe_dump(config))
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        mp.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
        cfg = load_config(path)
        results = run_until("evaluate", cfg, str(path))
        run, evaluation = results["train"], results["evaluate"]
        yield {"config": path, "cfg": cfg, "run": run, "evaluation": evaluation, "root": root}


def test_committed_notebooks_have_no_outputs_and_match_the_generator():
    gen = _generator()
    for name, cells in gen.NOTEBOOKS.items():
        committed = nbformat.read(NOTEBOOKS / name, as_version=4)
        assert any("parameters" in c.metadata.get("tags", []) for c in committed.cells), name
        assert any(c.cell_type == "code" for c in committed.cells), name
        for cell in committed.cells:
            if cell.cell_type == "code":
                assert cell.outputs == [] and cell.execution_count is None, f"{name} has outputs: strip them"
        fresh = json.loads(nbformat.writes(gen.build(cells, name[:2])))
        assert json.loads(nbformat.writes(committed)) == fresh, f"{name} is stale: run notebooks/make_notebooks.py"


@pytest.mark.slow
def test_explore_notebook_runs_on_the_config(trained_run, tmp_path):
    nb = execute("01_explore_applicants.ipynb", {"config_path": str(trained_run["config"]), "max_rows": 1500}, tmp_path)
    text = _text(nb)
    assert f"python: {sys.executable}" in text
    assert "config nbtest: synthetic(seed=5, rows=1500)" in text
    assert "summary: {'config': 'nbtest'" in text
    assert "debt_to_income" in text and "default rate:" in text
    assert _images(nb) >= 2  # default rate by month, affordability histograms


@pytest.mark.slow
def test_report_notebook_loads_the_run_from_mlflow(trained_run, tmp_path):
    run = trained_run["run"]
    nb = execute(
        "02_model_report.ipynb",
        {"config_path": "unused.yaml", "tracking_uri": run["tracking_uri"], "run_id": run["run_id"]},
        tmp_path,
    )
    text = _text(nb)
    auc = trained_run["evaluation"]["metrics"]["test_roc_auc"]
    n_plots = len(trained_run["evaluation"]["plots"])
    assert f"run {run['run_id']}" in text
    assert f"'test_roc_auc': {round(auc, 4)}" in text
    assert f"'plots': {n_plots}" in text
    assert "Model card: nb-credit" in text and "Fairness findings" in text
    assert _images(nb) == n_plots


@pytest.mark.slow
def test_report_notebook_finds_the_latest_run_from_the_config(trained_run, tmp_path):
    nb = execute("02_model_report.ipynb", {"config_path": str(trained_run["config"])}, tmp_path)
    assert f"run {trained_run['run']['run_id']}" in _text(nb)


@pytest.fixture(scope="module")
def reviewed(tmp_path_factory):
    """A small synthetic account book reviewed by a scorer trained in-process: the review files the notebook reads."""
    from pipeline.accounts.behaviour import available_specs, compute_behaviour
    from pipeline.accounts.model import fit_accounts
    from pipeline.accounts.synthetic import synthetic_portfolio
    from pipeline.batch.review import review_file

    root = tmp_path_factory.mktemp("nbreview")
    config = {
        "name": "nbaccounts",
        "kind": "accounts",
        "output_dir": str(root / "output"),
        "pd_model": {"num_boost_round": 100, "monotone": "prior", "calibration": "isotonic"},
        "accounts": {"portfolio": {"accounts": 1200, "seed": 8}, "limits": {"decrease": {"trigger_pd": 0.1}}},
    }
    path = root / "nbaccounts.yaml"
    path.write_text(yaml.safe_dump(config))
    cfg = load_config(path)
    book = synthetic_portfolio(cfg.accounts.portfolio)
    specs = available_specs(book.columns, cfg.accounts.history)
    scorer = fit_accounts(book, compute_behaviour(book, cfg.accounts.history, specs), specs, cfg).scorer
    book.to_parquet(root / "book.parquet")
    output = cfg.run_dir / "review" / "review.parquet"
    return {"config": path, "summary": review_file("local", root / "book.parquet", output, cfg, scorer=scorer)}


@pytest.mark.slow
def test_portfolio_review_notebook_shows_the_watch_list_actions_and_offers(reviewed, tmp_path):
    nb = execute("03_portfolio_review.ipynb", {"config_path": str(reviewed["config"]), "rows": 5}, tmp_path)
    text = _text(nb)
    s = reviewed["summary"]
    assert f"python: {sys.executable}" in text
    assert f"rows in {s['rows_in']:,} = reviewed {s['rows_scored']:,} + rejected {s['rows_rejected']:,}" in text
    assert f"summary: {{'accounts': {s['rows_scored']}, 'flagged': {s['portfolio']['early_warning_flagged']}" in text
    assert "HTML page:" in text and "(present)" in text
    assert f"softened or blocked by the guard rails {s['portfolio']['softened_decreases']:,}" in text
    assert _images(nb) >= 2  # PD histogram, current vs new limit
