"""Reading and writing tables at the edges of the pipeline.

CSV columns are read as text so that one bad value in the middle of a file becomes a
row-level rejection later, never a failed read: a number that is not a number, bytes that
are not valid UTF-8 (decoded with U+FFFD, quarantined under the rule `encoding`), and also a
line with the wrong number of fields or an unclosed quote. Such a line becomes a row whose
data cells are null and whose hidden columns `MALFORMED_RULE` / `MALFORMED_TEXT` say why;
validation rejects it under column `<line>` with its row number, so rows are never lost and
the row numbers of the lines after it stay right.

One reader serves the whole-file read (ingest) and the streaming read (score), so both see
the same rows: the file is cut into blocks at line ends outside quotes (CRLF, LF and CR-only
alike; a quoted value may hold line ends), and each block is parsed on its own, which keeps
memory bounded by the block size. Whatever makes the file as a whole unusable (missing,
empty, truncated, compressed other than gzip, UTF-16, binary) raises `DataContractError`
naming the file and the cause. Writes are atomic (temporary file, then rename) so a killed
job leaves nothing at the final path; a write that fails on the disk raises `StorageError`.
"""

from __future__ import annotations

import codecs
import csv
import errno
import hashlib
import os
import re
import zlib
from collections.abc import Generator, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from pipeline.data.headers import normalise_header
from pipeline.errors import DataContractError, StorageError

NULL_VALUES = ["", "NA", "N/A", "NaN", "nan", "null", "NULL", "None"]
QUOTE = b'"'
MALFORMED_RULE = "__malformed_rule__"
MALFORMED_TEXT = "__malformed_text__"
MALFORMED_COLUMNS = (MALFORMED_RULE, MALFORMED_TEXT)
LINE_COLUMN = "<line>"
RULE_MALFORMED = "malformed_line"
MAX_LINE_CHARS = 200
MAX_RECORD_BYTES = 64 << 20  # proposed config key `source.max_record_bytes`; one record (row) at most this long
WHOLE_FILE_READ_BYTES = 16 << 20
_LINE_ENDS = re.compile(rb"(\r\n|\r|\n)")
_MAGIC = {
    b"BZh": "bz2",
    b"\xfd7zXZ\x00": "xz",
    b"PK\x03\x04": "zip (an .xlsx workbook is a zip too: export it as CSV)",
    b"\x28\xb5\x2f\xfd": "zstd",
    b"7z\xbc\xaf\x27\x1c": "7z",
}
_BOMS = {b"\xff\xfe\x00\x00": "UTF-32", b"\x00\x00\xfe\xff": "UTF-32", b"\xff\xfe": "UTF-16", b"\xfe\xff": "UTF-16"}


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


def _is_gzip(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(2) == b"\x1f\x8b"


def _is_utf8(encoding: str) -> bool:
    return codecs.lookup(encoding).name in ("utf-8", "utf-8-sig")


def sniff_csv(path: Path, encoding: str = "utf-8") -> None:
    """Name the real cause when a "CSV" is compressed other than gzip, UTF-16/32, or binary.

    Without this, Arrow reads such a file as one column of noise and the user is told that
    a row has the wrong number of fields, which sends them after the delimiter.
    """
    _check_exists(path)
    with open(path, "rb") as f:
        raw = f.read(8)
    for magic, kind in _MAGIC.items():
        if raw.startswith(magic):
            raise DataContractError(f"{path}: the file is compressed as {kind}; decompress it or use gzip")
    if raw.startswith(b"PAR1"):
        raise DataContractError(f"{path}: the file is Parquet, not CSV; name it .parquet or set format: parquet")
    if not _is_utf8(encoding):
        return
    try:
        with _csv_input(path) as stream:
            head = stream.read(1 << 16)
    except _READ_ERRORS as err:
        raise _read_error(path, err) from None
    for bom, name in _BOMS.items():
        if head.startswith(bom):
            raise DataContractError(
                f"{path}: the file is {name} encoded (byte-order mark {bom.hex(' ')}); "
                f"re-save it as UTF-8 or set the source encoding to {name.lower()}"
            )
    if b"\x00" in head:
        raise DataContractError(
            f"{path}: the file holds NUL bytes: it is binary, or UTF-16/32 without a byte-order mark, not a UTF-8 CSV"
        )


def _read_error(path: Path, err: Exception) -> DataContractError:
    text = str(err)
    if "UTF8" in text or "utf-8" in text.lower() or isinstance(err, UnicodeDecodeError):
        hint = " (the file is not valid UTF-8; set source encoding, e.g. latin-1)"
    elif "gzip" in text.lower() or "compress" in text.lower() or isinstance(err, (EOFError, zlib.error)):
        hint = " (the compressed file is truncated or corrupt)"
    else:
        hint = ""
    return DataContractError(
        f"{path}: cannot read the file: {text.splitlines()[0] if text else type(err).__name__}{hint}"
    )


_READ_ERRORS = (pa.ArrowInvalid, OSError, EOFError, zlib.error, UnicodeDecodeError)


def _csv_input(path: Path):
    return pa.input_stream(str(path), compression="gzip" if _is_gzip(path) else None)


# ---------------------------------------------------------------- cutting the file into records


@dataclass(frozen=True)
class Malformed:
    """A line that cannot be a row: its raw text (cut) and the rule it breaks."""

    text: str
    rule: str


def _cut_text(raw: bytes) -> str:
    text = raw.decode("utf-8", errors="replace")
    return text if len(text) <= MAX_LINE_CHARS else text[:MAX_LINE_CHARS] + f"...({len(text)} chars)"


def _line_end_before(buf: bytes, end: int) -> int:
    """Index of the last \\n or \\r before end, or -1 (the \\r search covers only the tail after the \\n)."""
    lf = buf.rfind(b"\n", 0, end)
    cr = buf.rfind(b"\r", lf + 1, end)
    return max(lf, cr)


def _first_line_end(buf: bytes, start: int = 0) -> int:
    """Index of the first line end at or after start (the \\n of a \\r\\n), or -1.

    Each search stops at the other's hit: searching a file without CR for CR would scan to
    its end from every line, which is quadratic.
    """
    lf = buf.find(b"\n", start)
    cr = buf.find(b"\r", start, lf if lf >= 0 else len(buf))
    if cr < 0:
        return lf
    return cr + 1 if buf[cr : cr + 2] == b"\r\n" else cr


def last_record_end(buf: bytes) -> int:
    """Index just past the last line end with an even number of quotes before it; 0 if none (the fast path).

    Counting quotes is exact for RFC 4180 quoting (a quote inside a value is doubled). The
    walk goes back quote by quote: every line end between two quotes has the same parity.
    """
    quotes, end = buf.count(QUOTE), len(buf)
    while True:
        q = buf.rfind(QUOTE, 0, end)
        if quotes % 2 == 0:
            i = _line_end_before(buf, end)
            if i > q:
                return i + 1
        if q < 0:
            return 0
        end, quotes = q, quotes - 1


@dataclass(frozen=True)
class _Record:
    end: int  # index past the record's line end (or the end of the buffer)
    fields: int
    lines: int
    open: bool  # the buffer ended inside a quoted value
    ended: bool  # the record ended at a line end (not at the end of the buffer)
    proper: bool = True  # every quoted value closed right before a delimiter or line end (RFC 4180)


def _stops(delim: bytes) -> re.Pattern:
    return re.compile(b"[" + re.escape(delim) + rb"\r\n]")


def _quoted_end(buf: bytes, pos: int) -> int:
    """Index past the quote closing the value opened at pos (doubled quotes are text), or -1 if it never closes."""
    i = pos + 1
    while True:
        j = buf.find(QUOTE, i)
        if j < 0:
            return -1
        if buf[j + 1 : j + 2] != QUOTE:
            return j + 1
        i = j + 2


def scan_record(buf: bytes, pos: int, delim: bytes) -> _Record:
    """One record from pos, reading quotes as Arrow does: a quote opens a quoted value only at a field's start."""
    n, line_end = len(buf), _first_line_end(buf, pos)
    stop = n if line_end < 0 else line_end - (buf[line_end - 1 : line_end + 1] == b"\r\n")
    if buf.find(QUOTE, pos, stop) < 0:  # no quote on the line: the line is the record
        return _Record(n if line_end < 0 else line_end + 1, buf.count(delim, pos, stop) + 1, 1, False, line_end >= 0)
    stops, fields, start, proper = _stops(delim), 1, pos, True
    while True:
        close = _quoted_end(buf, pos) if buf[pos : pos + 1] == QUOTE else pos
        if close < 0:
            return _Record(n, fields, buf.count(b"\n", start, n) + 1, True, False, False)
        m = stops.search(buf, close)
        proper = proper and (close == pos or m is None or m.start() == close)
        pos = m.start() if m else n
        if pos < n and buf[pos : pos + 1] == delim:
            fields, pos = fields + 1, pos + 1
            continue
        end = min(n, pos + (2 if buf[pos : pos + 2] == b"\r\n" else 1))
        lines = len(_LINE_ENDS.findall(buf, start, pos)) + 1
        return _Record(end, fields, lines, False, pos < n, proper)


def scan_records(buf: bytes, delim: bytes) -> tuple[int, bool]:
    """(index past the last complete record, whether the buffer ends inside an open quoted value): the slow path."""
    pos, last = 0, 0
    while pos < len(buf):
        record = scan_record(buf, pos, delim)
        if record.open:
            return last, True
        pos = record.end
        if record.ended:
            last = pos
    return last, False


def _record_end(buf: bytes, delim: bytes) -> int:
    """Where to cut: the quote-parity answer, or the exact scan when parity finds no cut (a stray quote)."""
    cut = last_record_end(buf)
    if cut or QUOTE not in buf:
        return cut
    return scan_records(buf, delim)[0]


def _split_first_line(carry: bytes, limit: int, final: bool) -> tuple[Malformed, bytes]:
    """An open quote (or an over-long multi-line record): its first line is malformed, the rest is read again."""
    i = _first_line_end(carry)
    if i < 0 and not final:
        raise DataContractError(f"a line longer than {limit:,} bytes with no line end: is this a CSV file?")
    line = (carry if i < 0 else carry[:i]).rstrip(b"\r\n")
    rule = "unclosed quote" if line.count(QUOTE) % 2 else f"record longer than {limit:,} bytes"
    return Malformed(_cut_text(line), rule), (b"" if i < 0 else carry[i + 1 :])


def record_blocks(
    chunks: Iterable[bytes], delimiter: str = ",", limit: int = MAX_RECORD_BYTES
) -> Iterator[bytes | Malformed]:
    """Blocks of whole records (bytes), or a `Malformed` line, in file order.

    A block ends at a line end outside quotes, so a quoted value may span lines. An unclosed
    quote would otherwise swallow the rest of the file (and memory): once a record grows past
    `limit` bytes, or at the end of the file, its first line is reported as malformed and
    reading resumes on the next line.
    """
    delim, carry = delimiter.encode(), b""
    for data in chunks:
        buf = carry + data if carry else data
        cut = _record_end(buf, delim)
        if cut:
            yield buf[:cut]
        carry = buf[cut:]
        while len(carry) > limit:
            bad, carry = _split_first_line(carry, limit, final=False)
            yield bad
            cut = _record_end(carry, delim)
            if cut:
                yield carry[:cut]
                carry = carry[cut:]
    yield from _final_blocks(carry, delim, limit)


def _final_blocks(carry: bytes, delim: bytes, limit: int) -> Iterator[bytes | Malformed]:
    """The end of the file: complete records, then the last record, or a malformed line for an open quote."""
    while carry:
        cut, is_open = scan_records(carry, delim) if QUOTE in carry else (0, False)
        if cut:
            yield carry[:cut]
            carry = carry[cut:]
        elif is_open:
            bad, carry = _split_first_line(carry, limit, final=True)
            yield bad
        else:
            yield carry
            return


# ---------------------------------------------------------------- parsing blocks


@dataclass
class CsvHeader:
    """The header as written and as used: blank cells named `Unnamed: N`, duplicates made unique."""

    written: list[str]
    names: list[str]
    report: dict = field(default_factory=dict)


def parse_header(raw: bytes, delimiter: str, path: Path) -> CsvHeader:
    text = raw.decode("utf-8", errors="replace").lstrip("\ufeff")
    if not text.strip():
        raise DataContractError(f"{path}: file is empty (no header line)")
    written = next(csv.reader([text.rstrip("\r\n")], delimiter=delimiter))
    names, report = normalise_header(written)
    return CsvHeader(written, names, report)


def _split_header(block: bytes) -> tuple[bytes, bytes]:
    """The first record of the file (the header) and the rest of the block."""
    quotes, start = 0, 0
    while True:
        i = _first_line_end(block, start)
        if i < 0:
            return block, b""
        quotes += block.count(QUOTE, start, i)
        if quotes % 2 == 0:
            return block[: i + 1], block[i + 1 :]
        start = i + 1


def _arrow_options(names: list[str], delimiter: str, block: bytes):
    read = pacsv.ReadOptions(column_names=names, block_size=max(len(block) + 1, 1 << 20))
    parse = pacsv.ParseOptions(delimiter=delimiter, newlines_in_values=QUOTE in block)
    convert = pacsv.ConvertOptions(
        column_types={n: pa.binary() for n in names},  # bytes first: a bad byte must not fail the whole read
        strings_can_be_null=True,
        null_values=NULL_VALUES,
        quoted_strings_can_be_null=True,
    )
    return read, parse, convert


def _arrow_block(block: bytes, names: list[str], delimiter: str) -> pa.Table:
    read, parse, convert = _arrow_options(names, delimiter, block)
    return pacsv.read_csv(pa.py_buffer(block), read_options=read, parse_options=parse, convert_options=convert)


def classify_records(block: bytes, width: int, delimiter: str) -> Iterator[bytes | Malformed]:
    """Each record of the block, or a `Malformed` line: the slow path, taken only when Arrow refused a block.

    A record spanning lines with the wrong number of fields means its first line opened a
    stray quote, so only that line is malformed and reading resumes on the next line.
    """
    delim, pos, n = delimiter.encode(), 0, len(block)
    while pos < n:
        line_end = _first_line_end(block, pos)
        line = block[pos : n if line_end < 0 else line_end + 1].rstrip(b"\r\n")
        if not line:
            pos = n if line_end < 0 else line_end + 1
            continue
        record = scan_record(block, pos, delim)
        if record.open or (record.lines > 1 and (record.fields != width or not record.proper)):
            yield Malformed(_cut_text(line), "unclosed quote")
            pos = n if line_end < 0 else line_end + 1
        elif record.fields != width:
            yield Malformed(
                _cut_text(block[pos : record.end].rstrip(b"\r\n")), f"expected {width} fields, got {record.fields}"
            )
            pos = record.end
        else:
            yield block[pos : record.end].rstrip(b"\r\n")
            pos = record.end


def _with_markers(good: pa.Table, order: list[Malformed | None]) -> pa.Table:
    """Interleave parsed rows with malformed lines (null cells, reason in the hidden columns), in file order."""
    bad = [m for m in order if m is not None]
    nulls = {n: pa.nulls(len(bad), pa.binary()) for n in good.column_names}
    marks = pa.table(
        {
            **nulls,
            MALFORMED_RULE: pa.array([f"{RULE_MALFORMED}: {m.rule}" for m in bad], pa.string()),
            MALFORMED_TEXT: pa.array([m.text for m in bad], pa.string()),
        }
    )
    good = good.append_column(MALFORMED_RULE, pa.nulls(len(good), pa.string()))
    good = good.append_column(MALFORMED_TEXT, pa.nulls(len(good), pa.string()))
    take, g, b = [], 0, len(good)
    for item in order:
        take.append(g if item is None else b)
        g, b = (g + 1, b) if item is None else (g, b + 1)
    return pa.concat_tables([good, marks]).take(pa.array(take, pa.int64()))


def _line_count(block: bytes) -> int:
    """Lines in the block: fewer rows than lines means a record spans lines (a quoted line end, or a stray quote)."""
    ends = block.count(b"\n") + block.count(b"\r") - block.count(b"\r\n")
    return ends + (not block.endswith((b"\n", b"\r")))


def _empty(names: list[str]) -> pa.Table:
    return pa.table({n: pa.array([], pa.binary()) for n in names})


def parse_block(block: bytes | Malformed, header: CsvHeader, delimiter: str, path: Path) -> pa.Table:
    """Rows of one block as binary columns; malformed lines become marker rows in place.

    Arrow parses the block; only when it refuses it, or when a record spans lines, is the
    block split record by record in Python, which tells a quoted line end (kept) from a
    stray quote that swallowed the next lines (its line is malformed).
    """
    names = header.names
    if isinstance(block, Malformed):
        return _with_markers(_empty(names), [block])
    try:
        table = _arrow_block(block, names, delimiter)
        if QUOTE not in block or table.num_rows >= _line_count(block):
            return table
    except pa.ArrowInvalid as err:
        if "CSV parse error" not in str(err):
            raise
    items = list(classify_records(block, len(names), delimiter))
    records = [r for r in items if isinstance(r, bytes)]
    good = _arrow_block(b"\n".join(records) + b"\n", names, delimiter) if records else _empty(names)
    if good.num_rows != len(records):
        raise DataContractError(f"{path}: cannot split a block into rows ({good.num_rows} != {len(records)})")
    return _with_markers(good, [None if isinstance(r, bytes) else r for r in items])


def _byte_chunks(path: Path, encoding: str, size: int) -> Iterator[bytes]:
    """The file's bytes (gunzipped), transcoded to UTF-8 when another encoding is declared."""
    decoder = None if _is_utf8(encoding) else codecs.getincrementaldecoder(encoding)(errors="replace")
    with _csv_input(path) as stream:
        while True:
            raw = stream.read(size)
            data = decoder.decode(raw, final=not raw).encode("utf-8") if decoder is not None else raw
            if data:
                yield data
            if not raw:
                return


class CsvFile:
    """A CSV file read as text columns: the header once, then the rows block by block."""

    def __init__(
        self, path: str | Path, delimiter: str = ",", encoding: str = "utf-8", max_record_bytes: int = MAX_RECORD_BYTES
    ) -> None:
        self.path, self.delimiter, self.encoding = Path(path), delimiter, encoding
        self.max_record_bytes = max_record_bytes
        sniff_csv(self.path, encoding)
        blocks = self._blocks(1 << 16)
        try:
            first = next(blocks, b"")
        finally:
            blocks.close()
        if isinstance(first, Malformed):
            raise DataContractError(f"{self.path}: the header line is malformed ({first.rule}): {first.text}")
        self.header = parse_header(_split_header(first)[0], delimiter, self.path)

    def _blocks(self, read_bytes: int) -> Generator[bytes | Malformed, None, None]:
        try:
            chunks = _byte_chunks(self.path, self.encoding, read_bytes)
            yield from record_blocks(chunks, self.delimiter, self.max_record_bytes)
        except _READ_ERRORS as err:
            raise _read_error(self.path, err) from None
        except DataContractError as err:
            raise DataContractError(f"{self.path}: {err}") from None

    def tables(self, read_bytes: int) -> Iterator[pa.Table]:
        """Tables of about read_bytes of input each, every row once, in file order."""
        first = True
        for block in self._blocks(max(read_bytes, 1)):
            if first and isinstance(block, bytes):
                block, first = _split_header(block)[1], False
            if isinstance(block, bytes) and not block.strip(b"\r\n"):
                continue
            try:
                table = parse_block(block, self.header, self.delimiter, self.path)
            except pa.ArrowInvalid as err:
                raise _read_error(self.path, err) from None
            if table.num_rows:
                yield table


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
    for table in CsvFile(path, delimiter, encoding).tables(chunk_bytes):
        yield text_frame(table)


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
