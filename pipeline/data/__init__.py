"""Data in: reading files (`io`), turning a lender's file or the synthetic generator into contract
columns (`sources`), the applicant data contract as one pandera schema (`contract`), and lazy
validation that quarantines bad rows with their reasons (`validate`). Nothing here knows about models.
"""
