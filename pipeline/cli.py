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

from pipeline.config import Config, load_config
from pipeline.errors import INTERNAL_ERROR_EXIT, ConfigError, PipelineError

DEFAULT_CONFIG = "configs/default.yaml"
log = logging.getLogger("pipeline")


def _config(args) -> Config:
    return load_config(args.config)


def _print(data: dict) -> None:
    print(json.dumps(data, indent=2, default=str))


def cmd_ingest(args):
    from pipeline import stages

    _print(stages.ingest(_config(args)))


def cmd_validate(args):
    from pipeline import stages

    _print(stages.validate(_config(args)))


def cmd_features(args):
    from pipeline import stages

    _print(stages.features(_config(args)))


def cmd_train(args):
    from pipeline import model_stages as stages

    info = stages.train(_config(args), args.config)
    _print({k: info[k] for k in ("run_id", "tracking_uri", "split_method", "metrics", "notes")})


def cmd_evaluate(args):
    from pipeline import model_stages as stages

    result = stages.evaluate(_config(args))
    _print({"metrics": result["metrics"], "gate_inputs": result["gate"], "report": result.get("report")})


def cmd_register(args):
    from pipeline import model_stages as stages

    result = stages.register_stage(_config(args))
    print(
        f"gate verdict for {result['model_name']} v{result['version']}: "
        f"{'PROMOTED to champion' if result['promoted'] else 'kept as challenger'}"
    )
    for reason in result["gate"]:
        print(f"  - {reason}")
    _print(result)


def cmd_score(args):
    from pipeline.scoring import score_file
    from pipeline.stages import paths
    from pipeline.tracking import configure

    cfg = load_config(args.config) if args.config else Config()
    configure(cfg.output_dir, cfg.registry.experiment)
    progress = None if not args.no_progress else False
    model = args.model or f"models:/{cfg.registry.model_name}@champion"
    summary = score_file(
        model, args.input or paths(cfg).ingested, args.output or paths(cfg).scores, cfg, args.chunk_rows, progress
    )
    _print(summary)


def cmd_promote(args):
    from pipeline import registry
    from pipeline.tracking import configure

    cfg = _config(args)
    configure(cfg.output_dir, cfg.registry.experiment)
    if not args.reason.strip():
        raise ConfigError("a forced promotion needs --reason")
    registry.force_promote(cfg.registry.model_name, args.version, args.reason)
    print(f"{cfg.registry.model_name} v{args.version} is champion (forced: {args.reason})")


def cmd_rollback(args):
    from pipeline import registry
    from pipeline.tracking import configure

    cfg = _config(args)
    configure(cfg.output_dir, cfg.registry.experiment)
    old, new = registry.rollback(cfg.registry.model_name, args.reason)
    print(f"{cfg.registry.model_name}: champion moved back from v{old} to v{new}")


def cmd_history(args):
    from pipeline import registry
    from pipeline.tracking import configure

    cfg = _config(args)
    configure(cfg.output_dir, cfg.registry.experiment)
    print(registry.describe_registry(cfg.registry.model_name))
    for event in registry.history(cfg.registry.model_name):
        print(
            f"{event['time']}  @{event['alias']:<10} v{event['version']:<4} (was {event['previous']})  "
            f"{event['action']}: {event['reason']}  [{event['user']}]"
        )


def cmd_quality(args):
    from pipeline import stages
    from pipeline.baselines import cv_comparison, holdout_comparison, markdown
    from pipeline.io import read_parquet

    cfg = _config(args)
    p = stages.paths(cfg)
    if not p.valid.exists():
        stages.ingest(cfg)
        stages.validate(cfg)
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
    from pipeline import stages

    cfg = _config(args)
    for name, fn in (("ingest", stages.ingest), ("validate", stages.validate), ("features", stages.features)):
        log.info("stage %s", name)
        fn(cfg)
    from pipeline import model_stages

    log.info("stage train")
    run = model_stages.train(cfg, args.config)
    log.info("stage evaluate")
    model_stages.evaluate(cfg)
    log.info("stage register")
    reg = model_stages.register_stage(cfg)
    log.info("stage score")
    from pipeline.scoring import score_file

    p = stages.paths(cfg)
    summary = score_file(f"models:/{reg['model_name']}@champion", p.ingested, p.scores, cfg)
    print(f"run:    {run['run_id']} in {run['tracking_uri']} (experiment {cfg.registry.experiment})")
    print(
        f"model:  models:/{reg['model_name']}/{reg['version']} "
        f"({'champion' if reg['promoted'] else 'challenger'}; champion is v{reg['champion']})"
    )
    print(f"scores: {p.scores} ({summary['rows_scored']} scored, {summary['rows_rejected']} rejected)")
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

    stage("ingest", cmd_ingest, "Read or generate the source and map it onto the data contract.")
    stage("validate", cmd_validate, "Validate against the contract; quarantine bad rows with reasons.")
    stage("features", cmd_features, "Compute affordability features; report skipped ones.")
    stage("train", cmd_train, "Train the PD and limit models and log an MLflow run.")
    stage("evaluate", cmd_evaluate, "Evaluate the trained run on its holdout and log the report.")
    stage("register", cmd_register, "Register the scoring artifact as challenger; run the promotion gate.")
    stage("run", cmd_run, "All stages end to end, then score the ingested file with the champion.")

    p = stage("promote", cmd_promote, "Force a version to champion, with a stated reason (recorded).")
    p.add_argument("--version", required=True, help="registry version to make champion")
    p.add_argument("--reason", required=True, help="why the gate is overridden")
    p = stage("rollback", cmd_rollback, "Move champion back to the previous champion version.")
    p.add_argument("--reason", default="rollback", help="why")
    stage("history", cmd_history, "Show the registered model's versions, aliases and alias history.")
    stage(
        "quality", cmd_quality, "Compare the PD model with logistic and default-LightGBM baselines on the same splits."
    )
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
    p.add_argument("--no-progress", action="store_true", help="never show a progress bar")
    p.set_defaults(func=cmd_score)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    for noisy in ("mlflow", "alembic", "urllib3", "matplotlib"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        args.func(args)
    except PipelineError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception:  # noqa: BLE001 - the scheduler needs a distinct code for our own bugs
        traceback.print_exc()
        print("internal error: see the traceback above", file=sys.stderr)
        return INTERNAL_ERROR_EXIT
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
