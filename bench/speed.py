"""The "Speed and scale" measurements, each side by side in one process with medians of interleaved repeats.

Called by `bench.run` (make bench) for two scorers, the 200-tree bench model and the shipped default
(`configs/default.yaml`), both compiled as at registration:
- whole job (`score_file`, in this process) / bare `Booster.predict` on the same rows, with path
  reasons for every row (`exact_reasons: none`, the work comparable to bare predict);
- the cost of the default, exact TreeSHAP reasons for adverse rows: rows/s and share of the job;
- where a chunk's time goes (features, PD, limit, policy, offers, reasons, output frame);
- exact TreeSHAP vs `pred_contrib`; compiled vs numba vs `Booster.predict` for both forests.
Interleaving matters here: the machine is shared, so a load burst hits every method of a repeat alike.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.config import ScoringConfig
from pipeline.decision.compiled import CompiledForest, split_bundle
from pipeline.decision.scorecard import pd_to_score, score_to_grade_index
from pipeline.decision.treeshap import shap_forest, shap_values
from pipeline.model.boosters import threads

log = logging.getLogger("bench")


def medians(fns: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Median seconds of each callable, the callables interleaved within each repeat."""
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for key, fn in fns.items():
            t = time.perf_counter()
            fn()
            times[key].append(time.perf_counter() - t)
    return {k: float(np.median(v)) for k, v in times.items()}


def variant(scorer, exact_reasons: str, compiled: bool = True):
    """A shallow copy with other scoring settings; models (and their linked engines) are shared."""
    other = copy.copy(scorer)
    other.exact_reasons, other.compiled = exact_reasons, compiled
    return other


def portable(scorer):
    """A copy whose compiled forests keep only the portable (baseline ISA) object, as a CPU without AVX2 loads;
    None when no blob holds more than that object."""
    models = {name: getattr(scorer, name) for name in ("pd_model", "limit_model")}
    if not any(m is not None and m.compiled_blob and len(split_bundle(m.compiled_blob)) > 1 for m in models.values()):
        return None
    other = copy.copy(scorer)
    for name, model in models.items():
        if model is not None and model.compiled_blob:
            clone = copy.copy(model)
            clone.compiled_blob, clone._engine = split_bundle(model.compiled_blob)[-1], None
            setattr(other, name, clone)
    return other


def job_vs_predict(scorer, input_path: Path, tmp: Path, repeats: int) -> dict:
    """score_file (a worker per core, the default) with path reasons for every row and with the default (exact
    for adverse rows), with one process, and with the portable compiled objects only, against bare
    Booster.predict (a thread per core) on the same rows' matrix, interleaved."""
    from pipeline.batch.job import score_file
    from pipeline.batch.workers import available_cores
    from pipeline.data.io import read_parquet

    valid = scorer.validate(read_parquet(input_path), str(input_path), allow_all_rejected=True).valid
    X = scorer.matrix(valid)
    del valid
    booster = scorer.pd_model.booster
    out = tmp / "speed_out.parquet"

    def job(mode: str, workers: int | None = None, base=scorer) -> Callable[[], object]:
        s = variant(base, mode)
        return lambda: score_file("bench", input_path, out, scorer=s, progress=False, workers=workers)

    runs = {
        "predict": lambda: booster.predict(X, num_threads=threads()),
        "job_path_reasons": job("none"),
        "job_default": job("adverse"),
        "job_path_reasons_one_process": job("none", 1),
    }
    baseline = portable(scorer)
    if baseline is not None:
        runs["job_path_reasons_portable"] = job("none", base=baseline)
    runs["predict"]()
    runs["job_default"]()  # warm: links the compiled forests, builds the TreeSHAP tables, numba cache
    secs = medians(runs, repeats)
    n = len(X)
    res = {"rows": n, "repeats": repeats, "workers": available_cores()}
    res.update({f"{k}_rows_per_s": n / v for k, v in secs.items()})
    res["ratio_path_reasons"] = res["job_path_reasons_rows_per_s"] / res["predict_rows_per_s"]
    res["ratio_default"] = res["job_default_rows_per_s"] / res["predict_rows_per_s"]
    res["ratio_path_reasons_one_process"] = res["job_path_reasons_one_process_rows_per_s"] / res["predict_rows_per_s"]
    res["exact_share_of_default_job"] = 1 - secs["job_path_reasons"] / secs["job_default"]
    if baseline is not None:
        res["ratio_path_reasons_portable"] = res["job_path_reasons_portable_rows_per_s"] / res["predict_rows_per_s"]
    out.unlink(missing_ok=True)
    return res


def job_steps(scorer, input_path: Path, tmp: Path, repeats: int) -> dict:
    """Seconds per 100k rows of the job's steps around `score_valid`, one process, medians: read, validation on
    both engines, the repeated-id check, drift tallies, scores to Arrow and Parquet."""
    import pyarrow as pa

    from pipeline.batch.chunks import scores_writer
    from pipeline.batch.tallies import SeenIds, Tally, valid_ids
    from pipeline.data.io import read_parquet
    from pipeline.data.validate import validate_frame

    s = variant(scorer, "none")
    raw = read_parquet(input_path)
    valid = s.validate(raw, "bench", allow_all_rejected=True).valid
    X = s.matrix(valid)
    scored = s.score_valid(valid, X)
    scored.insert(0, "row_number", valid["row_number"].to_numpy())
    out = tmp / "steps.parquet"

    def pandera():
        validate_frame(raw, s.contract, "bench", required=s.required_columns, allow_all_rejected=True, engine="pandera")

    def seen_ids():
        ids, hashes = valid_ids(valid)
        SeenIds().repeated(ids, hashes)

    def write():  # the scores file's writer and settings, as the job writes it
        table = pa.Table.from_pandas(scored, preserve_index=False)
        with scores_writer(out, table.schema) as writer:
            writer.write_table(table)

    steps: dict[str, Callable[[], object]] = {
        "parquet_read": lambda: read_parquet(input_path),
        "validate_fast": lambda: s.validate(raw, "bench", allow_all_rejected=True),
        "validate_pandera": pandera,
        "repeated_ids": seen_ids,
        "drift_tallies": lambda: Tally().add_scored(scored, X, s),
        "to_arrow_and_parquet_write": write,
        "score_valid_path_reasons": lambda: s.score_valid(valid, X),
    }
    scale = 100_000 / len(raw)
    res = {k: v * scale for k, v in medians(steps, repeats).items()}
    out.unlink(missing_ok=True)
    return res


def breakdown(scorer, valid: pd.DataFrame, repeats: int) -> dict:
    """Seconds per 100k rows of each step of `Scorer.score_valid` (the default settings), medians."""
    s = variant(scorer, "adverse")
    X = s.matrix(valid)
    pd_, contrib = s._pd(X)
    grade = score_to_grade_index(pd_to_score(pd_, s.scorecard), s.scorecard)
    decisions = s._decide(valid, X, pd_, grade)
    offers = s._with_offers(decisions, valid, pd_, grade) if s.products is not None else decisions
    adverse = s._exact_rows(offers)
    steps: dict[str, Callable[[], object]] = {
        "features_matrix": lambda: s.matrix(valid),
        "pd_and_path_attribution": lambda: s._pd(X),
        "limit_and_policy": lambda: s._decide(valid, X, pd_, grade),
        "offers": lambda: s._with_offers(decisions, valid, pd_, grade) if s.products is not None else None,
        "exact_shap_adverse_rows": lambda: shap_values(s.pd_model, X[adverse]),
        "reasons_path": lambda: variant(s, "none")._reasons(X, contrib.copy(), offers),
        "whole_score_valid": lambda: s.score_valid(valid, X),
        "bare_predict": lambda: s.pd_model.booster.predict(X, num_threads=threads()),
    }
    scale = 100_000 / len(valid)
    out = {k: v * scale for k, v in medians(steps, repeats).items()}
    out["adverse_share"] = float(adverse.mean())
    inputs = s._policy_inputs(valid, pd_, grade, np.full(len(valid), np.nan))
    out["limit_rows_share"] = float(1 - s._declined_before_limit(inputs).mean()) if s.limit_model else 0.0
    return out


def exact_vs_pred_contrib(model, X: np.ndarray, repeats: int) -> dict:
    """Exact TreeSHAP (pipeline.decision.treeshap) vs LightGBM pred_contrib on the same rows, and their top-4."""
    booster = model.booster
    t = time.perf_counter()
    shap_forest(model)
    build = time.perf_counter() - t
    shap_values(model, X[:10])
    secs = medians(
        {
            "pred_contrib": lambda: booster.predict(X, pred_contrib=True, num_threads=threads()),
            "treeshap": lambda: shap_values(model, X),
        },
        repeats,
    )
    ref = booster.predict(X, pred_contrib=True, num_threads=threads())[:, :-1]
    got = shap_values(model, X)
    from pipeline.decision.treeshap import top_k_exact

    return {
        "rows": len(X),
        "pred_contrib_rows_per_s": len(X) / secs["pred_contrib"],
        "treeshap_rows_per_s": len(X) / secs["treeshap"],
        "speedup": secs["pred_contrib"] / secs["treeshap"],
        "max_abs_error": float(np.max(np.abs(got - ref))),
        "top4_equal_rows": float(np.mean((top_k_exact(got, 4) == top_k_exact(ref, 4)).all(axis=1))),
        "tables_build_s": build,
    }


def _levels(model) -> dict[str, CompiledForest]:
    """Each object of the model's compiled blob that this CPU can run (by CPU level), linked on its own."""
    out = {}
    for blob in split_bundle(model.compiled_blob) if model.compiled_blob else []:
        engine = CompiledForest.load(blob, forest=model.forest)
        if engine is not None:
            out[engine.header["cpu"]] = engine
    return out


def forests(scorer, X: np.ndarray, repeats: int) -> dict:
    """Each compiled object (per CPU level) vs numba vs Booster.predict, for the PD forest (margin and margin +
    attribution) and the limit's; the job itself links the first level this CPU can run."""
    pd_model, limit = scorer.pd_model, scorer.limit_model
    runs: dict[str, Callable[[], object]] = {
        "pd_booster_predict": lambda: pd_model.booster.predict(X, raw_score=True, num_threads=threads()),
        "pd_numba_margin": lambda: pd_model.forest.margin(X),
        "pd_numba_margin_contrib": lambda: pd_model.forest.margin_and_contrib(X),
    }
    levels = {"pd": _levels(pd_model)}
    for cpu, engine in levels["pd"].items():
        runs[f"pd_margin@{cpu}"] = lambda e=engine: e.margin(X)
        runs[f"pd_margin_contrib@{cpu}"] = lambda e=engine: e.margin_and_contrib(X)
    if limit is not None:
        XL = np.ascontiguousarray(X[:, [scorer.feature_names.index(n) for n in limit.names]])
        runs.update(
            {
                "limit_booster_predict": lambda: limit.booster.predict(XL, raw_score=True, num_threads=threads()),
                "limit_numba_margin": lambda: limit.forest.margin(XL),
            }
        )
        levels["limit"] = _levels(limit)
        for cpu, engine in levels["limit"].items():
            runs[f"limit_margin@{cpu}"] = lambda e=engine: e.margin(XL)
    for fn in runs.values():
        fn()
    out: dict = {k: len(X) / v for k, v in medians(runs, repeats).items()}
    out["rows"] = len(X)
    out["pd_trees"] = pd_model.booster.num_trees()
    out["levels"] = {name: list(found) for name, found in levels.items()}
    out["engines"] = {"pd": _engine_name(pd_model.engine())}
    if limit is not None:
        out["limit_trees"] = limit.booster.num_trees()
        out["limit_num_leaves"] = (limit.report or {}).get("chosen_num_leaves")
        out["engines"]["limit"] = _engine_name(limit.engine())
    out["compile"] = scorer.meta.get("compiled")
    return out


def _engine_name(engine) -> str:
    return f"compiled {engine.header['cpu']}" if isinstance(engine, CompiledForest) else "numba"


def measure(name: str, scorer, input_path: Path, tmp: Path, quick: bool, job_input: Path | None = None) -> dict:
    """Every measurement above for one scorer on the rows of `input_path` (the whole job on `job_input`, larger,
    so that every worker gets chunks), compiled as at registration."""
    from pipeline.data.io import read_parquet

    scorer.compile(ScoringConfig())
    repeats = 3
    valid = scorer.validate(read_parquet(input_path), str(input_path), allow_all_rejected=True).valid
    X = scorer.matrix(valid)
    log.info("%s: forests", name)
    res = {"forests": forests(scorer, X, repeats)}
    log.info("%s: exact TreeSHAP vs pred_contrib", name)
    res["exact"] = exact_vs_pred_contrib(scorer.pd_model, X[: 1000 if quick else 4000], repeats)
    log.info("%s: score_valid breakdown", name)
    res["breakdown"] = breakdown(scorer, valid, repeats)
    log.info("%s: the job's steps around score_valid", name)
    res["steps"] = job_steps(scorer, input_path, tmp, repeats)
    log.info("%s: whole job vs bare predict", name)
    res["job"] = job_vs_predict(scorer, job_input or input_path, tmp, repeats)
    return res


def report_lines(speed: dict) -> list[str]:
    """The markdown section for docs/benchmarks.md."""
    lines = ["## Speed and scale: whole job vs bare predict, exact reasons, compiled forests", ""]
    for name, r in speed.items():
        j, b, e, f = r["job"], r["breakdown"], r["exact"], r["forests"]
        lines += [
            f"### {name} ({f['pd_trees']} PD trees; limit model {f.get('limit_trees', '-')} trees, "
            f"num_leaves {f.get('limit_num_leaves', '-')})",
            "",
            f"Whole job (`score_file`: read, validate, features, PD, limit, policy, offers, reasons, drift, write; "
            f"a worker per core) on {j['rows']:,} rows, median of {j['repeats']} interleaved with bare "
            "`Booster.predict` (a thread per core) on the same rows' matrix:",
            "",
            "| | rows/s | vs bare predict |",
            "|---|---:|---:|",
            f"| bare `Booster.predict` (PD only) | {j['predict_rows_per_s']:,.0f} | 1.00x |",
            f"| job, path reasons for every row (`exact_reasons: none`), {j.get('workers', 1)} workers | "
            f"{j['job_path_reasons_rows_per_s']:,.0f} | **{j['ratio_path_reasons']:.2f}x** |",
            f"| the same in one process (`--workers 1`) | {j.get('job_path_reasons_one_process_rows_per_s', 0):,.0f} | "
            f"{j.get('ratio_path_reasons_one_process', 0):.2f}x |",
            *(
                [
                    "| the same with the portable compiled objects only (a CPU without AVX2) | "
                    f"{j['job_path_reasons_portable_rows_per_s']:,.0f} | {j['ratio_path_reasons_portable']:.2f}x |"
                ]
                if "ratio_path_reasons_portable" in j
                else []
            ),
            f"| job, default (exact TreeSHAP reasons for the {b['adverse_share']:.0%} adverse rows) | "
            f"{j['job_default_rows_per_s']:,.0f} | {j['ratio_default']:.2f}x |",
            "",
            f"Exact reasons for adverse rows take {j['exact_share_of_default_job']:.0%} of the default job's time.",
            "",
            "Where the time goes, one process, seconds per 100,000 rows (medians); `score_valid` steps with the "
            "default settings, so the exact TreeSHAP step is the adverse rows':",
            "",
            "| step | s / 100k rows |",
            "|---|---:|",
            *[
                f"| {k.replace('_', ' ')} | {r['steps'][k]:.3f} |"
                for k in ("parquet_read", "validate_fast", "validate_pandera", "repeated_ids")
                if k in r.get("steps", {})
            ],
            *[
                f"| {k.replace('_', ' ')} | {b[k]:.3f} |"
                for k in (
                    "features_matrix",
                    "pd_and_path_attribution",
                    "limit_and_policy",
                    "offers",
                    "exact_shap_adverse_rows",
                    "reasons_path",
                    "whole_score_valid",
                )
            ],
            *[
                f"| {k.replace('_', ' ')} | {r['steps'][k]:.3f} |"
                for k in ("score_valid_path_reasons", "drift_tallies", "to_arrow_and_parquet_write")
                if k in r.get("steps", {})
            ],
            f"| bare `Booster.predict` ({threads()} threads) | {b['bare_predict']:.3f} |",
            "",
            f"The limit model runs on {b['limit_rows_share']:.0%} of the rows (the others are declined before the "
            "limit step). Exact TreeSHAP vs LightGBM `pred_contrib` on "
            f"{e['rows']:,} rows: {e['treeshap_rows_per_s']:,.0f} vs {e['pred_contrib_rows_per_s']:,.0f} rows/s = "
            f"**{e['speedup']:.1f}x** (max |diff| {e['max_abs_error']:.1e}, same top-4 on {e['top4_equal_rows']:.1%} "
            f"of rows; tables built in {e['tables_build_s']:.2f} s once per process).",
            "",
            f"Forests on {f['rows']:,} rows (rows/s, medians; one thread per core; the compiled objects by CPU "
            f"level, each linked on its own; the job links the first its CPU can run: {f['engines']}):",
            "",
            *_forest_table(f),
        ]
        lines += ["", f"Compile at registration: {f['compile']}.", ""]
    return lines


def _forest_table(f: dict) -> list[str]:
    """The forests' rows/s: Booster.predict, numba, then each compiled CPU level (best first); '-' where a model's
    blob has no object for a level (no tree small enough to run on vectors: the portable object serves)."""
    cpus = list(dict.fromkeys(cpu for found in f.get("levels", {}).values() for cpu in found))
    lines = [
        "| forest | `Booster.predict` | numba | " + " | ".join(f"compiled {c}" for c in cpus) + " |",
        "|---|---:|---:|" + "---:|" * len(cpus),
    ]
    rows = [("PD margin", "pd_booster_predict", "pd_numba_margin", "pd_margin")]
    rows.append(("PD margin + attribution", None, "pd_numba_margin_contrib", "pd_margin_contrib"))
    if "limit_booster_predict" in f:
        rows.append(("limit margin", "limit_booster_predict", "limit_numba_margin", "limit_margin"))
    for label, bare, numba, key in rows:
        cells = [f"{f[bare]:,.0f}" if bare else "", f"{f[numba]:,.0f}"]
        cells += [f"{f[f'{key}@{c}']:,.0f}" if f"{key}@{c}" in f else "-" for c in cpus]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines
