"""The batch scoring job: streams a file through a registered scoring artifact in chunks, writes
scores, rejects and a summary together, and accounts for every input row (`job`); the running
tallies, reservoirs and drift counts behind the summary live in `tallies`.
"""
