"""Reading and writing tables at the edges of the pipeline.

CSV columns are read as text so that one bad value in the middle of a file becomes a
row-level rejection later, never a failed read: a number that is not a number, bytes that
are not valid UTF-8 (decoded with U+FFFD, quarantined under the rule `encoding`), and also a
line with the wrong number of fields or an unclosed quote. Such a line becomes a row whose
data cells are null and whose hidden columns `MALFORMED_RULE` / `MALFORMED_TEXT` say why;
validation rejects it under column `<line>` with its row number, so rows are never lost and
the row numbers of the lines after it stay right.

One reader serves the whole-file read (ingest) and the streaming read (score), so both see
the same rows: `csv_file.CsvFile` opens the file (whatever makes it unusable as a whole raises
`DataContractError` naming the file and the cause) and `csv_records` cuts it into blocks at line
ends outside quotes and parses each block on its own, which keeps memory bounded by the block
size. Writes are atomic (temporary file, then rename) so a killed job leaves nothing at the
final path; a write that fails on the disk raises `StorageError`.
"""

from __future__ import annotations

import errno
import hashlib
import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.data.csv_file import _READ_ERRORS, CsvFile, _check_exists, _csv_input, _read_error
from pipeline.data.csv_records import MALFORMED_COLUMNS, CsvHeader

# Re-exported: files that other work is editing now import these from here, so they stay importable from io
# (the first three are also used below): pipeline/compute/frames.py (CsvFile, CsvHeader, _read_error),
# pipeline/compute/data.py and pipeline/stages/data.py (MALFORMED_COLUMNS, MALFORMED_RULE), tests/test_io.py
# (MALFORMED_RULE, MALFORMED_TEXT, record_blocks). New code imports them from csv_records / csv_file.
from pipeline.data.csv_records import MALFORMED_RULE as MALFORMED_RULE
from pipeline.data.csv_records import MALFORMED_TEXT as MALFORMED_TEXT
from pipeline.data.csv_records import record_blocks as record_blocks
from pipeline.errors import DataContractError, StorageError

WHOLE_FILE_READ_BYTES = 16 << 20


def detect_format(path: str | Path, fmt: str = "auto") -> str:
    if fmt != "auto":
        return fmt
    name = str(path).lower()
    if name.endswith((".parquet", ".pq")):
        return "parquet"
    if name.endswith((".csv", ".csv.gz", ".txt", ".txt.gz", ".tsv", ".tsv.gz")):
        return "csv"
    raise DataContractError(f"{path}: cannot tell the format from the file name; set format: csv or parquet")


def file_digest(path: str | Path) -> str:
    """sha256 of the file's bytes: recorded with every run for reproducibility."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def frame_digest(df: pd.DataFrame) -> str:
    """Order-sensitive digest of a frame's values, for data that has no file (the generator)."""
    hashed = pd.util.hash_pandas_object(df, index=False).to_numpy()
    h = hashlib.sha256(hashed.tobytes())
    h.update(",".join(map(str, df.columns)).encode())
    return h.hexdigest()


def _decode(value: bytes | None) -> str | None:
    return None if value is None else value.decode("utf-8", errors="replace")


def text_table(table: pa.Table | pa.RecordBatch) -> pa.Table:
    """Byte columns to text; a column with invalid UTF-8 is decoded value by value with replacement."""
    columns = {}
    for name, column in zip(table.column_names, table.columns, strict=True):
        try:
            columns[name] = column.cast(pa.string())
        except pa.ArrowInvalid:
            columns[name] = pa.array([_decode(v) for v in column.to_pylist()], type=pa.string())
    if not columns:  # no columns: the table as it is keeps its row count
        return table if isinstance(table, pa.Table) else pa.Table.from_batches([table])
    return pa.table(columns)


def arrow_frame(table: pa.Table) -> pd.DataFrame:
    """A table as pandas; one without columns keeps its row count."""
    return table.to_pandas() if table.num_columns else pd.DataFrame(index=range(table.num_rows))


def text_frame(table: pa.Table | pa.RecordBatch) -> pd.DataFrame:
    """Byte columns to text (`text_table`), as pandas."""
    return arrow_frame(text_table(table))


def csv_header(path: str | Path, delimiter: str = ",", encoding: str = "utf-8") -> list[str]:
    """Column names as the readers use them (blank cells `Unnamed: N`, duplicates `x.1`)."""
    return CsvFile(path, delimiter, encoding).header.names


def csv_row_bytes(path: str | Path, delimiter: str = ",", encoding: str = "utf-8") -> int:
    """Average bytes per data row in the first 64 KiB: sizes read blocks so a chunk is about N rows."""
    path = Path(path)
    try:
        with _csv_input(path) as stream:
            head = stream.read(1 << 16)
    except _READ_ERRORS as err:
        raise _read_error(path, err) from None
    lines = head.splitlines()[1:-1]  # skip the header and a possibly cut last line
    if not lines:
        return max(16 * len(csv_header(path, delimiter, encoding)), 64)
    return max(int(sum(len(line) + 1 for line in lines) / len(lines)), 8)


def read_csv_with_header(
    path: str | Path, delimiter: str = ",", encoding: str = "utf-8"
) -> tuple[pd.DataFrame, CsvHeader]:
    """Whole CSV as text columns, through the same block reader as streaming, and its header report."""
    csv_file = CsvFile(path, delimiter, encoding)
    tables = list(csv_file.tables(WHOLE_FILE_READ_BYTES))
    if not tables:
        return pd.DataFrame({n: pd.Series(dtype=object) for n in csv_file.header.names}), csv_file.header
    table = pa.concat_tables(tables, promote_options="default") if len(tables) > 1 else tables[0]
    return text_frame(table), csv_file.header


def read_csv_text(path: str | Path, delimiter: str = ",", encoding: str = "utf-8") -> pd.DataFrame:
    """Whole CSV as text columns (nulls for empty cells; malformed lines as marker rows)."""
    return read_csv_with_header(path, delimiter, encoding)[0]


def iter_csv_text(
    path: str | Path, chunk_bytes: int, delimiter: str = ",", encoding: str = "utf-8"
) -> Iterator[pd.DataFrame]:
    """Stream a CSV in blocks of about chunk_bytes, as text columns, holding one block at a time.

    The file is cut at line ends outside quotes and each block parsed on its own: Arrow's
    streaming CSV reader buffered the whole file ahead of the consumer (measured: 700 MB
    allocated for a 650 MB file), which defeats bounded memory.
    """
    for table in iter_csv_tables(path, chunk_bytes, delimiter, encoding):
        yield arrow_frame(table)


def iter_csv_tables(
    path: str | Path, chunk_bytes: int, delimiter: str = ",", encoding: str = "utf-8"
) -> Iterator[pa.Table]:
    """`iter_csv_text` as Arrow text tables: the batch job hands them to its workers, which make the frames."""
    for table in CsvFile(path, delimiter, encoding).tables(chunk_bytes):
        yield text_table(table)


def read_parquet(path: str | Path) -> pd.DataFrame:
    path = Path(path)
    _check_exists(path)
    try:
        return pq.read_table(path).to_pandas()
    except (pa.ArrowInvalid, OSError) as err:
        raise _read_error(path, err) from None


def iter_parquet(path: str | Path, chunk_rows: int) -> Iterator[pd.DataFrame]:
    for table in iter_parquet_tables(path, chunk_rows):
        yield arrow_frame(table)


def iter_parquet_tables(path: str | Path, chunk_rows: int) -> Iterator[pa.Table]:
    """A Parquet file in tables of `chunk_rows` rows (the last may be shorter), its own types."""
    path = Path(path)
    _check_exists(path)
    try:
        pf = pq.ParquetFile(
            path, pre_buffer=False, buffer_size=1 << 20
        )  # pre-buffering kept every row group read (measured)
        for batch in pf.iter_batches(batch_size=chunk_rows):
            yield pa.Table.from_batches([batch])
    except (pa.ArrowInvalid, OSError) as err:
        raise _read_error(path, err) from None


def read_table(path: str | Path, fmt: str = "auto", delimiter: str = ",", encoding: str = "utf-8") -> pd.DataFrame:
    fmt = detect_format(path, fmt)
    if fmt == "parquet":
        return read_parquet(path)
    return read_csv_text(path, delimiter, encoding)


# ---------------------------------------------------------------- writing


def temp_path(path: Path) -> Path:
    """Where a file is written before it is renamed into place: `.NAME.tmp-PID` beside it."""
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_stale_temps(path: Path) -> list[Path]:
    """Delete `.NAME.tmp-PID` files beside path whose process is gone: what a killed (SIGKILL) run left."""
    removed: list[Path] = []
    if not path.parent.is_dir():
        return removed
    prefix = f".{path.name}.tmp-"
    for tmp in path.parent.iterdir():
        pid = tmp.name[len(prefix) :] if tmp.name.startswith(prefix) else ""
        if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return removed


@contextmanager
def storage_errors(path: Path, action: str = "write"):
    """An OSError while writing (full disk, read-only, a file where a folder should be) names the path: exit 74."""
    try:
        yield
    except StorageError:
        raise
    except OSError as err:
        raise StorageError.from_os_error(err, path, action) from None


def make_parent(path: Path) -> None:
    """Create the output's folder; a part of the path that is a file is named as such (ENOTDIR, not EEXIST)."""
    for folder in [path.parent, *path.parent.parents]:
        if folder.exists() and not folder.is_dir():
            raise StorageError.from_os_error(
                OSError(errno.ENOTDIR, os.strerror(errno.ENOTDIR)), folder, "create a folder in"
            )
    with storage_errors(path.parent, "create the folder"):
        path.parent.mkdir(parents=True, exist_ok=True)


def discard(path: Path) -> None:
    """Remove a temporary file if it is there; never raise (unlink fails with EROFS even when there is nothing)."""
    try:
        path.unlink(missing_ok=True)
    except OSError:
        pass


def fsync_file(path: Path) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def atomic_write_parquet(df: pd.DataFrame | pa.Table, path: str | Path) -> Path:
    """Write to a temporary file beside the target, fsync, then rename over it."""
    path = Path(path)
    make_parent(path)
    clean_stale_temps(path)
    tmp = temp_path(path)
    table = df if isinstance(df, pa.Table) else pa.Table.from_pandas(df, preserve_index=False)
    try:
        with storage_errors(path):
            pq.write_table(table, tmp)
            fsync_file(tmp)
            os.replace(tmp, path)
    finally:
        discard(tmp)
    return path


def atomic_write_text(text: str, path: str | Path) -> Path:
    path = Path(path)
    make_parent(path)
    clean_stale_temps(path)
    tmp = temp_path(path)
    try:
        with storage_errors(path):
            tmp.write_text(text, encoding="utf-8")
            fsync_file(tmp)
            os.replace(tmp, path)
    finally:
        discard(tmp)
    return path


# ---------------------------------------------------------------- source mapping that keeps the reader's markers


def map_source(
    raw: pd.DataFrame, source, origin: str, optional: Iterable[str] = (), row_offset: int = 0
) -> pd.DataFrame:
    """`apply_mapping`, keeping malformed-line markers and the other columns of an `id_column`-only config.

    The mapping builds a new frame of contract columns, which would drop the reader's marker
    columns (and with them the malformed rows' reasons). A config with `id_column` but no
    `columns` means "the file is in contract columns, the id is named differently":
    `apply_mapping` returned only the id then, silently dropping every other column.
    """
    from pipeline.data.sources.file import apply_mapping  # sources import this module

    marks = raw[[c for c in MALFORMED_COLUMNS if c in raw.columns]]
    raw = raw.drop(columns=list(marks.columns))
    if source.id_column and not source.columns:
        apply_mapping(raw, source, origin, optional=optional, row_offset=row_offset)  # its missing-column checks
        renamed = raw.drop(columns=["applicant_id"] if source.id_column != "applicant_id" else [], errors="ignore")
        out = renamed.rename(columns={source.id_column: "applicant_id"})
    else:
        out = apply_mapping(raw, source, origin, optional=optional, row_offset=row_offset)
    return pd.concat([out, marks], axis=1) if len(marks.columns) else out
