"""Settings live in the config: no new numeric module constant hides in the decision or evaluation code."""

from __future__ import annotations

import ast

from helpers import ROOT

# Numeric module constants that are not settings a user would tune, each with why.
ALLOWED = {
    "pipeline/decision/compiled.py": {
        "FORMAT": "version of the compiled-forest blob format",
        "ROW_BLOCK": "rows per block inside the native kernel (a cache-size choice, not a policy)",
        "SELECT_NODES": "subtree size evaluated without branches (a code-generation choice, measured, not policy)",
        "STACK_BUDGET": "stack bytes a vector build's kernel may use (a safety bound for thread stacks, not policy)",
        "AVX2_CONTRIB_SPLITS": "attribution tree size run on AVX2 vectors (a code-generation choice, measured)",
        "VECTOR_SPLITS": "tree size run on vectors of rows (a code-generation choice, measured, not policy)",
        "VECTOR_LANES": "rows per vector in the vectorised trees (a CPU-width choice, measured, not policy)",
        "MIN_ROWS_PER_TASK": "below this a call is not split across threads (overhead, not policy)",
        "(_MISSING_ZERO, _MISSING_NAN)": "LightGBM's missing-type codes",
        "(_DOUBLE, _I32, _I64)": "LLVM types (bit widths)",
    },
    "pipeline/decision/forest.py": {
        "K_ZERO": "LightGBM's kZeroThreshold, mirrored exactly",
        "(CATEGORICAL, DEFAULT_LEFT)": "flag bits of the flattened trees",
        "MISSING": "LightGBM's missing-type codes",
    },
    "pipeline/decision/offers.py": {"_NUMERIC": "a slice of the output column list"},
    "pipeline/decision/pricing.py": {"MONTHS_PER_YEAR": "a calendar fact"},
    "pipeline/decision/statement.py": {"_RESERVED": "file names Windows reserves"},
    "pipeline/decision/treeshap.py": {
        "MAX_BITS": "size limit of a precomputed table (memory, not policy)",
        "MAX_TABLE_BYTES": "memory limit of the precomputed tables",
        "CHUNK_ROWS": "rows per work unit in the kernel",
        "_TOP_K_BLOCK": "rows per parallel task of the top-k selection (scratch made once per block, not policy)",
    },
    "pipeline/evaluation/model_card.py": {"FOUR_FIFTHS_NAME": "the threshold the report calls 'four-fifths'"},
    "pipeline/evaluation/stability.py": {
        "_BLOCK": "rows copied at a time by the drift-count kernel (a cache-size choice, measured)",
        "_PAD": "spacing between the kernel's column buffers so they do not alias in the cache (measured)",
    },
    "pipeline/evaluation/render.py": {"MAX_ROWS": "rows shown per long table on the page (the CSV has all)"},
    "pipeline/evaluation/style.py": {"DPI": "image resolution", "RC": "matplotlib style of the plots"},
}


def numeric_constants(path) -> set[str]:
    names = set()
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign):
            targets, value = node.targets, node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            targets, value = [node.target], node.value
        else:
            continue
        literals = [
            n
            for n in ast.walk(value)
            if isinstance(n, ast.Constant) and isinstance(n.value, int | float) and not isinstance(n.value, bool)
        ]
        if literals:
            names.update(ast.unparse(t) for t in targets)
    return names


def test_no_undocumented_numeric_constants_in_decision_and_evaluation_code():
    found = {}
    for folder in ("pipeline/decision", "pipeline/evaluation"):
        for path in sorted((ROOT / folder).glob("*.py")):
            rel = str(path.relative_to(ROOT))
            extra = numeric_constants(path) - set(ALLOWED.get(rel, {}))
            if extra:
                found[rel] = sorted(extra)
    assert found == {}, f"numeric module constants: make them config keys, or list them here with why: {found}"


def test_the_check_sees_a_constant(tmp_path):
    module = tmp_path / "m.py"
    module.write_text("CUTOFF = 0.25\nNAME = 'x'\nFLAG = True\n")
    assert numeric_constants(module) == {"CUTOFF"}
