"""Reading and writing tables at the edges of the pipeline.

CSV columns are read as text so that one bad value in the middle of a file becomes a
row-level rejection later, never a failed read: a number that is not a number, and
also bytes that are not valid UTF-8 (they are decoded with U+FFFD replacement characters,
which validation quarantines under the rule `encoding`). Parquet keeps its types.
Whatever makes the file as a whole unusable (missing, empty, truncated, a row with the
wrong number of fields) raises `DataContractError` naming the file. Writes are atomic
(temporary file, then rename) so a killed job leaves nothing at the final path.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import os
import zlib
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from pipeline.errors import DataContractError

NULL_VALUES = ["", "NA", "N/A", "NaN", "nan", "null", "NULL", "None"]


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


def _check_exists(path: Path) -> None:
    if not path.exists():
        raise DataContractError(f"{path}: input file not found")
    if path.is_dir():
        raise DataContractError(f"{path}: is a folder, expected a file")
    if path.stat().st_size == 0:
        raise DataContractError(f"{path}: file is empty (0 bytes)")


def _open_text_head(path: Path, encoding: str) -> str:
    """The header line (however wide), decoded leniently: names are checked, not trusted."""
    opener = gzip.open if _is_gzip(path) else open
    try:
        with opener(path, "rb") as f:
            raw = f.readline(1 << 24)
    except (OSError, EOFError, zlib.error) as err:
        raise _read_error(path, err) from None
    return raw.decode(encoding, errors="replace").lstrip("\ufeff")


def _is_gzip(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(2) == b"\x1f\x8b"


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


def csv_header(path: str | Path, delimiter: str = ",", encoding: str = "utf-8") -> list[str]:
    path = Path(path)
    _check_exists(path)
    head = _open_text_head(path, encoding)
    if not head.strip():
        raise DataContractError(f"{path}: file is empty (no header line)")
    first = head.splitlines()[0]
    names = next(csv.reader(io.StringIO(first), delimiter=delimiter))
    blank = [i + 1 for i, n in enumerate(names) if not n.strip()]
    if blank:
        raise DataContractError(f"{path}: header has unnamed column(s) at position(s) {blank}")
    return names


def _csv_options(path: Path, delimiter: str, encoding: str, block_size: int | None):
    names = csv_header(path, delimiter, encoding)
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise DataContractError(f"{path}: duplicated column name(s) in the header: {', '.join(dupes)}")
    read = pacsv.ReadOptions(encoding=encoding, **({"block_size": block_size} if block_size else {}))
    parse = pacsv.ParseOptions(delimiter=delimiter, newlines_in_values=False)
    convert = pacsv.ConvertOptions(
        column_types={n: pa.binary() for n in names},  # bytes first: a bad byte must not fail the whole read
        strings_can_be_null=True,
        null_values=NULL_VALUES,
        quoted_strings_can_be_null=True,
    )
    return read, parse, convert


def _read_error(path: Path, err: Exception) -> DataContractError:
    text = str(err)
    if "UTF8" in text or "utf-8" in text.lower() or isinstance(err, UnicodeDecodeError):
        hint = " (the file is not valid UTF-8; set source encoding, e.g. latin-1)"
    elif "gzip" in text.lower() or "compress" in text.lower() or isinstance(err, (EOFError, zlib.error)):
        hint = " (the compressed file is truncated or corrupt)"
    elif "Expected" in text and "columns" in text:
        hint = " (a row has a different number of fields than the header; check the delimiter and quoting)"
    elif "straddl" in text:
        hint = " (a single row is longer than the read block; is a quote left open?)"
    else:
        hint = ""
    return DataContractError(
        f"{path}: cannot read the file: {text.splitlines()[0] if text else type(err).__name__}{hint}"
    )


_READ_ERRORS = (pa.ArrowInvalid, OSError, EOFError, zlib.error, UnicodeDecodeError)


def _csv_input(path: Path):
    return pa.input_stream(str(path), compression="gzip" if _is_gzip(path) else None)


def _decode(value: bytes | None) -> str | None:
    return None if value is None else value.decode("utf-8", errors="replace")


def text_frame(table: pa.Table | pa.RecordBatch) -> pd.DataFrame:
    """Byte columns to text; a column with invalid UTF-8 is decoded value by value with replacement."""
    columns = {}
    for name, column in zip(table.column_names, table.columns, strict=True):
        try:
            columns[name] = column.cast(pa.string())
        except pa.ArrowInvalid:
            columns[name] = pa.array([_decode(v) for v in column.to_pylist()], type=pa.string())
    return pa.table(columns).to_pandas() if columns else pd.DataFrame(index=range(table.num_rows))


def read_csv_text(path: str | Path, delimiter: str = ",", encoding: str = "utf-8") -> pd.DataFrame:
    """Whole CSV as text columns (nulls for empty cells). Long rows get a larger read block, up to 256 MiB."""
    path = Path(path)
    block = 1 << 22
    while True:
        read, parse, convert = _csv_options(path, delimiter, encoding, block)
        try:
            with _csv_input(path) as stream:
                table = pacsv.read_csv(stream, read_options=read, parse_options=parse, convert_options=convert)
            return text_frame(table)
        except _READ_ERRORS as err:
            if "straddl" in str(err) and block < 1 << 28:
                block *= 4
                continue
            raise _read_error(path, err) from None


def iter_csv_text(
    path: str | Path, chunk_bytes: int, delimiter: str = ",", encoding: str = "utf-8"
) -> Iterator[pd.DataFrame]:
    """Stream a CSV in blocks of about chunk_bytes, as text columns, holding one block at a time.

    The file is cut at line ends and each block parsed on its own: Arrow's streaming CSV
    reader buffered the whole file ahead of the consumer (measured: 700 MB allocated for a
    650 MB file), which defeats bounded memory. Rows never span lines
    (`newlines_in_values` is off), so a line end is always a row boundary.
    """
    path = Path(path)
    read, parse, convert = _csv_options(path, delimiter, encoding, None)
    read = pacsv.ReadOptions(
        encoding=encoding, column_names=csv_header(path, delimiter, encoding), block_size=max(2 * chunk_bytes, 1 << 20)
    )
    try:
        with _csv_input(path) as stream:
            carry, first = b"", True
            while True:
                data = stream.read(chunk_bytes)
                buf = carry + data
                if data:
                    cut = buf.rfind(b"\n")
                    if cut < 0:  # no line end yet: keep reading
                        carry = buf
                        continue
                    block, carry = buf[: cut + 1], buf[cut + 1 :]
                else:  # end of file: whatever is left is the last row
                    block, carry = buf, b""
                if first:  # the header line; its names are already in `read`
                    block, first = block[block.find(b"\n") + 1 :] if b"\n" in block else b"", False
                if block.strip():
                    table = pacsv.read_csv(
                        pa.py_buffer(block), read_options=read, parse_options=parse, convert_options=convert
                    )
                    if table.num_rows:
                        yield text_frame(table)
                if not data:
                    return
    except _READ_ERRORS as err:
        raise _read_error(path, err) from None


def read_parquet(path: str | Path) -> pd.DataFrame:
    path = Path(path)
    _check_exists(path)
    try:
        return pq.read_table(path).to_pandas()
    except (pa.ArrowInvalid, OSError) as err:
        raise _read_error(path, err) from None


def iter_parquet(path: str | Path, chunk_rows: int) -> Iterator[pd.DataFrame]:
    path = Path(path)
    _check_exists(path)
    try:
        pf = pq.ParquetFile(
            path, pre_buffer=False, buffer_size=1 << 20
        )  # pre-buffering kept every row group read (measured)
        for batch in pf.iter_batches(batch_size=chunk_rows):
            yield batch.to_pandas()
    except (pa.ArrowInvalid, OSError) as err:
        raise _read_error(path, err) from None


def read_table(path: str | Path, fmt: str = "auto", delimiter: str = ",", encoding: str = "utf-8") -> pd.DataFrame:
    fmt = detect_format(path, fmt)
    if fmt == "parquet":
        return read_parquet(path)
    return read_csv_text(path, delimiter, encoding)


def atomic_write_parquet(df: pd.DataFrame | pa.Table, path: str | Path) -> Path:
    """Write to a temporary file beside the target, fsync, then rename over it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    table = df if isinstance(df, pa.Table) else pa.Table.from_pandas(df, preserve_index=False)
    try:
        pq.write_table(table, tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def atomic_write_text(text: str, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
