"""Generated documentation: the feature dictionary and the data contract, from the code itself."""

from __future__ import annotations

from pathlib import Path

from pipeline.config import Config
from pipeline.contract import contract_markdown
from pipeline.features import dictionary_markdown

DOCS = Path(__file__).resolve().parent.parent / "docs"


def rendered(cfg: Config) -> dict[str, str]:
    return {
        "features.md": dictionary_markdown(cfg.contract, cfg.features),
        "data-contract.md": contract_markdown(cfg.contract),
    }


def write_docs(cfg: Config, folder: Path = DOCS) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in rendered(cfg).items():
        (folder / name).write_text(text, encoding="utf-8")
        written.append(folder / name)
    return written
