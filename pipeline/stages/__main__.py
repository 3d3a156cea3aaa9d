"""`python -m pipeline.stages [help]`: stage names (or help lines) for the Makefile."""

import sys

from pipeline.stages import STAGES, make_help

print(make_help() if sys.argv[1:] == ["help"] else " ".join(s.name for s in STAGES))
