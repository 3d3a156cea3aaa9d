"""Generated documentation: the feature dictionary and the data contract, from the code itself.

The committed docs describe the embedded default config (core contract and core features);
`make docs` regenerates them and tests fail when the committed files are stale.
"""

from __future__ import annotations

from pathlib import Path

from pipeline.config import Config, load_config
from pipeline.contract import contract_markdown
from pipeline.features import dictionary_markdown

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
DEFAULT_CONFIG = ROOT / "configs" / "default.yaml"


def rendered(cfg: Config | None = None) -> dict[str, str]:
    cfg = cfg or load_config(DEFAULT_CONFIG)
    return {
        "features.md": dictionary_markdown(cfg.contract, cfg.features),
        "data-contract.md": contract_markdown(cfg.contract),
    }


def write_docs(folder: Path = DOCS) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in rendered().items():
        (folder / name).write_text(text, encoding="utf-8")
        written.append(folder / name)
    return written
