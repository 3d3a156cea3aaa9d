"""A CSV file as the readers open it: the checks on the whole file, its bytes, its header, its blocks.

Whatever makes the file as a whole unusable (missing, empty, truncated, compressed other than
gzip, UTF-16, binary) raises `DataContractError` naming the file and the cause. Otherwise
`CsvFile` streams the file's bytes (gunzipped, transcoded to UTF-8) through `csv_records`, which
cuts and parses them, and yields the rows block by block.

Separate from `csv_records` (bytes in memory only) and from `io` (the table-level read and write
functions built on this class); `io`'s Parquet readers share the existence check and the wording
of read errors defined here.
"""

from __future__ import annotations

import codecs
import zlib
from collections.abc import Generator, Iterator
from pathlib import Path

import pyarrow as pa

from pipeline.data.csv_records import (
    MAX_RECORD_BYTES,
    Malformed,
    _split_header,
    parse_block,
    parse_header,
    record_blocks,
)
from pipeline.errors import DataContractError

_MAGIC = {
    b"BZh": "bz2",
    b"\xfd7zXZ\x00": "xz",
    b"PK\x03\x04": "zip (an .xlsx workbook is a zip too: export it as CSV)",
    b"\x28\xb5\x2f\xfd": "zstd",
    b"7z\xbc\xaf\x27\x1c": "7z",
}
_BOMS = {b"\xff\xfe\x00\x00": "UTF-32", b"\x00\x00\xfe\xff": "UTF-32", b"\xff\xfe": "UTF-16", b"\xfe\xff": "UTF-16"}


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
