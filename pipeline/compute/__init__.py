"""Running the data stages and training on a Dask cluster (`compute: {engine: dask}` or `--dask ADDRESS`).

The local engine (the default) never imports anything from here but `cluster.session`, which does
nothing for it. With engine dask: `cluster` opens one client for the run (a scheduler address, or a
LocalCluster it closes afterwards); `frames` reads a Parquet or CSV dataset as a `dask.dataframe`
(a folder of files, or a file cut into partitions) and writes a stage's output as one Parquet file,
partition by partition, so the next stage and the local engine read it unchanged; `data` runs
ingest, validate and features with the same pure per-frame functions on each partition, plus the
checks that need every partition (duplicate ids and rows, the rejection budget, all-missing
columns); `train` fits the PD and limit models with `lightgbm.dask` and builds the same scorer from
collected holdout rows. docs/operations.md ("Training on a Dask cluster") says what runs where.
"""
