"""Datasets as `dask.dataframe`s, and a stage's output written back as one Parquet file.

Parquet (one file or a folder of files) is read by the workers: a partition is a range of rows of
one file, cut at row groups and, inside a row group larger than `partition_rows`, by rows. CSV
(plain or gzip, one file or a folder) is parsed by the client with the pipeline's own block reader
(`pipeline.data.io.CsvFile`: malformed lines become marker rows, as in one process) and each block
of about `partition_rows` rows is sent to a worker: a gzip file cannot be cut, and the reader is the
only one that knows a quoted line end from a broken one. Every partition carries its row offset, so
row numbers and generated ids are those of the whole dataset.

Outputs stay single Parquet files (what the next stage and the local engine read): the client pulls
one partition at a time and writes it as one row group, so its memory holds one partition and the
next stage reads the file back in the same partitions. Partitions whose column types differ (text in
one, numbers in another: a raw file's bad values) are written with the common type, as the whole
frame would have had it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.data.csv_file import CsvFile, _read_error
from pipeline.data.csv_records import CsvHeader
from pipeline.data.io import (
    clean_stale_temps,
    csv_row_bytes,
    detect_format,
    discard,
    fsync_file,
    make_parent,
    storage_errors,
    temp_path,
    text_frame,
)
from pipeline.errors import DataContractError

if TYPE_CHECKING:
    import dask.dataframe as dd
    from distributed import Client, Future

SUFFIXES = {"parquet": (".parquet", ".pq"), "csv": (".csv", ".csv.gz", ".txt", ".txt.gz", ".tsv", ".tsv.gz")}


@dataclass(frozen=True)
class Piece:
    """Rows [start, stop) of one Parquet file; `offset` is the first row's position in the whole dataset."""

    path: str
    start: int
    stop: int
    offset: int


@dataclass
class Partitioned:
    """A dataset on the cluster: the frame, each partition's first row in the dataset, and its origin."""

    frame: dd.DataFrame
    offsets: list[int]
    rows: int
    origins: list[str]
    header: CsvHeader | None = None


def dataset_files(path: str | Path, fmt: str = "auto") -> tuple[list[Path], str]:
    """The files of a dataset (a file, or a folder's files of one format in name order) and the format."""
    path = Path(path)
    if not path.is_dir():
        return [path], detect_format(path, fmt)
    visible = sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith((".", "_")))
    formats = [fmt] if fmt != "auto" else ["parquet", "csv"]
    for kind in formats:
        files = [p for p in visible if p.name.lower().endswith(SUFFIXES[kind])]
        if files:
            return files, kind
    raise DataContractError(f"{path}: no {' or '.join(formats)} files in the folder")


def parquet_pieces(files: Sequence[str | Path], rows: int) -> list[Piece]:
    """Row ranges of at most `rows` rows that never span a row group, in dataset order."""
    pieces, offset = [], 0
    for path in files:
        try:
            meta = pq.ParquetFile(path).metadata
        except (pa.ArrowInvalid, OSError) as err:
            raise _read_error(Path(path), err) from None
        first = 0
        for group in range(meta.num_row_groups):
            size = meta.row_group(group).num_rows
            for start in range(first, first + size, rows):
                stop = min(start + rows, first + size)
                pieces.append(Piece(str(Path(path).absolute()), start, stop, offset + start))  # workers' cwd may differ
            first += size
        offset += first
    return pieces


def read_piece(piece: Piece, columns: list[str] | None = None) -> pd.DataFrame:
    """One piece as pandas, reading only the row groups that hold it (as `read_parquet` converts them)."""
    parquet = pq.ParquetFile(piece.path, pre_buffer=False)
    groups, first, base = [], 0, None
    for group in range(parquet.metadata.num_row_groups):
        size = parquet.metadata.row_group(group).num_rows
        if first < piece.stop and first + size > piece.start:
            groups.append(group)
            base = first if base is None else base
        first += size
    table = parquet.read_row_groups(groups, columns=columns)
    return table.slice(piece.start - (base or 0), piece.stop - piece.start).to_pandas()


def empty_frame(path: str | Path, columns: list[str] | None = None) -> pd.DataFrame:
    """The file's columns and types with no rows: the meta of a frame read from it."""
    table = pq.read_schema(path).empty_table()
    return (table.select(columns) if columns else table).to_pandas()


def read_parquet_dataset(files: Sequence[str | Path], rows: int, columns: list[str] | None = None) -> Partitioned:
    """A Parquet file or files as a dask dataframe read by the workers, one piece per partition."""
    import dask.dataframe as dd

    pieces = parquet_pieces(files, rows)
    if not pieces:  # no rows at all: one empty partition keeps the stages' checks in one place
        pieces = [Piece(str(Path(files[0]).absolute()), 0, 0, 0)]
    frame = dd.from_map(read_piece, pieces, columns=columns, meta=empty_frame(files[0], columns))
    total = pieces[-1].offset + pieces[-1].stop - pieces[-1].start
    return Partitioned(frame, [p.offset for p in pieces], total, [p.path for p in pieces])


def read_csv_dataset(client: Client, files: Sequence[Path], delimiter: str, encoding: str, rows: int) -> Partitioned:
    """CSV files parsed block by block by the client (the pipeline's reader), each block a partition on a worker.

    The client holds one block at a time; the text conversion runs on the workers.
    """
    import dask.dataframe as dd

    futures: list[Future] = []
    offsets, origins, header, total = [], [], None, 0
    for path in files:
        reader = CsvFile(path, delimiter, encoding)
        header = header or reader.header
        for table in reader.tables(max(rows * csv_row_bytes(path, delimiter, encoding), 1 << 16)):
            futures.append(client.submit(text_frame, client.scatter(table, hash=False), pure=False))
            offsets.append(total)
            origins.append(str(path))
            total += table.num_rows
    names = header.names if header is not None else []
    meta = pd.DataFrame({name: pd.Series(dtype=object) for name in names})
    if not futures:  # a header and no rows: one empty partition, so ingest reports "no data rows"
        futures, offsets, origins = [client.scatter(meta, hash=False)], [0], [str(files[0])]
    frame = dd.from_delayed(futures, meta=meta, verify_meta=False)
    return Partitioned(frame, offsets, total, origins, header)


# ---------------------------------------------------------------- writing one Parquet file


def schema_of(frame: pd.DataFrame) -> pa.Schema:
    return pa.Schema.from_pandas(frame, preserve_index=False)


def unify(schemas: Sequence[pa.Schema]) -> pa.Schema:
    """One schema for all partitions: columns in first-seen order; numbers widen to float, anything mixed is text.

    The pandas metadata of the first partition is kept only when no column changed type.
    """
    types: dict[str, list[pa.DataType]] = {}
    for schema in schemas:
        for field in schema:
            types.setdefault(field.name, []).append(field.type)
    fields = [pa.field(name, _common(found)) for name, found in types.items()]
    first = schemas[0]
    same = len(fields) == len(first) and all(
        first.field(f.name).type == f.type for f in fields if f.name in first.names
    )
    return pa.schema(fields, metadata=first.metadata if same else None)


def _common(found: list[pa.DataType]) -> pa.DataType:
    present = list(dict.fromkeys(t for t in found if not pa.types.is_null(t)))
    if not present:
        return pa.null()
    if len(present) == 1:
        return present[0]
    if all(pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t) for t in present):
        return pa.float64()
    return pa.string()


def conform(frame: pd.DataFrame, schema: pa.Schema) -> pa.Table:
    """A partition as an Arrow table of the common schema: absent columns null, mixed columns as text."""
    columns = {}
    for field in schema:
        if field.name not in frame:
            columns[field.name] = pa.nulls(len(frame), field.type)
            continue
        values = frame[field.name]
        if pa.types.is_string(field.type) and not (
            pd.api.types.is_string_dtype(values) and not pd.api.types.is_object_dtype(values)
        ):
            values = values.map(str, na_action="ignore").astype(object)  # as `str()` writes it in one process
        columns[field.name] = pa.array(values, type=field.type, from_pandas=True)
    return pa.table(columns, schema=schema)


def write_parquet(client: Client, parts: Sequence[Future], path: str | Path) -> int:
    """Write partitions (futures of pandas frames, in order) as one Parquet file, one row group each; atomic.

    Returns the rows written. The client holds one partition at a time.
    """
    path = Path(path)
    schemas = client.gather(client.map(schema_of, parts, pure=False))
    schema = unify(schemas) if schemas else pa.schema([])
    tables = client.map(conform, parts, schema=schema, pure=False)
    make_parent(path)
    clean_stale_temps(path)
    tmp, rows = temp_path(path), 0
    try:
        with storage_errors(path), pq.ParquetWriter(tmp, schema) as writer:
            for future in tables:
                table: pa.Table = future.result()
                future.release()
                if table.num_rows:
                    writer.write_table(table, row_group_size=table.num_rows)
                    rows += table.num_rows
        with storage_errors(path):
            fsync_file(tmp)
            os.replace(tmp, path)
    finally:
        discard(tmp)
    return rows


def gather_frames(client: Client, parts: Sequence[Any]) -> pd.DataFrame:
    """Small per-partition frames (futures) concatenated on the client, in partition order."""
    frames = [f for f in client.gather(list(parts)) if len(f)]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
