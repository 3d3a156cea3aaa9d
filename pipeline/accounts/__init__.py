"""Existing accounts: the monthly review of a card portfolio after origination.

Origination (the rest of the pipeline) decides once, on application data. Once an account is
open its own behaviour (utilisation, payments, repayment status) predicts default far better, so
this subpackage validates monthly account snapshots against their own contract, turns the
history into behaviour features, scores a behaviour PD, and runs the review as pure
vectorised functions: expected loss, an early-warning ranking, guarded limit increases and
decreases, contact treatments and affordable repayment plans. Every tunable number lives in
`pipeline.accounts.settings`; nothing here does I/O.
"""
