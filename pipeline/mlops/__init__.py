"""MLflow plumbing: where runs and artifacts are tracked (`tracking`), the scoring artifact as a
pyfunc model with its requirements (`artifact`), and the registry with its champion/challenger
gate and alias audit trail (`registry`).
"""
