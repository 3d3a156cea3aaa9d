"""Runs stages from the table: checks inputs, runs the function, records lineage only on success."""

from __future__ import annotations

import hashlib
import logging

from pipeline.config import Config
from pipeline.stages import BY_NAME, upstream
from pipeline.stages.files import Paths, check_inputs, forget_lineage, record_lineage, up_to_date

log = logging.getLogger(__name__)


def run_stage(name: str, cfg: Config, config_path: str | None = None) -> dict:
    """One stage; its inputs must exist and be fresh (exit 7 otherwise)."""
    paths = Paths(cfg.run_dir)
    inputs = check_inputs(paths, name)
    forget_lineage(paths, name)  # from here on, its old outputs are no longer the current result
    result = BY_NAME[name].load()(cfg, config_path)
    record_lineage(paths, name, inputs, config_digest(cfg))
    return result


def config_digest(cfg: Config) -> str:
    """Any change of setting makes every stage's output out of date."""
    return hashlib.sha256(cfg.model_dump_json().encode()).hexdigest()


def run_until(last: str, cfg: Config, config_path: str | None = None, resume: bool = False) -> dict[str, dict]:
    """Every stage up to and including `last`, in table order; results by stage name.

    With `resume` (what make uses), a stage whose last run used the same config and inputs
    and whose outputs are intact is skipped, as make skips an up-to-date target.
    """
    from pipeline.compute.cluster import run_scope  # nothing is started for the local engine

    results: dict[str, dict] = {}
    paths = Paths(cfg.run_dir)
    with run_scope(cfg.compute):  # with engine dask, one cluster serves every stage of the run
        for stage in upstream(last):
            if resume and up_to_date(paths, stage.name, config_digest(cfg)):
                log.info("stage %s: up to date", stage.name)
                results[stage.name] = {"stage": stage.name, "up_to_date": True}
                continue
            log.info("stage %s", stage.name)
            results[stage.name] = run_stage(stage.name, cfg, config_path)
    return results
