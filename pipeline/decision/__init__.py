"""From model outputs to a decision: PD to score and grade (`scorecard`), the limit policy
(`policy`), the LightGBM forest compiled for fast scoring and attribution (`forest`), reason codes
(`reasons`), and the whole scoring path as one picklable object (`scorer`), the thing the registered
artifact carries.
"""
