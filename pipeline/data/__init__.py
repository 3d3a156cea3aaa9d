"""Data in: reading files (`io`; a CSV file is opened by `csv_file` and cut and parsed by `csv_records`),
turning a lender's file or the synthetic generator into contract columns (`sources`), the applicant data
contract as one pandera schema (`contract`), and lazy validation that quarantines bad rows with their
reasons (`validate`). Nothing here knows about models.
"""
