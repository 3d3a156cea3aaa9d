"""Sources turn raw data into contract columns: the seeded generator or a mapped file.

`kind: accounts` configs map onto the account snapshot contract instead (pipeline.accounts.contract):
`id_column` fills `account_id`, and `source: {kind: synthetic}` is the seeded portfolio of
`accounts.portfolio`.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from pipeline.config import Config, FileSource, SyntheticSource
from pipeline.data.contract import contract_columns
from pipeline.data.io import file_digest, frame_digest, read_table
from pipeline.data.sources.file import apply_mapping
from pipeline.data.sources.synthetic import generate
from pipeline.errors import ConfigError, DataContractError

ACCOUNT_ID = "account_id"


@dataclass(frozen=True)
class SourceData:
    frame: pd.DataFrame
    origin: str
    digest: str


def check_targets(cfg: Config) -> None:
    """Every mapped or passed-through column must be a contract column, else validation would drop it unseen."""
    src = cfg.source
    if not isinstance(src, FileSource):
        return
    known = account_names(cfg) if cfg.kind == "accounts" else {c.name for c in contract_columns(cfg.contract)}
    unknown = [name for name in [*src.columns, *src.passthrough] if name not in known]
    if unknown and cfg.kind == "accounts":
        raise ConfigError(
            f"source maps to column(s) the account contract does not know: {', '.join(unknown)} "
            "(see docs/accounts.md for its columns)"
        )
    if unknown:
        raise ConfigError(
            f"source maps to column(s) the contract does not know: {', '.join(unknown)}; "
            "declare them under contract.extras or contract.protected"
        )


def account_names(cfg: Config) -> set[str]:
    from pipeline.accounts.contract import account_columns

    return {c.name for c in account_columns(cfg.accounts.history.months)}


def as_accounts(frame: pd.DataFrame) -> pd.DataFrame:
    """The generic file mapping names the mapped id `applicant_id`; on an account snapshot it is `account_id`."""
    if ACCOUNT_ID in frame or "applicant_id" not in frame:
        return frame
    return frame.rename(columns={"applicant_id": ACCOUNT_ID})


def _load_accounts(cfg: Config) -> SourceData:
    """Account snapshots: the seeded portfolio of `accounts.portfolio`, or a file mapped onto the account contract."""
    src = cfg.source
    if isinstance(src, SyntheticSource):
        ignored = sorted(src.model_fields_set - {"kind"})
        if ignored:
            raise ConfigError(
                f"source.{ignored[0]}: with kind: accounts the synthetic portfolio is set under accounts.portfolio"
            )
        from pipeline.accounts.synthetic import synthetic_portfolio

        p = cfg.accounts.portfolio
        frame = synthetic_portfolio(p)
        return SourceData(frame, f"synthetic portfolio(seed={p.seed}, accounts={p.accounts})", frame_digest(frame))
    assert isinstance(src, FileSource)
    frame = _mapped_file(cfg, src)
    return SourceData(as_accounts(frame), src.path, file_digest(src.path))


def _mapped_file(cfg: Config, src: FileSource) -> pd.DataFrame:
    """The configured file read and mapped onto contract names (applicant or account contract)."""
    check_targets(cfg)
    raw = read_table(src.path, src.format, src.delimiter, src.encoding)
    if len(raw) == 0:
        raise DataContractError(f"{src.path}: no data rows (the file has only a header)")
    return apply_mapping(raw, src, src.path)


def load_source(cfg: Config) -> SourceData:
    """Read or generate the configured source, mapped onto the contract, with a digest of its data."""
    if cfg.kind == "accounts":
        return _load_accounts(cfg)
    src = cfg.source
    if isinstance(src, SyntheticSource):
        frame = generate(src, cfg.contract.history_months, cfg.features)
        return SourceData(frame, f"synthetic(seed={src.seed}, rows={src.rows})", frame_digest(frame))
    assert isinstance(src, FileSource)
    frame = _mapped_file(cfg, src)
    return SourceData(frame, src.path, file_digest(src.path))
