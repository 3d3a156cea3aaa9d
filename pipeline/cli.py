"""Command line: `credit-pipeline <stage> --config configs/X.yaml` (also `python -m pipeline`).

Errors the pipeline raises on purpose map to exit codes (see docs/operations.md); the
final summary is printed, progress goes to the log on stderr.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import traceback
from pathlib import Path

from pipeline.config import Config, load_config, parse_config
from pipeline.errors import INTERNAL_ERROR_EXIT, ConfigError, Interrupted, PipelineError
from pipeline.stages import STAGES

DEFAULT_CONFIG = "configs/default.yaml"
log = logging.getLogger("pipeline")


def _config(args) -> Config:
    cfg = load_config(args.config)
    address = getattr(args, "dask", None)
    if not address:
        return cfg
    compute = {"engine": "dask", "address": None if address == "local" else address}
    if address != "local":  # the cluster at the address is sized by whoever runs it
        compute.update(n_workers=None, threads_per_worker=None)
    data = cfg.model_dump(mode="json")
    return parse_config({**data, "compute": {**data["compute"], **compute}}, origin=f"{args.config} with --dask")


def _print(data: dict) -> None:
    print(json.dumps(data, indent=2, default=str))


def _run_stage(name: str, args) -> dict:
    from pipeline.stages.runner import run_stage

    return run_stage(name, _config(args), args.config)


def _show_train(info: dict) -> None:
    _print({k: info[k] for k in ("run_id", "tracking_uri", "split_method", "metrics", "notes")})


def _show_evaluate(result: dict) -> None:
    _print({"metrics": result["metrics"], "gate_inputs": result["gate"], "report": result.get("report")})


def _show_register(result: dict) -> None:
    print(
        f"gate verdict for {result['model_name']} v{result['version']}: "
        f"{'PROMOTED to champion' if result['promoted'] else 'kept as challenger'}"
    )
    for reason in result["gate"]:
        print(f"  - {reason}")
    _print(result)


SHOW = {"train": _show_train, "evaluate": _show_evaluate, "register": _show_register}


def cmd_stage(args):
    SHOW.get(args.stage, _print)(_run_stage(args.stage, args))


def cmd_score(args):
    from pipeline.batch.job import score_file
    from pipeline.mlops.tracking import configure
    from pipeline.stages.files import Paths

    cfg = load_config(args.config) if args.config else Config()
    configure(cfg.output_dir, cfg.registry.experiment)
    progress = None if not args.no_progress else False
    model = args.model or f"models:/{cfg.registry.model_name}@champion"
    output = Path(args.output or Paths(cfg.run_dir).scores)
    summary = score_file(
        model, args.input or Paths(cfg.run_dir).ingested, output, cfg, args.chunk_rows, progress, workers=args.workers
    )
    if args.statements:
        from pipeline.batch.job import load_scorer
        from pipeline.batch.statements import write_batch_statements

        scorer, _ = load_scorer(model)
        summary["statements"] = write_batch_statements(output, Path(args.statements), scorer.products)
        summary["statements_dir"] = str(args.statements)
    _print(summary)


def cmd_review(args):
    """The monthly portfolio review (kind: accounts): PD, early-warning rank, limit action, treatment, plan."""
    from pathlib import Path

    from pipeline.batch.review import review_file
    from pipeline.mlops.tracking import configure
    from pipeline.stages.files import Paths

    cfg = load_config(args.config)
    configure(cfg.output_dir, cfg.registry.experiment)
    model = args.model or f"models:/{cfg.registry.model_name}@champion"
    output = args.output or Path(cfg.run_dir) / "review" / "review.parquet"
    _print(review_file(model, args.input or Paths(cfg.run_dir).ingested, output, cfg, args.chunk_rows))


def cmd_promote(args):
    from pipeline.mlops import registry
    from pipeline.mlops.tracking import configure

    cfg = _config(args)
    configure(cfg.output_dir, cfg.registry.experiment)
    if not args.reason.strip():
        raise ConfigError("a forced promotion needs --reason")
    registry.force_promote(cfg.registry.model_name, args.version, args.reason)
    print(f"{cfg.registry.model_name} v{args.version} is champion (forced: {args.reason})")


def cmd_rollback(args):
    from pipeline.mlops import registry
    from pipeline.mlops.tracking import configure

    cfg = _config(args)
    configure(cfg.output_dir, cfg.registry.experiment)
    old, new = registry.rollback(cfg.registry.model_name, args.reason)
    print(f"{cfg.registry.model_name}: champion moved back from v{old} to v{new}")


def cmd_history(args):
    from pipeline.mlops import registry
    from pipeline.mlops.tracking import configure

    cfg = _config(args)
    configure(cfg.output_dir, cfg.registry.experiment)
    print(registry.describe_registry(cfg.registry.model_name))
    for event in registry.history(cfg.registry.model_name):
        print(
            f"{event['time']}  @{event['alias']:<10} v{event['version']:<4} (was {event['previous']})  "
            f"{event['action']}: {event['reason']}  [{event['user']}]"
        )


def cmd_quality(args):
    from pipeline.data.io import read_parquet
    from pipeline.model.baselines import cv_comparison, holdout_comparison, markdown
    from pipeline.stages.files import Paths
    from pipeline.stages.runner import run_until

    cfg = _config(args)
    if args.cv_folds is not None:
        cfg = cfg.model_copy(update={"split": cfg.split.model_copy(update={"cv_folds": args.cv_folds})})
    p = Paths(cfg.run_dir)
    if not p.valid.exists():
        run_until("validate", cfg, args.config)
    valid = read_parquet(p.valid)
    holdout = holdout_comparison(valid, cfg)
    cv = cv_comparison(valid, cfg) if cfg.split.cv_folds else None
    text = markdown(cfg.name, holdout, cv)
    (p.root / "quality.md").write_text(text)
    (p.root / "quality.json").write_text(json.dumps({"holdout": holdout, "cv": cv}, indent=2, default=str))
    print(text)


def cmd_docs(args):
    from pipeline.docs import write_docs

    for path in write_docs():
        print(f"wrote {path}")


def cmd_run(args):
    from pipeline.stages.runner import run_until

    cfg = _config(args)
    results = run_until(args.to, cfg, args.config, resume=args.resume)
    last = results[args.to]
    if last.get("up_to_date"):
        print(f"{args.to}: up to date (config and inputs unchanged since its last run)")
        return
    if args.to != "score":
        SHOW.get(args.to, _print)(last)
        return
    run, reg, summary = results["train"], results["register"], results["score"]
    print(f"run:    {run['run_id']} in {run['tracking_uri']} (experiment {cfg.registry.experiment})")
    print(
        f"model:  models:/{reg['model_name']}/{reg['version']} "
        f"({'champion' if reg['promoted'] else 'challenger'}; champion is v{reg['champion']})"
    )
    print(f"scores: {summary['output']} ({summary['rows_scored']} scored, {summary['rows_rejected']} rejected)")
    print(f"test_roc_auc={run['metrics']['test_roc_auc']:.4f} approval_rate={run['metrics']['approval_rate']:.3f}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="credit-pipeline", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    def stage(name, fn, help_text):
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.add_argument("--config", default=DEFAULT_CONFIG, help=f"YAML config (default {DEFAULT_CONFIG})")
        p.set_defaults(func=fn)
        return p

    def on_dask(p):
        p.add_argument(
            "--dask",
            metavar="ADDRESS",
            default=None,
            help="ingest, validate, features and train on a Dask cluster: its scheduler address (tcp://host:8786), "
            "or 'local' for a LocalCluster started for the run (sets compute.engine: dask)",
        )
        return p

    for st in STAGES:
        if st.name != "score":  # `score` scores any file: its own options below
            on_dask(stage(st.name, cmd_stage, st.help[0].upper() + st.help[1:] + ".")).set_defaults(stage=st.name)
    p = on_dask(stage("run", cmd_run, "All stages in order (ingest .. score with the champion), or up to --to."))
    p.add_argument("--to", default="score", choices=[st.name for st in STAGES], help="last stage to run")
    p.add_argument("--resume", action="store_true", help="skip stages whose outputs are up to date (as make does)")

    p = stage("promote", cmd_promote, "Force a version to champion, with a stated reason (recorded).")
    p.add_argument("--version", required=True, help="registry version to make champion")
    p.add_argument("--reason", required=True, help="why the gate is overridden")
    p = stage("rollback", cmd_rollback, "Move champion back to the previous champion version.")
    p.add_argument("--reason", default="rollback", help="why")
    stage("history", cmd_history, "Show the registered model's versions, aliases and alias history.")
    p = stage(
        "quality", cmd_quality, "Compare the PD model with logistic and default-LightGBM baselines on the same splits."
    )
    p.add_argument("--cv-folds", type=int, default=None, help="cross-validate with this many folds (default: config)")
    p = sub.add_parser(
        "docs",
        help="Regenerate docs/features.md and docs/data-contract.md from the code.",
        description="Regenerate docs/features.md and docs/data-contract.md (for the default config).",
    )
    p.set_defaults(func=cmd_docs)

    p = sub.add_parser(
        "score",
        help="Batch-score a file with a registered or local model.",
        description="Batch-score a CSV or Parquet file; writes Parquet scores, rejects and a summary.",
    )
    p.add_argument(
        "--model",
        default=None,
        help="models:/NAME@alias, models:/NAME/VERSION, or a local model folder "
        "(default: the config's models:/NAME@champion)",
    )
    p.add_argument(
        "--input",
        default=None,
        help="CSV (plain or gzip) or Parquet, contract or source columns (default: the config's ingested file)",
    )
    p.add_argument("--output", default=None, help="Parquet output path; rejects and summary are written beside it")
    p.add_argument("--config", default=None, help="config whose source mapping, budget and tracking to use")
    p.add_argument("--chunk-rows", type=int, default=None, help="rows per chunk (default from config)")
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        help="processes that validate and score chunks (default: scoring.workers; 0: one per core; "
        "1: this process only)",
    )
    p.add_argument("--no-progress", action="store_true", help="never show a progress bar")
    p.add_argument(
        "--statements", default=None, metavar="DIR", help="also write each applicant's statement (JSON and HTML) here"
    )
    p.set_defaults(func=cmd_score)

    p = sub.add_parser(
        "review",
        help="Monthly review of an account portfolio (kind: accounts).",
        description="Review account snapshots: PD, expected loss, early-warning rank, limit action, treatment and "
        "plan per account; writes Parquet, rejects, a summary and an HTML page beside --output.",
    )
    p.add_argument("--model", default=None, help="account model URI (default: the config's models:/NAME@champion)")
    p.add_argument("--config", default="configs/accounts.yaml", help="kind: accounts config (default %(default)s)")
    p.add_argument("--input", default=None, help="CSV or Parquet snapshots (default: the config's ingested file)")
    p.add_argument("--output", default=None, help="Parquet output (default: output/<name>/review/review.parquet)")
    p.add_argument("--chunk-rows", type=int, default=None, help="rows per chunk (default from config)")
    p.set_defaults(func=cmd_review)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command; map what went wrong to an exit code a scheduler can act on (docs/operations.md).

    SIGTERM/SIGINT become `Interrupted` so cleanup runs and the MLflow run ends KILLED (143/130);
    an operating-system I/O failure is 74 naming the path, never 70, which stays for our bugs.
    """
    from pipeline import signals
    from pipeline.errors import STORAGE_ERRNOS, StorageError

    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    for noisy in ("mlflow", "alembic", "urllib3", "matplotlib"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    previous = signals.install()
    try:
        read_only = args.command in ("score", "review", "promote", "rollback", "history")
        if read_only or "pipeline.mlops.tracking" in sys.modules:
            from pipeline.mlops.tracking import read_only_store

            read_only_store(read_only)  # a read command must not create an empty store for a misspelt path
        args.func(args)
    except PipelineError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code
    except Interrupted as err:
        signals.end_killed_run(signals.interrupted_run())
        print(f"stopped by signal {err.signum}: temporary files removed, MLflow run (if any) KILLED", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except OSError as err:
        if err.errno not in STORAGE_ERRNOS:
            traceback.print_exc()
            print("internal error: see the traceback above", file=sys.stderr)
            return INTERNAL_ERROR_EXIT
        failure = StorageError.from_os_error(err, action="read or write")
        print(f"error: {failure}", file=sys.stderr)
        return failure.exit_code
    except Exception as err:  # noqa: BLE001 - the scheduler needs a distinct code for our own bugs
        stopped = _interrupted_cause(err)
        if stopped is not None:  # a signal that arrived inside a library wrapping our exception (numba, pyarrow)
            signals.end_killed_run(signals.interrupted_run())
            print(
                f"stopped by signal {stopped.signum}: temporary files removed, MLflow run (if any) KILLED",
                file=sys.stderr,
            )
            return stopped.exit_code
        traceback.print_exc()
        print("internal error: see the traceback above", file=sys.stderr)
        return INTERNAL_ERROR_EXIT
    finally:
        signals.restore(previous)
    return 0


def _interrupted_cause(err: BaseException | None) -> Interrupted | None:
    """The signal behind an exception that a library raised while our handler's exception was in flight."""
    seen: set[int] = set()
    while err is not None and id(err) not in seen:
        if isinstance(err, Interrupted):
            return err
        seen.add(id(err))
        err = err.__cause__ or err.__context__
    return None


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
