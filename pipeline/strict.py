"""The base of every config model: unknown keys fail and settings are frozen once loaded.

Its own module so that config sections defined beside their concern (products, accounts) and the
top-level `pipeline.config` can both use it without importing each other.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
