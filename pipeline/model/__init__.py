"""Model fitting: train/validation/calibration/test splits (`splits`), the LightGBM PD and limit
boosters with their calibration (`boosters`), the training recipe that builds a `Scorer` and
measures it (`train`), and side-by-side baselines on the same splits (`baselines`).
"""
