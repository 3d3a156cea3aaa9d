"""CSV bytes to rows: cutting a byte stream into blocks of whole records, and parsing a block with Arrow.

The stream is cut into blocks at line ends outside quotes (CRLF, LF and CR-only alike; a quoted
value may hold line ends), and each block is parsed on its own, which keeps memory bounded by the
block size. A line with the wrong number of fields or an unclosed quote becomes a row whose data
cells are null and whose hidden columns `MALFORMED_RULE` / `MALFORMED_TEXT` say why; validation
rejects it under column `LINE_COLUMN` with its row number, so rows are never lost.

Separate from `io` and `csv_file` because it works on bytes in memory only (no files, no
encodings): the quoting rules can be read, and tested, byte by byte.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv

from pipeline.data.headers import normalise_header
from pipeline.errors import DataContractError

NULL_VALUES = ["", "NA", "N/A", "NaN", "nan", "null", "NULL", "None"]
QUOTE = b'"'
MALFORMED_RULE = "__malformed_rule__"
MALFORMED_TEXT = "__malformed_text__"
MALFORMED_COLUMNS = (MALFORMED_RULE, MALFORMED_TEXT)
LINE_COLUMN = "<line>"
RULE_MALFORMED = "malformed_line"
MAX_LINE_CHARS = 200
MAX_RECORD_BYTES = 64 << 20  # proposed config key `source.max_record_bytes`; one record (row) at most this long
_LINE_ENDS = re.compile(rb"(\r\n|\r|\n)")


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
