"""The stage table: each stage's name, what it reads, what it writes and the function that runs it.

`run`, the CLI's stage commands, `make help`, the "run X first" errors and the stage tables
in README and docs all come from `STAGES`, so the order is written once. Importing this
module loads nothing heavy (no pandas, no MLflow): `make help` answers at once, and a
stage's function is imported only when that stage runs.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Stage:
    name: str
    reads: tuple[str, ...]  # output names of earlier stages (attributes of `files.Paths`)
    writes: tuple[str, ...]
    function: str  # "module:function", called as function(cfg, config_path)
    help: str

    def load(self) -> Callable:
        module, _, name = self.function.partition(":")
        return getattr(importlib.import_module(module), name)


STAGES: tuple[Stage, ...] = (
    Stage(
        "ingest",
        (),
        ("ingested", "ingest_report"),
        "pipeline.stages.data:ingest",
        "read or generate the source, mapped onto the data contract",
    ),
    Stage(
        "validate",
        ("ingested", "ingest_report"),
        ("valid", "rejects", "validation_report"),
        "pipeline.stages.data:validate",
        "validate against the data contract; quarantine bad rows with reasons",
    ),
    Stage(
        "features",
        ("valid",),
        ("features", "features_report"),
        "pipeline.stages.data:features",
        "affordability features and the skipped-feature report",
    ),
    Stage(
        "train",
        ("features", "features_report", "valid", "ingest_report"),
        ("scorer", "splits", "run"),
        "pipeline.stages.model:train",
        "train the PD and limit models on the feature table; log an MLflow run",
    ),
    Stage(
        "evaluate",
        ("scorer", "splits", "run", "valid"),
        ("evaluation",),
        "pipeline.stages.model:evaluate",
        "evaluate the trained run on its holdout; HTML report logged to the run",
    ),
    Stage(
        "register",
        ("scorer", "splits", "run", "evaluation", "valid"),
        ("registration",),
        "pipeline.stages.model:register",
        "register the scoring artifact as challenger and run the promotion gate",
    ),
    Stage(
        "score",
        ("ingested", "registration"),
        ("scores",),
        "pipeline.stages.model:score",
        "batch-score INPUT to OUTPUT with MODEL (default: the champion on the ingested file)",
    ),
)

BY_NAME = {s.name: s for s in STAGES}


def producer(output: str) -> Stage:
    """The stage that writes `output`."""
    return next(s for s in STAGES if output in s.writes)


def upstream(name: str) -> list[Stage]:
    """`name` and every stage before it, in order."""
    names = [s.name for s in STAGES]
    return list(STAGES[: names.index(name) + 1])


def make_help() -> str:
    """Lines for `make help`: one per stage target."""
    return "\n".join(f"{s.name}\t{s.help}" for s in STAGES)


def markdown_table() -> str:
    """The stage table for README and docs."""
    from pipeline.stages.files import DESCRIPTIONS  # plain strings, no heavy imports

    def files(outputs: tuple[str, ...]) -> str:
        return ", ".join(f"`{DESCRIPTIONS[o]}`" for o in outputs) or "the source in the config"

    rows = [f"| {s.name} | {s.help} | {files(s.reads)} | {files(s.writes)} | `{s.function}` |" for s in STAGES]
    return "\n".join(["| stage | what it does | reads | writes | function |", "|---|---|---|---|---|", *rows])
