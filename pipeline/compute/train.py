"""Training on a Dask cluster: the PD and limit models with `lightgbm.dask`, the rest on collected rows.

The training split stays on the workers and is fitted with `DaskLGBMClassifier` / `DaskLGBMRegressor`
with the same parameters and monotone constraints as `pipeline.model.boosters` uses in one process
(`train_pd` and `train_limit` run unchanged, with `cluster_fitter` in place of the in-process fit).
The validation, calibration and test splits (small next to the training split) and a sample of the
training rows come to the client: early stopping, calibration, the monotone evidence check, the
reference distributions and the test metrics run there, with the local engine's code
(`pipeline.model.train.assemble`). The booster (`.booster_`) is an ordinary LightGBM booster, so the
scorer, the artifact and its registration are those of a one-process run.

Early stopping: LightGBM 4.7's Dask interface takes `eval_set`, but each worker evaluates its own
slice of it and stops on its own, which hangs or breaks the run when workers disagree (LightGBM
issues 6197, 6351, 7009; the fix, PR 7290, is not released). So every round up to `num_boost_round`
is trained, the validation loss of each round is computed on the client from the collected
validation rows, and the booster is cut at the round where `lgb.early_stopping` (first metric,
same patience) would have stopped: the same choice, at the price of training the extra rounds.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import lightgbm as lgb
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
from scipy.special import expit

from pipeline.compute.cluster import session, workers
from pipeline.compute.frames import Piece, parquet_pieces, read_piece
from pipeline.config import Config
from pipeline.features import FeatureSpec
from pipeline.model.boosters import Fitter, LimitModel, limit_specs, to_matrix, train_limit, train_pd
from pipeline.model.splits import make_splits
from pipeline.model.train import LIMIT, TARGET, FeatureTable, TrainResult, assemble

if TYPE_CHECKING:
    import dask.dataframe as dd
    from distributed import Client, Future

log = logging.getLogger(__name__)
UNUSED, TRAIN, VALIDATION, CALIBRATION, TEST, SAMPLED = -1, 0, 1, 2, 3, 4  # SAMPLED: a training row also collected
PARTS = {"train": TRAIN, "validation": VALIDATION, "calibration": CALIBRATION, "test": TEST}
EPS = 1e-15  # LightGBM's clip of probabilities in binary_logloss


# ---------------------------------------------------------------- early stopping after the fact


def round_losses(booster: lgb.Booster, X: np.ndarray, y: np.ndarray, metric: str, alpha: float = 0.5) -> np.ndarray:
    """The validation loss after each boosting round (LightGBM's formula), adding one tree at a time."""
    margin, losses = np.zeros(len(X)), np.empty(booster.current_iteration())
    for k in range(len(losses)):
        margin += np.asarray(booster.predict(X, raw_score=True, start_iteration=k, num_iteration=1))
        if metric == "binary_logloss":
            p = np.clip(expit(margin), EPS, 1 - EPS)
            losses[k] = -np.mean(np.where(y > 0, np.log(p), np.log(1 - p)))
        elif metric == "quantile":
            d = y - margin
            losses[k] = np.mean(np.where(d < 0, (alpha - 1) * d, alpha * d))
        else:
            raise ValueError(f"no round-by-round loss for metric {metric!r}")
    return losses


def stop_round(losses: np.ndarray, patience: int) -> int:
    """The best round (1-based) `lgb.early_stopping(patience)` would keep: the first minimum before it stops."""
    best = 0
    for i, loss in enumerate(losses):
        if loss < losses[best]:
            best = i
        elif i - best >= patience:
            break
    return best + 1


def quiet_lightgbm() -> None:
    """Send LightGBM's Python-side messages to logging, warnings and above: lightgbm.dask announces its port
    search at info level and warns on every fit that the worker's threads replace `n_jobs` (as intended)."""
    logger = logging.getLogger("lightgbm")
    logger.setLevel(logging.WARNING)
    if not any(isinstance(f, _Expected) for f in logger.filters):
        logger.addFilter(_Expected())
    lgb.register_logger(logger)


class _Expected(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "n_jobs will be ignored" not in record.getMessage()


def cluster_fitter(client: Client) -> Fitter:
    """A `boosters.Fitter` for lightgbm.dask: X and y are dask collections, the validation rows numpy arrays."""
    quiet_lightgbm()
    client.run(quiet_lightgbm)

    def fit(X, y, Xv, yv, specs: list[FeatureSpec], params: dict, rounds: int, early: int, objective: dict):
        from lightgbm.dask import DaskLGBMClassifier, DaskLGBMRegressor

        metrics = objective["metric"]
        metric = metrics[0] if isinstance(metrics, list) else metrics
        settings = {k: v for k, v in {**params, **objective}.items() if k not in ("num_threads", "metric")}
        kind = DaskLGBMClassifier if objective["objective"] == "binary" else DaskLGBMRegressor
        model = kind(client=client, n_estimators=rounds, **settings)
        cats = [i for i, s in enumerate(specs) if s.categorical]
        with client.as_current(), warnings.catch_warnings():  # lightgbm.dask waits on the default client
            warnings.filterwarnings("ignore", "Parameter n_jobs will be ignored", UserWarning)  # the worker's threads
            model.fit(X, y, categorical_feature=cats or "auto")
        booster = model.booster_
        losses = round_losses(booster, Xv, np.asarray(yv, dtype=float), metric, objective.get("alpha", 0.5))
        booster.best_iteration = stop_round(losses, early)
        booster.best_score = {"valid_0": {metric: float(losses[booster.best_iteration - 1])}}
        return booster

    return fit


# ---------------------------------------------------------------- rows on the cluster and on the client


def train_rows(piece: Piece, roles: np.ndarray, names: list[str], extra: list[str]) -> pd.DataFrame:
    """The training rows of one partition: the model matrix as float columns, the target and the limit."""
    rows = read_piece(piece, names + extra).loc[np.isin(roles, (TRAIN, SAMPLED))]
    out = pd.DataFrame(to_matrix(rows, names), columns=names)
    out[TARGET] = rows[TARGET].to_numpy(dtype=np.int64)
    if LIMIT in extra:
        out[LIMIT] = rows[LIMIT].to_numpy(dtype=float)
    return out


def held_rows(piece: Piece, roles: np.ndarray, valid: str, names: list[str]):
    """The rows of one partition that go to the client: contract rows (valid file), model matrix, role."""
    keep = np.isin(roles, (VALIDATION, CALIBRATION, TEST, SAMPLED))
    matrix = to_matrix(read_piece(piece, names).loc[keep], names)
    contract = read_piece(replace(piece, path=valid)).loc[keep].reset_index(drop=True)
    return contract, matrix, roles[keep]


def roles_of(labelled: np.ndarray, parts: dict[str, np.ndarray], sample_rows: int, seed: int) -> np.ndarray:
    """Each row's role in the file: its split (positions among labelled rows), SAMPLED for collected training rows."""
    roles = np.full(len(labelled), UNUSED, dtype=np.int8)
    rows = np.flatnonzero(labelled)
    for name, code in PARTS.items():
        roles[rows[parts[name]]] = code
    train = parts["train"]
    if len(train) > sample_rows:
        train = np.sort(np.random.default_rng(seed).choice(train, sample_rows, replace=False))
    roles[rows[train]] = SAMPLED
    return roles


def pinned(client: Client, fn, pieces: list[Piece], slices: list[np.ndarray], **kwargs) -> list[Future]:
    """Partition i on worker i mod n (workers by address): the training rows spread evenly over the workers (left
    to the scheduler, a worker that reads faster can end up with most of them, and its peers idle)."""
    addresses = sorted(client.nthreads())
    return [
        client.submit(fn, piece, roles, **kwargs, workers=[addresses[i % len(addresses)]], pure=False)
        for i, (piece, roles) in enumerate(zip(pieces, slices, strict=True))
    ]


def non_empty(client: Client, futures: list[Future]) -> list[Future]:
    """LightGBM cannot train a worker on zero rows: partitions without rows are left out."""
    sizes = client.gather(client.map(len, futures, pure=False))
    return [f for f, n in zip(futures, sizes, strict=True) if n]


def on_cluster(futures: list[Future], meta: pd.DataFrame) -> dd.DataFrame:
    import dask.dataframe as dd

    return dd.from_delayed(futures, meta=meta, verify_meta=False)


# ---------------------------------------------------------------- the train stage's fit


def fit_on_cluster(cfg: Config, features_path: Path, valid_path: Path, report: dict) -> TrainResult:
    """`pipeline.model.train.fit` with the training rows on the cluster; same splits, same scorer, same metrics."""
    specs = FeatureTable(pd.DataFrame(), report["features"], report["skipped"]).specs(cfg)
    names = [s.name for s in specs]
    notes = [f"feature skipped: {name}: {why}" for name, why in report["skipped"].items()]
    present = pq.read_schema(features_path).names
    columns = [c for c in (TARGET, LIMIT, "application_date") if c in present]
    labels = pq.read_table(features_path, columns=columns).to_pandas()
    labelled = labels[TARGET].notna().to_numpy()
    frame = labels[labelled].reset_index(drop=True)
    parts, how = make_splits(frame, TARGET, cfg.split)
    roles = roles_of(labelled, parts, cfg.compute.sample_rows, cfg.seed)
    extra = [TARGET] + ([LIMIT] if LIMIT in present else [])
    with session(cfg.compute) as client:
        assert client is not None
        pieces = parquet_pieces([features_path], cfg.compute.partition_rows)
        slices = [roles[p.offset : p.offset + p.stop - p.start] for p in pieces]
        train = pinned(client, train_rows, pieces, slices, names=names, extra=extra)
        held = client.map(held_rows, pieces, slices, valid=str(Path(valid_path).absolute()), names=names, pure=False)
        meta = pd.DataFrame({**{n: pd.Series(dtype=float) for n in names}, TARGET: pd.Series(dtype=np.int64)})
        if LIMIT in extra:
            meta[LIMIT] = pd.Series(dtype=float)
        train_frame = on_cluster(non_empty(client, train), meta)
        rows, X, role = _collect(client, held)
        fitter = cluster_fitter(client)
        va, ca, te, sampled = (role == code for code in (VALIDATION, CALIBRATION, TEST, SAMPLED))
        y = rows[TARGET].to_numpy(dtype=int)
        XY = (train_frame[names], train_frame[TARGET], X[va], y[va], X[ca], y[ca])
        pd_model, search = train_pd(*XY, specs, cfg.pd_model, cfg.seed, fitter, evidence=(X[sampled], y[sampled]))
        limits = LIMIT in frame and not frame[LIMIT].isna().all()
        limit_model = _fit_limit(client, train_frame if limits else None, (rows[va], X[va]), specs, cfg, notes)
        notes.append(
            f"trained on a Dask cluster ({workers(client)} workers, lightgbm.dask); rounds chosen on the "
            f"validation rows after training num_boost_round; {int(sampled.sum()):,} of {len(parts['train']):,} "
            "training rows collected for the monotone check and the reference distributions"
        )
    scorer, test_scores, metrics = assemble(
        cfg, specs, (pd_model, limit_model), (rows[sampled], X[sampled]), (rows[te], X[te]), list(rows.columns)
    )
    relaxed = pd_model.report.get("monotone", {}).get("relaxed", [])
    if relaxed:
        notes.append(f"monotone constraint relaxed on evidence (cost above tolerance): {', '.join(relaxed)}")
    metrics.update({f"n_{k}": len(v) for k, v in parts.items()})
    metrics.update({"n_features": len(names), "pd_trees": pd_model.best_iteration})
    if cfg.split.cv_folds:
        notes.append("split.cv_folds: cross-validation runs on the local engine only; skipped")
    return TrainResult(scorer, parts, how, metrics, test_scores, notes, search)


def _collect(client: Client, held: list[Future]) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """The held-out rows and the training sample, in file order (the order of the split indices)."""
    pieces = client.gather(held)
    rows = pd.concat([p[0] for p in pieces], ignore_index=True)
    return rows, np.vstack([p[1] for p in pieces]), np.concatenate([p[2] for p in pieces])


def _fit_limit(
    client: Client,
    train: dd.DataFrame | None,
    validation: tuple[pd.DataFrame, np.ndarray],
    specs: list[FeatureSpec],
    cfg: Config,
    notes: list[str],
) -> LimitModel | None:
    """`train._fit_limit` with the good payers' training rows on the cluster (`train` None: no limits in the data)."""
    if not cfg.limit_model.enabled:
        notes.append("limit model disabled in config: the policy uses the grade limit table")
        return None
    if train is None:
        notes.append(
            "no granted_limit in the data: limit model skipped; "
            "the policy uses the affordability cap and the grade limit table"
        )
        return None
    lspecs = limit_specs(specs)
    lnames = [s.name for s in lspecs]
    good_rows = train[(train[TARGET] == 0) & (train[LIMIT] > 0)]
    good = on_cluster(non_empty(client, client.compute(good_rows.to_delayed())), good_rows._meta)
    rows, X = validation
    limit = rows[LIMIT].to_numpy(dtype=float)
    ok = (rows[TARGET].to_numpy() == 0) & (limit > 0)
    cols = np.array([[s.name for s in specs].index(n) for n in lnames], dtype=np.int64)
    Xv = X[np.ix_(np.flatnonzero(ok), cols)]
    return train_limit(
        good[lnames], good[LIMIT], Xv, limit[ok], lspecs, cfg.limit_model, cfg.seed, cluster_fitter(client)
    )
