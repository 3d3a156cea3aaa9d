"""What a risk committee reads about a trained model: metrics (`metrics`: discrimination and calibration;
`stability`: PSI; `fairness`; `policy_metrics`: approvals, losses, limits, offers), the holdout evaluation
that computes them (`holdout`), plots, model-card wording and the HTML report rendered from a template.
Pure functions over arrays and frames; files are written only by `holdout`.
"""
